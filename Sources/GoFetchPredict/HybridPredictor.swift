import GoFetchEvents

/// Picks, per stream, the file-level predictor whose recent measured accuracy is
/// best, and falls back: a repeated order gets Markov's exact next files, a shuffled
/// epoch gets the remaining set, never garbage Markov guesses.
///
/// Accuracy is measured online: before each open is learned, every candidate that
/// made a prediction is scored on whether it had predicted it (Markov: in its last
/// top-k for that stream; remaining set: an unread file of the data set). A
/// candidate that had nothing to say is not scored. Scores start at 0.5 and are
/// exponentially weighted (α = 0.1), so a change of pattern shows within tens of files.
public final class HybridPredictor: Predictor {
    public let kind = PredictorKind.markov
    public let markov: MarkovPredictor?
    public let remaining: EpochRemainingSet?
    /// The GRU over directory moves (`predictor.ml`), scored like Markov and used
    /// where it measures better: regular orders over files never seen before.
    public let gru: GRUPredictor?
    /// Below this measured accuracy a predictor is not used.
    public let minimumAccuracy: Double
    private var streams: [StreamKey: StreamState] = [:]
    private let maxStreams: Int
    public private(set) var choices: [PredictorKind: Int] = [:]

    struct StreamState {
        /// The last top-k (a few files: searched in order, not hashed).
        var markovPending: [FileID] = []
        var markovAccuracy = 0.5
        var gruPending: [FileID] = []
        var gruAccuracy = 0.5
        var remainingAccuracy = 0.5
        var opens = 0
    }

    /// How many files ahead Markov looks (its most likely path).
    public let markovDepth: Int
    /// Remaining-set files handed out per open: in a shuffled epoch the job may read
    /// any of them next, so the frontier must run far ahead (the scheduler's budget
    /// and rates pace the actual I/O).
    public let remainingBatch: Int

    public init(markov: MarkovPredictor?, remaining: EpochRemainingSet?, gru: GRUPredictor? = nil, minimumAccuracy: Double = 0.3, markovDepth: Int = 1, remainingBatch: Int = 32, maxStreams: Int = 65_536) {
        self.gru = gru
        self.markovDepth = markovDepth
        self.remainingBatch = remainingBatch
        self.markov = markov
        self.remaining = remaining
        self.minimumAccuracy = minimumAccuracy
        self.maxStreams = maxStreams
    }

    /// Measured accuracies of a stream, for tests and reports.
    public func accuracy(of stream: StreamKey) -> (markov: Double, remaining: Double)? {
        streams[stream].map { ($0.markovAccuracy, $0.remainingAccuracy) }
    }

    public func observe(_ event: TraceEvent) {
        guard event.kind == .open else { return }
        let key = StreamKey(event)
        if streams[key] == nil && streams.count >= maxStreams { streams.removeAll(keepingCapacity: true) }
        // Changed in place in the table (one lookup, no copy of the pending lists).
        observe(event, in: &streams[key, default: StreamState()])
        markov?.observe(event)
        gru?.observe(event)
        remaining?.observe(event)
    }

    private func observe(_ event: TraceEvent, in state: inout StreamState) {
        if !state.markovPending.isEmpty {
            let hit = state.markovPending.contains(event.fileID)
            state.markovAccuracy = 0.9 * state.markovAccuracy + (hit ? 0.1 : 0)
        }
        if !state.gruPending.isEmpty {
            let hit = state.gruPending.contains(event.fileID)
            state.gruAccuracy = 0.9 * state.gruAccuracy + (hit ? 0.1 : 0)
        }
        if let remaining, remaining.remaining > 0 {
            let hit = remaining.expects(event.fileID)
            state.remainingAccuracy = 0.9 * state.remainingAccuracy + (hit ? 0.1 : 0)
        }
        state.opens += 1
    }

    public func predict(after event: TraceEvent, limit: Int) -> [Prediction] {
        guard event.kind == .open else { return [] }
        let key = StreamKey(event)
        guard let index = streams.index(forKey: key) else { return [] }
        let markovPredictions = markov?.predict(stream: key, limit: limit, depth: markovDepth) ?? []
        let gruPredictions = gru?.predict(stream: key, limit: limit, depth: markovDepth) ?? []
        // Scored on the next file only: what the top-k said comes right after this one.
        // (In place in the table: a copy out and back would copy both lists every open.)
        streams.values[index].markovPending.removeAll(keepingCapacity: true)
        streams.values[index].markovPending.append(contentsOf: markovPredictions.prefix(limit).lazy.map(\.fileID))
        streams.values[index].gruPending.removeAll(keepingCapacity: true)
        streams.values[index].gruPending.append(contentsOf: gruPredictions.prefix(limit).lazy.map(\.fileID))
        let state = streams.values[index]

        // The order predictor: Markov, unless the GRU measures clearly better (by 0.05).
        let useGRU = gru != nil && state.gruAccuracy > state.markovAccuracy + 0.05
        let (ordered, orderedAccuracy, orderedKind) = useGRU
            ? (gruPredictions, state.gruAccuracy, PredictorKind.gru) : (markovPredictions, state.markovAccuracy, PredictorKind.markov)
        let orderedGood = orderedAccuracy >= minimumAccuracy
        let remainingGood = remaining != nil && state.remainingAccuracy >= minimumAccuracy
        // An order predictor is exact about the order, so it wins ties (within 0.05).
        if orderedGood && (!remainingGood || orderedAccuracy + 0.05 >= state.remainingAccuracy) {
            if !ordered.isEmpty { choices[orderedKind, default: 0] += 1 }
            // A transition seen once has probability 1; the stream's measured accuracy caps it.
            return ordered.map {
                var prediction = $0
                prediction.confidence = min(prediction.confidence, orderedAccuracy)
                return prediction
            }
        }
        if remainingGood, let remaining {
            // Its own confidence stands: how much of the last epoch's data set the last
            // epoch read again, the chance an unread file is read before this one ends.
            // (The measured accuracy only decides whether to use it: files handed out
            // are not handed out again, so they must not be lost below a threshold.)
            let handed = remaining.next(limit: max(limit, remainingBatch))
            if !handed.isEmpty { choices[.remainingSet, default: 0] += 1 }
            return handed
        }
        return []
    }
}
