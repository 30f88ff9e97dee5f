import CGoFetchBPF
import CGoFetchLinux
import Foundation
import Glibc
import GoFetchEvents
import GoFetchSystem
import Synchronization
import SystemPackage

/// Why the eBPF source cannot start.
public struct EBPFSourceError: Error, CustomStringConvertible, Sendable {
    public var problem: String
    public var description: String { problem }
}

/// Counters of the eBPF source.
public final class EBPFStatistics: Sendable {
    public let records = Atomic<Int>(0)
    /// Opens of files under an excluded prefix, or that could not be stat-ed; their reads are skipped too.
    public let filtered = Atomic<Int>(0)
    /// Pages the traced processes brought into the page cache (misses).
    public let missedPages = Atomic<Int>(0)
    public init() {}
}

/// The eBPF trace source: a CO-RE program (`bpf/gofetch.bpf.c`) on the
/// `syscalls` tracepoints of openat, read, pread64 and close, and on
/// `filemap/mm_filemap_add_to_page_cache`, for the traced process trees only (the
/// kernel side follows forks). Records come through a BPF ring buffer; the kernel
/// side drops (and counts) rather than wait when it is full. Unlike fanotify it sees
/// byte counts, offsets of `pread` and the time of each read, and the pages each
/// file brought in: its page-cache misses. Needs root and BTF.
public final class EBPFSource: KernelTraceSource, @unchecked Sendable {
    public let pollDescriptor: FileDescriptor
    public let statistics = EBPFStatistics()
    private let handle: OpaquePointer
    private let filter: TracePathFilter
    /// Files whose opens were admitted, with the device `stat` gives them: reads and
    /// closes of other files are not data.
    private var admitted: [FileKey: UInt64] = [:]
    private var parents: [UInt32: UInt32] = [:]
    /// Pages missed per file (device, inode), and the path of each admitted file (bounded).
    private let misses = Mutex([FileKey: Int]())
    private var paths: [FileKey: String] = [:]
    private static let maxFiles = 1_000_000

    public struct FileKey: Hashable, Sendable {
        public var device: UInt64
        public var inode: UInt64
    }

    /// Loads `object` (default: `gofetch.bpf.o` next to the executable, or the source tree's `bpf/build/`).
    public init(object: String? = nil, filter: TracePathFilter) throws(EBPFSourceError) {
        guard geteuid() == 0 else {
            throw EBPFSourceError(problem: "the ebpf backend needs root (CAP_BPF and CAP_PERFMON): run gofetch as root, or use --backend preload, which needs no privileges")
        }
        guard FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux") else {
            throw EBPFSourceError(problem: "the ebpf backend needs the kernel's BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF); use --backend fanotify or preload")
        }
        guard let path = object ?? Self.locate() else {
            throw EBPFSourceError(problem: "gofetch.bpf.o not found next to gofetch or in bpf/build/ (scripts/build makes it); use --backend preload")
        }
        do {
            try Syscall.mountTraceFileSystem()
        } catch {
            throw EBPFSourceError(problem: "the ebpf backend needs tracefs at /sys/kernel/tracing and could not mount it (\(error)); use --backend fanotify or preload")
        }
        var message = [CChar](repeating: 0, count: 512)
        guard let handle = CGoFetch_bpf_open(path, &message, message.count) else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw EBPFSourceError(problem: "the ebpf backend cannot start: \(text); use --backend preload")
        }
        self.handle = handle
        pollDescriptor = FileDescriptor(rawValue: CGoFetch_bpf_fd(handle))
        self.filter = filter
    }

    deinit { CGoFetch_bpf_close(handle) }

    /// The compiled program: next to the executable, under `../lib/gofetch/`, or in the source tree (``InstallLayout``).
    package static func locate() -> String? {
        InstallLayout.candidates("gofetch.bpf.o", sourcePath: "bpf/build/gofetch.bpf.o").first { FileManager.default.fileExists(atPath: $0) }
    }

    public func trace(pid: UInt32) {
        _ = CGoFetch_bpf_trace_pid(handle, pid)
    }

    public func traceChildren(of pid: UInt32) {
        _ = CGoFetch_bpf_trace_children(handle, pid)
    }

    /// Records lost: the kernel side's ring buffer was full, or more waited than one drain takes.
    public var kernelDropped: Int { Int(CGoFetch_bpf_dropped(handle) + CGoFetch_bpf_lost(handle)) }

    public func report() -> KernelSourceReport {
        .ebpf(EBPFReport(
            records: statistics.records.value, filtered: statistics.filtered.value, kernelDropped: kernelDropped,
            missedPages: statistics.missedPages.value, missedPagesByFile: missedPagesByPath()))
    }

    /// Pages each admitted file brought into the page cache, by path.
    public func missedPagesByPath() -> [String: Int] {
        let counts = misses.withLock { $0 }
        var result: [String: Int] = [:]
        for (key, pages) in counts { if let path = paths[key] { result[path, default: 0] += pages } }
        return result
    }

    public func drain(_ deliver: ([AccessEvent], UInt32, UInt32, UInt32) -> Void, ended: (UInt32) -> Void) {
        var count = 0
        guard let records = CGoFetch_bpf_consume(handle, &count), count > 0 else { return }
        statistics.records.add(count)
        var batch: [AccessEvent] = []
        var batchOwner = (pid: UInt32(0), uid: UInt32(0), gid: UInt32(0))
        func flush() {
            guard !batch.isEmpty else { return }
            // The uid and gid are the kernel's, of the very task that made the call.
            deliver(batch, batchOwner.uid, batchOwner.gid, parent(of: batchOwner.pid))
            batch.removeAll(keepingCapacity: true)
        }
        for index in 0..<count {
            let record = records[index]
            if (record.pid, record.uid, record.gid) != batchOwner {
                flush()
                batchOwner = (record.pid, record.uid, record.gid)
            }
            if let event = event(record) { batch.append(event) }
            if record.kind == 8 {
                flush()
                ended(record.pid)
            }
        }
        flush()
    }

    private func event(_ record: CGoFetch_bpf_record) -> AccessEvent? {
        switch record.kind {
        case 1:  // open
            // offset: the dirfd a relative path is relative to; length: bytes of the path with its NUL.
            guard record.length > 0, record.length < 256, record.inode != 0 else {
                statistics.filtered.add(1)  // no path, a path longer than the record holds, or no file
                return nil
            }
            guard var path = withUnsafeBytes(of: record.path, { raw in PathName.decode(raw.prefix { $0 != 0 }) }) else {
                statistics.filtered.add(1)
                return nil
            }
            if !path.hasPrefix("/") {
                let dirfd = Int32(truncatingIfNeeded: record.offset)
                let base = dirfd == AT_FDCWD ? "/proc/\(record.pid)/cwd" : "/proc/\(record.pid)/fd/\(dirfd)"
                guard let directory = try? FileManager.default.destinationOfSymbolicLink(atPath: base) else {
                    statistics.filtered.add(1)
                    return nil
                }
                path = directory + "/" + path
            }
            path = (path as NSString).standardizingPath
            let key = FileKey(device: Self.userDevice(record.device), inode: record.inode)
            // The path must still name the file the kernel opened (a rename or chdir since would mislead).
            guard filter.admits(path), let status = try? Syscall.fileStatus(path, followSymlinks: true),
                  status.mode & S_IFMT == S_IFREG, status.inode == key.inode else {
                statistics.filtered.add(1)
                return nil
            }
            if admitted.count >= Self.maxFiles { admitted.removeAll(keepingCapacity: true) }
            admitted[key] = status.device
            if paths.count < Self.maxFiles { paths[key] = path }
            return AccessEvent(
                kind: .open, source: .ebpf, pid: record.pid, tid: record.tid, fd: record.fd, monotonicNanoseconds: record.time_ns,
                device: status.device, inode: key.inode, offset: 0, length: status.size,
                durationNanoseconds: UInt32(clamping: record.duration_ns), path: path)
        case 2, 4:  // read or pread64 (offset: the file position), close
            let key = FileKey(device: Self.userDevice(record.device), inode: record.inode)
            guard let device = admitted[key] else { return nil }
            return AccessEvent(
                kind: record.kind == 2 ? .read : .close, source: .ebpf, pid: record.pid, tid: record.tid, fd: record.fd,
                monotonicNanoseconds: record.time_ns, device: device, inode: key.inode, offset: record.kind == 2 ? record.offset : 0,
                length: record.kind == 2 ? record.length : 0, durationNanoseconds: UInt32(clamping: record.duration_ns))
        case 8:  // a traced process ended
            parents[record.pid] = nil
            return nil
        case 7:  // pages added to the page cache: a miss
            let key = FileKey(device: Self.userDevice(record.device), inode: record.inode)
            statistics.missedPages.add(Int(record.length))
            misses.withLock { counts in
                if counts[key] != nil || counts.count < Self.maxFiles { counts[key, default: 0] += Int(record.length) }
            }
            return nil
        default:
            return nil
        }
    }

    /// The kernel's `dev_t` (major << 20 | minor) as `stat` reports it.
    static func userDevice(_ kernel: UInt64) -> UInt64 {
        let major = kernel >> 20, minor = kernel & 0xFFFFF
        return (minor & 0xFF) | ((major & 0xFFF) << 8) | ((minor & ~0xFF) << 12) | ((major & ~0xFFF) << 32)
    }

    private func parent(of pid: UInt32) -> UInt32 {
        if let known = parents[pid] { return known }
        let parent = ProcessStat.parentPID(of: pid)
        if parents.count >= 65_536 { parents.removeAll(keepingCapacity: true) }
        parents[pid] = parent
        return parent
    }
}
