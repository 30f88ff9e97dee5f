import ArgumentParser
import Foundation
import GoFetchCore

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fit the Markov predictor from the stored traces and save it.",
        discussion: """
            Saves to predictor.baseline.model_path (or --output); `gofetch run` and
            `gofetch daemon` load it at start and keep learning online. The model names
            files by path, so it also loads against another trace store.
            """
    )

    enum Model: String, ExpressibleByArgument, CaseIterable {
        case markov
    }

    @OptionGroup var options: CommonOptions

    @Option(help: "Which model to fit: markov.")
    var model: Model = .markov

    @Option(help: ArgumentHelp("Where to save; overrides predictor.baseline.model_path.", valueName: "path"))
    var output: String?

    @Option(help: ArgumentHelp("Only this run's events.", valueName: "id"))
    var run: Int64?

    func run() async throws {
        let configuration = try options.loadConfiguration()
        let store = try TraceStore(path: configuration.storage.dbPath, readOnly: true)
        let markov = MarkovPredictor(options: .init(maxOrder: configuration.predictor.baselineMaxOrder))
        let report = try MarkovTraining.train(markov, from: store, runID: run) { opens in
            FileHandle.standardError.write(Data("\r  \(opens / 1_000_000) M opens replayed".utf8))
        }
        let paths = Dictionary(try store.files(limit: Int.max).map { ($0.id, $0.path) }, uniquingKeysWith: { a, _ in a })
        let path = output ?? configuration.predictor.baselineModelPath
        try markov.save(to: path) { paths[$0] }
        print("""
            trained markov (orders 1–\(markov.options.maxOrder)) on \(report.opens) opens in \(Format.fixed(report.seconds, 2)) s: \
            \(report.transitions) transitions, \(report.contexts) contexts (\(report.contextsEvicted) evicted)
            saved \(path)
            """)
    }
}
