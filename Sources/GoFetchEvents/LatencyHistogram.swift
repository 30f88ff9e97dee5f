import Histogram

/// A nanosecond histogram from 1 ns to 1 hour; larger values are clamped. Values are
/// kept to two significant digits (1 %): with three, each histogram held 33,792
/// counters (264 KiB), and the engine copied its five whole after every snapshot the
/// metrics read (copy on write), a tenth of its thread at 10k events/s.
public struct LatencyHistogram: Sendable {
    private static let highest: UInt64 = 3_600_000_000_000
    public private(set) var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: highest, numberOfSignificantValueDigits: .two)

    public init() {}

    public mutating func record(_ nanoseconds: UInt64) {
        _ = histogram.record(min(max(nanoseconds, 1), Self.highest))
    }

    public var count: UInt64 { histogram.totalCount }

    /// The value at `percentile` (0–100), 0 when empty.
    public func percentile(_ percentile: Double) -> UInt64 {
        count == 0 ? 0 : histogram.valueAtPercentile(percentile)
    }

    public var mean: Double { count == 0 ? 0 : histogram.mean }

    public mutating func add(_ other: LatencyHistogram) { histogram.add(other.histogram) }

    /// Counts in buckets bounded by 1, 2 and 5 × a power of ten from 1 µs (the first
    /// holds everything up to 1 µs), from the first bucket with a count to the last;
    /// empty when nothing was recorded.
    public func buckets() -> [HistogramBucket] {
        guard count > 0 else { return [] }
        var bounds: [UInt64] = []
        var decade: UInt64 = 1_000
        while decade <= Self.highest {
            bounds += [decade, 2 * decade, 5 * decade]
            decade *= 10
        }
        var counts = [Int](repeating: 0, count: bounds.count)
        for value in histogram.recordedValues() {
            // The histogram keeps 2 significant digits: a value is its bucket's lowest equivalent.
            let index = bounds.firstIndex { histogram.lowestEquivalentForValue(value.value) <= $0 } ?? bounds.count - 1
            counts[index] += Int(value.count)
        }
        guard let first = counts.firstIndex(where: { $0 > 0 }), let last = counts.lastIndex(where: { $0 > 0 }) else { return [] }
        return (first...last).map { HistogramBucket(upToNanoseconds: bounds[$0], count: counts[$0]) }
    }
}

/// One bucket of a latency distribution: values above the previous bucket's bound, up to `upToNanoseconds`.
public struct HistogramBucket: Sendable, Codable, Equatable {
    public var upToNanoseconds: UInt64
    public var count: Int

    public init(upToNanoseconds: UInt64, count: Int) {
        self.upToNanoseconds = upToNanoseconds
        self.count = count
    }
}
