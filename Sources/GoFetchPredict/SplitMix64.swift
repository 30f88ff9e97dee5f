/// A small deterministic random number generator (Steele, Lea and Flood's
/// SplitMix64), so that model initialisation, training and tests reproduce from a
/// seed on every machine.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in [-bound, bound).
    public mutating func uniform(_ bound: Float) -> Float {
        // 24 random bits: every value a Float can hold exactly in [0, 1).
        let unit = Float(next() >> 40) / Float(1 << 24)
        return (unit * 2 - 1) * bound
    }
}
