import ArgumentParser
import Foundation

/// A point in wall-clock time given on the command line: seconds since the Unix epoch
/// (`1764910000.25`) or an ISO 8601 time with its zone (`2026-12-05T05:00:00Z`,
/// `2026-12-05T06:00:00.5+01:00`).
struct WallTime: Sendable {
    /// Nanoseconds since the Unix epoch, as the trace store keeps `time_ns`.
    let nanoseconds: Int64

    static let allowed = "seconds since the Unix epoch (1764910000.25) or ISO 8601 with a zone (2026-12-05T05:00:00Z)"

    /// For `@Option(transform:)`: a time that does not parse is named with the forms allowed.
    static func parse(_ argument: String) throws -> WallTime {
        guard let time = WallTime(argument: argument) else {
            throw ValidationError("'\(argument)' is not a time; allowed: \(allowed)")
        }
        return time
    }

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds < 9.2e9 {
            nanoseconds = Int64((seconds * 1e9).rounded())
            return
        }
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime]] {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = options
            if let date = formatter.date(from: text), date.timeIntervalSince1970 >= 0 {
                nanoseconds = Int64((date.timeIntervalSince1970 * 1e9).rounded())
                return
            }
        }
        return nil
    }
}
