/// How many prefetch reads may be at the storage at once, adapted to it the way TCP
/// Vegas adapts a congestion window: from each completed read's time per 128 KiB
/// and the best time seen lately, it estimates how many requests wait in the
/// storage's queue, and keeps that near one (between a half and one and a half).
///
/// Storage that serves many requests at once with a fixed latency (network file
/// systems, FUSE mounts of object stores) keeps its time per request as the window
/// grows, so the window opens up to `maximum`. A link at its bandwidth cap answers
/// more slowly with every request added, so the window stays small, and the job's
/// own reads (which slow the link too, and so shrink the window) wait behind about
/// one prefetch, not behind a queue of them. It starts at one, so the best time is
/// first seen with nothing else in flight.
struct ConcurrencyWindow {
    let maximum: Int
    private(set) var limit: Int
    /// Best nanoseconds per 128 KiB this period and the last (a period is `period`).
    private var best = Double.infinity
    private var previousBest = Double.infinity
    private var periodStart: UInt64 = 0
    private let period: UInt64 = 5_000_000_000

    init(maximum: Int, initial: Int = 1) {
        self.maximum = max(1, maximum)
        limit = min(self.maximum, max(1, initial))
    }

    /// A read of `bytes` took `nanoseconds` with `inFlight` requests (itself included) at the storage.
    mutating func completed(bytes: UInt64, nanoseconds: UInt64, inFlight: Int, now: UInt64) {
        guard bytes > 0, nanoseconds > 0 else { return }
        let units = Double(max(1, (bytes + 131_071) / 131_072))
        let perUnit = Double(nanoseconds) / units
        if now &- periodStart >= period {
            periodStart = now
            previousBest = best
            best = .infinity
        }
        best = min(best, perUnit)
        let base = min(best, previousBest)
        let queued = Double(inFlight) * (1 - base / perUnit)
        if queued < 0.5 {
            limit = min(maximum, limit + 1)
        } else if queued > 1.5 {
            limit = max(1, limit - 1)
        }
    }
}
