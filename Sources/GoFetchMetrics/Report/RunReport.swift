import Foundation
import GoFetchEvents
import GoFetchPredict
import GoFetchStore

/// Everything `gofetch report` shows of one run, read from the trace store: the
/// events (replayed in order, split into epochs by the same rule the live engine
/// uses, ``EpochRemainingSet``), the engine's samples, and the summary kept when
/// the run ended.
public struct RunReport: Sendable {
    /// One epoch of the job's reads. A read is cold when slower than the page cache
    /// allows (``ReadTiming``); the time in cold reads is the stall.
    public struct Epoch: Sendable, Equatable {
        /// 1 for the first epoch.
        public var epoch: Int
        public var startNanoseconds: Int64
        public var endNanoseconds: Int64
        public var files: Int
        public var reads: Int
        public var coldReads: Int
        public var stallNanoseconds: UInt64
        public var bytesRead: UInt64
    }

    /// Reads in one slice of the run's time.
    public struct Slice: Sendable, Equatable {
        /// Seconds since the run's first event, at the slice's start.
        public var seconds: Double
        public var warm: Int
        public var cold: Int
    }

    public var run: StoredRun
    public var epochs: [Epoch]
    /// Warm and cold reads over time, in slices of ``sliceSeconds``.
    public var timeline: [Slice]
    public var sliceSeconds: Double
    public var firstNanoseconds: Int64
    public var coldReadLatency: [HistogramBucket]
    public var topFiles: [StoreSummary.TopFile]
    /// The engine's figures over time (runs that prefetched).
    public var samples: [StoredSample]
    /// The summary kept when the run ended (`nil` when it did not end cleanly, or only traced).
    public var summary: RunSummary?
    /// Why a stored summary could not be read, when it could not.
    public var summaryProblem: String?

    public var reads: Int { epochs.reduce(0) { $0 + $1.reads } }
    public var coldReads: Int { epochs.reduce(0) { $0 + $1.coldReads } }
    public var stallNanoseconds: UInt64 { epochs.reduce(0) { $0 + $1.stallNanoseconds } }

    /// Reads the run `runID` (the newest run when `nil`) from `store`.
    /// - Parameters:
    ///   - slices: about how many slices the timeline has.
    ///   - top: how many files the table of files by stall lists.
    public static func load(
        store: TraceStore, runID: Int64? = nil, timing: ReadTiming = ReadTiming(), slices: Int = 100, top: Int = 15
    ) throws(ReportError) -> RunReport {
        do {
            let runs = try store.runs()
            guard let run = runID.map({ id in runs.first { $0.id == id } }) ?? runs.last else {
                throw ReportError(problem: runID.map { "run \($0) is not in \(store.path); `gofetch stats` lists the runs" }
                                  ?? "\(store.path) holds no run yet; run a job under `gofetch run` or `gofetch trace` first")
            }
            let span = try store.eventSpan(runID: run.id)
            let first = span?.first ?? run.startedNanoseconds
            let duration = Double(max((span?.last ?? first) - first, 1)) / 1e9
            let sliceSeconds = Self.sliceSeconds(duration: duration, slices: slices)
            var timeline = (0...Int(duration / sliceSeconds)).map { Slice(seconds: Double($0) * sliceSeconds, warm: 0, cold: 0) }

            // The remaining set sees a boundary only at the last of a few re-opens in a row
            // (or at a new epoch tag): the events since the first of those re-opens are held
            // back, then counted in the epoch they belong to.
            let epochSplit = EpochRemainingSet()
            var epochs: [Epoch] = []
            var filesThisEpoch = Set<FileID>()
            var held: [TraceEvent] = []
            var coldLatency = LatencyHistogram()
            func count(_ event: TraceEvent) {
                if epochs.isEmpty || event.kind == .open && epochs.count != epochSplit.epochsCompleted + 1 {
                    epochs.append(Epoch(epoch: epochs.count + 1, startNanoseconds: event.wallNanoseconds, endNanoseconds: event.wallNanoseconds,
                                        files: 0, reads: 0, coldReads: 0, stallNanoseconds: 0, bytesRead: 0))
                    filesThisEpoch.removeAll(keepingCapacity: true)
                }
                let last = epochs.count - 1
                if event.kind == .open {
                    if filesThisEpoch.insert(event.fileID).inserted { epochs[last].files += 1 }
                    epochs[last].endNanoseconds = max(epochs[last].endNanoseconds, event.wallNanoseconds)
                    return
                }
                epochs[last].reads += 1
                epochs[last].bytesRead &+= event.length
                epochs[last].endNanoseconds = max(epochs[last].endNanoseconds, event.wallNanoseconds + Int64(event.durationNanoseconds))
                if timing.isCold(bytes: event.length, nanoseconds: UInt64(event.durationNanoseconds)) {
                    epochs[last].coldReads += 1
                    epochs[last].stallNanoseconds &+= UInt64(event.durationNanoseconds)
                }
            }
            try store.replay(runID: run.id, kinds: [.open, .read]) { event in
                if event.kind == .read {
                    let cold = timing.isCold(bytes: event.length, nanoseconds: UInt64(event.durationNanoseconds))
                    let slice = min(max(Int(Double(event.wallNanoseconds - first) / 1e9 / sliceSeconds), 0), timeline.count - 1)
                    if cold {
                        coldLatency.record(UInt64(event.durationNanoseconds))
                        timeline[slice].cold += 1
                    } else {
                        timeline[slice].warm += 1
                    }
                    if held.isEmpty || held.count >= Self.maxHeld { count(event) } else { held.append(event) }
                    return true
                }
                let repeated = event.epoch == nil && epochSplit.readThisEpoch.contains(event.fileID)
                let before = epochSplit.epochsCompleted
                epochSplit.observe(event)
                if epochSplit.epochsCompleted != before {
                    // A new epoch began with the first held re-open.
                    let moved = held
                    held.removeAll(keepingCapacity: true)
                    if let opening = moved.first ?? (event.kind == .open ? event : nil) { count(opening) }
                    for other in moved.dropFirst() { count(other) }
                    if !moved.isEmpty { count(event) }
                } else if repeated && held.count < Self.maxHeld {
                    held.append(event)
                } else {
                    for other in held { count(other) }
                    held.removeAll(keepingCapacity: true)
                    count(event)
                }
                return true
            }
            for other in held { count(other) }
            var summary: RunSummary?
            var summaryProblem: String?
            if let json = try store.result(runID: run.id) {
                do {
                    summary = try JSONDecoder().decode(RunSummary.self, from: Data(json.utf8))
                } catch {
                    summaryProblem = "the run's stored summary could not be read (written by another version of gofetch?): \(error)"
                }
            }
            let topFiles = try store.topFiles(top, runID: run.id, timing: timing, order: .stall).filter { $0.stallNanoseconds > 0 }
            return RunReport(
                run: run, epochs: epochs, timeline: timeline, sliceSeconds: sliceSeconds, firstNanoseconds: first,
                coldReadLatency: coldLatency.buckets(), topFiles: topFiles, samples: try store.samples(runID: run.id), summary: summary,
                summaryProblem: summaryProblem)
        } catch let error as ReportError {
            throw error
        } catch {
            throw ReportError(problem: "\(error)")
        }
    }

    /// The newest run before `run` that only traced the same command: the same job
    /// without prefetching, to compare with (none for a run that did not prefetch).
    public static func baselineRun(in store: TraceStore, for run: StoredRun) throws(ReportError) -> StoredRun? {
        guard run.source != "trace" else { return nil }
        do {
            return try store.runs().last { $0.id < run.id && $0.source == "trace" && $0.command == run.command }
        } catch {
            throw ReportError(problem: "\(error)")
        }
    }

    /// Events held back while re-opens may begin a new epoch, at most.
    static let maxHeld = 100_000

    /// A round slice width giving at most about `slices` slices.
    static func sliceSeconds(duration: Double, slices: Int) -> Double {
        let rough = duration / Double(max(slices, 1))
        let steps = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1_800, 3_600, 7_200, 21_600, 86_400]
        return steps.first { $0 >= rough } ?? rough
    }
}

/// Why no report could be made.
public struct ReportError: Error, CustomStringConvertible, Sendable {
    public var problem: String
    public var description: String { "report: \(problem)" }
}
