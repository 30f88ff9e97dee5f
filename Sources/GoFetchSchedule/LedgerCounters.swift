import GoFetchEvents

/// Plain counters of the ledger.
public struct LedgerCounters: Sendable, Equatable {
    public init() {}

    public var issued = 0
    public var untracked = 0
    public var bytesIssued: UInt64 = 0
    public var bytesLoaded: UInt64 = 0
    public var fates: [PrefetchFate: Int] = [:]
    /// Wasted because the job's read of it was cold (evicted before use).
    public var evictedBeforeUse = 0
    /// Wasted because nothing read it within the window (or before the run ended).
    public var unreadInWindow = 0
    public var accesses = 0
    public var coldAccesses = 0
    /// Warm accesses of bytes gofetch had loaded.
    public var coveredAccesses = 0
    public var bytesAccessed: UInt64 = 0
    /// Time the job spent in cold reads.
    public var stallNanoseconds: UInt64 = 0

    public func count(_ fate: PrefetchFate) -> Int { fates[fate] ?? 0 }
}

/// Latency distributions (nanoseconds), HdrHistogram with 3 significant digits.
public struct LedgerHistograms: Sendable {
    public init() {}

    /// Predictors' time per event.
    public var prediction = LatencyHistogram()
    /// Released by the scheduler → picked by an executor thread.
    public var queueDelay = LatencyHistogram()
    /// Executor start → pages loaded.
    public var prefetchLatency = LatencyHistogram()
    /// Prefetch completed → the job read it (useful ones): how far ahead gofetch was.
    public var leadTime = LatencyHistogram()
    /// The job's cold reads.
    public var coldRead = LatencyHistogram()
}
