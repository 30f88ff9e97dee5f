import Foundation
import GoFetchSystem

/// The Python client that `gofetch run` and `gofetch env` load into the job's
/// interpreters (`trace.python_hook`): a folder holding the `gofetch` package and
/// `inject/sitecustomize.py`, put on `PYTHONPATH`.
public enum PythonClient {
    /// How the client reports: `shim` when the preload shim traces the job (the client
    /// announces and tags; it reports accesses only where the shim is not loaded),
    /// `announce` when a kernel source traces it (the client never reports accesses).
    public enum Mode: String, Sendable {
        case shim = "1"
        case announce
    }

    /// The client's folder: `$GOFETCH_PYTHON_CLIENT`, else `../lib/gofetch/python` of
    /// the executable, else the source tree's `python/` (``InstallLayout``).
    public static func locate() -> String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["GOFETCH_PYTHON_CLIENT"], !env.isEmpty { candidates.append(env) }
        candidates += InstallLayout.candidates("python", sourcePath: "python")
        return candidates.first { FileManager.default.isReadableFile(atPath: "\($0)/inject/sitecustomize.py") && FileManager.default.isReadableFile(atPath: "\($0)/gofetch/__init__.py") }
            .map { URL(fileURLWithPath: $0).standardized.path }
    }

    /// `base` with the client loaded at every interpreter's start-up: its `inject/`
    /// folder ahead of any existing `PYTHONPATH` (an existing `sitecustomize` still
    /// runs: the client's chains to it).
    /// - Parameters:
    ///   - statusPath: where each interpreter appends whether the client started, and why not.
    public static func environment(
        base: [String: String], client: String, socketPath: String, mode: Mode, statusPath: String?
    ) -> [String: String] {
        var environment = base
        let existing = base["PYTHONPATH"].flatMap { $0.isEmpty ? nil : ":" + $0 } ?? ""
        environment["PYTHONPATH"] = "\(client)/inject\(existing)"
        environment["GOFETCH_PYTHON_CLIENT"] = client
        environment["GOFETCH_PYTHON_HOOK"] = mode.rawValue
        environment["GOFETCH_SOCKET"] = socketPath
        if let statusPath { environment["GOFETCH_HOOK_STATUS"] = statusPath } else { environment.removeValue(forKey: "GOFETCH_HOOK_STATUS") }
        return environment
    }
}

/// Whether the Python client's lookahead was on in a run, read from the status lines
/// its interpreters wrote (`on PID detail` or `off PID reason`).
public struct PythonHookReport: Codable, Sendable, Equatable {
    /// False when turned off (`--no-python-hook`, `trace.python_hook: false`) or not found.
    public var enabled: Bool
    /// Why it was not enabled.
    public var disabledBecause: String?
    /// Interpreters in which the client started.
    public var started = 0
    /// Interpreters in which it did not, by reason.
    public var notStarted: [String: Int] = [:]
    /// How the first interpreter that started reports ("Python 3.11, accesses by the preload shim").
    public var detail: String?

    public init(enabled: Bool, disabledBecause: String? = nil) {
        self.enabled = enabled
        self.disabledBecause = disabledBecause
    }

    /// Reads and removes the status file.
    public static func collect(statusPath: String) -> PythonHookReport {
        var report = PythonHookReport(enabled: true)
        let text = (try? String(contentsOfFile: statusPath, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: statusPath)
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 2)
            guard fields.count == 3 else { continue }
            if fields[0] == "on" {
                report.started += 1
                if report.detail == nil { report.detail = String(fields[2]) }
            } else {
                report.notStarted[String(fields[2]), default: 0] += 1
            }
        }
        return report
    }

    /// One line for the summary.
    public var text: String {
        guard enabled else { return "off: \(disabledBecause ?? "turned off")" }
        var parts: [String] = []
        if started > 0 { parts.append("on in \(started) Python process\(started == 1 ? "" : "es") (\(detail ?? ""))") }
        for (reason, count) in notStarted.sorted(by: { $0.key < $1.key }) {
            parts.append("not on in \(count): \(reason)")
        }
        if parts.isEmpty {
            return "no Python process loaded the client (not a Python job, or an interpreter that ignores PYTHONPATH: -I, -E or -S)"
        }
        return parts.joined(separator: "; ")
    }
}
