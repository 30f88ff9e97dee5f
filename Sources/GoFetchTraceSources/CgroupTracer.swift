import Foundation
import GoFetchSystem
import Synchronization

/// Why a cgroup cannot be traced.
public struct CgroupTracerError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var problem: String
    public var description: String { "cannot trace the cgroup \(path): \(problem)" }
}

/// Traces the processes of cgroups (a container, a systemd unit, a job's slice):
/// every process listed in `cgroup.procs` of each folder and of the cgroups below
/// it is handed to a kernel source's ``KernelTraceSource/trace(pid:)``, which also
/// follows what those processes start. Membership is read again twice a second, so
/// a process moved into the cgroup later, or started there by a process outside it
/// (as `docker exec` does), is traced from the next reading on: its events of the
/// half second before are not seen. A process that leaves the cgroup stays traced,
/// with what it starts, until it ends.
///
/// Works with cgroup v1 and v2 folders alike. Bounded: at most `maxGroups` cgroups
/// are read per pass and `maxProcesses` pids remembered; what is over is counted.
public final class CgroupTracer: @unchecked Sendable {
    public let paths: [String]
    private let source: any KernelTraceSource
    private let maxGroups: Int
    private let maxProcesses: Int
    private let interval: Double
    private let stopping = Atomic<Bool>(false)
    private let wakeUp = DispatchSemaphore(value: 0)
    private var thread: JoinableThread?
    private var running = false
    /// Pids handed to the source and still members at the last pass (tracer thread only).
    private var traced: Set<UInt32> = []
    /// Processes handed to the source so far, and cgroups or pids left out by the bounds.
    public let processesTraced = Atomic<Int>(0)
    public let overBounds = Atomic<Int>(0)

    /// Checks that each path is a cgroup folder (it has `cgroup.procs`).
    public init(paths: [String], source: any KernelTraceSource, interval: Double = 0.5, maxGroups: Int = 10_000, maxProcesses: Int = 1_000_000) throws(CgroupTracerError) {
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CgroupTracerError(path: path, problem: "no such folder; give a cgroup folder such as /sys/fs/cgroup/<group> (v2) or /sys/fs/cgroup/<controller>/<group> (v1)")
            }
            guard FileManager.default.isReadableFile(atPath: path + "/cgroup.procs") else {
                throw CgroupTracerError(path: path, problem: "it has no readable cgroup.procs, so it is not a cgroup folder (look for it under /sys/fs/cgroup)")
            }
        }
        self.paths = paths
        self.source = source
        self.interval = interval
        self.maxGroups = maxGroups
        self.maxProcesses = maxProcesses
    }

    /// Traces the members now, then keeps watching on its own thread.
    public func start() {
        guard !running else { return }
        running = true
        scan()
        thread = JoinableThread(name: "gofetch-cgroups") { [self] in
            while wakeUp.wait(timeout: .now() + interval) == .timedOut, !stopping.load(ordering: .acquiring) { scan() }
        }
    }

    public func stop() {
        guard running else { return }
        running = false
        stopping.store(true, ordering: .releasing)
        wakeUp.signal()
        thread?.join()
    }

    /// One pass: the members of every cgroup at or below `paths`; new ones are traced.
    func scan() {
        var members: Set<UInt32> = []
        var groups = 0
        var pending = paths
        while let group = pending.popLast() {
            guard groups < maxGroups else {
                overBounds.add(1)
                break
            }
            groups += 1
            if let text = try? String(contentsOfFile: group + "/cgroup.procs", encoding: .utf8) {
                for line in text.split(separator: "\n") {
                    guard let pid = UInt32(line) else { continue }
                    guard members.count < maxProcesses else {
                        overBounds.add(1)
                        break
                    }
                    members.insert(pid)
                }
            }
            pending += Self.subgroups(of: group)
        }
        for pid in members where !traced.contains(pid) {
            source.trace(pid: pid)
            processesTraced.add(1)
        }
        traced = members
    }

    /// The cgroups right below `group` (its sub-folders).
    static func subgroups(of group: String) -> [String] {
        ((try? DirectoryListing.names(in: group, of: .directory, limit: Int.max)) ?? []).map { group + "/" + $0 }
    }
}
