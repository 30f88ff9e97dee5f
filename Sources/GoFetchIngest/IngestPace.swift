import Synchronization

/// How often ingest passes over the clients' sockets while they send.
///
/// Each pass wakes the ingest thread and the engine's; on a virtual machine a
/// sleep and wake-up costs tens of µs of CPU, so at thousands of events a second
/// the passes, not the events, were much of the daemon's cost. Passes are prompt
/// (``promptNanoseconds``) while prefetching has work to do: the engine must hear
/// of each open soon, or it predicts files the job has already read. They are
/// relaxed (``relaxedNanoseconds``) while the engine finds what it would prefetch
/// already cached and the pass's reads were warm (at most 1 in 20 cold: a busy
/// machine delays a cached read now and then): a job rereading a cached data set.
public final class IngestPace: Sendable {
    public static let promptNanoseconds: UInt64 = 5_000_000
    public static let relaxedNanoseconds: UInt64 = 25_000_000

    private let cached = Atomic<Bool>(false)

    public init() {}

    /// Set by the engine: whether its residency checks find its predictions cached.
    public func setCached(_ value: Bool) {
        cached.store(value, ordering: .relaxed)
    }

    /// The time from the start of a pass that received `reads` reads, `cold` of them cold, to the next.
    public func interval(reads: Int, cold: Int) -> UInt64 {
        cached.load(ordering: .relaxed) && cold * 20 <= reads ? Self.relaxedNanoseconds : Self.promptNanoseconds
    }
}
