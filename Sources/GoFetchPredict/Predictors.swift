import Foundation
import GoFetchConfig
import GoFetchEvents
import Logging
import Synchronization

/// The live daemon's predictors, each built from the configuration, with the models
/// `gofetch train` saved (Markov, GRU) loaded here and nowhere else. A model that
/// does not load is said in the log; its predictor then learns from scratch (Markov)
/// or is left out (GRU).
public struct Predictors {
    public let markov: MarkovPredictor?
    public let remaining: EpochRemainingSet
    public let patterns: PatternDetector
    /// The GRU (`predictor.ml.enabled` with a trained model), inside the hybrid.
    public let gru: GRUPredictor?
    public let hybrid: HybridPredictor
    public let lookahead: LookaheadPredictor
    /// The folder tree the job reads from (``DataSetTree``).
    public let tree: DataSetTree
    /// File paths by id, shared with the pattern detector (it names model files by extension).
    public let paths: FilePaths

    /// - Parameters:
    ///   - knownFiles: the store's files; saved models name files by path, mapped to these ids.
    ///   - maxRequestBytes: the largest request the scheduler issues: the pattern
    ///     detector's window may not exceed it, or it would believe it is further ahead
    ///     than anything warmed.
    public init(configuration: Configuration, knownFiles: [FileRecord], maxRequestBytes: UInt64, logger: Logger) {
        let paths = FilePaths(Dictionary(knownFiles.map { ($0.id, $0.path) }, uniquingKeysWith: { a, _ in a }))
        self.paths = paths
        tree = DataSetTree(options: .init(maxFiles: min(1_000_000, configuration.ingest.maxFiles / 2)))
        remaining = EpochRemainingSet(options: .init(maxFiles: configuration.ingest.maxFiles))
        var patternOptions = PatternDetector.Options(configuration)
        patternOptions.maxPrefetch = min(patternOptions.maxPrefetch, maxRequestBytes)
        patternOptions.minPrefetch = min(patternOptions.minPrefetch, maxRequestBytes)
        patternOptions.pieceBytes = min(patternOptions.pieceBytes, maxRequestBytes)
        patterns = PatternDetector(options: patternOptions, pathOf: { paths.path($0) })
        lookahead = LookaheadPredictor(window: configuration.predictor.lookaheadWindow, maxFiles: configuration.ingest.maxFiles)

        var markov: MarkovPredictor?
        if configuration.predictor.baselineEnabled {
            let model = MarkovPredictor(options: .init(maxOrder: configuration.predictor.baselineMaxOrder))
            let path = configuration.predictor.baselineModelPath
            if FileManager.default.fileExists(atPath: path) {
                let ids = Dictionary(knownFiles.map { ($0.path, $0.id) }, uniquingKeysWith: { a, _ in a })
                do {
                    let loaded = try model.load(from: path) { ids[$0] }
                    logger.info("loaded Markov model", metadata: ["path": "\(path)", "contexts": "\(loaded.contexts)", "skipped": "\(loaded.skipped)"])
                } catch {
                    logger.warning("Markov model not loaded; learning from scratch", metadata: ["error": "\(error)"])
                }
            }
            markov = model
        }
        self.markov = markov

        var gru: GRUPredictor?
        if configuration.predictor.mlEnabled {
            let path = configuration.predictor.mlModelPath
            do {
                gru = try GRUPredictor(contentsOf: path, files: knownFiles)
                logger.info("loaded GRU model", metadata: ["path": "\(path)"])
            } catch {
                logger.warning("GRU not used: its model did not load (train one with `gofetch train --model gru`)", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
        self.gru = gru
        hybrid = HybridPredictor(markov: markov, remaining: remaining, gru: gru, markovDepth: 8)
    }
}

/// File paths by id, read by the pattern detector on the engine's thread and added to
/// as the catalog learns files.
public final class FilePaths: Sendable {
    private let paths: Mutex<[FileID: String]>

    public init(_ paths: [FileID: String]) { self.paths = Mutex(paths) }

    public func path(_ id: FileID) -> String? { paths.withLock { $0[id] } }

    public func add(_ records: [FileRecord]) { paths.withLock { for record in records { $0[record.id] = record.path } } }
}
