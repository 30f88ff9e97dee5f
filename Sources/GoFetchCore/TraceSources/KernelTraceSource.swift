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
}

/// Include and exclude prefixes, as the shim applies them (it also skips Python's packages).
public struct TracePathFilter: Sendable {
    public var include: [String]
    public var exclude: [String]

    public init(include: [String], exclude: [String]) {
        self.include = include
        self.exclude = exclude
    }

    public init(_ configuration: Configuration) {
        self.init(include: configuration.trace.includePrefixes, exclude: configuration.trace.excludePrefixes)
    }

    public func admits(_ path: String) -> Bool {
        func under(_ prefix: String) -> Bool { path == prefix || path.hasPrefix(prefix.hasSuffix("/") ? prefix : prefix + "/") }
        if exclude.contains(where: under) { return false }
        if path.contains("/site-packages/") || path.contains("/dist-packages/") || path.contains("/__pycache__/") { return false }
        return include.isEmpty || include.contains(where: under)
    }
}
