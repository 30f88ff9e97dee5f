import Foundation
import Glibc
@testable import GoFetchConfig
@testable import GoFetchEvents
@testable import GoFetchExecute
@testable import GoFetchMetrics
@testable import GoFetchPredict
@testable import GoFetchSchedule
import Logging
import Testing

/// A read of `file` at `time` that took `duration` ns.
private func timedRead(_ file: FileID, offset: UInt64 = 0, length: UInt64 = 100_000, time: UInt64, duration: UInt32) -> TraceEvent {
    var event = readEvent(file, offset: offset, length: length, time: time)
    event.durationNanoseconds = duration
    return event
}

private func request(_ file: FileID, offset: UInt64 = 0, length: UInt64 = 100_000, queuedAt: UInt64 = 0) -> PrefetchRequest {
    PrefetchRequest(fileID: file, path: "/f\(file)", uid: 0, gid: 0, offset: offset, length: length,
                    confidence: 1, deadline: nil, predictor: .lookahead, queuedAt: queuedAt)
}

private func result(_ request: PrefetchRequest, _ outcome: PrefetchOutcome, method: PrefetchMethod = .read, issued: UInt64, completed: UInt64) -> PrefetchResult {
    PrefetchResult(request: request, outcome: outcome, bytes: outcome == .completed ? request.length : 0, method: method,
                   issuedAt: issued, completedAt: completed)
}

@Suite("metrics")
struct MetricsTests {
    let warm: UInt32 = 20_000  // 20 µs for 100 kB: page cache
    let cold: UInt32 = 5_000_000  // 5 ms: storage

    @Test("the ledger decides each fate from completion time and the read's timing")
    func fates() {
        var decided: [(PrefetchFate, Bool)] = []
        let ledger = PrefetchLedger(onFate: { fate, evicted, _ in decided.append((fate, evicted)) })
        let ms: UInt64 = 1_000_000
        // 1: completed at 10 ms, read warm at 20 ms → useful.
        let a = request(1)
        ledger.issued(a, now: 1 * ms)
        ledger.completed(result(a, .completed, issued: 2 * ms, completed: 10 * ms))
        ledger.observe(timedRead(1, time: 20 * ms, duration: warm))
        // 2: read at 5 ms, completed at 30 ms → late (the read's event arrived first).
        let b = request(2)
        ledger.issued(b, now: 1 * ms)
        ledger.observe(timedRead(2, time: 5 * ms, duration: cold))
        ledger.completed(result(b, .completed, issued: 2 * ms, completed: 30 * ms))
        // 3: loaded by a read at 10 ms, read cold 5 s later → evicted before use → wasted.
        let c = request(3)
        ledger.issued(c, now: 1 * ms)
        ledger.completed(result(c, .completed, issued: 2 * ms, completed: 10 * ms))
        ledger.observe(timedRead(3, time: 5_000 * ms, duration: cold))
        // 4: a hint "completed" at 10 ms, read cold at 50 ms → its I/O was still running → late.
        let d = request(4)
        ledger.issued(d, now: 1 * ms)
        ledger.completed(result(d, .completed, method: .fadvise, issued: 2 * ms, completed: 10 * ms))
        ledger.observe(timedRead(4, time: 50 * ms, duration: cold))
        // 5: already resident → skipped; 6: denied → failed; 7: loaded, never read → wasted at the end.
        for (file, outcome) in [(FileID(5), PrefetchOutcome.skipped), (6, .denied), (7, .completed)] {
            let r = request(file)
            ledger.issued(r, now: 1 * ms)
            ledger.completed(result(r, outcome, issued: 2 * ms, completed: 3 * ms))
        }
        #expect(ledger.pending == 1)
        ledger.finish()
        #expect(ledger.pending == 0)

        let counters = ledger.counters
        #expect(counters.count(.useful) == 1)
        #expect(counters.count(.late) == 2)
        #expect(counters.count(.wasted) == 2)
        #expect(counters.evictedBeforeUse == 1 && counters.unreadInWindow == 1)
        #expect(counters.count(.skipped) == 1)
        #expect(counters.count(.failed) == 1)
        #expect(counters.issued == 7)
        #expect(decided.count == 7)
        #expect(decided.filter { $0.1 }.count == 1)  // only the evicted one
        // Accesses: 4 reads, 1 warm and gofetch's, 3 cold; their time is the stall.
        #expect(counters.accesses == 4 && counters.coldAccesses == 3 && counters.coveredAccesses == 1)
        #expect(counters.stallNanoseconds == 3 * UInt64(cold))
        let snapshot = ledger.snapshot()
        #expect(abs(snapshot.accuracy - 1.0 / 7) < 1e-9)
        #expect(abs(snapshot.coverage - 0.25) < 1e-9)
        #expect(snapshot.histograms.leadTime.count == 1)
        #expect(snapshot.histograms.leadTime.percentile(50) / 1_000_000 == 10)  // 20 ms − 10 ms
    }

    @Test("a prefetch nobody reads within the window is wasted; later reads of a file it covered count as covered")
    func windowAndCoverage() {
        var options = PrefetchLedger.Options()
        options.windowNanoseconds = 2_000_000_000
        let ledger = PrefetchLedger(options: options)
        let r = request(1, length: 1 << 20)
        ledger.issued(r, now: 0)
        ledger.completed(result(r, .completed, issued: 0, completed: 1_000))
        ledger.observe(timedRead(1, offset: 0, length: 65_536, time: 10_000, duration: warm))
        ledger.observe(timedRead(1, offset: 65_536, length: 65_536, time: 20_000, duration: warm))
        #expect(ledger.counters.coveredAccesses == 2)
        let unread = request(2)
        ledger.issued(unread, now: 0)
        ledger.completed(result(unread, .completed, issued: 0, completed: 1_000))
        ledger.sweep(now: 1_500_000_000)
        #expect(ledger.counters.count(.wasted) == 0)
        ledger.sweep(now: 3_000_000_000)
        #expect(ledger.counters.count(.wasted) == 1)
        #expect(ledger.pending == 0)
    }

    @Test("absurd read lengths from a client never trap the ledger; every tracked prefetch gets exactly one fate")
    func hostileAndComplete() {
        let ledger = PrefetchLedger()
        for file in FileID(1)...20 { ledger.issued(request(file), now: 0) }
        for file in FileID(1)...10 { ledger.completed(result(request(file), .completed, issued: 0, completed: 10)) }
        ledger.observe(timedRead(3, offset: .max - 5, length: .max, time: 20, duration: .max))
        ledger.observe(timedRead(4, offset: 0, length: .max, time: 20, duration: .max))
        ledger.observe(timedRead(5, offset: 0, length: .max, time: 20, duration: 1))
        ledger.observe(timedRead(15, offset: 0, length: 1_000, time: 20, duration: warm))  // in flight: decided at its result
        ledger.finish()
        let fates = PrefetchFate.allCases.reduce(0) { $0 + ledger.counters.count($1) }
        #expect(fates == 20)
        #expect(ledger.pending == 0)
        #expect(ledger.counters.count(.late) == 1)  // file 15, read before its result came
    }

    @Test("the ledger's memory is bounded: prefetches beyond its capacity are counted, not stored")
    func bounded() {
        var options = PrefetchLedger.Options()
        options.capacity = 100
        let ledger = PrefetchLedger(options: options)
        for file in FileID(1)...1_000 { ledger.issued(request(file), now: 0) }
        #expect(ledger.pending == 100)
        #expect(ledger.counters.untracked == 900)
    }

    @Test("warm and cold reads are told apart by time per byte")
    func readTiming() {
        let timing = ReadTiming(baseNanoseconds: 100_000, warmBytesPerSecond: 1e9)
        #expect(!timing.isCold(bytes: 110_000, nanoseconds: 30_000))
        #expect(timing.isCold(bytes: 110_000, nanoseconds: 4_000_000))
        #expect(!timing.isCold(bytes: 1 << 20, nanoseconds: 900_000))  // 1 MiB copied at > 1 GB/s
        #expect(timing.isCold(bytes: 1 << 20, nanoseconds: 3_000_000))
    }

    @Test("evictions before use shrink the budget, useful prefetches grow it back; the cgroup room caps it")
    func budgetFeedback() {
        var options = PrefetchScheduler.Options()
        options.memoryBudget = 64 << 20
        let scheduler = PrefetchScheduler(options: options, now: 0)
        #expect(scheduler.budget == 64 << 20)
        scheduler.feedback(.wasted, evicted: true, now: 2_000_000_000)
        scheduler.feedback(.wasted, evicted: true, now: 2_100_000_000)  // within a second: one shrink only
        #expect(scheduler.budget == 32 << 20)
        scheduler.feedback(.wasted, evicted: false, now: 4_000_000_000)  // never read: not a memory signal
        #expect(scheduler.budget == 32 << 20)
        for _ in 0..<64 { scheduler.feedback(.useful, evicted: false, now: 5_000_000_000) }
        #expect(scheduler.budget == 64 << 20)
        scheduler.setCeiling(10 << 20)
        #expect(scheduler.budget == 10 << 20)
        #expect(scheduler.statistics.effectiveBudget.value == 10 << 20)
        scheduler.setCeiling(nil)
        #expect(scheduler.budget == 64 << 20)
    }

    @Test("evictions shrink the budget of the user they happened to only: another user's slow reads do not count, and the others' releases go on")
    func budgetPerUser() {
        let ms: UInt64 = 1_000_000
        // The ledger: a prefetch for uid 1000, read cold by uid 65534 (a report anyone can
        // send), is no eviction; read cold by 1000 itself 5 s later, it is.
        var decided: [(PrefetchFate, Bool, UInt32)] = []
        let ledger = PrefetchLedger(onFate: { decided.append(($0, $1, $2)) })
        var prefetch = request(1)
        prefetch.uid = 1_000
        ledger.issued(prefetch, now: 1 * ms)
        ledger.completed(result(prefetch, .completed, issued: 2 * ms, completed: 10 * ms))
        var faked = timedRead(1, time: 5_000 * ms, duration: cold)
        faked.uid = 65_534
        ledger.observe(faked)
        #expect(decided.isEmpty)
        var own = timedRead(1, time: 6_000 * ms, duration: cold)
        own.uid = 1_000
        ledger.observe(own)
        #expect(decided.count == 1 && decided[0].0 == .wasted && decided[0].1 && decided[0].2 == 1_000)

        // The scheduler: uid 1000's evictions halve its budget only.
        let options = fourMiBBudget()
        let scheduler = PrefetchScheduler(options: options, now: 0)
        for second in 1...4 { scheduler.feedback(.wasted, evicted: true, uid: 1_000, now: UInt64(second) * 1_000_000_000) }
        #expect(scheduler.budget(for: 1_000) == 256 << 10)
        #expect(scheduler.budget(for: 2_000) == 4 << 20)
        // Both users queue 1 MiB requests: the shrunk one gets none past its budget once
        // something is outstanding, the other goes on to its own share (half of 4 MiB).
        let files: (FileID) -> (path: String, size: UInt64)? = { ("/f\($0)", 1 << 20) }
        scheduler.offer((1...3).map { Prediction(fileID: FileID($0), confidence: 1, predictor: .lookahead) }, uid: 2_000, gid: 0, now: 5_000_000_000, file: files)
        scheduler.offer((11...13).map { Prediction(fileID: FileID($0), confidence: 1, predictor: .lookahead) }, uid: 1_000, gid: 0, now: 5_000_000_000, file: files)
        var released: [UInt32] = []
        scheduler.release(now: 5_000_000_000) { released.append($0.uid); return true }
        #expect(released.filter { $0 == 2_000 }.count == 2)
        #expect(released.filter { $0 == 1_000 }.count <= 1)  // only while nothing of its own was outstanding
    }

    @Test("a user whose prefetches hold the whole budget (never read, or never done on a storage that does not answer) does not stop another's: each has its share")
    func budgetShares() {
        let options = fourMiBBudget()
        let scheduler = PrefetchScheduler(options: options, now: 0)
        let files: (FileID) -> (path: String, size: UInt64)? = { ("/f\($0)", 1 << 20) }
        var released: [UInt32] = []
        // Alone, a user has the whole budget.
        scheduler.offer((1...6).map { Prediction(fileID: FileID($0), confidence: 1, predictor: .lookahead) }, uid: 65_534, gid: 0, now: 1_000_000_000, file: files)
        scheduler.release(now: 1_000_000_000) { released.append($0.uid); return true }
        #expect(released == [65_534, 65_534, 65_534, 65_534])
        #expect(scheduler.outstandingBytes == 4 << 20)
        // Its bytes are never read. Another user still gets its half, the first no more.
        released.removeAll()
        scheduler.offer((11...14).map { Prediction(fileID: FileID($0), confidence: 1, predictor: .lookahead) }, uid: 1_000, gid: 0, now: 2_000_000_000, file: files)
        scheduler.release(now: 2_000_000_000) { released.append($0.uid); return true }
        #expect(released == [1_000, 1_000])
        // What the job reads of its own frees its share again.
        scheduler.consumed(11)
        released.removeAll()
        scheduler.release(now: 2_100_000_000) { released.append($0.uid); return true }
        #expect(released == [1_000])
    }

    @Test("what was warmed as no one before the job's first event is the job's: it holds the job's budget, not a second user's half")
    func adoptedBudget() {
        let anyone = PrefetchEngine.anyone.uid
        let files: (FileID) -> (path: String, size: UInt64)? = { ("/f\($0)", 1 << 20) }
        func run(adopting: Bool) -> (PrefetchScheduler, [UInt32]) {
            let scheduler = PrefetchScheduler(options: fourMiBBudget(), now: 0)
            // A file warmed as no one, still unread.
            scheduler.offer([Prediction(fileID: 1, confidence: 1, predictor: .dataSetTree)], uid: anyone, gid: anyone, now: 1_000_000_000, file: files)
            scheduler.release(now: 1_000_000_000) { _ in true }
            #expect(scheduler.outstandingBytes == 1 << 20)
            // The job (uid 0) shows itself and takes the tree over; its requests follow.
            if adopting { scheduler.countAsOwn(anyone, of: 0) }
            scheduler.offer((11...14).map { Prediction(fileID: FileID($0), confidence: 1, predictor: .dataSetTree) }, uid: 0, gid: 0, now: 2_000_000_000, file: files)
            var uids: [UInt32] = []
            scheduler.release(now: 2_000_000_000) { uids.append($0.uid); return true }
            return (scheduler, uids)
        }
        // As a second user, no one's 1 MiB leaves the job half the budget: 2 MiB.
        #expect(run(adopting: false).1 == [0, 0])
        // As the job's own: the whole budget, less the 1 MiB they hold.
        let (scheduler, released) = run(adopting: true)
        #expect(released == [0, 0, 0] && scheduler.outstandingBytes == 4 << 20)
        // The job reads the guess: the job's share frees it, and one more of its own goes.
        scheduler.consumed(1)
        #expect(scheduler.outstandingBytes == 3 << 20)
        var more: [UInt32] = []
        scheduler.release(now: 2_100_000_000) { more.append($0.uid); return true }
        #expect(more == [0])
        // A guess of no one's evicted before use shrinks the job's budget.
        scheduler.feedback(.wasted, evicted: true, uid: anyone, now: 3_000_000_000)
        #expect(scheduler.budget(for: 0) == 2 << 20)
    }

    /// A scheduler's options with a budget of 4 MiB and no rate or pressure limit.
    func fourMiBBudget() -> PrefetchScheduler.Options {
        var options = PrefetchScheduler.Options()
        options.memoryBudget = 4 << 20
        options.operationsPerSecond = 1_000_000
        options.pressureThreshold = 101
        return options
    }

    /// A v1 memory cgroup folder `name` under `root` with the given limit and memory.stat.
    func memoryGroup(_ root: TemporaryDirectory, _ name: String, limit: String, stat: String) throws -> MemoryCgroup {
        let path = root.file(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try limit.write(toFile: path + "/memory.limit_in_bytes", atomically: true, encoding: .utf8)
        try stat.write(toFile: path + "/memory.stat", atomically: true, encoding: .utf8)
        return MemoryCgroup(directory: path, version: 1)
    }

    @Test("the budget ceiling follows the tightest memory cgroup of the clients")
    func cgroupCeiling() throws {
        let directory = TemporaryDirectory()
        func group(_ name: String, limit: String, rss: UInt64) throws -> MemoryCgroup {
            try memoryGroup(directory, name, limit: limit,
                            stat: "cache 1\nrss \(rss)\ntotal_rss \(rss)\ntotal_active_file \(rss / 2)\nhierarchical_memory_limit 9223372036854771712\n")
        }
        let tight = try group("tight", limit: "\(200 << 20)\n", rss: 40 << 20)
        let loose = try group("loose", limit: "\(4 << 30)\n", rss: 0)
        let unlimited = try group("unlimited", limit: "9223372036854771712\n", rss: 0)
        let groups: [UInt32: MemoryCgroup] = [1: tight, 2: loose, 3: unlimited]
        let budget = CgroupBudget(fraction: 0.5, own: nil) { groups[$0] }
        budget.saw(pid: 3, now: 1)
        budget.refresh(now: 1)
        #expect(budget.ceiling == nil)
        budget.saw(pid: 2, now: 2_000_000_000)
        budget.saw(pid: 1, now: 2_000_000_000)
        budget.refresh(now: 2_000_000_000)
        #expect(budget.ceiling == UInt64(70 << 20))  // (200 − 40 anonymous − 20 page cache in use) MiB × 0.5
        // Twenty seconds later only the loose group is still active.
        budget.saw(pid: 2, now: 22_000_000_000)
        budget.refresh(now: 22_000_000_000)
        #expect(budget.ceiling == UInt64(2 << 30))
    }

    @Test("a client's memory cgroup sets the ceiling only when it holds the daemon's own group, which prefetched pages are charged to")
    func cgroupIsolation() throws {
        let directory = TemporaryDirectory()
        func group(_ name: String, limit: UInt64, rss: UInt64 = 0) throws -> MemoryCgroup {
            try memoryGroup(directory, name, limit: "\(limit)\n", stat: "total_rss \(rss)\n")
        }
        let node = try group("node", limit: 8 << 30)
        let daemon = try group("node/gofetch", limit: 4 << 30)
        let tiny = try group("jobs/tiny", limit: 1 << 20)  // another user's job under a 1 MiB limit
        let container = try group("jobs/container", limit: 512 << 20)
        let withDaemon = try group("node/gofetch/job", limit: 256 << 20)  // a job inside the daemon's group
        let groups: [UInt32: MemoryCgroup] = [1: tiny, 2: container, 3: node, 4: withDaemon]
        let budget = CgroupBudget(fraction: 0.5, own: daemon) { groups[$0] }
        budget.saw(pid: 1, now: 1)
        budget.saw(pid: 2, now: 1)
        budget.refresh(now: 1)
        #expect(budget.ceiling == UInt64(2 << 30))  // the daemon's own 4 GiB × 0.5: the tiny job changes nothing
        #expect(budget.tightest?.directory == daemon.directory)
        // The group above the daemon's counts (it evicts what the daemon loaded); one below it does not.
        try "\(1 << 30)\n".write(toFile: node.directory + "/memory.limit_in_bytes", atomically: true, encoding: .utf8)
        budget.saw(pid: 3, now: 2_000_000_000)
        budget.saw(pid: 4, now: 2_000_000_000)
        budget.refresh(now: 2_000_000_000)
        #expect(budget.ceiling == UInt64(512 << 20))
        #expect(budget.tightest?.directory == node.directory)
    }

    @Test("a limit set above the daemon's group (a pod's, the job in a sibling container) counts the job's memory: the ancestor's own statistics decide")
    func cgroupAncestor() throws {
        let directory = TemporaryDirectory()
        func group(_ name: String, limit: UInt64, stat: String) throws -> MemoryCgroup {
            try memoryGroup(directory, name, limit: "\(limit)\n", stat: stat)
        }
        let unlimited: UInt64 = 9_223_372_036_854_771_712
        // The pod's statistics hold both containers: the job's 430 MiB and gofetch's 17.
        _ = try group("pod", limit: 600 << 20, stat: "total_rss \(447 << 20)\ntotal_active_file \(50 << 20)\n")
        let daemon = try group("pod/gofetch", limit: unlimited,
                               stat: "total_rss \(17 << 20)\ntotal_active_file 0\nhierarchical_memory_limit \(600 << 20)\n")
        let job = try group("pod/job", limit: unlimited,
                            stat: "total_rss \(430 << 20)\ntotal_active_file \(50 << 20)\nhierarchical_memory_limit \(600 << 20)\n")
        let budget = CgroupBudget(fraction: 0.5, own: daemon) { _ in job }
        budget.saw(pid: 1, now: 1)
        budget.refresh(now: 1)
        // (600 − 447 − 50) × 0.5, not gofetch's own group's (600 − 17) × 0.5.
        #expect(budget.ceiling == UInt64(103 << 20) / 2)
        #expect(budget.tightest?.directory == directory.file("pod"))
    }

    @Test("/proc/PID/cgroup lines name the v1 memory group, or the v2 group")
    func cgroupParse() {
        let v1 = MemoryCgroup.parse("9:name=systemd:/\n4:memory:/jobs/a\n0::/\n", cgroupRoot: "/sys/fs/cgroup")
        #expect(v1 == MemoryCgroup(directory: "/sys/fs/cgroup/memory/jobs/a", version: 1))
        #expect(MemoryCgroup.parse("garbage\n", cgroupRoot: "/x") == nil)
        // This process's own group (when it has one) lies under the cgroup mount.
        if let own = MemoryCgroup.of(pid: UInt32(getpid())) {
            #expect(own.directory.hasPrefix("/sys/fs/cgroup"))
            #expect(FileManager.default.fileExists(atPath: own.directory))
        }
    }

    @Test("listen addresses: loopback ports and Unix sockets only")
    func listenAddresses() {
        #expect(ListenAddress("127.0.0.1:9464") == .tcp(host: "127.0.0.1", port: 9464, ipv6: false))
        #expect(ListenAddress("localhost:1") == .tcp(host: "127.0.0.1", port: 1, ipv6: false))
        #expect(ListenAddress("[::1]:9464") == .tcp(host: "::1", port: 9464, ipv6: true))
        #expect(ListenAddress("unix:/run/g.sock") == .unix(path: "/run/g.sock"))
        #expect(ListenAddress("0.0.0.0:9464") == nil)
        #expect(ListenAddress("127.0.0.1:0") == nil)
        #expect(ListenAddress("127.0.0.1:70000") == nil)
        #expect(ListenAddress("unix:relative") == nil)
        #expect(throws: ConfigurationError.self) { try Configuration.parse(yaml: "metrics:\n  prometheus_listen: 0.0.0.0:80\n") }
        #expect((try? Configuration.parse(yaml: "metrics:\n  prometheus_listen: unix:/tmp/m.sock\n"))?.metrics.prometheusListen == "unix:/tmp/m.sock")
    }

    @Test("a scrape gets the Prometheus text exposition of the current figures")
    func prometheusScrape() throws {
        let directory = TemporaryDirectory()
        let ledger = PrefetchLedger()
        let r = request(1)
        ledger.issued(r, now: 0)
        ledger.completed(result(r, .completed, issued: 0, completed: 1_000))
        ledger.observe(timedRead(1, time: 2_000, duration: warm))
        let snapshot = ledger.snapshot()
        let reporter = MetricsReporter(csvPath: directory.file("m.csv"), runID: 7, intervalSeconds: 60, logger: .test) {
            MetricsSample(wallNanoseconds: 1, accounting: snapshot, outstandingBytes: 5, budgetBytes: 1 << 20, events: 3, eventsDropped: 0, predictions: 1)
        }
        let socketPath = directory.file("metrics.sock")
        let server = PrometheusServer(address: .unix(path: socketPath), registry: reporter.registry, logger: .test) { reporter.refreshRegistry() }
        try server.start()
        defer { server.stop() }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(socketPath.utf8))
            raw[socketPath.utf8.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(connected == 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)  // a server bug fails the test instead of hanging it
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET /metrics HTTP/1.0\r\n\r\n".utf8)
        #expect(write(fd, request, request.count) == request.count)
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            response.append(contentsOf: buffer[..<count])
        }
        let text = String(decoding: response, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.0 200 OK"))
        #expect(text.contains("gofetch_prefetch_fates_total{fate=\"useful\"} 1"))
        #expect(text.contains("gofetch_accesses_total 1"))
        #expect(text.contains("gofetch_budget_bytes 1048576"))
        #expect(text.contains("# TYPE gofetch_coverage_ratio gauge"))

        // A client that resets the connection (SO_LINGER 0) costs one answer, not the process.
        let rude = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(rude, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(rude, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        _ = write(rude, request, 4)
        close(rude)
        usleep(100_000)
        let again = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(again) }
        setsockopt(again, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let reconnected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(again, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(reconnected == 0)
        #expect(write(again, request, request.count) == request.count)
        #expect(read(again, &buffer, buffer.count) > 0)
    }

    @Test("CSV rows count each interval's fates, seed columns first")
    func csvRow() {
        var counters = LedgerCounters()
        counters.accesses = 10
        counters.coldAccesses = 2
        counters.fates = [.useful: 3, .late: 1]
        counters.issued = 4
        let first = MetricsSample(wallNanoseconds: 1_000_000_000, accounting: AccountingSnapshot(counters: counters), outstandingBytes: 0, budgetBytes: 0, events: 0, eventsDropped: 0, predictions: 0)
        counters.accesses = 30
        counters.coldAccesses = 2
        counters.fates = [.useful: 7, .late: 1, .wasted: 2]
        counters.issued = 10
        let second = MetricsSample(wallNanoseconds: 3_000_000_000, accounting: AccountingSnapshot(counters: counters), outstandingBytes: 0, budgetBytes: 0, events: 0, eventsDropped: 0, predictions: 0)
        let fields = MetricsReporter.row(second, previous: first, runID: 1).dropLast().split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        #expect(fields.count == MetricsReporter.csvColumns.count)
        let row = Dictionary(uniqueKeysWithValues: zip(MetricsReporter.csvColumns, fields))
        #expect(row["cache_hits"] == "20" && row["cache_misses"] == "0")
        #expect(row["prediction_accuracy"] == "0.6667")  // 4 useful of 6 decided in the interval
        #expect(row["useful"] == "4" && row["wasted"] == "2" && row["prefetches_issued"] == "6")
        #expect(row["interval_s"] == "2.000")
    }
}
