import CGoFetchLinux
import Glibc
import Foundation
import SystemPackage

/// An open directory being read: a `DIR *`, the descriptor under it, and the
/// directory's identity.
package struct DirectoryStream {
    fileprivate let handle: OpaquePointer
    package let device: UInt64
    package let inode: UInt64
    /// The directory's descriptor, to open its entries relative to it.
    package var descriptor: FileDescriptor { FileDescriptor(rawValue: dirfd(handle)) }
}

/// One entry of a directory, as `readdir` names and types it.
package struct DirectoryEntry {
    package enum Kind { case regular, directory, symbolicLink, other, unknown }
    /// The name's bytes as the file system has them, NUL-terminated.
    package var name: [CChar]
    /// `unknown` where the file system does not fill `d_type`: ask `fileStatus`.
    package var kind: Kind
}

extension Syscall {
    /// Opens a directory for reading its entries.
    /// - Parameters:
    ///   - path: absolute, or relative to `directory`.
    ///   - directory: an open directory; `nil` is the working directory.
    ///   - followSymlinks: `false` fails with ELOOP where the last component is a symbolic link.
    /// The corresponding C functions are `openat(O_DIRECTORY)`, `fstat` and `fdopendir`.
    package static func openDirectory(_ path: UnsafePointer<CChar>, in directory: FileDescriptor? = nil, followSymlinks: Bool) throws(Errno) -> DirectoryStream {
        let flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (followSymlinks ? 0 : O_NOFOLLOW)
        let base = directory?.rawValue ?? AT_FDCWD
        return try directoryStream(try valueOrErrno { Glibc.openat(base, path, flags) }.get())
    }

    /// Opens a directory a client named (``openClientPath(_:flags:)``: no magic links,
    /// no pseudo file system) for reading its entries.
    package static func openClientDirectory(_ path: String) throws(Errno) -> DirectoryStream {
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
    package static func readDirectory(_ stream: DirectoryStream) throws(Errno) -> DirectoryEntry? {
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
    package static func closeDirectory(_ stream: DirectoryStream) {
        closedir(stream.handle)
    }

    /// Whether `fd` is a terminal. The corresponding C function is `isatty`.
    package static func isTerminal(_ fd: FileDescriptor) -> Bool {
        isatty(fd.rawValue) == 1
    }
}
