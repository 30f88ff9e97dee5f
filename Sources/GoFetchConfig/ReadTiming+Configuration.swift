import GoFetchEvents

extension ReadTiming {
    /// The read rule of `metrics.cold_read_base_us` and `metrics.warm_read_mb_per_s`.
    public init(_ configuration: Configuration) {
        self.init(
            baseNanoseconds: UInt64(configuration.metrics.coldReadBaseMicroseconds * 1_000),
            warmBytesPerSecond: configuration.metrics.warmReadMBPerSecond * 1_048_576)
    }
}
