// The one place gofetch calls the kernel. Thin wrappers, one per call; errors
// come back as swift-system's typed `Errno`, and EINTR is retried here.
import CGoFetchLinux
import Glibc
import Foundation
import SystemPackage

/// Runs a call that returns -1 and sets errno on failure; retries EINTR.
@inline(__always)
package func valueOrErrno<I: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ call: () -> I) -> Result<I, Errno> {
    while true {
        let result = call()
        if result != -1 { return .success(result) }
        let error = Errno(rawValue: errno)
        if retryOnInterrupt && error == .interrupted { continue }
        return .failure(error)
    }
}

package enum Syscall {
    /// The corresponding C function is `socket`.
    package static func socket(domain: Int32, type: Int32, protocol proto: Int32 = 0) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { Glibc.socket(domain, type, proto) }.get())
    }

    /// Binds or connects `fd` to a Unix socket path. The corresponding C functions are `bind` and `connect`.
    package static func withUnixAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) throws(Errno) -> R {
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
    package static func bind(_ fd: FileDescriptor, unixPath: String) throws(Errno) {
        let result = try withUnixAddress(unixPath) { Glibc.bind(fd.rawValue, $0, $1) }
        if result != 0 { throw Errno(rawValue: errno) }
    }

    /// The corresponding C function is `connect`.
    package static func connect(_ fd: FileDescriptor, unixPath: String) throws(Errno) {
        let result = try withUnixAddress(unixPath) { address, length in
            valueOrErrno { Glibc.connect(fd.rawValue, address, length) }
        }
        _ = try result.get()
    }

    /// The corresponding C function is `listen`.
    package static func listen(_ fd: FileDescriptor, backlog: Int32) throws(Errno) {
        _ = try valueOrErrno { Glibc.listen(fd.rawValue, backlog) }.get()
    }

    /// Accepts a connection without blocking; `nil` when none is waiting.
    /// The corresponding C function is `accept4`.
    package static func accept(_ fd: FileDescriptor) throws(Errno) -> FileDescriptor? {
        switch valueOrErrno({ CGoFetch_accept(fd.rawValue) }) {
        case .success(let client): return FileDescriptor(rawValue: client)
        case .failure(let error) where error == .wouldBlock || error == .resourceTemporarilyUnavailable: return nil
        case .failure(let error) where error == .connectionAbort: return nil
        case .failure(let error): throw error
        }
    }

    /// Binds `fd` (an `AF_INET` or `AF_INET6` socket) to a numeric host and port.
    /// The corresponding C functions are `inet_pton` and `bind`.
    package static func bind(_ fd: FileDescriptor, host: String, port: UInt16, ipv6: Bool) throws(Errno) {
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
    package static func boundPort(_ fd: FileDescriptor) throws(Errno) -> UInt16 {
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
    package static func shutdown(_ fd: FileDescriptor) {
        _ = Glibc.shutdown(fd.rawValue, Int32(SHUT_RDWR))
    }

    /// Waits until `fd` is readable (`output: false`) or writable; `false` on timeout.
    /// The corresponding C function is `poll`.
    package static func wait(_ fd: FileDescriptor, output: Bool, timeoutMilliseconds: Int32) throws(Errno) -> Bool {
        var entry = pollfd(fd: fd.rawValue, events: Int16(output ? POLLOUT : POLLIN), revents: 0)
        return try valueOrErrno { Glibc.poll(&entry, 1, timeoutMilliseconds) }.get() > 0
    }

    /// Whether the peer of a connected socket has hung up (or the socket failed), without
    /// waiting. The corresponding C function is `poll` with `POLLRDHUP`.
    package static func peerHungUp(_ fd: FileDescriptor) -> Bool {
        var entry = pollfd(fd: fd.rawValue, events: CGoFetch_POLLRDHUP, revents: 0)
        let ready = (try? valueOrErrno { Glibc.poll(&entry, 1, 0) }.get()) ?? 0
        return ready > 0 && entry.revents & (CGoFetch_POLLRDHUP | Int16(POLLHUP) | Int16(POLLERR)) != 0
    }

    /// Credentials of a connected Unix-socket peer. The corresponding C call is
    /// `getsockopt(SO_PEERCRED)`.
    package static func peerCredentials(_ fd: FileDescriptor) throws(Errno) -> (pid: pid_t, uid: uid_t, gid: gid_t) {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        _ = try valueOrErrno { CGoFetch_peer_credentials(fd.rawValue, &pid, &uid, &gid) }.get()
        return (pid, uid, gid)
    }

    /// Receives up to `slots.count` messages without blocking; 0 when none is waiting.
    /// The corresponding C function is `recvmmsg`.
    package static func receiveMessages(_ fd: FileDescriptor, _ slots: UnsafeMutableBufferPointer<CGoFetch_message_slot>) throws(Errno) -> Int {
        switch valueOrErrno({ CGoFetch_recvmmsg(fd.rawValue, slots.baseAddress, UInt32(slots.count)) }) {
        case .success(let count): return Int(count)
        case .failure(let error) where error == .wouldBlock || error == .resourceTemporarilyUnavailable: return 0
        case .failure(let error): throw error
        }
    }

    /// Sends one message without blocking; `false` when the socket buffer is full.
    /// The corresponding C function is `send`.
    package static func send(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer) throws(Errno) -> Bool {
        switch valueOrErrno({ Glibc.send(fd.rawValue, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }) {
        case .success: return true
        case .failure(let error) where error == .wouldBlock || error == .resourceTemporarilyUnavailable || error == .noBufferSpace: return false
        case .failure(let error): throw error
        }
    }

    /// Sends what the socket takes now of `bytes`, without blocking and without SIGPIPE
    /// (a peer that went away is an error, not a signal); `0` when it takes nothing.
    /// The corresponding C function is `send`.
    package static func sendSome(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int {
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
    package static func fanotifyInit(reportingNames: Bool = false) throws(Errno) -> FileDescriptor {
        let flags = CGoFetch_FAN_CLASS_NOTIF | CGoFetch_FAN_CLOEXEC | CGoFetch_FAN_NONBLOCK | (reportingNames ? CGoFetch_FAN_REPORT_DFID_NAME : 0)
        return FileDescriptor(rawValue: try valueOrErrno { CGoFetch_fanotify_init(flags, UInt32(O_RDONLY | O_CLOEXEC)) }.get())
    }

    /// A read-only descriptor on `path`, and the id of its file system as fanotify
    /// reports it. The corresponding C functions are `open` and `fstatfs`.
    package static func fileSystemHandle(_ path: String) throws(Errno) -> (fd: FileDescriptor, fileSystemID: UInt64) {
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
    package static func folderPath(handle: UnsafeRawPointer, on mount: FileDescriptor) throws(Errno) -> String {
        let folder = FileDescriptor(rawValue: try valueOrErrno { CGoFetch_open_folder_by_handle(mount.rawValue, handle) }.get())
        defer { try? folder.close() }
        guard let path = Syscall.path(of: folder) else { throw Errno.noSuchFileOrDirectory }
        return path
    }

    /// Marks the whole file system holding `path` for `mask`. The corresponding C function is `fanotify_mark`.
    package static func fanotifyMarkFileSystem(_ fd: FileDescriptor, path: String, mask: UInt64) throws(Errno) {
        _ = try valueOrErrno { CGoFetch_fanotify_mark(fd.rawValue, CGoFetch_FAN_MARK_ADD | CGoFetch_FAN_MARK_FILESYSTEM, mask, AT_FDCWD, path) }.get()
    }

    /// The path a descriptor names. The corresponding C function is `readlink` on `/proc/self/fd/N`.
    package static func path(of fd: FileDescriptor) -> String? {
        var buffer = [CChar](repeating: 0, count: 4_097)
        let count = readlink("/proc/self/fd/\(fd.rawValue)", &buffer, 4_096)
        guard count > 0 else { return nil }
        return PathName.decode(buffer[..<count].lazy.map { UInt8(bitPattern: $0) })
    }

    /// Mounts tracefs at /sys/kernel/tracing when it is not there (tracepoints are
    /// attached through it). The corresponding C function is `mount`.
    package static func mountTraceFileSystem() throws(Errno) {
        guard !FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events") else { return }
        _ = try valueOrErrno { Glibc.mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nil) }.get()
    }

    /// The corresponding C function is `setsockopt`.
    package static func setSocketOption(_ fd: FileDescriptor, level: Int32, option: Int32, value: Int32) throws(Errno) {
        var value = value
        _ = try valueOrErrno { Glibc.setsockopt(fd.rawValue, level, option, &value, socklen_t(MemoryLayout<Int32>.size)) }.get()
    }

    /// The corresponding C function is `chmod`.
    package static func chmod(_ path: String, mode: mode_t) throws(Errno) {
        _ = try valueOrErrno { Glibc.chmod(path, mode) }.get()
    }

    /// Removes a file; a missing file is not an error. The corresponding C function is `unlink`.
    package static func unlinkIfPresent(_ path: String) throws(Errno) {
        if Glibc.unlink(path) != 0 && errno != ENOENT { throw Errno(rawValue: errno) }
    }

    /// Creates a directory; an existing one is not an error. The corresponding C function is `mkdir`.
    package static func makeDirectory(_ path: String, mode: mode_t) throws(Errno) {
        if Glibc.mkdir(path, mode) != 0 && errno != EEXIST { throw Errno(rawValue: errno) }
    }

    /// The corresponding C function is `epoll_create1`.
    package static func epollCreate() throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { CGoFetch_epoll_create() }.get())
    }

    /// Adds `fd` to the interest list with a token. The corresponding C function is `epoll_ctl`.
    package static func epollAdd(_ epoll: FileDescriptor, _ fd: FileDescriptor, events: UInt32, token: UInt64) throws(Errno) {
        _ = try valueOrErrno { CGoFetch_epoll_control(epoll.rawValue, 1, fd.rawValue, events, token) }.get()
    }

    /// The corresponding C function is `epoll_ctl`.
    package static func epollRemove(_ epoll: FileDescriptor, _ fd: FileDescriptor) throws(Errno) {
        _ = try valueOrErrno { CGoFetch_epoll_control(epoll.rawValue, 0, fd.rawValue, 0, 0) }.get()
    }

    /// A counter another thread raises to wake an `epoll` wait (non-blocking,
    /// close-on-exec). The corresponding C function is `eventfd`.
    package static func eventCounter() throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { CGoFetch_eventfd() }.get())
    }

    /// Raises an ``eventCounter()`` by one: it becomes readable. Never blocks (a counter
    /// at its maximum stays readable). The corresponding C function is `write`.
    package static func raise(_ counter: FileDescriptor) {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(counter.rawValue, $0.baseAddress, 8) }
    }

    /// Resets an ``eventCounter()`` to zero (not readable). The corresponding C function is `read`.
    package static func reset(_ counter: FileDescriptor) {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { Glibc.read(counter.rawValue, $0.baseAddress, 8) }
    }

    /// Waits for readiness and fills `tokens`; an interrupted wait returns 0.
    /// The corresponding C function is `epoll_wait`.
    package static func epollWait(_ epoll: FileDescriptor, tokens: UnsafeMutableBufferPointer<UInt64>, events: UnsafeMutableBufferPointer<UInt32>, timeoutMilliseconds: Int32) throws(Errno) -> Int {
        switch valueOrErrno(retryOnInterrupt: false, { CGoFetch_epoll_wait(epoll.rawValue, tokens.baseAddress, events.baseAddress, Int32(tokens.count), timeoutMilliseconds) }) {
        case .success(let count): return Int(count)
        case .failure(let error) where error == .interrupted: return 0
        case .failure(let error): throw error
        }
    }

    /// Raises the soft limit on open files to the hard limit: every client is a
    /// descriptor. The corresponding C function is `setrlimit`.
    package static func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// The corresponding C function is `clock_gettime`.
    package static func clockNanoseconds(_ clock: clockid_t) -> UInt64 {
        var time = timespec()
        clock_gettime(clock, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
