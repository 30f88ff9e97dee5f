import GoFetchEvents

/// The files ingest knows: path ↔ id and (device, inode) → id, bounded.
///
/// Confined to the ingest thread. It is seeded from the store at start, so file
/// ids stay stable across daemon runs and the hot path never queries the database.
///
/// Shared by every client of the daemon, so no one user may fill it: the last
/// eighth of `capacity` is kept for users other than one holding half the entries
/// or more (a user with the daemon to itself still gets seven eighths), and a
/// record's identity (device, inode, size) changes only at an open by the user who
/// registered it or by root: another user's claim is refused
/// (``Registration/claimRefused(_:)``).
public struct FileCatalog: Sendable {
    public struct Identity: Hashable, Sendable {
        public var device: UInt64
        public var inode: UInt64
    }

    public private(set) var records: [FileID: FileRecord] = [:]
    private var byPath: [String: FileID] = [:]
    private var byIdentity: [Identity: FileID] = [:]
    private var nextID: FileID
    public let capacity: Int
    /// Records each user registered (this run), and who registered each.
    private var entriesByUser: [UInt32: Int] = [:]
    private var registeredBy: [FileID: UInt32] = [:]

    /// - Parameter maxID: the largest id the store holds (the catalog may load only
    ///   some of its files): new ids come after it, so they never collide.
    public init(capacity: Int, existing: [FileRecord] = [], maxID: FileID = 0) {
        self.capacity = capacity
        nextID = max(existing.map(\.id).max() ?? 0, maxID) + 1
        for record in existing.prefix(capacity) {
            records[record.id] = record
            byPath[record.path] = record.id
            byIdentity[Identity(device: record.device, inode: record.inode)] = record.id
        }
    }

    public var count: Int { records.count }

    /// Outcome of registering an open.
    public enum Registration: Equatable, Sendable {
        case known(FileID)
        /// Known, and the open claims another identity for a file another user
        /// registered: refused, the record stays as it was (the event keeps the id).
        case claimRefused(FileID)
        /// New, or changed (replaced file, new size): the store must write this record.
        case recorded(FileRecord)
        case full
    }

    /// Finds or adds the file an open by user `uid` names.
    public mutating func register(path: String, device: UInt64, inode: UInt64, size: UInt64, wallNanoseconds: Int64, uid: UInt32 = 0) -> Registration {
        let identity = Identity(device: device, inode: inode)
        if let id = byPath[path], var record = records[id] {
            if record.device == device && record.inode == inode && record.size == size {
                return .known(id)
            }
            if let owner = registeredBy[id], owner != uid, uid != 0 {
                return .claimRefused(id)
            }
            byIdentity[Identity(device: record.device, inode: record.inode)] = nil
            record.device = device
            record.inode = inode
            record.size = size
            records[id] = record
            byIdentity[identity] = id
            return .recorded(record)
        }
        guard admits(uid) else { return .full }
        let record = FileRecord(
            id: nextID, path: path, device: device, inode: inode, size: size, firstSeenWallNanoseconds: wallNanoseconds)
        nextID += 1
        taken(record.id, by: uid)
        records[record.id] = record
        byPath[path] = record.id
        byIdentity[identity] = record.id
        return .recorded(record)
    }

    /// Finds or adds a file named before it is opened (a lookahead announcement):
    /// a known file keeps its identity; a new one gets none until its open.
    public mutating func registerAnnounced(path: String, size: UInt64, wallNanoseconds: Int64, uid: UInt32 = 0) -> Registration {
        if let id = byPath[path] { return .known(id) }
        guard admits(uid) else { return .full }
        let record = FileRecord(id: nextID, path: path, device: 0, inode: 0, size: size, firstSeenWallNanoseconds: wallNanoseconds)
        nextID += 1
        taken(record.id, by: uid)
        records[record.id] = record
        byPath[path] = record.id
        return .recorded(record)
    }

    public func id(device: UInt64, inode: UInt64) -> FileID? {
        byIdentity[Identity(device: device, inode: inode)]
    }

    public func id(path: String) -> FileID? { byPath[path] }

    /// Whether `uid` may add a record: there is room, and in the last eighth only
    /// for a user holding less than half the entries.
    private func admits(_ uid: UInt32) -> Bool {
        guard records.count < capacity else { return false }
        guard records.count >= capacity - capacity / 8 else { return true }
        return entriesByUser[uid, default: 0] * 2 < records.count
    }

    private mutating func taken(_ id: FileID, by uid: UInt32) {
        entriesByUser[uid, default: 0] += 1
        registeredBy[id] = uid
    }

    public func matches(_ id: FileID, device: UInt64, inode: UInt64) -> Bool {
        guard let record = records[id] else { return false }
        return record.device == device && record.inode == inode
    }
}

/// The (pid, fd) → file table, bounded; a process's entries go when it disconnects.
public struct OpenFileTable: Sendable {
    private var byProcess: [UInt32: [Int32: FileID]] = [:]
    public private(set) var count = 0
    public let capacity: Int

    public init(capacity: Int) { self.capacity = capacity }

    /// Records an open; `false` when the table is full.
    public mutating func open(pid: UInt32, fd: Int32, file: FileID) -> Bool {
        if byProcess[pid]?[fd] != nil {
            byProcess[pid]![fd] = file
            return true
        }
        guard count < capacity else { return false }
        byProcess[pid, default: [:]][fd] = file
        count += 1
        return true
    }

    public func file(pid: UInt32, fd: Int32) -> FileID? { byProcess[pid]?[fd] }

    public mutating func close(pid: UInt32, fd: Int32) {
        if byProcess[pid]?.removeValue(forKey: fd) != nil { count -= 1 }
    }

    /// Forgets every descriptor of a process that is gone.
    public mutating func removeProcess(_ pid: UInt32) {
        if let entries = byProcess.removeValue(forKey: pid) { count -= entries.count }
    }
}
