import Foundation
import Glibc
import GoFetchCore

/// A one-line progress bar on standard error, drawn only when it is a terminal and
/// at most ten times a second.
final class ProgressBar {
    private let total: Int
    private let label: String
    private let enabled: Bool
    private var lastDraw: UInt64 = 0
    private let started = GoFetchCore.Clock.monotonicNanoseconds()

    init(total: Int, label: String) {
        self.total = total
        self.label = label
        enabled = isatty(STDERR_FILENO) == 1
    }

    func update(_ done: Int) {
        guard enabled else { return }
        let now = GoFetchCore.Clock.monotonicNanoseconds()
        guard now &- lastDraw >= 100_000_000 || done == total else { return }
        lastDraw = now
        let fraction = total == 0 ? 1 : min(1, Double(done) / Double(total))
        let width = 30
        let filled = Int(fraction * Double(width))
        let seconds = Double(now &- started) / 1e9
        let rate = seconds > 0 ? Double(done) / seconds : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = "\r\(label) [\(bar)] \(Format.fixed(fraction * 100, 1)) % \(done)/\(total) \(Format.fixed(rate / 1_000, 1)) k/s "
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard enabled else { return }
        update(total)
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
