import Foundation
import GoFetchEvents

/// Variable-order Markov (n-gram) predictor over the files a stream opens — the
/// seed's baseline, bounded.
///
/// Orders 1…`maxOrder` are learned together; a prediction uses the longest context
/// seen before and backs off to shorter ones. Confidence is the observed transition
/// probability. Each stream (process, or data-loader worker) keeps its own history,
/// so interleaved workers do not scramble each other's contexts. Contexts beyond
/// `maxContexts` and successors beyond `maxSuccessors` evict the least used, counted.
public final class MarkovPredictor: Predictor {
    public struct Options: Sendable, Equatable {
        public var maxOrder = 3
        public var maxContexts = 2_000_000
        public var maxSuccessors = 8
        public var maxStreams = 65_536

        public init(maxOrder: Int = 3, maxContexts: Int = 2_000_000, maxSuccessors: Int = 8, maxStreams: Int = 65_536) {
            self.maxOrder = maxOrder
            self.maxContexts = maxContexts
            self.maxSuccessors = maxSuccessors
            self.maxStreams = maxStreams
        }
    }

    /// The last one to three files of a stream, most recent first; unused slots are 0.
    struct Context: Hashable {
        var first: FileID
        var second: FileID
        var third: FileID

        /// One word into the hasher, not three: contexts are looked up several times per
        /// open. File ids are the daemon's own small numbers, so the mix keeps them apart.
        func hash(into hasher: inout Hasher) {
            hasher.combine(first &* -7_046_029_254_386_353_131 ^ second &* -4_417_276_706_812_531_889 ^ third &* 1_609_587_929_392_839_161)
        }
    }

    /// What a stream remembers: its last files, and the path last predicted from them.
    struct History {
        var context: Context
        var lastUsed: UInt32
        /// The most likely next file when the path was walked, and the steps after it
        /// (see ``MarkovPredictor/predict(stream:limit:depth:)``).
        var pathStart: FileID = 0
        var path: [Step] = []
    }

    struct Step {
        var file: FileID
        var probability: Double
    }

    struct Successor {
        var file: FileID
        var count: UInt32
    }

    struct Entry {
        var successors: [Successor]
        var total: UInt32
        var lastUsed: UInt32
    }

    public let kind = PredictorKind.markov
    public let options: Options
    var table: [Context: Entry] = [:]
    private var histories: [StreamKey: History] = [:]
    private var tick: UInt32 = 0
    public private(set) var contextsEvicted = 0
    public private(set) var successorsEvicted = 0
    public private(set) var transitionsLearned = 0
    /// Steps of predicted paths looked up in the table (a path moved on costs one).
    public private(set) var pathStepsWalked = 0

    public init(options: Options = Options()) {
        precondition((1...3).contains(options.maxOrder), "maxOrder must be 1…3")
        self.options = options
    }

    public var contextCount: Int { table.count }

    public func observe(_ event: TraceEvent) {
        guard event.kind == .open else { return }
        observe(file: event.fileID, stream: StreamKey(event))
    }

    /// Learns that `stream` opened `file` next.
    public func observe(file: FileID, stream: StreamKey) {
        tick &+= 1
        let index = histories.index(forKey: stream)
        var history = index.map { histories.values[$0].context } ?? Context(first: 0, second: 0, third: 0)
        if history.first == file { return }  // a re-open of the same file is not a transition
        if history.first != 0 {
            for order in 1...options.maxOrder {
                guard let context = Self.context(history, order: order) else { break }
                learn(context, next: file)
            }
            transitionsLearned += 1
        }
        history = Context(first: file, second: history.first, third: history.second)
        if let index {
            // In place: the path's array is not copied.
            histories.values[index].context = history
            histories.values[index].lastUsed = tick
        } else {
            if histories.count >= options.maxStreams { forgetOldestStream() }
            histories[stream] = History(context: history, lastUsed: tick)
        }
    }

    public func predict(after event: TraceEvent, limit: Int) -> [Prediction] {
        predict(stream: StreamKey(event), limit: limit)
    }

    /// The most likely next files of `stream`, from its longest known context.
    public func predict(stream: StreamKey, limit: Int) -> [Prediction] {
        guard limit > 0, let history = histories[stream]?.context else { return [] }
        for order in stride(from: options.maxOrder, through: 1, by: -1) {
            guard let context = Self.context(history, order: order), let entry = table[context], entry.total > 0 else { continue }
            let total = Double(entry.total)
            return entry.successors
                .sorted { $0.count > $1.count }
                .prefix(limit)
                .map { Prediction(fileID: $0.file, confidence: Double($0.count) / total, predictor: .markov) }
        }
        return []
    }

    /// The next files of `stream` further ahead: the top `limit` successors, then the
    /// most likely path `depth` steps on, each step's confidence the product of the
    /// transition probabilities so far. Slow storage needs more than one file of lead.
    ///
    /// Walked once per step of the stream, not `depth` times: when the stream opened
    /// the file the last path started from and the path's next file is still the top
    /// successor, the path moves on by one and only its new last step is looked up.
    /// (A step's odds learned since are picked up at the next full walk: after a
    /// miss, or when a known step turns into one of the top successors.)
    public func predict(stream: StreamKey, limit: Int, depth: Int) -> [Prediction] {
        var predictions = predict(stream: stream, limit: limit)
        guard depth > 1, let first = predictions.first, let index = histories.index(forKey: stream) else { return predictions }
        let history = histories.values[index].context
        // Taken out of the table while it changes, so that it is not copied.
        var path = histories.values[index].path
        histories.values[index].path = []
        if history.first == histories.values[index].pathStart && path.first?.file == first.fileID {
            path.removeFirst()
        } else {
            path.removeAll(keepingCapacity: true)
        }
        // A dozen files at most: searched in order, not hashed.
        predictions.reserveCapacity(predictions.count + depth - 1)
        var best = first
        var context = Context(first: first.fileID, second: history.first, third: history.second)
        for step in 0..<(depth - 1) {
            let next: Step
            if step < path.count {
                next = path[step]
            } else if let found = Self.mostLikely(after: context, in: table, maxOrder: options.maxOrder) {
                pathStepsWalked += 1
                next = Step(file: found.file, probability: found.probability)
                path.append(next)
            } else {
                break
            }
            guard !predictions.contains(where: { $0.fileID == next.file }) else {
                path.removeSubrange(step...)
                break
            }
            best = Prediction(fileID: next.file, confidence: best.confidence * next.probability, predictor: .markov)
            predictions.append(best)
            context = Context(first: next.file, second: context.first, third: context.second)
        }
        if path.count > depth - 1 { path.removeSubrange((depth - 1)...) }
        histories.values[index].pathStart = first.fileID
        histories.values[index].path = path
        return predictions
    }

    private static func mostLikely(after history: Context, in table: [Context: Entry], maxOrder: Int) -> (file: FileID, probability: Double)? {
        for order in stride(from: maxOrder, through: 1, by: -1) {
            guard let context = context(history, order: order), let entry = table[context], entry.total > 0,
                  let top = entry.successors.max(by: { $0.count < $1.count }) else { continue }
            return (top.file, Double(top.count) / Double(entry.total))
        }
        return nil
    }

    /// Drops what a stream remembers (its process ended).
    public func forget(stream: StreamKey) {
        histories[stream] = nil
    }

    static func context(_ history: Context, order: Int) -> Context? {
        switch order {
        case 1: return history.first == 0 ? nil : Context(first: history.first, second: 0, third: 0)
        case 2: return history.second == 0 ? nil : Context(first: history.first, second: history.second, third: 0)
        default: return history.third == 0 ? nil : history
        }
    }

    private func learn(_ context: Context, next file: FileID) {
        if let index = table.index(forKey: context) {
            // In place: copying the entry out and back would copy its successor array.
            update(&table.values[index], with: file)
            return
        }
        if table.count >= options.maxContexts { evictLeastUsed() }
        table[context] = Entry(successors: [Successor(file: file, count: 1)], total: 1, lastUsed: tick)
    }

    private func update(_ entry: inout Entry, with file: FileID) {
        entry.lastUsed = tick
        entry.total &+= 1
        if let index = entry.successors.firstIndex(where: { $0.file == file }) {
            entry.successors[index].count &+= 1
        } else if entry.successors.count < options.maxSuccessors {
            entry.successors.append(Successor(file: file, count: 1))
        } else {
            // Replace the rarest successor (its count is the newcomer's too: space-saving).
            let index = entry.successors.indices.min { entry.successors[$0].count < entry.successors[$1].count }!
            entry.successors[index] = Successor(file: file, count: entry.successors[index].count &+ 1)
            successorsEvicted += 1
        }
    }

    /// Removes about the least recently used fifth of the contexts. The age cut-off
    /// is estimated from a sample of 2,000 entries (the table's iteration order is
    /// its hash order, so every k-th entry is a fair sample), which keeps eviction one
    /// pass over the table instead of a sort of it.
    private func evictLeastUsed() {
        let step = max(1, table.count / 2_000)
        var sample: [UInt32] = []
        sample.reserveCapacity(2_001)
        for (index, entry) in table.values.enumerated() where index % step == 0 {
            sample.append(tick &- entry.lastUsed)
        }
        sample.sort(by: >)
        let threshold = sample[min(sample.count - 1, sample.count / 5)]
        let before = table.count
        // Removing in place: rebuilding a table of millions of entries costs far more.
        let stale = table.compactMap { tick &- $0.value.lastUsed >= threshold ? $0.key : nil }
        for key in stale { table.removeValue(forKey: key) }
        if table.count == before, let oldest = table.max(by: { tick &- $0.value.lastUsed < tick &- $1.value.lastUsed })?.key {
            table[oldest] = nil  // all equally old: drop one so the cap holds
        }
        contextsEvicted += before - table.count
    }

    /// The table of streams is full: the least recently used quarter goes at once, so
    /// that a new process costs a scan of the table once in `maxStreams / 4` times, not
    /// every time (a long-running daemon sees ever new pids).
    private func forgetOldestStream() {
        let ages = histories.values.map { tick &- $0.lastUsed }.sorted(by: >)
        guard !ages.isEmpty else { return }
        let cutoff = ages[max(0, ages.count / 4 - 1)]
        let stale = histories.compactMap { tick &- $0.value.lastUsed >= cutoff ? $0.key : nil }
        for stream in stale { forget(stream: stream) }
    }
}
