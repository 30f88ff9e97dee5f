import ArgumentParser
import Foundation
import GoFetchEvents
import GoFetchMetrics
import GoFetchStore

struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show what the trace store holds: files, events, time span, per-epoch and per-file reads, cold reads and stall."
    )

    @OptionGroup var options: CommonOptions
    @OptionGroup var cluster: ClusterFilterOptions

    @Option(help: "How many of the most-read files to list.")
    var top = 10

    @Option(help: ArgumentHelp("Only this run (see the runs list).", valueName: "id"))
    var run: Int64?

    @Option(help: ArgumentHelp("Only events at or after this time: \(WallTime.allowed).", valueName: "time"), transform: WallTime.parse)
    var since: WallTime?

    @Option(help: ArgumentHelp("Only events before this time (same forms as --since).", valueName: "time"), transform: WallTime.parse)
    var until: WallTime?

    @Option(help: "Rank the top files by: bytes (read) or stall (time in cold reads).")
    var sort: StoreSummary.FileOrder = .bytes

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    func validate() throws {
        guard (0...100_000).contains(top) else { throw ValidationError("--top \(top) is out of range; allowed 0 to 100000") }
        if let since, let until, until.nanoseconds <= since.nanoseconds {
            throw ValidationError("--until must be later than --since")
        }
    }

    func run() async throws {
        let configuration = try options.loadConfiguration()
        let reading = try ReadingStore(configuration, options: options, filter: cluster)
        let store = reading.store
        var window: Range<Int64>?
        if since != nil || until != nil {
            window = (since?.nanoseconds ?? 0)..<(until?.nanoseconds ?? Int64.max)
        }
        let summary = try store.summary(top: top, runID: run, window: window, timing: ReadTiming(configuration), order: sort)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print(StatsReport.render(summary, database: reading.name, order: sort))
        }
    }
}

extension StoreSummary.FileOrder: ExpressibleByArgument {}
