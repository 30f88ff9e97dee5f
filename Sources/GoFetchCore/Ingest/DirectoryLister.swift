import DequeModule
import Foundation
import Synchronization
import SystemPackage

/// The regular files a directory holds, by name: what the GRU's ``DirectoryIndex``
/// places files among. `gofetch train`, `gofetch eval` and the live daemon list
/// folders with this one rule, so a file's place in its folder is the same in all three.
public enum DirectoryListing {
    /// The names of the regular files in `path` (symbolic links to regular files
    /// included; hidden names, sub-folders and other kinds left out), at most `limit`,
    /// in the order the file system returns them.
    public static func regularFileNames(in path: String, limit: Int) throws(Errno) -> [String] {
        let stream = try Syscall.openDirectory(path, followSymlinks: true)
        defer { Syscall.closeDirectory(stream) }
        var names: [String] = []
        while names.count < limit, let entry = try Syscall.readDirectory(stream) {
            guard entry.name.first != 46 else { continue }  // "."
            var kind = entry.kind
            if kind == .unknown || kind == .symbolicLink {
                kind = (try? Syscall.fileStatus(entry.name, in: stream.descriptor, followSymlinks: true))?.kind ?? .other
            }
            guard kind == .regular else { continue }
            names.append(String(decoding: entry.name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return names
    }
}

/// Lists, on its own thread, the folders of files the job opens, so the catalog
/// knows their neighbours before the job opens them: the GRU predicts moves within
/// a folder's listing ("two files on", "the first file of the next folder"), and
/// only files the catalog knows can be prefetched.
///
/// A folder is listed once, as the client whose open led to it (its file-system
/// uid and gid), so gofetch never learns names the job could not list itself.
/// Everything is bounded: pending folders, folders listed, names per folder; what
/// hits a bound is counted.
public final class DirectoryLister: @unchecked Sendable {
    public struct Options: Sendable {
        /// Folders listed over the lister's life, at most.
        public var maxDirectories = 65_536
        /// Names taken from one folder, at most.
        public var maxNamesPerDirectory = 100_000
        /// Folders waiting to be listed, at most.
        public var maxPending = 4_096

        public init(maxDirectories: Int = 65_536, maxNamesPerDirectory: Int = 100_000, maxPending: Int = 4_096) {
            self.maxDirectories = maxDirectories
            self.maxNamesPerDirectory = maxNamesPerDirectory
            self.maxPending = maxPending
        }
    }

    /// One folder's regular files.
    public struct Listing: Sendable, Equatable {
        public var directory: String
        public var names: [String]
    }

    public struct Statistics: Sendable, Equatable {
        public var listed = 0
        public var names = 0
        /// Folders that could not be listed (gone, or the client may not read them).
        public var failed = 0
        /// Folders not listed because a bound was reached.
        public var skipped = 0
    }

    private struct Request {
        var directory: String
        var uid: UInt32
        var gid: UInt32
    }

    private struct State {
        var pending = Deque<Request>()
        var results: [Listing] = []
        var statistics = Statistics()
        var stopping = false
    }

    public let options: Options
    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)
    private var thread: JoinableThread?
    /// Folders asked for so far (caller's thread only).
    private var requested: Set<String> = []
    private var running = false

    public init(options: Options = Options()) {
        self.options = options
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    public func start() {
        guard !running else { return }
        running = true
        thread = JoinableThread(name: "gofetch-list") { [self] in run() }
    }

    /// Stops after the folder being listed; folders still pending are not listed.
    public func stop() {
        guard running else { return }
        running = false
        state.withLock { $0.stopping = true }
        wakeUp.signal()
        thread?.join()
    }

    /// Asks for the folder of `path` to be listed, once, as `uid`/`gid`. Never blocks.
    public func request(folderOf path: String, uid: UInt32, gid: UInt32) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let directory = String(path[..<slash])
        guard !requested.contains(directory) else { return }
        guard requested.count < options.maxDirectories else {
            state.withLock { $0.statistics.skipped += 1 }
            return
        }
        requested.insert(directory)
        let queued = state.withLock { state -> Bool in
            guard state.pending.count < options.maxPending else {
                state.statistics.skipped += 1
                return false
            }
            state.pending.append(Request(directory: directory, uid: uid, gid: gid))
            return true
        }
        if queued { wakeUp.signal() }
    }

    /// The listings made since the last call.
    public func takeListings() -> [Listing] {
        state.withLock { state in
            defer { state.results.removeAll(keepingCapacity: true) }
            return state.results
        }
    }

    private func run() {
        while true {
            wakeUp.wait()
            while let request = state.withLock({ state -> Request? in
                state.stopping ? nil : state.pending.popFirst()
            }) {
                let names = try? Syscall.asFileSystemUser(uid: request.uid, gid: request.gid) { () throws(Errno) in
                    try DirectoryListing.regularFileNames(in: request.directory, limit: options.maxNamesPerDirectory)
                }
                state.withLock { state in
                    if let names, state.results.count < options.maxPending {
                        state.results.append(Listing(directory: request.directory, names: names))
                        state.statistics.listed += 1
                        state.statistics.names += names.count
                    } else if names == nil {
                        state.statistics.failed += 1
                    } else {
                        state.statistics.skipped += 1  // nobody took the listings: never hoard them
                    }
                }
            }
            if state.withLock({ $0.stopping }) { return }
        }
    }
}
