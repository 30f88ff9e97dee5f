import GoFetchEvents

/// First-epoch warming when nothing announces the order: the folder tree the job
/// reads from is taken as its data set, listed (by the lister, as the client) and
/// warmed, unread files first, in one stable order (sorted, as the walk lists it).
///
/// A root is the deepest folder holding half of the last `window` files
/// the job opened outside the roots it has: a shuffled image folder shows its root after a
/// few opens, a folder read in its own order shows one class folder, and the next
/// class folder (a sibling) widens the root to their parent. It is never `/`.
///
/// Within an epoch (its number and the files read come from ``EpochRemainingSet``)
/// it hands out each unread file once, in list order, so that when the data set is
/// larger than the budget the same files are held every epoch instead of whichever
/// LRU left; once every unread file was handed out it starts on the next epoch's
/// first files, so the next epoch starts warm: those this epoch has read, and each
/// of the others once this epoch reads it (before, its prefetch for this epoch is
/// still out, and an offer for the next would only repeat it). A file larger than
/// `chunkBytes` is handed out in chunks.
public final class DataSetTree {
    public struct Options: Sendable, Equatable {
        /// Opens outside the roots that decide a root, once this many were seen: the
        /// deepest folder holding half of them (so a few strays, the script, a config
        /// or a file list, do not make it shallower).
        public var window = 16
        /// Files of the data set, at most.
        public var maxFiles = 1_000_000
        /// Confidence of its predictions (above the default threshold, below exact orders).
        public var confidence = 0.7
        /// Data sets (separate trees) at most.
        public var maxRoots = 8
        /// Opens outside a root named by a hint (``seed(root:uid:gid:pid:tentative:)``)
        /// after which the hint, with still no open under it, is dropped.
        public var hintOpens = 128

        public init(window: Int = 16, maxFiles: Int = 1_000_000, confidence: Double = 0.7) {
            self.window = window
            self.maxFiles = maxFiles
            self.confidence = confidence
        }
    }

    public let options: Options
    /// The data sets' roots (usually one), in the order found; hints among them.
    public private(set) var roots: [String] = []
    /// The first root the job's opens found or confirmed (a hint no open has
    /// reached yet is not one).
    public var root: String? { roots.first { !hints.contains($0) } }
    /// Roots named by hints that no open has reached yet: warmed like the others,
    /// dropped after ``Options/hintOpens`` opens elsewhere.
    public private(set) var hints: Set<String> = []
    private var opensOutsideHints = 0
    /// The files under each unconfirmed hint (while there are some).
    private var hinted: [FileID: String] = [:]
    /// Hints dropped: the job read elsewhere.
    public private(set) var hintsDropped: [String] = []
    /// The client whose opens found the root: files are listed and warmed as it.
    public private(set) var client: (uid: UInt32, gid: UInt32, pid: UInt32) = (0, 0, 0)
    /// The data set, in list order.
    public private(set) var files: [FileID] = []
    /// Each file's size and place in ``files``.
    private var members: [FileID: (size: UInt64, position: Int)] = [:]
    public private(set) var bytes: UInt64 = 0
    /// Files left out at `maxFiles`.
    public private(set) var leftOut = 0
    /// Predictions made.
    public private(set) var handedOutCount = 0
    private var recentFolders: [Substring] = []
    private var recentUID: UInt32 = .max
    private var opensUnderRoot = 0
    /// The epoch (``EpochRemainingSet/epochsCompleted``) each file was last handed out for.
    private var handedOut: [FileID: Int] = [:]
    private var cursor = 0
    private var cursorEpoch = -1
    /// Handing out the next epoch's files (this one's are all out).
    private var ahead = false
    /// Files passed over because they could not be handed out yet (`eligible` said no:
    /// the client had not reported them, the lister's walk had not reached them): tried
    /// again first at each call, so a file known from the store before the walk is not
    /// lost for the epoch.
    private var waiting: [FileID] = []
    /// The files that wait: those of ``waiting`` still to go out (one handed out by
    /// ``nextListed`` leaves the list at the next scan of it).
    private var waitingSet: Set<FileID> = []
    /// Files the scan ahead (the next epoch's) reached before this epoch read them, in
    /// list order: their prefetch for this epoch is still out, so an offer for the
    /// next would be a duplicate the scheduler drops. Each goes out for the next epoch
    /// once this one has read it (``next``).
    private var aheadWaiting: [FileID] = []
    private var aheadWaitingSet: Set<FileID> = []
    /// The order of each epoch in the last run of the same command, by epoch
    /// (``prefer(epochOrders:epochs:)``), and the epoch whose order the list is in.
    private var epochOrders: [[FileID]] = []
    private var orderedEpoch = -1
    /// Epochs after the first that went out in the last run's order of that epoch.
    public private(set) var epochsInLastRunsOrder = 0
    /// How many epochs the last run read (``prefer(epochOrders:epochs:)``): the scan
    /// ahead warms none past them, until this run reads one (then it was no bound).
    private var lastRunEpochs: Int?
    /// The scan ahead stopped at the last run's last epoch: that run's epoch count.
    public private(set) var stoppedAtLastRunsEpochs: Int?

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Whether `file` belongs to the data set.
    public func contains(_ file: FileID) -> Bool { members[file] != nil }

    /// Notes an open of `path` by the client; returns a root to walk when the data
    /// set's root is found or widens (the caller asks the lister, then ``adopt``s
    /// the files it knows already).
    public func observeOpen(path: String, uid: UInt32, gid: UInt32, pid: UInt32) -> String? {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return nil }
        let folder = path[..<slash]
        if roots.contains(where: { Self.isUnder(folder, $0) }) {
            return nil
        }
        // One user's opens at a time decide a root: another user's folders never join
        // them (nor widen that user's root), so no data set spans two users' files.
        if uid != recentUID {
            recentFolders.removeAll()
            recentUID = uid
        }
        recentFolders.append(folder)
        if recentFolders.count > options.window { recentFolders.removeFirst(recentFolders.count - options.window) }
        guard recentFolders.count == options.window,
              let found = Self.deepestHolding(recentFolders, atLeast: (options.window + 1) / 2) else { return nil }
        recentFolders.removeAll()
        // A sibling of a root (the next class folder of a data set read in order)
        // widens it to their parent; anything else is a data set of its own.
        var taken = found
        if uid == client.uid, let index = roots.firstIndex(where: { Self.commonAncestor(Substring(found), Substring($0)) == Self.parent(of: $0) }) {
            taken = String(Self.parent(of: roots[index]))
            guard taken != "/" && !taken.isEmpty else { return nil }
            confirm([roots.remove(at: index)])
        } else if roots.count >= options.maxRoots {
            return nil
        }
        // Hints under the root found are part of it now.
        confirm(Set(roots.filter { Self.isUnder(Substring($0), taken) }))
        roots.removeAll { Self.isUnder(Substring($0), taken) }
        roots.append(taken)
        client = (uid, gid, pid)
        return taken
    }

    /// Takes `root` as a data set before any open shows it; returns it to walk, or
    /// `nil` when a root already holds it or the roots are full.
    /// - Parameter tentative: a hint (the job's command line names the folder), kept
    ///   while the job's opens may still reach it: see ``noteOpen(path:)``. Otherwise
    ///   known (the last run of the same command read it).
    public func seed(root: String, uid: UInt32, gid: UInt32, pid: UInt32, tentative: Bool = false) -> String? {
        guard root.hasPrefix("/"), root != "/", !roots.contains(where: { Self.isUnder(Substring(root), $0) }),
              roots.count < options.maxRoots else { return nil }
        let held = roots.filter { Self.isUnder(Substring($0), root) }
        // A hint holds no other root (the caller keeps the outermost of nested hints).
        guard !tentative || held.isEmpty else { return nil }
        roots.removeAll { Self.isUnder(Substring($0), root) }
        roots.append(root)
        confirm(Set(held))
        if tentative { hints.insert(root) }
        client = (uid, gid, pid)
        return root
    }

    /// The client its roots are listed and warmed as from now on (the first client of a
    /// run, after the roots were seeded as ``PrefetchEngine``'s `anyone`).
    public func rebind(uid: UInt32, gid: UInt32, pid: UInt32) {
        client = (uid, gid, pid)
    }

    /// Notes any open of the client while hints wait (``hints`` not empty): an open
    /// under a hint confirms it; after ``Options/hintOpens`` opens elsewhere, the hints
    /// still unconfirmed are dropped, with their files.
    public func noteOpen(path: String) {
        guard !hints.isEmpty else { return }
        if let hint = hints.first(where: { Self.isUnder(path[...], $0) }) {
            confirm([hint])
            return
        }
        opensOutsideHints += 1
        guard opensOutsideHints >= options.hintOpens else { return }
        let dropped = hints
        hints.removeAll()
        hintsDropped += dropped.sorted()
        roots.removeAll { dropped.contains($0) }
        var kept: [FileID] = []
        var keptBeforeCursor = 0
        for (index, file) in files.enumerated() {
            if let hint = hinted[file], dropped.contains(hint), let member = members[file] {
                members[file] = nil
                handedOut[file] = nil
                bytes &-= member.size
            } else {
                members[file]?.position = kept.count
                kept.append(file)
                if index < cursor { keptBeforeCursor += 1 }
            }
        }
        hinted.removeAll()
        files = kept
        cursor = keptBeforeCursor
        waiting.removeAll { members[$0] == nil }
        waitingSet = waitingSet.filter { members[$0] != nil }
    }

    /// Hints that are data sets now (an open under them, or a root found over them).
    private func confirm(_ confirmed: Set<String>) {
        guard !confirmed.isDisjoint(with: hints) else { return }
        hints.subtract(confirmed)
        if hints.isEmpty { hinted.removeAll() } else { hinted = hinted.filter { !confirmed.contains($0.value) } }
    }

    /// The deepest folder under which at least `count` of `folders` lie (a stray
    /// open elsewhere, a config or a list, does not decide it); never `/`.
    package static func deepestHolding(_ folders: [Substring], atLeast count: Int) -> String? {
        guard folders.count >= count else { return nil }
        var counts: [Substring: Int] = [:]
        for folder in folders {
            var end = folder.endIndex
            while end > folder.startIndex {
                counts[folder[..<end], default: 0] += 1
                guard let slash = folder[..<end].lastIndex(of: "/"), slash != folder.startIndex else { break }
                end = slash
            }
        }
        return counts.filter { $0.value >= count }.max { a, b in
            a.key.count != b.key.count ? a.key.count < b.key.count : a.key > b.key
        }.map { String($0.key) }
    }

    static func parent(of folder: String) -> Substring {
        guard let slash = folder.lastIndex(of: "/") else { return "" }
        return slash == folder.startIndex ? "/" : folder[..<slash]
    }

    /// Takes a file into the data set when it lies under the root (listed, or known before).
    public func adopt(_ file: FileID, path: String, size: UInt64) {
        guard members[file] == nil, roots.contains(where: { Self.isUnder(path[...], $0) }) else { return }
        guard files.count < options.maxFiles else {
            leftOut += 1
            return
        }
        members[file] = (size, files.count)
        if !hints.isEmpty, let hint = hints.first(where: { Self.isUnder(path[...], $0) }) { hinted[file] = hint }
        files.append(file)
        bytes &+= size
        // Listed after the scan went past the end of the list to the next epoch: still
        // this epoch's, first in line at the next call (the scan ahead only takes files
        // this epoch has read).
        if ahead && waitingSet.insert(file).inserted {
            waiting.append(file)
            waitingDirty = true
        }
    }

    /// Takes files known before any walk lists them (the store's, from earlier runs)
    /// in the order the walk lists them (``walkPrecedes(_:_:)``): the tree's order is
    /// the same whether a file was known or listed, not the order of a dictionary.
    public func adopt(known: [(id: FileID, path: String, size: UInt64)]) {
        for file in known.sorted(by: { Self.walkPrecedes($0.path, $1.path) }) { adopt(file.id, path: file.path, size: file.size) }
    }

    /// Whether `a` comes before `b` in the lister's walk (sorted, depth first): a
    /// folder's files by name, then its sub-folders by name, each walked whole. For
    /// absolute, normalized paths; names in the order of their UTF-8 bytes (the
    /// lister's for names in normal form C). Allocates nothing: it sorts a data set
    /// known from the store, up to ``Options/maxFiles`` paths.
    package static func walkPrecedes(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in b.withUTF8 { y in walkPrecedes(x, y) } }
    }

    private static func walkPrecedes(_ x: UnsafeBufferPointer<UInt8>, _ y: UnsafeBufferPointer<UInt8>) -> Bool {
        let slash = UInt8(ascii: "/")
        var i = 0
        while i < x.count && i < y.count && x[i] == y[i] { i += 1 }
        if i == x.count && i == y.count { return false }
        // They part inside one name of one folder: a file of that folder (the name is
        // the path's last) goes before a sub-folder; else the names' order, a name
        // that ends there first.
        let xIsFile = !x[i...].contains(slash), yIsFile = !y[i...].contains(slash)
        if xIsFile != yIsFile { return xIsFile }
        let xByte = i < x.count && x[i] != slash ? Int(x[i]) : -1
        let yByte = i < y.count && y[i] != slash ? Int(y[i]) : -1
        return xByte < yByte
    }

    /// Puts `order`'s files first in the list, in that order; the others keep theirs,
    /// after them. `order` is the order in which the last run of the same command first
    /// opened its files: a job whose order repeats from run to run (a shuffle its
    /// script seeds) reads this epoch in it, and one whose order does not is no worse
    /// served by it than by the walk's (both are as good as any guess of a random
    /// order). Files not in the tree are ignored; files handed out already are
    /// not handed out again (the cursor starts over, ``next`` skips them). Returns how
    /// many of the tree's files the order placed.
    @discardableResult
    public func prefer(order: [FileID]) -> Int {
        var placed = Set<FileID>(minimumCapacity: min(order.count, files.count))
        var list: [FileID] = []
        list.reserveCapacity(files.count)
        for file in order where members[file] != nil && placed.insert(file).inserted { list.append(file) }
        guard !placed.isEmpty else { return 0 }
        for file in files where !placed.contains(file) { list.append(file) }
        files = list
        for (position, file) in files.enumerated() { members[file]?.position = position }
        cursor = 0
        // Files passed over before (the walk had not reached them) go out first when
        // they may: in the new order too, each once (one pass over the list: it can
        // hold most of the tree's million files, and this runs on the engine thread).
        if waitingSet.count > 1 { waiting = files.filter { waitingSet.contains($0) } }
        waitingDirty = true
        return placed.count
    }

    /// The last run's order of every epoch: `orders[k]` is the order in which it read
    /// epoch k + 1 (``TraceStore/openPasses``), the first one being the order
    /// ``prefer(order:)`` takes. From the second epoch on, each epoch's files go out
    /// in that epoch's order, and so do the next epoch's first files handed out
    /// ahead: a job whose every epoch repeats from run to run (a shuffle its script
    /// seeds, as DataLoader's generator) gets each epoch warmed in the order it reads
    /// it, so that a data set larger than the budget is warmed just ahead of the job
    /// rather than a subset held. One whose order does not repeat is served as by any
    /// other order. The epoch under way takes its order now when it has one.
    ///
    /// `epochs`, when known, is how many epochs that run read: at the end of the last
    /// of them, the scan ahead does not warm the next (a job that runs as many epochs
    /// as before would never read it; up to the budget would be read for nothing).
    /// One that runs longer this time reads past them: from then on the scan ahead
    /// goes on as without it, so only that epoch's first files start unwarmed.
    public func prefer(epochOrders orders: [[FileID]], epochs: Int? = nil) {
        epochOrders = orders
        lastRunEpochs = epochs.map { max(1, $0) }
        // The first epoch took the order of ``prefer(order:)`` already.
        orderedEpoch = max(orderedEpoch, 0)
        let now = ahead ? cursorEpoch + 1 : cursorEpoch
        if now >= 1 { orderEpoch(now) }
    }

    /// Puts the list in `epoch`'s order from the last run, once, when there is one.
    private func orderEpoch(_ epoch: Int) {
        guard epoch > orderedEpoch, epoch < epochOrders.count, !epochOrders[epoch].isEmpty else { return }
        orderedEpoch = epoch
        // The cursor starts over: ``next`` skips what went out already.
        if prefer(order: epochOrders[epoch]) > 0 { epochsInLastRunsOrder += 1 }
    }

    /// A file's size changed (its first open told the real one).
    public func resize(_ file: FileID, to size: UInt64) {
        guard let old = members[file]?.size, old != size else { return }
        members[file]?.size = size
        bytes = bytes &- old &+ size
    }

    /// Hands `file` out again in this epoch, first: it went out for a client that
    /// could not read it (the tree seeded as no one), and the client that took the
    /// tree over may.
    public func handOutAgain(_ file: FileID) {
        guard members[file] != nil, handedOut.removeValue(forKey: file) != nil else { return }
        if waitingSet.insert(file).inserted { waiting.append(file) }
        waitingDirty = true
    }

    /// Whether waiting files must be looked at again (see ``next(limit:epoch:read:chunkBytes:eligible:eligibleChanged:)``).
    private var waitingDirty = true

    /// The next files to warm in epoch `epoch`: unread ones not yet handed out, in
    /// list order; when none is left, the next epoch's first files (each once this
    /// epoch has read it).
    /// - Parameters:
    ///   - read: whether the job has read a file in this epoch.
    ///   - chunkBytes: files larger than this are handed out in chunks of it.
    ///   - eligible: whether a file may be handed out now; one that may not waits (bounded
    ///     by the data set) and is tried again first at a later call.
    ///   - eligibleChanged: whether `eligible` may say yes to a file it refused before;
    ///     waiting files are looked at again only then.
    public func next(limit: Int, epoch: Int, read: (FileID) -> Bool, chunkBytes: UInt64,
                     eligible: (FileID) -> Bool = { _ in true }, eligibleChanged: Bool = true) -> [Prediction] {
        guard limit > 0, !files.isEmpty else { return [] }
        if epoch != cursorEpoch {
            cursorEpoch = epoch
            cursor = 0
            ahead = false
            waiting.removeAll()
            waitingSet.removeAll()
            // Those not out yet go with the new epoch's unread files.
            aheadWaiting.removeAll()
            aheadWaitingSet.removeAll()
            orderEpoch(epoch)
            // Past the last run's epochs: its count bounds nothing any more.
            if let last = lastRunEpochs, epoch >= last { lastRunEpochs = nil }
        }
        var predictions: [Prediction] = []
        // Files not eligible yet are looked at again only when eligibility may have
        // changed: the list can hold most of the tree, and this runs many times a second.
        if eligibleChanged { waitingDirty = true }
        if !waitingSet.isEmpty && waitingDirty {
            var still: [FileID] = []
            var full = false
            for file in waiting where waitingSet.contains(file) {
                guard predictions.count < limit, eligible(file) else {
                    full = full || predictions.count >= limit
                    still.append(file)
                    continue
                }
                waitingSet.remove(file)
                if handedOut[file] != epoch && !read(file) { handOut(file, for: epoch, chunkBytes: chunkBytes, to: &predictions) }
            }
            waiting = still
            waitingDirty = full  // stopped at the limit: the rest is looked at next time
        } else if waitingSet.isEmpty {
            waiting.removeAll()
        }
        if ahead && !aheadWaiting.isEmpty {
            var still: [FileID] = []
            for file in aheadWaiting {
                if predictions.count < limit && read(file) {
                    aheadWaitingSet.remove(file)
                    if handedOut[file] != epoch + 1 { handOut(file, for: epoch + 1, chunkBytes: chunkBytes, to: &predictions) }
                } else {
                    still.append(file)
                }
            }
            aheadWaiting = still
        }
        var scanned = 0
        while predictions.count < limit && scanned < files.count {
            if cursor >= files.count {
                guard !ahead else { break }
                if let last = lastRunEpochs, epoch + 1 >= last {
                    stoppedAtLastRunsEpochs = last
                    break
                }
                ahead = true
                cursor = 0
                orderEpoch(epoch + 1)
            }
            let file = files[cursor]
            cursor += 1
            scanned += 1
            let target = ahead ? epoch + 1 : epoch
            guard handedOut[file] != target, ahead || !read(file) else { continue }
            guard eligible(file) else {
                if !ahead && waitingSet.insert(file).inserted { waiting.append(file) }
                continue
            }
            if ahead && !read(file) {
                // Ahead of this epoch's read of it: out for the next once read.
                if aheadWaitingSet.insert(file).inserted { aheadWaiting.append(file) }
                continue
            }
            handOut(file, for: target, chunkBytes: chunkBytes, to: &predictions)
        }
        handedOutCount += predictions.count
        return predictions
    }

    /// The files of `listed` (the client's walk has just reached them) that were passed
    /// over in this epoch until it did: handed out now, in the tree's order, up to
    /// `limit` (the rest go out from the list, at a later ``next``). The caller hands
    /// these out at once, whatever it holds queued already: on a slow link, a file
    /// first in the last run's order that a walk lists late must not wait until
    /// hundreds of the tree's requests have drained (its rank puts it ahead of those
    /// after it in the list). Costs in proportion to `listed`, not to the tree.
    public func nextListed(_ listed: [FileID], limit: Int, epoch: Int, read: (FileID) -> Bool, chunkBytes: UInt64,
                           eligible: (FileID) -> Bool) -> [Prediction] {
        guard limit > 0, epoch == cursorEpoch, !waitingSet.isEmpty else { return [] }
        var found: [(position: Int, file: FileID)] = []
        for file in listed where waitingSet.contains(file) && eligible(file) {
            if let position = members[file]?.position { found.append((position, file)) }
        }
        guard !found.isEmpty else { return [] }
        found.sort { $0.position < $1.position }
        var predictions: [Prediction] = []
        for (_, file) in found {
            guard predictions.count < limit else {
                waitingDirty = true  // the rest go out from the list
                break
            }
            guard waitingSet.remove(file) != nil else { continue }  // listed twice
            if handedOut[file] != epoch && !read(file) { handOut(file, for: epoch, chunkBytes: chunkBytes, to: &predictions) }
        }
        handedOutCount += predictions.count
        return predictions
    }

    /// Hands `file` out for epoch `target`, in chunks of `chunkBytes`, with its rank as
    /// the deadline: the epoch, then its place in the list. The scheduler's heap orders
    /// the tree's requests by it (after every other predictor's), so a file handed out
    /// late (passed over until the walk reached it) goes ahead of the tree's requests
    /// queued since that come after it in the list; on a slow link it would otherwise
    /// wait behind seconds of them.
    private func handOut(_ file: FileID, for target: Int, chunkBytes: UInt64, to predictions: inout [Prediction]) {
        handedOut[file] = target
        let member = members[file] ?? (0, 0)
        let rank = UInt64(max(0, target)) << 32 | UInt64(member.position)
        var offset: UInt64 = 0
        repeat {
            predictions.append(Prediction(fileID: file, offset: offset, length: member.size == 0 ? 0 : min(chunkBytes, member.size - offset),
                                          confidence: options.confidence, deadline: rank, predictor: .dataSetTree))
            offset += chunkBytes
        } while offset < member.size
    }

    package static func isUnder(_ path: Substring, _ root: String) -> Bool {
        path.hasPrefix(root) && (path.count == root.count || path[path.index(path.startIndex, offsetBy: root.count)] == "/" || root == "/")
    }

    /// The deepest folder holding both `a` and `b` ("" when only `/` does).
    static func commonAncestor(_ a: Substring, _ b: Substring) -> Substring {
        let aParts = a.split(separator: "/", omittingEmptySubsequences: true)
        let bParts = b.split(separator: "/", omittingEmptySubsequences: true)
        var shared = 0
        while shared < aParts.count && shared < bParts.count && aParts[shared] == bParts[shared] { shared += 1 }
        guard shared > 0 else { return "" }
        return Substring("/" + aParts.prefix(shared).joined(separator: "/"))
    }
}
