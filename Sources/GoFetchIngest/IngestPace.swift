/// How often ingest passes over the clients' sockets while they send.
///
/// Each pass wakes the ingest thread and the engine's; on a virtual machine a
/// sleep and wake-up costs tens of µs of CPU, so at thousands of events a second
/// the passes, not the events, were much of the daemon's cost. A pass whose reads
/// were warm (at most 1 in 20 cold: a busy machine delays a cached read now and
/// then) is followed by the next in ``relaxedNanoseconds``: the job is not waiting
/// for storage, prefetching is ahead of it or not needed. A pass with more cold
/// reads is followed at once by prompt passes (``promptNanoseconds``).
public enum IngestPace {
    public static let promptNanoseconds: UInt64 = 5_000_000
    public static let relaxedNanoseconds: UInt64 = 25_000_000

    /// The time from the start of a pass that received `reads` reads, `cold` of them cold, to the next.
    public static func interval(reads: Int, cold: Int) -> UInt64 {
        cold * 20 <= reads ? relaxedNanoseconds : promptNanoseconds
    }
}
