import ArgumentParser
import Foundation
import GoFetchEvents
import GoFetchMetrics
import GoFetchStore

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write one self-contained HTML page with charts of a run: stall per epoch, reads warm and cold, prefetch fates, budget, latencies.",
        discussion: """
            The page needs no network (inline SVG, no script). By default it shows the newest
            run in the store, beside the newest `gofetch trace` run of the same command when
            there is one. With --bench it shows a bench/run side-by-side, then every gofetch
            run the benchmark kept.
            """
    )

    @OptionGroup var options: CommonOptions
    @OptionGroup var cluster: ClusterFilterOptions

    @Option(help: ArgumentHelp("The run to show (`gofetch stats` lists them); the newest by default.", valueName: "id"))
    var run: Int64?

    @Option(help: ArgumentHelp("The run without prefetching to compare with; by default the newest trace run of the same command.", valueName: "id"))
    var baseline: Int64?

    @Flag(help: "Compare with no other run.")
    var noBaseline = false

    @Option(help: ArgumentHelp("A results.json written by bench/run: show its side-by-side and its gofetch runs.", valueName: "file"))
    var bench: String?

    @Option(name: [.short, .long], help: ArgumentHelp("Where to write the page; by default beside the store (report-<run>.html) or the bench results (report.html).", valueName: "file"))
    var output: String?

    @Option(help: "How many files the table of files by stall lists.")
    var top = 15

    func validate() throws {
        guard (0...10_000).contains(top) else { throw ValidationError("--top \(top) is out of range; allowed 0 to 10000") }
        if noBaseline && baseline != nil { throw ValidationError("--baseline and --no-baseline exclude each other") }
        if bench != nil && (run != nil || baseline != nil) {
            throw ValidationError("--bench shows the benchmark's own runs; --run and --baseline are for a store's runs")
        }
    }

    func run() async throws {
        let configuration = try options.loadConfiguration()
        let timing = ReadTiming(configuration)
        let page: ReportPage
        let path: String
        if let bench {
            let results = try BenchResults.load(path: bench)
            let folder = (bench as NSString).deletingLastPathComponent
            var sections: [ReportPage.RunSection] = []
            for scenario in results.scenarioNames {
                for mode in ["gofetch", "transparent"] where results.scenarios[scenario]?.modes[mode]?.status == "ok" {
                    // The run whose figures the results show (with --repeat, the median run's folder).
                    let runDir = results.scenarios[scenario]?.modes[mode]?.runDir ?? "runs/\(scenario)/\(mode)"
                    let database = "\(folder.isEmpty ? "." : folder)/\(runDir)/gofetch.db"
                    guard FileManager.default.fileExists(atPath: database) else { continue }
                    let store = try TraceStore(path: database, readOnly: true)
                    let report = try RunReport.load(store: store, timing: timing, top: top)
                    sections.append(.init(heading: "\(scenario) · \(mode): what gofetch saw and did", report: report, baseline: nil, database: database))
                }
            }
            page = ReportPage(title: "gofetch benchmark report", bench: results, runs: sections)
            path = output ?? "\(folder.isEmpty ? "." : folder)/report.html"
        } else {
            let reading = try ReadingStore(configuration, options: options, filter: cluster)
            let store = reading.store
            page = try ReportPage.forRun(store: store, runID: run, baselineID: baseline, compare: !noBaseline, timing: timing, top: top)
            let runID = page.runs.first?.report.run.id ?? 0
            let folder = (configuration.storage.dbPath as NSString).deletingLastPathComponent
            path = output ?? "\(folder.isEmpty ? "." : folder)/report-\(runID).html"
        }
        try page.write(to: path)
        print(path)
    }
}
