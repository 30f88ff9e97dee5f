import Foundation
import Glibc
@testable import GoFetchConfig
@testable import GoFetchEvents
@testable import GoFetchExecute
@testable import GoFetchPredict
@testable import GoFetchSchedule
@testable import GoFetchSystem
import Logging
import SystemPackage
import Testing

/// Writes `size` bytes, syncs, and drops the file's pages, so it starts cold.
func coldFile(_ path: String, size: Int) throws {
    var generator = SplitMix64(seed: UInt64(size))
    let bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    let fd = try FileDescriptor.open(path, .readOnly)
    defer { try? fd.close() }
    fsync(fd.rawValue)
    try Syscall.adviseDontNeed(fd, offset: 0, length: 0)
}

/// Writes `size` bytes and reads them back, so the file starts resident.
func warmFile(_ path: String, size: Int) throws {
    try coldFile(path, size: size)
    _ = try Data(contentsOf: URL(fileURLWithPath: path))
}

/// Resident pages of a whole file, measured with cachestat.
func residentPages(_ path: String) throws -> UInt64 {
    let fd = try FileDescriptor.open(path, .readOnly)
    defer { try? fd.close() }
    return try Syscall.residentPages(fd, offset: 0, length: 0)
}

func request(_ path: String, file: FileID = 1, uid: UInt32 = getuid(), gid: UInt32 = getgid(), offset: UInt64 = 0, length: UInt64 = 0, confidence: Double = 0.9) -> PrefetchRequest {
    PrefetchRequest(fileID: file, path: path, uid: uid, gid: gid, offset: offset, length: length,
                    confidence: confidence, deadline: nil, predictor: .markov, queuedAt: 0)
}

@Suite("executor", .serialized)
struct ExecutorTests {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)

    func executor(_ method: PrefetchMethod? = nil) -> PrefetchExecutor {
        PrefetchExecutor(threads: 1, capacity: 8, method: method, logger: .test, onResult: { _ in })
    }

    @Test("a cold file becomes resident, in full, with each method", arguments: [PrefetchMethod?.none, .fadvise, .readahead, .read])
    func warms(method: PrefetchMethod?) throws {
        let directory = TemporaryDirectory()
        let path = directory.file("sample.bin")
        try coldFile(path, size: 3 << 20)  // larger than one 128 KiB readahead window: slices must add up
        #expect(try residentPages(path) == 0)
        let result = executor(method).perform(request(path), buffer: buffer)
        #expect(result.outcome == .completed)
        #expect(try residentPages(path) == 768)
        #expect(result.bytes == 3 << 20)
        buffer.deallocate()
    }

    @Test("a FIFO or a device node is refused without being opened; the threads never wait on one, and a give-back refuses it too")
    func nonRegularFiles() throws {
        let directory = TemporaryDirectory()
        let fifo = directory.file("fifo")
        #expect(mkfifo(fifo, 0o644) == 0)
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var outcomes: [PrefetchOutcome] = []
        }
        let results = Results()
        let pool = PrefetchExecutor(threads: 1, capacity: 8, method: nil, logger: .test) { result in
            results.lock.withLock { results.outcomes.append(result.outcome) }
        }
        pool.start()
        let plain = directory.file("plain")
        try coldFile(plain, size: 64 << 10)
        // One thread: were the FIFO's open to wait for a writer, nothing after it would finish.
        for (index, path) in [fifo, "/dev/zero", plain].enumerated() { pool.submit(request(path, file: FileID(index + 1))) }
        #expect(waitUntil(seconds: 10) { results.lock.withLock { results.outcomes.count } == 3 })
        pool.stop()
        #expect(results.outcomes == [.failed, .failed, .completed])
        #expect(!PageCacheWarmer.giveBack(fifo, uid: getuid(), gid: getgid(), groups: []))
        #expect(PageCacheWarmer.giveBack(plain, uid: getuid(), gid: getgid(), groups: []))
        #expect(throws: Errno.invalidArgument) { try Syscall.openRegularFile(fifo) }
        #expect(throws: Errno.invalidArgument) { try Syscall.openRegularFile("/dev/zero") }  // refused before any open
        buffer.deallocate()
    }

    @Test("a file whose name is not UTF-8 is listed, announced and warmed by its own bytes")
    func nonUTF8Name() throws {
        let directory = TemporaryDirectory()
        let raw = Array(directory.path.utf8) + Array("/caf".utf8) + [0xE9] + Array(".bin".utf8)  // Latin-1 "café.bin"
        let created = raw.map { CChar(bitPattern: $0) } + [0]
        let fd = Glibc.open(created, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
        #expect(fd >= 0)
        let block = [UInt8](repeating: 7, count: 64 << 10)
        #expect(write(fd, block, block.count) == block.count)
        fsync(fd)
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        Glibc.close(fd)

        // The lister names it by its bytes.
        let names = try DirectoryListing.regularFileNames(in: directory.path, limit: 10)
        #expect(names.count == 1)
        let path = directory.path + "/" + names[0]
        #expect(PathName.bytes(path) == raw)

        // A client's open record of it decodes, and the executor warms that file.
        var encoder = WireEncoder(pid: 9)
        encoder.append(AccessEvent(kind: .open, pid: 9, tid: 9, fd: 3, monotonicNanoseconds: 1, device: 1, inode: 2,
                                   offset: 0, length: 10, durationNanoseconds: 1, path: path))
        let message = encoder.finish()
        var decoder = WireDecoder()
        var events: [AccessEvent] = []
        _ = message.withUnsafeBytes { decoder.decode($0, into: &events) }
        let announced = try #require(events.first?.path)
        let result = executor().perform(request(announced), buffer: buffer)
        #expect(result.outcome == .completed)
        let check = Glibc.open(created, O_RDONLY | O_CLOEXEC)
        defer { Glibc.close(check) }
        #expect(try Syscall.residentPages(FileDescriptor(rawValue: check), offset: 0, length: 0) == 16)
        buffer.deallocate()
    }

    @Test("a range warms that range, not the rest of the file")
    func range() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("shard.bin")
        try coldFile(path, size: 8 << 20)
        let result = executor(.read).perform(request(path, offset: 4 << 20, length: 1 << 20), buffer: buffer)
        #expect(result.outcome == .completed)
        let fd = try FileDescriptor.open(path, .readOnly)
        defer { try? fd.close() }
        #expect(try Syscall.residentPages(fd, offset: 4 << 20, length: 1 << 20) == 256)
        #expect(try Syscall.residentPages(fd, offset: 0, length: 4 << 20) <= 32)  // at most the kernel's own readahead
        buffer.deallocate()
    }

    @Test("a resident file is skipped, a deleted one is missing, an unreadable one is denied")
    func outcomes() throws {
        let directory = TemporaryDirectory()
        let warm = directory.file("warm.bin")
        try warmFile(warm, size: 64 << 10)
        #expect(executor().perform(request(warm), buffer: buffer).outcome == .skipped)

        let gone = directory.file("gone.bin")
        try coldFile(gone, size: 64 << 10)
        try FileManager.default.removeItem(atPath: gone)
        #expect(executor().perform(request(gone), buffer: buffer).outcome == .missing)

        // The client may not read it: as root, a file of root's with mode 0600 for
        // the client `nobody`; otherwise a file with no permissions at all.
        let secret = directory.file("secret.bin")
        try coldFile(secret, size: 64 << 10)
        let client: UInt32 = geteuid() == 0 ? 65_534 : getuid()
        chmod(secret, geteuid() == 0 ? 0o600 : 0o000)
        let denied = executor().perform(request(secret, uid: client, gid: client), buffer: buffer)
        #expect(denied.outcome == .denied)
        #expect(try residentPages(secret) == 0)
        buffer.deallocate()
    }

    @Test("a file the client reads through a supplementary group is warmed with that group, and only with it",
          .enabled(if: geteuid() == 0, "acting as another user and group needs root"))
    func supplementaryGroups() throws {
        let directory = TemporaryDirectory()
        let shared = directory.file("shared.bin")
        try coldFile(shared, size: 64 << 10)
        let project: UInt32 = 4_242  // the data set's group; the client `nobody` is in it only as a supplementary group
        chown(shared, 0, project)
        chmod(shared, 0o640)
        chmod(directory.path, 0o755)
        var refused = request(shared, uid: 65_534, gid: 65_534)
        refused.groups = [65_533]
        #expect(executor().perform(refused, buffer: buffer).outcome == .denied)
        #expect(try residentPages(shared) == 0)
        var allowed = refused
        allowed.groups = [65_533, project]
        #expect(executor().perform(allowed, buffer: buffer).outcome == .completed)
        #expect(try residentPages(shared) == 16)
        // The group was lent for that request only.
        #expect(executor().perform(refused, buffer: buffer).outcome == .denied)
        buffer.deallocate()
    }

    @Test("a client's path through /proc's magic links, or into a pseudo file system, is refused: nothing is opened or listed past folders the client cannot enter",
          .enabled(if: geteuid() == 0, "acting as another user needs root"))
    func magicLinks() throws {
        // A process of root's works in a folder `nobody` cannot reach (the scratch
        // folder is 0700); the folder and its file themselves are open to all.
        let directory = TemporaryDirectory()
        let inner = directory.file("inner")
        #expect(mkdir(inner, 0o755) == 0)
        let path = inner + "/data.bin"
        try coldFile(path, size: 64 << 10)
        chmod(path, 0o644)
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/bin/sleep")
        holder.arguments = ["30"]
        holder.currentDirectoryURL = URL(fileURLWithPath: inner)
        try holder.run()
        defer { kill(holder.processIdentifier, SIGKILL); holder.waitUntilExit() }
        let nobody: UInt32 = 65_534
        // Directly, `nobody` is refused at the 0700 folder.
        #expect(executor().perform(request(path, uid: nobody, gid: nobody), buffer: buffer).outcome == .denied)
        // Through the holder's working directory, which /proc resolves without that folder.
        let magic = "/proc/\(holder.processIdentifier)/cwd/data.bin"
        #expect(executor().perform(request(magic, uid: nobody, gid: nobody), buffer: buffer).outcome != .completed)
        #expect(executor().perform(request(magic), buffer: buffer).outcome != .completed)
        #expect(try residentPages(path) == 0)
        #expect(throws: Errno.self) { try Syscall.openRegularFile(magic) }
        // The lister neither: the folder is not listed through the link, as anyone.
        #expect(throws: Errno.self) { try DirectoryListing.regularFileNames(in: "/proc/\(holder.processIdentifier)/cwd", limit: 10) }
        #expect(throws: Errno.self) { try DirectoryListing.regularFileNames(in: "/proc/\(holder.processIdentifier)/root/tmp", limit: 10) }
        // A regular file of a pseudo file system is refused as denied, before any read.
        #expect(throws: Errno.permissionDenied) { try Syscall.openRegularFile("/proc/self/status") }
        #expect(throws: Errno.permissionDenied) { try Syscall.openRegularFile("/sys/kernel/mm/transparent_hugepage/enabled") }
        #expect(throws: Errno.permissionDenied) { try DirectoryListing.regularFileNames(in: "/sys/kernel/mm", limit: 10) }
        // An ordinary path still works, as root and as a client who may read it.
        #expect(try DirectoryListing.regularFileNames(in: inner, limit: 10) == ["data.bin"])
        #expect(executor().perform(request(path), buffer: buffer).outcome == .completed)
        buffer.deallocate()
    }

    @Test("client groups come from /proc/PID/status, and only while the pid runs as the events' user")
    func clientGroups() throws {
        let status = "Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\nGroups:\t4 24 4242 \nNgid:\t0\n"
        #expect(ProcessCredentials.parse(status) == ProcessCredentials(uids: [1000, 1000, 1000, 1000], gids: [100, 100, 100, 100], groups: [4, 24, 4242]))
        #expect(ProcessCredentials.parse("Name:\tx\n") == nil)
        let own = try #require(ProcessCredentials.of(UInt32(getpid())))
        #expect(own.uids.first == getuid() && own.gids.first == getgid())
        let count = Int(getgroups(0, nil))
        var mine = [gid_t](repeating: 0, count: count)
        _ = getgroups(Int32(count), &mine)
        let cache = ClientGroups()
        #expect(Set(cache.groups(pid: UInt32(getpid()), uid: getuid(), gid: getgid(), now: 1)) == Set(mine.map { UInt32($0) }))
        // Another uid than the process runs as: it is not that client (a reused pid): no groups.
        let other = ClientGroups()
        #expect(other.groups(pid: UInt32(getpid()), uid: getuid() &+ 1, gid: getgid(), now: 1).isEmpty)
        // Nor from the cache: an answer for one user is never given to another asking about the same pid.
        if !mine.isEmpty {
            #expect(cache.groups(pid: UInt32(getpid()), uid: getuid() &+ 1, gid: getgid(), now: 2).isEmpty)
        }
    }

    @Test("the executor takes a user's warming requests only while fewer than a window of them wait")
    func room() {
        let pool = PrefetchExecutor(threads: 4, capacity: 256, method: nil, logger: .test, onResult: { _ in })
        // Not started: the window starts at one read.
        #expect(pool.hasRoom(for: 7))
        #expect(pool.submit(request("/nonexistent/a", file: 1, uid: 7)))
        #expect(!pool.hasRoom(for: 7))
        // Another user's requests are not held behind the first's.
        #expect(pool.hasRoom(for: 8))
        // The queue itself still takes more (a give-back does not wait on the window).
        #expect(pool.submit(request("/nonexistent/b", file: 2, uid: 7)))
        #expect(pool.pending == 2)
    }

    @Test("a result wakes the engine only when at most half a window of the user's requests wait")
    func runsLow() {
        let pool = PrefetchExecutor(threads: 4, capacity: 256, method: nil, logger: .test, onResult: { _ in })
        // Not started: the window is one read. The thread that reports a result takes the
        // next waiting request itself, so one waiting is none left: the engine must refill.
        #expect(pool.runsLow(for: 7))
        #expect(pool.submit(request("/nonexistent/a", file: 1, uid: 7)))
        #expect(pool.runsLow(for: 7))
        // Two waiting leave one, more than half a window of one.
        #expect(pool.submit(request("/nonexistent/b", file: 2, uid: 7)))
        #expect(!pool.runsLow(for: 7))
        #expect(pool.runsLow(for: 8))
        // Give-backs do not count: they are not reads the threads go on with.
        var giveBack = request("/nonexistent/c", file: 3, uid: 8)
        giveBack.purpose = .giveBack
        #expect(pool.submit(giveBack))
        #expect(pool.runsLow(for: 8))
    }

    @Test("requests run on the pool and report through the callback")
    func pool() throws {
        let directory = TemporaryDirectory()
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var outcomes: [PrefetchOutcome] = []
        }
        let results = Results()
        let pool = PrefetchExecutor(threads: 2, capacity: 2, method: nil, logger: .test) { result in
            results.lock.lock()
            results.outcomes.append(result.outcome)
            results.lock.unlock()
        }
        var accepted = 0
        for i in 0..<6 {
            let path = directory.file("f\(i)")
            try coldFile(path, size: 256 << 10)
            if pool.submit(request(path, file: FileID(i + 1))) { accepted += 1 }
        }
        // Not started yet: the queue holds two, the rest were refused and counted.
        #expect(accepted == 2)
        #expect(pool.statistics.queueFull.value == 4)
        pool.start()
        #expect(waitUntil { results.lock.withLock { results.outcomes.count } == 2 })
        pool.stop()
        #expect(results.outcomes == [.completed, .completed])
        buffer.deallocate()
    }
}

@Suite("scheduler")
struct SchedulerTests {
    func files(_ id: FileID) -> (path: String, size: UInt64)? {
        id <= 100 ? ("/data/\(id)", 1 << 20) : nil
    }

    func options(_ change: (inout PrefetchScheduler.Options) -> Void = { _ in }) -> PrefetchScheduler.Options {
        var options = PrefetchScheduler.Options()
        options.operationsPerSecond = 1_000_000
        options.pressureThreshold = 101  // this machine's pressure must not decide the test
        change(&options)
        return options
    }

    func drain(_ scheduler: PrefetchScheduler, now: UInt64) -> [PrefetchRequest] {
        var released: [PrefetchRequest] = []
        scheduler.release(now: now) { released.append($0); return true }
        return released
    }

    @Test("threshold, unknown files, duplicates and the size cap")
    func filters() {
        let scheduler = PrefetchScheduler(options: options { $0.maxRequestBytes = 300_000 }, now: 0)
        scheduler.offer([
            Prediction(fileID: 1, confidence: 0.9, predictor: .markov),
            Prediction(fileID: 2, confidence: 0.2, predictor: .markov),
            Prediction(fileID: 999, confidence: 0.9, predictor: .markov),
            Prediction(fileID: 1, confidence: 0.9, predictor: .markov),
        ], uid: 0, gid: 0, now: 1, file: files)
        let released = drain(scheduler, now: 1)
        #expect(released.map(\.fileID) == [1])
        #expect(released.first?.length == 300_000)
        #expect(scheduler.statistics.belowThreshold.value == 1)
        #expect(scheduler.statistics.unknownFiles.value == 1)
        #expect(scheduler.statistics.duplicates.value == 1)
        // Once the job has read the file, the next epoch may prefetch it again at once.
        scheduler.consumed(1)
        scheduler.offer([Prediction(fileID: 1, confidence: 0.9, predictor: .markov)], uid: 0, gid: 0, now: 2, file: files)
        #expect(drain(scheduler, now: 2).map(\.fileID) == [1])
        #expect(scheduler.statistics.duplicates.value == 1)
        // After the de-duplication window the same file may go again.
        scheduler.offer([Prediction(fileID: 1, confidence: 0.9, predictor: .markov)], uid: 0, gid: 0, now: 31_000_000_000, file: files)
        #expect(drain(scheduler, now: 31_000_000_000).count == 1)
    }

    @Test("an exact order withdraws the tree's guesses: its queued requests go, and what it prefetched no longer holds the budget")
    func withdrawTree() {
        // A budget of 3 files: the tree's first 3 go out, the rest wait.
        let scheduler = PrefetchScheduler(options: options { $0.memoryBudget = 3 << 20 }, now: 0)
        scheduler.offer((1...6).map { Prediction(fileID: FileID($0), confidence: 0.7, predictor: .dataSetTree) }, uid: 0, gid: 0, now: 1, file: files)
        #expect(drain(scheduler, now: 1).map(\.fileID) == [1, 2, 3])
        #expect(scheduler.queuedCount == 3 && scheduler.outstandingBytes == 3 << 20)
        scheduler.offer([Prediction(fileID: 10, confidence: 1, predictor: .lookahead)], uid: 0, gid: 0, now: 2, file: files)
        #expect(drain(scheduler, now: 2).isEmpty)  // at the budget
        #expect(scheduler.withdraw(.dataSetTree) == 3)
        #expect(scheduler.statistics.withdrawn.value == 3 && scheduler.outstandingBytes == 0)
        #expect(drain(scheduler, now: 3).map(\.fileID) == [10])
        #expect(scheduler.queuedCount == 0)
    }

    @Test("a file of unknown size (announced, never opened) is still prefetched, up to the cap")
    func unknownSize() {
        let scheduler = PrefetchScheduler(options: options { $0.maxRequestBytes = 4 << 20 }, now: 0)
        scheduler.offer([Prediction(fileID: 7, confidence: 1, predictor: .lookahead)], uid: 0, gid: 0, now: 1) { _ in ("/data/7", 0) }
        #expect(drain(scheduler, now: 1).map(\.length) == [4 << 20])
    }

    @Test("heap releases by confidence then deadline; fifo by arrival")
    func policies() {
        let predictions = [
            Prediction(fileID: 1, confidence: 0.7, deadline: 50, predictor: .markov),
            Prediction(fileID: 2, confidence: 0.9, deadline: 90, predictor: .markov),
            Prediction(fileID: 3, confidence: 0.9, deadline: 10, predictor: .markov),
        ]
        let heap = PrefetchScheduler(options: options(), now: 0)
        heap.offer(predictions, uid: 0, gid: 0, now: 1, file: files)
        #expect(drain(heap, now: 1).map(\.fileID) == [3, 2, 1])
        let fifo = PrefetchScheduler(options: options { $0.policy = .fifo }, now: 0)
        fifo.offer(predictions, uid: 0, gid: 0, now: 1, file: files)
        #expect(drain(fifo, now: 1).map(\.fileID) == [1, 2, 3])
    }

    @Test("heap: the data-set tree's requests go after any other predictor's, whatever their confidence")
    func treeLast() {
        let scheduler = PrefetchScheduler(options: options(), now: 0)
        scheduler.offer([Prediction(fileID: 1, confidence: 0.9, predictor: .dataSetTree),
                         Prediction(fileID: 2, confidence: 0.95, predictor: .dataSetTree)], uid: 0, gid: 0, now: 1, file: files)
        scheduler.offer([Prediction(fileID: 3, confidence: 0.61, deadline: 5, predictor: .pattern),
                         Prediction(fileID: 4, confidence: 0.7, predictor: .markov)], uid: 0, gid: 0, now: 2, file: files)
        #expect(drain(scheduler, now: 2).map(\.fileID) == [4, 3, 2, 1])
    }

    @Test("a user without room at the executor passes its turn; the others' requests still go")
    func roomPerUser() {
        let scheduler = PrefetchScheduler(options: options(), now: 0)
        scheduler.offer([Prediction(fileID: 1, confidence: 0.9, predictor: .lookahead)], uid: 7, gid: 7, now: 1, file: files)
        scheduler.offer([Prediction(fileID: 2, confidence: 0.9, predictor: .lookahead)], uid: 8, gid: 8, now: 1, file: files)
        var released: [PrefetchRequest] = []
        scheduler.release(now: 1, hasRoom: { $0 != 7 }) { released.append($0); return true }
        #expect(released.map(\.fileID) == [2])
        #expect(scheduler.queuedCount == 1)
        #expect(drain(scheduler, now: 2).map(\.fileID) == [1])
    }

    @Test("a range larger than a piece goes out in pieces, in order, covering it once")
    func pieces() {
        let scheduler = PrefetchScheduler(options: options { $0.maxRequestBytes = 3_500_000 }, now: 0)
        scheduler.offer([Prediction(fileID: 9, offset: 100, confidence: 0.9, predictor: .markov)], uid: 0, gid: 0, now: 1) { _ in ("/data/9", 10 << 20) }
        let released = drain(scheduler, now: 1)
        let piece = Prediction.pieceBytes
        #expect(released.map(\.offset) == [100, 100 + piece, 100 + 2 * piece, 100 + 3 * piece])
        #expect(released.map(\.length) == [piece, piece, piece, 3_500_000 - 3 * piece])
        // Sent once: the same range offered again is a duplicate.
        scheduler.offer([Prediction(fileID: 9, offset: 100, confidence: 0.9, predictor: .markov)], uid: 0, gid: 0, now: 2) { _ in ("/data/9", 10 << 20) }
        #expect(drain(scheduler, now: 2).isEmpty)
    }

    @Test("the ops/s token bucket paces releases")
    func rate() {
        let scheduler = PrefetchScheduler(options: options { $0.operationsPerSecond = 10 }, now: 0)
        scheduler.offer((1...10).map { Prediction(fileID: $0, confidence: 0.9, predictor: .markov) }, uid: 0, gid: 0, now: 0, file: files)
        #expect(drain(scheduler, now: 0).count == 1)  // burst of one tenth of a second
        #expect(drain(scheduler, now: 500_000_000).count == 1)  // the bucket holds at most a tenth of a second
        #expect(drain(scheduler, now: 600_000_000).count == 1)
        #expect(scheduler.statistics.rateWaits.value >= 2)
    }

    @Test("the memory budget holds releases until the job reads what was prefetched")
    func budget() {
        let scheduler = PrefetchScheduler(options: options { $0.memoryBudget = 3 << 20 }, now: 0)
        scheduler.offer((1...6).map { Prediction(fileID: $0, confidence: 0.9, predictor: .markov) }, uid: 0, gid: 0, now: 0, file: files)
        let first = drain(scheduler, now: 0)
        #expect(first.count == 3)
        #expect(scheduler.outstandingBytes == 3 << 20)
        #expect(drain(scheduler, now: 1).isEmpty)
        #expect(scheduler.statistics.budgetWaits.value >= 1)
        scheduler.consumed(first[0].fileID)
        #expect(drain(scheduler, now: 2).count == 1)
        // A prefetch that found the file resident loaded nothing: its reservation goes.
        let skipped = PrefetchResult(request: first[1], outcome: .skipped, bytes: 0, method: nil, issuedAt: 0, completedAt: 0)
        scheduler.completed(skipped)
        #expect(scheduler.outstandingBytes == 2 << 20)
    }

    @Test("while files found whole in the cache are found there again, fewer of their offers are checked; one loaded again (evicted) checks every one again, first loads do not; a cold read has the next one checked")
    func residencySampling() {
        let scheduler = PrefetchScheduler(options: options { $0.maxCheckInterval = 64 }, now: 0)
        var next = 0
        /// Offers `count` files (of 200 warmed ones in turn, or new ones) and reports each
        /// released one as found resident (or loaded); returns how many were released.
        func round(_ count: Int, outcome: PrefetchOutcome = .skipped, new: Bool = false) -> Int {
            let offered = (0..<count).map { _ in
                defer { next += 1 }
                return Prediction(fileID: new ? FileID(10_000 + next) : FileID(1 + next % 200), confidence: 0.9, predictor: .markov)
            }
            scheduler.offer(offered, uid: 0, gid: 0, now: 1) { ("/data/\($0)", 64 << 10) }
            let released = drain(scheduler, now: 1)
            for prediction in offered { scheduler.consumed(prediction.fileID) }  // the job reads them all
            for request in released {
                scheduler.completed(PrefetchResult(request: request, outcome: outcome, bytes: outcome == .completed ? request.length : 0,
                                                   method: nil, issuedAt: 1, completedAt: 2))
            }
            return released.count
        }
        // First loads of 200 files: each is sent, and none says the cache lost anything.
        #expect(round(200, outcome: .completed) == 200)
        #expect(scheduler.checkEvery == 1)
        #expect(round(16) == 16)
        #expect(scheduler.checkEvery == 2)
        #expect(round(32) == 16)
        #expect(scheduler.statistics.assumedResident.value == 16)
        #expect(scheduler.checkEvery == 4)
        for _ in 0..<20 { _ = round(64) }
        #expect(scheduler.checkEvery == 64 && scheduler.findsCached)
        // Files never found resident are always sent; loading them for the first time
        // keeps the interval (an order arriving while the tree still warms).
        #expect(round(10, outcome: .completed, new: true) == 10)
        #expect(scheduler.checkEvery == 64)
        // A cold read of the job (or a prefetch found evicted before use, both judged by
        // a read's time): the next offer is checked, and the interval kept while found.
        scheduler.noteColdRead()
        #expect(round(3) == 1)
        scheduler.feedback(.wasted, evicted: true, now: 5_000_000_000)
        #expect(round(3) == 1)
        #expect(scheduler.checkEvery == 64)
        // A file found before had to be loaded again: evicted; every offer is checked.
        scheduler.noteColdRead()
        #expect(round(3, outcome: .completed) == 1)
        #expect(scheduler.checkEvery == 1 && !scheduler.findsCached)
        #expect(round(10) == 10)
    }

    @Test("a full policy queue drops the least urgent, counted")
    func queueBound() {
        let scheduler = PrefetchScheduler(options: options { $0.queueCapacity = 2; $0.operationsPerSecond = 0.001 }, now: 0)
        _ = drain(scheduler, now: 0)
        scheduler.offer([0.7, 0.9, 0.8].enumerated().map { Prediction(fileID: FileID($0.offset + 1), confidence: $0.element, predictor: .markov) },
                        uid: 0, gid: 0, now: 0, file: files)
        #expect(scheduler.queuedCount == 2)
        #expect(scheduler.statistics.queueDropped.value == 1)
    }

    @Test("users take turns: one user's flood of requests neither delays another's nor pushes them out of the bounded queue",
          arguments: [Configuration.PolicyType.heap, .fifo])
    func fairness(policy: Configuration.PolicyType) {
        let scheduler = PrefetchScheduler(options: options { $0.policy = policy; $0.queueCapacity = 8; $0.operationsPerSecond = 0.001 }, now: 0)
        _ = drain(scheduler, now: 0)  // spends the token bucket's burst: nothing is released while offering
        let flood = (1...20).map { Prediction(fileID: FileID($0), confidence: 1, predictor: .lookahead) }
        let modest = (51...53).map { Prediction(fileID: FileID($0), confidence: 0.7, predictor: .markov) }
        scheduler.offer(flood, uid: 65_534, gid: 65_534, now: 0, file: files)
        scheduler.offer(modest, uid: 1_000, gid: 1_000, now: 0, file: files)
        // At the bound the flooding user gave up its own requests, not the other's.
        #expect(scheduler.queuedCount == 8)
        #expect(scheduler.statistics.queueDropped.value == 15)
        let released = PrefetchScheduler(options: options { $0.policy = policy; $0.queueCapacity = 8 }, now: 0)
        released.offer(flood, uid: 65_534, gid: 65_534, now: 0, file: files)
        released.offer(modest, uid: 1_000, gid: 1_000, now: 0, file: files)
        let order = drain(released, now: 1).map(\.uid)
        // One request each in turn while both have some, though the flood's are more confident.
        #expect(Array(order.prefix(6)) == [65_534, 1_000, 65_534, 1_000, 65_534, 1_000])
        #expect(order.filter { $0 == 1_000 }.count == 3)
    }

    @Test("PSI text parses")
    func pressure() {
        #expect(MemoryPressure.parse("some avg10=12.50 avg60=1.00 avg300=0.00 total=1\nfull avg10=3.00 avg60=0 avg300=0 total=0\n") == 12.5)
        #expect(MemoryPressure.parse("") == 0)
    }
}

@Suite("scheduler: stale requests")
struct StaleRequestTests {
    @Test("a whole-file request is dropped when the job opened the file after it was queued; a range request is kept")
    func staleWholeFile() {
        var options = PrefetchScheduler.Options()
        options.operationsPerSecond = 1_000_000
        let scheduler = PrefetchScheduler(options: options, now: 0)
        let info: (FileID) -> (path: String, size: UInt64)? = { ("/f\($0)", 1 << 20) }
        scheduler.offer([Prediction(fileID: 1, confidence: 1, predictor: .remainingSet)], uid: 0, gid: 0, now: 100, file: info)
        scheduler.offer([Prediction(fileID: 2, confidence: 1, predictor: .remainingSet)], uid: 0, gid: 0, now: 100, file: info)
        scheduler.offer([Prediction(fileID: 3, offset: 4096, length: 4096, confidence: 1, predictor: .pattern)], uid: 0, gid: 0, now: 100, file: info)
        scheduler.opened(1, now: 200)  // after it was queued: stale
        scheduler.opened(2, now: 50)   // before: still wanted
        scheduler.opened(3, now: 200)  // a range of a file being read: still wanted
        var released: [FileID] = []
        scheduler.release(now: 300) { released.append($0.fileID); return true }
        #expect(Set(released) == [2, 3])
        #expect(scheduler.statistics.staleDropped.value == 1)
    }
}
