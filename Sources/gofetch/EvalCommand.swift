import ArgumentParser
import Foundation
import GoFetchEvents
import GoFetchMetrics
import GoFetchPredict
import GoFetchStore
import GoFetchSystem

struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Replay stored traces through every predictor offline and score them.",
        discussion: """
            Online-style: each access is scored against what a predictor had predicted
            before it saw that access, then the predictor learns it. A prediction that an
            access names within --window accesses of its stream was useful.

            accuracy  useful predictions / issued predictions
            coverage  accesses some outstanding prediction had named / accesses
            top-1     the best prediction was exactly the next file
            lead      how far ahead useful predictions came (accesses, seconds; median)
            held      predictions outstanding per access (what the cache must hold)

            File-level predictors are scored on opens, the pattern detector on reads.
            --model loads a Markov model saved by `gofetch train` (from another trace)
            into every Markov candidate first. The GRU (and a hybrid using it) is scored
            when its model exists: --gru-model, or predictor.ml.model_path.
            """
    )

    @OptionGroup var options: CommonOptions
    @OptionGroup var cluster: ClusterFilterOptions

    @Option(help: ArgumentHelp("Only this run's events.", valueName: "id"))
    var run: Int64?

    @Option(help: "Accesses of its stream a prediction stays outstanding for.")
    var window = 256

    @Option(help: ArgumentHelp("Predictions per access; default prefetcher.top_k_predictions.", valueName: "k"))
    var topK: Int?

    @Option(help: ArgumentHelp("Minimum confidence; default prefetcher.confidence_threshold.", valueName: "p"))
    var threshold: Double?

    @Option(help: ArgumentHelp("A Markov model saved by `gofetch train`, loaded first.", valueName: "path"))
    var model: String?

    @Option(help: ArgumentHelp("A GRU saved by `gofetch train --model gru`; default predictor.ml.model_path when it exists.", valueName: "path"))
    var gruModel: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        guard (1...10_000_000).contains(window) else { throw ValidationError("--window \(window) is out of range; allowed 1 to 10000000") }
        if let topK, !(1...1_000).contains(topK) { throw ValidationError("--top-k \(topK) is out of range; allowed 1 to 1000") }
        if let threshold, !(0...1).contains(threshold) { throw ValidationError("--threshold \(threshold) is out of range; allowed 0 to 1") }
    }

    func run() async throws {
        let configuration = try options.loadConfiguration()
        guard !configuration.storage.url.isEmpty && options.db == nil || FileManager.default.fileExists(atPath: configuration.storage.dbPath) else {
            throw ValidationError("no trace store at \(configuration.storage.dbPath); record one with `gofetch trace -- COMMAND` or pass --db")
        }
        let reading = try ReadingStore(configuration, options: options, filter: cluster)
        let store = reading.store
        let files = try store.files(limit: configuration.ingest.maxFiles)
        var evaluationOptions = OfflineEvaluation.Options()
        evaluationOptions.window = window
        evaluationOptions.topK = topK ?? configuration.prefetcher.topKPredictions
        evaluationOptions.confidenceThreshold = threshold ?? configuration.prefetcher.confidenceThreshold
        let gruPath = gruModel ?? configuration.predictor.mlModelPath
        if let gruModel, !FileManager.default.fileExists(atPath: gruModel) {
            throw ValidationError("--gru-model \(gruModel): no such file; train one with `gofetch train --model gru`")
        }
        let candidates = try OfflineEvaluation.standardCandidates(
            configuration, files: files, markovModel: model,
            gruModel: FileManager.default.fileExists(atPath: gruPath) ? gruPath : nil)
        let evaluation = OfflineEvaluation(candidates: candidates, options: evaluationOptions)
        let kinds: [AccessKind] = [.open, .read, .mmap]
        let total = try store.eventCount(runID: run, kinds: kinds)
        let progress = ProgressLine()
        let started = GoFetchSystem.Clock.monotonicNanoseconds()
        var done = 0
        try store.replay(runID: run, kinds: kinds) { event in
            evaluation.feed(event)
            done += 1
            if done & 1023 == 0 {
                progress.update {
                    let elapsed = Double(GoFetchSystem.Clock.monotonicNanoseconds() - started) / 1e9
                    let filled = total == 0 ? 30 : min(30, 30 * done / total)  // a live daemon may add events meanwhile
                    return "eval [\(String(repeating: "#", count: filled))\(String(repeating: "-", count: 30 - filled))] \(done)/\(total) events, \(Format.fixed(Double(done) / max(elapsed, 1e-9) / 1_000, 1)) k/s"
                }
            }
            return true
        }
        progress.clear()
        let seconds = Double(GoFetchSystem.Clock.monotonicNanoseconds() - started) / 1e9
        let scores = evaluation.scores()
        if json {
            let report = EvalReport(database: reading.name, run: run, events: done, seconds: seconds,
                                    window: window, topK: evaluationOptions.topK, threshold: evaluationOptions.confidenceThreshold, predictors: scores)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(Self.render(scores, events: done, seconds: seconds, options: evaluationOptions))
        }
    }

    static func render(_ scores: [PredictorScore], events: Int, seconds: Double, options: OfflineEvaluation.Options) -> String {
        var lines = [
            "replayed \(events) events in \(Format.fixed(seconds, 2)) s (window \(options.window) accesses, top \(options.topK), confidence ≥ \(Format.fixed(options.confidenceThreshold, 2)))",
            "",
        ]
        let header = ["predictor", "scored", "accesses", "issued", "accuracy", "coverage", "top-1", "lead (acc.)", "lead (s)", "held", "µs/access"]
        var rows = [header]
        for score in scores {
            rows.append([
                score.name, score.scope.rawValue, "\(score.accesses)", "\(score.issued)",
                Format.fixed(score.accuracy, 3), Format.fixed(score.coverage, 3),
                score.scope == .opens ? Format.fixed(score.topOneAccuracy, 3) : "-",
                Format.fixed(score.leadAccessesP50, 0), Format.fixed(score.leadSecondsP50, 3),
                Format.fixed(score.meanOutstanding, 1), Format.fixed(score.nanosecondsPerAccess / 1e3, 2),
            ])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            lines.append(row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
        return lines.joined(separator: "\n")
    }
}

struct EvalReport: Codable {
    var database: String
    var run: Int64?
    var events: Int
    var seconds: Double
    var window: Int
    var topK: Int
    var threshold: Double
    var predictors: [PredictorScore]
}
