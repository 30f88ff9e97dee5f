import GoFetchEvents

/// "What comes next, how sure, how many bytes, by when."
public struct Prediction: Sendable, Hashable {
    public var fileID: FileID
    /// First byte to warm.
    public var offset: UInt64
    /// Bytes to warm from `offset`; 0 means to the end of the file (the scheduler caps it).
    public var length: UInt64
    /// 0…1: the observed probability, or the predictor's measured accuracy.
    public var confidence: Double
    /// `CLOCK_MONOTONIC` ns by which the job is expected to read it; `nil` when unknown.
    /// The data-set tree's give their rank instead (``DataSetTree``): the scheduler
    /// compares them only with each other.
    public var deadline: UInt64?
    public var predictor: PredictorKind

    public init(fileID: FileID, offset: UInt64 = 0, length: UInt64 = 0, confidence: Double, deadline: UInt64? = nil, predictor: PredictorKind) {
        self.fileID = fileID
        self.offset = offset
        self.length = length
        self.confidence = confidence
        self.deadline = deadline
        self.predictor = predictor
    }

    /// The most one prefetch request reads: the scheduler sends a larger range in
    /// pieces of this, and the data-set tree and the pattern detector hand out large
    /// ranges in pieces of it. Then several I/O threads carry one stream, the reads at
    /// the storage at once are next to each other, and a request for what the job
    /// needs sooner waits behind one piece, not behind a whole range.
    public static let pieceBytes: UInt64 = 1 << 20
}

/// The interface every predictor implements. Predictors are fed live from ingest,
/// one event at a time, on one thread; they are not thread-safe.
public protocol Predictor: AnyObject {
    var kind: PredictorKind { get }

    /// Learns from one access.
    func observe(_ event: TraceEvent)

    /// What the stream of `event` will read next, best first, at most `limit`.
    /// Call after ``observe(_:)`` for the same event.
    func predict(after event: TraceEvent, limit: Int) -> [Prediction]
}
