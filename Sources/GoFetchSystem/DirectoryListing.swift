import Glibc
import SystemPackage

/// The regular files a directory holds, by name: what the GRU's ``DirectoryIndex``
/// places files among. `gofetch train`, `gofetch eval` and the live daemon list
/// folders with this one rule, so a file's place in its folder is the same in all three.
public enum DirectoryListing {
    /// The names of the regular files in `path` (symbolic links to regular files
    /// included; hidden names, sub-folders and other kinds left out), at most `limit`,
    /// in the order the file system returns them.
    public static func regularFileNames(in path: String, limit: Int) throws(Errno) -> [String] {
        try names(in: path, of: .regular, limit: limit)
    }

    /// The regular files of `path` with their sizes, and its sub-folders (a symbolic
    /// link counts as what it points to; hidden names left out), at most `limit` of each.
    package static func entries(in path: String, limit: Int) throws(Errno) -> (files: [(name: String, size: UInt64)], folders: [String]) {
        let stream = try Syscall.openClientDirectory(path)
        defer { Syscall.closeDirectory(stream) }
        var files: [(name: String, size: UInt64)] = []
        var folders: [String] = []
        while files.count < limit && folders.count < limit, let entry = try Syscall.readDirectory(stream) {
            guard entry.name.first != 46, let name = PathName.decode(entry.name.dropLast().lazy.map { UInt8(bitPattern: $0) }) else { continue }  // "."
            if entry.kind == .directory {
                folders.append(name)
                continue
            }
            guard entry.kind == .regular || entry.kind == .symbolicLink || entry.kind == .unknown,
                  let status = try? Syscall.fileStatus(entry.name, in: stream.descriptor, followSymlinks: true) else { continue }
            if status.isRegular {
                files.append((name, status.size))
            } else if status.mode & S_IFMT == S_IFDIR, entry.kind != .symbolicLink {
                folders.append(name)  // a symbolic link to a folder is not followed: no cycles
            }
        }
        return (files, folders)
    }

    /// The names in `path` of one kind (`.regular` or `.directory`; a symbolic link
    /// counts as what it points to), hidden ones left out, at most `limit`.
    package static func names(in path: String, of wanted: DirectoryEntry.Kind, limit: Int) throws(Errno) -> [String] {
        let stream = try Syscall.openClientDirectory(path)
        defer { Syscall.closeDirectory(stream) }
        var names: [String] = []
        while names.count < limit, let entry = try Syscall.readDirectory(stream) {
            guard entry.name.first != 46 else { continue }  // "."
            var kind = entry.kind
            if kind == .unknown || kind == .symbolicLink {
                kind = (try? Syscall.fileStatus(entry.name, in: stream.descriptor, followSymlinks: true))?.kind ?? .other
            }
            guard kind == wanted, let name = PathName.decode(entry.name.dropLast().lazy.map { UInt8(bitPattern: $0) }) else { continue }
            names.append(name)
        }
        return names
    }
}
