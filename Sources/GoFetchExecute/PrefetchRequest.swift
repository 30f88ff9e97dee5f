import GoFetchEvents

/// One range of one file to warm (or a file's pages to give back), on behalf of one client.
public struct PrefetchRequest: Sendable, Hashable {
    public enum Purpose: Sendable, Hashable {
        /// Load the range into the page cache.
        case warm
        /// Drop the file's cached pages: the epoch has read it and the data set does not fit.
        case giveBack
    }

    public var purpose = Purpose.warm
    /// The one request of a whole file (from its start to the size the scheduler knew).
    public var wholeFile = false
    public var fileID: FileID
    public var path: String
    /// The client's uid and gid: the executor reads only what they could read.
    public var uid: UInt32
    public var gid: UInt32
    /// The client's supplementary groups (besides `gid`), as far as known.
    public var groups: [UInt32]
    public var offset: UInt64
    public var length: UInt64
    public var confidence: Double
    public var deadline: UInt64?
    public var predictor: PredictorKind
    /// `CLOCK_MONOTONIC` ns when the scheduler accepted it.
    public var queuedAt: UInt64

    public init(
        fileID: FileID, path: String, uid: UInt32, gid: UInt32, groups: [UInt32] = [], offset: UInt64, length: UInt64,
        confidence: Double, deadline: UInt64?, predictor: PredictorKind, queuedAt: UInt64
    ) {
        self.groups = groups
        self.fileID = fileID
        self.path = path
        self.uid = uid
        self.gid = gid
        self.offset = offset
        self.length = length
        self.confidence = confidence
        self.deadline = deadline
        self.predictor = predictor
        self.queuedAt = queuedAt
    }
}

/// What became of a prefetch request in the executor.
public enum PrefetchOutcome: String, Sendable, Codable, CaseIterable {
    /// Pages were loaded (verified with cachestat where the method is a hint).
    case completed
    /// Already resident: nothing read.
    case skipped
    /// The client may not read the file: nothing read.
    case denied
    /// The file is gone (deleted between prediction and prefetch).
    case missing
    /// Another error (I/O); counted, never fatal.
    case failed
    /// The file system drops its page cache whenever a file is opened (a FUSE mount
    /// without keep_cache): warmed pages could not last until the job's open.
    case cannotLast
}

/// The executor's report on one request.
public struct PrefetchResult: Sendable {
    public var request: PrefetchRequest
    public var outcome: PrefetchOutcome
    /// Bytes loaded into the cache by this prefetch.
    public var bytes: UInt64
    public var method: PrefetchMethod?
    public var issuedAt: UInt64
    public var completedAt: UInt64
}

/// How the executor warms pages.
public enum PrefetchMethod: String, Sendable, CaseIterable, Codable {
    /// `posix_fadvise(POSIX_FADV_WILLNEED)`, in slices of the device's readahead window.
    case fadvise
    /// `readahead(2)`, in the same slices.
    case readahead
    /// Reads into a reusable buffer: works on every file system, costs a copy.
    case read
}
