import GoFetchEvents
import GoFetchIngest
import GoFetchSchedule
import GoFetchStore

/// The figures printed when `trace` (and later `run`, `daemon`) ends. All measured.
public struct RunSummary: Sendable, Codable, Equatable {
    public var events: Int
    public var opens: Int
    /// Opens the shim warmed whole at open (`trace.open_readahead_kb`); `nil` in summaries
    /// stored before it was counted.
    public var warmedAtOpen: Int?
    public var reads: Int
    public var mmaps: Int
    public var closes: Int
    public var bytesRead: Int
    public var readWaitNanoseconds: Int
    public var coldReads: Int
    public var stallNanoseconds: Int
    public var clients: Int
    public var refusedClients: Int
    /// Passes a client's socket was left unread: its user had taken its share of the daemon's CPU.
    public var heldForShare: Int?
    /// Ingest's passes over the sockets that received something, and those at the relaxed
    /// pace (``IngestPace``); `nil` in summaries stored before they were counted.
    public var ingestPasses: Int?
    public var relaxedPasses: Int?
    public var clientDropped: Int
    public var malformed: Int
    public var unresolved: Int
    public var catalogFull: Int
    /// Identity changes of a file refused because another user registered it; `nil`
    /// in summaries stored before it was counted.
    public var foreignUpdates: Int?
    public var storeDropped: Int
    public var committedEvents: Int
    public var committedFiles: Int
    public var committedBatches: Int
    /// Files the catalog learned from folder listings before their first open (for the GRU).
    public var filesListed: Int
    /// Folders listed, and folders not listed (unreadable for the client, gone, or over a bound).
    public var foldersListed: Int
    public var foldersNotListed: Int
    /// Listed files left out: files known only from listings may fill half the catalog.
    public var listingsSkipped: Int
    /// Data-set trees walked, and their files left out at the walk's bound.
    public var treesWalked: Int
    public var treeFilesNotWalked: Int
    /// gofetch's own CPU time over the run, user and system (its threads, not the
    /// job's), and the run's wall time; `nil` in summaries stored before they were measured.
    public var cpu: CPUTime?
    /// Present when gofetch prefetched (`run`, `daemon`).
    public var prefetch: PrefetchSummary?
    /// Present when the runs are copied to the cluster's store (`storage.url`).
    public var cluster: ClusterSummary?

    public init(ingest: IngestStatistics, store: StoreStatistics, engine: PrefetchEngine? = nil, listing: DirectoryLister.Statistics? = nil,
                cluster: ClusterStatistics? = nil) {
        events = ingest.eventsAccepted.value
        opens = ingest.opens.value
        warmedAtOpen = ingest.warmedAtOpen.value
        reads = ingest.reads.value
        mmaps = ingest.mmaps.value
        closes = ingest.closes.value
        bytesRead = ingest.bytesRead.value
        readWaitNanoseconds = ingest.readWaitNanoseconds.value
        coldReads = ingest.coldReads.value
        stallNanoseconds = ingest.stallNanoseconds.value
        clients = ingest.connectionsAccepted.value
        refusedClients = ingest.connectionsRefused.value
        heldForShare = ingest.heldForShare.value
        ingestPasses = ingest.passes.value
        relaxedPasses = ingest.relaxedPasses.value
        clientDropped = ingest.clientDropped.value
        malformed = ingest.decodeStatistics.total + ingest.messagesTruncated.value
        unresolved = ingest.unresolved.value
        catalogFull = ingest.catalogFull.value
        foreignUpdates = ingest.catalogForeignUpdates.value
        storeDropped = store.dropped.value
        committedEvents = store.committedEvents.value
        committedFiles = store.committedFiles.value
        committedBatches = store.committedBatches.value
        filesListed = ingest.filesListed.value
        foldersListed = listing?.listed ?? 0
        foldersNotListed = (listing?.failed ?? 0) + (listing?.skipped ?? 0)
        listingsSkipped = ingest.listingsSkipped.value
        treesWalked = listing?.trees ?? 0
        treeFilesNotWalked = listing?.treeFilesLeftOut ?? 0
        prefetch = engine.map(PrefetchSummary.init)
        self.cluster = cluster.map(ClusterSummary.init)
    }

    /// What gofetch's own work cost: CPU time over wall time.
    public struct CPUTime: Sendable, Codable, Equatable {
        public var userNanoseconds: UInt64
        public var systemNanoseconds: UInt64
        public var wallNanoseconds: UInt64

        public init(userNanoseconds: UInt64, systemNanoseconds: UInt64, wallNanoseconds: UInt64) {
            self.userNanoseconds = userNanoseconds
            self.systemNanoseconds = systemNanoseconds
            self.wallNanoseconds = wallNanoseconds
        }

        /// The share of one core: CPU time over wall time.
        public var shareOfACore: Double {
            wallNanoseconds == 0 ? 0 : Double(userNanoseconds + systemNanoseconds) / Double(wallNanoseconds)
        }
    }

    /// Events lost anywhere between the application and the store.
    public var dropped: Int { clientDropped + storeDropped + catalogFull }

    public func render(title: String) -> String {
        var lines = ["gofetch \(title) summary"]
        func row(_ name: String, _ value: String) { lines.append("  \(name.padding(toLength: 22, withPad: " ", startingAt: 0))\(value)") }
        row("events", "\(events) (open \(opens), read \(reads), mmap \(mmaps), close \(closes))")
        row("files recorded", "\(committedFiles)")
        if let warmedAtOpen, warmedAtOpen > 0 {
            row("warmed at open", "\(warmedAtOpen) small files on remote storage read whole in one request when the job opened them (trace.open_readahead_kb)")
        }
        row("bytes read", Format.bytes(bytesRead))
        row("time in reads", Format.duration(nanoseconds: readWaitNanoseconds))
        row("cold reads", "\(coldReads) of \(reads) (page-cache misses by their time), stall \(Format.duration(nanoseconds: stallNanoseconds))")
        row("processes", "\(clients)" + (refusedClients > 0 ? " (\(refusedClients) refused)" : ""))
        if let cpu {
            row("gofetch's CPU", "\(Format.duration(nanoseconds: cpu.userNanoseconds + cpu.systemNanoseconds)) (user \(Format.duration(nanoseconds: cpu.userNanoseconds)), "
                + "system \(Format.duration(nanoseconds: cpu.systemNanoseconds))): \(Format.fixed(cpu.shareOfACore * 100, 1)) % of one core over \(Format.duration(nanoseconds: cpu.wallNanoseconds))")
        }
        if let heldForShare, heldForShare > 0 {
            row("held back", "\(heldForShare) passes left a client's messages waiting: its user had taken its share of the daemon's CPU (daemon.user_cpu_share)")
        }
        row("committed", "\(committedEvents) events in \(committedBatches) transactions")
        row("dropped", "\(dropped) (by clients \(clientDropped), store queue full \(storeDropped), file table full \(catalogFull))")
        row("rejected", "\(malformed) malformed messages or records, \(unresolved) events of unknown files, \(foreignUpdates ?? 0) claims on files of another user")
        if foldersListed + foldersNotListed > 0 {
            row("folders listed", "\(foldersListed) (\(foldersNotListed) not listed): \(filesListed) files known before their first open, \(listingsSkipped) left out (half the catalog is the bound)")
        }
        if let cluster {
            row("cluster store", "\(cluster.copiedEvents) events and \(cluster.copiedFiles) files copied in \(cluster.transactions) transactions, "
                + "\(cluster.runsCompleted) runs complete; \(cluster.connections) connections, \(cluster.failures) failures"
                + (cluster.pendingEvents > 0 ? "; \(cluster.pendingEvents) events wait in this machine's store for the next daemon" : "")
                + (cluster.lastError.map { "; last error: \($0)" } ?? ""))
        }
        if let prefetch {
            row("predictions", "\(prefetch.predictions) (Markov chosen \(prefetch.markovChoices), GRU \(prefetch.gruChoices), remaining set \(prefetch.remainingSetChoices); \(prefetch.epochs) epoch boundaries)")
            row("order", "lookahead \(prefetch.announced) files announced; data-set tree " + (prefetch.treeRoot.map { "\($0): \(prefetch.treeFiles) files, \(Format.bytes(prefetch.treeBytes)), \(prefetch.treeRequests) requests; \(treesWalked) walks, \(treeFilesNotWalked + prefetch.treeFilesLeftOut) files left out (1 M files is the bound)" + (prefetch.treeFromLastRun != nil ? "; warmed from the start, as the last run of this command read it" + (prefetch.treeOrderFromLastRun.map { ", \($0) files in the order it first opened them" } ?? "") + (prefetch.treeEpochsInLastRunsOrder.map { ", \($0) later epochs each in that run's order of it" } ?? "") + (prefetch.treeStoppedAtLastRunsEpochs.map { ", none ahead past its \($0) epochs" } ?? "") : "") } ?? "none")
                + (prefetch.treeHints.map { "; named on the command line, warmed from the start: " + $0.joined(separator: ", ") } ?? "")
                + (prefetch.treeHintsDropped.map { " (dropped, the job read elsewhere: " + $0.joined(separator: ", ") + ")" } ?? ""))
            row("prefetch requests", "\(prefetch.released) issued: \(prefetch.completed) warmed, \(prefetch.skipped) already resident, \(prefetch.denied) denied, \(prefetch.missing) missing, \(prefetch.failed) failed, \(prefetch.droppedAtEnd ?? 0) still waiting for a thread when the run ended")
            row("prefetched", Format.bytes(prefetch.bytesLoaded))
            if prefetch.volatileMounts > 0 {
                row("cannot last", "\(prefetch.volatileMounts) FUSE mount(s) drop the page cache at every open (no keep_cache): \(prefetch.cannotLast) requests not warmed")
            }
            row("not issued", "\(prefetch.belowThreshold) below confidence, \(prefetch.duplicates) duplicates, \(prefetch.queueDropped) queue full, \(prefetch.staleDropped) opened while queued, \(prefetch.withdrawn ?? 0) of the tree's withdrawn for an exact order, \(prefetch.assumedResident) assumed resident (all cached), \(prefetch.unknownFiles) unknown files, \(prefetch.unreported ?? 0) not reported by their client, \(prefetch.droppedEvents) events dropped, \(prefetch.leftQueued ?? 0) still queued when the run ended")
            row("waits", "budget \(prefetch.budgetWaits), rate \(prefetch.rateWaits), memory pressure \(prefetch.pressureWaits)")
            let a = prefetch.accounting
            row("accesses", "\(a.accesses) reads/mmaps: \(a.accesses - a.coldAccesses) warm, \(a.coldAccesses) cold; \(a.coveredAccesses) warm thanks to gofetch")
            row("stall", "\(Format.duration(nanoseconds: a.stallNanoseconds)) in cold reads")
            row("prefetch fates", "useful \(a.useful), late \(a.late), wasted \(a.wasted) (\(a.evictedBeforeUse) evicted before use, \(a.unread) never read), skipped \(a.skipped), failed \(a.failedFate)")
            row("accuracy", "\(Format.fixed(a.accuracy * 100, 1)) % useful of issued; coverage \(Format.fixed(a.coverage * 100, 1)) %; hit rate \(Format.fixed(a.hitRate * 100, 1)) %")
            row("latency", "prediction p50 \(Format.duration(nanoseconds: a.predictionP50)) p99 \(Format.duration(nanoseconds: a.predictionP99)); prefetch p50 \(Format.duration(nanoseconds: a.prefetchP50)) p99 \(Format.duration(nanoseconds: a.prefetchP99)); lead p50 \(Format.duration(nanoseconds: a.leadP50))")
            row("budget", "\(Format.bytes(prefetch.effectiveBudget)) in force at the end (config, cgroup room, eviction feedback)")
            if prefetch.givenBack + prefetch.giveBackDropped > 0 {
                row("given back", "\(prefetch.givenBack) files the epoch had read (the data set does not fit the memory cgroup); \(prefetch.giveBackDropped) not done")
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// What the copier to the cluster's store did (``ClusterCopier``).
public struct ClusterSummary: Sendable, Codable, Equatable {
    public var copiedEvents: Int
    public var copiedFiles: Int
    public var transactions: Int
    public var connections: Int
    public var failures: Int
    public var runsCompleted: Int
    /// Committed events left in this machine's store for the next daemon to copy.
    public var pendingEvents: Int
    public var lastError: String?

    public init(_ statistics: ClusterStatistics) {
        copiedEvents = statistics.copiedEvents.value
        copiedFiles = statistics.copiedFiles.value
        transactions = statistics.transactions.value
        connections = statistics.connections.value
        failures = statistics.failures.value
        runsCompleted = statistics.runsCompleted.value
        pendingEvents = statistics.pendingEvents.value
        lastError = statistics.lastError.withLock { $0 }
    }
}

/// What prediction and prefetching did, all counted.
public struct PrefetchSummary: Sendable, Codable, Equatable {
    public var predictions: Int
    public var markovChoices: Int
    public var remainingSetChoices: Int
    public var gruChoices: Int
    public var epochs: Int
    public var belowThreshold: Int
    public var duplicates: Int
    public var unknownFiles: Int
    /// Predictions not sent because the client they would be opened as had not
    /// reported the file (``PrefetchEngine/unreported``); `nil` in summaries stored
    /// before it was counted.
    public var unreported: Int?
    public var queueDropped: Int
    public var staleDropped: Int
    /// The data-set tree's queued requests dropped when the lookahead's exact order came.
    public var withdrawn: Int?
    /// Requests still queued in the scheduler when the run ended (never issued), and
    /// issued ones still waiting for a prefetch thread (dropped unread); `nil` in
    /// summaries stored before they were counted.
    public var leftQueued: Int?
    public var droppedAtEnd: Int?
    /// Offers not sent to be checked while the cache held what the job read.
    public var assumedResident: Int
    public var droppedEvents: Int
    public var released: Int
    public var completed: Int
    public var skipped: Int
    public var denied: Int
    public var missing: Int
    public var failed: Int
    public var cannotLast: Int
    public var volatileMounts: Int
    public var bytesLoaded: Int
    public var budgetWaits: Int
    public var rateWaits: Int
    public var pressureWaits: Int
    public var effectiveBudget: Int
    /// Files the epoch had read whose pages were given back (the data set did not fit
    /// the clients' memory cgroup), and give-backs that could not be done.
    public var givenBack: Int
    public var giveBackDropped: Int
    /// Files announced by the Python client's lookahead.
    public var announced: Int
    /// The data-set tree warmed without an order: its root, files, bytes and requests.
    public var treeRoot: String?
    public var treeFiles: Int
    public var treeBytes: Int
    public var treeRequests: Int
    /// Walked files the tree left out at its bound.
    public var treeFilesLeftOut: Int
    /// The data-set root warmed from the start, as the last run of the same command found it.
    public var treeFromLastRun: String?
    /// Of that tree, the files warmed first in the order the last run first opened them (`nil`: none).
    public var treeOrderFromLastRun: Int?
    /// Epochs after the first warmed in the last run's order of that epoch (`nil`: none).
    public var treeEpochsInLastRunsOrder: Int?
    /// The scan ahead warmed no epoch past the last run's epochs, this many (`nil`: it did not stop).
    public var treeStoppedAtLastRunsEpochs: Int?
    /// Folders the job's command line named, warmed from the start; those dropped
    /// because the job read elsewhere (`nil`: none).
    public var treeHints: [String]?
    public var treeHintsDropped: [String]?
    public var accounting: AccountingSummary
    /// What each epoch saw and what became of its prefetches, by the engine's epoch
    /// boundaries (``PrefetchEngine/EpochMark``); the last runs to the end of the run.
    public var epochFigures: [EpochFigures]

    public init(_ engine: PrefetchEngine) {
        let scheduler = engine.schedulerStatistics
        let executor = engine.executorStatistics
        predictions = engine.predictions.value
        let choices = engine.choiceCounts
        markovChoices = choices.markov
        remainingSetChoices = choices.remainingSet
        gruChoices = choices.gru
        epochs = choices.epochs
        announced = choices.announced
        treeRoot = choices.treeRoot
        treeFiles = choices.treeFiles
        treeBytes = Int(clamping: choices.treeBytes)
        treeRequests = choices.treeRequests
        treeFilesLeftOut = choices.treeFilesLeftOut
        treeFromLastRun = choices.treeFromLastRun
        treeOrderFromLastRun = choices.treeOrderFromLastRun > 0 ? choices.treeOrderFromLastRun : nil
        treeEpochsInLastRunsOrder = choices.treeEpochsInLastRunsOrder > 0 ? choices.treeEpochsInLastRunsOrder : nil
        treeStoppedAtLastRunsEpochs = choices.treeStoppedAtLastRunsEpochs
        treeHints = choices.treeHints.isEmpty ? nil : choices.treeHints
        treeHintsDropped = choices.treeHintsDropped.isEmpty ? nil : choices.treeHintsDropped
        belowThreshold = scheduler.belowThreshold.value
        duplicates = scheduler.duplicates.value
        unknownFiles = scheduler.unknownFiles.value
        unreported = engine.unreported.value
        queueDropped = scheduler.queueDropped.value + executor.queueFull.value
        staleDropped = scheduler.staleDropped.value
        withdrawn = scheduler.withdrawn.value
        leftQueued = scheduler.leftAtStop.value
        droppedAtEnd = executor.droppedAtStop.value
        assumedResident = scheduler.assumedResident.value
        droppedEvents = engine.droppedEvents.value
        released = scheduler.released.value
        completed = executor.completed.value
        skipped = executor.skipped.value
        denied = executor.denied.value
        missing = executor.missing.value
        failed = executor.failed.value
        cannotLast = executor.cannotLast.value
        volatileMounts = executor.volatileMounts.value
        bytesLoaded = executor.bytesLoaded.value
        budgetWaits = scheduler.budgetWaits.value
        rateWaits = scheduler.rateWaits.value
        pressureWaits = scheduler.pressureWaits.value
        effectiveBudget = scheduler.effectiveBudget.value
        givenBack = executor.givenBack.value
        giveBackDropped = executor.giveBackDropped.value
        let snapshot = engine.accounting()
        accounting = AccountingSummary(snapshot)
        epochFigures = EpochFigures.split(marks: engine.epochMarks, final: snapshot.counters)
    }
}

/// One epoch's share of the ledger's counters. Fates are counted in the epoch they
/// were decided in (a prefetch issued late in one epoch may be read in the next).
public struct EpochFigures: Sendable, Codable, Equatable {
    /// 1 for the first epoch.
    public var epoch: Int
    /// Wall time of the epoch's first open; `nil` for the first epoch (it starts with the run).
    public var startedNanoseconds: Int64?
    public var accesses: Int
    public var coldAccesses: Int
    public var coveredAccesses: Int
    public var stallNanoseconds: UInt64
    public var issued: Int
    public var useful: Int
    public var late: Int
    public var wasted: Int
    public var skipped: Int
    public var failed: Int
    public var bytesLoaded: UInt64

    /// Useful ÷ every fate decided in the epoch.
    public var accuracy: Double {
        let decided = useful + late + wasted + skipped + failed
        return decided == 0 ? 0 : Double(useful) / Double(decided)
    }

    /// Accesses served warm thanks to gofetch ÷ the epoch's accesses.
    public var coverage: Double { accesses == 0 ? 0 : Double(coveredAccesses) / Double(accesses) }

    static func split(marks: [PrefetchEngine.EpochMark], final: LedgerCounters) -> [EpochFigures] {
        var figures: [EpochFigures] = []
        var previous = LedgerCounters(), started: Int64? = nil
        for (index, end) in (marks.map { ($0.counters, $0.wallNanoseconds as Int64?) } + [(final, nil)]).enumerated() {
            let c = end.0
            figures.append(EpochFigures(
                epoch: index + 1, startedNanoseconds: started,
                accesses: c.accesses - previous.accesses, coldAccesses: c.coldAccesses - previous.coldAccesses,
                coveredAccesses: c.coveredAccesses - previous.coveredAccesses,
                stallNanoseconds: c.stallNanoseconds &- previous.stallNanoseconds, issued: c.issued - previous.issued,
                useful: c.count(.useful) - previous.count(.useful), late: c.count(.late) - previous.count(.late),
                wasted: c.count(.wasted) - previous.count(.wasted), skipped: c.count(.skipped) - previous.count(.skipped),
                failed: c.count(.failed) - previous.count(.failed), bytesLoaded: c.bytesLoaded &- previous.bytesLoaded))
            previous = c
            started = end.1
        }
        return figures
    }
}

/// The ledger's figures in a summary (JSON-friendly).
public struct AccountingSummary: Sendable, Codable, Equatable {
    public var accesses: Int
    public var coldAccesses: Int
    public var coveredAccesses: Int
    public var stallNanoseconds: UInt64
    public var issued: Int
    public var useful: Int
    public var late: Int
    public var wasted: Int
    public var evictedBeforeUse: Int
    public var unread: Int
    public var skipped: Int
    public var failedFate: Int
    public var accuracy: Double
    public var coverage: Double
    public var hitRate: Double
    public var predictionP50: UInt64
    public var predictionP99: UInt64
    public var prefetchP50: UInt64
    public var prefetchP99: UInt64
    public var leadP50: UInt64
    /// How long before the job's read useful prefetches completed, in buckets.
    public var leadTimeBuckets: [HistogramBucket]

    public init(_ snapshot: AccountingSnapshot) {
        let c = snapshot.counters, h = snapshot.histograms
        accesses = c.accesses
        coldAccesses = c.coldAccesses
        coveredAccesses = c.coveredAccesses
        stallNanoseconds = c.stallNanoseconds
        issued = c.issued
        useful = c.count(.useful)
        late = c.count(.late)
        wasted = c.count(.wasted)
        evictedBeforeUse = c.evictedBeforeUse
        unread = c.unreadInWindow
        skipped = c.count(.skipped)
        failedFate = c.count(.failed)
        accuracy = snapshot.accuracy
        coverage = snapshot.coverage
        hitRate = snapshot.hitRate
        predictionP50 = h.prediction.percentile(50)
        predictionP99 = h.prediction.percentile(99)
        prefetchP50 = h.prefetchLatency.percentile(50)
        prefetchP99 = h.prefetchLatency.percentile(99)
        leadP50 = h.leadTime.percentile(50)
        leadTimeBuckets = h.leadTime.buckets()
    }
}
