import Foundation
import GoFetchMetrics
import GoFetchRuntime
import GoFetchTraceSources

/// What `trace --json` and `run --json` print.
struct TraceReport: Codable {
    var runID: Int64
    var database: String
    var exitCode: Int32
    var summary: RunSummary
    /// Whether the Python client's lookahead was on (`run` only).
    var pythonHook: PythonHookReport?
    var ebpf: EBPFReport?
    var fanotify: FanotifyReport?

    init(runID: Int64, database: String, exitCode: Int32, summary: RunSummary, pythonHook: PythonHookReport?, source: KernelSourceReport?, report: String?) {
        self.runID = runID
        self.database = database
        self.exitCode = exitCode
        self.summary = summary
        self.pythonHook = pythonHook
        if case .ebpf(let figures) = source { ebpf = figures }
        if case .fanotify(let figures) = source { fanotify = figures }
        self.report = report
    }
    /// The HTML report written (`--report`).
    var report: String?
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    FileHandle.standardError.write(try encoder.encode(value) + Data("\n".utf8))
}
