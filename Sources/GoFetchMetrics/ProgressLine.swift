import Foundation
import GoFetchSystem
import SystemPackage

/// A one-line progress display on standard error, redrawn in place at most ten times
/// a second, and only when standard error is a terminal (never into a log or a pipe).
public final class ProgressLine {
    public let isEnabled: Bool
    private let interval: UInt64
    private var lastDrawn: UInt64 = 0
    private var visible = false

    /// - Parameters:
    ///   - interval: nanoseconds between redraws, at least.
    public init(interval: UInt64 = 100_000_000) {
        isEnabled = Syscall.isTerminal(.standardError)
        self.interval = interval
    }

    /// Redraws the line with `text()` if the last redraw is older than the interval;
    /// `text` is not called otherwise.
    public func update(_ text: () -> String) {
        guard isEnabled else { return }
        let now = Clock.monotonicNanoseconds()
        guard now - lastDrawn >= interval else { return }
        lastDrawn = now
        visible = true
        write("\r\u{1B}[K" + text())
    }

    /// Erases the line: before other output to the terminal, and at the end.
    public func clear() {
        guard visible else { return }
        visible = false
        write("\r\u{1B}[K")
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
