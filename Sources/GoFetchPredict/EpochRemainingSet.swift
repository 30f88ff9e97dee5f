import GoFetchEvents

/// The epoch-aware remaining set: in an epoch every file of the data set that has
/// not been read yet will be read before the epoch ends, whatever the order.
///
/// The data set is learned as the files read in an epoch. Epoch boundaries come from
/// the Python hook's epoch tag when events carry one, else from repetition: files
/// already read this epoch being opened again. Within an epoch it predicts the data
/// set minus what was read, each file once (it never re-predicts what it already
/// handed out or what was read).
public final class EpochRemainingSet: Predictor {
    public struct Options: Sendable, Equatable {
        /// Re-opens of already-read files in a row that mark a new epoch (no tag).
        public var repeatsForBoundary = 3
        /// Files remembered as the data set, at most.
        public var maxFiles = 2_000_000

        public init(repeatsForBoundary: Int = 3, maxFiles: Int = 2_000_000) {
            self.repeatsForBoundary = repeatsForBoundary
            self.maxFiles = maxFiles
        }
    }

    public let kind = PredictorKind.remainingSet
    public let options: Options
    /// Files of the last completed epoch, in the order first seen.
    public private(set) var dataSet: [FileID] = []
    private var dataSetMembers: Set<FileID> = []
    public private(set) var readThisEpoch: Set<FileID> = []
    /// Files of the data set read this epoch (kept as a count: this is asked on every open).
    private var readMembers = 0
    private var readOrder: [FileID] = []
    private var handedOut: Set<FileID> = []
    private var cursor = 0
    private var repeatsInRow = 0
    private var recentRepeats: [FileID] = []
    private var currentTag: UInt32?
    /// The last epoch tag of each job (its workers' parent), at most 4,096 jobs.
    private var tagsByJob: [UInt32: UInt32] = [:]
    public private(set) var epochsCompleted = 0
    /// How much of the previous data set the last completed epoch read again (1 = all).
    public private(set) var lastCoverage = 0.0
    public private(set) var overflowed = 0

    public init(options: Options = Options()) {
        self.options = options
    }

    public func observe(_ event: TraceEvent) {
        guard event.kind == .open else { return }
        if let tag = event.epoch {
            // A job's tag moving on ends the epoch, once: its workers (one parent) move
            // together, and another job's tags, interleaved, are not a boundary (that
            // flipped the epoch, an O(data set) step, on every open of two tagged jobs).
            let job = event.parentPID == 0 ? event.pid : event.parentPID
            if tagsByJob.count >= 4_096 && tagsByJob[job] == nil { tagsByJob.removeAll(keepingCapacity: true) }
            let previous = tagsByJob.updateValue(tag, forKey: job) ?? currentTag
            if let previous, previous != tag { endEpoch(keeping: []) }
            currentTag = tag
            markRead(event.fileID)
            return
        }
        if readThisEpoch.contains(event.fileID) {
            repeatsInRow += 1
            recentRepeats.append(event.fileID)
            if repeatsInRow >= options.repeatsForBoundary {
                endEpoch(keeping: recentRepeats)
            }
            return
        }
        repeatsInRow = 0
        recentRepeats.removeAll(keepingCapacity: true)
        markRead(event.fileID)
    }

    private func markRead(_ file: FileID) {
        guard readThisEpoch.count < options.maxFiles else {
            overflowed += 1
            return
        }
        if readThisEpoch.insert(file).inserted {
            readOrder.append(file)
            if dataSetMembers.contains(file) { readMembers += 1 }
        }
    }

    /// Starts a new epoch; `keeping` were already read in it.
    private func endEpoch(keeping: [FileID]) {
        if !dataSet.isEmpty {
            lastCoverage = Double(readThisEpoch.intersection(dataSetMembers).count) / Double(dataSet.count)
        } else {
            lastCoverage = 1
        }
        // The data set is what this epoch read, plus files of the last one it did not
        // reach (an epoch cut short by a repeat still belongs to the same data set).
        var next = readOrder
        for file in dataSet where !readThisEpoch.contains(file) && next.count < options.maxFiles { next.append(file) }
        dataSet = next
        dataSetMembers = Set(next)
        readThisEpoch = []
        readMembers = 0
        readOrder = []
        handedOut = []
        cursor = 0
        repeatsInRow = 0
        recentRepeats = []
        epochsCompleted += 1
        for file in keeping { markRead(file) }
    }

    /// Whether `file` is a data-set file not yet read this epoch (what this predictor bets on).
    public func expects(_ file: FileID) -> Bool {
        dataSetMembers.contains(file) && !readThisEpoch.contains(file)
    }

    /// Whether `file` is a data-set file this epoch has already read.
    public func consumed(_ file: FileID) -> Bool {
        dataSetMembers.contains(file) && readThisEpoch.contains(file)
    }

    /// Files of the data set not yet read in this epoch.
    public var remaining: Int { dataSet.count - readMembers }

    public func predict(after event: TraceEvent, limit: Int) -> [Prediction] {
        next(limit: limit)
    }

    /// The next `limit` unread, not yet handed out files of the data set.
    public func next(limit: Int) -> [Prediction] {
        guard limit > 0, !dataSet.isEmpty else { return [] }
        var predictions: [Prediction] = []
        let confidence = max(0.5, lastCoverage)
        while cursor < dataSet.count && predictions.count < limit {
            let file = dataSet[cursor]
            cursor += 1
            guard !readThisEpoch.contains(file), handedOut.insert(file).inserted else { continue }
            predictions.append(Prediction(fileID: file, confidence: confidence, predictor: .remainingSet))
        }
        return predictions
    }
}
