import GoFetchEvents

/// Exact lookahead: the data loader's sampler announced the order in which the job
/// will read its files (Python hook, kind-6 records). Prefetch along that list, a
/// window ahead of the position the job has reached.
///
/// The announcer is the loader's main process; the reads come from its worker
/// processes, so the position is found by file, not by process: an open of the
/// k-th announced file means the job is at least at k. Each announcer (a rank under
/// DistributedSampler) keeps its own list; a new announcement replaces its last one.
public final class LookaheadPredictor: Predictor {
    public let kind = PredictorKind.lookahead
    /// Files warmed ahead of the job's position.
    public let window: Int
    public let maxFiles: Int
    public let maxLists: Int

    struct Announcement {
        var files: [FileID] = []
        var sizes: [UInt64] = []
        var index: [FileID: Int] = [:]
        /// Furthest position the job has opened.
        var position = -1
        /// Positions below this were handed out already.
        var issuedUntil = 0
        var epoch: UInt32?
        var lastUsed: UInt64 = 0
    }

    private var lists: [UInt32: Announcement] = [:]
    /// Which announcer's list a file is in (the latest one wins).
    private var owner: [FileID: UInt32] = [:]
    private var tick: UInt64 = 0
    /// Entries of all lists together (at most `maxFiles`).
    private var entries = 0
    public private(set) var announcedFiles = 0
    public private(set) var dropped = 0

    public init(window: Int = 64, maxFiles: Int = 4_000_000, maxLists: Int = 256) {
        self.window = window
        self.maxFiles = maxFiles
        self.maxLists = maxLists
    }

    /// Takes one lookahead record.
    public func announce(_ event: TraceEvent) {
        guard event.kind == .lookahead else { return }
        tick += 1
        let announcer = event.pid
        if event.flags.contains(.announcementStart) || lists[announcer] == nil {
            if let old = lists[announcer] {
                forget(old, of: announcer)
            } else if lists.count >= maxLists, let oldest = lists.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                forget(lists[oldest]!, of: oldest)
                lists[oldest] = nil
            }
            lists[announcer] = Announcement(epoch: event.epoch)
        }
        // Bounded by the entries of all lists, not only by distinct files: a client
        // announcing one file over and over would otherwise grow its list forever.
        guard entries < maxFiles else {
            dropped += 1
            return
        }
        // Mutated in place: a copy of the list taken out of the dictionary would copy
        // its arrays at the first append, once per record.
        let added = Self.append(event, tick: tick, to: &lists[announcer]!)
        guard added else {
            dropped += 1
            return
        }
        owner[event.fileID] = announcer
        announcedFiles += 1
        entries += 1
    }

    /// Appends the record at its position; `false` when it is not the next one (records arrive in order).
    private static func append(_ event: TraceEvent, tick: UInt64, to list: inout Announcement) -> Bool {
        list.lastUsed = tick
        guard Int(clamping: event.offset) == list.files.count else { return false }
        list.index[event.fileID] = list.files.count
        list.files.append(event.fileID)
        list.sizes.append(event.length)
        return true
    }

    private func forget(_ list: Announcement, of announcer: UInt32) {
        for file in list.files where owner[file] == announcer { owner[file] = nil }
        entries -= list.files.count
    }

    /// Whether the file is in an announced list (then this predictor answers for it).
    public func covers(_ file: FileID) -> Bool { owner[file] != nil }

    public func observe(_ event: TraceEvent) {
        guard event.kind == .open, let announcer = owner[event.fileID], var list = lists[announcer],
              let position = list.index[event.fileID] else { return }
        list.position = max(list.position, position)
        list.lastUsed = tick
        lists[announcer] = list
    }

    public func predict(after event: TraceEvent, limit: Int) -> [Prediction] {
        guard let announcer = owner[event.fileID] else { return [] }
        return next(announcer: announcer)
    }

    /// The files of `announcer`'s list within the window ahead of its position, not yet handed out.
    public func next(announcer: UInt32) -> [Prediction] {
        guard var list = lists[announcer] else { return [] }
        let end = min(list.files.count, list.position + 1 + window)
        let start = max(list.issuedUntil, list.position + 1)
        guard start < end else { return [] }
        list.issuedUntil = end
        lists[announcer] = list
        return (start..<end).map {
            Prediction(fileID: list.files[$0], length: list.sizes[$0], confidence: 1, predictor: .lookahead)
        }
    }

    /// Announcers whose lists changed in `control` (to warm their first window at once).
    public func announcers(in control: [TraceEvent]) -> Set<UInt32> {
        Set(control.filter { $0.kind == .lookahead }.map(\.pid))
    }
}
