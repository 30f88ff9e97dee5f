import Foundation
import GoFetchEvents
import GoFetchSystem
import Logging
import Synchronization

/// The store's writer queue: ingest hands batches over without waiting, a dedicated
/// thread commits them in transactions of up to `batchSize` events.
///
/// The queue is bounded by `capacity` events; what does not fit is dropped and
/// counted. File records are never dropped (later events refer to them).
public final class StoreWriter: EventSink, @unchecked Sendable {
    private let store: TraceStore
    private let runID: Int64
    private let capacity: Int
    private let batchSize: Int
    private let statistics: StoreStatistics
    private let logger: Logger
    private let onCommit: (@Sendable (_ batches: Int, _ events: Int) -> Void)?

    private struct Queue {
        var batches: [EventBatch] = []
        var events = 0
        var stopping = false
        /// The writer waits for a first batch (not for the commit interval to end).
        var writerIdle = false
    }
    private let queue = Mutex(Queue())
    private let wakeUp = DispatchSemaphore(value: 0)
    private var thread: JoinableThread?
    private var started = false

    public init(
        store: TraceStore, runID: Int64, capacity: Int, batchSize: Int, statistics: StoreStatistics,
        logger: Logger, onCommit: (@Sendable (_ batches: Int, _ events: Int) -> Void)? = nil
    ) {
        self.store = store
        self.runID = runID
        self.capacity = capacity
        self.batchSize = batchSize
        self.statistics = statistics
        self.logger = logger
        self.onCommit = onCommit
    }

    public func start() {
        started = true
        thread = JoinableThread(name: "gofetch-store") { [self] in run() }
    }

    /// Queues a batch without waiting; events beyond the capacity are dropped and counted.
    public func consume(_ batch: EventBatch) {
        var batch = batch
        let wake = queue.withLock { queue in
            let room = capacity - queue.events
            if batch.events.count > room {
                statistics.dropped.add(batch.events.count - max(room, 0))
                batch.events.removeLast(batch.events.count - max(room, 0))
            }
            guard !batch.isEmpty else { return false }
            let wasShort = queue.events < batchSize
            queue.batches.append(batch)
            queue.events += batch.events.count
            // The writer is woken for a first batch, and for a full one (see commitIntervalNanoseconds).
            guard queue.writerIdle || wasShort && queue.events >= batchSize else { return false }
            queue.writerIdle = false
            return true
        }
        statistics.queued.add(batch.events.count)
        if wake { wakeUp.signal() }
    }

    /// Commits everything queued, then stops the thread.
    public func stop() {
        guard started else { return }
        started = false
        queue.withLock { $0.stopping = true }
        wakeUp.signal()
        thread?.join()
    }

    /// Transactions start at most this often (unless a full batch waits, or on stop).
    /// Batches that come in between join the next transaction without waking the
    /// thread: one wake-up per commit under a steady flow. A transaction has a fixed
    /// cost (GRDB's begin and commit, the WAL's partly filled last page written again):
    /// at 10 k events/s, 5 commits a second instead of 20 took the store thread from
    /// 1.64 to 1.22 µs of CPU per event (bench/daemon-cost). What waits is in memory
    /// either way; a crash of the daemon loses the queue, committed or not.
    static let commitIntervalNanoseconds: UInt64 = 200_000_000

    private func run() {
        var files: [FileRecord] = []
        var events: [TraceEvent] = []
        var fileFailures = 0
        var lastCommit: UInt64 = 0
        while true {
            let since = Clock.monotonicNanoseconds() &- lastCommit
            if since < Self.commitIntervalNanoseconds {
                // A stop or a full batch signals and ends the wait.
                _ = wakeUp.wait(timeout: .now() + .nanoseconds(Int(Self.commitIntervalNanoseconds - since)))
            }
            let idle = queue.withLock { queue -> Bool in
                queue.writerIdle = queue.batches.isEmpty && !queue.stopping
                return queue.writerIdle
            }
            if idle {
                // The first batch (or a stop) signals; the timeout only bounds the wait.
                _ = wakeUp.wait(timeout: .now() + .seconds(1))
                continue
            }
            lastCommit = Clock.monotonicNanoseconds()
            let (taken, stopping) = queue.withLock { queue -> ([EventBatch], Bool) in
                let taken = queue.batches
                queue.batches.removeAll(keepingCapacity: true)
                queue.events = 0
                return (taken, queue.stopping)
            }
            for batch in taken {
                files.append(contentsOf: batch.files)
                events.append(contentsOf: batch.events)
            }
            var start = 0
            repeat {
                let end = min(start + batchSize, events.count)
                if commit(files: files, events: events[start..<end]) {
                    files.removeAll(keepingCapacity: true)
                    fileFailures = 0
                } else if !files.isEmpty {
                    // Kept for one more try (a transient failure such as a full disk); a
                    // record that fails twice is dropped so it cannot block every later commit.
                    fileFailures += 1
                    if fileFailures >= 2 {
                        statistics.droppedFiles.add(files.count)
                        files.removeAll(keepingCapacity: true)
                        fileFailures = 0
                    }
                }
                start = end
            } while start < events.count
            events.removeAll(keepingCapacity: true)
            if stopping { break }
        }
    }

    /// One transaction; on failure its events are counted as dropped and its files kept for the next.
    private func commit(files: [FileRecord], events: ArraySlice<TraceEvent>) -> Bool {
        guard !files.isEmpty || !events.isEmpty else { return true }
        let cpu = Clock.threadCPUNanoseconds()
        defer { statistics.cpuNanoseconds.add(Int(truncatingIfNeeded: Clock.threadCPUNanoseconds() &- cpu)) }
        do {
            try store.write(files: files, events: events, runID: runID)
        } catch {
            statistics.failedBatches.add(1)
            statistics.dropped.add(events.count)
            logger.error("store write failed; events dropped", metadata: ["events": "\(events.count)", "error": "\(error)"])
            return false
        }
        statistics.committedFiles.add(files.count)
        statistics.committedEvents.add(events.count)
        statistics.committedBatches.add(1)
        onCommit?(statistics.committedBatches.value, statistics.committedEvents.value)
        return true
    }
}
