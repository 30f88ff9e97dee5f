import Foundation

extension GRUModel {
    static let formatName = "gofetch-gru"
    static let formatVersion = "1"

    /// The model as safetensors: each tensor under its PyTorch-like name, and in
    /// `__metadata__` what is needed to use it: the sizes (`hyperparameters`, JSON),
    /// the output moves (`transitions`, comma-separated, class order), how moves
    /// cross directories (`crossing`), the input's position buckets, plus `extra`
    /// (the training report, say).
    public func safeTensors(extra: [String: String] = [:]) -> SafeTensors {
        var metadata = extra
        metadata["format"] = Self.formatName
        metadata["version"] = Self.formatVersion
        metadata["hyperparameters"] = String(decoding: (try? Self.jsonEncoder.encode(hyperparameters)) ?? Data(), as: UTF8.self)
        metadata["transitions"] = vocabulary.transitions.map(\.description).joined(separator: ",")
        metadata["crossing"] = vocabulary.crossing.rawValue
        metadata["position_buckets"] = String(GRUInput.positionBuckets)
        let tensors = layout.all.map { SafeTensors.Tensor(name: $0.name, shape: $0.shape, values: Array(parameters[$0.offset..<$0.offset + $0.count])) }
        return SafeTensors(tensors: tensors, metadata: metadata)
    }

    /// Rebuilds a model from ``safeTensors(extra:)``'s output.
    public init(_ file: SafeTensors) throws(SafeTensors.FormatError) {
        let metadata = file.metadata
        guard metadata["format"] == Self.formatName else { throw SafeTensors.FormatError(problem: "not a gofetch GRU model (metadata format \(metadata["format"] ?? "missing"))") }
        guard metadata["version"] == Self.formatVersion else { throw SafeTensors.FormatError(problem: "GRU model version \(metadata["version"] ?? "missing"); this gofetch reads \(Self.formatVersion)") }
        guard metadata["position_buckets"] == String(GRUInput.positionBuckets) else { throw SafeTensors.FormatError(problem: "position buckets \(metadata["position_buckets"] ?? "missing"); this gofetch uses \(GRUInput.positionBuckets)") }
        guard let json = metadata["hyperparameters"], let sizes = try? JSONDecoder().decode(Hyperparameters.self, from: Data(json.utf8)),
              // Bounded before any size is multiplied or allocated: the file may be damaged.
              (1...1 << 24).contains(sizes.hashBuckets), (1...1 << 16).contains(sizes.hidden),
              [sizes.fileEmbedding, sizes.transitionEmbedding, sizes.positionEmbedding, sizes.transitions].allSatisfy({ (0...1 << 16).contains($0) })
        else { throw SafeTensors.FormatError(problem: "hyperparameters missing or out of range") }
        guard let crossing = metadata["crossing"].flatMap(TransitionVocabulary.Crossing.init(rawValue:)) else { throw SafeTensors.FormatError(problem: "crossing missing or unknown") }
        let listed = metadata["transitions"] ?? ""
        let transitions = listed.isEmpty ? [] : listed.split(separator: ",").map(Transition.init)
        guard !transitions.contains(nil) else { throw SafeTensors.FormatError(problem: "transitions list damaged") }
        let vocabulary = TransitionVocabulary(crossing: crossing, transitions: transitions.map { $0! })
        let layout = Layout(sizes, classes: vocabulary.classCount)
        guard layout.total <= file.tensors.reduce(0, { $0 + $1.values.count }) else {
            throw SafeTensors.FormatError(problem: "the hyperparameters need \(layout.total) weights; the file holds fewer")
        }
        var parameters = [Float](repeating: 0, count: layout.total)
        for tensor in layout.all {
            guard let stored = file[tensor.name], stored.shape == tensor.shape else {
                throw SafeTensors.FormatError(problem: "tensor \(tensor.name) missing or not of shape \(tensor.shape)")
            }
            parameters.replaceSubrange(tensor.offset..<tensor.offset + tensor.count, with: stored.values)
        }
        self.init(hyperparameters: sizes, vocabulary: vocabulary, parameters: parameters)!
    }

    /// Saves the model as safetensors at `path` (creating its folder).
    public func save(to path: String, extra: [String: String] = [:]) throws(ModelFileError) {
        try ModelFileError.write(safeTensors(extra: extra).encoded(), to: path)
    }

    /// Loads a model saved by ``save(to:extra:)``; returns its metadata too.
    public static func load(from path: String) throws(ModelFileError) -> (model: GRUModel, metadata: [String: String]) {
        let bytes = try ModelFileError.read(path)
        do {
            let file = try SafeTensors(decoding: bytes)
            return (try GRUModel(file), file.metadata)
        } catch {
            throw ModelFileError(path: path, problem: error.description)
        }
    }

    private static var jsonEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
