import Foundation
import GoFetchConfig
import GoFetchEvents
import GoFetchSystem

/// Finds `libgofetch_preload.so` and builds the environment that loads it.
public enum PreloadLibrary {
    public static let fileName = "libgofetch_preload.so"

    /// The shim: `trace.preload_library`, else `$GOFETCH_PRELOAD`, else next to the
    /// executable, in `../lib/gofetch/`, or in the source tree's `preload/build/` (``InstallLayout``).
    public static func locate(configured: String) throws(PreloadLibraryError) -> String {
        var candidates: [String] = []
        if !configured.isEmpty {
            candidates = [configured]
        } else {
            if let env = ProcessInfo.processInfo.environment["GOFETCH_PRELOAD"], !env.isEmpty { candidates.append(env) }
            candidates += InstallLayout.candidates(fileName, sourcePath: "preload/build/\(fileName)")
        }
        for path in candidates where FileManager.default.isReadableFile(atPath: path) {
            return URL(fileURLWithPath: path).standardized.path
        }
        throw PreloadLibraryError(searched: candidates)
    }

    /// The environment for a traced command: the shim preloaded (ahead of any
    /// existing `LD_PRELOAD`) and told where to send and what to skip.
    public static func environment(
        base: [String: String], library: String, socketPath: String, trace: Configuration.Trace
    ) -> [String: String] {
        var environment = base
        let existing = base["LD_PRELOAD"].map { " " + $0 } ?? ""
        environment["LD_PRELOAD"] = library + existing
        environment["GOFETCH_SOCKET"] = socketPath
        environment["GOFETCH_EXCLUDE"] = trace.excludePrefixes.joined(separator: ":")
        if trace.includePrefixes.isEmpty {
            environment.removeValue(forKey: "GOFETCH_INCLUDE")
        } else {
            environment["GOFETCH_INCLUDE"] = trace.includePrefixes.joined(separator: ":")
        }
        environment["GOFETCH_FLUSH_MS"] = Format.fixed(trace.flushIntervalMS, 3)
        environment["GOFETCH_OPEN_READAHEAD_KB"] = String(trace.openReadaheadKB)
        environment.removeValue(forKey: "GOFETCH_DISABLE")
        return environment
    }
}

public struct PreloadLibraryError: Error, CustomStringConvertible, Sendable {
    public var searched: [String]

    public var description: String {
        "cannot find \(PreloadLibrary.fileName); looked in: \(searched.joined(separator: ", ")). "
            + "Build it with `make -C preload` (scripts/build does), or set trace.preload_library in the config."
    }
}
