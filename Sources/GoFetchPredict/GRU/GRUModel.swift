/// A trained (or freshly initialised) GRU over access events: its sizes, its
/// output vocabulary and its weights, all `Float`s in one array.
///
/// The network, per open of a stream:
///
///     x  = [E_file[hash(path)] ; E_move[class of the move in] ; E_rem[bucket(files left)] ; E_idx[bucket(index)]]
///     r  = σ(W_r x + b_ir + U_r h + b_hr)
///     z  = σ(W_z x + b_iz + U_z h + b_hz)
///     n  = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn))
///     h' = (1 − z) ⊙ n + z ⊙ h
///     p  = softmax(V h' + c)  over the vocabulary's moves and "other"
///
/// (PyTorch's `nn.GRU` equations and gate order r, z, n.)
public struct GRUModel: Sendable {
    public struct Hyperparameters: Sendable, Equatable, Codable {
        /// Rows of the hashed file-embedding table (one more for unknown files).
        public var hashBuckets = 4_096
        /// Width of a file embedding; 0 leaves the file's identity out.
        public var fileEmbedding = 8
        /// Width of a move embedding.
        public var transitionEmbedding = 16
        /// Width of each of the two position embeddings (files left, index).
        public var positionEmbedding = 4
        /// Hidden state size.
        public var hidden = 64
        /// Most frequent moves kept as output classes ("other" comes on top).
        public var transitions = 63

        public init(hashBuckets: Int = 4_096, fileEmbedding: Int = 8, transitionEmbedding: Int = 16, positionEmbedding: Int = 4, hidden: Int = 64, transitions: Int = 63) {
            self.hashBuckets = hashBuckets
            self.fileEmbedding = fileEmbedding
            self.transitionEmbedding = transitionEmbedding
            self.positionEmbedding = positionEmbedding
            self.hidden = hidden
            self.transitions = transitions
        }

        /// Width of the GRU's input.
        public var inputWidth: Int { fileEmbedding + transitionEmbedding + 2 * positionEmbedding }
    }

    /// One named tensor's place in ``GRUModel/parameters``.
    public struct Tensor: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    /// Where each tensor lies in the flat parameter array.
    struct Layout: Sendable {
        let fileEmbedding, transitionEmbedding, remainingEmbedding, indexEmbedding: Tensor
        let inputWeight, hiddenWeight, inputBias, hiddenBias: Tensor
        let outputWeight, outputBias: Tensor
        let total: Int
        /// Offset and width of each embedding table, in the order x joins their rows.
        private let tables: [(offset: Int, width: Int)]

        init(_ sizes: Hyperparameters, classes: Int) {
            var offset = 0
            func tensor(_ name: String, _ shape: [Int]) -> Tensor {
                defer { offset += shape.reduce(1, *) }
                return Tensor(name: name, shape: shape, offset: offset)
            }
            let hidden = sizes.hidden
            fileEmbedding = tensor("embedding.file", [sizes.hashBuckets + 1, sizes.fileEmbedding])
            transitionEmbedding = tensor("embedding.transition", [classes + 1, sizes.transitionEmbedding])
            remainingEmbedding = tensor("embedding.remaining", [GRUInput.positionBuckets, sizes.positionEmbedding])
            indexEmbedding = tensor("embedding.index", [GRUInput.positionBuckets, sizes.positionEmbedding])
            inputWeight = tensor("gru.weight_ih", [3 * hidden, sizes.inputWidth])
            hiddenWeight = tensor("gru.weight_hh", [3 * hidden, hidden])
            inputBias = tensor("gru.bias_ih", [3 * hidden])
            hiddenBias = tensor("gru.bias_hh", [3 * hidden])
            outputWeight = tensor("output.weight", [classes, hidden])
            outputBias = tensor("output.bias", [classes])
            total = offset
            tables = [fileEmbedding, transitionEmbedding, remainingEmbedding, indexEmbedding].map { ($0.offset, $0.shape[1]) }
        }

        var all: [Tensor] {
            [fileEmbedding, transitionEmbedding, remainingEmbedding, indexEmbedding, inputWeight, hiddenWeight, inputBias, hiddenBias, outputWeight, outputBias]
        }

        /// The embedding tables in the order their rows are joined into x.
        var embeddings: [Tensor] { [fileEmbedding, transitionEmbedding, remainingEmbedding, indexEmbedding] }

        /// Writes x for `input`: its rows of the embedding tables, side by side.
        func gather(_ input: GRUInput, from parameters: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>) {
            var column = x
            for table in 0..<tables.count {
                let (offset, width) = tables[table]
                column.update(from: parameters + offset + Int(input[table]) * width, count: width)
                column += width
            }
        }

        /// Adds dx, the gradient at x, to the rows of the tables `input` took x from.
        func scatter(_ input: GRUInput, gradient dx: UnsafePointer<Float>, into gradients: UnsafeMutablePointer<Float>) {
            var column = dx
            for table in 0..<tables.count {
                let (offset, width) = tables[table]
                let destination = gradients + offset + Int(input[table]) * width
                for j in 0..<width { destination[j] += column[j] }
                column += width
            }
        }
    }

    public let hyperparameters: Hyperparameters
    public let vocabulary: TransitionVocabulary
    /// Every weight, tensor after tensor (see ``tensors``).
    public var parameters: [Float]
    let layout: Layout

    /// A new model, initialised from `seed` as PyTorch initialises a GRU: weights
    /// uniform in ±1/√hidden, biases 0, embeddings uniform in ±0.5.
    public init(hyperparameters: Hyperparameters, vocabulary: TransitionVocabulary, seed: UInt64) {
        self.hyperparameters = hyperparameters
        self.vocabulary = vocabulary
        layout = Layout(hyperparameters, classes: vocabulary.classCount)
        parameters = [Float](repeating: 0, count: layout.total)
        var generator = SplitMix64(seed: seed)
        let bound = 1 / Float(hyperparameters.hidden).squareRoot()
        for tensor in layout.embeddings {
            for i in tensor.offset..<tensor.offset + tensor.count { parameters[i] = generator.uniform(0.5) }
        }
        for tensor in [layout.inputWeight, layout.hiddenWeight, layout.outputWeight] {
            for i in tensor.offset..<tensor.offset + tensor.count { parameters[i] = generator.uniform(bound) }
        }
    }

    /// A model with the given weights (from a file); `nil` when their count does not fit the sizes.
    init?(hyperparameters: Hyperparameters, vocabulary: TransitionVocabulary, parameters: [Float]) {
        let layout = Layout(hyperparameters, classes: vocabulary.classCount)
        guard parameters.count == layout.total else { return nil }
        self.hyperparameters = hyperparameters
        self.vocabulary = vocabulary
        self.layout = layout
        self.parameters = parameters
    }

    /// The named tensors, in the order of ``parameters``.
    public var tensors: [Tensor] { layout.all }

    /// Output classes: the vocabulary's moves and "other".
    public var classCount: Int { vocabulary.classCount }
}
