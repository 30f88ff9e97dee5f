import Foundation
import GoFetchEvents
import GoFetchSystem

/// Where each known file stands in its directory's sorted listing, and which file
/// stands at a given place: the GRU predicts moves ("two files on", "the first
/// file of the next directory"), and this turns a move back into a file, also one
/// the job has never opened, as long as the catalog knows it.
///
/// Directories are ranked by path and files within a directory by name (byte
/// order for ASCII names, as `sorted(os.listdir())` and `ls` list them), so a
/// data loader that walks folders in listing order makes small, regular moves.
/// Memory grows with the files added (the catalog's own bound, `ingest.max_files`).
public final class DirectoryIndex {
    /// A file's place: its directory's rank among all directories, its index in
    /// that directory's sorted listing, and the listing's length.
    public struct Location: Hashable, Sendable {
        public var directory: Int
        public var index: Int
        public var count: Int

        public init(directory: Int, index: Int, count: Int) {
            self.directory = directory
            self.index = index
            self.count = count
        }

        /// Files after this one in its directory.
        public var remaining: Int { count - 1 - index }
    }

    final class Directory {
        let path: String
        var names: [String] = []
        var ids: [FileID] = []
        /// Bumped when a file is inserted: listing indices cached before are stale.
        var generation = 0

        init(path: String) { self.path = path }

        /// Index of `name` in the sorted listing, or where it would go.
        func position(of name: String) -> (index: Int, found: Bool) {
            var low = 0, high = names.count
            while low < high {
                let middle = (low + high) / 2
                if names[middle] < name { low = middle + 1 } else { high = middle }
            }
            return (low, low < names.count && names[low] == name)
        }
    }

    struct Entry {
        let directory: Directory
        let name: String
        /// FNV-1a of the path: stable across stores, unlike the file id.
        let pathHash: UInt64
        /// The listing index when the directory was at `generation` (saves a search of the listing).
        let index: Int
        let generation: Int
    }

    private var directories: [Directory] = []
    private var directoryByPath: [String: Directory] = [:]
    private var entries: [FileID: Entry] = [:]

    public init() {}

    /// An index of `files`, built in one sort.
    public convenience init(files: some Sequence<FileRecord>) {
        self.init()
        var byDirectory: [String: [(name: String, id: FileID)]] = [:]
        for file in files {
            let (directory, name) = Self.split(file.path)
            byDirectory[directory, default: []].append((name, file.id))
        }
        for (path, files) in byDirectory {
            let directory = Directory(path: path)
            // The same path under two ids (the file was replaced): the newer id wins the slot.
            let sorted = files.sorted { $0.name != $1.name ? $0.name < $1.name : $0.id < $1.id }
            for file in sorted {
                if directory.names.last == file.name {
                    directory.ids[directory.ids.count - 1] = file.id
                } else {
                    directory.names.append(file.name)
                    directory.ids.append(file.id)
                }
                entries[file.id] = Entry(directory: directory, name: file.name, pathHash: Self.hash(path, file.name), index: directory.names.count - 1, generation: 0)
            }
            directoryByPath[path] = directory
            directories.append(directory)
        }
        directories.sort { $0.path < $1.path }
    }

    public var fileCount: Int { entries.count }
    public var directoryCount: Int { directories.count }

    /// Adds a file the catalog learned of (or a new id for a known path).
    public func add(id: FileID, path: String) {
        guard entries[id] == nil else { return }
        let (directoryPath, name) = Self.split(path)
        let directory = directoryByPath[directoryPath] ?? insertDirectory(directoryPath)
        let (index, found) = directory.position(of: name)
        if found {
            directory.ids[index] = id
        } else {
            directory.names.insert(name, at: index)
            directory.ids.insert(id, at: index)
            directory.generation += 1
        }
        entries[id] = Entry(directory: directory, name: name, pathHash: Self.hash(directoryPath, name), index: index, generation: directory.generation)
    }

    public func add(_ file: FileRecord) { add(id: file.id, path: file.path) }

    /// Lists every known directory on disk (its regular files, ``DirectoryListing``,
    /// as the live daemon lists them) and adds the names the index lacks, so listing
    /// indices are those of the real directory, files never opened included.
    /// Added files get ids below `firstID` (negative ids name no catalog file: a
    /// prediction of one is never an access). At most `maxPerDirectory` names are
    /// read from one directory; unreadable directories are skipped.
    /// - Returns: the number of names added.
    @discardableResult
    public func addListings(maxPerDirectory: Int = 100_000, firstID: FileID = -1) -> Int {
        var next = firstID
        var added = 0
        for directory in directories {
            guard let names = try? DirectoryListing.regularFileNames(in: directory.path, limit: maxPerDirectory) else { continue }
            for name in names where directory.position(of: name).found == false {
                add(id: next, path: directory.path == "/" ? "/\(name)" : "\(directory.path)/\(name)")
                next -= 1
                added += 1
            }
        }
        return added
    }

    /// Where `id` stands, or `nil` for a file this index does not know.
    public func location(of id: FileID) -> Location? {
        guard let entry = entries[id] else { return nil }
        let directory = entry.directory
        let index = entry.generation == directory.generation ? entry.index : directory.position(of: entry.name).index
        return Location(directory: rank(of: directory.path), index: index, count: directory.names.count)
    }

    /// The file at `index` of the directory ranked `directory`, or `nil` off the ends.
    public func file(directory: Int, index: Int) -> FileID? {
        guard directories.indices.contains(directory) else { return nil }
        let listing = directories[directory]
        return listing.ids.indices.contains(index) ? listing.ids[index] : nil
    }

    /// A hash of the file's path, or `nil` for a file this index does not know.
    public func pathHash(of id: FileID) -> UInt64? { entries[id]?.pathHash }

    /// A directory's rank among all (where it is or would go), by binary search: ranks
    /// are not stored, so a new directory costs one insertion, not a renumbering of
    /// every directory after it (a flood of new folders would be quadratic).
    private func rank(of path: String) -> Int {
        var low = 0, high = directories.count
        while low < high {
            let middle = (low + high) / 2
            if directories[middle].path < path { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private func insertDirectory(_ path: String) -> Directory {
        let directory = Directory(path: path)
        directories.insert(directory, at: rank(of: path))
        directoryByPath[path] = directory
        return directory
    }

    static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    /// 64-bit FNV-1a of "directory/name".
    static func hash(_ directory: String, _ name: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in directory.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        hash = (hash ^ UInt64(UInt8(ascii: "/"))) &* 0x0000_0100_0000_01B3
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }
}
