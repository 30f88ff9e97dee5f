/// Which predictor made a prediction: carried by the request, the ledger and the figures.
public enum PredictorKind: String, Sendable, CaseIterable, Codable {
    case markov
    case pattern
    case remainingSet = "remaining-set"
    case lookahead
    case gru
    case dataSetTree = "data-set-tree"
}
