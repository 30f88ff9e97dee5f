import GoFetchConfig
import GoFetchEvents
import SystemPackage

/// A trace source in the kernel (fanotify, eBPF) that the ingest thread polls beside
/// the shim's clients and feeds into the same pipeline.
public protocol KernelTraceSource: AnyObject, Sendable {
    /// Readable when events wait.
    var pollDescriptor: FileDescriptor { get }
    /// Traces `pid` and the processes it starts from now on (any thread).
    func trace(pid: UInt32)
    /// Traces the processes `pid` starts from now on, not `pid` itself (gofetch
    /// before it spawns the job, so the job's first opens are not missed).
    func traceChildren(of pid: UInt32)
    /// Hands every waiting event on, grouped per process, and reports processes that
    /// ended (so ingest forgets their descriptors) (ingest thread).
    func drain(_ deliver: (_ events: [AccessEvent], _ uid: UInt32, _ gid: UInt32, _ parentPID: UInt32) -> Void, ended: (UInt32) -> Void)
    /// What the source did besides its events, for the summary when the job ends.
    func report() -> KernelSourceReport
}

/// Include and exclude prefixes, as the shim applies them (it also skips Python's packages).
public struct TracePathFilter: Sendable {
    public var include: [String]
    public var exclude: [String]

    public init(include: [String], exclude: [String]) {
        self.include = include.compactMap(Self.normalized)
        self.exclude = exclude.compactMap(Self.normalized)
    }

    public init(_ configuration: Configuration) {
        self.init(include: configuration.trace.includePrefixes, exclude: configuration.trace.excludePrefixes)
    }

    /// The shim's and the Python client's rule (`tests/contracts/path-filter.json`):
    /// the longest prefix covering the path decides, an include beating a shorter
    /// exclude (`include: [/usr/share/data]` under the default exclude `/usr`).
    public func admits(_ path: String) -> Bool {
        if path.contains("/site-packages/") || path.contains("/dist-packages/") || path.contains("/__pycache__/") { return false }
        let excluded = Self.longestPrefix(of: path, in: exclude)
        if !include.isEmpty { return Self.longestPrefix(of: path, in: include) > excluded }
        return excluded == 0
    }

    /// Length of the longest of `prefixes` that `path` lies under, component-wise; 0 for none.
    static func longestPrefix(of path: String, in prefixes: [String]) -> Int {
        var best = 0
        for prefix in prefixes where prefix.utf8.count > best {
            if prefix == "/" || path == prefix || path.hasPrefix(prefix + "/") { best = prefix.utf8.count }
        }
        return best
    }

    /// Without trailing slashes ("/" stays); `nil` for an empty prefix.
    static func normalized(_ prefix: String) -> String? {
        var text = Substring(prefix)
        while text.count > 1 && text.hasSuffix("/") { text = text.dropLast() }
        return text.isEmpty ? nil : String(text)
    }
}
