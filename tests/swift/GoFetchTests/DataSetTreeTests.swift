@testable import GoFetchEvents
@testable import GoFetchExecute
@testable import GoFetchIngest
@testable import GoFetchPredict
import Foundation
import Testing

@Suite("data-set tree")
struct DataSetTreeTests {
    /// Opens `paths` in order; returns the roots the tree asked to walk.
    func open(_ tree: DataSetTree, _ paths: [String]) -> [String] {
        paths.compactMap { tree.observeOpen(path: $0, uid: 1000, gid: 1000, pid: 42) }
    }

    /// A tree rooted at /d/c0 (found from opens of two class folders) holding files
    /// `files`, /d/c0/f<id>, of 10 bytes each, in that order.
    func makeTree(files: ClosedRange<FileID>) -> DataSetTree {
        let tree = DataSetTree()
        _ = open(tree, (0..<16).map { "/d/c\($0 % 2)/\($0)" })
        for id in files { tree.adopt(id, path: "/d/c0/f\(id)", size: 10) }
        return tree
    }

    /// `read` of a job that has read nothing yet this epoch.
    static func unread(_ file: FileID) -> Bool { false }

    @Test("a shuffled folder shows its root after a window of opens; strays before it do not make it shallower")
    func shuffledRoot() {
        let tree = DataSetTree()
        var paths = ["/work/venv/pyvenv.cfg", "/work/venv/pyvenv.cfg", "/tmp/job/train.py", "/tmp/job/train.py", "/tmp/job/list.txt"]
        for i in 0..<11 { paths.append("/tmp/mnt/class_\(i % 7)/img_\(i).jpg") }
        #expect(open(tree, paths) == ["/tmp/mnt"])
        #expect(tree.client == (1000, 1000, 42))
        // Opens under the root never move it.
        #expect(open(tree, (0..<40).map { "/tmp/mnt/class_\($0 % 7)/other_\($0).jpg" }) == [])
        #expect(tree.roots == ["/tmp/mnt"])
    }

    @Test("a folder read in its own order: one class folder, then its sibling widens the root to their parent")
    func siblingWidens() {
        let tree = DataSetTree()
        #expect(open(tree, (0..<16).map { "/data/set/class_0/\($0).jpg" }) == ["/data/set/class_0"])
        #expect(open(tree, (0..<16).map { "/data/set/class_1/\($0).jpg" }) == ["/data/set"])
        #expect(tree.roots == ["/data/set"])
        // Something unrelated is a data set of its own, and / never is.
        #expect(open(tree, (0..<16).map { "/srv/other/\($0).bin" }) == ["/srv/other"])
        #expect(open(tree, (0..<16).map { "/x\($0)/f" }) == [])
        #expect(tree.roots == ["/data/set", "/srv/other"])
    }

    @Test("another user's folders never widen a user's root, nor mix into the window that finds one")
    func usersApart() {
        let tree = DataSetTree()
        #expect(open(tree, (0..<16).map { "/shared/a/class_0/\($0).jpg" }) == ["/shared/a/class_0"])
        // A sibling folder read by another user is that user's data set, not a wider root of the first.
        let other = (0..<16).compactMap { tree.observeOpen(path: "/shared/a/class_1/\($0).jpg", uid: 65534, gid: 65534, pid: 7) }
        #expect(other == ["/shared/a/class_1"])
        #expect(tree.roots == ["/shared/a/class_0", "/shared/a/class_1"])
        // Two users' opens interleaved: neither's folders count toward the other's window.
        let mixed = DataSetTree()
        var found: [String] = []
        for i in 0..<8 {
            found += [mixed.observeOpen(path: "/u1/data/\(i)", uid: 1, gid: 1, pid: 1),
                      mixed.observeOpen(path: "/u2/data/\(i)", uid: 2, gid: 2, pid: 2)].compactMap { $0 }
        }
        #expect(found == [])
    }

    @Test("unread files first, in one stable order, each once an epoch; then the next epoch's first; large files in chunks")
    func stableOrder() {
        let tree = DataSetTree()
        _ = open(tree, (0..<16).map { "/d/c\($0 % 2)/\($0)" })
        for id in FileID(1)...6 { tree.adopt(id, path: "/d/c0/f\(id)", size: id == 6 ? 50 : 10) }
        tree.adopt(99, path: "/elsewhere/f", size: 10)
        #expect(!tree.contains(99) && tree.contains(6) && tree.bytes == 100)
        var read: Set<FileID> = [2]
        let first = tree.next(limit: 3, epoch: 0, read: { read.contains($0) }, chunkBytes: 20)
        #expect(first.map(\.fileID) == [1, 3, 4])
        read.insert(5)
        let rest = tree.next(limit: 5, epoch: 0, read: { read.contains($0) }, chunkBytes: 20)
        // 5 was read meanwhile; 6 (50 bytes) in chunks of 20; then the next epoch from the
        // start: the files this one has read (2). Those it has not read yet have their
        // prefetch for this epoch still out; each goes out for the next once read.
        // (One pass over the list a call: 5 comes in the next.)
        #expect(rest.map(\.fileID) == [6, 6, 6, 2])
        #expect(rest.prefix(3).map(\.offset) == [0, 20, 40] && rest.prefix(3).map(\.length) == [20, 20, 10])
        read.formUnion([1, 3])
        #expect(tree.next(limit: 5, epoch: 0, read: { read.contains($0) }, chunkBytes: 20).map(\.fileID) == [1, 3, 5])
        // The new epoch does not hand out again what was handed out for it ahead.
        let next = tree.next(limit: 3, epoch: 1, read: { _ in false }, chunkBytes: 20)
        #expect(next.map(\.fileID) == [4, 6, 6, 6])
        #expect(next.allSatisfy { $0.predictor == .dataSetTree && $0.confidence == 0.7 })
    }

    @Test("files known before the walk (an earlier run's) join in the lister's walk order, not the order they were known in")
    func knownInWalkOrder() throws {
        // Names where sorting whole paths and walking differ: "class-1" sorts before
        // "class/" as a path, after "class" as a name; a folder's files before its sub-folders.
        let directory = TemporaryDirectory()
        let paths = ["z.json", "class/b.jpg", "class/a.jpg", "class/deep/c.jpg", "class-1/a.jpg", "class-1/b.jpg", "a/x", "a.b/y"]
        for path in paths {
            try FileManager.default.createDirectory(atPath: (directory.file(path) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: directory.file(path), contents: Data([1])))
        }
        let lister = DirectoryLister()
        lister.start()
        defer { lister.stop() }
        lister.requestTree(directory.path, uid: 0, gid: 0)
        #expect(waitUntil { lister.statistics.listed == 6 })
        let walked = lister.takeListings().flatMap { listing in listing.names.map { listing.directory + "/" + $0 } }
        #expect(walked.count == paths.count)

        let tree = DataSetTree()
        #expect(tree.seed(root: directory.path, uid: 0, gid: 0, pid: 1) == directory.path)
        // Known in another order (a dictionary's), with a file outside the root.
        var known = walked.enumerated().map { (id: FileID($0.offset + 1), path: $0.element, size: UInt64(1)) }
        known.reverse()
        known.swapAt(1, 5)
        known.append((id: 99, path: "/elsewhere/f", size: 1))
        tree.adopt(known: known)
        #expect(tree.files == (1...FileID(paths.count)).map { $0 })
        #expect(tree.next(limit: 3, epoch: 0, read: { _ in false }, chunkBytes: 1_000).map(\.fileID) == [1, 2, 3])
    }

    @Test("the lister's descriptor is readable while listings wait, so the ingest thread takes a walk at once; taking them resets it")
    func listingsReady() throws {
        let directory = TemporaryDirectory()
        for name in ["a", "b"] { #expect(FileManager.default.createFile(atPath: directory.file(name), contents: Data([1]))) }
        let lister = DirectoryLister()
        let ready = try #require(lister.listingsReady)
        func readable() -> Bool {
            var entry = pollfd(fd: ready.rawValue, events: Int16(POLLIN), revents: 0)
            return poll(&entry, 1, 0) == 1 && entry.revents & Int16(POLLIN) != 0
        }
        #expect(!readable())
        lister.start()
        defer { lister.stop() }
        lister.requestTree(directory.path, uid: 0, gid: 0)
        #expect(waitUntil { lister.statistics.listed == 1 })
        #expect(readable())
        #expect(lister.takeListings().flatMap(\.names) == ["a", "b"])
        #expect(!readable())
    }

    @Test("the walk's order without allocating agrees with the walk's rule on random paths")
    func walkOrderRule() {
        // The rule, by components: where two paths part, a file (the last name) goes
        // before a sub-folder, else the names' order.
        func rule(_ a: String, _ b: String) -> Bool {
            let x = a.split(separator: "/"), y = b.split(separator: "/")
            var i = 0
            while i < x.count && i < y.count && x[i] == y[i] { i += 1 }
            guard i < x.count && i < y.count else { return x.count < y.count }
            let xIsFile = i == x.count - 1, yIsFile = i == y.count - 1
            return xIsFile != yIsFile ? xIsFile : Array(x[i].utf8).lexicographicallyPrecedes(Array(y[i].utf8))
        }
        var generator = SplitMix64(seed: 13)
        let names = ["a", "a.b", "a-1", "ab", "b", "class", "class-1", "é"]
        var paths: Set<String> = []
        while paths.count < 300 {
            let depth = 1 + Int(generator.next() % 3)
            paths.insert("/d/" + (0..<depth).map { _ in names[Int(generator.next() % UInt64(names.count))] }.joined(separator: "/"))
        }
        // A name is a file or a folder, not both: keep paths no other path runs through.
        let files = paths.filter { path in !paths.contains { $0.hasPrefix(path + "/") } }
        for a in files {
            for b in files { #expect(DataSetTree.walkPrecedes(a, b) == rule(a, b), "\(a) before \(b)") }
        }
    }

    @Test("a file handed out for a client that could not read it goes out again first, once, when asked")
    func handOutAgain() {
        let tree = makeTree(files: 1...5)
        #expect(tree.next(limit: 3, epoch: 0, read: { _ in false }, chunkBytes: 20).map(\.fileID) == [1, 2, 3])
        tree.handOutAgain(2)
        tree.handOutAgain(5)  // not handed out yet: its turn comes in order
        tree.handOutAgain(99)  // not in the tree
        #expect(tree.next(limit: 3, epoch: 0, read: { _ in false }, chunkBytes: 20).map(\.fileID) == [2, 4, 5])
        // Once: the next call goes on with the next epoch's first files (those read).
        #expect(tree.next(limit: 2, epoch: 0, read: { $0 <= 2 }, chunkBytes: 20).map(\.fileID) == [1, 2])
    }

    @Test("the last run's order puts its files first, in it; the others follow in the walk's order; nothing goes out twice")
    func preferOrder() {
        let tree = makeTree(files: 1...8)
        #expect(tree.next(limit: 2, epoch: 0, read: { _ in false }, chunkBytes: 20).map(\.fileID) == [1, 2])
        // The last run opened 6, 2, 7, 6 (again: a later epoch), 99 (not in the tree), 4.
        #expect(tree.prefer(order: [6, 2, 7, 6, 99, 4]) == 4)
        #expect(tree.files == [6, 2, 7, 4, 1, 3, 5, 8])
        // 2 went out already; 7 was read meanwhile.
        #expect(tree.next(limit: 4, epoch: 0, read: { $0 == 7 }, chunkBytes: 20).map(\.fileID) == [6, 4, 3, 5])
        // 8 ends the epoch; then the next epoch's first files the epoch has read, in the new order.
        #expect(tree.next(limit: 4, epoch: 0, read: { [6, 2, 7].contains($0) }, chunkBytes: 20).map(\.fileID) == [8, 6, 2, 7])
        // An order that places none of the tree's files changes nothing.
        #expect(tree.prefer(order: [99, 100]) == 0)
        #expect(tree.files == [6, 2, 7, 4, 1, 3, 5, 8])
    }

    @Test("every epoch of the last run in its order: the next epoch's first files ahead in its order, then that epoch in it; an epoch it lacks keeps the list")
    func preferEpochOrders() {
        let tree = makeTree(files: 1...6)
        #expect(tree.prefer(order: [4, 2, 6, 1, 3, 5]) == 6)
        // Its epochs: the first (taken above), the second, and a third that left 5 unread.
        tree.prefer(epochOrders: [[4, 2, 6, 1, 3, 5], [5, 1, 6, 3, 2, 4], [3, 6, 1, 2, 4]])
        #expect(tree.files == [4, 2, 6, 1, 3, 5])  // the first epoch keeps its order
        #expect(tree.next(limit: 4, epoch: 0, read: Self.unread, chunkBytes: 20).map(\.fileID) == [4, 2, 6, 1])
        // The first epoch's last two; then the second epoch's first files in its order,
        // of those the first has read (3 and 5 go out for the second once read).
        var read: Set<FileID> = [4, 2, 6, 1]
        let ahead = tree.next(limit: 4, epoch: 0, read: { read.contains($0) }, chunkBytes: 20)
        #expect(ahead.map(\.fileID) == [3, 5, 1, 6])
        #expect(ahead.map(\.deadline) == [4, 5, 1 << 32 | 1, 1 << 32 | 2])
        #expect(tree.files == [5, 1, 6, 3, 2, 4] && tree.epochsInLastRunsOrder == 1)
        read.formUnion([3, 5])
        let rest = tree.next(limit: 10, epoch: 0, read: { read.contains($0) }, chunkBytes: 20)
        #expect(rest.map(\.fileID) == [5, 3, 2, 4] && rest.map(\.deadline) == [1 << 32, 1 << 32 | 3, 1 << 32 | 4, 1 << 32 | 5])
        // The second epoch (all of it out ahead) hands out the third's first files, in
        // the third's order, of those it has read; the list keeps 5, which the last run's
        // third epoch did not read, after them.
        read = [5, 1, 6]
        #expect(tree.next(limit: 10, epoch: 1, read: { read.contains($0) }, chunkBytes: 20).isEmpty)  // one pass a call
        #expect(tree.next(limit: 10, epoch: 1, read: { read.contains($0) }, chunkBytes: 20).map(\.fileID) == [6, 1, 5])
        #expect(tree.files == [3, 6, 1, 2, 4, 5] && tree.epochsInLastRunsOrder == 2)
        #expect(tree.next(limit: 10, epoch: 2, read: { $0 == 3 }, chunkBytes: 20).prefix(2).map(\.fileID) == [2, 4])
        // A fourth epoch the last run did not have keeps the third's order.
        #expect(tree.next(limit: 2, epoch: 3, read: Self.unread, chunkBytes: 20).map(\.fileID) == [3, 6])
        #expect(tree.epochsInLastRunsOrder == 2)
    }

    @Test("the scan ahead warms no epoch past the last run's last one, until this run reads past it")
    func noEpochPastTheLastRuns() {
        let tree = makeTree(files: 1...4)
        tree.prefer(epochOrders: [[1, 2, 3, 4], [4, 3, 2, 1]], epochs: 2)
        let all = { (_: FileID) in true }
        // The first epoch's end scans ahead to the second, in its order.
        #expect(tree.next(limit: 4, epoch: 0, read: Self.unread, chunkBytes: 20).map(\.fileID) == [1, 2, 3, 4])
        #expect(tree.next(limit: 2, epoch: 0, read: all, chunkBytes: 20).map(\.fileID) == [4, 3])
        #expect(tree.stoppedAtLastRunsEpochs == nil)
        // The second, the last run's last, hands out its unread files and nothing ahead.
        #expect(tree.next(limit: 4, epoch: 1, read: { $0 == 4 || $0 == 3 }, chunkBytes: 20).map(\.fileID) == [2, 1])
        #expect(tree.next(limit: 4, epoch: 1, read: all, chunkBytes: 20).isEmpty)
        #expect(tree.stoppedAtLastRunsEpochs == 2)
        // A third epoch: this run is longer, so the scan ahead goes on as without the bound.
        #expect(tree.next(limit: 4, epoch: 2, read: Self.unread, chunkBytes: 20).map(\.fileID) == [4, 3, 2, 1])
        #expect(tree.next(limit: 2, epoch: 2, read: all, chunkBytes: 20).map(\.fileID) == [4, 3])
    }

    @Test("files the walk lists after the scan went ahead to the next epoch go out for this one")
    func listedAfterAhead() {
        let tree = makeTree(files: 1...2)
        #expect(tree.next(limit: 10, epoch: 0, read: Self.unread, chunkBytes: 20).map(\.fileID) == [1, 2])
        // The scan is past the end: nothing read yet, nothing for the next epoch.
        #expect(tree.next(limit: 10, epoch: 0, read: Self.unread, chunkBytes: 20).isEmpty)
        for id in FileID(3)...4 { tree.adopt(id, path: "/d/c0/f\(id)", size: 10) }
        let late = tree.next(limit: 10, epoch: 0, read: Self.unread, chunkBytes: 20)
        #expect(late.map(\.fileID) == [3, 4])
        #expect(late.map(\.deadline) == [2, 3])
        #expect(tree.next(limit: 10, epoch: 0, read: Self.unread, chunkBytes: 20).isEmpty)
    }

    @Test("the epochs' orders arriving in the second epoch put it in its order at once")
    func preferEpochOrdersLate() {
        let tree = makeTree(files: 1...4)
        #expect(tree.next(limit: 1, epoch: 1, read: Self.unread, chunkBytes: 20).map(\.fileID) == [1])
        tree.prefer(epochOrders: [[1, 2, 3, 4], [4, 3, 2, 1]])
        #expect(tree.next(limit: 4, epoch: 1, read: Self.unread, chunkBytes: 20).map(\.fileID) == [4, 3, 2])
    }

    @Test("the epochs' orders arriving while the first epoch's scan is ahead put the next epoch's first files in its order at once")
    func preferEpochOrdersWhileAhead() {
        let tree = makeTree(files: 1...4)
        let read = { (_: FileID) in true }
        #expect(tree.next(limit: 4, epoch: 0, read: { _ in false }, chunkBytes: 20).map(\.fileID) == [1, 2, 3, 4])
        #expect(tree.next(limit: 1, epoch: 0, read: read, chunkBytes: 20).map(\.fileID) == [1])  // ahead, in the walk's order
        tree.prefer(epochOrders: [[1, 2, 3, 4], [4, 3, 2, 1]])
        #expect(tree.next(limit: 4, epoch: 0, read: read, chunkBytes: 20).map(\.fileID) == [4, 3, 2])
    }

    @Test("files passed over until the walk reaches them go out in the last run's order once they may")
    func preferOrderOfWaiting() {
        let tree = makeTree(files: 1...6)
        // The tree was seeded before the client's walk listed anything: every file waits.
        var listed: Set<FileID> = []
        #expect(tree.next(limit: 10, epoch: 0, read: { _ in false }, chunkBytes: 20, eligible: { listed.contains($0) }).isEmpty)
        #expect(tree.prefer(order: [5, 3, 1]) == 3)
        listed = [1, 2, 3, 4, 5, 6]  // the walk is done
        let made = tree.next(limit: 6, epoch: 0, read: { _ in false }, chunkBytes: 20, eligible: { listed.contains($0) })
        #expect(made.map(\.fileID) == [5, 3, 1, 2, 4, 6])
    }

    @Test("files a late listing reaches go out at once, in the last run's order, ranked ahead of the tree's requests queued after them in it; each once")
    func nextListed() {
        let tree = makeTree(files: 1...7)
        #expect(tree.prefer(order: [5, 3, 1, 7]) == 4)
        // Seeded before the walk: every file waits; then the walk lists the even files.
        var listed: Set<FileID> = []
        let eligible = { (file: FileID) in listed.contains(file) }
        #expect(tree.next(limit: 10, epoch: 0, read: { _ in false }, chunkBytes: 20, eligible: eligible).isEmpty)
        listed = [2, 4, 6]
        let queued = tree.next(limit: 2, epoch: 0, read: { _ in false }, chunkBytes: 20, eligible: eligible)
        #expect(queued.map(\.fileID) == [2, 4] && queued.map(\.deadline) == [4, 5])
        // The odd files are listed (in the walk's order, twice over) while requests are
        // queued: its files go out now, in the order; 7 waits for a later call
        // (the limit), 3 was read meanwhile, 99 is not the tree's.
        listed.formUnion([1, 3, 5, 7])
        let made = tree.nextListed([1, 3, 5, 7, 99, 5], limit: 1, epoch: 0, read: { $0 == 3 }, chunkBytes: 20, eligible: eligible)
        #expect(made.map(\.fileID) == [5])
        // Its rank (the epoch, then its place in the list) puts it ahead of 2 and 4 queued.
        #expect(made.map(\.deadline) == [0])
        #expect(tree.nextListed([1, 7], limit: 5, epoch: 0, read: { $0 == 3 }, chunkBytes: 20, eligible: eligible).map(\.fileID) == [1, 7])
        // Nothing twice: the next call goes on with 6, then the next epoch's first files.
        let rest = tree.next(limit: 3, epoch: 0, read: { $0 == 3 || $0 == 5 }, chunkBytes: 20, eligible: eligible)
        #expect(rest.map(\.fileID) == [6, 5, 3] && rest.map(\.deadline) == [6, 1 << 32, 1 << 32 | 1])
        #expect(tree.nextListed([2, 4], limit: 5, epoch: 0, read: { _ in false }, chunkBytes: 20, eligible: eligible).isEmpty)
        // Another epoch's listing hands nothing out: the list of waiting files is this one's.
        #expect(tree.nextListed([6], limit: 5, epoch: 1, read: { _ in false }, chunkBytes: 20, eligible: eligible).isEmpty)
    }

    @Test("the order arriving in the middle of an epoch: files passed over go out in the new order, each once")
    func preferOrderMidEpoch() {
        let tree = makeTree(files: 1...6)
        var listed: Set<FileID> = [2, 4, 6]
        // 1 and 3 are passed over (not listed yet); 2 and 4 go out.
        #expect(tree.next(limit: 2, epoch: 0, read: { _ in false }, chunkBytes: 20, eligible: { listed.contains($0) }).map(\.fileID) == [2, 4])
        #expect(tree.prefer(order: [3, 1, 6]) == 3)
        listed = [1, 2, 3, 4, 5, 6]
        #expect(tree.next(limit: 4, epoch: 0, read: { _ in false }, chunkBytes: 20, eligible: { listed.contains($0) }).map(\.fileID) == [3, 1, 6, 5])
    }

    @Test("a file that may not be handed out yet (its client has not reported it) waits and goes out once it may, in the same epoch")
    func waitsUntilEligible() {
        let tree = makeTree(files: 1...4)
        var reported: Set<FileID> = [1, 3]
        let first = tree.next(limit: 10, epoch: 0, read: { _ in false }, chunkBytes: 20, eligible: { reported.contains($0) })
        #expect(first.map(\.fileID) == [1, 3])
        reported.formUnion([2, 4])  // the lister's walk reached them
        let later = tree.next(limit: 10, epoch: 0, read: { $0 != 2 }, chunkBytes: 20, eligible: { reported.contains($0) })
        // 2 goes out first; 4 was read meanwhile, so what follows is the next epoch's, from
        // the start: what this one has read (2 once it has).
        #expect(later.map(\.fileID) == [2, 1, 3, 4])
    }

    @Test("a folder the command line names is warmed as a hint: an open under it confirms it; opens only elsewhere drop it with its files")
    func hints() {
        var options = DataSetTree.Options()
        options.hintOpens = 4
        let tree = DataSetTree(options: options)
        #expect(tree.seed(root: "/data/set", uid: 1000, gid: 1000, pid: 42, tentative: true) == "/data/set")
        #expect(tree.seed(root: "/out", uid: 1000, gid: 1000, pid: 42, tentative: true) == "/out")
        // A hint holding another hint, or under one, is not taken.
        #expect(tree.seed(root: "/data", uid: 1000, gid: 1000, pid: 42, tentative: true) == nil)
        #expect(tree.seed(root: "/data/set/a", uid: 1000, gid: 1000, pid: 42, tentative: true) == nil)
        #expect(tree.hints == ["/data/set", "/out"] && tree.root == nil)
        tree.adopt(1, path: "/data/set/a/1.jpg", size: 10)
        tree.adopt(2, path: "/out/ckpt.pt", size: 100)
        tree.adopt(3, path: "/data/set/b/3.jpg", size: 10)
        // Hints are warmed before any open, in the order listed.
        #expect(tree.next(limit: 2, epoch: 0, read: { _ in false }, chunkBytes: 1_000).map(\.fileID) == [1, 2])
        tree.noteOpen(path: "/data/set/b/3.jpg")
        #expect(tree.hints == ["/out"] && tree.root == "/data/set")
        for i in 0..<3 { tree.noteOpen(path: "/data/set/a/\(i).jpg") }
        #expect(tree.hints == ["/out"] && tree.contains(2))
        // The fourth open elsewhere: /out is dropped, its file with it; the cursor stays past what went out.
        tree.noteOpen(path: "/data/set/a/9.jpg")
        #expect(tree.hints.isEmpty && tree.hintsDropped == ["/out"] && tree.roots == ["/data/set"])
        #expect(!tree.contains(2) && tree.files == [1, 3] && tree.bytes == 20)
        #expect(tree.next(limit: 1, epoch: 0, read: { _ in false }, chunkBytes: 1_000).map(\.fileID) == [3])
        // A root found by opens over a hint makes the hint part of it.
        let found = DataSetTree()
        _ = found.seed(root: "/d/c0", uid: 1000, gid: 1000, pid: 42, tentative: true)
        // The hint's sibling: both are the data set's class folders.
        #expect(open(found, (0..<16).map { "/d/c1/\($0)" }) == ["/d"])
        #expect(found.roots == ["/d"] && found.hints.isEmpty && found.root == "/d")
    }
}

@Suite("concurrency window")
struct ConcurrencyWindowTests {
    @Test("storage with a fixed latency opens the window to its maximum; a saturated link keeps it small")
    func adapts() {
        var latencyBound = ConcurrencyWindow(maximum: 32)
        var now: UInt64 = 1
        for _ in 0..<200 {
            now += 1_000_000
            // 3 ms per request whatever the number in flight.
            latencyBound.completed(bytes: 110_000, nanoseconds: 3_000_000, inFlight: latencyBound.limit, now: now)
        }
        #expect(latencyBound.limit == 32)

        var linkBound = ConcurrencyWindow(maximum: 32)
        for _ in 0..<200 {
            now += 1_000_000
            // 3 ms of latency plus 4 ms on the link for each request in flight.
            let inFlight = linkBound.limit
            linkBound.completed(bytes: 128 * 1024, nanoseconds: UInt64(3_000_000 + 4_000_000 * inFlight), inFlight: inFlight, now: now)
        }
        #expect(linkBound.limit <= 2)
    }

    @Test("a read of more than 128 KiB weighs two of the storage's requests, a small file one")
    func weights() {
        #expect(ConcurrencyWindow.weight(ofBytes: 4_096) == 1)
        #expect(ConcurrencyWindow.weight(ofBytes: 131_072) == 1)
        #expect(ConcurrencyWindow.weight(ofBytes: 131_073) == 2)
        #expect(ConcurrencyWindow.weight(ofBytes: 1 << 20) == 2)
        #expect(ConcurrencyWindow.weight(ofBytes: 64 << 20) == 2)
    }
}
