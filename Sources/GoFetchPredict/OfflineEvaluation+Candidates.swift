import GoFetchConfig
import GoFetchEvents

extension OfflineEvaluation {
    /// gofetch's predictors as the daemon configures them: Markov of each order up to
    /// `predictor.baseline.max_order`, the epoch remaining set, the hybrid of the two
    /// (what the daemon uses for opens) and the intra-file pattern detector (reads).
    /// The lookahead is not replayable: the sampler's announcements are not stored.
    /// - Parameters:
    ///   - files: the store's files, for paths (model files, trained models) and sizes.
    ///   - markovModel: a model saved by `gofetch train`, loaded into every Markov candidate first.
    ///   - gruModel: a GRU saved by `gofetch train --model gru`: adds `gru` and a hybrid that uses it.
    ///     Its directory index is the store's files plus what their folders list on disk now.
    public static func standardCandidates(
        _ configuration: Configuration, files: [FileRecord], markovModel: String? = nil, gruModel: String? = nil
    ) throws(ModelFileError) -> [Candidate] {
        let paths = Dictionary(files.map { ($0.id, $0.path) }, uniquingKeysWith: { a, _ in a })
        let ids = Dictionary(files.map { ($0.path, $0.id) }, uniquingKeysWith: { a, _ in a })
        let markovBytes = try markovModel.map { path throws(ModelFileError) in try ModelFileError.read(path) }
        func markov(order: Int) throws(ModelFileError) -> MarkovPredictor {
            let predictor = MarkovPredictor(options: .init(maxOrder: order))
            if let markovModel, let markovBytes { try predictor.load(bytes: markovBytes, readFrom: markovModel) { ids[$0] } }
            return predictor
        }
        var candidates: [Candidate] = []
        let maxOrder = configuration.predictor.baselineMaxOrder
        for order in 1...maxOrder {
            candidates.append(Candidate(name: "markov-\(order)", predictor: try markov(order: order)))
        }
        let maxFiles = configuration.ingest.maxFiles
        candidates.append(Candidate(name: "remaining-set", predictor: EpochRemainingSet(options: .init(maxFiles: maxFiles))))
        let hybrid = HybridPredictor(
            markov: try markov(order: maxOrder), remaining: EpochRemainingSet(options: .init(maxFiles: maxFiles)), markovDepth: 8)
        candidates.append(Candidate(name: "hybrid", predictor: hybrid))
        if let gruModel {
            // One model and one index (eval only reads it) for both candidates; each keeps its own states.
            let model = try GRUModel.load(from: gruModel).model
            let directories = DirectoryIndex(files: files)
            directories.addListings()  // as `gofetch train` indexed them
            candidates.append(Candidate(name: "gru", predictor: GRUPredictor(model: model, directories: directories)))
            let withGRU = HybridPredictor(
                markov: try markov(order: maxOrder), remaining: EpochRemainingSet(options: .init(maxFiles: maxFiles)),
                gru: GRUPredictor(model: model, directories: directories), markovDepth: 8)
            candidates.append(Candidate(name: "hybrid+gru", predictor: withGRU))
        }
        let patterns = PatternDetector(options: PatternDetector.Options(configuration), pathOf: { paths[$0] })
        candidates.append(Candidate(name: "pattern", predictor: patterns, scope: .reads))
        return candidates
    }
}
