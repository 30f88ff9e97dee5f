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
///
/// It counts reads by their weight at the storage (``weight(ofBytes:)``): a read of
/// more than 128 KiB (a shard's chunk, a piece of a stream) keeps about two of the
/// storage's requests waiting at once (the kernel's readahead reads the next window
/// while the first is copied), a small file one. Counted one each, two 1 MiB chunks
/// put four requests ahead of each of the job's cold reads on a capped link, where
/// two small files put two (tar shards streamed at 30 MiB/s: epoch-1 stall 1.24-1.28 s
/// against 1.13-1.14 s for a single reader going through the shards).
struct ConcurrencyWindow {
    let maximum: Int
    private(set) var limit: Int
    /// Best nanoseconds per 128 KiB this period and the last (a period is `period`).
    private var best = Double.infinity
    private var previousBest = Double.infinity
    private var periodStart: UInt64 = 0
    private let period: UInt64 = 5_000_000_000

    /// A read's weight: the storage requests (of up to 128 KiB, FUSE's and network file
    /// systems' usual largest) it keeps waiting at once, at most two.
    static func weight(ofBytes bytes: UInt64) -> Int {
        bytes > 131_072 ? 2 : 1
    }

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
