import Foundation

/// Human-readable figures.
public enum Format {
    public static func bytes<I: BinaryInteger>(_ value: I) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var scaled = Double(value)
        var unit = 0
        while abs(scaled) >= 1024 && unit < units.count - 1 {
            scaled /= 1024
            unit += 1
        }
        return unit == 0 ? "\(value) B" : "\(fixed(scaled, 1)) \(units[unit])"
    }

    public static func duration<I: BinaryInteger>(nanoseconds: I) -> String {
        let ns = Double(nanoseconds)
        if ns >= 1e9 { return "\(fixed(ns / 1e9, 3)) s" }
        if ns >= 1e6 { return "\(fixed(ns / 1e6, 2)) ms" }
        if ns >= 1e3 { return "\(fixed(ns / 1e3, 1)) µs" }
        return "\(Int(ns)) ns"
    }

    /// `value` with exactly `digits` decimals, without Foundation's locale.
    public static func fixed(_ value: Double, _ digits: Int) -> String {
        // Beyond what an Int holds (a figure from a file, a ratio over almost nothing).
        guard value.isFinite else { return "–" }
        guard abs(value) < 1e15 else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let rounded = (abs(value) * scale).rounded()
        let whole = Int(rounded / scale)
        let fraction = Int(rounded) - whole * Int(scale)
        let sign = value < 0 && rounded != 0 ? "-" : ""
        if digits == 0 { return "\(sign)\(whole)" }
        let fractionText = String(fraction)
        return "\(sign)\(whole).\(String(repeating: "0", count: digits - fractionText.count))\(fractionText)"
    }
}
