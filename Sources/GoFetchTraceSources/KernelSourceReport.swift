/// What a kernel trace source did besides its events, printed when the traced job ends.
public enum KernelSourceReport: Sendable {
    case fanotify(FanotifyReport)
    case ebpf(EBPFReport)

    /// The summary line's name.
    public var title: String {
        switch self {
        case .fanotify: "fanotify"
        case .ebpf: "page-cache misses"
        }
    }

    /// The summary line.
    public var text: String {
        switch self {
        case .fanotify(let f):
            "\(f.events) events, files named by \(f.mode); \(f.otherProcesses) of other processes, \(f.filtered) filtered, \(f.unresolved) unresolved, \(f.overflows) queue overflows, \(f.pidsReused) pids reused"
        case .ebpf(let e):
            "\(e.missedPages) pages in \(e.missedPagesByFile.count) files (eBPF; \(e.kernelDropped) records dropped in the kernel)"
        }
    }
}

/// What the fanotify source did: how events named files ("names": folder handle and
/// name; "descriptors": an open file per event), and what it left out.
public struct FanotifyReport: Codable, Sendable {
    public var mode: String
    public var events: Int
    public var otherProcesses: Int
    public var filtered: Int
    public var unresolved: Int
    public var overflows: Int
    /// Pids found to belong to a later process than the one judged (judged again).
    public var pidsReused: Int
}

/// What the eBPF source saw besides the events: the pages each file brought in.
public struct EBPFReport: Codable, Sendable {
    public var records: Int
    public var filtered: Int
    public var kernelDropped: Int
    public var missedPages: Int
    public var missedPagesByFile: [String: Int]
}
