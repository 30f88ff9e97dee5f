import DequeModule
import Foundation
import GoFetchConfig
import GoFetchEvents
import GoFetchExecute
import GoFetchIngest
import GoFetchPredict
import GoFetchSystem
import Logging
import Synchronization

/// Live prediction and prefetching: fed by ingest, it runs the predictors, the
/// scheduler and the executor on its own thread, so ingest never waits on them.
///
/// Batches beyond `capacity` events are dropped (counted) rather than queued.
public final class PrefetchEngine: EventSink, @unchecked Sendable {
    public let markov: MarkovPredictor?
    public let remaining: EpochRemainingSet
    public let patterns: PatternDetector
    public let hybrid: HybridPredictor
    /// The GRU (`predictor.ml.enabled` with a trained model), inside the hybrid.
    public let gru: GRUPredictor?
    public let lookahead: LookaheadPredictor
    /// The folder tree the job reads from, warmed from the first epoch on when no
    /// order predictor follows the job (``DataSetTree``); listed by `lister`.
    public let tree: DataSetTree
    private let lister: DirectoryLister?
    /// How often, recently, an exact order (lookahead, Markov, GRU) answered an open
    /// (exponentially weighted): the tree stays quiet while one does.
    private var orderedShare = 0.5
    private let scheduler: PrefetchScheduler
    private let executor: PrefetchExecutor
    /// The scheduler's and the executor's counters: what the figures (Metrics) read of
    /// the parts the engine runs.
    public var schedulerStatistics: SchedulerStatistics { scheduler.statistics }
    public var executorStatistics: ExecutorStatistics { executor.statistics }
    /// Fates of prefetches and warm/cold accesses; owned by the engine thread.
    public let ledger: PrefetchLedger
    /// The clients' memory cgroups: the budget never exceeds their room.
    public let cgroups: CgroupBudget
    /// Events refused because the engine's inbox was full.
    public let droppedEvents = Atomic<Int>(0)
    /// Predictions not sent because the client they would be opened as never reported
    /// the file (``FileReporters``): another client's events had put it there.
    public let unreported = Atomic<Int>(0)
    private var reporters = FileReporters()
    /// What offerTree last asked the tree with: when neither changed, no waiting file became eligible.
    private var reportersSeen = -1, treeClientSeen: UInt32 = .max
    /// Files listed since offerTree last ran: those the tree passed over go out at once.
    private var listedSinceOffer: [FileID] = []
    public let predictions = Atomic<Int>(0)
    private let topK: Int
    private let capacity: Int
    private let logger: Logger

    /// What ingest handed over and the engine has not taken yet. Events and control
    /// records wait in one queue per client user, taken in turns of at most
    /// ``turn`` each: one user's flood of events (a hostile client, or a job
    /// announcing millions of files) waits behind its own backlog, not in front of
    /// another user's opens. File records are taken whole (events name them).
    private struct Inbox {
        var files: [FileRecord] = []
        var listed: [ListedFile] = []
        var queues: [UInt32: Deque<TraceEvent>] = [:]
        var events = 0
        var results: [PrefetchResult] = []
        var stopping = false
    }
    /// Events of one user taken per turn.
    static let turn = 256
    private let inbox = Mutex(Inbox())
    private let wakeUp = DispatchSemaphore(value: 0)
    private var thread: JoinableThread?
    private var files: [FileID: (path: String, size: UInt64)] = [:]
    private var running = false
    private let choices = Mutex(ChoiceCounts())
    /// The clients' supplementary groups, for the executor's permission checks (engine thread).
    private let clientGroups = ClientGroups()
    /// `prefetcher.evict_consumed`, and the data set's bytes as of the last epoch boundary.
    private let evictConsumed: Bool
    private var dataSetBytes: (epoch: Int, bytes: UInt64) = (-1, 0)
    private let published = Mutex(AccountingSnapshot())
    private var lastPublished: UInt64 = 0

    /// How often the hybrid chose each predictor, epoch boundaries seen, and what the
    /// lookahead and the data-set tree did (published by the engine thread).
    public struct ChoiceCounts: Sendable, Equatable {
        public var markov = 0
        public var remainingSet = 0
        public var gru = 0
        public var epochs = 0
        /// Files announced by the Python client's lookahead.
        public var announced = 0
        /// The data-set tree: its root, files, bytes, requests handed out.
        public var treeRoot: String?
        public var treeFiles = 0
        public var treeBytes: UInt64 = 0
        public var treeRequests = 0
        /// Files of the trees left out at the tree's bound (``DataSetTree/Options/maxFiles``).
        public var treeFilesLeftOut = 0
        /// The data-set root taken from the last run of the same command, before any open.
        public var treeFromLastRun: String?
        /// Files of the tree put first, in the order the last run first opened them.
        public var treeOrderFromLastRun = 0
        /// Epochs after the first warmed in the last run's order of that epoch
        /// (``DataSetTree/prefer(epochOrders:epochs:)``).
        public var treeEpochsInLastRunsOrder = 0
        /// The scan ahead warmed no epoch past the last run's epochs, this many
        /// (``DataSetTree/stoppedAtLastRunsEpochs``).
        public var treeStoppedAtLastRunsEpochs: Int?
        /// Folders the job's command line named, warmed from the start as data sets
        /// (``DataSetTree/seed(root:uid:gid:pid:tentative:)``); those dropped because
        /// the job read elsewhere.
        public var treeHints: [String] = []
        public var treeHintsDropped: [String] = []
    }

    public var choiceCounts: ChoiceCounts { choices.withLock { $0 } }

    /// The ledger's counters when an epoch ended (the remaining set saw the boundary),
    /// and the wall time of the open that began the next one: per-epoch figures are
    /// the differences. At most ``maxEpochMarks``; later boundaries are counted only.
    public struct EpochMark: Sendable {
        public var wallNanoseconds: Int64
        public var counters: LedgerCounters
    }
    public static let maxEpochMarks = 10_000
    private let marks = Mutex<[EpochMark]>([])
    private var markedEpochs = 0
    public var epochMarks: [EpochMark] { marks.withLock { $0 } }

    /// Runs parts built elsewhere (the runtime's builder, ``TraceDaemon``): this
    /// initialiser only connects them.
    /// - Parameters:
    ///   - knownFiles: the store's files, as the catalog starts with them.
    ///   - ledger: its fates feed the scheduler's budget (``PrefetchLedger/init(options:onFate:)``).
    ///   - makeExecutor: builds the executor around the engine's result inbox.
    ///   - lister: walks the data-set trees (as the client); without one the tree
    ///     predictor only knows the files the job opened.
    ///   - shares: each user's share of the daemon's CPU: a user past it has its queued
    ///     events left for later, and its predictions' time is charged to it.
    public init(
        configuration: Configuration, knownFiles: [FileRecord], predictors: Predictors, scheduler: PrefetchScheduler,
        ledger: PrefetchLedger, cgroups: CgroupBudget,
        makeExecutor: (_ onResult: @escaping @Sendable (PrefetchResult) -> Void) -> PrefetchExecutor,
        lister: DirectoryLister? = nil, shares: UserShares? = nil, pace: IngestPace? = nil, logger: Logger
    ) {
        self.logger = logger
        self.pace = pace
        self.lister = lister
        self.shares = shares
        evictConsumed = configuration.prefetcher.evictConsumed
        topK = configuration.prefetcher.topKPredictions
        capacity = configuration.storage.queueCapacity
        markov = predictors.markov
        remaining = predictors.remaining
        patterns = predictors.patterns
        gru = predictors.gru
        hybrid = predictors.hybrid
        lookahead = predictors.lookahead
        tree = predictors.tree
        paths = predictors.paths
        for record in knownFiles { files[record.id] = (record.path, record.size) }
        self.scheduler = scheduler
        self.ledger = ledger
        self.cgroups = cgroups
        let results = ResultForwarder()
        executor = makeExecutor { result in results.forward(result) }
        results.engine = self
    }
    private let paths: FilePaths
    private let shares: UserShares?
    /// Told whether predictions are found cached, so ingest can pass less often.
    private let pace: IngestPace?
    /// One prediction in `timedEvery` is timed (its percentiles stand; two clock reads
    /// and a histogram update per event were a twentieth of the engine thread).
    private static let timedEvery = 8
    private var predictionsUntilTimed = 1

    /// Hands executor results back to the engine thread.
    private final class ResultForwarder: @unchecked Sendable {
        weak var engine: PrefetchEngine?
        func forward(_ result: PrefetchResult) { engine?.deliver(result) }
    }

    /// A result wakes the engine only when the executor runs low on the user's requests
    /// (the engine releases more) or many results wait: otherwise it waits for the next
    /// events, which come with the job's reads, or the wait's timeout. A wake-up per read
    /// was most of the engine thread's switches. Results are always taken before the
    /// events that came after them, so no fate is judged on a result not yet seen.
    private func deliver(_ result: PrefetchResult) {
        let waiting = inbox.withLock { inbox -> Int in
            inbox.results.append(result)
            return inbox.results.count
        }
        if waiting >= Self.resultsPerWakeUp || executor.runsLow(for: result.request.uid) { wakeUp.signal() }
    }
    /// Results that wake the engine even while the executor has enough requests waiting.
    static let resultsPerWakeUp = 64

    public func start() {
        executor.start()
        running = true
        thread = JoinableThread(name: "gofetch-predict") { [self] in run() }
    }

    public func stop() {
        guard running else { return }
        running = false
        inbox.withLock { $0.stopping = true }
        wakeUp.signal()
        thread?.join()
        scheduler.statistics.leftAtStop.add(scheduler.queuedCount)
        executor.stop()
        // The engine thread is gone: settle what is left on this one.
        for result in inbox.withLock({ $0.results }) { ledger.completed(result) }
        ledger.finish()
        publish(now: Clock.monotonicNanoseconds(), force: true)
    }

    /// The accounting as the engine thread last published it (at most 0.5 s old; final after ``stop()``).
    public func accounting() -> AccountingSnapshot { published.withLock { $0 } }

    private func publish(now: UInt64, force: Bool = false) {
        guard force || now &- lastPublished >= 500_000_000 else { return }
        lastPublished = now
        let snapshot = ledger.snapshot()
        published.withLock { $0 = snapshot }
    }

    /// Warms `root` as a data set from the start, before the job opens anything in
    /// it. Listed and warmed as `client` (its uid and gid; its pid's groups), in the
    /// tree's order, within the budget, while the job's opens show no order.
    /// - Parameters:
    ///   - client: `nil`: a job started by root, which may change its user. Until
    ///     its first event names the process, as ``anyone`` (only what every user of
    ///     the machine may list and read); then as that process, which walks the
    ///     roots again for what only it may list.
    ///   - tentative: the job's command line names the folder (a hint, dropped when
    ///     the job reads elsewhere: ``DataSetTree/noteOpen(path:)``); otherwise the
    ///     last run of the same command read its files in an order nothing predicted.
    ///   - awaitOrder: an order for the tree follows (``preferOrder(_:)``, called even
    ///     when there is none): the tree hands nothing out until it comes, for at most
    ///     a second, or its first requests would queue in the walk's order ahead of it.
    public func seedDataSet(root: String, client: (uid: UInt32, gid: UInt32, pid: UInt32)?, tentative: Bool = false,
                            awaitOrder: Bool = false) {
        seeds.withLock { $0.list.append(Seed(root: root, client: client, tentative: tentative, awaitOrder: awaitOrder)) }
        wakeUp.signal()
    }

    /// The identity a job started by root is warmed as before its first event: a uid
    /// and gid no one has (the kernel's largest valid ids), no supplementary groups
    /// (no pid to take them from). The kernel's checks as it pass only what the
    /// "other" permission bits (and ACLs) grant every user: reading it ahead shows no
    /// client anything it could not read itself, whoever the job turns out to be.
    public static let anyone: (uid: UInt32, gid: UInt32, pid: UInt32) = (0xFFFF_FFFE, 0xFFFF_FFFE, 0)

    /// Orders the seeded tree as the last run of the same command first opened its
    /// files (the store's, read off the engine thread): ``DataSetTree/prefer(order:)``.
    /// Files not handed out yet follow it; the rest of the tree follows in the walk's
    /// order. At most the tree's bound of files is kept.
    public func preferOrder(_ order: [FileID]) {
        seeds.withLock { $0.order = Array(order.prefix(tree.options.maxFiles)) }
        wakeUp.signal()
    }

    /// The last run's order of every epoch (the store's ``TraceStore/openPasses``, read
    /// off the engine thread): from the second epoch on, the tree warms each epoch in
    /// it (``DataSetTree/prefer(epochOrders:epochs:)``). `epochs`: how many epochs that
    /// run read, when known; the tree warms none past them ahead of time.
    public func preferEpochOrders(_ orders: [[FileID]], epochs: Int?) {
        seeds.withLock { $0.epochOrders = (orders, epochs) }
        wakeUp.signal()
    }

    private struct Seed {
        var root: String
        var client: (uid: UInt32, gid: UInt32, pid: UInt32)?
        var tentative: Bool
        var awaitOrder = false
    }
    private let seeds = Mutex<(list: [Seed], order: [FileID]?, epochOrders: (orders: [[FileID]], epochs: Int?)?)>(([], nil, nil))
    /// Files the last run's order placed first in the tree.
    private var orderedFromLastRun = 0
    /// Until when the tree waits for the order a seed announced (``seedDataSet``'s `awaitOrder`).
    private var orderDue: UInt64?
    /// The process of the first event: it takes over what was seeded as ``anyone``.
    private var firstClient: (uid: UInt32, gid: UInt32, pid: UInt32)?
    private var seededRoot: String?
    private var hintsSeeded: [String] = []
    /// The tree offered predictions since the lookahead last withdrew them.
    private var treeOffered = false

    private func takeSeeds() {
        let (taken, order, epochOrders) = seeds.withLock { seeds in
            defer { seeds = ([], nil, nil) }
            return seeds
        }
        for seed in taken {
            // The order is taken after the seeds, below: one that came with its seed clears this at once.
            if seed.awaitOrder { orderDue = Clock.monotonicNanoseconds() &+ 1_000_000_000 }
            let client = seed.client ?? firstClient ?? Self.anyone
            guard let root = tree.seed(root: seed.root, uid: client.uid, gid: client.gid, pid: client.pid, tentative: seed.tentative) else { continue }
            if seed.tentative { hintsSeeded.append(root) } else { seededRoot = root }
            walk(root, uid: client.uid, gid: client.gid, pid: client.pid)
            // No open has shown an order yet.
            orderedShare = min(orderedShare, 0.2)
        }
        // After the seeds: the order places the files their roots hold.
        if let order {
            orderDue = nil
            if !order.isEmpty { orderedFromLastRun = tree.prefer(order: order) }
        }
        if let epochOrders, epochOrders.orders.count > 1 || epochOrders.epochs != nil {
            tree.prefer(epochOrders: epochOrders.orders, epochs: epochOrders.epochs)
        }
    }

    /// The first event's process takes over the roots seeded as ``anyone``: what was
    /// listed as anyone it may list too, and its own walk adds what only it may list.
    private func takeOverTree(as client: (uid: UInt32, gid: UInt32, pid: UInt32)) {
        guard tree.client.uid == Self.anyone.uid else { return }
        reporters.adopt(from: Self.anyone.uid, to: client.uid)
        // What was warmed as no one is the job's: it does not halve the job's budget.
        scheduler.countAsOwn(Self.anyone.uid, of: client.uid)
        tree.rebind(uid: client.uid, gid: client.gid, pid: client.pid)
        // Only the lister's walk: the files known under the roots joined the tree when
        // they were seeded, and those learnt since as they came (`receive`).
        for root in tree.roots { lister?.requestTree(root, uid: client.uid, gid: client.gid, pid: client.pid) }
        for file in deniedToAnyone { handOutAgain(file) }
    }

    /// Files of the tree that no one (``anyone``) was denied: each is handed out again
    /// once, when the first client takes the tree over or at once if it has, as that
    /// client, who may read them. At most the tree's files.
    private var deniedToAnyone: Set<FileID> = []

    private func deniedAsAnyone(_ request: PrefetchRequest) {
        guard request.uid == Self.anyone.uid, request.predictor == .dataSetTree, tree.contains(request.fileID),
              deniedToAnyone.insert(request.fileID).inserted else { return }
        if tree.client.uid != Self.anyone.uid { handOutAgain(request.fileID) }
    }

    private func handOutAgain(_ file: FileID) {
        scheduler.forget(file)
        tree.handOutAgain(file)
    }

    /// A new data-set root: the lister walks it as the client, and the files known
    /// already under it join the tree now.
    private func walk(_ root: String, uid: UInt32, gid: UInt32, pid: UInt32) {
        lister?.requestTree(root, uid: uid, gid: gid, pid: pid)
        tree.adopt(known: files.compactMap { id, file in
            DataSetTree.isUnder(file.path[...], root) ? (id, file.path, file.size) : nil
        })
    }

    /// Takes a batch from ingest without waiting. Events beyond the inbox's room
    /// (`capacity` in all, half of it for any one user) are dropped, counted; file
    /// records never are: later events name them.
    public func consume(_ batch: EventBatch) {
        let dropped = inbox.withLock { inbox -> Int in
            inbox.files += batch.files
            inbox.listed += batch.listed
            var dropped = 0
            // Control records (lookahead, epochs) go before the batch's events, as they were sent.
            for list in [batch.control, batch.events] {
                var index = list.startIndex
                while index < list.endIndex {
                    // A run of one user's records at a time: one dictionary access per run.
                    let uid = list[index].uid
                    var end = index + 1
                    while end < list.endIndex && list[end].uid == uid { end += 1 }
                    let room = min(capacity - inbox.events, capacity / 2 - (inbox.queues[uid]?.count ?? 0))
                    let taken = max(0, min(room, end - index))
                    if taken > 0 { inbox.queues[uid, default: []].append(contentsOf: list[index..<(index + taken)]) }
                    inbox.events += taken
                    dropped += end - index - taken
                    index = end
                }
            }
            return dropped
        }
        if dropped > 0 { droppedEvents.add(dropped) }
        wakeUp.signal()
    }

    /// Takes what is waiting: all file records, and up to ``turn`` records of each user
    /// who has CPU share left (``UserShares``); `more` when such records are left.
    private func takeInbox() -> (files: [FileRecord], listed: [ListedFile], turns: [[TraceEvent]], results: [PrefetchResult], stopping: Bool, more: Bool) {
        inbox.withLock { inbox in
            defer {
                inbox.files.removeAll(keepingCapacity: true)
                inbox.listed.removeAll(keepingCapacity: true)
                inbox.results.removeAll(keepingCapacity: true)
            }
            var turns: [[TraceEvent]] = []
            var more = false
            for uid in Array(inbox.queues.keys) {
                // A user past its share waits; its events stay queued (its half of the inbox bounds them).
                if let shares, shares.isSharing, !shares.mayRun(uid), !inbox.stopping { continue }
                let count = min(Self.turn, inbox.queues[uid]!.count)
                turns.append(Array(inbox.queues[uid]!.prefix(count)))
                inbox.queues[uid]!.removeFirst(count)
                if inbox.queues[uid]!.isEmpty { inbox.queues[uid] = nil } else { more = true }
                inbox.events -= count
            }
            return (inbox.files, inbox.listed, turns, inbox.results, inbox.stopping, more)
        }
    }

    private func run() {
        var backlog = false
        while true {
            // While requests wait for rate tokens, come back soon to release them; budget
            // and the executor's room come back with events and results, which wake this
            // thread (the 20 ms is for what only time frees: expiry, memory pressure).
            let timeout: DispatchTime = scheduler.waitingForTokens ? .now() + .milliseconds(2)
                : scheduler.queuedCount > 0 ? .now() + .milliseconds(20) : .now() + .milliseconds(100)
            if !backlog { _ = wakeUp.wait(timeout: timeout) }
            let taken = takeInbox()
            backlog = taken.more
            for result in taken.results {
                scheduler.completed(result)
                ledger.completed(result)
                if result.outcome == .denied { deniedAsAnyone(result.request) }
            }
            receive(files: taken.files, listed: taken.listed)
            takeSeeds()
            // One turn of each user's records, then what they made is released below.
            if firstClient == nil, let first = taken.turns.first?.first {
                firstClient = (first.uid, first.gid, first.pid)
                takeOverTree(as: (first.uid, first.gid, first.pid))
            }
            for records in taken.turns {
                if let uid = records.first?.uid { charged(uid) { process(records) } }
            }
            // The last events (ingest flushes right before stopping) still count: the
            // job's last reads decide fates, so the rest is taken (at once: `backlog`)
            // before returning. Nothing new is released after them.
            if taken.stopping {
                if taken.more { continue }
                return
            }
            let now = Clock.monotonicNanoseconds()
            cgroups.refresh(now: now)
            scheduler.setCeiling(cgroups.ceiling)
            offerTree(now: now)
            scheduler.release(now: now, hasRoom: { executor.hasRoom(for: $0) }) { request in
                guard executor.submit(request) else { return false }
                ledger.issued(request, now: now)
                return true
            }
            pace?.setCached(scheduler.findsCached)
            ledger.sweep(now: now)
            publish(now: now)
            var counts = ChoiceCounts()
            counts.markov = hybrid.choices[.markov] ?? 0
            counts.remainingSet = hybrid.choices[.remainingSet] ?? 0
            counts.gru = hybrid.choices[.gru] ?? 0
            counts.epochs = remaining.epochsCompleted
            counts.announced = lookahead.announcedFiles
            counts.treeRoot = tree.root
            counts.treeFiles = tree.files.count
            counts.treeBytes = tree.bytes
            counts.treeRequests = tree.handedOutCount
            counts.treeFilesLeftOut = tree.leftOut
            counts.treeFromLastRun = seededRoot
            counts.treeOrderFromLastRun = orderedFromLastRun
            counts.treeEpochsInLastRunsOrder = tree.epochsInLastRunsOrder
            counts.treeStoppedAtLastRunsEpochs = tree.stoppedAtLastRunsEpochs
            counts.treeHints = hintsSeeded
            counts.treeHintsDropped = tree.hintsDropped
            choices.withLock { $0 = counts }
        }
    }

    /// Under memory pressure, a file the epoch has read is given back when the job
    /// closes it. When the data set does not fit the clients' memory cgroup, reclaim
    /// (least recently used first) would otherwise evict the files the epoch has not
    /// read yet, cached longer ago, and keep the ones it just read and will not read
    /// again until the next epoch. Done as the client on the executor's threads (an
    /// open on slow storage must not hold up predictions); the pages are clean: no I/O.
    /// From the first epoch on when the data-set tree knows the data set.
    private func giveBackIfConsumed(_ event: TraceEvent) {
        // The cheap tests first: this runs at every close.
        guard evictConsumed, let tightest = cgroups.tightest else { return }
        let inTree = tree.contains(event.fileID) && remaining.readThisEpoch.contains(event.fileID)
        guard inTree || remaining.epochsCompleted > 0 && remaining.consumed(event.fileID),
              let file = files[event.fileID] else { return }
        if dataSetBytes.epoch != remaining.epochsCompleted {
            dataSetBytes = (remaining.epochsCompleted, remaining.dataSet.reduce(0) { $0 + (files[$1]?.size ?? 0) })
        }
        // The data set's own pages the job read are in the active page cache: they are
        // not what decides whether it fits.
        let room = tightest.limit > tightest.anonymous ? tightest.limit - tightest.anonymous : 0
        guard max(dataSetBytes.bytes, tree.bytes) > room else { return }
        var request = PrefetchRequest(
            fileID: event.fileID, path: file.path, uid: event.uid, gid: event.gid,
            groups: clientGroups.groups(pid: event.pid, uid: event.uid, gid: event.gid, now: event.monotonicNanoseconds),
            offset: 0, length: 0, confidence: 1, deadline: nil, predictor: .remainingSet, queuedAt: event.monotonicNanoseconds)
        request.purpose = .giveBack
        executor.submit(request)
    }

    /// Keeps the scheduler's queue fed from the data-set tree while no exact order
    /// answers the job's opens; the budget and rates pace what is released.
    ///
    /// The queue is refilled (to 256 requests) once half of it has gone. Files the tree
    /// passed over until the client's walk listed them go out as soon as it does, up to
    /// as many again: the scheduler orders the tree's requests by their place in its
    /// list, so with a last run's order a file first in it that the walk reaches late
    /// goes ahead of those queued, instead of waiting until a hundred of them or more
    /// (seconds of a slow link) have gone.
    private func offerTree(now: UInt64) {
        let target = 256
        let listed = listedSinceOffer
        listedSinceOffer.removeAll(keepingCapacity: listed.count <= 4_096)
        let refill = scheduler.queuedCount < target / 2
        guard !tree.roots.isEmpty, orderedShare < 0.3, refill || !listed.isEmpty else { return }
        if let due = orderDue {
            guard now >= due else { return }
            orderDue = nil  // the order is late: the walk's meanwhile
        }
        let read = remaining.readThisEpoch
        let client = tree.client
        // The tree's work is its client's, charged to its share of the daemon's CPU.
        guard shares?.mayRun(client.uid) != false else { return }
        // Only files the client reported (its lister walk, its opens): the others wait in
        // the tree, not lost for the epoch, until the walk reaches them.
        charged(client.uid) {
            let chunkBytes = min(scheduler.options.maxRequestBytes, Prediction.pieceBytes)
            let made: [Prediction]
            if refill {
                made = tree.next(limit: target - scheduler.queuedCount, epoch: remaining.epochsCompleted,
                                 read: { read.contains($0) }, chunkBytes: chunkBytes,
                                 eligible: { reporters.contains($0, uid: client.uid) },
                                 eligibleChanged: reporters.version != reportersSeen || client.uid != treeClientSeen)
                (reportersSeen, treeClientSeen) = (reporters.version, client.uid)
            } else {
                made = tree.nextListed(listed, limit: 2 * target - scheduler.queuedCount, epoch: remaining.epochsCompleted, read: { read.contains($0) },
                                       chunkBytes: chunkBytes, eligible: { reporters.contains($0, uid: client.uid) })
            }
            if !made.isEmpty { treeOffered = true }
            offer(made, uid: client.uid, gid: client.gid, pid: client.pid, now: now)
        }
    }

    /// Runs `body`, charging its time to `uid`'s share of the daemon's CPU (``UserShares``).
    private func charged(_ uid: UInt32, _ body: () -> Void) {
        if let shares { shares.measured(uid, body) } else { body() }
    }

    /// Offers predictions to be opened as the client `uid`, only for files that client
    /// reported (``FileReporters``); the rest are counted in ``unreported``.
    private func offer(_ made: [Prediction], uid: UInt32, gid: UInt32, pid: UInt32, now: UInt64) {
        guard !made.isEmpty else { return }
        predictions.add(made.count)
        var allowed = made
        allowed.removeAll { !reporters.contains($0.fileID, uid: uid) }
        if allowed.count < made.count { unreported.add(made.count - allowed.count) }
        guard !allowed.isEmpty else { return }
        let groups = clientGroups.groups(pid: pid, uid: uid, gid: gid, now: now)
        scheduler.offer(allowed, uid: uid, gid: gid, groups: groups, now: now) { files[$0] }
    }

    /// File records (new files, changed ones) and the files listings found, with the user listed as.
    private func receive(files records: [FileRecord], listed: [ListedFile]) {
        if !records.isEmpty {
            paths.add(records)
            for record in records {
                files[record.id] = (record.path, record.size)
                gru?.directories.add(record)
                if tree.contains(record.id) { tree.resize(record.id, to: record.size) } else { tree.adopt(record.id, path: record.path, size: record.size) }
            }
        }
        for file in listed {
            reporters.add(file.fileID, uid: file.uid)
            listedSinceOffer.append(file.fileID)
            // The walk as anyone may still be going when the first client takes over.
            if file.uid == Self.anyone.uid, let heir = firstClient { reporters.add(file.fileID, uid: heir.uid) }
        }
    }

    /// One user's control records and events, in the order sent.
    private func process(_ records: [TraceEvent]) {
        let now = Clock.monotonicNanoseconds()
        let control = records.filter { $0.kind == .lookahead }
        for record in control {
            lookahead.announce(record)
            reporters.add(record.fileID, uid: record.uid)
        }
        // The exact order replaces the tree's guesses (warmed from the job's start, or
        // since its first opens): they no longer hold the budget or the queue.
        if !control.isEmpty && treeOffered {
            treeOffered = false
            scheduler.withdraw(.dataSetTree)
        }
        for announcer in lookahead.announcers(in: control) {
            let first = lookahead.next(announcer: announcer)
            if let client = control.first(where: { $0.pid == announcer }) {
                offer(first, uid: client.uid, gid: client.gid, pid: client.pid, now: now)
            }
        }
        var lastPID: UInt32 = 0
        for event in records where event.kind != .lookahead {
            if event.pid != lastPID {
                lastPID = event.pid
                cgroups.saw(pid: event.pid, now: now)
            }
            let cold = ledger.observe(event)
            let timed = predictionsUntilTimed == 1
            let started = timed ? Clock.monotonicNanoseconds() : 0
            var made: [Prediction] = []
            switch event.kind {
            case .open:
                reporters.add(event.fileID, uid: event.uid)
                scheduler.consumed(event.fileID)
                scheduler.opened(event.fileID, now: event.monotonicNanoseconds)
                patterns.observe(event)
                hybrid.observe(event)
                if remaining.epochsCompleted != markedEpochs {
                    markedEpochs = remaining.epochsCompleted
                    let mark = EpochMark(wallNanoseconds: event.wallNanoseconds, counters: ledger.counters)
                    marks.withLock { if $0.count < Self.maxEpochMarks { $0.append(mark) } }
                }
                // Hints wait for an open under them (any open: an announced one too).
                if !tree.hints.isEmpty, let path = files[event.fileID]?.path { tree.noteOpen(path: path) }
                var ordered = true
                if lookahead.covers(event.fileID) {
                    // The sampler said exactly what comes next: no guessing needed.
                    lookahead.observe(event)
                    made = lookahead.predict(after: event, limit: topK)
                } else {
                    made = hybrid.predict(after: event, limit: topK)
                    ordered = made.first.map { $0.predictor == .markov || $0.predictor == .gru } ?? false
                    if !ordered, let path = files[event.fileID]?.path,
                       let root = tree.observeOpen(path: path, uid: event.uid, gid: event.gid, pid: event.pid) {
                        walk(root, uid: event.uid, gid: event.gid, pid: event.pid)
                    }
                    // The tree warms the data set in one stable order; the remaining set's
                    // files are among them (a shuffled epoch's order cannot be followed).
                    if !ordered && tree.contains(event.fileID) { made = [] }
                }
                orderedShare = 0.9 * orderedShare + (ordered ? 0.1 : 0)
            case .read, .mmap:
                if event.kind == .mmap { reporters.add(event.fileID, uid: event.uid) }
                scheduler.consumed(event.fileID)
                // The job waited for storage: the scheduler's sampling of residency checks ends.
                if cold { scheduler.noteColdRead() }
                patterns.observe(event)
                made = patterns.predict(after: event, limit: topK)
            case .close:
                giveBackIfConsumed(event)
                continue
            case .epoch, .lookahead:
                continue
            }
            predictionsUntilTimed -= 1
            if timed {
                ledger.recordPrediction(nanoseconds: Clock.monotonicNanoseconds() &- started)
                predictionsUntilTimed = Self.timedEvery
            }
            offer(made, uid: event.uid, gid: event.gid, pid: event.pid, now: now)
        }
    }
}
