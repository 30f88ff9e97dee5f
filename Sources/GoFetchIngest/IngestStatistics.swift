import GoFetchEvents
import Synchronization

/// Counters of the ingest path, written by the ingest thread, read by anyone.
public final class IngestStatistics: Sendable {
    public let connectionsAccepted = Atomic<Int>(0)
    public let connectionsRefused = Atomic<Int>(0)
    public let connectionsOpen = Atomic<Int>(0)
    public let messagesReceived = Atomic<Int>(0)
    /// Messages larger than the receive buffer (cut by the kernel, then rejected).
    public let messagesTruncated = Atomic<Int>(0)
    public let eventsAccepted = Atomic<Int>(0)
    /// Passes over the clients' sockets that received something, and those taken at the
    /// relaxed pace (``IngestPace``).
    public let passes = Atomic<Int>(0)
    public let relaxedPasses = Atomic<Int>(0)
    public let opens = Atomic<Int>(0)
    /// Opens of small files on remote storage that the shim warmed whole at open.
    public let warmedAtOpen = Atomic<Int>(0)
    public let reads = Atomic<Int>(0)
    public let mmaps = Atomic<Int>(0)
    public let closes = Atomic<Int>(0)
    public let bytesRead = Atomic<Int>(0)
    /// Time the traced processes spent inside reads, as the sources measured it.
    public let readWaitNanoseconds = Atomic<Int>(0)
    /// Reads slower than the page cache (``ReadTiming``), and their time: the job's stall.
    public let coldReads = Atomic<Int>(0)
    public let stallNanoseconds = Atomic<Int>(0)
    /// Events the clients dropped themselves (socket full, no daemon), from their headers.
    public let clientDropped = Atomic<Int>(0)
    /// Reads whose descriptor and inode match no known open.
    public let unresolved = Atomic<Int>(0)
    /// Events of files the catalog had no room for (full, or its last eighth kept
    /// for users other than the one holding half of it).
    public let catalogFull = Atomic<Int>(0)
    /// Opens that would have changed the identity of a file another user registered: refused.
    public let catalogForeignUpdates = Atomic<Int>(0)
    /// Files the catalog learned from folder listings (for the GRU) before any open.
    public let filesListed = Atomic<Int>(0)
    /// Listed files left out: listings may fill at most half the catalog.
    public let listingsSkipped = Atomic<Int>(0)
    public let tableFull = Atomic<Int>(0)
    /// Times a client's socket was left unread because its user had taken its share
    /// of the daemon's CPU (`daemon.user_cpu_share`) while other users were connected.
    public let heldForShare = Atomic<Int>(0)
    /// Messages whose header pid differs from the connection's credentials.
    public let pidMismatch = Atomic<Int>(0)
    private let decodeFailures = Mutex(WireDecodeStatistics())

    public init() {}

    /// The ingest thread's decoder is the only writer; it publishes its totals.
    func setDecodeStatistics(_ totals: WireDecodeStatistics) {
        decodeFailures.withLock { $0 = totals }
    }

    public var decodeStatistics: WireDecodeStatistics { decodeFailures.withLock { $0 } }

    /// Every event ingest did not pass on, by reason.
    public var rejected: Int {
        decodeStatistics.total + unresolved.load(ordering: .relaxed) + catalogFull.load(ordering: .relaxed)
            + messagesTruncated.load(ordering: .relaxed)
    }
}
