import Synchronization

/// How often ingest passes over the clients' sockets while they send.
///
/// Each pass wakes the ingest thread and the engine's; on a virtual machine a
/// sleep and wake-up costs tens of µs of CPU, so at thousands of events a second
/// the passes, not the events, are much of the daemon's cost. They are prompt
/// (``promptNanoseconds``) while prefetching has work to do, and relaxed
/// (``relaxedNanoseconds``) while the engine finds what it would prefetch already
/// cached and the job's reads are warm: a job reading a cached data set again.
/// A pass whose reads are more than 1 in 20 cold is prompt at once, before the
/// engine has noticed.
public final class IngestPace: Sendable {
    public static let promptNanoseconds: UInt64 = 5_000_000
    public static let relaxedNanoseconds: UInt64 = 25_000_000

    private let cached = Atomic<Bool>(false)

    public init() {}

    /// Set by the engine: whether its residency checks find its predictions cached.
    public func setCached(_ value: Bool) {
        cached.store(value, ordering: .relaxed)
    }

    public var isCached: Bool { cached.load(ordering: .relaxed) }

    /// The time from the start of a pass that received `reads` reads, `cold` of them cold, to the next.
    public func interval(reads: Int, cold: Int) -> UInt64 {
        isCached && cold * 20 <= reads ? Self.relaxedNanoseconds : Self.promptNanoseconds
    }
}
