import Synchronization

/// Counters of the store writer.
public final class StoreStatistics: Sendable {
    /// What storing one event has cost so far, in CPU nanoseconds (0 before any).
    public var nanosecondsPerEvent: Double {
        let events = committedEvents.load(ordering: .relaxed)
        return events > 0 ? Double(cpuNanoseconds.load(ordering: .relaxed)) / Double(events) : 0
    }

    public let queued = Atomic<Int>(0)
    /// Events refused because the writer queue was full.
    public let dropped = Atomic<Int>(0)
    public let committedEvents = Atomic<Int>(0)
    public let committedFiles = Atomic<Int>(0)
    /// CPU time the writer spent in transactions.
    public let cpuNanoseconds = Atomic<Int>(0)
    public let committedBatches = Atomic<Int>(0)
    /// Transactions that failed (disk full, locked); their events are counted as dropped.
    public let failedBatches = Atomic<Int>(0)
    /// File records that failed to commit twice and were given up.
    public let droppedFiles = Atomic<Int>(0)
    public let retentionDeleted = Atomic<Int>(0)

    public init() {}
}
