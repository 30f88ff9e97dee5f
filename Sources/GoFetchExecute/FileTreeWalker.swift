import GoFetchSystem
import SystemPackage

/// Walks files and folders depth first, holding one open directory per level: memory
/// grows with the depth of a tree, never with the number of files in it.
///
/// Entries are opened relative to their directory's descriptor, read-only and with
/// O_NOATIME where permitted. A path given to `walk` is followed if it is a symbolic
/// link (as `find -H` does); links inside the tree are skipped unless
/// `followSymlinks`, and then a link back to a directory being walked is skipped too,
/// so a loop cannot make the walk endless. An entry that cannot be read is reported
/// and the walk goes on.
struct FileTreeWalker {
    enum Event {
        /// A regular file, open read-only; closed when the visit returns.
        case file(path: String, descriptor: FileDescriptor, status: FileStatus)
        case directory(path: String)
        /// A symbolic link not followed (or one that leads back into the walk), or a
        /// device, socket or pipe: never opened.
        case skipped(path: String)
        /// An entry that could not be read; `isRoot` when it is the path given to `walk`.
        case failed(path: String, error: Errno, isRoot: Bool)
    }

    var followSymlinks = false

    /// Visits `root` and, if it is a directory, everything below it. Paths below it are
    /// reported as `root/name/…`.
    func walk(_ root: String, _ visit: (Event) -> Void) {
        let stream: DirectoryStream
        do {
            let kind = try Syscall.fileStatus(root, followSymlinks: true).kind
            if kind == .regular { return visitFile(root, in: nil, isRoot: true, displayedAs: root, visit) }
            guard kind == .directory else { return visit(.skipped(path: root)) }
            stream = try Syscall.openDirectory(root, followSymlinks: true)
        } catch {
            return visit(.failed(path: root, error: error, isRoot: true))
        }
        visit(.directory(path: root))
        walkBelow(Level(stream: stream, path: root), visit)
    }

    /// A directory being read.
    private struct Level {
        var stream: DirectoryStream
        var path: String
    }

    private func walkBelow(_ root: Level, _ visit: (Event) -> Void) {
        var stack = [root]
        while let top = stack.last {
            let next: DirectoryEntry?
            do {
                next = try Syscall.readDirectory(top.stream)
            } catch {
                visit(.failed(path: top.path, error: error, isRoot: false))
                next = nil
            }
            guard let entry = next else {
                Syscall.closeDirectory(top.stream)
                stack.removeLast()
                continue
            }
            let name = entry.name
            // For display: a name that is not UTF-8 shows with U+FFFD; it is opened by its bytes.
            let path = top.path + (top.path.hasSuffix("/") ? "" : "/") + name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            let parent = top.stream.descriptor

            var kind = entry.kind
            if kind == .unknown || (kind == .symbolicLink && followSymlinks) {
                do {
                    kind = try Syscall.fileStatus(name, in: parent, followSymlinks: followSymlinks).kind
                } catch {
                    visit(.failed(path: path, error: error, isRoot: false))
                    continue
                }
            }
            switch kind {
            case .regular:
                visitFile(name, in: parent, isRoot: false, displayedAs: path, visit)
            case .directory:
                let stream: DirectoryStream
                do {
                    stream = try Syscall.openDirectory(name, in: parent, followSymlinks: followSymlinks)
                } catch {
                    visit(.failed(path: path, error: error, isRoot: false))
                    continue
                }
                if stack.contains(where: { $0.stream.device == stream.device && $0.stream.inode == stream.inode }) {
                    Syscall.closeDirectory(stream)
                    visit(.skipped(path: path))
                    continue
                }
                stack.append(Level(stream: stream, path: path))
                visit(.directory(path: path))
            case .symbolicLink, .other, .unknown:  // unknown: never, once fileStatus has answered
                visit(.skipped(path: path))
            }
        }
    }

    private func visitFile(_ name: UnsafePointer<CChar>, in directory: FileDescriptor?, isRoot: Bool, displayedAs path: String, _ visit: (Event) -> Void) {
        do {
            let fd = try Syscall.openReadOnly(name, in: directory, followSymlinks: isRoot || followSymlinks)
            defer { try? fd.close() }
            let status = try Syscall.fileStatus(fd)
            // Replaced between the listing and the open: what is there now decides.
            guard status.isRegular else { return visit(.skipped(path: path)) }
            visit(.file(path: path, descriptor: fd, status: status))
        } catch {
            visit(.failed(path: path, error: error, isRoot: isRoot))
        }
    }
}
