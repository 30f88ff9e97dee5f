import Foundation
import Glibc
import GoFetchSystem
import Logging
import Synchronization
import SystemPackage

/// Counters of the executor.
public final class ExecutorStatistics: Sendable {
    public let submitted = Atomic<Int>(0)
    /// Requests refused because the executor queue was full.
    public let queueFull = Atomic<Int>(0)
    public let completed = Atomic<Int>(0)
    public let skipped = Atomic<Int>(0)
    public let denied = Atomic<Int>(0)
    public let missing = Atomic<Int>(0)
    public let failed = Atomic<Int>(0)
    public let bytesLoaded = Atomic<Int>(0)
    /// Devices where hints did not make pages resident and warming fell back to reads.
    public let hintsIgnoredDevices = Atomic<Int>(0)
    public let cannotLast = Atomic<Int>(0)
    /// FUSE mounts found to drop the page cache on every open.
    public let volatileMounts = Atomic<Int>(0)
    /// Files whose pages were given back (``PrefetchRequest/Purpose/giveBack``), and
    /// give-backs refused (queue full) or that failed; not counted above.
    public let givenBack = Atomic<Int>(0)
    public let giveBackDropped = Atomic<Int>(0)
    /// Threads still in a read when the executor stopped (the storage did not answer).
    public let abandonedAtStop = Atomic<Int>(0)
    /// Requests waiting for a thread when the executor stopped: dropped unread.
    public let droppedAtStop = Atomic<Int>(0)

    public init() {}

    func count(_ outcome: PrefetchOutcome) {
        switch outcome {
        case .completed: completed.add(1)
        case .skipped: skipped.add(1)
        case .denied: denied.add(1)
        case .missing: missing.add(1)
        case .failed: failed.add(1)
        case .cannotLast: cannotLast.add(1)
        }
    }
}

/// A bounded pool of I/O threads that warms page-cache ranges.
///
/// Each request is opened read-only (O_NOATIME where permitted) with the thread's
/// file-system identity set to the client's, so it never reads what the client
/// could not. Ranges already resident are skipped; the rest is loaded by a
/// `PageCacheWarmer`, which chooses the method per device (a hint checked with
/// cachestat, else a read into the thread's reusable buffer).
public final class PrefetchExecutor: @unchecked Sendable {
    public let statistics = ExecutorStatistics()
    private let threads: Int
    private let capacity: Int
    private let warmer: PageCacheWarmer
    private let logger: Logger
    private let onResult: @Sendable (PrefetchResult) -> Void

    private struct Queue {
        var requests: [PrefetchRequest] = []
        var head = 0
        var stopping = false
        /// Warming reads at the storage now, weighed by ``ConcurrencyWindow/weight(ofBytes:)``,
        /// and how much may be (``ConcurrencyWindow``).
        var active = 0
        var window: ConcurrencyWindow
        var count: Int { requests.count - head }
        /// Threads in a request of each user; when each request in progress started.
        var busyByUID: [UInt32: Int] = [:]
        /// Warming requests waiting, per user.
        var waitingByUID: [UInt32: Int] = [:]
        /// Users whose last warming request (loaded or found resident) took under a
        /// millisecond (bounded: cleared at 4,096).
        var fastUIDs: Set<UInt32> = []
        var started: [Int: (time: UInt64, weight: Int)] = [:]
        var nextTicket = 0
        /// A thread waits, with a timeout, for the window (or its user's threads) to let a
        /// queued request go: one at most, which looks again by itself.
        var polling = false

        /// The index of the next request a thread may take, or `nil`: the first of the
        /// user with the fewest threads busy for it. A storage that never answers (a hung
        /// FUSE server, perhaps a user's own) must not hold every prefetch: no user may
        /// hold more than three quarters of the threads, and a read in progress for over
        /// two seconds stops counting against the window (which is about how many reads
        /// the storage serves well, not about a storage that serves none).
        func next(threads: Int, now: UInt64) -> Int? {
            let cap = max(1, threads - max(1, threads / 4))
            let windowFree = reading(now: now) < window.limit || stopping
            var best: (index: Int, busy: Int)?
            var seen: Set<UInt32> = []
            var index = head
            while index < requests.count {
                let request = requests[index]
                index += 1
                guard request.purpose != .warm || windowFree, seen.insert(request.uid).inserted else { continue }
                let busy = busyByUID[request.uid, default: 0]
                guard busy < cap, busy < best?.busy ?? .max else { continue }
                best = (index - 1, busy)
                if busy == 0 { break }  // no user can have fewer
            }
            return best?.index
        }

        /// How many of the user's warming requests may wait (``hasRoom(for:)``): a window,
        /// or ``fastWaiting`` while the user's reads are fast.
        func room(for uid: UInt32) -> Int {
            fastUIDs.contains(uid) ? max(PrefetchExecutor.fastWaiting, window.limit) : window.limit
        }

        /// Warming reads at the storage now (weighed), less those in progress for over two seconds.
        func reading(now: UInt64) -> Int {
            var stuck = 0
            for (_, read) in started where now &- read.time > 2_000_000_000 { stuck += read.weight }
            return active - stuck
        }

        mutating func take(_ index: Int, now: UInt64) -> (PrefetchRequest, ticket: Int) {
            let request = requests[index]
            if index == head { head += 1 } else { requests.remove(at: index) }
            let weight = request.purpose == .warm ? ConcurrencyWindow.weight(ofBytes: request.length) : 0
            if request.purpose == .warm {
                active += weight
                let waiting = waitingByUID[request.uid, default: 1] - 1
                waitingByUID[request.uid] = waiting > 0 ? waiting : nil
            }
            busyByUID[request.uid, default: 0] += 1
            nextTicket += 1
            started[nextTicket] = (now, weight)
            return (request, nextTicket)
        }

        mutating func done(_ request: PrefetchRequest, ticket: Int) {
            // The weight it was taken with (0 for a give-back).
            active -= started.removeValue(forKey: ticket)?.weight ?? 0
            let busy = busyByUID[request.uid, default: 1] - 1
            busyByUID[request.uid] = busy > 0 ? busy : nil
        }
    }
    private let queue: Mutex<Queue>
    /// Signalled when a request is queued, a read ends or the executor stops.
    private let ready = NSCondition()
    private var workers: [JoinableThread] = []
    /// FUSE devices checked for whether warmed pages survive an open: true = they do not.
    private let volatileDevices = Mutex([UInt64: Bool]())

    /// - Parameters:
    ///   - threads: I/O threads: the most warming reads at the storage at once; how many
    ///     are follows the storage's answers (``ConcurrencyWindow``).
    ///   - capacity: requests waiting at most; beyond, `submit` refuses (counted).
    ///   - method: force one method; `nil` chooses per device.
    ///   - onResult: called on an executor thread after each request.
    public init(threads: Int, capacity: Int, method: PrefetchMethod?, logger: Logger, onResult: @escaping @Sendable (PrefetchResult) -> Void) {
        self.threads = threads
        self.capacity = capacity
        // Weighed, every thread may hold a large read.
        queue = Mutex(Queue(window: ConcurrencyWindow(maximum: 2 * threads)))
        self.warmer = PageCacheWarmer(method: method, logger: logger)
        self.logger = logger
        self.onResult = onResult
    }

    public func start() {
        guard workers.isEmpty else { return }
        workers = (0..<threads).map { index in JoinableThread(name: "gofetch-io-\(index)") { [self] in work() } }
    }

    /// Requests waiting for a thread.
    public var pending: Int { queue.withLock { $0.count } }

    /// Whether a warming request of `uid` sent now would start within the reads at the
    /// storage now: fewer than a window of the user's requests wait. What waits here
    /// goes in the order it came; the scheduler keeps the rest in its own, where a
    /// request for what the job needs sooner can still go first. Per user: another
    /// user's requests waiting for their share of the threads take no room from this
    /// one. While the user's last request took under a millisecond (found resident, a
    /// hint, a local disk), up to ``fastWaiting``: such reads end before the engine
    /// sends the next, and a thread that finds none of the user's waiting would take
    /// another user's, perhaps on a storage that holds it for seconds.
    public func hasRoom(for uid: UInt32) -> Bool {
        queue.withLock { queue in
            !queue.stopping && queue.waitingByUID[uid, default: 0] < queue.room(for: uid)
        }
    }

    /// Requests of a user whose reads are fast that may wait (``hasRoom(for:)``).
    static let fastWaiting = 8

    /// Whether the threads are about to run out of the user's warming requests: at most
    /// half of what ``hasRoom(for:)`` lets wait is left once the thread reporting a result
    /// takes the next (it does right after). Until then, a read's result need not wake the
    /// engine: the threads take what waits by themselves, and the engine takes the results
    /// with its next events (or within its wait's timeout). Counting that request as still
    /// waiting, a window of one read left the storage idle for an engine round trip every
    /// other read.
    public func runsLow(for uid: UInt32) -> Bool {
        queue.withLock { queue in
            queue.stopping || max(0, queue.waitingByUID[uid, default: 0] - 1) * 2 <= queue.room(for: uid)
        }
    }

    /// Queues a request without waiting; `false` (counted) when the queue is full.
    @discardableResult
    public func submit(_ request: PrefetchRequest) -> Bool {
        let (accepted, wake) = queue.withLock { queue -> (Bool, Bool) in
            guard !queue.stopping, queue.count < capacity else { return (false, false) }
            if queue.head > 1_024 && queue.head * 2 > queue.requests.count {
                queue.requests.removeFirst(queue.head)
                queue.head = 0
            }
            queue.requests.append(request)
            if request.purpose == .warm { queue.waitingByUID[request.uid, default: 0] += 1 }
            // A thread is woken only when the request may go now, or when no thread
            // looks again by itself. Woken for a request the window holds back, it
            // would only find the window full and wait again: on a capped link the
            // window lets one or two reads go while the tree queues hundreds, and
            // those wake-ups were most of the I/O threads' CPU.
            let free = request.purpose != .warm || queue.reading(now: Clock.monotonicNanoseconds()) < queue.window.limit
            return (true, free || !queue.polling)
        }
        if accepted {
            if request.purpose == .warm { statistics.submitted.add(1) }
            if wake {
                ready.lock()
                ready.signal()
                ready.unlock()
            }
        } else {
            if request.purpose == .warm { statistics.queueFull.add(1) } else { statistics.giveBackDropped.add(1) }
        }
        return accepted
    }

    /// Drops what is queued and stops the threads, waiting at most `grace` for the
    /// reads in progress: a storage that never answers (a hung FUSE server, a lost
    /// NFS server) holds a thread in `read()`, and the daemon must still stop. Such
    /// threads are left behind (counted in ``ExecutorStatistics/abandonedAtStop``);
    /// the process's exit ends them, and a result they report later is ignored.
    public func stop(grace: Duration = .milliseconds(750)) {
        guard !workers.isEmpty else { return }
        queue.withLock { queue in
            queue.stopping = true
            statistics.droppedAtStop.add(queue.count)
            queue.requests.removeAll()
            queue.waitingByUID.removeAll()
            queue.head = 0
        }
        ready.lock()
        ready.broadcast()
        ready.unlock()
        let (seconds, attoseconds) = grace.components
        let deadline = DispatchTime.now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
        for worker in workers where !worker.join(until: deadline) {
            statistics.abandonedAtStop.add(1)
        }
        if statistics.abandonedAtStop.value > 0 {
            logger.warning("prefetch threads still waiting on storage were left behind at stop", metadata: ["threads": "\(statistics.abandonedAtStop.value)"])
        }
        workers = []
    }

    private func work() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            // A give-back needs no read: it never waits for the window.
            ready.lock()
            var next: (PrefetchRequest, ticket: Int)?
            while true {
                let (taken, stop, poll) = queue.withLock { queue -> ((PrefetchRequest, ticket: Int)?, Bool, Bool) in
                    guard queue.count > 0 else { return (nil, queue.stopping, false) }
                    let now = Clock.monotonicNanoseconds()
                    guard let index = queue.next(threads: threads, now: now) else {
                        // Requests wait for the window or their user's threads: a read
                        // that turns out stuck frees its slot without waking anyone, so
                        // one thread looks again soon; the others wait for a read to end.
                        guard !queue.polling else { return (nil, false, false) }
                        queue.polling = true
                        return (nil, false, true)
                    }
                    return (queue.take(index, now: now), false, false)
                }
                if taken != nil || stop { next = taken; break }
                if poll {
                    _ = ready.wait(until: Date(timeIntervalSinceNow: 0.5))
                    queue.withLock { $0.polling = false }
                } else {
                    ready.wait()
                }
            }
            ready.unlock()
            guard let (request, ticket) = next else { return }
            if request.purpose == .giveBack {
                let done = PageCacheWarmer.giveBack(request.path, uid: request.uid, gid: request.gid, groups: request.groups)
                if done { statistics.givenBack.add(1) } else { statistics.giveBackDropped.add(1) }
                // This thread takes what its user's freed thread lets go when it looks again.
                queue.withLock { $0.done(request, ticket: ticket) }
                continue
            }
            let result = perform(request, buffer: buffer)
            // Wake as many threads as there are requests that may go now (one a free
            // slot of the window, usually one, and the give-backs), less the one this
            // thread takes itself when it looks again: waking every idle thread would have
            // them all contend for the queue's lock after every read, and a thread woken
            // for the request this one takes finds nothing and waits again.
            let wake = queue.withLock { queue -> Int in
                if result.method == .read && result.outcome == .completed {
                    queue.window.completed(bytes: result.bytes, nanoseconds: result.completedAt &- result.issuedAt,
                                           inFlight: queue.active, now: result.completedAt)
                }
                queue.done(request, ticket: ticket)
                // A load or a range found resident: how soon the next of the user's may start.
                if result.outcome == .completed || result.outcome == .skipped {
                    if result.completedAt &- result.issuedAt < 1_000_000 {
                        if queue.fastUIDs.count >= 4_096 { queue.fastUIDs.removeAll() }
                        queue.fastUIDs.insert(request.uid)
                    } else {
                        queue.fastUIDs.remove(request.uid)
                    }
                }
                // Give-backs wait for their user's threads only, never for the window.
                let giveBacks = queue.count - queue.waitingByUID.values.reduce(0, +)
                return min(queue.count, max(0, queue.window.limit - queue.active) + giveBacks) - 1
            }
            if wake > 0 {
                ready.lock()
                for _ in 0..<wake { ready.signal() }
                ready.unlock()
            }
            statistics.count(result.outcome)
            statistics.bytesLoaded.add(Int(result.bytes))
            logger.trace("prefetch", metadata: [
                "path": "\(request.path)", "offset": "\(request.offset)", "outcome": "\(result.outcome)",
                "bytes": "\(result.bytes)", "queued": "\(request.queuedAt)", "issued": "\(result.issuedAt)",
                "completed": "\(result.completedAt)", "predictor": "\(request.predictor)"])
            onResult(result)
        }
    }

    /// Warms one request; every failure is an outcome, never a crash.
    func perform(_ request: PrefetchRequest, buffer: UnsafeMutableRawBufferPointer) -> PrefetchResult {
        let issuedAt = Clock.monotonicNanoseconds()
        func result(_ outcome: PrefetchOutcome, bytes: UInt64 = 0, method: PrefetchMethod? = nil) -> PrefetchResult {
            PrefetchResult(request: request, outcome: outcome, bytes: bytes, method: method, issuedAt: issuedAt, completedAt: Clock.monotonicNanoseconds())
        }
        let fd: FileDescriptor, status: FileStatus
        do {
            (fd, status) = try Syscall.asFileSystemUser(uid: request.uid, gid: request.gid, groups: request.groups) { () throws(Errno) in
                try Syscall.openRegularFile(request.path)
            }
        } catch {
            switch error {
            case .noSuchFileOrDirectory, .notDirectory: return result(.missing)
            case .permissionDenied, .notPermitted: return result(.denied)
            default: return result(.failed)
            }
        }
        defer { try? fd.close() }
        do {
            // A regular file (openRegularFile refuses anything else), as it was opened.
            if volatileDevices.withLock({ $0[status.device] }) == true { return result(.cannotLast) }
            guard request.offset < status.size else { return result(.skipped) }
            let end = request.length == 0 ? status.size : min(status.size, request.offset + request.length)
            let length = end - request.offset
            let page = Syscall.pageSize
            let pages = (end + page - 1) / page - request.offset / page
            let residentBefore = try Syscall.residentPages(fd, offset: request.offset, length: length)
            if residentBefore >= pages { return result(.skipped) }

            let warming = try warmer.warm(
                fd, device: status.device, offset: request.offset, length: length, residentBefore: residentBefore, buffer: buffer)
            let residentAfter = warming.residentAfter
            let method = warming.method
            if warming.switchedMethod {
                if method == .read { statistics.hintsIgnoredDevices.add(1) }
                return result(.completed, bytes: (residentAfter - min(residentAfter, residentBefore)) * page, method: method)
            }
            if volatileDevices.withLock({ $0[status.device] }) == nil && Syscall.isFUSE(fd) {
                // Judged on two warmings in a row: once, the job itself may have dropped the
                // file's pages (a reader that advises DONTNEED after each file) between the
                // warming and the check, and the verdict holds for the mount's life.
                if !warmedPagesSurviveOpen(request, offset: request.offset, length: length, resident: residentAfter),
                   !warmedPagesSurviveOpen(request, offset: request.offset, length: length, resident: try warmer.warm(
                       fd, device: status.device, offset: request.offset, length: length, residentBefore: 0, buffer: buffer).residentAfter) {
                    // Several threads may find out at once; the mount is counted (and logged) once.
                    let first = volatileDevices.withLock { devices in
                        defer { devices[status.device] = true }
                        return devices[status.device] != true
                    }
                    if first {
                        statistics.volatileMounts.add(1)
                    }
                    if first { logger.warning(
                        "this FUSE mount drops the page cache whenever a file is opened (no keep_cache): warming cannot last until the job opens a file, so gofetch stops prefetching on it",
                        metadata: ["device": "\(status.device)", "path": "\(request.path)"]) }
                    return result(.cannotLast, method: method)
                }
                volatileDevices.withLock { $0[status.device] = false }
            }
            return result(.completed, bytes: (residentAfter - min(residentAfter, residentBefore)) * page, method: method)
        } catch {
            logger.debug("prefetch failed", metadata: ["path": "\(request.path)", "error": "\(error)"])
            return result(error == .noSuchFileOrDirectory ? .missing : .failed)
        }
    }

    /// Opens the file once more, as the job will, and checks the warmed pages are
    /// still there: FUSE invalidates a file's cache at open unless the file system
    /// replies with keep_cache (FOPEN_KEEP_CACHE).
    private func warmedPagesSurviveOpen(_ request: PrefetchRequest, offset: UInt64, length: UInt64, resident: UInt64) -> Bool {
        guard resident > 0,
              let again = try? Syscall.asFileSystemUser(uid: request.uid, gid: request.gid, groups: request.groups, { () throws(Errno) in try Syscall.openRegularFile(request.path).fd })
        else { return true }
        defer { try? again.close() }
        let after = (try? Syscall.residentPages(again, offset: offset, length: length)) ?? resident
        return after * 2 >= resident
    }
}
