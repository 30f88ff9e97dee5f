import Glibc
import GoFetchEvents
import GoFetchStore

/// The text `gofetch stats` prints.
public enum StatsReport {
    public static func render(_ summary: StoreSummary, database: String, order: StoreSummary.FileOrder = .bytes) -> String {
        var lines = ["trace store \(database)"]
        func row(_ name: String, _ value: String) { lines.append("  \(name.padding(toLength: 18, withPad: " ", startingAt: 0))\(value)") }
        row("files", "\(summary.files) known, \(summary.filesRead) with events")
        let kinds = AccessKind.accesses.map { "\($0) \(summary.eventsByKind[$0.description] ?? 0)" }.joined(separator: ", ")
        row("events", "\(summary.events) (\(kinds))")
        row("bytes read", Format.bytes(summary.bytesRead))
        row("time in reads", Format.duration(nanoseconds: summary.readWaitNanoseconds))
        row("processes", "\(summary.processes)")
        if let first = summary.firstNanoseconds, let last = summary.lastNanoseconds {
            row("time span", "\(Format.duration(nanoseconds: last &- first)) (from \(isoTime(first)) to \(isoTime(last)))")
        }
        lines.append("")
        lines.append("runs")
        for run in summary.runs {
            let ended = run.endedNanoseconds.map { "\(Format.duration(nanoseconds: $0 &- run.startedNanoseconds))" } ?? "not closed"
            lines.append("  #\(run.id)  \(run.source.padding(toLength: 7, withPad: " ", startingAt: 0))  \(isoTime(run.startedNanoseconds))  \(ended)  \(run.events) events  \(run.command)")
        }
        lines.append("")
        lines.append("epochs")
        for epoch in summary.epochs {
            let name = epoch.epoch.map { "epoch \($0)" } ?? "untagged"
            lines.append("  \(name.padding(toLength: 10, withPad: " ", startingAt: 0))  \(epoch.events) events, \(epoch.files) files, \(Format.bytes(epoch.bytesRead)) read, \(Format.duration(nanoseconds: epoch.readWaitNanoseconds)) in reads, \(epoch.coldReads) of \(epoch.reads) reads cold in \(epoch.coldFiles) files (stall \(Format.duration(nanoseconds: epoch.stallNanoseconds)))")
        }
        if !summary.topFiles.isEmpty {
            lines.append("")
            lines.append(order == .bytes ? "top files by bytes read" : "top files by stall (time in cold reads)")
            for file in summary.topFiles {
                lines.append("  \(Format.bytes(file.bytesRead).padding(toLength: 10, withPad: " ", startingAt: 0))  \(file.reads) reads  \(file.opens) opens  \(Format.duration(nanoseconds: file.readWaitNanoseconds)) in reads  \(file.coldReads) cold, stall \(Format.duration(nanoseconds: file.stallNanoseconds))  \(file.path)")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// UTC time of wall-clock nanoseconds, to the second.
    static func isoTime(_ nanoseconds: Int64) -> String {
        var seconds = Int(nanoseconds / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
