/// The supplementary groups of client processes, so a prefetch may read what the
/// job may read through any of its groups (a data set shared with a project's
/// group, say), and nothing more.
///
/// Read from `/proc/PID/status` when a pid is first seen and again after
/// `refreshNanoseconds`; used only while that process still has the uid and gid
/// its events carry (else the pid is another process's now: no groups). At most
/// `capacity` pids are remembered; when it is reached all are forgotten and read
/// again as they come (a cache: nothing is lost).

package final class ClientGroups {
    private struct Entry {
        var groups: [UInt32]
        var checkedAt: UInt64
    }

    /// By pid and the identity asked about: a pid may be reused by another user's
    /// process, or the process may have changed identity, within the refresh time.
    private struct Key: Hashable {
        var pid: UInt32
        var uid: UInt32
        var gid: UInt32
    }

    private var entries: [Key: Entry] = [:]
    private let capacity: Int
    private let refreshNanoseconds: UInt64

    package init(capacity: Int = 4_096, refreshNanoseconds: UInt64 = 10_000_000_000) {
        self.capacity = capacity
        self.refreshNanoseconds = refreshNanoseconds
    }

    /// The supplementary groups of `pid` if it runs as `uid`/`gid`, else none.
    package func groups(pid: UInt32, uid: UInt32, gid: UInt32, now: UInt64) -> [UInt32] {
        let key = Key(pid: pid, uid: uid, gid: gid)
        if let entry = entries[key], now &- entry.checkedAt < refreshNanoseconds { return entry.groups }
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        var groups: [UInt32] = []
        if let status = ProcessCredentials.of(pid), status.uids.contains(uid), status.gids.contains(gid) {
            groups = status.groups
        }
        entries[key] = Entry(groups: groups, checkedAt: now)
        return groups
    }
}
