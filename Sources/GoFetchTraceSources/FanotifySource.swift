import CGoFetchLinux
import Foundation
import Glibc
import GoFetchEvents
import GoFetchSystem
import Synchronization
import SystemPackage

/// Why the fanotify source cannot start.
public struct FanotifySourceError: Error, CustomStringConvertible, Sendable {
    public var problem: String
    public var description: String { problem }
}

/// Counters of the fanotify source.
public final class FanotifyStatistics: Sendable {
    public let events = Atomic<Int>(0)
    /// Events of processes outside the traced process trees.
    public let otherProcesses = Atomic<Int>(0)
    /// Events of files under an excluded prefix (or outside the included ones).
    public let filtered = Atomic<Int>(0)
    /// The kernel's queue overflowed: events were lost (counted once per overflow).
    public let overflows = Atomic<Int>(0)
    /// Pids found to belong to a later process than the one judged (judged again).
    public let pidsReused = Atomic<Int>(0)
    /// Events whose folder handle or name could not be turned into a path (name mode).
    public let unresolved = Atomic<Int>(0)
    public init() {}
}

/// A kernel trace source for jobs that cannot be wrapped (statically linked,
/// containers): fanotify marks on whole file systems report every open, read and
/// close, with the process and a descriptor for the file, without touching the job.
///
/// Only processes in the traced trees count (a root pid and its descendants, by
/// `/proc/PID/stat`). Where the file systems support it (ext4, xfs, btrfs, tmpfs…)
/// the group reports names (`FAN_REPORT_DFID_NAME`): each event names the file by
/// its folder's handle (resolved once per folder, cached) and its name, so the
/// kernel opens no file for gofetch per event; elsewhere (FUSE, network file
/// systems) events carry a descriptor, and the path is the descriptor's. Device,
/// inode and size come from `stat`. fanotify reports no offsets or lengths: reads arrive with length 0
/// (the kernel also merges repeated reads of one file into one event), so this
/// source gives the file set, the order and the timing of opens, not byte counts —
/// the preload shim or the Python hook give those. Needs CAP_SYS_ADMIN.
///
/// Confined to the ingest thread but for ``trace(pid:)``.
public final class FanotifySource: KernelTraceSource, @unchecked Sendable {
    public let fd: FileDescriptor
    public let statistics = FanotifyStatistics()
    /// Events name files by folder handle and name (else they carry a descriptor).
    public let reportsNames: Bool
    /// One descriptor on each marked file system, by file-system id (for open_by_handle_at).
    private var mounts: [UInt64: FileDescriptor] = [:]
    /// Folder paths by file-system id and handle bytes; bounded (cleared when full).
    private var folders: [[UInt8]: String] = [:]
    /// Traced roots with their start time, so a later process given a root's pid is not traced.
    private let roots = Mutex([UInt32: UInt64]())
    private let spawners = Mutex(Set<UInt32>())
    private let filter: TracePathFilter
    /// Per pid: traced or not, and its file-system credentials (`nil` when its /proc
    /// entry was gone: its events are dropped, never attributed to root); with the
    /// process's start time, checked again after a second (a tenth of one for root),
    /// so a later process that got the pid is judged afresh and a process that changed
    /// its user is that user's from then on.
    private var verdicts: [UInt32: Verdict] = [:]
    private struct Verdict {
        var traced: Bool
        var uid: UInt32?
        var gid: UInt32?
        var parent: UInt32
        var startTicks: UInt64?
        var checkedAt: UInt64
    }
    private var lastRoots = [UInt32: UInt64]()
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)

    /// Marks the file systems holding `paths` for opens, reads and closes.
    /// Names where every marked file system supports it, descriptors otherwise.
    public init(paths: [String], filter: TracePathFilter) throws(FanotifySourceError) {
        self.filter = filter
        if let (group, mounts) = Self.nameReportingGroup(paths) {
            fd = group
            reportsNames = true
            self.mounts = mounts
            return
        }
        reportsNames = false
        let group: FileDescriptor
        do {
            group = try Syscall.fanotifyInit()
        } catch {
            buffer.deallocate()
            throw FanotifySourceError(problem: error == .notPermitted
                ? "the fanotify backend needs root (CAP_SYS_ADMIN): run gofetch as root, or use --backend preload, which needs no privileges"
                : "fanotify is not available (\(error)); use --backend preload")
        }
        for path in paths {
            do {
                try Syscall.fanotifyMarkFileSystem(group, path: path, mask: Self.mask)
            } catch {
                try? group.close()
                buffer.deallocate()
                throw FanotifySourceError(problem: "cannot mark the file system of \(path) for fanotify: \(error)")
            }
        }
        fd = group
    }

    private static let mask = CGoFetch_FAN_OPEN | CGoFetch_FAN_ACCESS | CGoFetch_FAN_CLOSE_NOWRITE

    /// A group reporting names with every path's file system marked, or `nil` (an old
    /// kernel, or a file system without file handles: the caller uses descriptors).
    private static func nameReportingGroup(_ paths: [String]) -> (FileDescriptor, [UInt64: FileDescriptor])? {
        guard let group = try? Syscall.fanotifyInit(reportingNames: true) else { return nil }
        var mounts: [UInt64: FileDescriptor] = [:]
        do {
            for path in paths {
                try Syscall.fanotifyMarkFileSystem(group, path: path, mask: mask)
                let handle = try Syscall.fileSystemHandle(path)
                if mounts[handle.fileSystemID] == nil { mounts[handle.fileSystemID] = handle.fd } else { try? handle.fd.close() }
            }
        } catch {
            for mount in mounts.values { try? mount.close() }
            try? group.close()
            return nil
        }
        return (group, mounts)
    }

    public var pollDescriptor: FileDescriptor { fd }

    deinit {
        try? fd.close()
        for mount in mounts.values { try? mount.close() }
        buffer.deallocate()
    }

    /// Traces `pid` and every process it starts from now on.
    public func trace(pid: UInt32) {
        guard let stat = ProcessStat.of(pid) else { return }  // gone already: nothing of it to trace
        roots.withLock { roots in
            // Many roots (a cgroup's processes come and go): forget the ended ones.
            if roots.count >= 4_096 { roots = roots.filter { ProcessStat.of($0.key)?.startTicks == $0.value } }
            roots[pid] = stat.startTicks
        }
    }

    public func traceChildren(of pid: UInt32) {
        spawners.withLock { _ = $0.insert(pid) }
    }

    /// Reads every queued event and hands the traced ones on, grouped per process.
    /// fanotify reports no process exits: `ended` is not called.
    public func report() -> KernelSourceReport {
        .fanotify(FanotifyReport(
            mode: reportsNames ? "names" : "descriptors", events: statistics.events.value,
            otherProcesses: statistics.otherProcesses.value, filtered: statistics.filtered.value,
            unresolved: statistics.unresolved.value, overflows: statistics.overflows.value,
            pidsReused: statistics.pidsReused.value))
    }

    public func drain(_ deliver: (_ events: [AccessEvent], _ uid: UInt32, _ gid: UInt32, _ parentPID: UInt32) -> Void, ended: (UInt32) -> Void) {
        let spawners = self.spawners.withLock { $0 }
        let roots = self.roots.withLock { $0 }
        if roots != lastRoots {
            // A new root: processes judged untraced may now be in a traced tree.
            verdicts = verdicts.filter { $0.value.traced }
            lastRoots = roots
        }
        while true {
            let count: Int
            do {
                count = try fd.read(into: buffer)
            } catch {
                return  // EAGAIN: nothing more now
            }
            guard count > 0 else { return }
            var offset = 0
            while offset + MemoryLayout<CGoFetch_fanotify_event>.size <= count {
                let event = buffer.loadUnaligned(fromByteOffset: offset, as: CGoFetch_fanotify_event.self)
                guard event.event_len >= MemoryLayout<CGoFetch_fanotify_event>.size, event.vers == CGoFetch_FANOTIFY_METADATA_VERSION else {
                    // Not a record this code understands: close its descriptor and give up on this read.
                    if event.fd >= 0 { try? FileDescriptor(rawValue: event.fd).close() }
                    break
                }
                handle(event, at: UnsafeRawPointer(buffer.baseAddress! + offset), roots: roots, spawners: spawners, deliver: deliver)
                offset += Int(event.event_len)
            }
        }
    }

    private func handle(_ event: CGoFetch_fanotify_event, at bytes: UnsafeRawPointer, roots: [UInt32: UInt64], spawners: Set<UInt32>, deliver: ([AccessEvent], UInt32, UInt32, UInt32) -> Void) {
        if event.mask & CGoFetch_FAN_Q_OVERFLOW != 0 {
            statistics.overflows.add(1)
            return
        }
        let file = event.fd >= 0 ? FileDescriptor(rawValue: event.fd) : nil
        defer { try? file?.close() }
        guard file != nil || reportsNames else { return }
        statistics.events.add(1)
        let pid = UInt32(bitPattern: event.pid)
        let process = verdict(pid, roots: roots, spawners: spawners)
        guard process.traced, let uid = process.uid, let gid = process.gid else {
            statistics.otherProcesses.add(1)
            return
        }
        let path: String
        let status: FileStatus
        if let file {
            guard let named = Syscall.path(of: file), filter.admits(named), let found = try? Syscall.fileStatus(file) else {
                statistics.filtered.add(1)
                return
            }
            (path, status) = (named, found)
        } else {
            guard var named = self.path(of: bytes, length: event.event_len) else {
                statistics.unresolved.add(1)
                return
            }
            var found = try? Syscall.fileStatus(named, followSymlinks: false)
            if found == nil, let again = self.path(of: bytes, length: event.event_len, cached: false), again != named {
                (named, found) = (again, try? Syscall.fileStatus(again, followSymlinks: false))  // the folder moved since it was cached
            }
            guard filter.admits(named), let found, found.isRegular else {
                statistics.filtered.add(1)
                return
            }
            (path, status) = (named, found)
        }
        let now = Clock.monotonicNanoseconds()
        func access(_ kind: AccessKind) -> AccessEvent {
            AccessEvent(kind: kind, source: .fanotify, pid: pid, tid: pid, fd: -1, monotonicNanoseconds: now,
                        device: status.device, inode: status.inode, offset: 0,
                        length: kind == .open ? status.size : 0, durationNanoseconds: 0, path: kind == .open ? path : nil)
        }
        var events: [AccessEvent] = []
        if event.mask & CGoFetch_FAN_OPEN != 0 { events.append(access(.open)) }
        if event.mask & CGoFetch_FAN_ACCESS != 0 { events.append(access(.read)) }
        if event.mask & CGoFetch_FAN_CLOSE_NOWRITE != 0 { events.append(access(.close)) }
        deliver(events, uid, gid, process.parent)
    }

    /// The path an event of a name-reporting group names: its folder (by handle,
    /// resolved once and cached) and the entry's name.
    private func path(of event: UnsafeRawPointer, length: UInt32, cached: Bool = true) -> String? {
        var fileSystem: UInt64 = 0
        var name: UnsafePointer<CChar>?
        guard let handle = CGoFetch_fanotify_dfid_name(event, length, &fileSystem, &name), let name else { return nil }
        var key = withUnsafeBytes(of: fileSystem) { Array($0) }
        key += UnsafeRawBufferPointer(start: handle, count: Int(CGoFetch_file_handle_size(handle)))
        let folder: String
        if cached, let known = folders[key] {
            folder = known
        } else {
            guard let mount = mounts[fileSystem], let found = try? Syscall.folderPath(handle: handle, on: mount) else { return nil }
            if folders.count >= 65_536 { folders.removeAll(keepingCapacity: true) }
            folders[key] = found
            folder = found
        }
        guard let entry = PathName.decode(UnsafeRawBufferPointer(start: name, count: strlen(name))) else { return nil }
        return folder == "/" ? "/" + entry : folder + "/" + entry
    }

    /// Whether `pid` descends from a traced root, with its uid, gid and parent (cached, bounded).
    private func verdict(_ pid: UInt32, roots: [UInt32: UInt64], spawners: Set<UInt32>) -> Verdict {
        let now = Clock.monotonicNanoseconds()
        if var known = verdicts[pid] {
            // A root process is looked at again sooner: dropping privileges (gosu,
            // su-exec, setpriv) keeps the pid, and its opens from then on are the new user's.
            if now &- known.checkedAt < (known.uid == 0 ? 100_000_000 : 1_000_000_000) { return known }
            let stat = ProcessStat.of(pid)
            // Gone: its last queued events are still its own.
            if stat == nil || stat?.startTicks == known.startTicks {
                if stat != nil, let credentials = ProcessCredentials.of(pid) {
                    (known.uid, known.gid) = (credentials.fileSystemUID, credentials.fileSystemGID)
                }
                known.checkedAt = now
                verdicts[pid] = known
                return known
            }
            verdicts[pid] = nil
            statistics.pidsReused.add(1)
        }
        var traced = false
        var current = pid
        for _ in 0..<64 {
            if let started = roots[current], ProcessStat.of(current)?.startTicks == started { traced = true; break }
            if let known = verdicts[current], known.traced { traced = true; break }
            let parent = ProcessStat.parentPID(of: current)
            if spawners.contains(parent) { traced = true; break }
            guard parent > 1 else { break }
            current = parent
        }
        let credentials = ProcessCredentials.of(pid)
        let stat = ProcessStat.of(pid)
        let result = Verdict(
            traced: traced, uid: credentials?.fileSystemUID, gid: credentials?.fileSystemGID, parent: stat?.parent ?? 0, startTicks: stat?.startTicks, checkedAt: now)
        if verdicts.count >= 65_536 { verdicts.removeAll(keepingCapacity: true) }
        verdicts[pid] = result
        return result
    }
}
