import GoFetchEvents
import GoFetchStore
import GoFetchSystem

/// Fits a ``GRUModel`` to stored opens: a vocabulary of the most frequent moves,
/// then epochs of truncated backpropagation through time with Adam, scored on a
/// held-out tail of every stream after each epoch, stopping when that score stops
/// improving and keeping the best epoch's weights. Deterministic for a seed.
public enum GRUTraining {
    public struct Options: Sendable, Equatable {
        public var hyperparameters = GRUModel.Hyperparameters()
        /// Passes over the training steps, at most.
        public var epochs = 30
        /// Epochs without a better validation loss before stopping.
        public var patience = 3
        /// The last fraction of each stream's opens held out for validation (streams under 10 opens are not split).
        public var validationFraction = 0.1
        public var learningRate: Float = 0.005
        /// Global gradient norm above which a gradient is scaled down.
        public var clipNorm: Float = 5
        /// Steps backpropagated through (the state carries on across windows).
        public var window = 32
        /// Stretches of the trace trained side by side, at most (fewer when the trace is short, so an epoch has at least 16 updates).
        public var batch = 32
        public var seed: UInt64 = 42
        public var backend = MatrixBackend.blas
        /// How moves into another folder are named; `nil`: whichever covers more of the trace.
        public var crossing: TransitionVocabulary.Crossing?

        public init() {}
    }

    /// Where training is, for a progress bar.
    public struct Progress: Sendable {
        public var epoch: Int
        public var epochs: Int
        /// Done of this epoch, 0…1.
        public var fraction: Double
        /// Mean training loss of this epoch so far.
        public var loss: Double
        /// The last finished epoch, once there is one.
        public var last: Epoch?
    }

    public struct Epoch: Sendable, Codable, Equatable {
        public var epoch: Int
        public var trainingLoss: Double
        /// Top-1 next-file accuracy: the most probable move (other than "other") was the one made.
        public var trainingAccuracy: Double
        public var validationLoss: Double
        public var validationAccuracy: Double
        public var seconds: Double
    }

    public struct Report: Sendable, Codable, Equatable {
        public var opens: Int
        public var streams: Int
        /// Steps with a target, trained on and held out.
        public var trainingSteps: Int
        public var validationSteps: Int
        public var transitions: Int
        public var crossing: String
        /// Training targets that are a move of the vocabulary (the rest are "other"): the best accuracy possible.
        public var coverage: Double
        public var parameters: Int
        public var epochs: [Epoch]
        public var bestEpoch: Int
        public var stoppedEarly: Bool
        /// Forward, backward and update only.
        public var trainingSeconds: Double
        public var seconds: Double
        /// Training steps (forward + backward + update) per second.
        public var eventsPerSecond: Double
        public var backend: String

        /// The kept epoch's figures.
        public var best: Epoch? { epochs.first { $0.epoch == bestEpoch } }
    }

    /// Trains a model on `opens` (in the order they happened, any streams
    /// interleaved), placing files with `directories`.
    public static func train(
        opens: [StoredOpen], directories: DirectoryIndex, options: Options = Options(), progress: ((Progress) -> Void)? = nil
    ) -> (model: GRUModel, report: Report) {
        let start = Clock.monotonicNanoseconds()
        let sizes = options.hyperparameters
        let streams = Self.streams(opens)

        // Each stream's head trains, its tail validates.
        var stretches: [(training: ArraySlice<FileID>, validation: ArraySlice<FileID>)] = []
        for files in streams {
            let held = files.count >= 10 ? Int(Double(files.count) * options.validationFraction) : 0
            stretches.append((files[..<(files.count - held)], files[(files.count - held)...]))
        }
        var moves: [(from: DirectoryIndex.Location, to: DirectoryIndex.Location)] = []
        for stretch in stretches {
            var previous: DirectoryIndex.Location?
            for file in stretch.training {
                let location = directories.location(of: file)
                if let previous, let location { moves.append((previous, location)) }
                previous = location
            }
        }
        let vocabulary = TransitionVocabulary.build(moves: moves, size: sizes.transitions, crossing: options.crossing)
        var training = GRUSequences(), validation = GRUSequences()
        for stretch in stretches {
            training.append(stretch.training, after: nil, directories: directories, vocabulary: vocabulary, hashBuckets: sizes.hashBuckets)
            if !stretch.validation.isEmpty {
                validation.append(stretch.validation, after: stretch.training.last, directories: directories, vocabulary: vocabulary, hashBuckets: sizes.hashBuckets)
            }
        }

        var model = GRUModel(hyperparameters: sizes, vocabulary: vocabulary, seed: options.seed)
        var adam = AdamOptimizer(parameterCount: model.parameters.count, learningRate: options.learningRate, clipNorm: options.clipNorm)
        var gradients = [Float](repeating: 0, count: model.parameters.count)
        let window = max(1, options.window)
        let lanes = max(1, min(options.batch, training.count / (window * 16)))
        let laneLength = (training.count + lanes - 1) / lanes
        let windows = (laneLength + window - 1) / window
        let trainer = GRUWindow(model: model, lanes: lanes, length: window, backend: options.backend)
        let validationLanes = max(1, min(options.batch, validation.count / window))
        let validationLaneLength = (validation.count + validationLanes - 1) / validationLanes
        let validator = GRUWindow(model: model, lanes: validationLanes, length: window, backend: options.backend)

        var epochs: [Epoch] = []
        var best: (loss: Double, epoch: Int, parameters: [Float])?
        var trainingNanoseconds: UInt64 = 0
        var stepsTrained = 0
        var stoppedEarly = false
        for epoch in 1...max(1, options.epochs) {
            let epochStart = Clock.monotonicNanoseconds()
            var score = GRUWindow.Score()
            trainer.resetState()
            for number in 0..<windows {
                training.fill(trainer, window: number, laneLength: laneLength)
                model.parameters.withUnsafeBufferPointer { parameters in
                    score.add(trainer.forward(parameters.baseAddress!))
                    gradients.withUnsafeMutableBufferPointer { gradients in
                        gradients.update(repeating: 0)
                        trainer.backward(parameters.baseAddress!, into: gradients.baseAddress!)
                    }
                }
                adam.update(&model.parameters, gradients: gradients)
                progress?(Progress(epoch: epoch, epochs: options.epochs, fraction: Double(number + 1) / Double(windows), loss: score.meanLoss, last: epochs.last))
            }
            stepsTrained += training.count
            trainingNanoseconds += Clock.monotonicNanoseconds() - epochStart

            let held = validation.count > 0 ? Self.score(validation, with: model, in: validator, laneLength: validationLaneLength) : score
            epochs.append(Epoch(
                epoch: epoch, trainingLoss: score.meanLoss, trainingAccuracy: score.accuracy,
                validationLoss: held.meanLoss, validationAccuracy: held.accuracy,
                seconds: Double(Clock.monotonicNanoseconds() - epochStart) / 1e9))
            if best == nil || held.meanLoss < best!.loss - 1e-4 {
                best = (held.meanLoss, epoch, model.parameters)
            } else if epoch - best!.epoch >= options.patience {
                stoppedEarly = epoch < options.epochs
                break
            }
        }
        if let best { model.parameters = best.parameters }
        progress?(Progress(epoch: epochs.count, epochs: options.epochs, fraction: 1, loss: epochs.last?.trainingLoss ?? 0, last: epochs.last))

        let trainingSeconds = Double(trainingNanoseconds) / 1e9
        let targets = training.targetCount
        let report = Report(
            opens: opens.count, streams: streams.count, trainingSteps: targets, validationSteps: validation.targetCount,
            transitions: vocabulary.transitions.count, crossing: vocabulary.crossing.rawValue,
            coverage: targets == 0 ? 0 : Double(training.knownTargets(other: vocabulary.otherClass)) / Double(targets),
            parameters: model.parameters.count, epochs: epochs, bestEpoch: best?.epoch ?? 0, stoppedEarly: stoppedEarly,
            trainingSeconds: trainingSeconds, seconds: Double(Clock.monotonicNanoseconds() - start) / 1e9,
            eventsPerSecond: trainingSeconds > 0 ? Double(stepsTrained) / trainingSeconds : 0, backend: options.backend.rawValue)
        return (model, report)
    }

    /// Each stream's opens in order, streams in the order they first opened; a
    /// re-open of the file just opened is not a move and is dropped.
    static func streams(_ opens: [StoredOpen]) -> [[FileID]] {
        var indexOf: [StreamKey: Int] = [:]
        var streams: [[FileID]] = []
        for open in opens {
            let index = indexOf[open.stream] ?? {
                indexOf[open.stream] = streams.count
                streams.append([])
                return streams.count - 1
            }()
            if streams[index].last != open.file { streams[index].append(open.file) }
        }
        return streams
    }

    /// Loss and accuracy of `model` on `sequences`, forward only.
    static func score(_ sequences: GRUSequences, with model: GRUModel, in window: GRUWindow, laneLength: Int) -> GRUWindow.Score {
        var score = GRUWindow.Score()
        window.resetState()
        model.parameters.withUnsafeBufferPointer { parameters in
            for number in 0..<(laneLength + window.length - 1) / window.length {
                sequences.fill(window, window: number, laneLength: laneLength)
                score.add(window.forward(parameters.baseAddress!))
            }
        }
        return score
    }
}
