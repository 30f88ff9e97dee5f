import DequeModule
import GoFetchEvents
import GoFetchSystem

/// Scores predictors on a recorded trace, online-style: each access is scored
/// against what each predictor had predicted *before* it saw that access, then the
/// predictor learns it and predicts again — exactly what the live engine does.
///
/// A prediction stays outstanding for `window` accesses of its stream. An access
/// that an outstanding prediction named is *covered*; that prediction was *useful*,
/// and its *lead* is how many accesses (and how many seconds) ahead it came.
/// Predictions that expire unnamed were wasted. File-level predictors are scored on
/// opens; the intra-file pattern detector on reads, by byte range.
public final class OfflineEvaluation {
    public struct Options: Sendable {
        /// Accesses of its stream a prediction stays outstanding for. Keep it well below an
        /// epoch: over a whole epoch every guess of a data-set file comes true eventually.
        public var window = 256
        /// Predictions asked per access.
        public var topK = 5
        /// Predictions below this confidence are not counted as issued (the scheduler drops them).
        public var confidenceThreshold = 0.6
        /// Streams tracked per predictor; beyond, the oldest state is dropped.
        public var maxStreams = 65_536
        public init() {}
    }

    /// One predictor under evaluation.
    public struct Candidate {
        public var name: String
        public var predictor: any Predictor
        /// `opens` for file-level predictors, `reads` for byte-range ones.
        public var scope: Scope

        public init(name: String, predictor: any Predictor, scope: Scope = .opens) {
            self.name = name
            self.predictor = predictor
            self.scope = scope
        }
    }

    public enum Scope: String, Sendable, Codable { case opens, reads }

    struct Outstanding {
        var step: Int
        var time: UInt64
        var offset: UInt64
        var end: UInt64
    }

    /// What one predictor has outstanding for one stream.
    struct StreamState {
        var step = 0
        var outstanding: [FileID: [Outstanding]] = [:]
        /// (file, step issued), oldest first, for expiry.
        var order = Deque<(FileID, Int)>()
        var outstandingCount = 0
        var lastTop: FileID?
    }

    final class Tally {
        let candidate: Candidate
        var streams: [StreamKey: StreamState] = [:]
        var score: PredictorScore
        var leadSteps = LatencyHistogram()
        var leadTime = LatencyHistogram()
        var nanoseconds: UInt64 = 0
        var outstandingSum = 0

        init(_ candidate: Candidate) {
            self.candidate = candidate
            score = PredictorScore(name: candidate.name, scope: candidate.scope)
        }
    }

    public let options: Options
    private let tallies: [Tally]
    public private(set) var events = 0

    public init(candidates: [Candidate], options: Options = Options()) {
        self.options = options
        tallies = candidates.map(Tally.init)
    }

    /// Scores, then teaches, every candidate one event.
    public func feed(_ event: TraceEvent) {
        events += 1
        for tally in tallies {
            let inScope = tally.candidate.scope == .opens ? event.kind == .open : (event.kind == .read || event.kind == .mmap)
            let predictor = tally.candidate.predictor
            guard inScope else {
                // Out-of-scope events still teach (a pattern detector learns file sizes from opens).
                if event.kind != .close { predictor.observe(event) }
                continue
            }
            let key = StreamKey(event)
            if tally.streams[key] == nil && tally.streams.count >= options.maxStreams { tally.streams.removeAll(keepingCapacity: true) }
            var state = tally.streams[key] ?? StreamState()
            score(event, tally: tally, state: &state)
            let started = Clock.monotonicNanoseconds()
            predictor.observe(event)
            let made = predictor.predict(after: event, limit: options.topK)
            tally.nanoseconds &+= Clock.monotonicNanoseconds() &- started
            record(made, event: event, tally: tally, state: &state)
            tally.streams[key] = state
        }
    }

    private func score(_ event: TraceEvent, tally: Tally, state: inout StreamState) {
        state.step += 1
        tally.score.accesses += 1
        if tally.candidate.scope == .opens, let top = state.lastTop {
            tally.score.topOneMade += 1
            if top == event.fileID { tally.score.topOneHits += 1 }
        }
        // Expire what fell out of the window.
        while let (file, step) = state.order.first, state.step - step > options.window {
            state.order.removeFirst()
            guard var list = state.outstanding[file], let index = list.firstIndex(where: { $0.step == step }) else { continue }
            list.remove(at: index)
            state.outstandingCount -= 1
            state.outstanding[file] = list.isEmpty ? nil : list
        }
        guard var list = state.outstanding[event.fileID] else { return }
        let start = event.offset, end = event.offset &+ max(event.length, 1)
        var covered = false
        list.removeAll { entry in
            let hit = tally.candidate.scope == .opens || (entry.offset < end && start < entry.end)
            guard hit else { return false }
            covered = true
            state.outstandingCount -= 1
            tally.score.useful += 1
            tally.leadSteps.record(UInt64(state.step - entry.step))
            tally.leadTime.record(event.monotonicNanoseconds &- entry.time)
            return true
        }
        state.outstanding[event.fileID] = list.isEmpty ? nil : list
        if covered { tally.score.covered += 1 }
        tally.outstandingSum += state.outstandingCount
    }

    private func record(_ made: [Prediction], event: TraceEvent, tally: Tally, state: inout StreamState) {
        state.lastTop = nil
        for prediction in made where prediction.confidence >= options.confidenceThreshold {
            if state.lastTop == nil { state.lastTop = prediction.fileID }
            let end = prediction.length == 0 ? UInt64.max : prediction.offset &+ prediction.length
            var list = state.outstanding[prediction.fileID] ?? []
            // A file (or range) already outstanding is not issued twice, as the scheduler de-duplicates.
            let duplicate = list.contains { tally.candidate.scope == .opens || ($0.offset == prediction.offset && $0.end == end) }
            if duplicate { continue }
            list.append(Outstanding(step: state.step, time: event.monotonicNanoseconds, offset: prediction.offset, end: end))
            state.outstanding[prediction.fileID] = list
            state.order.append((prediction.fileID, state.step))
            state.outstandingCount += 1
            tally.score.issued += 1
        }
    }

    /// The scores so far, in the order the candidates were given.
    public func scores() -> [PredictorScore] {
        tallies.map { tally in
            var score = tally.score
            score.leadAccessesP50 = tally.leadSteps.count == 0 ? 0 : Double(tally.leadSteps.percentile(50))
            score.leadSecondsP50 = Double(tally.leadTime.percentile(50)) / 1e9
            score.nanosecondsPerAccess = score.accesses == 0 ? 0 : Double(tally.nanoseconds) / Double(score.accesses)
            score.meanOutstanding = score.accesses == 0 ? 0 : Double(tally.outstandingSum) / Double(score.accesses)
            return score
        }
    }
}

/// How one predictor did on a trace.
public struct PredictorScore: Sendable, Codable, Equatable {
    public var name: String
    public var scope: OfflineEvaluation.Scope
    /// Accesses scored (opens, or reads and mmaps).
    public var accesses = 0
    /// Predictions issued (at or above the threshold, not already outstanding).
    public var issued = 0
    /// Issued predictions an access named within the window.
    public var useful = 0
    /// Accesses some outstanding prediction had named.
    public var covered = 0
    /// Opens where a top prediction existed, and how often it was exactly the next file.
    public var topOneMade = 0
    public var topOneHits = 0
    public var leadAccessesP50 = 0.0
    public var leadSecondsP50 = 0.0
    public var nanosecondsPerAccess = 0.0
    /// Predictions outstanding per access, on average: what the cache must hold for them.
    public var meanOutstanding = 0.0

    public init(name: String, scope: OfflineEvaluation.Scope) {
        self.name = name
        self.scope = scope
    }

    /// useful ÷ issued.
    public var accuracy: Double { issued == 0 ? 0 : Double(useful) / Double(issued) }
    /// covered ÷ accesses.
    public var coverage: Double { accesses == 0 ? 0 : Double(covered) / Double(accesses) }
    /// The top prediction was the next file, ÷ opens that had one.
    public var topOneAccuracy: Double { topOneMade == 0 ? 0 : Double(topOneHits) / Double(topOneMade) }

    enum CodingKeys: String, CodingKey {
        case name, scope, accesses, issued, useful, covered, topOneMade, topOneHits, leadAccessesP50, leadSecondsP50, nanosecondsPerAccess, meanOutstanding
        case accuracy, coverage, topOneAccuracy
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(scope, forKey: .scope)
        try container.encode(accesses, forKey: .accesses)
        try container.encode(issued, forKey: .issued)
        try container.encode(useful, forKey: .useful)
        try container.encode(covered, forKey: .covered)
        try container.encode(topOneMade, forKey: .topOneMade)
        try container.encode(topOneHits, forKey: .topOneHits)
        try container.encode(leadAccessesP50, forKey: .leadAccessesP50)
        try container.encode(leadSecondsP50, forKey: .leadSecondsP50)
        try container.encode(nanosecondsPerAccess, forKey: .nanosecondsPerAccess)
        try container.encode(meanOutstanding, forKey: .meanOutstanding)
        try container.encode(accuracy, forKey: .accuracy)
        try container.encode(coverage, forKey: .coverage)
        try container.encode(topOneAccuracy, forKey: .topOneAccuracy)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        scope = try container.decode(OfflineEvaluation.Scope.self, forKey: .scope)
        accesses = try container.decode(Int.self, forKey: .accesses)
        issued = try container.decode(Int.self, forKey: .issued)
        useful = try container.decode(Int.self, forKey: .useful)
        covered = try container.decode(Int.self, forKey: .covered)
        topOneMade = try container.decode(Int.self, forKey: .topOneMade)
        topOneHits = try container.decode(Int.self, forKey: .topOneHits)
        leadAccessesP50 = try container.decode(Double.self, forKey: .leadAccessesP50)
        leadSecondsP50 = try container.decode(Double.self, forKey: .leadSecondsP50)
        nanosecondsPerAccess = try container.decode(Double.self, forKey: .nanosecondsPerAccess)
        meanOutstanding = try container.decode(Double.self, forKey: .meanOutstanding)
    }
}
