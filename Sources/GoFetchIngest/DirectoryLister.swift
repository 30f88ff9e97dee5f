import DequeModule
import Foundation
import GoFetchSystem
import Synchronization
import SystemPackage

/// Lists, on its own thread, the folders of files the job opens, so the catalog
/// knows their neighbours before the job opens them: the GRU predicts moves within
/// a folder's listing ("two files on", "the first file of the next folder"), and
/// only files the catalog knows can be prefetched. It also lists the folder's next
/// sibling (the next sub-folder of its parent, in sorted order), so the move into
/// the next folder lands too: the lister stays one folder ahead of the job.
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
        /// Also list the next sibling of each folder the job opens a file in.
        public var nextSibling = true
        /// Files one tree walk takes, at most.
        public var maxTreeFiles = 1_000_000

        public init(maxDirectories: Int = 65_536, maxNamesPerDirectory: Int = 100_000, maxPending: Int = 4_096, nextSibling: Bool = true, maxTreeFiles: Int = 1_000_000) {
            self.maxTreeFiles = maxTreeFiles
            self.maxDirectories = maxDirectories
            self.maxNamesPerDirectory = maxNamesPerDirectory
            self.maxPending = maxPending
            self.nextSibling = nextSibling
        }
    }

    /// One folder's regular files, with their sizes where known (tree walks; 0 = unknown).
    public struct Listing: Sendable, Equatable {
        public var directory: String
        public var names: [String]
        public var sizes: [UInt64] = []
        /// The client it was listed as.
        public var uid: UInt32 = 0
    }

    public struct Statistics: Sendable, Equatable {
        public var listed = 0
        public var names = 0
        /// Folders that could not be listed (gone, or the client may not read them).
        public var failed = 0
        /// Folders not listed because a bound was reached.
        public var skipped = 0
        /// Data-set trees walked (``requestTree(_:uid:gid:pid:)``), and files of them
        /// left out because a walk reached `maxTreeFiles`.
        public var trees = 0
        public var treeFilesLeftOut = 0
    }

    private struct Request {
        var directory: String
        var uid: UInt32
        var gid: UInt32
        var pid: UInt32
        /// Walk the whole tree below `directory` (a data set's root), not one folder.
        var tree = false
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
    /// Folders listed so far, and each parent's sub-folders in sorted order (lister thread only).
    private var listed: Set<String> = []
    private var subfolders: [String: [String]] = [:]
    private let clientGroups = ClientGroups()
    private var running = false

    /// Readable while listings wait to be taken (``takeListings()``): the ingest
    /// thread polls it, so a data set's walk reaches the engine as soon as it is done,
    /// not at the ingest thread's next wake-up (up to 50 ms later, on a first run
    /// that much of a slow link's head start). `nil` where it could not be made.
    public let listingsReady: FileDescriptor?

    public init(options: Options = Options()) {
        self.options = options
        listingsReady = try? Syscall.eventCounter()
    }

    deinit {
        try? listingsReady?.close()
    }

    /// Queues a listing for ``takeListings()`` and counts it, waking the ingest thread
    /// when it is the first one waiting; skipped, counted, when too many wait (nobody
    /// takes them: never hoarded).
    private func deliver(_ listing: Listing) {
        let first = state.withLock { state -> Bool in
            guard state.results.count < options.maxPending else {
                state.statistics.skipped += 1
                return false
            }
            state.results.append(listing)
            state.statistics.listed += 1
            state.statistics.names += listing.names.count
            return state.results.count == 1
        }
        if first, let listingsReady { Syscall.raise(listingsReady) }
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    public func start() {
        guard !running else { return }
        running = true
        thread = JoinableThread(name: "gofetch-list") { [self] in run() }
    }

    /// Stops after the folder being listed; folders still pending are not listed.
    /// Stops, waiting at most half a second for a listing in progress: a folder on a
    /// storage that never answers holds the thread, and the daemon must still stop
    /// (the process's exit ends the thread).
    public func stop() {
        guard running else { return }
        running = false
        state.withLock { $0.stopping = true }
        wakeUp.signal()
        _ = thread?.join(until: .now() + .milliseconds(500))
    }

    /// Asks for the folder of `path` to be listed, once, as `uid`/`gid` (with the
    /// supplementary groups of `pid` while it runs as them). Never blocks.
    public func request(folderOf path: String, uid: UInt32, gid: UInt32, pid: UInt32 = 0) {
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
            state.pending.append(Request(directory: directory, uid: uid, gid: gid, pid: pid))
            return true
        }
        if queued { wakeUp.signal() }
    }

    /// The listings made since the last call.
    public func takeListings() -> [Listing] {
        if let listingsReady { Syscall.reset(listingsReady) }
        return state.withLock { state in
            defer { state.results.removeAll(keepingCapacity: true) }
            return state.results
        }
    }

    /// Asks for the whole tree below `root` to be walked (sorted, depth first), as
    /// `uid`/`gid`: a data set's files, with their sizes, before the job opens them.
    /// Folders listed already (by an earlier, narrower walk) are not listed again. Never blocks.
    public func requestTree(_ root: String, uid: UInt32, gid: UInt32, pid: UInt32 = 0) {
        let queued = state.withLock { state -> Bool in
            guard state.pending.count < options.maxPending else {
                state.statistics.skipped += 1
                return false
            }
            state.pending.append(Request(directory: root, uid: uid, gid: gid, pid: pid, tree: true))
            return true
        }
        if queued { wakeUp.signal() }
    }

    private func run() {
        while true {
            wakeUp.wait()
            while let request = state.withLock({ state -> Request? in
                state.stopping ? nil : state.pending.popFirst()
            }) {
                if request.tree {
                    walk(request)
                    continue
                }
                list(request.directory, as: request)
                if options.nextSibling, let sibling = nextSibling(of: request.directory, as: request) {
                    list(sibling, as: request)
                }
            }
            if state.withLock({ $0.stopping }) { return }
        }
    }

    private func groups(of request: Request) -> [UInt32] {
        request.pid == 0 ? [] : clientGroups.groups(pid: request.pid, uid: request.uid, gid: request.gid, now: Clock.monotonicNanoseconds())
    }

    /// Lists `directory` unless it was already, as the request's client.
    private func list(_ directory: String, as request: Request) {
        guard !listed.contains(directory) else { return }
        guard listed.count < options.maxDirectories else {
            state.withLock { $0.statistics.skipped += 1 }
            return
        }
        listed.insert(directory)
        let names = try? Syscall.asFileSystemUser(uid: request.uid, gid: request.gid, groups: groups(of: request)) { () throws(Errno) in
            try DirectoryListing.regularFileNames(in: directory, limit: options.maxNamesPerDirectory)
        }
        guard let names else {
            state.withLock { $0.statistics.failed += 1 }
            return
        }
        deliver(Listing(directory: directory, names: names, uid: request.uid))
    }

    /// Walks the tree below the request's folder as its client: each folder's regular
    /// files in sorted order, with their sizes, then its sub-folders in sorted order
    /// (hidden names left out), handing each folder's listing on as it goes.
    private func walk(_ request: Request) {
        let groups = groups(of: request)
        var stack = [request.directory]
        var files = 0
        state.withLock { $0.statistics.trees += 1 }
        func descend(_ directory: String, into folders: [String]) {
            for folder in folders.sorted().reversed() { stack.append(directory == "/" ? "/" + folder : directory + "/" + folder) }
        }
        while let directory = stack.popLast() {
            if state.withLock({ $0.stopping }) { return }
            // A folder listed before (by an earlier walk, as another client) is only read
            // for its sub-folders: no status of each file again.
            if listed.contains(directory) {
                let folders = try? Syscall.asFileSystemUser(uid: request.uid, gid: request.gid, groups: groups) { () throws(Errno) in
                    try DirectoryListing.names(in: directory, of: .directory, limit: options.maxNamesPerDirectory)
                }
                descend(directory, into: folders ?? [])
                continue
            }
            let entries = try? Syscall.asFileSystemUser(uid: request.uid, gid: request.gid, groups: groups) { () throws(Errno) in
                try DirectoryListing.entries(in: directory, limit: options.maxNamesPerDirectory)
            }
            guard let entries else {
                state.withLock { $0.statistics.failed += 1 }
                continue
            }
            descend(directory, into: entries.folders)
            let regular = entries.files.sorted { $0.name < $1.name }
            let room = max(0, options.maxTreeFiles - files)
            let taken = regular.prefix(room)
            files += taken.count
            let leftOut = regular.count - taken.count
            if listed.count < options.maxDirectories { listed.insert(directory) }
            state.withLock { $0.statistics.treeFilesLeftOut += leftOut }
            if !taken.isEmpty {
                deliver(Listing(directory: directory, names: taken.map(\.name), sizes: taken.map(\.size), uid: request.uid))
            }
            if leftOut > 0 { return }
        }
    }

    /// The sub-folder of `directory`'s parent that sorts right after it (as the
    /// GRU's ``DirectoryIndex`` ranks folders), listed as the request's client.
    private func nextSibling(of directory: String, as request: Request) -> String? {
        guard let slash = directory.lastIndex(of: "/") else { return nil }
        let parent = slash == directory.startIndex ? "/" : String(directory[..<slash])
        let name = String(directory[directory.index(after: slash)...])
        if subfolders[parent] == nil {
            guard subfolders.count < options.maxDirectories else { return nil }
            let names = try? Syscall.asFileSystemUser(uid: request.uid, gid: request.gid, groups: groups(of: request)) { () throws(Errno) in
                try DirectoryListing.names(in: parent, of: .directory, limit: options.maxNamesPerDirectory)
            }
            subfolders[parent] = (names ?? []).sorted()
        }
        let siblings = subfolders[parent]!
        var low = 0, high = siblings.count
        while low < high {
            let middle = (low + high) / 2
            if siblings[middle] <= name { low = middle + 1 } else { high = middle }
        }
        guard low < siblings.count else { return nil }
        return parent == "/" ? "/" + siblings[low] : parent + "/" + siblings[low]
    }
}
