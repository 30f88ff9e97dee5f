import Foundation
import GRDB
@testable import GoFetchEvents
@testable import GoFetchIngest
@testable import GoFetchPredict
@testable import GoFetchRuntime
@testable import GoFetchStore
@testable import GoFetchSystem
import Testing

@Suite("ingest and store", .serialized)
struct IngestTests {
    @Test("events sent over the socket land in the store with their files")
    func eventsReachTheStore() throws {
        let directory = TemporaryDirectory()
        let daemon = try TraceDaemon(configuration: testConfiguration(directory), command: "test", source: "test", logger: .test)
        try daemon.start()
        let client = try TestClient(socketPath: daemon.server.socketPath)
        var encoder = WireEncoder(pid: UInt32(getpid()))
        for event in WireDecoderTests.sampleEvents(pid: UInt32(getpid())) { encoder.append(event) }
        try client.send(encoder.finish())
        client.close()
        #expect(waitUntil { daemon.ingestStatistics.eventsAccepted.value == 4 })
        daemon.stop()

        let rows = try DatabaseQueue(path: directory.file("traces.db")).read { db in
            try Row.fetchAll(db, sql: "SELECT file_path, access_type, offset, length, worker_id, epoch FROM traces ORDER BY timestamp")
        }
        #expect(rows.count == 4)
        #expect(rows.allSatisfy { ($0["file_path"] as String) == "/data/train/cat/0001.jpg" })
        #expect(rows.map { $0["access_type"] as String } == ["open", "read", "mmap", "close"])
        #expect(rows[1]["length"] as Int64 == 4_096)
        #expect(rows[1]["worker_id"] as Int64? == 2)
        #expect(rows[1]["epoch"] as Int64? == 1)
        #expect(rows[0]["worker_id"] as Int64? == nil)
        #expect(daemon.summary().committedFiles == 1)
    }

    @Test("100k random and truncated messages: every bad one counted, every good event kept")
    func fuzzedInput() throws {
        let directory = TemporaryDirectory()
        let daemon = try TraceDaemon(configuration: testConfiguration(directory), command: "fuzz", source: "test", logger: .test)
        try daemon.start()
        let client = try TestClient(socketPath: daemon.server.socketPath)
        let pid = UInt32(getpid())
        var generator = SplitMix64(seed: 2026)
        var good = 0
        var bad = 0

        var opener = WireEncoder(pid: pid)
        opener.append(AccessEvent(kind: .open, pid: pid, tid: 1, fd: 9, monotonicNanoseconds: 1, device: 1, inode: 2,
                                  offset: 0, length: 1 << 20, durationNanoseconds: 1, path: "/data/shard-0.tar"))
        try client.send(opener.finish())
        good += 1

        func readMessage(count: Int) -> [UInt8] {
            var encoder = WireEncoder(pid: pid)
            for i in 0..<count {
                encoder.append(AccessEvent(kind: .read, pid: pid, tid: 1, fd: 9, monotonicNanoseconds: UInt64(i), device: 1,
                                           inode: 2, offset: UInt64(i) * 4096, length: 4096, durationNanoseconds: 100))
            }
            return encoder.finish()
        }
        let template = readMessage(count: 4)
        for i in 0..<100_000 {
            if i % 10 == 0 {
                let count = 1 + Int(generator.next() % 8)
                try client.send(readMessage(count: count))
                good += count
            }
            var bytes: [UInt8]
            switch generator.next() % 4 {
            case 0:
                // Random bytes that cannot carry the magic: rejected at the header.
                bytes = (0..<(1 + Int(generator.next() % 300))).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                if bytes[0] == 0x47 { bytes[0] = 0 }
            case 1:
                // A good message cut inside a record: the whole records before the cut are kept.
                let cut = WireFormat.headerSize + 1 + Int(generator.next() % UInt64(template.count - WireFormat.headerSize - 1))
                bytes = Array(template.prefix(cut))
                if (cut - WireFormat.headerSize) % 64 == 0 { bytes.removeLast() }
                good += (bytes.count - WireFormat.headerSize) / 64
            case 2:
                bytes = template
                bytes[2] = UInt8(2 + generator.next() % 200)  // a version this daemon does not speak
            default:
                bytes = template
                bytes[WireFormat.headerSize + 2] = UInt8(7 + generator.next() % 200)  // unknown kind in the first record (1…6 are known)
                good += 3
            }
            try client.send(bytes)
            bad += 1
        }
        client.close()
        #expect(waitUntil(seconds: 60) { daemon.server.connectedClients == 0 })
        daemon.stop()

        let statistics = daemon.ingestStatistics.decodeStatistics
        #expect(statistics.total == bad)
        #expect(daemon.ingestStatistics.eventsAccepted.value == good)
        #expect(daemon.storeStatistics.committedEvents.value == good)
        let stored = try DatabaseQueue(path: directory.file("traces.db")).read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events")
        }
        #expect(stored == good)
    }

    @Test("a forked worker's read of its parent's descriptor resolves by inode; unknown files are counted")
    func resolution() throws {
        let statistics = IngestStatistics()
        final class Collector: EventSink, @unchecked Sendable {
            var events: [TraceEvent] = []
            func consume(_ batch: EventBatch) { events += batch.events }
        }
        let collector = Collector()
        let pipeline = IngestPipeline(catalog: FileCatalog(capacity: 10), tableCapacity: 10, sinks: [collector], statistics: statistics)
        pipeline.ingest([
            AccessEvent(kind: .open, pid: 100, tid: 100, fd: 3, monotonicNanoseconds: 1, device: 8, inode: 77,
                        offset: 0, length: 10, durationNanoseconds: 1, path: "/data/a"),
        ], uid: 0)
        pipeline.ingest([
            // worker 101 inherited fd 3 from 100
            AccessEvent(kind: .read, pid: 101, tid: 101, fd: 3, monotonicNanoseconds: 2, device: 8, inode: 77,
                        offset: 0, length: 10, durationNanoseconds: 1),
            // a descriptor nobody announced, of an inode nobody opened
            AccessEvent(kind: .read, pid: 101, tid: 101, fd: 4, monotonicNanoseconds: 3, device: 8, inode: 78,
                        offset: 0, length: 10, durationNanoseconds: 1),
        ], uid: 0)
        pipeline.flush()
        #expect(collector.events.count == 2)
        #expect(collector.events[1].fileID == collector.events[0].fileID)
        #expect(statistics.unresolved.value == 1)
        #expect(pipeline.table.count == 1)
        pipeline.processEnded(100)
        #expect(pipeline.table.count == 0)
    }

    @Test("the file table and catalog are bounded and count what does not fit")
    func bounds() {
        var table = OpenFileTable(capacity: 2)
        let results = [
            table.open(pid: 1, fd: 1, file: 1), table.open(pid: 1, fd: 2, file: 2),
            table.open(pid: 1, fd: 3, file: 3),
            table.open(pid: 1, fd: 2, file: 5),  // reuse of an fd is not growth
        ]
        #expect(results == [true, true, false, true])
        #expect(table.file(pid: 1, fd: 2) == 5)
        var catalog = FileCatalog(capacity: 1)
        let first = catalog.register(path: "/a", device: 1, inode: 1, size: 1, wallNanoseconds: 0)
        let second = catalog.register(path: "/b", device: 1, inode: 2, size: 1, wallNanoseconds: 0)
        #expect(first != .full)
        #expect(second == .full)
        if case .recorded(let record) = catalog.register(path: "/a", device: 1, inode: 9, size: 1, wallNanoseconds: 0) {
            #expect(record.inode == 9)  // a replaced file keeps its id with the new inode
        } else {
            Issue.record("a replaced file should be recorded again")
        }
    }

    @Test("no one user fills the shared catalog or rewrites another user's records")
    func catalogShares() {
        var catalog = FileCatalog(capacity: 16)
        let flood = (0..<20).map { catalog.register(path: "/flood/\($0)", device: 1, inode: UInt64($0), size: 1, wallNanoseconds: 0, uid: 65_534) }
        // Seven eighths for the flooding user; the last eighth is kept for the others.
        #expect(flood.filter { $0 != .full }.count == 14)
        let job = (0..<3).map { catalog.register(path: "/data/\($0)", device: 2, inode: UInt64($0), size: 1, wallNanoseconds: 0, uid: 1_000) }
        #expect(job.prefix(2).allSatisfy { $0 != .full })
        #expect(job[2] == .full)  // now the catalog is full for everyone
        #expect(catalog.registerAnnounced(path: "/flood/x", size: 1, wallNanoseconds: 0, uid: 65_534) == .full)

        // A record changes identity at an open by the user who registered it or by root, not another's.
        guard case .recorded(let mine) = job[0] else { return }
        #expect(catalog.register(path: "/data/0", device: 9, inode: 99, size: 5, wallNanoseconds: 0, uid: 65_534) == .claimRefused(mine.id))
        #expect(catalog.matches(mine.id, device: 2, inode: 0))
        if case .recorded(let replaced) = catalog.register(path: "/data/0", device: 2, inode: 7, size: 5, wallNanoseconds: 0, uid: 1_000) {
            #expect(replaced.id == mine.id && replaced.inode == 7)
        } else {
            Issue.record("the owner's open of a replaced file should be recorded")
        }
        guard case .recorded = catalog.register(path: "/data/0", device: 2, inode: 8, size: 5, wallNanoseconds: 0, uid: 0) else {
            Issue.record("root's open of a replaced file should be recorded")
            return
        }
    }

    @Test("folders of opened files are listed once, as the client: regular files only, bounded, then known before their open")
    func folderListing() throws {
        let directory = TemporaryDirectory()
        let data = directory.file("data")
        try FileManager.default.createDirectory(atPath: data + "/sub", withIntermediateDirectories: true)
        for name in ["a.jpg", "b.jpg", "c.jpg", "d.jpg", ".hidden"] {
            #expect(FileManager.default.createFile(atPath: "\(data)/\(name)", contents: Data([1, 2, 3])))
        }
        try FileManager.default.createSymbolicLink(atPath: data + "/e.jpg", withDestinationPath: data + "/a.jpg")
        try FileManager.default.createSymbolicLink(atPath: data + "/dangling", withDestinationPath: data + "/nowhere")
        #expect(try DirectoryListing.regularFileNames(in: data, limit: 100).sorted() == ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"])
        #expect(try DirectoryListing.regularFileNames(in: data, limit: 2).count == 2)

        final class Collector: EventSink, @unchecked Sendable {
            var files: [FileRecord] = []
            func consume(_ batch: EventBatch) { files += batch.files }
        }
        let collector = Collector()
        let statistics = IngestStatistics()
        // Room for 8 files: at most 4 may come from listings.
        let lister = DirectoryLister(options: .init(nextSibling: false))  // siblings: the next test
        let pipeline = IngestPipeline(
            catalog: FileCatalog(capacity: 8), tableCapacity: 10, sinks: [collector], statistics: statistics,
            lister: lister, listOpenedFolders: true)
        lister.start()
        defer { lister.stop() }
        func open(_ path: String, inode: UInt64, uid: UInt32 = 0) {
            pipeline.ingest([AccessEvent(kind: .open, pid: 100, tid: 100, fd: 3, monotonicNanoseconds: 1, device: 8, inode: inode,
                                         offset: 0, length: 3, durationNanoseconds: 1, path: path)], uid: uid)
            pipeline.flush()
        }
        open(data + "/b.jpg", inode: 2)
        open(data + "/c.jpg", inode: 3)  // the same folder: not listed twice
        #expect(waitUntil { lister.statistics.listed == 1 })
        pipeline.registerListings()
        pipeline.flush()
        // a, d and e became known before any open; b and c were known already.
        let listed = Set(collector.files.dropFirst(2).map(\.path))
        #expect(listed == [data + "/a.jpg", data + "/d.jpg", data + "/e.jpg"])
        #expect(statistics.filesListed.value == 3)
        #expect(collector.files.dropFirst(2).allSatisfy { $0.inode == 0 && $0.size == 0 })
        // Its first open gives a listed file its identity under the same id.
        let idOfA = try #require(pipeline.catalog.id(path: data + "/a.jpg"))
        open(data + "/a.jpg", inode: 1)
        #expect(pipeline.catalog.id(path: data + "/a.jpg") == idOfA)
        #expect(pipeline.catalog.id(device: 8, inode: 1) == idOfA)

        // Another folder: only one more listed file fits in half the catalog.
        let more = directory.file("more")
        try FileManager.default.createDirectory(atPath: more, withIntermediateDirectories: true)
        for i in 0..<5 { #expect(FileManager.default.createFile(atPath: "\(more)/f\(i)", contents: Data([1]))) }
        open(more + "/f0", inode: 10)
        #expect(waitUntil { lister.statistics.listed == 2 })
        pipeline.registerListings()
        #expect(statistics.filesListed.value == 4)
        #expect(statistics.listingsSkipped.value == 3)
        #expect(statistics.catalogFull.value == 0)

        // A folder the client may not read is not listed for it (root may; uid 65534 may not).
        if geteuid() == 0 {
            let closed = directory.file("closed")
            try FileManager.default.createDirectory(atPath: closed, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
            #expect(FileManager.default.createFile(atPath: closed + "/x", contents: Data([1])))
            #expect(FileManager.default.createFile(atPath: closed + "/y", contents: Data([1])))
            open(closed + "/x", inode: 20, uid: 65534)
            #expect(waitUntil { lister.statistics.failed == 1 })
            #expect(lister.statistics.listed == 2)
        }
    }

    @Test("the lister stays one folder ahead: each folder the job enters, and the next sibling, listed once")
    func siblingListing() throws {
        let directory = TemporaryDirectory()
        for folder in ["c0", "c1", "c2"] {
            try FileManager.default.createDirectory(atPath: directory.file(folder), withIntermediateDirectories: true)
            for name in ["x", "y"] { #expect(FileManager.default.createFile(atPath: directory.file("\(folder)/\(name)"), contents: Data([1]))) }
        }
        #expect(FileManager.default.createFile(atPath: directory.file("c10"), contents: Data([1])))  // a file, not a folder
        let lister = DirectoryLister()
        lister.start()
        defer { lister.stop() }
        func listedFolders() -> Set<String> { Set(lister.takeListings().map { $0.directory }) }
        lister.request(folderOf: directory.file("c0/x"), uid: 0, gid: 0)
        #expect(waitUntil { lister.statistics.listed == 2 })
        #expect(listedFolders() == [directory.file("c0"), directory.file("c1")])
        lister.request(folderOf: directory.file("c1/x"), uid: 0, gid: 0)  // c1 was listed ahead: only c2 is new
        #expect(waitUntil { lister.statistics.listed == 3 })
        #expect(listedFolders() == [directory.file("c2")])
        lister.request(folderOf: directory.file("c2/y"), uid: 0, gid: 0)  // the last folder: nothing after it
        lister.request(folderOf: directory.file("c0/y"), uid: 0, gid: 0)  // entered before: not again
        usleep(100_000)
        #expect(lister.statistics.listed == 3 && lister.statistics.names == 6)
        #expect(listedFolders().isEmpty)
    }

    @Test("/proc/PID/stat: parent and start time, whatever the command name holds")
    func processStat() throws {
        let line = "4242 (a) (b c) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 0"
        #expect(ProcessStat.parse(line) == ProcessStat(parent: 17, startTicks: 987_654))
        #expect(ProcessStat.parse("4242 (cut) S 17") == nil)
        let own = try #require(ProcessStat.of(UInt32(getpid())))
        #expect(own.parent == UInt32(getppid()))
        #expect(own.startTicks > 0)
        #expect(ProcessStat.of(UInt32(getpid())) == own)  // the same process: the same start time
        #expect(ProcessStat.of(UInt32(Int32.max)) == nil)
    }

    @Test("ingest passes relax only while predictions are found cached and the pass's reads are warm")
    func pace() {
        let pace = IngestPace()
        #expect(pace.interval(reads: 100, cold: 0) == IngestPace.promptNanoseconds)  // prefetching has work: prompt
        pace.setCached(true)
        #expect(pace.interval(reads: 100, cold: 0) == IngestPace.relaxedNanoseconds)
        #expect(pace.interval(reads: 0, cold: 0) == IngestPace.relaxedNanoseconds)  // opens and closes only
        #expect(pace.interval(reads: 100, cold: 5) == IngestPace.relaxedNanoseconds)  // 1 in 20: noise of a busy machine
        #expect(pace.interval(reads: 100, cold: 6) == IngestPace.promptNanoseconds)  // the job waits for storage: at once
        pace.setCached(false)
        #expect(pace.interval(reads: 100, cold: 0) == IngestPace.promptNanoseconds)
    }

    @Test("retention keeps the newest events and a reopened store keeps its file ids")
    func retentionAndReopen() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("traces.db")
        do {
            let store = try TraceStore(path: path)
            let run = try store.beginRun(command: "t", source: "test")
            let file = FileRecord(id: 1, path: "/data/x", device: 1, inode: 1, size: 10, firstSeenWallNanoseconds: 0)
            let events = (0..<1_000).map {
                TraceEvent(fileID: 1, kind: .read, pid: 1, tid: 1, uid: 0, wallNanoseconds: Int64($0), monotonicNanoseconds: UInt64($0),
                           offset: 0, length: 1, durationNanoseconds: 1)
            }
            try store.write(files: [file], events: events[...], runID: run)
            #expect(try store.applyRetention(maxAgeDays: 0, maxEvents: 100) == 900)
            // Events stamped at 1970 are older than any age limit; the newest stays, so
            // that ids keep rising (SQLite numbers a new row after the largest id left).
            #expect(try store.applyRetention(maxAgeDays: 1, maxEvents: 0) == 99)
            try store.write(files: [], events: events[..<1], runID: run)
            #expect(try store.eventRows(runID: run, after: 0, limit: 10).map(\.id) == [1_000, 1_001])
            #expect(try store.integrityCheck() == "ok")
        }
        let reopened = try TraceStore(path: path)
        #expect(try reopened.files(limit: 10).map(\.path) == ["/data/x"])
        let catalog = FileCatalog(capacity: 10, existing: try reopened.files(limit: 10))
        #expect(catalog.id(path: "/data/x") == 1)
    }

    @Test("events written 20 rows to a statement keep their order, values and consecutive ids, with the run's span")
    func multiRowInsert() throws {
        let directory = TemporaryDirectory()
        let store = try TraceStore(path: directory.file("traces.db"))
        let run = try store.beginRun(command: "t", source: "test")
        let file = FileRecord(id: 1, path: "/data/x", device: 1, inode: 1, size: 10, firstSeenWallNanoseconds: 0)
        // 47 = two statements of 20 and seven of one; every other event has a worker and an epoch.
        let events = (0..<47).map { (i: Int) -> TraceEvent in
            let tagged = i % 2 == 0
            let kind: AccessKind = i % 3 == 0 ? .open : .read
            return TraceEvent(fileID: 1, kind: kind, pid: UInt32(i + 100), tid: 7, uid: 3,
                              workerID: tagged ? Int32(i) : nil, epoch: tagged ? UInt32(i / 2) : nil,
                              wallNanoseconds: Int64(1_000 + i), monotonicNanoseconds: UInt64(i), offset: UInt64(i * 4_096),
                              length: 4_096, durationNanoseconds: UInt32(i))
        }
        try store.write(files: [file], events: events[...], runID: run)
        try store.write(files: [], events: events[..<3], runID: run)
        let rows = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT id, pid, worker_id, epoch, time_ns, offset, duration_ns, kind FROM events ORDER BY id")
        }
        #expect(rows.count == 50)
        #expect(rows.map { $0[0] as Int64 } == Array(1...50))
        for (row, event) in zip(rows, events + events[..<3]) {
            #expect(row[1] as Int64 == Int64(event.pid) && row[4] as Int64 == event.wallNanoseconds)
            #expect(row[2] as Int64? == event.workerID.map(Int64.init) && row[3] as Int64? == event.epoch.map(Int64.init))
            #expect(row[5] as Int64 == Int64(event.offset) && row[6] as Int64 == Int64(event.durationNanoseconds))
            #expect(row[7] as Int64 == Int64(event.kind.rawValue))
        }
        let span = try store.read { db in try Row.fetchOne(db, sql: "SELECT first_event_id, last_event_id FROM run_spans WHERE run_id = ?", arguments: [run]) }
        #expect(span.map { [$0[0], $0[1]] as [Int64] } == [1, 50])
    }

    @Test("the last run of the same command that found a data-set tree names its root; other commands and later runs do not count")
    func lastDataSetRun() throws {
        let directory = TemporaryDirectory()
        let store = try TraceStore(path: directory.file("traces.db"))
        func run(_ command: String, root: String?) throws -> Int64 {
            let id = try store.beginRun(command: command, source: "run")
            let tree = root.map { "\"treeRoot\": \"\($0)\"" } ?? "\"treeFiles\": 0"
            try store.saveResult("{\"prefetch\": {\(tree)}}", runID: id)
            return id
        }
        _ = try run("python train.py", root: "/data/a")
        let b = try run("python train.py", root: "/data/b")
        _ = try run("python train.py", root: nil)  // a run that found none does not hide the one before
        let c = try run("python eval.py", root: "/data/c")
        let current = try store.beginRun(command: "python train.py", source: "run")
        let later = try run("python train.py", root: "/data/d")
        #expect(try store.lastDataSetRun(command: "python train.py", source: "run", before: current).map { [String($0.runID), $0.root] } == [String(b), "/data/b"])
        #expect(try store.lastDataSetRun(command: "python eval.py", source: "run", before: current).map { [String($0.runID), $0.root] } == [String(c), "/data/c"])
        #expect(try store.lastDataSetRun(command: "python train.py", source: "trace", before: current) == nil)
        #expect(try store.lastDataSetRun(command: "python other.py", source: "run", before: later) == nil)
    }

    @Test("a run's files in the order of their first open, each once, by the shared monotonic clock; other runs' and other kinds' events do not count")
    func firstOpenOrder() throws {
        let directory = TemporaryDirectory()
        let store = try TraceStore(path: directory.file("traces.db"))
        let files = (1...6).map { FileRecord(id: FileID($0), path: "/data/\($0)", device: 1, inode: UInt64($0), size: 1, firstSeenWallNanoseconds: 0) }
        func event(_ file: FileID, _ kind: AccessKind, at mono: UInt64, pid: UInt32 = 10) -> TraceEvent {
            TraceEvent(fileID: file, kind: kind, pid: pid, tid: pid, uid: 0, wallNanoseconds: Int64(mono), monotonicNanoseconds: mono,
                       offset: 0, length: 1, durationNanoseconds: 0)
        }
        let first = try store.beginRun(command: "job", source: "run")
        // Two workers' batches reach the store out of time order; file 2 is opened again
        // in a second epoch; a read of file 6 and file 1's open in another run count not.
        try store.write(files: files, events: [event(3, .open, at: 30, pid: 11), event(6, .read, at: 5), event(2, .open, at: 40, pid: 11)][...], runID: first)
        try store.write(files: [], events: [event(5, .open, at: 10), event(4, .open, at: 20), event(2, .open, at: 90), event(5, .close, at: 95)][...], runID: first)
        let second = try store.beginRun(command: "job", source: "run")
        try store.write(files: [], events: [event(1, .open, at: 1)][...], runID: second)
        #expect(try store.firstOpenOrder(runID: first, limit: 100) == [5, 4, 3, 2])
        #expect(try store.firstOpenOrder(runID: first, limit: 2) == [5, 4])
        #expect(try store.firstOpenOrder(runID: second, limit: 100) == [1])
        #expect(try store.firstOpenOrder(runID: second + 1, limit: 100) == [])
        // Retention takes the oldest events first: with the first run's start gone, what
        // is left of it is no first epoch's order.
        _ = try store.applyRetention(maxAgeDays: 0, maxEvents: 5)
        #expect(try store.firstOpenOrder(runID: first, limit: 100) == [])
        #expect(try store.firstOpenOrder(runID: second, limit: 100) == [1])
    }

    @Test("a run's opens pass by pass: each file's k-th open in pass k, in time order, within the bounds")
    func openPasses() throws {
        let directory = TemporaryDirectory()
        let store = try TraceStore(path: directory.file("traces.db"))
        let files = (1...4).map { FileRecord(id: FileID($0), path: "/data/\($0)", device: 1, inode: UInt64($0), size: 1, firstSeenWallNanoseconds: 0) }
        func open(_ file: FileID, at mono: UInt64, pid: UInt32 = 10) -> TraceEvent {
            TraceEvent(fileID: file, kind: .open, pid: pid, tid: pid, uid: 0, wallNanoseconds: Int64(mono), monotonicNanoseconds: mono,
                       offset: 0, length: 1, durationNanoseconds: 0)
        }
        let run = try store.beginRun(command: "job", source: "run")
        // Three epochs over four files, each in its own order; two workers' batches reach
        // the store out of time order; a read is no open; file 4 is left out of epoch 3.
        try store.write(files: files, events: [open(3, at: 20, pid: 11), open(1, at: 10), open(2, at: 30), open(4, at: 40)][...], runID: run)
        try store.write(files: [], events: [open(4, at: 110), open(2, at: 120, pid: 11), open(1, at: 130), open(3, at: 140)][...], runID: run)
        var read = open(1, at: 205)
        read.kind = .read
        try store.write(files: [], events: [open(2, at: 210), read, open(3, at: 220), open(1, at: 230)][...], runID: run)
        let all = try store.openPasses(runID: run, passes: 8, limit: 100, maxEvents: 100)
        #expect(all.orders == [[1, 3, 2, 4], [4, 2, 1, 3], [2, 3, 1]])
        #expect(all.whole && all.epochs == 3)
        // Each bound cuts: the orders up to it, and no epoch count.
        let twoPasses = try store.openPasses(runID: run, passes: 2, limit: 100, maxEvents: 100)
        #expect(twoPasses.orders == [[1, 3, 2, 4], [4, 2, 1, 3]] && !twoPasses.whole && twoPasses.epochs == nil)
        let sixFiles = try store.openPasses(runID: run, passes: 8, limit: 6, maxEvents: 100)
        #expect(sixFiles.orders == [[1, 3, 2, 4], [4, 2]] && !sixFiles.whole)
        // The first eight events: two passes.
        let eightEvents = try store.openPasses(runID: run, passes: 8, limit: 100, maxEvents: 8)
        #expect(eightEvents.orders == [[1, 3, 2, 4], [4, 2, 1, 3]] && !eightEvents.whole)
        // Bounds the run fits exactly cut nothing.
        #expect(try store.openPasses(runID: run, passes: 3, limit: 11, maxEvents: 12).whole)
        #expect(try store.openPasses(runID: run + 1, passes: 8, limit: 100, maxEvents: 100) == OpenPasses(orders: [], whole: false))
        // A file opened once a batch makes thin passes: not epochs.
        #expect(OpenPasses(orders: [[1, 2, 3, 4], [4, 3, 2, 1], [1], [1]], whole: true).epochs == 2)
        #expect(OpenPasses(orders: [[1, 2, 3, 4], [4, 3]], whole: true).epochs == 2)
    }

    @Test("a catalog that loads only part of the store numbers new files after the store's largest id")
    func fileIDsAfterPartialLoad() throws {
        let directory = TemporaryDirectory()
        let store = try TraceStore(path: directory.file("traces.db"))
        let run = try store.beginRun(command: "t", source: "test")
        let files = (1...5).map { FileRecord(id: FileID($0), path: "/data/\($0)", device: 1, inode: UInt64($0), size: 1, firstSeenWallNanoseconds: 0) }
        try store.write(files: files, events: [], runID: run)
        #expect(try store.maxFileID() == 5)
        // The catalog's bound lets it load two of the five.
        var catalog = FileCatalog(capacity: 4, existing: try store.files(limit: 2), maxID: try store.maxFileID())
        guard case .recorded(let new) = catalog.register(path: "/data/new", device: 1, inode: 99, size: 1, wallNanoseconds: 0) else {
            Issue.record("a new file should be recorded")
            return
        }
        #expect(new.id == 6)  // not 3, which the store's /data/3 has
    }
}
