import ArgumentParser
import Foundation
import GoFetchConfig
import GoFetchEvents
import GoFetchPredict
import GoFetchStore

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fit a predictor (Markov or GRU) from the stored traces and save it.",
        discussion: """
            markov saves to predictor.baseline.model_path, gru to predictor.ml.model_path
            (safetensors), or to --output; `gofetch run` and `gofetch daemon` load them
            at start. Both models name files by path, not by store id, so they also load
            against another trace store. docs/gru.md describes the GRU.
            """
    )

    enum Model: String, ExpressibleByArgument, CaseIterable {
        case markov
        case gru
    }

    @OptionGroup var options: CommonOptions
    @OptionGroup var cluster: ClusterFilterOptions

    @Option(help: "Which model to fit: markov or gru.")
    var model: Model = .markov

    @Option(help: ArgumentHelp("Where to save; overrides the model's path in the config.", valueName: "path"))
    var output: String?

    @Option(help: ArgumentHelp("Only this run's events.", valueName: "id"))
    var run: Int64?

    @Option(help: ArgumentHelp("GRU: passes over the trace, at most (early stopping may end sooner).", valueName: "n"))
    var epochs = 30

    @Option(help: ArgumentHelp("GRU: epochs without a better validation loss before stopping.", valueName: "n"))
    var patience = 3

    @Option(help: ArgumentHelp("GRU: fraction of each stream's last opens held out for validation, 0 to 0.5.", valueName: "fraction"))
    var validation = 0.1

    @Option(help: ArgumentHelp("GRU: hidden state size.", valueName: "n"))
    var hidden = 64

    @Option(help: ArgumentHelp("GRU: most frequent moves kept as output classes.", valueName: "n"))
    var moves = 63

    @Option(help: ArgumentHelp("GRU: seed of the initial weights.", valueName: "n"))
    var seed: UInt64 = 42

    @Option(help: ArgumentHelp("GRU: matrix products by blas (OpenBLAS) or swift (plain loops).", valueName: "backend"))
    var backend = "blas"

    func validate() throws {
        guard (1...10_000).contains(epochs) else { throw ValidationError("--epochs \(epochs) is out of range; allowed: 1 to 10000") }
        guard (1...1_000).contains(patience) else { throw ValidationError("--patience \(patience) is out of range; allowed: 1 to 1000") }
        guard (0...0.5).contains(validation) else { throw ValidationError("--validation \(validation) is out of range; allowed: 0 to 0.5") }
        guard (1...1_024).contains(hidden) else { throw ValidationError("--hidden \(hidden) is out of range; allowed: 1 to 1024") }
        guard (1...4_096).contains(moves) else { throw ValidationError("--moves \(moves) is out of range; allowed: 1 to 4096") }
        guard MatrixBackend(rawValue: backend) != nil else {
            throw ValidationError("--backend '\(backend)' is not a backend; allowed: \(MatrixBackend.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() async throws {
        let configuration = try options.loadConfiguration()
        let reading = try ReadingStore(configuration, options: options, filter: cluster)
        let store = reading.store
        switch model {
        case .markov: try trainMarkov(configuration, store, reading)
        case .gru: try trainGRU(configuration, store, reading)
        }
    }

    private func trainMarkov(_ configuration: Configuration, _ store: TraceStore, _ reading: ReadingStore) throws {
        let markov = MarkovPredictor(options: .init(maxOrder: configuration.predictor.baselineMaxOrder))
        let report = try MarkovTraining.train(markov, from: store, runID: run) { opens in
            FileHandle.standardError.write(Data("\r  \(opens / 1_000_000) M opens replayed".utf8))
        }
        let paths = Dictionary(try store.files(limit: Int.max).map { ($0.id, $0.path) }, uniquingKeysWith: { a, _ in a })
        let path = output ?? configuration.predictor.baselineModelPath
        try markov.save(to: path) { paths[$0] }
        try reading.share(model: "markov", file: path)
        print("""
            trained markov (orders 1–\(markov.options.maxOrder)) on \(report.opens) opens in \(Format.fixed(report.seconds, 2)) s: \
            \(report.transitions) transitions, \(report.contexts) contexts (\(report.contextsEvicted) evicted)
            saved \(path)
            """)
    }

    private func trainGRU(_ configuration: Configuration, _ store: TraceStore, _ reading: ReadingStore) throws {
        let opens = try store.opens(runID: run)
        guard opens.count >= 2 else { throw ValidationError("the trace store \(store.path) holds \(opens.count) opens; the GRU needs a trace to learn from (gofetch trace -- CMD)") }
        let directories = DirectoryIndex(files: try store.files(limit: configuration.ingest.maxFiles))
        // Indices within the real listings, files never opened included (where the folders still exist).
        let listed = directories.addListings()
        if listed > 0 { FileHandle.standardError.write(Data("listed \(listed) files in the traced folders that the trace never opened\n".utf8)) }
        var training = GRUTraining.Options()
        training.hyperparameters.hidden = hidden
        training.hyperparameters.transitions = moves
        training.epochs = epochs
        training.patience = patience
        training.validationFraction = validation
        training.seed = seed
        training.backend = MatrixBackend(rawValue: backend) ?? .blas
        var bar = ProgressBar()
        let (model, report) = GRUTraining.train(opens: opens, directories: directories, options: training) { bar.show($0) }
        bar.finish()

        let path = output ?? configuration.predictor.mlModelPath
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let summary = String(decoding: try encoder.encode(report), as: UTF8.self)
        try model.save(to: path, extra: ["training": summary])
        try reading.share(model: "gru", file: path)
        let best = report.best
        print("""
            trained gru (hidden \(hidden), \(report.transitions) moves + other, crossing \(report.crossing), \(report.parameters) weights) \
            on \(report.opens) opens of \(report.streams) streams in \(Format.fixed(report.seconds, 2)) s
              moves covered: \(Format.fixed(100 * report.coverage, 1)) % of training steps (the rest are "other")
              epochs: \(report.epochs.count)\(report.stoppedEarly ? " (stopped early)" : ""), kept epoch \(report.bestEpoch)
              training:   \(report.trainingSteps) steps, loss \(Format.fixed(best?.trainingLoss ?? 0, 4)), next-file accuracy \(Format.fixed(100 * (best?.trainingAccuracy ?? 0), 1)) %
              validation: \(report.validationSteps) steps, loss \(Format.fixed(best?.validationLoss ?? 0, 4)), next-file accuracy \(Format.fixed(100 * (best?.validationAccuracy ?? 0), 1)) %
              throughput: \(Int(report.eventsPerSecond)) events/s (\(report.backend), forward + backward + Adam)
            saved \(path)
            """)
    }
}

/// Training progress on stderr, redrawn in place at most every 1 % or each epoch.
struct ProgressBar {
    private var lastDrawn = (epoch: 0, percent: -1)

    mutating func show(_ progress: GRUTraining.Progress) {
        let percent = Int(progress.fraction * 100)
        guard (progress.epoch, percent) != lastDrawn else { return }
        lastDrawn = (progress.epoch, percent)
        let width = 30, filled = min(width, Int(progress.fraction * Double(width)))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        var line = "\r  epoch \(progress.epoch)/\(progress.epochs) [\(bar)] \(percent)%  loss \(Format.fixed(progress.loss, 4))"
        if let last = progress.last {
            line += "  (epoch \(last.epoch): validation loss \(Format.fixed(last.validationLoss, 4)), accuracy \(Format.fixed(100 * last.validationAccuracy, 1)) %)"
        }
        FileHandle.standardError.write(Data((line + "   ").utf8))
    }

    func finish() { FileHandle.standardError.write(Data("\n".utf8)) }
}
