import CGoFetchLinux
import Glibc
import Foundation
import SystemPackage

package struct FileStatus: Sendable {
    package var size: UInt64
    package var device: UInt64
    package var inode: UInt64
    package var mode: mode_t
    package var owner: uid_t

    package init(_ status: stat) {
        size = UInt64(status.st_size)
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        mode = status.st_mode
        owner = status.st_uid
    }

    package var isRegular: Bool { mode & S_IFMT == S_IFREG }

    /// The type, in the terms of a directory entry.
    package var kind: DirectoryEntry.Kind {
        switch mode & S_IFMT {
        case S_IFREG: .regular
        case S_IFDIR: .directory
        case S_IFLNK: .symbolicLink
        default: .other
        }
    }
}
