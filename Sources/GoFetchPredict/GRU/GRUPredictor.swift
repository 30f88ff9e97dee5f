import GoFetchEvents

/// The trained GRU, run live: one step per open of a stream, from a fixed-size
/// hidden state the stream keeps, then the most probable moves turned back into
/// files by the ``DirectoryIndex`` (so it predicts files the job has never opened,
/// which Markov cannot).
///
/// Cost is bounded: a step is three small matrix-vector products (input, state,
/// output), the same for any data set; ``observe(_:)-([TraceEvent])`` runs the
/// steps of many streams as matrix products. At most `maxStreams` states are kept
/// (the least recently used one is dropped, counted in ``streamsEvicted``).
public final class GRUPredictor: Predictor {
    public struct Options: Sendable, Equatable {
        /// Streams with a state, at most.
        public var maxStreams = 4_096
        /// Steps of many streams run together, at most.
        public var maxBatch = 64
        /// Steps a ``predict(stream:limit:depth:)`` path may run ahead, at most.
        public var maxDepth = 16
        public var backend = MatrixBackend.blas

        public init(maxStreams: Int = 4_096, maxBatch: Int = 64, maxDepth: Int = 16, backend: MatrixBackend = .blas) {
            self.maxStreams = maxStreams
            self.maxBatch = maxBatch
            self.maxDepth = maxDepth
            self.backend = backend
        }
    }

    struct StreamState {
        var slot: Int
        var last: FileID
        var lastUse: UInt64
    }

    public let kind = PredictorKind.gru
    public let model: GRUModel
    public let directories: DirectoryIndex
    public let options: Options
    private let cell: GRUCell
    private let output: GRUOutputLayer
    private var streams: [StreamKey: StreamState] = [:]
    private var freeSlots: [Int]
    private var tick: UInt64 = 0
    /// The batch being gathered by ``observe(_:)-([TraceEvent])``, and for each slot the
    /// number of the last wave it joined (a stream steps at most once a wave).
    private var wave: [(slot: Int, input: GRUInput)] = []
    private var waveOfSlot: [Int]
    private var waveNumber = 1
    public private(set) var streamsEvicted = 0
    /// Steps run (one per open that was not a re-open of the file just opened).
    public private(set) var steps = 0

    /// maxStreams × hidden states, then scratch for one batch.
    private let states: UnsafeMutablePointer<Float>
    /// Classes already ranked in ``nextFiles(state:after:limit:confidence:)``.
    private let considered: UnsafeMutablePointer<Bool>
    private let x, gx, gh, r, z, n, hPrevious, h, probabilities: UnsafeMutablePointer<Float>
    private let buffers: FloatBuffers

    /// A predictor running `model`, placing files with `directories` (keep it
    /// current with ``DirectoryIndex/add(id:path:)`` as the catalog learns files).
    public init(model: GRUModel, directories: DirectoryIndex, options: Options = Options()) {
        precondition(options.maxStreams > 0 && options.maxBatch > 0, "maxStreams and maxBatch must be positive")
        self.model = model
        self.directories = directories
        self.options = options
        let sizes = model.hyperparameters, hidden = sizes.hidden, batch = options.maxBatch
        cell = GRUCell(hidden: hidden, backend: options.backend)
        output = GRUOutputLayer(hidden: hidden, classes: model.classCount, backend: options.backend)
        freeSlots = Array((0..<options.maxStreams).reversed())
        waveOfSlot = Array(repeating: 0, count: options.maxStreams)
        let buffers = FloatBuffers()
        self.buffers = buffers
        states = buffers.make(options.maxStreams * hidden)
        x = buffers.make(batch * sizes.inputWidth)
        gx = buffers.make(batch * 3 * hidden)
        gh = buffers.make(batch * 3 * hidden)
        r = buffers.make(batch * hidden)
        z = buffers.make(batch * hidden)
        n = buffers.make(batch * hidden)
        hPrevious = buffers.make(batch * hidden)
        h = buffers.make(batch * hidden)
        probabilities = buffers.make(model.classCount)
        considered = .allocate(capacity: model.classCount)
        considered.initialize(repeating: false, count: model.classCount)
    }

    /// Loads the model saved at `path` (``GRUModel/save(to:extra:)``) and indexes `files`.
    public convenience init(contentsOf path: String, files: some Sequence<FileRecord>, options: Options = Options()) throws(ModelFileError) {
        self.init(model: try GRUModel.load(from: path).model, directories: DirectoryIndex(files: files), options: options)
    }

    deinit {
        considered.deallocate()
    }

    public var streamCount: Int { streams.count }

    // MARK: Observing

    public func observe(_ event: TraceEvent) {
        guard event.kind == .open else { return }
        observe(file: event.fileID, stream: StreamKey(event))
    }

    /// Runs one step: `stream` opened `file` next.
    public func observe(file: FileID, stream: StreamKey) {
        guard let (slot, input) = prepare(file: file, stream: stream) else { return }
        step([(slot, input)])
    }

    /// Runs the steps of `events` (opens; the rest are ignored), up to
    /// `maxBatch` streams at a time as one matrix product. A stream's opens keep
    /// their order. Same states as observing them one by one.
    public func observe(_ events: ArraySlice<TraceEvent>) {
        wave.removeAll(keepingCapacity: true)
        for event in events where event.kind == .open {
            let stream = StreamKey(event)
            // A new stream may take an evicted stream's slot: finish the wave first.
            if streams[stream] == nil && freeSlots.isEmpty && !wave.isEmpty { finishWave() }
            guard let (slot, input) = prepare(file: event.fileID, stream: stream) else { continue }
            if waveOfSlot[slot] == waveNumber || wave.count == options.maxBatch { finishWave() }
            wave.append((slot, input))
            waveOfSlot[slot] = waveNumber
        }
        if !wave.isEmpty { finishWave() }
    }

    public func observe(_ events: [TraceEvent]) { observe(events[...]) }

    private func finishWave() {
        step(wave)
        wave.removeAll(keepingCapacity: true)
        waveNumber &+= 1
    }

    /// Drops what a stream remembers (its process ended).
    public func forget(stream: StreamKey) {
        guard let state = streams.removeValue(forKey: stream) else { return }
        freeSlots.append(state.slot)
    }

    /// The stream's slot and the input of its next step, with its last file moved
    /// on; `nil` for a re-open of the file just opened (not a move).
    private func prepare(file: FileID, stream: StreamKey) -> (slot: Int, input: GRUInput)? {
        tick &+= 1
        let sizes = model.hyperparameters
        if var state = streams[stream] {
            guard state.last != file else { return nil }
            let input = GRUInput(previous: state.last, current: file, directories: directories, vocabulary: model.vocabulary, hashBuckets: sizes.hashBuckets)
            state.last = file
            state.lastUse = tick
            streams[stream] = state
            return (state.slot, input)
        }
        if freeSlots.isEmpty { evictLeastRecentlyUsed() }
        let slot = freeSlots.removeLast()
        (states + slot * sizes.hidden).update(repeating: 0, count: sizes.hidden)
        streams[stream] = StreamState(slot: slot, last: file, lastUse: tick)
        return (slot, GRUInput(previous: nil, current: file, directories: directories, vocabulary: model.vocabulary, hashBuckets: sizes.hashBuckets))
    }

    private func evictLeastRecentlyUsed() {
        guard let oldest = streams.min(by: { $0.value.lastUse < $1.value.lastUse })?.key else { return }
        forget(stream: oldest)
        streamsEvicted += 1
    }

    /// One GRU step for each (slot, input), all at once; each slot at most once.
    private func step(_ batch: [(slot: Int, input: GRUInput)]) {
        let hidden = model.hyperparameters.hidden, width = model.hyperparameters.inputWidth
        for (row, entry) in batch.enumerated() {
            gather(entry.input, into: x + row * width)
            (hPrevious + row * hidden).update(from: states + entry.slot * hidden, count: hidden)
        }
        advance(rows: batch.count)
        for (row, entry) in batch.enumerated() { (states + entry.slot * hidden).update(from: h + row * hidden, count: hidden) }
        steps += batch.count
    }

    private func gather(_ input: GRUInput, into row: UnsafeMutablePointer<Float>) {
        model.parameters.withUnsafeBufferPointer { model.layout.gather(input, from: $0.baseAddress!, into: row) }
    }

    /// h = GRU(x, hPrevious) for the first `rows` rows of the scratch buffers.
    private func advance(rows: Int) {
        model.parameters.withUnsafeBufferPointer { buffer in
            let parameters = buffer.baseAddress!, layout = model.layout
            cell.inputGates(rows: rows, input: model.hyperparameters.inputWidth, x: x, weight: parameters + layout.inputWeight.offset, bias: parameters + layout.inputBias.offset, gx: gx)
            cell.forward(
                batch: rows, gx: gx, hPrevious: hPrevious, weight: parameters + layout.hiddenWeight.offset, bias: parameters + layout.hiddenBias.offset,
                gh: gh, r: r, z: z, n: n, h: h)
        }
    }

    // MARK: Predicting

    public func predict(after event: TraceEvent, limit: Int) -> [Prediction] {
        guard event.kind == .open else { return [] }
        return predict(stream: StreamKey(event), limit: limit)
    }

    /// The `limit` most probable next files of `stream`, each with its move's
    /// probability as confidence; with `depth` > 1, the most probable path on from
    /// the best of them, each step's confidence the product of the probabilities so
    /// far (the state is run ahead on a copy; the stream's own is left alone).
    public func predict(stream: StreamKey, limit: Int, depth: Int = 1) -> [Prediction] {
        guard limit > 0, let state = streams[stream] else { return [] }
        let hidden = model.hyperparameters.hidden
        var predictions = nextFiles(state: UnsafePointer(states + state.slot * hidden), after: state.last, limit: limit, confidence: 1)
        guard depth > 1, var best = predictions.first else { return predictions }
        var seen = Set(predictions.map(\.fileID))
        var last = state.last
        hPrevious.update(from: states + state.slot * hidden, count: hidden)
        // Runs ahead in the scratch rows: hPrevious holds the path's state.
        for _ in 1..<min(depth, options.maxDepth) {
            gather(GRUInput(previous: last, current: best.fileID, directories: directories, vocabulary: model.vocabulary, hashBuckets: model.hyperparameters.hashBuckets), into: x)
            advance(rows: 1)
            hPrevious.update(from: h, count: hidden)
            guard let next = nextFiles(state: UnsafePointer(hPrevious), after: best.fileID, limit: 1, confidence: best.confidence).first,
                  seen.insert(next.fileID).inserted else { break }
            last = best.fileID
            best = next
            predictions.append(next)
        }
        return predictions
    }

    /// The class probabilities after `stream`'s last open (tests and evaluation).
    public func probabilities(stream: StreamKey) -> [Float]? {
        guard let state = streams[stream] else { return nil }
        computeProbabilities(state: UnsafePointer(states + state.slot * model.hyperparameters.hidden))
        return Array(UnsafeBufferPointer(start: probabilities, count: model.classCount))
    }

    /// The most probable moves from `state` that land on a known file, at most `limit`.
    private func nextFiles(state: UnsafePointer<Float>, after file: FileID, limit: Int, confidence: Double) -> [Prediction] {
        guard let here = directories.location(of: file) else { return [] }
        computeProbabilities(state: state)
        // Best first by repeated selection: `limit` is small, and sorting every class cost more.
        considered.update(repeating: false, count: model.classCount)
        considered[model.vocabulary.otherClass] = true
        var predictions: [Prediction] = []
        while predictions.count < limit {
            var move = -1
            for i in 0..<model.classCount where !considered[i] && (move < 0 || probabilities[i] > probabilities[move]) { move = i }
            guard move >= 0 else { break }
            considered[move] = true
            guard let destination = model.vocabulary.destination(of: move, from: here),
                  let next = directories.file(directory: destination.directory, index: destination.index), next != file else { continue }
            predictions.append(Prediction(fileID: next, confidence: confidence * Double(probabilities[move]), predictor: .gru))
        }
        return predictions
    }

    private func computeProbabilities(state: UnsafePointer<Float>) {
        model.parameters.withUnsafeBufferPointer { buffer in
            let parameters = buffer.baseAddress!
            output.forward(rows: 1, h: state, weight: parameters + model.layout.outputWeight.offset, bias: parameters + model.layout.outputBias.offset, probabilities: probabilities)
        }
    }
}
