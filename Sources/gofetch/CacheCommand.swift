import ArgumentParser
import Foundation
import GoFetchEvents
import GoFetchExecute
import GoFetchMetrics
import GoFetchSystem

struct CacheCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Show how much of files and folders is in the page cache; warm or evict them.",
        discussion: """
            Like vmtouch and fincore: resident pages / total pages of every file below the
            given paths, summed (one line per file with -v). --warm loads them with the
            prefetch executor's methods, prefetcher.executor_threads files at once
            (storage far away answers many requests together), within --budget;
            --evict drops their pages.
            Symbolic links below the given paths are not followed unless --follow-symlinks.
            A path that cannot be read is named on standard error and the run goes on;
            the exit status is then 1. docs/cache.md explains the output.

            Example: gofetch cache -v /data/train
            """
    )

    enum Method: String, ExpressibleByArgument, CaseIterable {
        case auto, fadvise, readahead, read
    }

    @OptionGroup var options: CommonOptions

    @Flag(name: .shortAndLong, help: "One line per file: resident / total pages, percent, path.")
    var verbose = false

    @Flag(help: "Load the files into the page cache.")
    var warm = false

    @Flag(help: "Drop the files' pages from the page cache (POSIX_FADV_DONTNEED; dirty pages stay).")
    var evict = false

    @Option(help: ArgumentHelp("With --warm: auto, fadvise, readahead or read (default: prefetcher.method of the config, auto).", valueName: "method"))
    var method: Method?

    @Option(help: ArgumentHelp("With --warm: stop once this many MiB became resident.", valueName: "MB"))
    var budget: Double?

    @Flag(help: "Follow symbolic links found below the given paths.")
    var followSymlinks = false

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @Argument(help: ArgumentHelp("Files and folders.", valueName: "path"))
    var paths: [String] = []

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("no path given; as in: gofetch cache -v /data/train") }
        if warm && evict { throw ValidationError("--warm and --evict cannot go together: give one of them, or neither to only count") }
        if !warm && method != nil { throw ValidationError("--method applies to --warm only") }
        if let budget {
            guard warm else { throw ValidationError("--budget applies to --warm only") }
            guard budget > 0 && budget <= 1_073_741_824 else { throw ValidationError("--budget \(budget) is out of range; allowed: more than 0, up to 1073741824 MiB") }
        }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "gofetch.cache")
        let action: PageCacheTool.Action
        var threads = 1
        if warm {
            let prefetcher = try options.loadConfiguration().prefetcher
            threads = prefetcher.executorThreads  // files warmed at once, as the daemon's executor
            let method = method?.rawValue ?? prefetcher.method.rawValue
            action = .warm(method: PrefetchMethod(rawValue: method), budget: budget.map { UInt64($0 * 1_048_576) })
        } else {
            action = evict ? .evict : .count
        }
        let tool = PageCacheTool(action: action, followSymlinks: followSymlinks, concurrency: threads, logger: logger)

        let progress = ProgressLine()
        let started = Clock.monotonicNanoseconds()
        var seen = (files: 0, bytes: UInt64(0), pages: UInt64(0), resident: UInt64(0))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if json && verbose { print("{\"files\": [") }
        let totals = tool.run(paths, onFile: { file in
            if verbose {
                progress.clear()
                if json {
                    let record = String(decoding: (try? encoder.encode(file)) ?? Data(), as: UTF8.self)
                    print(seen.files == 0 ? "  \(record)" : ", \(record)")
                } else {
                    print(file.render())
                }
            }
            seen.files += 1
            seen.bytes += file.size
            seen.pages += file.pages
            seen.resident += file.resident
            progress.update { Self.progressText(seen, since: started) }
        }, onProblem: { problem in
            progress.clear()
            FileHandle.standardError.write(Data("gofetch cache: \(problem)\n".utf8))
        })
        progress.clear()

        if json {
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let total = String(decoding: try encoder.encode(totals), as: UTF8.self)
            print(verbose ? "], \"total\": \(total)}" : "{\"total\": \(total)}")
        } else {
            print(totals.render())
        }
        if totals.hadProblems { throw ExitCode(1) }
    }

    static func progressText(_ seen: (files: Int, bytes: UInt64, pages: UInt64, resident: UInt64), since started: UInt64) -> String {
        let seconds = max(Double(Clock.monotonicNanoseconds() - started) / 1e9, 0.001)
        let percent = seen.pages == 0 ? "-" : Format.fixed(Double(seen.resident) * 100 / Double(seen.pages), 1) + "%"
        return "  \(seen.files) files  \(Format.bytes(seen.bytes))  \(percent) resident  "
            + "\(Int(Double(seen.files) / seconds)) files/s  \(Format.bytes(Int(Double(seen.bytes) / seconds)))/s"
    }
}
