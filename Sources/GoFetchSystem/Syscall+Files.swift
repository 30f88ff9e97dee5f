import CGoFetchLinux
import Glibc
import Foundation
import SystemPackage

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
    package static func openRegularFile(_ path: String) throws(Errno) -> (fd: FileDescriptor, status: FileStatus) {
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
    package static func openClientPath(_ path: UnsafePointer<CChar>, flags: Int32) throws(Errno) -> Int32 {
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
    package static func openReadOnly(_ path: UnsafePointer<CChar>, in directory: FileDescriptor? = nil, followSymlinks: Bool = true) throws(Errno) -> FileDescriptor {
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
    package static func fileStatus(_ fd: FileDescriptor) throws(Errno) -> FileStatus {
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
    package static func fileStatus(_ path: UnsafePointer<CChar>, in directory: FileDescriptor? = nil, followSymlinks: Bool) throws(Errno) -> FileStatus {
        var status = stat()
        let base = directory?.rawValue ?? AT_FDCWD
        _ = try valueOrErrno { fstatat(base, path, &status, followSymlinks ? 0 : AT_SYMLINK_NOFOLLOW) }.get()
        return FileStatus(status)
    }

    /// The status of the file a path names; the path's bytes as ``PathName`` keeps them.
    package static func fileStatus(_ path: String, followSymlinks: Bool) throws(Errno) -> FileStatus {
        try PathName.withCString(path) { (path) throws(Errno) in try fileStatus(path, followSymlinks: followSymlinks) }
    }

    /// Whether the file lives on a FUSE file system. The corresponding C function is `fstatfs`.
    package static func isFUSE(_ fd: FileDescriptor) -> Bool {
        CGoFetch_fs_type(fd.rawValue) == CGoFetch_FUSE_SUPER_MAGIC
    }

    /// Whether the file lives on a FUSE or network file system (NFS, SMB/CIFS, Ceph,
    /// Lustre, 9P, AFS, GPFS): storage far away, often behind a link of its own.
    /// The corresponding C function is `fstatfs`.
    package static func isRemote(_ fd: FileDescriptor) -> Bool {
        let remote: Set<Int64> = [
            CGoFetch_FUSE_SUPER_MAGIC, 0x6969 /* NFS */, 0x517B /* SMB */, 0xFF53_4D42 /* CIFS */, 0xFE53_4D42 /* SMB2 */,
            0x00C3_6400 /* Ceph */, 0x0BD0_0BD0 /* Lustre */, 0x0102_1997 /* 9P */, 0x5346_414F /* AFS */, 0x4750_4653, /* GPFS */
        ]
        return remote.contains(CGoFetch_fs_type(fd.rawValue))
    }

    /// The corresponding C function is `posix_fadvise`.
    package static func adviseWillNeed(_ fd: FileDescriptor, offset: UInt64, length: UInt64) throws(Errno) {
        let result = posix_fadvise(fd.rawValue, off_t(offset), off_t(length), POSIX_FADV_WILLNEED)
        if result != 0 { throw Errno(rawValue: result) }
    }

    /// The corresponding C function is `posix_fadvise(POSIX_FADV_DONTNEED)`.
    package static func adviseDontNeed(_ fd: FileDescriptor, offset: UInt64, length: UInt64) throws(Errno) {
        let result = posix_fadvise(fd.rawValue, off_t(offset), off_t(length), POSIX_FADV_DONTNEED)
        if result != 0 { throw Errno(rawValue: result) }
    }

    /// Tells the kernel the file is read at random, so a read loads only the pages it
    /// asks for and nothing ahead of them. The corresponding C function is
    /// `posix_fadvise(POSIX_FADV_RANDOM)`.
    package static func adviseRandom(_ fd: FileDescriptor) throws(Errno) {
        let result = posix_fadvise(fd.rawValue, 0, 0, POSIX_FADV_RANDOM)
        if result != 0 { throw Errno(rawValue: result) }
    }

    /// A second descriptor of the same open file (close-on-exec). The corresponding C
    /// function is `fcntl(F_DUPFD_CLOEXEC)`.
    package static func duplicate(_ fd: FileDescriptor) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0) }.get())
    }

    /// The corresponding C function is `readahead`.
    package static func readahead(_ fd: FileDescriptor, offset: UInt64, length: UInt64) throws(Errno) {
        _ = try valueOrErrno { CGoFetch_readahead(fd.rawValue, Int64(offset), Int(length)) }.get()
    }

    /// Reads into `buffer` at `offset`; returns the bytes read (0 at end of file).
    /// The corresponding C function is `pread`.
    package static func pread(_ fd: FileDescriptor, _ buffer: UnsafeMutableRawBufferPointer, offset: UInt64) throws(Errno) -> Int {
        try valueOrErrno { Glibc.pread(fd.rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }.get()
    }

    /// Pages of the range in the page cache (`length` 0: to the end of the file):
    /// `cachestat(2)`, or `mincore(2)` on kernels before 6.5. The corresponding system
    /// calls are `cachestat` and `mincore`.
    package static func residentPages(_ fd: FileDescriptor, offset: UInt64, length: UInt64) throws(Errno) -> UInt64 {
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
    package static let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    /// Runs `body` with this thread's file-system identity set to `uid`/`gid`, so the
    /// kernel checks permissions as that user. The corresponding system calls are
    /// `setfsuid` and `setfsgid`.
    ///
    /// The thread's supplementary groups become `gid` and `groups` (the client's own,
    /// ``ProcessCredentials``) for the call, by the raw, per-thread `setgroups` system
    /// call (glibc's wrapper would change every thread), so root's own groups grant
    /// nothing. A daemon that is not root can only act as itself: for another uid it refuses.
    package static func asFileSystemUser<T>(uid: UInt32, gid: UInt32, groups extra: [UInt32] = [], _ body: () throws(Errno) -> T) throws(Errno) -> T {
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
