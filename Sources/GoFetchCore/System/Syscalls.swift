// The one place gofetch calls the kernel. Thin wrappers, one per call; errors
// come back as swift-system's typed `Errno`, and EINTR is retried here.
import CGoFetchLinux
import Glibc
import Foundation
import SystemPackage

/// Runs a call that returns -1 and sets errno on failure; retries EINTR.
@inline(__always)
func valueOrErrno<I: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ call: () -> I) -> Result<I, Errno> {
    while true {
        let result = call()
        if result != -1 { return .success(result) }
        let error = Errno(rawValue: errno)
        if retryOnInterrupt && error == .interrupted { continue }
        return .failure(error)
    }
}

enum Syscall {
    /// The corresponding C function is `socket`.
    static func socket(domain: Int32, type: Int32, protocol proto: Int32 = 0) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { Glibc.socket(domain, type, proto) }.get())
    }

    /// Binds or connects `fd` to a Unix socket path. The corresponding C functions are `bind` and `connect`.
    static func withUnixAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) throws(Errno) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { throw Errno.fileNameTooLong }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    /// The corresponding C function is `bind`.
    static func bind(_ fd: FileDescriptor, unixPath: String) throws(Errno) {
        let result = try withUnixAddress(unixPath) { Glibc.bind(fd.rawValue, $0, $1) }
        if result != 0 { throw Errno(rawValue: errno) }
    }

    /// The corresponding C function is `connect`.
    static func connect(_ fd: FileDescriptor, unixPath: String) throws(Errno) {
        let result = try withUnixAddress(unixPath) { address, length in
            valueOrErrno { Glibc.connect(fd.rawValue, address, length) }
        }
        _ = try result.get()
    }

    /// The corresponding C function is `listen`.
    static func listen(_ fd: FileDescriptor, backlog: Int32) throws(Errno) {
        _ = try valueOrErrno { Glibc.listen(fd.rawValue, backlog) }.get()
    }

    /// Accepts a connection without blocking; `nil` when none is waiting.
    /// The corresponding C function is `accept4`.
    static func accept(_ fd: FileDescriptor) throws(Errno) -> FileDescriptor? {
        switch valueOrErrno({ CGoFetch_accept(fd.rawValue) }) {
        case .success(let client): return FileDescriptor(rawValue: client)
        case .failure(let error) where error == .wouldBlock || error == .resourceTemporarilyUnavailable: return nil
        case .failure(let error) where error == .connectionAbort: return nil
        case .failure(let error): throw error
        }
    }

    /// Binds `fd` (an `AF_INET` or `AF_INET6` socket) to a numeric host and port.
    /// The corresponding C functions are `inet_pton` and `bind`.
    static func bind(_ fd: FileDescriptor, host: String, port: UInt16, ipv6: Bool) throws(Errno) {
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { throw Errno.invalidArgument }
            try bind(fd, address)
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw Errno.invalidArgument }
            try bind(fd, address)
        }
    }

    private static func bind<Address>(_ fd: FileDescriptor, _ address: Address) throws(Errno) {
        _ = try withUnsafeBytes(of: address) { raw throws(Errno) in
            try valueOrErrno { Glibc.bind(fd.rawValue, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count)) }.get()
        }
    }

    /// The port a socket is bound to (after binding port 0). The corresponding C function is `getsockname`.
    static func boundPort(_ fd: FileDescriptor) throws(Errno) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutableBytes(of: &storage) { raw throws(Errno) in
            try valueOrErrno { Glibc.getsockname(fd.rawValue, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length) }.get()
        }
        return withUnsafeBytes(of: storage) { raw in
            if storage.ss_family == sa_family_t(AF_INET6) {
                return UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
            }
            return UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
        }
    }

    /// Stops a socket's traffic; wakes a thread blocked in `accept`. The corresponding C function is `shutdown`.
    static func shutdown(_ fd: FileDescriptor) {
        _ = Glibc.shutdown(fd.rawValue, Int32(SHUT_RDWR))
    }

    /// Waits until `fd` is readable (`output: false`) or writable; `false` on timeout.
    /// The corresponding C function is `poll`.
    static func wait(_ fd: FileDescriptor, output: Bool, timeoutMilliseconds: Int32) throws(Errno) -> Bool {
        var entry = pollfd(fd: fd.rawValue, events: Int16(output ? POLLOUT : POLLIN), revents: 0)
        return try valueOrErrno { Glibc.poll(&entry, 1, timeoutMilliseconds) }.get() > 0
    }

    /// Credentials of a connected Unix-socket peer. The corresponding C call is
    /// `getsockopt(SO_PEERCRED)`.
    static func peerCredentials(_ fd: FileDescriptor) throws(Errno) -> (pid: pid_t, uid: uid_t, gid: gid_t) {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        _ = try valueOrErrno { CGoFetch_peer_credentials(fd.rawValue, &pid, &uid, &gid) }.get()
        return (pid, uid, gid)
    }

    /// Receives up to `slots.count` messages without blocking; 0 when none is waiting.
    /// The corresponding C function is `recvmmsg`.
    static func receiveMessages(_ fd: FileDescriptor, _ slots: UnsafeMutableBufferPointer<CGoFetch_message_slot>) throws(Errno) -> Int {
        switch valueOrErrno({ CGoFetch_recvmmsg(fd.rawValue, slots.baseAddress, UInt32(slots.count)) }) {
        case .success(let count): return Int(count)
        case .failure(let error) where error == .wouldBlock || error == .resourceTemporarilyUnavailable: return 0
        case .failure(let error): throw error
        }
    }

    /// Sends one message without blocking; `false` when the socket buffer is full.
    /// The corresponding C function is `send`.
    static func send(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer) throws(Errno) -> Bool {
        switch valueOrErrno({ Glibc.send(fd.rawValue, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }) {
        case .success: return true
        case .failure(let error) where error == .wouldBlock || error == .resourceTemporarilyUnavailable || error == .noBufferSpace: return false
        case .failure(let error): throw error
        }
    }

    /// Sends what the socket takes now of `bytes`, without blocking and without SIGPIPE
    /// (a peer that went away is an error, not a signal); `0` when it takes nothing.
    /// The corresponding C function is `send`.
    static func sendSome(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int {
        switch valueOrErrno({ Glibc.send(fd.rawValue, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }) {
        case .success(let count): return count
        case .failure(let error) where error == .wouldBlock || error == .resourceTemporarilyUnavailable: return 0
        case .failure(let error): throw error
        }
    }

    /// A fanotify group for notifications only, non-blocking. Its events carry
    /// read-only descriptors, or with `reportingNames` the parent folder's file handle
    /// and the entry's name (`FAN_REPORT_DFID_NAME`: no file is opened per event).
    /// The corresponding C function is `fanotify_init`.
    static func fanotifyInit(reportingNames: Bool = false) throws(Errno) -> FileDescriptor {
        let flags = CGoFetch_FAN_CLASS_NOTIF | CGoFetch_FAN_CLOEXEC | CGoFetch_FAN_NONBLOCK | (reportingNames ? CGoFetch_FAN_REPORT_DFID_NAME : 0)
        return FileDescriptor(rawValue: try valueOrErrno { CGoFetch_fanotify_init(flags, UInt32(O_RDONLY | O_CLOEXEC)) }.get())
    }

    /// A read-only descriptor on `path`, and the id of its file system as fanotify
    /// reports it. The corresponding C functions are `open` and `fstatfs`.
    static func fileSystemHandle(_ path: String) throws(Errno) -> (fd: FileDescriptor, fileSystemID: UInt64) {
        let fd = FileDescriptor(rawValue: try valueOrErrno { CGoFetch_open_mount_reference(path) }.get())
        var id: UInt64 = 0
        guard CGoFetch_fsid(fd.rawValue, &id) == 0 else {
            let error = Errno(rawValue: errno)
            try? fd.close()
            throw error
        }
        return (fd, id)
    }

    /// The path of the folder a file handle names, on the file system of `mount`.
    /// The corresponding C functions are `open_by_handle_at` and `readlink`.
    static func folderPath(handle: UnsafeRawPointer, on mount: FileDescriptor) throws(Errno) -> String {
        let folder = FileDescriptor(rawValue: try valueOrErrno { CGoFetch_open_folder_by_handle(mount.rawValue, handle) }.get())
        defer { try? folder.close() }
        guard let path = Syscall.path(of: folder) else { throw Errno.noSuchFileOrDirectory }
        return path
    }

    /// Marks the whole file system holding `path` for `mask`. The corresponding C function is `fanotify_mark`.
    static func fanotifyMarkFileSystem(_ fd: FileDescriptor, path: String, mask: UInt64) throws(Errno) {
        _ = try valueOrErrno { CGoFetch_fanotify_mark(fd.rawValue, CGoFetch_FAN_MARK_ADD | CGoFetch_FAN_MARK_FILESYSTEM, mask, AT_FDCWD, path) }.get()
    }

    /// The path a descriptor names. The corresponding C function is `readlink` on `/proc/self/fd/N`.
    static func path(of fd: FileDescriptor) -> String? {
        var buffer = [CChar](repeating: 0, count: 4_097)
        let count = readlink("/proc/self/fd/\(fd.rawValue)", &buffer, 4_096)
        guard count > 0 else { return nil }
        return PathName.decode(buffer[..<count].lazy.map { UInt8(bitPattern: $0) })
    }

    /// Mounts tracefs at /sys/kernel/tracing when it is not there (tracepoints are
    /// attached through it). The corresponding C function is `mount`.
    static func mountTraceFileSystem() throws(Errno) {
        guard !FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events") else { return }
        _ = try valueOrErrno { Glibc.mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nil) }.get()
    }

    /// The corresponding C function is `setsockopt`.
    static func setSocketOption(_ fd: FileDescriptor, level: Int32, option: Int32, value: Int32) throws(Errno) {
        var value = value
        _ = try valueOrErrno { Glibc.setsockopt(fd.rawValue, level, option, &value, socklen_t(MemoryLayout<Int32>.size)) }.get()
    }

    /// The corresponding C function is `chmod`.
    static func chmod(_ path: String, mode: mode_t) throws(Errno) {
        _ = try valueOrErrno { Glibc.chmod(path, mode) }.get()
    }

    /// Removes a file; a missing file is not an error. The corresponding C function is `unlink`.
    static func unlinkIfPresent(_ path: String) throws(Errno) {
        if Glibc.unlink(path) != 0 && errno != ENOENT { throw Errno(rawValue: errno) }
    }

    /// Creates a directory; an existing one is not an error. The corresponding C function is `mkdir`.
    static func makeDirectory(_ path: String, mode: mode_t) throws(Errno) {
        if Glibc.mkdir(path, mode) != 0 && errno != EEXIST { throw Errno(rawValue: errno) }
    }

    /// The corresponding C function is `epoll_create1`.
    static func epollCreate() throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { CGoFetch_epoll_create() }.get())
    }

    /// Adds `fd` to the interest list with a token. The corresponding C function is `epoll_ctl`.
    static func epollAdd(_ epoll: FileDescriptor, _ fd: FileDescriptor, events: UInt32, token: UInt64) throws(Errno) {
        _ = try valueOrErrno { CGoFetch_epoll_control(epoll.rawValue, 1, fd.rawValue, events, token) }.get()
    }

    /// The corresponding C function is `epoll_ctl`.
    static func epollRemove(_ epoll: FileDescriptor, _ fd: FileDescriptor) throws(Errno) {
        _ = try valueOrErrno { CGoFetch_epoll_control(epoll.rawValue, 0, fd.rawValue, 0, 0) }.get()
    }

    /// Waits for readiness and fills `tokens`; an interrupted wait returns 0.
    /// The corresponding C function is `epoll_wait`.
    static func epollWait(_ epoll: FileDescriptor, tokens: UnsafeMutableBufferPointer<UInt64>, events: UnsafeMutableBufferPointer<UInt32>, timeoutMilliseconds: Int32) throws(Errno) -> Int {
        switch valueOrErrno(retryOnInterrupt: false, { CGoFetch_epoll_wait(epoll.rawValue, tokens.baseAddress, events.baseAddress, Int32(tokens.count), timeoutMilliseconds) }) {
        case .success(let count): return Int(count)
        case .failure(let error) where error == .interrupted: return 0
        case .failure(let error): throw error
        }
    }

    /// Raises the soft limit on open files to the hard limit: every client is a
    /// descriptor. The corresponding C function is `setrlimit`.
    static func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// The corresponding C function is `clock_gettime`.
    static func clockNanoseconds(_ clock: clockid_t) -> UInt64 {
        var time = timespec()
        clock_gettime(clock, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}

extension Syscall {
    /// Sleeps for `nanoseconds` (a signal may end it early). The corresponding C function is `nanosleep`.
    static func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        _ = nanosleep(&request, nil)
    }
}

/// Monotonic and wall clocks, and the conversion between them.
public enum Clock {
    /// `CLOCK_MONOTONIC` nanoseconds, the clock the trace sources stamp events with.
    public static func monotonicNanoseconds() -> UInt64 { Syscall.clockNanoseconds(CLOCK_MONOTONIC) }

    /// `CLOCK_REALTIME` nanoseconds since the Unix epoch.
    public static func wallNanoseconds() -> UInt64 { Syscall.clockNanoseconds(CLOCK_REALTIME) }

    /// CPU time of the calling thread.
    public static func threadCPUNanoseconds() -> UInt64 { Syscall.clockNanoseconds(CLOCK_THREAD_CPUTIME_ID) }
}

extension Syscall {
    /// Starts a program found on `PATH` with `SIGINT`, `SIGTERM` and `SIGPIPE` at their
    /// default actions and no signal blocked, whatever this process set for itself.
    /// The corresponding C function is `posix_spawnp`.
    static func spawn(_ arguments: [String], environment: [String: String]) throws(Errno) -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid = pid_t()
        let result = posix_spawnp(&pid, arguments[0], nil, &attributes, argv, envp)
        guard result == 0 else { throw Errno(rawValue: result) }
        return pid
    }

    /// Waits for a child; returns its exit code, or 128 + the signal that killed it.
    /// The corresponding C function is `waitpid`.
    static func waitForExit(_ pid: pid_t) throws(Errno) -> Int32 {
        var status: Int32 = 0
        _ = try valueOrErrno { waitpid(pid, &status, 0) }.get()
        let signal = status & 0x7f
        if signal == 0 { return (status >> 8) & 0xff }
        return 128 + signal
    }
}

/// A command gofetch runs and waits for (`trace`, later `run`).
public struct ChildProcess: Sendable {
    public let pid: pid_t

    /// Starts `arguments` (the first is looked up on `PATH`).
    public static func spawn(_ arguments: [String], environment: [String: String]) throws(ChildProcessError) -> ChildProcess {
        guard let command = arguments.first else { throw ChildProcessError(command: "", problem: "no command given") }
        do {
            return ChildProcess(pid: try Syscall.spawn(arguments, environment: environment))
        } catch {
            throw ChildProcessError(command: command, problem: error == .noSuchFileOrDirectory ? "command not found" : "\(error)")
        }
    }

    /// Sends a signal (forwarding the one gofetch received).
    public func signal(_ number: Int32) { kill(pid, number) }

    /// Waits on a dedicated thread, so no task of the concurrency pool blocks.
    public func exitCode() async -> Int32 {
        await withCheckedContinuation { continuation in
            let thread = Thread { [pid] in
                continuation.resume(returning: (try? Syscall.waitForExit(pid)) ?? 1)
            }
            thread.name = "gofetch-wait"
            thread.start()
        }
    }
}

public struct ChildProcessError: Error, CustomStringConvertible, Sendable {
    public var command: String
    public var problem: String
    public var description: String { "cannot run '\(command)': \(problem)" }
}

// MARK: - Files and the page cache

extension Syscall {
    /// Opens `path` read-only only if it is a regular file, never opening anything
    /// else: the path is resolved with O_PATH (which opens no file), the type checked
    /// on that descriptor, then the same inode opened through `/proc/self/fd`
    /// (read permission is checked then, as the caller's file-system identity) with
    /// ``openReadOnly(_:in:followSymlinks:)``. A FIFO, a device node or a socket is
    /// refused with `EINVAL` before any open of it: a device's open can have effects,
    /// and a FIFO's can wait forever. Returns the descriptor and the file's status.
    ///
    /// The path is a client's: see ``openClientPath(_:flags:)``.
    static func openRegularFile(_ path: String) throws(Errno) -> (fd: FileDescriptor, status: FileStatus) {
        try PathName.withCString(path) { (path) throws(Errno) in try openRegularFile(path) }
    }

    private static func openRegularFile(_ path: UnsafePointer<CChar>) throws(Errno) -> (fd: FileDescriptor, status: FileStatus) {
        let handle = FileDescriptor(rawValue: try openClientPath(path, flags: CGoFetch_O_PATH | O_CLOEXEC))
        defer { try? handle.close() }
        let status = try fileStatus(handle)
        guard status.isRegular else { throw .invalidArgument }
        do {
            return (try openReadOnly("/proc/self/fd/\(handle.rawValue)"), status)
        } catch .noSuchFileOrDirectory {
            // No /proc (a minimal chroot): open the path (O_NONBLOCK: never waits) and
            // check it is still the same regular file.
            let fd = try openReadOnly(path)
            guard let again = try? fileStatus(fd), again.isRegular, again.device == status.device, again.inode == status.inode else {
                try? fd.close()
                throw .invalidArgument
            }
            return (fd, again)
        }
    }

    /// Opens a path a client named, as the calling thread's file-system identity,
    /// without following `/proc`'s magic links (`/proc/PID/cwd/…`, `/proc/PID/root/…`,
    /// `/proc/PID/fd/N`: with CAP_SYS_PTRACE, which `setfsuid` leaves, they would reach
    /// another process's files past folders the client cannot enter; ELOOP), and never
    /// on a kernel pseudo file system (`/proc`, `/sys`, debugfs, cgroup…: EACCES).
    /// On kernels without `openat2` (before 5.6) paths under `/proc/` are refused instead.
    /// The corresponding system call is `openat2` with `RESOLVE_NO_MAGICLINKS`.
    static func openClientPath(_ path: UnsafePointer<CChar>, flags: Int32) throws(Errno) -> Int32 {
        var fd = CGoFetch_open_no_magic_links(AT_FDCWD, path, flags)
        if fd < 0 && errno == ENOSYS {
            guard strncmp(path, "/proc/", 6) != 0 else { throw .permissionDenied }
            fd = Glibc.openat(AT_FDCWD, path, flags)
        }
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        guard CGoFetch_is_pseudo_file_system(CGoFetch_fs_type(fd)) == 0 else {
            Glibc.close(fd)
            throw .permissionDenied
        }
        return fd
    }

    /// Opens read-only, without updating the access time where the kernel lets us
    /// (O_NOATIME needs file ownership or CAP_FOWNER; EPERM falls back to plain).
    /// - Parameters:
    ///   - path: absolute, or relative to `directory`.
    ///   - directory: an open directory; `nil` is the working directory.
    ///   - followSymlinks: `false` fails with ELOOP where the last component is a symbolic link.
    /// The corresponding C function is `openat`.
    ///
    /// Paths here are C strings (a `String` or a `[CChar]` converts implicitly), not
    /// `FilePath`s: a folder walk opens millions of names, and building a `FilePath`
    /// for each cost more than the system calls (a debug build walked 1,500 files/s).
    ///
    /// With O_NONBLOCK: opening a FIFO never waits for a writer, and a file under a
    /// conflicting lease answers EWOULDBLOCK instead of waiting for its holder (on
    /// regular files Linux ignores O_NONBLOCK for reads).
    static func openReadOnly(_ path: UnsafePointer<CChar>, in directory: FileDescriptor? = nil, followSymlinks: Bool = true) throws(Errno) -> FileDescriptor {
        let flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (followSymlinks ? 0 : O_NOFOLLOW)
        let base = directory?.rawValue ?? AT_FDCWD
        let attempt = { (flags: Int32) -> Result<Int32, Errno> in
            valueOrErrno { Glibc.openat(base, path, flags) }
        }
        switch attempt(flags | CGoFetch_O_NOATIME) {
        case .success(let fd): return FileDescriptor(rawValue: fd)
        case .failure(let error) where error == .notPermitted:
            return FileDescriptor(rawValue: try attempt(flags).get())
        case .failure(let error): throw error
        }
    }

    /// Size, device, inode and type. The corresponding C function is `fstat`.
    static func fileStatus(_ fd: FileDescriptor) throws(Errno) -> FileStatus {
        var status = stat()
        _ = try valueOrErrno { fstat(fd.rawValue, &status) }.get()
        return FileStatus(status)
    }

    /// The status of `path` without opening it.
    /// - Parameters:
    ///   - path: absolute, or relative to `directory`.
    ///   - directory: an open directory; `nil` is the working directory.
    ///   - followSymlinks: `false` describes a symbolic link itself, not its target.
    /// The corresponding C function is `fstatat`.
    static func fileStatus(_ path: UnsafePointer<CChar>, in directory: FileDescriptor? = nil, followSymlinks: Bool) throws(Errno) -> FileStatus {
        var status = stat()
        let base = directory?.rawValue ?? AT_FDCWD
        _ = try valueOrErrno { fstatat(base, path, &status, followSymlinks ? 0 : AT_SYMLINK_NOFOLLOW) }.get()
        return FileStatus(status)
    }

    /// The status of the file a path names; the path's bytes as ``PathName`` keeps them.
    static func fileStatus(_ path: String, followSymlinks: Bool) throws(Errno) -> FileStatus {
        try PathName.withCString(path) { (path) throws(Errno) in try fileStatus(path, followSymlinks: followSymlinks) }
    }

    /// Whether the file lives on a FUSE file system. The corresponding C function is `fstatfs`.
    static func isFUSE(_ fd: FileDescriptor) -> Bool {
        CGoFetch_fs_type(fd.rawValue) == CGoFetch_FUSE_SUPER_MAGIC
    }

    /// Whether the file lives on a FUSE or network file system (NFS, SMB/CIFS, Ceph,
    /// Lustre, 9P, AFS, GPFS): storage far away, often behind a link of its own.
    /// The corresponding C function is `fstatfs`.
    static func isRemote(_ fd: FileDescriptor) -> Bool {
        let remote: Set<Int64> = [
            CGoFetch_FUSE_SUPER_MAGIC, 0x6969 /* NFS */, 0x517B /* SMB */, 0xFF53_4D42 /* CIFS */, 0xFE53_4D42 /* SMB2 */,
            0x00C3_6400 /* Ceph */, 0x0BD0_0BD0 /* Lustre */, 0x0102_1997 /* 9P */, 0x5346_414F /* AFS */, 0x4750_4653, /* GPFS */
        ]
        return remote.contains(CGoFetch_fs_type(fd.rawValue))
    }

    /// The corresponding C function is `posix_fadvise`.
    static func adviseWillNeed(_ fd: FileDescriptor, offset: UInt64, length: UInt64) throws(Errno) {
        let result = posix_fadvise(fd.rawValue, off_t(offset), off_t(length), POSIX_FADV_WILLNEED)
        if result != 0 { throw Errno(rawValue: result) }
    }

    /// The corresponding C function is `posix_fadvise(POSIX_FADV_DONTNEED)`.
    static func adviseDontNeed(_ fd: FileDescriptor, offset: UInt64, length: UInt64) throws(Errno) {
        let result = posix_fadvise(fd.rawValue, off_t(offset), off_t(length), POSIX_FADV_DONTNEED)
        if result != 0 { throw Errno(rawValue: result) }
    }

    /// Tells the kernel the file is read at random, so a read loads only the pages it
    /// asks for and nothing ahead of them. The corresponding C function is
    /// `posix_fadvise(POSIX_FADV_RANDOM)`.
    static func adviseRandom(_ fd: FileDescriptor) throws(Errno) {
        let result = posix_fadvise(fd.rawValue, 0, 0, POSIX_FADV_RANDOM)
        if result != 0 { throw Errno(rawValue: result) }
    }

    /// A second descriptor of the same open file (close-on-exec). The corresponding C
    /// function is `fcntl(F_DUPFD_CLOEXEC)`.
    static func duplicate(_ fd: FileDescriptor) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0) }.get())
    }

    /// The corresponding C function is `readahead`.
    static func readahead(_ fd: FileDescriptor, offset: UInt64, length: UInt64) throws(Errno) {
        _ = try valueOrErrno { CGoFetch_readahead(fd.rawValue, Int64(offset), Int(length)) }.get()
    }

    /// Reads into `buffer` at `offset`; returns the bytes read (0 at end of file).
    /// The corresponding C function is `pread`.
    static func pread(_ fd: FileDescriptor, _ buffer: UnsafeMutableRawBufferPointer, offset: UInt64) throws(Errno) -> Int {
        try valueOrErrno { Glibc.pread(fd.rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }.get()
    }

    /// Pages of the range in the page cache (`length` 0: to the end of the file):
    /// `cachestat(2)`, or `mincore(2)` on kernels before 6.5. The corresponding system
    /// calls are `cachestat` and `mincore`.
    static func residentPages(_ fd: FileDescriptor, offset: UInt64, length: UInt64) throws(Errno) -> UInt64 {
        var result = CGoFetch_cachestat()
        if CGoFetch_cachestat(fd.rawValue, offset, length, &result) == 0 { return result.nr_cache }
        // No cachestat: an old kernel (ENOSYS), a seccomp filter that does not know it
        // (EPERM), or a file system without it (EOPNOTSUPP). mincore answers the same.
        guard errno == ENOSYS || errno == EPERM || errno == EOPNOTSUPP else { throw Errno(rawValue: errno) }
        let end = try length == 0 ? fileStatus(fd).size : offset + length
        let start = offset / pageSize * pageSize
        guard end > start else { return 0 }
        return UInt64(try valueOrErrno { CGoFetch_resident_pages_mincore(fd.rawValue, start, end - start) }.get())
    }

    /// The size of a page-cache page. The corresponding C function is `sysconf(_SC_PAGESIZE)`.
    static let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    /// Runs `body` with this thread's file-system identity set to `uid`/`gid`, so the
    /// kernel checks permissions as that user. The corresponding system calls are
    /// `setfsuid` and `setfsgid`.
    ///
    /// The thread's supplementary groups become `gid` and `groups` (the client's own,
    /// ``ProcessCredentials``) for the call, by the raw, per-thread `setgroups` system
    /// call (glibc's wrapper would change every thread), so root's own groups grant
    /// nothing. A daemon that is not root can only act as itself: for another uid it refuses.
    static func asFileSystemUser<T>(uid: UInt32, gid: UInt32, groups extra: [UInt32] = [], _ body: () throws(Errno) -> T) throws(Errno) -> T {
        let ownUID = geteuid()
        if uid == ownUID && (ownUID != 0 || gid == getegid()) { return try body() }
        guard ownUID == 0 else { throw Errno.permissionDenied }
        var groups = [gid_t(gid)] + extra.prefix(Int(NGROUPS_MAX)).map { gid_t($0) }
        guard CGoFetch_set_thread_groups(groups.count, &groups) == 0 else { throw Errno(rawValue: errno) }
        let previousGID = CGoFetch_setfsgid(gid)
        let previousUID = CGoFetch_setfsuid(uid)
        defer {
            _ = CGoFetch_setfsuid(UInt32(previousUID))
            _ = CGoFetch_setfsgid(UInt32(previousGID))
            var none: [gid_t] = []
            _ = CGoFetch_set_thread_groups(0, &none)
        }
        // setfsuid reports the previous id whether or not it changed anything: ask again.
        guard CGoFetch_setfsuid(UInt32.max) == Int32(bitPattern: uid), CGoFetch_setfsgid(UInt32.max) == Int32(bitPattern: gid) else {
            throw Errno.permissionDenied
        }
        return try body()
    }
}

/// What `stat` tells of a file.
struct FileStatus: Sendable {
    var size: UInt64
    var device: UInt64
    var inode: UInt64
    var mode: mode_t

    init(_ status: stat) {
        size = UInt64(status.st_size)
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        mode = status.st_mode
    }

    var isRegular: Bool { mode & S_IFMT == S_IFREG }

    /// The type, in the terms of a directory entry.
    var kind: DirectoryEntry.Kind {
        switch mode & S_IFMT {
        case S_IFREG: .regular
        case S_IFDIR: .directory
        case S_IFLNK: .symbolicLink
        default: .other
        }
    }
}

// MARK: - Directories

/// An open directory being read: a `DIR *`, the descriptor under it, and the
/// directory's identity.
struct DirectoryStream {
    fileprivate let handle: OpaquePointer
    let device: UInt64
    let inode: UInt64
    /// The directory's descriptor, to open its entries relative to it.
    var descriptor: FileDescriptor { FileDescriptor(rawValue: dirfd(handle)) }
}

/// One entry of a directory, as `readdir` names and types it.
struct DirectoryEntry {
    enum Kind { case regular, directory, symbolicLink, other, unknown }
    /// The name's bytes as the file system has them, NUL-terminated.
    var name: [CChar]
    /// `unknown` where the file system does not fill `d_type`: ask `fileStatus`.
    var kind: Kind
}

extension Syscall {
    /// Opens a directory for reading its entries.
    /// - Parameters:
    ///   - path: absolute, or relative to `directory`.
    ///   - directory: an open directory; `nil` is the working directory.
    ///   - followSymlinks: `false` fails with ELOOP where the last component is a symbolic link.
    /// The corresponding C functions are `openat(O_DIRECTORY)`, `fstat` and `fdopendir`.
    static func openDirectory(_ path: UnsafePointer<CChar>, in directory: FileDescriptor? = nil, followSymlinks: Bool) throws(Errno) -> DirectoryStream {
        let flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (followSymlinks ? 0 : O_NOFOLLOW)
        let base = directory?.rawValue ?? AT_FDCWD
        return try directoryStream(try valueOrErrno { Glibc.openat(base, path, flags) }.get())
    }

    /// Opens a directory a client named (``openClientPath(_:flags:)``: no magic links,
    /// no pseudo file system) for reading its entries.
    static func openClientDirectory(_ path: String) throws(Errno) -> DirectoryStream {
        try PathName.withCString(path) { (path) throws(Errno) in
            try directoryStream(try openClientPath(path, flags: O_RDONLY | O_DIRECTORY | O_CLOEXEC))
        }
    }

    private static func directoryStream(_ fd: Int32) throws(Errno) -> DirectoryStream {
        var status = stat()
        guard fstat(fd, &status) == 0, let handle = fdopendir(fd) else {
            let error = Errno(rawValue: errno)
            Glibc.close(fd)
            throw error
        }
        return DirectoryStream(handle: handle, device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// The next entry, `.` and `..` left out; `nil` at the end. The corresponding C
    /// function is `readdir`.
    static func readDirectory(_ stream: DirectoryStream) throws(Errno) -> DirectoryEntry? {
        var name: [CChar] = []
        var type: UInt8 = 0
        repeat {
            errno = 0
            guard let entry = readdir(stream.handle) else {
                if errno != 0 { throw Errno(rawValue: errno) }
                return nil
            }
            name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                let bytes = raw.bindMemory(to: CChar.self)
                return Array(bytes[0...strlen(bytes.baseAddress!)])
            }
            type = entry.pointee.d_type
        } while name == [46, 0] || name == [46, 46, 0]  // "." and ".."
        let kind: DirectoryEntry.Kind
        switch Int(type) {
        case DT_REG: kind = .regular
        case DT_DIR: kind = .directory
        case DT_LNK: kind = .symbolicLink
        case DT_UNKNOWN: kind = .unknown
        default: kind = .other
        }
        return DirectoryEntry(name: name, kind: kind)
    }

    /// Closes the directory and its descriptor. The corresponding C function is `closedir`.
    static func closeDirectory(_ stream: DirectoryStream) {
        closedir(stream.handle)
    }

    /// Whether `fd` is a terminal. The corresponding C function is `isatty`.
    static func isTerminal(_ fd: FileDescriptor) -> Bool {
        isatty(fd.rawValue) == 1
    }
}

// MARK: - Processes

/// What `/proc/PID/stat` tells of a process: its parent, and when it started (which
/// tells a process from a later one that got the same pid).
struct ProcessStat: Equatable, Sendable {
    var parent: UInt32
    /// Clock ticks after boot (field 22, `starttime`).
    var startTicks: UInt64

    /// `nil` when the process is gone (or the text is not a stat line).
    static func of(_ pid: UInt32) -> ProcessStat? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
        return parse(text)
    }

    /// "pid (comm) state ppid … starttime …"; comm may hold spaces and parentheses.
    static func parse(_ text: String) -> ProcessStat? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3), so field N is fields[N - 3].
        guard fields.count > 19, let parent = UInt32(fields[1]), let start = UInt64(fields[19]) else { return nil }
        return ProcessStat(parent: parent, startTicks: start)
    }
}

/// What `/proc/PID/status` tells of a process's credentials.
struct ProcessCredentials: Equatable, Sendable {
    /// Real, effective, saved and file-system ids.
    var uids: [UInt32]
    var gids: [UInt32]
    /// Supplementary groups.
    var groups: [UInt32]

    /// The ids the kernel checks file access with (the fourth of each line; the
    /// effective ones follow them unless the process set them apart with setfsuid).
    var fileSystemUID: UInt32 { uids.count > 3 ? uids[3] : uids[uids.count - 1] }
    var fileSystemGID: UInt32 { gids.count > 3 ? gids[3] : gids[gids.count - 1] }

    /// `nil` when the process is gone.
    static func of(_ pid: UInt32) -> ProcessCredentials? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return parse(text)
    }

    static func parse(_ text: String) -> ProcessCredentials? {
        var uids: [UInt32]?, gids: [UInt32]?, groups: [UInt32] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard let key = fields.first else { continue }
            let values = fields.dropFirst().compactMap { UInt32($0) }
            switch key {
            case "Uid:": uids = values
            case "Gid:": gids = values
            case "Groups:": groups = values
            default: continue
            }
        }
        guard let uids, let gids, !uids.isEmpty, !gids.isEmpty else { return nil }
        return ProcessCredentials(uids: uids, gids: gids, groups: groups)
    }
}
