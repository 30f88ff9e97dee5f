import GoFetchStore
import GoFetchSystem

/// Fits a Markov predictor from the stored traces.
public enum MarkovTraining {
    public struct Report: Sendable, Codable {
        public var opens: Int
        public var transitions: Int
        public var contexts: Int
        public var contextsEvicted: Int
        public var seconds: Double
    }

    /// Replays every stored open, in order, per stream (``TraceStore/forEachOpen(runID:_:)``).
    public static func train(_ markov: MarkovPredictor, from store: TraceStore, runID: Int64? = nil, progress: ((Int) -> Void)? = nil) throws(TraceStoreError) -> Report {
        let start = Clock.monotonicNanoseconds()
        var opens = 0
        try store.forEachOpen(runID: runID) { open in
            markov.observe(file: open.file, stream: open.stream)
            opens += 1
            if opens % 1_000_000 == 0 { progress?(opens) }
        }
        return Report(
            opens: opens, transitions: markov.transitionsLearned, contexts: markov.contextCount,
            contextsEvicted: markov.contextsEvicted, seconds: Double(Clock.monotonicNanoseconds() - start) / 1e9)
    }
}
