/// A token bucket: `rate` tokens a second, at most `burst` saved up. Rate 0 is unlimited.
public struct TokenBucket: Sendable {
    public let rate: Double
    public let burst: Double
    private var tokens: Double
    private var updated: UInt64

    public init(rate: Double, burst: Double, now: UInt64) {
        self.rate = rate
        self.burst = max(burst, 1)
        tokens = max(burst, 1)
        updated = now
    }

    /// Whether `amount` tokens could be taken now.
    public mutating func available(_ amount: Double, now: UInt64) -> Bool {
        guard rate > 0 else { return true }
        refill(now)
        return tokens >= min(amount, burst)
    }

    /// Takes `amount` tokens if there are enough now.
    public mutating func take(_ amount: Double, now: UInt64) -> Bool {
        guard rate > 0 else { return true }
        refill(now)
        // A request larger than the whole burst may go once the bucket is full.
        let needed = min(amount, burst)
        guard tokens >= needed else { return false }
        tokens -= amount
        return true
    }

    private mutating func refill(_ now: UInt64) {
        if now > updated {
            tokens = min(burst, tokens + Double(now - updated) / 1e9 * rate)
            updated = now
        }
    }
}
