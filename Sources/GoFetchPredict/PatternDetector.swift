import GoFetchConfig
import GoFetchEvents

/// The access pattern of one reader in one file (the second seed's patterns).
public enum AccessPattern: String, Sendable, CaseIterable, Codable {
    case random
    case sequential
    /// Fixed distance between successive reads, detected from several past offsets.
    case strided
    /// Reads out of order inside a window that moves forward (several threads, or a batch of records).
    case batch
    /// The reader went back to the start of a file it had read through: a new epoch.
    case epoch
    /// A checkpoint or model file being loaded: sequential, large.
    case model
}

/// Intra-file pattern detector for large files (shards, TFRecord, HDF5, LMDB,
/// checkpoints): per reader and file it finds the pattern, a confidence, and the
/// next byte ranges to warm, sized from the observed read rate.
public final class PatternDetector: Predictor {
    public struct Options: Sendable, Equatable {
        /// Files smaller than this are left to the file-level predictors.
        public var minFileSize: UInt64 = 1 << 20
        /// Sequential reads in a row before the pattern counts.
        public var sequentialThreshold = 3
        /// A gap up to this is still sequential.
        public var maxGap: UInt64 = 64 << 10
        /// Equal strides in a row before a stride counts.
        public var stridedMinRepeats = 3
        /// How far ahead of the reader to warm, in seconds of its observed read rate.
        public var lookaheadSeconds = 0.5
        public var minPrefetch: UInt64 = 256 << 10
        public var maxPrefetch: UInt64 = 64 << 20
        /// A sequential range to warm goes out in pieces of at most this, each with the
        /// time the reader reaches it as its deadline: the scheduler then serves several
        /// streams in the order they need their bytes, not one stream's whole range first.
        public var pieceBytes = Prediction.pieceBytes
        /// Readers tracked at once; the least recently used goes first, counted.
        public var maxTracked = 100_000

        public init() {}
    }

    struct Read {
        var offset: UInt64
        var length: UInt64
        /// When the read started, and how long the reader waited in it (0: not measured).
        var time: UInt64
        var duration: UInt64 = 0
    }

    struct State {
        var size: UInt64
        var isModelFile: Bool
        var recent: [Read] = []  // newest last, at most 8
        var consecutiveSequential = 0
        var pattern = AccessPattern.random
        var confidence = 0.0
        var stride: Int64 = 0
        var highestEnd: UInt64 = 0
        var bytesPerSecond = 0.0
        /// Warmed (predicted) up to here already; refilled when the reader gets halfway.
        var aheadUntil: UInt64 = 0
        var lastUsed: UInt64 = 0
    }

    struct Key: Hashable {
        var file: FileID
        var pid: UInt32
    }

    public let kind = PredictorKind.pattern
    public let options: Options
    private var states: [Key: State] = [:]
    private var tick: UInt64 = 0
    public private(set) var evicted = 0
    public private(set) var patternCounts: [AccessPattern: Int] = [:]

    static let modelExtensions: Set<String> = ["pt", "pth", "ckpt", "safetensors", "h5", "hdf5", "onnx", "pb", "pkl", "tflite", "caffemodel", "gguf"]

    /// Names of files by id, so model files are known by their extension.
    private let pathOf: (FileID) -> String?

    public init(options: Options = Options(), pathOf: @escaping (FileID) -> String? = { _ in nil }) {
        self.options = options
        self.pathOf = pathOf
    }

    /// The current pattern of a reader in a file, for tests and `eval`.
    public func pattern(file: FileID, pid: UInt32) -> (AccessPattern, Double, stride: Int64)? {
        states[Key(file: file, pid: pid)].map { ($0.pattern, $0.confidence, $0.stride) }
    }

    /// Registers a file's size and whether its name says it is a model (call on open).
    public func opened(file: FileID, pid: UInt32, size: UInt64, path: String?) {
        // Sizes and offsets are client data: bounded here, all later sums stay far from overflow.
        let size = min(size, 1 << 62)
        let key = Key(file: file, pid: pid)
        tick += 1
        if var state = states[key] {
            state.size = size
            state.lastUsed = tick
            states[key] = state
            return
        }
        guard size >= options.minFileSize else { return }
        if states.count >= options.maxTracked { evictOldest() }
        let ext = path.flatMap { $0.split(separator: ".").last.map { $0.lowercased() } } ?? ""
        states[key] = State(size: size, isModelFile: Self.modelExtensions.contains(ext), lastUsed: tick)
    }

    public func observe(_ event: TraceEvent) {
        switch event.kind {
        case .open:
            // The path only names a new large file's kind (model or not): not looked up for the rest.
            let path = event.length >= options.minFileSize ? pathOf(event.fileID) : nil
            opened(file: event.fileID, pid: event.pid, size: event.length, path: path)
        case .read, .mmap:
            record(file: event.fileID, pid: event.pid, offset: event.offset, length: event.length,
                   time: event.monotonicNanoseconds, duration: UInt64(event.durationNanoseconds))
        case .close, .epoch, .lookahead:
            break
        }
    }

    /// Learns one read of `length` bytes at `offset`, started at `time` and waited in
    /// for `duration` nanoseconds (0 where the trace source does not measure it).
    public func record(file: FileID, pid: UInt32, offset: UInt64, length: UInt64, time: UInt64, duration: UInt64 = 0) {
        // Offset 2^64-1 means the source could not tell; a read past the end teaches nothing.
        guard length > 0, offset != .max, let index = states.index(forKey: Key(file: file, pid: pid)),
              offset < states.values[index].size else { return }
        tick += 1
        // In place in the table: a copy out and back would copy the reads' list at every read.
        learn(&states.values[index], offset: offset, length: length, time: time, duration: duration)
        patternCounts[states.values[index].pattern, default: 0] += 1
    }

    private func learn(_ state: inout State, offset: UInt64, length: UInt64, time: UInt64, duration: UInt64) {
        let length = min(length, state.size - offset)
        state.lastUsed = tick
        let previous = state.recent.last
        state.recent.append(Read(offset: offset, length: length, time: time, duration: duration))
        if state.recent.count > 8 { state.recent.removeFirst() }

        if let previous {
            let previousEnd = previous.offset + previous.length
            // The rate the reader uses bytes at over the last reads (up to 8): it sizes
            // how far ahead to warm and dates each piece. Over several reads, not from
            // one to the next: a reader that waits on storage for one read finds the
            // next few cached a fraction of a millisecond apart, which alone say
            // gigabytes a second. And without the time it waited in its reads: a reader
            // that reads cold looks slow by its reads' times alone, so its pieces would
            // be dated late and go after a warm reader's, and it would stay cold (two
            // loader workers streaming two shards on a capped link: one ran ahead on
            // prefetch, the other read cold the whole epoch).
            if let first = state.recent.first, time > first.time {
                let bytes = state.recent.dropFirst().reduce(0) { $0 + $1.length }
                let elapsed = time - first.time
                let waited = state.recent.dropLast().reduce(0) { $0 + $1.duration }
                // At least a hundredth of the time: a reader that did nothing but wait (cat)
                // would use bytes as fast as they come, and its rate stays finite.
                let using = max(elapsed / 100, elapsed - min(elapsed, waited))
                state.bytesPerSecond = Double(bytes) / (Double(using) / 1e9)
            }
            if offset < previous.offset && offset <= options.maxGap && state.highestEnd >= state.size - min(state.size, options.maxGap + length) {
                // Back to the start after reading to the end: a new pass over the file.
                state.pattern = .epoch
                state.confidence = 0.8
                state.consecutiveSequential = 0
                state.aheadUntil = 0
                state.highestEnd = offset + length
                state.recent = [Read(offset: offset, length: length, time: time, duration: duration)]
            } else if detectStride(&state) {
                // Equal gaps, even small ones, are a stride rather than "nearly sequential".
                state.consecutiveSequential = 0
            } else if offset >= previousEnd && offset - previousEnd <= options.maxGap {
                state.consecutiveSequential += 1
                if state.consecutiveSequential >= options.sequentialThreshold {
                    let isModel = state.isModelFile || length >= 1 << 20
                    state.pattern = isModel ? .model : .sequential
                    state.confidence = min(0.99, 0.5 + 0.1 * Double(state.consecutiveSequential))
                } else if state.pattern == .epoch {
                    state.confidence = 0.8
                }
            } else {
                state.consecutiveSequential = 0
                detectBatch(&state)
            }
        }
        state.highestEnd = max(state.highestEnd, offset + length)
    }

    /// A stride is several equal distances between successive reads, each leaving a
    /// gap (not one gap: the seed's detector guessed from a single one).
    private func detectStride(_ state: inout State) -> Bool {
        let needed = options.stridedMinRepeats
        guard state.recent.count > needed else { return false }
        let tail = state.recent.suffix(needed + 1)
        let offsets = tail.map { Int64($0.offset) }
        let deltas = zip(offsets.dropFirst(), offsets).map { $0 - $1 }
        guard let stride = deltas.first, stride != 0, deltas.allSatisfy({ $0 == stride }),
              stride < 0 || UInt64(stride) > tail.last!.length
        else { return false }
        state.pattern = .strided
        state.stride = stride
        state.confidence = min(0.95, 0.6 + 0.1 * Double(state.recent.count - needed))
        return true
    }

    /// A batch is out-of-order reads that tile a window moving forward.
    private func detectBatch(_ state: inout State) {
        let reads = state.recent
        if reads.count >= 4 {
            let sorted = reads.sorted { $0.offset < $1.offset }
            let tiles = zip(sorted.dropFirst(), sorted).allSatisfy { next, before in
                next.offset >= before.offset && next.offset <= before.offset + before.length + options.maxGap
            }
            let inOrder = zip(reads.dropFirst(), reads).allSatisfy { $0.offset >= $1.offset }
            if tiles && !inOrder {
                state.pattern = .batch
                state.confidence = 0.7
                return
            }
        }
        if state.pattern != .epoch {
            state.pattern = .random
            state.confidence = 0.3
        }
    }

    public func predict(after event: TraceEvent, limit: Int) -> [Prediction] {
        predict(file: event.fileID, pid: event.pid, limit: limit)
    }

    /// The next ranges to warm for a reader, if its pattern is clear and the window needs a refill.
    public func predict(file: FileID, pid: UInt32, limit: Int) -> [Prediction] {
        let key = Key(file: file, pid: pid)
        guard limit > 0, var state = states[key], let last = state.recent.last else { return [] }
        let window = prefetchSize(state)
        var ranges: [(UInt64, UInt64)] = []
        switch state.pattern {
        case .sequential, .model, .epoch, .batch:
            let position = state.pattern == .batch ? state.highestEnd : last.offset + last.length
            let start = max(position, state.aheadUntil)
            // Refill once the reader has used half of what was warmed ahead of it.
            guard state.aheadUntil <= position + window / 2, start < state.size else { return [] }
            let end = min(state.size, position + window)
            guard end > start else { return [] }
            let piece = max(1, options.pieceBytes)
            var offset = start
            while offset < end {
                ranges.append((offset, min(piece, end - offset)))
                offset += piece
            }
            state.aheadUntil = end
        case .strided:
            var offset = Int64(last.offset)
            var budget = Int64(window)
            while ranges.count < limit && budget > 0 {
                offset += state.stride
                guard offset >= 0, UInt64(offset) < state.size else { break }
                if UInt64(offset) + last.length > state.aheadUntil || state.stride < 0 {
                    ranges.append((UInt64(offset), min(last.length, state.size - UInt64(offset))))
                }
                budget -= Int64(last.length)
            }
            if let furthest = ranges.map({ $0.0 + $0.1 }).max() { state.aheadUntil = max(state.aheadUntil, furthest) }
        case .random:
            return []
        }
        states[key] = state
        let rate = max(state.bytesPerSecond, 1)
        // A sequential range is one prediction in pieces: `limit` counts strides.
        return (state.pattern == .strided ? Array(ranges.prefix(limit)) : ranges).map { offset, length in
            let secondsAway = Double(offset > last.offset ? offset - last.offset : 0) / rate
            return Prediction(
                fileID: file, offset: offset, length: length, confidence: state.confidence,
                deadline: last.time &+ UInt64(min(secondsAway, 3600) * 1e9), predictor: .pattern)
        }
    }

    /// Bytes to keep warm ahead of the reader: its rate × the lookahead, clamped.
    func prefetchSize(_ state: State) -> UInt64 {
        let wanted = UInt64(min(state.bytesPerSecond * options.lookaheadSeconds, Double(options.maxPrefetch)))
        let floor = state.pattern == .model ? options.maxPrefetch / 4 : options.minPrefetch
        return min(options.maxPrefetch, max(floor, wanted))
    }

    private func evictOldest() {
        let drop = max(1, states.count / 10)
        let cutoff = states.values.map(\.lastUsed).sorted()[drop - 1]
        let before = states.count
        states = states.filter { $0.value.lastUsed > cutoff }
        evicted += before - states.count
    }
}

extension PatternDetector.Options {
    /// The detector's thresholds from `predictor.pattern` in config.
    public init(_ configuration: Configuration) {
        self.init()
        let predictor = configuration.predictor
        minFileSize = UInt64(predictor.patternMinFileSizeMB * 1_048_576)
        sequentialThreshold = predictor.patternSequentialThreshold
        maxGap = UInt64(predictor.patternMaxGapKB * 1024)
        stridedMinRepeats = predictor.patternStridedMinRepeats
        lookaheadSeconds = predictor.patternLookaheadSeconds
    }
}
