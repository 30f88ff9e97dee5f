import CGoFetchLinux
import Foundation
import Glibc
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
    /// Descriptors of admitted opens per process: reads of other descriptors are not data.
    private var open: [UInt32: Set<Int32>] = [:]
    private var credentials: [UInt32: (uid: UInt32, gid: UInt32, parent: UInt32)] = [:]
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
            throw EBPFSourceError(problem: "the ebpf backend cannot start: \(String(cString: message)); use --backend preload")
        }
        self.handle = handle
        pollDescriptor = FileDescriptor(rawValue: CGoFetch_bpf_fd(handle))
        self.filter = filter
    }

    deinit { CGoFetch_bpf_close(handle) }

    static func locate() -> String? {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        var candidates = [executable + "/gofetch.bpf.o"]
        var folder = URL(fileURLWithPath: executable)
        for _ in 0..<6 {
            candidates.append(folder.path + "/bpf/build/gofetch.bpf.o")
            folder.deleteLastPathComponent()
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    public func trace(pid: UInt32) {
        _ = CGoFetch_bpf_trace_pid(handle, pid)
    }

    /// Records the kernel side could not queue.
    public var kernelDropped: Int { Int(CGoFetch_bpf_dropped(handle)) }

    /// Pages each admitted file brought into the page cache, by path.
    public func missedPagesByPath() -> [String: Int] {
        let counts = misses.withLock { $0 }
        var result: [String: Int] = [:]
        for (key, pages) in counts { if let path = paths[key] { result[path, default: 0] += pages } }
        return result
    }

    public func drain(_ deliver: ([AccessEvent], UInt32, UInt32, UInt32) -> Void) {
        var count = 0
        guard let records = CGoFetch_bpf_consume(handle, &count), count > 0 else { return }
        statistics.records.add(count)
        var batch: [AccessEvent] = []
        var batchPID: UInt32 = 0
        func flush() {
            guard !batch.isEmpty else { return }
            let process = identity(batchPID)
            deliver(batch, process.uid, process.gid, process.parent)
            batch.removeAll(keepingCapacity: true)
        }
        for index in 0..<count {
            let record = records[index]
            if record.pid != batchPID {
                flush()
                batchPID = record.pid
            }
            if let event = event(record) { batch.append(event) }
        }
        flush()
    }

    private func event(_ record: CGoFetch_bpf_record) -> AccessEvent? {
        switch record.kind {
        case 1:  // open
            var path = withUnsafeBytes(of: record.path) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
            if !path.hasPrefix("/") {
                guard let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(record.pid)/cwd") else { return nil }
                path = cwd + "/" + path
            }
            path = (path as NSString).standardizingPath
            guard filter.admits(path), let status = try? Syscall.fileStatus(path, followSymlinks: true), status.mode & S_IFMT == S_IFREG else {
                statistics.filtered.add(1)
                return nil
            }
            if open.count >= 65_536 { open.removeAll(keepingCapacity: true) }
            open[record.pid, default: []].insert(record.fd)
            let key = FileKey(device: status.device, inode: status.inode)
            if paths.count < Self.maxFiles { paths[key] = path }
            return AccessEvent(
                kind: .open, source: .ebpf, pid: record.pid, tid: record.tid, fd: record.fd, monotonicNanoseconds: record.time_ns,
                device: key.device, inode: key.inode, offset: 0, length: status.size,
                durationNanoseconds: UInt32(clamping: record.duration_ns), path: path)
        case 2:  // read, pread64
            guard open[record.pid]?.contains(record.fd) == true else { return nil }
            let positional = record.offset != UInt64.max
            return AccessEvent(
                kind: .read, flags: positional ? .positional : [], source: .ebpf, pid: record.pid, tid: record.tid, fd: record.fd,
                monotonicNanoseconds: record.time_ns, device: 0, inode: 0, offset: positional ? record.offset : 0,
                length: record.length, durationNanoseconds: UInt32(clamping: record.duration_ns))
        case 4:  // close
            guard open[record.pid]?.remove(record.fd) != nil else { return nil }
            return AccessEvent(
                kind: .close, source: .ebpf, pid: record.pid, tid: record.tid, fd: record.fd, monotonicNanoseconds: record.time_ns,
                device: 0, inode: 0, offset: 0, length: 0, durationNanoseconds: 0)
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

    private func identity(_ pid: UInt32) -> (uid: UInt32, gid: UInt32, parent: UInt32) {
        if let known = credentials[pid] { return known }
        let (uid, gid) = FanotifySource.credentials(of: pid)
        let result = (uid, gid, IngestServer.parentPID(of: pid_t(bitPattern: pid)))
        if credentials.count >= 65_536 { credentials.removeAll(keepingCapacity: true) }
        credentials[pid] = result
        return result
    }
}
