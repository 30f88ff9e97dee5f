import GoFetchConfig
import GoFetchEvents
import GoFetchExecute
import GoFetchPredict
import Synchronization

/// Counters of the scheduler.
public final class SchedulerStatistics: Sendable {
    public let offered = Atomic<Int>(0)
    public let belowThreshold = Atomic<Int>(0)
    public let duplicates = Atomic<Int>(0)
    /// Predictions of files gofetch has no path for (not in the catalog).
    public let unknownFiles = Atomic<Int>(0)
    public let queued = Atomic<Int>(0)
    /// Requests dropped because the policy queue was full (the least urgent go).
    public let queueDropped = Atomic<Int>(0)
    public let released = Atomic<Int>(0)
    /// Queued whole-file requests dropped because the job opened the file meanwhile.
    public let staleDropped = Atomic<Int>(0)
    /// Queued requests dropped because an exact order replaced their predictor (``PrefetchScheduler/withdraw(_:)``).
    public let withdrawn = Atomic<Int>(0)
    /// Requests still queued when the engine stopped (the job ended first): never sent.
    public let leftAtStop = Atomic<Int>(0)
    public let budgetWaits = Atomic<Int>(0)
    public let rateWaits = Atomic<Int>(0)
    public let pressureWaits = Atomic<Int>(0)
    /// Offers not sent to be checked while the page cache holds what the job reads
    /// (``PrefetchScheduler/noteColdRead()``): assumed resident.
    public let assumedResident = Atomic<Int>(0)
    /// Prefetched bytes the job never read within the expiry: released from the budget.
    public let expiredBytes = Atomic<Int>(0)
    /// Prefetched-but-unread bytes now, against the memory budget.
    public let outstandingBytes = Atomic<Int>(0)
    /// The budget in force now: the configured one, capped by the clients' memory
    /// cgroup room and scaled down after prefetches were evicted before use.
    public let effectiveBudget = Atomic<Int>(0)

    public init() {}
}

/// Decides what to prefetch and when: confidence threshold, top-k, de-duplication,
/// size cap, the `fifo` or `heap` policy queue (bounded), token buckets in ops/s and
/// MB/s, a memory budget for prefetched-but-unread bytes, and back-off under memory
/// pressure (PSI). Confined to the engine's thread.
public final class PrefetchScheduler {
    public struct Options: Sendable {
        public var policy: Configuration.PolicyType = .heap
        public var confidenceThreshold = 0.6
        public var topK = 5
        public var operationsPerSecond = 20.0
        public var bytesPerSecond = 0.0
        public var maxRequestBytes: UInt64 = 16 << 20
        public var memoryBudget: UInt64 = 1 << 30
        public var dedupWindowNanoseconds: UInt64 = 30_000_000_000
        public var queueCapacity = 10_000
        /// PSI "some avg10" (%) above which prefetching pauses.
        public var pressureThreshold = 10.0
        /// Prefetched bytes not read within this long stop counting against the budget.
        public var expiryNanoseconds: UInt64 = 120_000_000_000
        /// While the executor keeps finding what it is sent already resident, only one
        /// offer in up to this many is sent to be checked (a job going over a cached
        /// data set would otherwise cost a round trip to an executor thread per open;
        /// each wakes a thread: 64 left 40 a second at 2,500 opens a second). Anything
        /// loaded checks every offer again; each cold read of the job quarters the interval.
        public var maxCheckInterval = 256

        public init() {}

        public init(_ configuration: Configuration) {
            let prefetcher = configuration.prefetcher
            policy = prefetcher.policyType
            confidenceThreshold = prefetcher.confidenceThreshold
            topK = prefetcher.topKPredictions
            operationsPerSecond = prefetcher.rateLimitPerSec
            bytesPerSecond = prefetcher.rateLimitMBPerSec * 1_048_576
            maxRequestBytes = UInt64(prefetcher.maxPrefetchSizeMB * 1_048_576)
            memoryBudget = UInt64(prefetcher.memoryBudgetMB * 1_048_576)
            pressureThreshold = prefetcher.memoryPressureThreshold
        }
    }

    /// The exact range: the pattern detector never repeats a range itself, and a
    /// coarser key would swallow its next, adjacent ones.
    struct DedupKey: Hashable {
        var file: FileID
        var offset: UInt64
        var length: UInt64
    }

    public let options: Options
    public let statistics = SchedulerStatistics()
    /// One queue per client user, released in turn (``FairQueue``).
    private var queue: FairQueue
    private var recent: [DedupKey: UInt64] = [:]
    /// The de-duplication keys of each file, so a file the job has read can be
    /// prefetched again at once (next epoch), not only after the window.
    private var recentByFile: [FileID: [DedupKey]] = [:]
    /// The newest entries of `recent`, searched before it: most offers repeat one of
    /// the last few (a Markov path moves on by one file per open), and a scan of 16
    /// keys costs less than a hashed lookup (bench/daemon-cost).
    private var newest = NewestOffers()
    private var lastPrune: UInt64 = 0
    private var lastExpiry: UInt64 = 0
    private var operations: TokenBucket
    private var bandwidth: TokenBucket
    private var pressure: MemoryPressure
    private var outstanding: [FileID: (bytes: UInt64, since: UInt64, uid: UInt32, predictor: PredictorKind)] = [:]
    private var outstandingTotal: UInt64 = 0
    /// Outstanding bytes per user: with several users, each may hold its share of the
    /// budget (budget ÷ users), so one user's prefetches that are never read (or never
    /// finish, on a storage that does not answer) cannot hold the whole budget.
    private var outstandingByUID: [UInt32: UInt64] = [:]
    /// Budget ceiling from the clients' memory cgroups; `nil` when none is limited.
    private var cgroupCeiling: UInt64?
    /// Per user, 1/64…1: halves when pages prefetched for that user are evicted before
    /// the user reads them, grows back by 1/64 with each useful prefetch. Per user, so
    /// that no client (reporting slow reads, or under a tight limit of its own) shrinks
    /// the budget of the others. At most 4,096 users (then all start again at 1).
    private var wasteScales: [UInt32: (scale: Double, lastShrink: UInt64)] = [:]
    /// The user whose budget the statistics show (the last one fed back).
    private var shownUser: UInt32 = 0
    /// When the job last opened each file (bounded): a whole-file request queued
    /// before that is stale, the job is already reading the file.
    private var openedAt: [FileID: UInt64] = [:]
    private let maxOpened = 1_000_000
    /// One offer in `checkEvery` of a file found whole in the cache before is sent
    /// while the cache holds what the job reads: doubled after each 16 ranges in a row
    /// found resident; back to 1 when such a file had to be loaded again (it was
    /// evicted), at any other range loaded (a range, a file in pieces), and at memory
    /// pressure. A file never found resident is always sent: its first load says
    /// nothing of what the cache holds (an exact order arriving while the data-set
    /// tree still warms loads hundreds such). A cold read of the job, or a prefetch
    /// the ledger finds evicted before use (both judged by how long a read took), has
    /// the next offer checked: on a busy machine a preempted reader's warm reads look
    /// cold a hundred times an epoch, and what a check finds decides.
    public private(set) var checkEvery = 1
    /// Files one request of the whole file (``PrefetchRequest/wholeFile``) found
    /// resident or loaded (bounded: cleared at ``maxOpened``); only their offers are sampled.
    private var knownResident: Set<FileID> = []
    /// Check the next offer of a known file whatever the interval.
    private var probeNext = false

    /// Whether the residency checks find what is predicted cached (1 in 8 offers or
    /// fewer checked): prefetching has nothing to do, the job rereads a cached data set.
    public var findsCached: Bool { checkEvery >= 8 }
    private var offersSinceCheck = 0
    private var residentInRow = 0

    public init(options: Options, now: UInt64, pressure: MemoryPressure = MemoryPressure()) {
        self.options = options
        queue = FairQueue(policy: options.policy, capacity: options.queueCapacity)
        operations = TokenBucket(rate: options.operationsPerSecond, burst: max(1, options.operationsPerSecond / 10), now: now)
        bandwidth = TokenBucket(rate: options.bytesPerSecond, burst: max(Double(options.maxRequestBytes), options.bytesPerSecond / 10), now: now)
        self.pressure = pressure
        statistics.effectiveBudget.store(Int(clamping: options.memoryBudget), ordering: .relaxed)
    }

    /// Bytes that may be prefetched but unread now, for the last user seen.
    public var budget: UInt64 { budget(for: shownUser) }

    /// Bytes that may be prefetched but unread now when releasing for `uid`.
    public func budget(for uid: UInt32) -> UInt64 {
        let base = min(options.memoryBudget, cgroupCeiling ?? .max)
        return UInt64(min(Double(base) * wasteScale(of: uid), Double(UInt64.max >> 1)))
    }

    /// The waste scale of `uid` (1 until its prefetches were evicted before use).
    public func wasteScale(of uid: UInt32) -> Double { wasteScales[uid]?.scale ?? 1 }

    /// Caps the budget at `ceiling` bytes (the clients' memory cgroup room); `nil` lifts the cap.
    public func setCeiling(_ ceiling: UInt64?) {
        cgroupCeiling = ceiling
        statistics.effectiveBudget.store(Int(clamping: budget), ordering: .relaxed)
    }

    /// Learns from the fate of a prefetch: evicted before use halves the budget (at most
    /// once a second: one overshoot evicts many at once), useful grows it back.
    public func feedback(_ fate: PrefetchFate, evicted: Bool, uid: UInt32 = 0, now: UInt64) {
        let uid = owner(uid)
        var entry = wasteScales[uid] ?? (1, 0)
        if fate == .wasted && evicted {
            // Pages may go before their time: what was resident a moment ago may not be now.
            probeNext = true
            guard now &- entry.lastShrink >= 1_000_000_000 else { return }
            entry = (max(1.0 / 64, entry.scale * 0.5), now)
        } else if fate == .useful {
            guard entry.scale < 1 else { return }
            entry.scale = min(1, entry.scale + 1.0 / 64)
        } else {
            return
        }
        if wasteScales[uid] == nil && wasteScales.count >= 4_096 { wasteScales.removeAll(keepingCapacity: true) }
        wasteScales[uid] = entry.scale < 1 ? entry : nil
        shownUser = uid
        statistics.effectiveBudget.store(Int(clamping: budget), ordering: .relaxed)
    }

    public var queuedCount: Int { queue.count }

    /// Whether the last ``release(now:submit:)`` stopped for want of rate tokens, which
    /// only time brings back (budget comes back with the job's reads and the executor's
    /// results, which wake the engine anyway).
    public private(set) var waitingForTokens = false
    public var outstandingBytes: UInt64 { outstandingTotal }

    /// Considers predictions for one client.
    /// - Parameter file: the path and size of a file id, `nil` when unknown.
    public func offer(_ predictions: [Prediction], uid: UInt32, gid: UInt32, groups: [UInt32] = [], now: UInt64, file: (FileID) -> (path: String, size: UInt64)?) {
        // top-k is applied by the predictors (`limit`); a Markov path adds steps beyond it.
        statistics.offered.add(predictions.count)
        var duplicates = 0
        defer { if duplicates > 0 { statistics.duplicates.add(duplicates) } }
        for prediction in predictions {
            guard prediction.confidence >= options.confidenceThreshold else {
                statistics.belowThreshold.add(1)
                continue
            }
            // Most offers repeat one still fresh (a Markov path moves on by one file per
            // open): found before the file's record is looked up.
            let key = DedupKey(file: prediction.fileID, offset: prediction.offset, length: prediction.length)
            if let seen = newest.time(of: key) ?? recent[key], now &- seen < options.dedupWindowNanoseconds {
                duplicates += 1
                continue
            }
            guard let info = file(prediction.fileID) else {
                statistics.unknownFiles.add(1)
                continue
            }
            // A size of 0 is unknown (a file announced before it was ever opened): ask
            // for up to the cap; the executor stops at the real end of the file.
            let available = info.size == 0 ? options.maxRequestBytes : (info.size > prediction.offset ? info.size - prediction.offset : 0)
            var length = prediction.length == 0 ? available : min(prediction.length, available)
            length = min(length, options.maxRequestBytes)
            guard length > 0 else { continue }
            // Sent or assumed resident, not offered again until the job reads it.
            recent[key] = now
            newest.record(key, at: now)
            recentByFile[prediction.fileID, default: []].append(key)
            if prediction.fileID == lastConsumed { lastConsumed = nil }
            if checkEvery > 1 && prediction.offset == 0 && prediction.predictor != .pattern && knownResident.contains(prediction.fileID) {
                offersSinceCheck += 1
                if offersSinceCheck < checkEvery && !probeNext {
                    statistics.assumedResident.add(1)
                    continue
                }
                offersSinceCheck = 0
                probeNext = false
            }
            // In pieces (``Prediction/pieceBytes``) where the size is known.
            let piece = info.size == 0 ? length : Prediction.pieceBytes
            var done: UInt64 = 0
            while done < length {
                let size = min(piece, length - done)
                var request = PrefetchRequest(
                    fileID: prediction.fileID, path: info.path, uid: uid, gid: gid, groups: groups, offset: prediction.offset + done,
                    length: size, confidence: prediction.confidence, deadline: prediction.deadline, predictor: prediction.predictor,
                    queuedAt: now)
                request.wholeFile = prediction.offset == 0 && size == info.size
                enqueue(request)
                done += size
            }
        }
        pruneRecent(now)
    }

    private func enqueue(_ request: PrefetchRequest) {
        statistics.queued.add(1)
        if queue.insert(request) { statistics.queueDropped.add(1) }
    }

    /// Hands requests to `submit` while budget, rates and memory pressure allow.
    /// - Parameters:
    ///   - hasRoom: whether the executor would start a request of this user soon; a
    ///     user without room passes its turn (the others may have it).
    ///   - submit: `false` when the executor cannot take more now.
    public func release(now: UInt64, hasRoom: (UInt32) -> Bool = { _ in true }, submit: (PrefetchRequest) -> Bool) {
        expire(now)
        waitingForTokens = false
        var atBudget = 0  // users in a row found at their budget (or without room)
        while let next = queue.next {
            if next.offset == 0, next.predictor != .pattern, let opened = openedAt[next.fileID], opened >= next.queuedAt {
                queue.removeNext()
                statistics.staleDropped.add(1)
                continue
            }
            if pressure.current(now: now) > options.pressureThreshold {
                statistics.pressureWaits.add(1)
                checkEveryOffer()
                return
            }
            let budgeted = withinBudget(next)
            if !budgeted { statistics.budgetWaits.add(1) }
            guard budgeted, hasRoom(next.uid) else {
                // This user is at its budget (its waste scale may be small) or has no room
                // at the executor: the others may have.
                atBudget += 1
                guard atBudget < queue.users else { return }
                queue.skipTurn()
                continue
            }
            atBudget = 0
            guard operations.available(1, now: now), bandwidth.available(Double(next.length), now: now) else {
                statistics.rateWaits.add(1)
                waitingForTokens = true
                return
            }
            // Tokens are spent only on what the executor took.
            guard submit(next) else { return }
            _ = operations.take(1, now: now)
            _ = bandwidth.take(Double(next.length), now: now)
            queue.removeNext()
            reserve(next.fileID, uid: owner(next.uid), bytes: next.length, predictor: next.predictor, now: now)
            statistics.released.add(1)
        }
    }

    /// Whether `request` fits: alone, a user has the whole budget (and one request always
    /// goes when nothing is outstanding); beside others holding prefetched bytes or
    /// waiting, each has budget ÷ users. The total may then exceed the budget until the
    /// first user's bytes are read or expire: by half of it with two users, at most.
    private func withinBudget(_ request: PrefetchRequest) -> Bool {
        let uid = owner(request.uid)
        let mine = outstandingByUID[uid] ?? 0
        let others = outstandingByUID.count - (outstandingByUID[uid] == nil ? 0 : 1)
        var queued = queue.users
        if let adopted, queue.holds(adopted.from), queue.holds(adopted.heir) { queued -= 1 }  // one user
        let users = UInt64(1 + max(others, queued - 1))
        if users == 1 {
            return outstandingTotal + request.length <= budget(for: uid) || outstandingTotal == 0
        }
        return mine + request.length <= budget(for: uid) / users || mine == 0
    }

    /// A user whose prefetches count against another's share of the budget: the job's
    /// first process takes over what was warmed as no one before its first event
    /// (``PrefetchEngine/anyone``), and those guesses are its own, not a second user's.
    private var adopted: (from: UInt32, heir: UInt32)?

    private func owner(_ uid: UInt32) -> UInt32 {
        guard let adopted, uid == adopted.from else { return uid }
        return adopted.heir
    }

    /// From now on what `uid`'s requests hold of the budget (held now, and released
    /// later from its queue) is `heir`'s, and so are its waste scale's shrinks: the two
    /// are one user for the budget. The requests are still opened as `uid`. One such
    /// user at a time (a later call replaces the earlier).
    public func countAsOwn(_ uid: UInt32, of heir: UInt32) {
        guard uid != heir else { return }
        adopted = (uid, heir)
        if let scale = wasteScales.removeValue(forKey: uid), scale.scale < wasteScale(of: heir) { wasteScales[heir] = scale }
        guard let held = outstandingByUID.removeValue(forKey: uid) else { return }
        outstandingByUID[heir, default: 0] += held
        for (file, entry) in outstanding where entry.uid == uid { outstanding[file]?.uid = heir }
    }

    private func reserve(_ file: FileID, uid: UInt32, bytes: UInt64, predictor: PredictorKind, now: UInt64) {
        var held: UInt64 = 0
        if let previous = outstanding[file] {
            // A file prefetched for two users counts against the last one's share.
            unreserve(previous.bytes, of: previous.uid)
            held = previous.bytes
        }
        outstanding[file] = (held + bytes, now, uid, predictor)
        if file == lastConsumed { lastConsumed = nil }
        outstandingTotal += held + bytes
        outstandingByUID[uid, default: 0] += held + bytes
        statistics.outstandingBytes.store(Int(outstandingTotal), ordering: .relaxed)
    }

    private func unreserve(_ bytes: UInt64, of uid: UInt32) {
        outstandingTotal -= bytes
        let held = outstandingByUID[uid] ?? 0
        outstandingByUID[uid] = held > bytes ? held - bytes : nil
    }

    /// The executor finished a request: its reservation becomes what it really loaded.
    public func completed(_ result: PrefetchResult) {
        let wholeFile = result.request.wholeFile
        switch result.outcome {
        case .skipped:
            residentInRow += 1
            if residentInRow >= 16 {
                residentInRow = 0
                checkEvery = min(checkEvery * 2, max(options.maxCheckInterval, 1))
            }
            if wholeFile { knowResident(result.request.fileID) }
        case .completed:
            // A file known resident loaded again was evicted; a first load is no news.
            if !wholeFile || knownResident.contains(result.request.fileID) { checkEveryOffer() }
            if wholeFile { knowResident(result.request.fileID) }
        case .denied, .missing, .failed, .cannotLast:
            break
        }
        guard var entry = outstanding[result.request.fileID] else { return }
        let unused = result.request.length - min(result.request.length, result.bytes)
        let released = min(entry.bytes, unused)
        entry.bytes -= released
        unreserve(released, of: entry.uid)
        outstanding[result.request.fileID] = entry.bytes == 0 ? nil : entry
        statistics.outstandingBytes.store(Int(outstandingTotal), ordering: .relaxed)
    }

    /// An exact order replaced `predictor`'s guesses (the lookahead's announcements the
    /// data-set tree's): its queued requests are dropped, and what it prefetched no
    /// longer holds the budget, so the exact order has all of it (where memory is
    /// short, the kernel evicts the guesses, least recently used, first). Returns the
    /// requests dropped.
    @discardableResult
    public func withdraw(_ predictor: PredictorKind) -> Int {
        let dropped = queue.removeAll { $0.predictor == predictor }
        statistics.withdrawn.add(dropped)
        for (file, entry) in outstanding where entry.predictor == predictor {
            outstanding[file] = nil
            unreserve(entry.bytes, of: entry.uid)
        }
        statistics.outstandingBytes.store(Int(outstandingTotal), ordering: .relaxed)
        return dropped
    }

    /// The job opened a file at `now`: whole-file requests for it queued before are stale.
    public func opened(_ file: FileID, now: UInt64) {
        if openedAt.count >= maxOpened { openedAt.removeAll(keepingCapacity: true) }
        openedAt[file] = now
    }

    /// The job waited for storage, or its reading thread was only slow: the next offer
    /// of a known file is checked (``checkEvery``).
    public func noteColdRead() {
        probeNext = true
    }

    private func knowResident(_ file: FileID) {
        if knownResident.count >= maxOpened { knownResident.removeAll(keepingCapacity: true) }
        knownResident.insert(file)
    }

    private func checkEveryOffer() {
        checkEvery = 1
        offersSinceCheck = 0
        residentInRow = 0
    }

    /// The job read a file: what was prefetched of it no longer counts against the budget.
    public func consumed(_ file: FileID) {
        // A file's reads follow its open: nothing of it was offered or reserved since
        // the first of them (two table lookups saved per read).
        guard file != lastConsumed else { return }
        lastConsumed = file
        forget(file)
        guard let entry = outstanding.removeValue(forKey: file) else { return }
        unreserve(entry.bytes, of: entry.uid)
        statistics.outstandingBytes.store(Int(outstandingTotal), ordering: .relaxed)
    }

    /// Forgets what was offered of `file`: offered again, it goes out at once, not
    /// only after the de-duplication window (a read, a retry as another client).
    public func forget(_ file: FileID) {
        guard let keys = recentByFile.removeValue(forKey: file) else { return }
        for key in keys { recent[key] = nil }
        newest.remove(file)
    }

    private func expire(_ now: UInt64) {
        guard now &- lastExpiry >= 1_000_000_000 else { return }
        lastExpiry = now
        for (file, entry) in outstanding where now &- entry.since > options.expiryNanoseconds {
            outstanding[file] = nil
            unreserve(entry.bytes, of: entry.uid)
            statistics.expiredBytes.add(Int(entry.bytes))
        }
        statistics.outstandingBytes.store(Int(outstandingTotal), ordering: .relaxed)
    }

    /// The file ``consumed(_:)`` last removed from `recent` and `outstanding`, while
    /// nothing of it has been added to them since.
    private var lastConsumed: FileID?

    private func pruneRecent(_ now: UInt64) {
        guard now &- lastPrune >= 1_000_000_000 else { return }
        lastPrune = now
        recent = recent.filter { now &- $0.value < options.dedupWindowNanoseconds }
        recentByFile = recentByFile.compactMapValues { keys in
            let live = keys.filter { recent[$0] != nil }
            return live.isEmpty ? nil : live
        }
    }
}

/// A copy of the newest few entries of the scheduler's de-duplication table (key and
/// time offered), kept equal to it: recorded and removed with it; an entry older
/// than the window is treated alike in both. Oldest first.
struct NewestOffers {
    static let capacity = 16
    private var entries: [(key: PrefetchScheduler.DedupKey, time: UInt64)] = []

    func time(of key: PrefetchScheduler.DedupKey) -> UInt64? {
        entries.first(where: { $0.key == key })?.time
    }

    mutating func record(_ key: PrefetchScheduler.DedupKey, at time: UInt64) {
        entries.removeAll { $0.key == key }
        entries.append((key, time))
        if entries.count > Self.capacity { entries.removeFirst() }
    }

    mutating func remove(_ file: FileID) {
        entries.removeAll { $0.key.file == file }
    }
}
