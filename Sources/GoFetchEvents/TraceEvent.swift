/// Identifier of a file in the trace store (`files.id`).
public typealias FileID = Int64

/// An access event after ingest resolved its file: what predictors and the store consume.
public struct TraceEvent: Sendable, Hashable {
    public var fileID: FileID
    public var kind: AccessKind
    public var flags: AccessFlags
    public var source: TraceSource
    public var pid: UInt32
    public var tid: UInt32
    public var uid: UInt32
    /// The client's gid (not stored; the executor opens files as uid/gid).
    public var gid: UInt32
    /// The sending process's parent when it connected (not stored): data-loader
    /// workers of one job share it, workers of two ranks or jobs do not.
    public var parentPID: UInt32 = 0
    public var workerID: Int32?
    public var epoch: UInt32?
    /// Wall-clock nanoseconds since the Unix epoch.
    public var wallNanoseconds: Int64
    /// `CLOCK_MONOTONIC` nanoseconds, as the source stamped it.
    public var monotonicNanoseconds: UInt64
    public var offset: UInt64
    public var length: UInt64
    public var durationNanoseconds: UInt32

    public init(
        fileID: FileID, kind: AccessKind, flags: AccessFlags = [], source: TraceSource = .preload,
        pid: UInt32, tid: UInt32, uid: UInt32, gid: UInt32 = 0, workerID: Int32? = nil, epoch: UInt32? = nil,
        wallNanoseconds: Int64, monotonicNanoseconds: UInt64, offset: UInt64, length: UInt64,
        durationNanoseconds: UInt32
    ) {
        self.fileID = fileID
        self.kind = kind
        self.flags = flags
        self.source = source
        self.pid = pid
        self.tid = tid
        self.uid = uid
        self.gid = gid
        self.workerID = workerID
        self.epoch = epoch
        self.wallNanoseconds = wallNanoseconds
        self.monotonicNanoseconds = monotonicNanoseconds
        self.offset = offset
        self.length = length
        self.durationNanoseconds = durationNanoseconds
    }
}

/// A file as the store records it.
public struct FileRecord: Sendable, Hashable {
    public var id: FileID
    public var path: String
    public var device: UInt64
    public var inode: UInt64
    public var size: UInt64
    public var firstSeenWallNanoseconds: Int64

    public init(id: FileID, path: String, device: UInt64, inode: UInt64, size: UInt64, firstSeenWallNanoseconds: Int64) {
        self.id = id
        self.path = path
        self.device = device
        self.inode = inode
        self.size = size
        self.firstSeenWallNanoseconds = firstSeenWallNanoseconds
    }
}

/// What ingest hands on at once: files new or changed since the last batch, then
/// events. Control records (epoch starts, lookahead announcements) travel beside
/// the events: predictors use them, the store does not keep them.
public struct EventBatch: Sendable {
    public var files: [FileRecord]
    public var events: [TraceEvent]
    public var control: [TraceEvent]
    /// Files the lister found as a client (the folder was listed with its identity):
    /// the client may be sent prefetches of them (the store does not keep these).
    public var listed: [ListedFile]

    public init(files: [FileRecord] = [], events: [TraceEvent] = [], control: [TraceEvent] = [], listed: [ListedFile] = []) {
        self.files = files
        self.events = events
        self.control = control
        self.listed = listed
    }

    public var isEmpty: Bool { files.isEmpty && events.isEmpty && control.isEmpty && listed.isEmpty }
}

/// A file found in a folder listed as the client `uid`.
public struct ListedFile: Sendable, Hashable {
    public var fileID: FileID
    public var uid: UInt32

    public init(fileID: FileID, uid: UInt32) {
        self.fileID = fileID
        self.uid = uid
    }
}

/// A consumer of ingested events (the store writer, later the predictors).
/// `consume` runs on the ingest thread and must never block: a sink that cannot
/// keep up drops and counts.
public protocol EventSink: AnyObject, Sendable {
    func consume(_ batch: EventBatch)
}
