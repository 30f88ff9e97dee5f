import GoFetchEvents
import GoFetchExecute

/// Accounting of every prefetch and every access, on the engine's thread.
///
/// A prefetch is entered when the scheduler hands it to the executor and gets its
/// fate when the job first reads an overlapping range: *useful* when it had
/// completed before the read started and the read was warm, *late* when it had not
/// completed, *wasted* when the read was cold anyway (evicted before use) or when
/// nothing read it within `window`. Each access is warm or cold by ``ReadTiming``;
/// the time spent in cold reads is the stall. Entries are bounded (`capacity`):
/// prefetches beyond it are counted as untracked, never stored.
public final class PrefetchLedger {
    public struct Options: Sendable {
        public var timing = ReadTiming()
        /// A prefetch nobody read for this long is wasted.
        public var windowNanoseconds: UInt64 = 120_000_000_000
        /// Prefetches tracked at once, at most.
        public var capacity = 200_000
        /// A hint (`fadvise`, `readahead`) returns before its I/O is done, and cachestat
        /// counts pages still in flight: a cold read this soon after a hint "completed"
        /// is taken as late (the I/O was still running), not as evicted.
        public var hintSettleNanoseconds: UInt64 = 1_000_000_000
        public init() {}
    }

    struct Entry {
        var offset: UInt64
        var end: UInt64
        var issuedAt: UInt64
        /// The user the prefetch was made for: only that user's read decides whether
        /// it was evicted before use.
        var uid: UInt32 = 0
        var completedAt: UInt64?
        var loaded = false
        /// Loaded by a hint: completion means the I/O was started, not finished.
        var hinted = false
        /// The job read it before the executor reported: its fate waits for the result.
        var touchedAt: UInt64?
        var touchedCold = false
    }

    public let options: Options
    /// Called with each fate as it is decided, whether the prefetch was evicted before
    /// use, and the user it was made for.
    public let onFate: ((PrefetchFate, _ evicted: Bool, _ uid: UInt32) -> Void)?
    private var entries: [FileID: [Entry]] = [:]
    private var tracked = 0
    /// Ranges of files whose useful prefetch the job is now reading: warm reads there count as covered.
    private var covered: [FileID: (offset: UInt64, end: UInt64)] = [:]
    private var lastSweep: UInt64 = 0
    private(set) public var counters = LedgerCounters()
    private(set) public var histograms = LedgerHistograms()

    public init(options: Options = Options(), onFate: ((PrefetchFate, _ evicted: Bool, _ uid: UInt32) -> Void)? = nil) {
        self.options = options
        self.onFate = onFate
    }

    /// The scheduler released `request` to the executor at `now`.
    public func issued(_ request: PrefetchRequest, now: UInt64) {
        counters.issued += 1
        counters.bytesIssued &+= request.length
        histograms.queueDelay.record(now &- request.queuedAt)
        guard tracked < options.capacity else {
            counters.untracked += 1
            return
        }
        entries[request.fileID, default: []].append(Entry(offset: request.offset, end: request.offset &+ request.length, issuedAt: now, uid: request.uid))
        tracked += 1
    }

    /// The executor finished a request.
    public func completed(_ result: PrefetchResult) {
        let request = result.request
        histograms.prefetchLatency.record(result.completedAt &- result.issuedAt)
        // Taken out of the table while it changes: a copy left in it would be copied
        // whole at the first change (the list of a large file's chunks can be long).
        guard var list = entries.removeValue(forKey: request.fileID) else { return }
        let before = list.count
        guard let index = list.firstIndex(where: { $0.offset == request.offset && $0.completedAt == nil }) else {
            entries[request.fileID] = list
            return
        }
        var entry = list[index]
        entry.completedAt = result.completedAt
        switch result.outcome {
        case .completed:
            entry.loaded = true
            entry.hinted = result.method == .fadvise || result.method == .readahead
            counters.bytesLoaded &+= result.bytes
        case .skipped:
            settle(.skipped, uid: request.uid)
            list.remove(at: index)
            store(list, for: request.fileID, before: before)
            return
        case .denied, .missing, .failed, .cannotLast:
            settle(.failed, uid: request.uid)
            list.remove(at: index)
            store(list, for: request.fileID, before: before)
            return
        }
        if let touchedAt = entry.touchedAt {
            // The job got there while this request was in flight.
            decide(entry, touchedAt: touchedAt, cold: entry.touchedCold)
            list.remove(at: index)
        } else {
            list[index] = entry
        }
        store(list, for: request.fileID, before: before)
    }

    /// One event of the job. Reads and mmaps are accesses; a close ends coverage of the file.
    /// Accounts for one of the job's events; returns whether it was a cold access.
    @discardableResult
    public func observe(_ event: TraceEvent) -> Bool {
        switch event.kind {
        case .read, .mmap:
            return access(event)
        case .close:
            covered[event.fileID] = nil
        case .open, .epoch, .lookahead:
            break
        }
        return false
    }

    private func access(_ event: TraceEvent) -> Bool {
        let bytes = event.length
        let cold = event.kind == .read && options.timing.isCold(bytes: bytes, nanoseconds: UInt64(event.durationNanoseconds))
        counters.accesses += 1
        counters.bytesAccessed &+= bytes
        if cold {
            counters.coldAccesses += 1
            counters.stallNanoseconds &+= UInt64(event.durationNanoseconds)
            histograms.coldRead.record(UInt64(event.durationNanoseconds))
        }
        let start = event.offset, end = event.offset &+ max(bytes, 1)
        var warmedByUs = false
        if var list = entries.removeValue(forKey: event.fileID) {  // out of the table while it changes (no copy)
            let before = list.count
            var index = 0
            while index < list.count {
                let entry = list[index]
                guard entry.offset < end && start < entry.end else {
                    index += 1
                    continue
                }
                if entry.completedAt == nil && entry.touchedAt == nil {
                    // In flight (or its result is still on the way): decided on completion.
                    list[index].touchedAt = event.monotonicNanoseconds
                    list[index].touchedCold = cold
                    index += 1
                    continue
                }
                if entry.touchedAt != nil {
                    index += 1
                    continue
                }
                // A cold read that only partly lies in the prefetch (a window's edge, a larger
                // read) says nothing of eviction: wait for a read inside it. Nor does another
                // user's cold read: a client could report slow reads of what was prefetched
                // for someone else, to shrink their budget.
                if cold && (!(entry.offset <= start && end <= entry.end) || event.uid != entry.uid) {
                    index += 1
                    continue
                }
                let fate = decide(entry, touchedAt: event.monotonicNanoseconds, cold: cold)
                if fate == .useful {
                    warmedByUs = true
                    covered[event.fileID] = (entry.offset, entry.end)
                }
                list.remove(at: index)
            }
            store(list, for: event.fileID, before: before)
        }
        if !warmedByUs, !cold, let range = covered[event.fileID], range.offset < end && start < range.end {
            warmedByUs = true
        }
        if warmedByUs && !cold { counters.coveredAccesses += 1 }
        if covered.count > options.capacity { covered.removeAll(keepingCapacity: true) }
        return cold
    }

    @discardableResult
    private func decide(_ entry: Entry, touchedAt: UInt64, cold: Bool) -> PrefetchFate {
        let fate: PrefetchFate
        if let completedAt = entry.completedAt, completedAt <= touchedAt,
            !(cold && entry.hinted && touchedAt &- completedAt < options.hintSettleNanoseconds) {
            fate = cold ? .wasted : .useful
            if cold { counters.evictedBeforeUse += 1 } else { histograms.leadTime.record(touchedAt &- completedAt) }
        } else {
            fate = .late
        }
        settle(fate, evicted: fate == .wasted, uid: entry.uid)
        return fate
    }

    private func settle(_ fate: PrefetchFate, evicted: Bool = false, uid: UInt32) {
        counters.fates[fate, default: 0] += 1
        onFate?(fate, evicted, uid)
    }

    /// Puts a file's list (taken out with `removeValue`, `before` entries then) back.
    private func store(_ list: [Entry], for file: FileID, before: Int) {
        tracked -= before - list.count
        entries[file] = list.isEmpty ? nil : list
    }

    /// Loaded prefetches nobody read within the window become wasted. Checked at most once a second.
    public func sweep(now: UInt64) {
        guard now &- lastSweep >= 1_000_000_000 else { return }
        lastSweep = now
        // Changes are collected, then applied: changing the table while iterating it
        // would copy it whole.
        var changed: [(FileID, [Entry], Int)] = []
        for (file, list) in entries {
            let kept = list.filter { entry in
                guard let completedAt = entry.completedAt, entry.touchedAt == nil, now &- completedAt > options.windowNanoseconds else { return true }
                counters.unreadInWindow += 1
                settle(.wasted, uid: entry.uid)
                return false
            }
            if kept.count != list.count { changed.append((file, kept, list.count)) }
        }
        for (file, kept, before) in changed { store(kept, for: file, before: before) }
    }

    /// The run ended: whatever was loaded and never read is wasted.
    public func finish() {
        for list in entries.values {
            for entry in list {
                if entry.completedAt != nil {
                    counters.unreadInWindow += 1
                    settle(.wasted, uid: entry.uid)
                } else if entry.touchedAt != nil {
                    settle(.late, uid: entry.uid)  // the job read it while it was in flight; its result never came
                } else {
                    settle(.failed, uid: entry.uid)  // never completed before the run ended
                }
            }
            tracked -= list.count
        }
        entries.removeAll()
    }

    /// Prefetches waiting for their fate.
    public var pending: Int { tracked }

    /// Time spent predicting one event.
    public func recordPrediction(nanoseconds: UInt64) {
        histograms.prediction.record(nanoseconds)
    }

    public func snapshot() -> AccountingSnapshot {
        AccountingSnapshot(counters: counters, histograms: histograms, pending: tracked)
    }
}
