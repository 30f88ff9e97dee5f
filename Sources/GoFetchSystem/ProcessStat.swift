import CGoFetchLinux
import Glibc
import Foundation
import SystemPackage

/// What `/proc/PID/stat` tells of a process: its parent, and when it started (which
/// tells a process from a later one that got the same pid).
package struct ProcessStat: Equatable, Sendable {
    package var parent: UInt32
    /// Clock ticks after boot (field 22, `starttime`).
    package var startTicks: UInt64

    /// The parent of a process (0 when it cannot be read).
    package static func parentPID(of pid: UInt32) -> UInt32 {
        of(pid)?.parent ?? 0
    }

    /// `nil` when the process is gone (or the text is not a stat line).
    package static func of(_ pid: UInt32) -> ProcessStat? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
        return parse(text)
    }

    /// "pid (comm) state ppid … starttime …"; comm may hold spaces and parentheses.
    package static func parse(_ text: String) -> ProcessStat? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3), so field N is fields[N - 3].
        guard fields.count > 19, let parent = UInt32(fields[1]), let start = UInt64(fields[19]) else { return nil }
        return ProcessStat(parent: parent, startTicks: start)
    }
}
