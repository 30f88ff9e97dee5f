import GoFetchEvents
import GoFetchSystem

/// Turns decoded ``AccessEvent``s into resolved ``TraceEvent``s and hands them to
/// the sinks. Confined to the ingest thread; it never blocks.
public final class IngestPipeline: @unchecked Sendable {
    public private(set) var catalog: FileCatalog
    public private(set) var table: OpenFileTable
    private let sinks: [any EventSink]
    private let statistics: IngestStatistics
    /// Tells the job's cold reads (page-cache misses) from warm ones by their time.
    private let timing: ReadTiming
    /// Wall clock minus monotonic clock, fixed at start, so event times are comparable.
    private let wallOffset: Int64
    private var pendingFiles: [FileRecord] = []
    private var pendingEvents: [TraceEvent] = []
    private var pendingControl: [TraceEvent] = []
    /// Files the lister found, with the client it listed them as (for the engine).
    private var pendingListed: [ListedFile] = []
    /// Lists folders for prediction: the data-set trees the engine asks for and, with
    /// `listOpenedFolders` (the GRU runs: it needs a folder's files known before they
    /// are opened), the folder of each file the job opens.
    public let lister: DirectoryLister?
    public let listOpenedFolders: Bool
    /// Catalog entries made from listings alone; at most half the catalog.
    private var listedFiles = 0

    public init(
        catalog: FileCatalog, tableCapacity: Int, sinks: [any EventSink], statistics: IngestStatistics, timing: ReadTiming = ReadTiming(),
        lister: DirectoryLister? = nil, listOpenedFolders: Bool = false
    ) {
        self.lister = lister
        self.listOpenedFolders = listOpenedFolders
        self.timing = timing
        self.catalog = catalog
        self.table = OpenFileTable(capacity: tableCapacity)
        self.sinks = sinks
        self.statistics = statistics
        wallOffset = Int64(bitPattern: Clock.wallNanoseconds()) - Int64(bitPattern: Clock.monotonicNanoseconds())
        pendingEvents.reserveCapacity(4_096)
    }

    /// Resolves a batch of events from one client; call ``flush()`` to hand them on.
    public func ingest(_ events: [AccessEvent], uid: UInt32, gid: UInt32 = 0, parentPID: UInt32 = 0) {
        var opens = 0, reads = 0, mmaps = 0, closes = 0, bytes = 0, wait = 0, unresolved = 0, accepted = 0, cold = 0, stall = 0
        var warmedAtOpen = 0
        for event in events {
            let wall = Int64(bitPattern: event.monotonicNanoseconds) &+ wallOffset
            let fileID: FileID
            switch event.kind {
            case .open:
                opens += 1
                if event.flags.contains(.warmedAtOpen) { warmedAtOpen += 1 }
                guard let path = event.path else { unresolved += 1; continue }
                guard let id = accept(catalog.register(path: path, device: event.device, inode: event.inode, size: event.length, wallNanoseconds: wall, uid: uid), uid: uid, gid: gid, pid: event.pid) else { continue }
                fileID = id
                if !table.open(pid: event.pid, fd: event.fd, file: fileID) {
                    statistics.tableFull.add(1)
                }
            case .epoch:
                pendingControl.append(TraceEvent(
                    fileID: 0, kind: .epoch, source: event.source, pid: event.pid, tid: event.tid, uid: uid, gid: gid,
                    workerID: event.workerID, epoch: event.epoch, wallNanoseconds: wall,
                    monotonicNanoseconds: event.monotonicNanoseconds, offset: 0, length: 0, durationNanoseconds: 0))
                continue
            case .lookahead:
                guard let path = event.path else { unresolved += 1; continue }
                guard let id = accept(catalog.registerAnnounced(path: path, size: event.length, wallNanoseconds: wall, uid: uid), uid: uid, gid: gid, pid: event.pid) else { continue }
                fileID = id
                pendingControl.append(TraceEvent(
                    fileID: fileID, kind: .lookahead, flags: event.flags, source: event.source, pid: event.pid, tid: event.tid,
                    uid: uid, gid: gid, workerID: event.workerID, epoch: event.epoch, wallNanoseconds: wall,
                    monotonicNanoseconds: event.monotonicNanoseconds, offset: event.offset, length: event.length,
                    durationNanoseconds: 0))
                continue
            case .read, .mmap, .close:
                if event.kind == .read {
                    reads += 1
                    bytes &+= Int(truncatingIfNeeded: event.length)
                    wait &+= Int(event.durationNanoseconds)
                    if timing.isCold(bytes: event.length, nanoseconds: UInt64(event.durationNanoseconds)) {
                        cold += 1
                        stall &+= Int(event.durationNanoseconds)
                    }
                } else if event.kind == .mmap {
                    mmaps += 1
                } else {
                    closes += 1
                }
                guard let id = resolve(event) else {
                    unresolved += 1
                    continue
                }
                fileID = id
                if event.kind == .close { table.close(pid: event.pid, fd: event.fd) }
            }
            var resolved = TraceEvent(
                fileID: fileID, kind: event.kind, flags: event.flags, source: event.source,
                pid: event.pid, tid: event.tid, uid: uid, gid: gid, workerID: event.workerID, epoch: event.epoch,
                wallNanoseconds: wall, monotonicNanoseconds: event.monotonicNanoseconds,
                offset: event.offset, length: event.length, durationNanoseconds: event.durationNanoseconds)
            resolved.parentPID = parentPID
            pendingEvents.append(resolved)
            accepted += 1
        }
        statistics.opens.add(opens)
        if warmedAtOpen > 0 { statistics.warmedAtOpen.add(warmedAtOpen) }
        statistics.reads.add(reads)
        statistics.mmaps.add(mmaps)
        statistics.closes.add(closes)
        statistics.bytesRead.add(bytes)
        statistics.readWaitNanoseconds.add(wait)
        statistics.coldReads.add(cold)
        statistics.stallNanoseconds.add(stall)
        statistics.unresolved.add(unresolved)
        statistics.eventsAccepted.add(accepted)
    }

    /// The id of a registration; a new or changed record is queued for the store (and
    /// its folder for the lister, as the client `uid`/`gid`), a full catalog is counted
    /// and gives `nil`.
    private func accept(_ registration: FileCatalog.Registration, uid: UInt32? = nil, gid: UInt32 = 0, pid: UInt32 = 0) -> FileID? {
        switch registration {
        case .known(let id):
            return id
        case .claimRefused(let id):
            statistics.catalogForeignUpdates.add(1)
            return id
        case .recorded(let record):
            pendingFiles.append(record)
            if let uid, listOpenedFolders { lister?.request(folderOf: record.path, uid: uid, gid: gid, pid: pid) }
            return record.id
        case .full:
            statistics.catalogFull.add(1)
            return nil
        }
    }

    /// Registers the files the lister found: the catalog learns their paths (and sizes,
    /// from tree walks); their identity comes with their first open. Files known only from listings
    /// fill at most half the catalog, so the files the job opens always find room.
    public func registerListings() {
        guard let lister else { return }
        let wall = Int64(bitPattern: Clock.wallNanoseconds())
        for listing in lister.takeListings() {
            for (index, name) in listing.names.enumerated() {
                let path = listing.directory + "/" + name
                let size = index < listing.sizes.count ? listing.sizes[index] : 0
                if let known = catalog.id(path: path) {
                    pendingListed.append(ListedFile(fileID: known, uid: listing.uid))
                    continue
                }
                guard listedFiles < catalog.capacity / 2, catalog.count < catalog.capacity else {
                    statistics.listingsSkipped.add(1)
                    continue
                }
                guard let id = accept(catalog.registerAnnounced(path: path, size: size, wallNanoseconds: wall, uid: listing.uid)) else { continue }
                pendingListed.append(ListedFile(fileID: id, uid: listing.uid))
                listedFiles += 1
                statistics.filesListed.add(1)
            }
        }
    }

    /// The file a read, mmap or close refers to: by (pid, fd) when the inode agrees,
    /// else by inode (a forked worker reading a descriptor its parent opened).
    private func resolve(_ event: AccessEvent) -> FileID? {
        if let id = table.file(pid: event.pid, fd: event.fd),
           event.device == 0 && event.inode == 0 || catalog.matches(id, device: event.device, inode: event.inode) {
            return id
        }
        return catalog.id(device: event.device, inode: event.inode)
    }

    /// Forgets the descriptors of a process that disconnected.
    public func processEnded(_ pid: UInt32) {
        table.removeProcess(pid)
    }

    /// Hands everything resolved so far to the sinks.
    public func flush() {
        guard !pendingEvents.isEmpty || !pendingFiles.isEmpty || !pendingControl.isEmpty || !pendingListed.isEmpty else { return }
        let batch = EventBatch(files: pendingFiles, events: pendingEvents, control: pendingControl, listed: pendingListed)
        pendingListed.removeAll(keepingCapacity: true)
        pendingFiles.removeAll(keepingCapacity: true)
        pendingEvents.removeAll(keepingCapacity: true)
        pendingControl.removeAll(keepingCapacity: true)
        for sink in sinks { sink.consume(batch) }
    }
}
