/// Rules that tell a warm read from a cold one by the time the job spent in it (the
/// shim times every read): cold when it took longer than `base + bytes / warmRate`.
public struct ReadTiming: Sendable, Equatable {
    public var baseNanoseconds: UInt64
    /// Bytes per second a read from the page cache moves at least.
    public var warmBytesPerSecond: Double

    public init(baseNanoseconds: UInt64 = 100_000, warmBytesPerSecond: Double = 1e9) {
        self.baseNanoseconds = baseNanoseconds
        self.warmBytesPerSecond = warmBytesPerSecond
    }

    public func isCold(bytes: UInt64, nanoseconds: UInt64) -> Bool {
        // In floating point: a client may send any length, and the sum must never trap.
        Double(nanoseconds) > Double(baseNanoseconds) + Double(bytes) / warmBytesPerSecond * 1e9
    }
}
