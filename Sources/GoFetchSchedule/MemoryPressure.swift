import Foundation

/// Memory pressure from PSI (`/proc/pressure/memory`, "some avg10"), read at most
/// every half second. Without PSI the pressure reads as 0.
public struct MemoryPressure: Sendable {
    public let path: String
    private var lastRead: UInt64 = 0
    public private(set) var someAvg10 = 0.0

    public init(path: String = "/proc/pressure/memory") {
        self.path = path
    }

    /// The current "some avg10" percentage.
    public mutating func current(now: UInt64) -> Double {
        if now &- lastRead >= 500_000_000 || lastRead == 0 {
            lastRead = now
            someAvg10 = Self.parse((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
        }
        return someAvg10
    }

    /// "some avg10=1.23 avg60=…" → 1.23.
    static func parse(_ text: String) -> Double {
        for line in text.split(separator: "\n") where line.hasPrefix("some") {
            for field in line.split(separator: " ") where field.hasPrefix("avg10=") {
                return Double(field.dropFirst(6)) ?? 0
            }
        }
        return 0
    }
}
