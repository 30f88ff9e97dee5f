import Foundation
import Glibc

/// The memory limit a client's page cache lives under: its memory cgroup (v1
/// `memory.limit_in_bytes` or v2 `memory.max`), the anonymous memory already
/// charged there and the page cache in use (the active list: the programs' own
/// files, what the job reads). Prefetched pages are read once and wait on the
/// inactive list, which reclaim empties first: the room they have is what the other
/// two leave. Prefetching more would only evict pages the job needs, so the
/// scheduler's budget follows it.
public struct MemoryCgroup: Sendable, Equatable {
    /// The group's folder under the cgroup mount.
    public var directory: String
    public var version: Int

    /// Limit, anonymous memory and active page cache now; `nil` limit when unlimited or unreadable.
    public func read() -> (limit: UInt64?, anonymous: UInt64, activeFile: UInt64) {
        let limitFile = version == 1 ? "memory.limit_in_bytes" : "memory.max"
        let text = (try? String(contentsOfFile: "\(directory)/\(limitFile)", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        var limit = text.flatMap { UInt64($0) }
        if let value = limit, value >= 1 << 60 { limit = nil }  // v1 writes "unlimited" as a huge number
        let stat = (try? String(contentsOfFile: "\(directory)/memory.stat", encoding: .utf8)) ?? ""
        let (key, activeKey) = version == 1 ? ("total_rss", "total_active_file") : ("anon", "active_file")
        var anonymous: UInt64 = 0
        var activeFile: UInt64 = 0
        for line in stat.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 2, let value = UInt64(fields[1]) else { continue }
            if fields[0] == key { anonymous = value }
            if fields[0] == activeKey { activeFile = value }
            // v1: the smallest limit on the way up the hierarchy.
            if fields[0] == "hierarchical_memory_limit", value < 1 << 60, value < (limit ?? .max) { limit = value }
        }
        return (limit, anonymous, activeFile)
    }

    /// The room prefetched pages have under `limit`: what anonymous memory and the
    /// active page cache leave.
    static func room(limit: UInt64, anonymous: UInt64, activeFile: UInt64) -> UInt64 {
        limit > anonymous &+ activeFile ? limit - anonymous - activeFile : 0
    }

    /// The memory cgroup of process `pid`, from `/proc/<pid>/cgroup`; `nil` when it has none
    /// or the process is gone.
    public static func of(pid: UInt32, procRoot: String = "/proc", cgroupRoot: String = "/sys/fs/cgroup") -> MemoryCgroup? {
        guard let text = try? String(contentsOfFile: "\(procRoot)/\(pid)/cgroup", encoding: .utf8) else { return nil }
        return parse(text, cgroupRoot: cgroupRoot)
    }

    /// `4:memory:/a/b` (v1) is preferred to `0::/a/b` (v2).
    static func parse(_ text: String, cgroupRoot: String) -> MemoryCgroup? {
        var unified: String?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            if fields[1].split(separator: ",").contains("memory") {
                return MemoryCgroup(directory: cgroupRoot + "/memory" + (fields[2] == "/" ? "" : String(fields[2])), version: 1)
            }
            if fields[0] == "0" && fields[1].isEmpty { unified = String(fields[2]) }
        }
        guard let unified else { return nil }
        let directory = cgroupRoot + (unified == "/" ? "" : unified)
        guard FileManager.default.fileExists(atPath: directory + "/memory.max") else { return nil }
        return MemoryCgroup(directory: directory, version: 2)
    }
}

/// Turns the tightest memory cgroup that can evict prefetched pages into a budget
/// ceiling: `fraction` × (limit − anonymous memory − active page cache).
///
/// Prefetched pages are charged to the daemon's own group (its threads load them),
/// so only limits that hold the daemon's group can evict them: its own group and
/// the groups above it. A client's group counts only when it is one of those (a
/// `gofetch run` inside the job's container: one group for both); the limit of a
/// client elsewhere, however tight, neither lowers the budget of the others nor
/// triggers give-back of what they read. When the daemon's own group is unknown,
/// the groups of the clients seen in the last 10 s count (at most `maxProcesses`
/// pids are remembered).
public final class CgroupBudget {
    public let fraction: Double
    private let maxProcesses: Int
    private var groups: [UInt32: MemoryCgroup?] = [:]
    private var lastSeen: [String: UInt64] = [:]
    private var lastRefresh: UInt64 = 0
    /// A group not seen before: read it at the next refresh, not a second later.
    private var newGroup = false
    /// The current ceiling in bytes; `nil` when no client is under a limit.
    public private(set) var ceiling: UInt64?
    /// The tightest group's limit and anonymous memory at the last refresh.
    public private(set) var tightest: (directory: String, limit: UInt64, anonymous: UInt64)?
    private let lookup: (UInt32) -> MemoryCgroup?
    /// The daemon's own memory cgroup.
    private let own: MemoryCgroup?
    /// The daemon's own group and the groups above it. A limit set above (a pod's, with
    /// the job and gofetch in containers of their own) holds what every group under it
    /// charges: its own statistics count the job's memory, the daemon's group's do not.
    private let ownAndAbove: [String]

    /// - Parameter own: the daemon's own group; `nil` to leave it out (tests).
    public init(fraction: Double = 0.5, maxProcesses: Int = 4_096, own: MemoryCgroup? = MemoryCgroup.of(pid: UInt32(getpid())),
                lookup: @escaping (UInt32) -> MemoryCgroup? = { MemoryCgroup.of(pid: $0) }) {
        self.own = own
        ownAndAbove = own.map { Self.selfAndAncestors($0.directory) } ?? []
        self.fraction = fraction
        self.maxProcesses = maxProcesses
        self.lookup = lookup
    }

    /// A client process was active at `now` (its group counts only while the daemon's
    /// own is unknown: not looked up otherwise).
    public func saw(pid: UInt32, now: UInt64) {
        guard own == nil else { return }
        if groups[pid] == nil {
            if groups.count >= maxProcesses { groups.removeAll(keepingCapacity: true) }
            groups[pid] = .some(lookup(pid))
        }
        if let group = groups[pid] ?? nil {
            if lastSeen.updateValue(now, forKey: group.directory) == nil { newGroup = true }
        }
    }

    /// Re-reads the limits of the daemon's own group and the groups above it (a client's
    /// group that holds the daemon's is one of them; one that does not cannot evict what
    /// the daemon loads), or, when the daemon's group is unknown, of the clients' groups
    /// active in the last 10 s; at most once a second (at once when a client in a group
    /// not seen before appeared).
    public func refresh(now: UInt64) {
        guard now &- lastRefresh >= 1_000_000_000 || lastRefresh == 0 || newGroup else { return }
        lastRefresh = now
        newGroup = false
        lastSeen = lastSeen.filter { now &- $0.value < 10_000_000_000 }
        var best: (directory: String, limit: UInt64, anonymous: UInt64, room: UInt64)?
        for directory in own == nil ? Set(lastSeen.keys) : Set(ownAndAbove) {
            let version = FileManager.default.fileExists(atPath: directory + "/memory.limit_in_bytes") ? 1 : 2
            let (limit, anonymous, activeFile) = MemoryCgroup(directory: directory, version: version).read()
            guard let limit else { continue }
            let room = MemoryCgroup.room(limit: limit, anonymous: anonymous, activeFile: activeFile)
            if best == nil || room < best!.room { best = (directory, limit, anonymous, room) }
        }
        tightest = best.map { ($0.directory, $0.limit, $0.anonymous) }
        ceiling = best.map { UInt64(Double($0.room) * fraction) }
    }

    /// `directory` and the groups above it that have a memory controller's files (the
    /// cgroup root has no v2 `memory.max`; v1's root is unlimited), at most 32.
    static func selfAndAncestors(_ directory: String) -> [String] {
        var found = [directory]
        var current = directory
        while found.count < 32, let slash = current.lastIndex(of: "/"), slash != current.startIndex {
            current = String(current[..<slash])
            guard FileManager.default.fileExists(atPath: current + "/memory.limit_in_bytes")
                || FileManager.default.fileExists(atPath: current + "/memory.max") else { break }
            found.append(current)
        }
        return found
    }
}
