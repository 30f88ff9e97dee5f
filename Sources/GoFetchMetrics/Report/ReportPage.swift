import Foundation
import GoFetchEvents
import GoFetchStore
import SystemPackage

/// One self-contained HTML page: inline CSS and SVG, no script, nothing fetched.
public struct ReportPage {
    /// A run to show, with the same job's run without prefetching when there is one.
    public struct RunSection {
        public var heading: String
        public var report: RunReport
        public var baseline: RunReport?
        public var database: String

        public init(heading: String, report: RunReport, baseline: RunReport?, database: String) {
            self.heading = heading
            self.report = report
            self.baseline = baseline
            self.database = database
        }
    }

    public var title: String
    public var bench: BenchResults?
    public var runs: [RunSection]

    public init(title: String, bench: BenchResults? = nil, runs: [RunSection]) {
        self.title = title
        self.bench = bench
        self.runs = runs
    }

    static let palette = (
        run: "#2f6fdf", baseline: "#b0b7c3", warm: "#4caf6a", cold: "#e0564b",
        useful: "#4caf6a", late: "#f2b233", wasted: "#e0564b", skipped: "#9aa5b1", failed: "#6b4fa0",
        budget: "#2f6fdf", outstanding: "#f28c28")
    static let modeColors = ["#8c96a5", "#5b8def", "#f2b233", "#2f9e6a", "#9c5fd1", "#c7ccd4", "#e0564b", "#17a2b8"]

    /// The page of one run of `store` (the newest when `runID` is `nil`), beside the
    /// run without prefetching: `baselineID`, else the newest `trace` run of the same
    /// command before it (none with `compare: false`).
    public static func forRun(
        store: TraceStore, runID: Int64?, baselineID: Int64? = nil, compare: Bool = true, timing: ReadTiming, top: Int = 15
    ) throws(ReportError) -> ReportPage {
        let report = try RunReport.load(store: store, runID: runID, timing: timing, top: top)
        var baseline: RunReport?
        if compare {
            if let baselineID {
                baseline = try RunReport.load(store: store, runID: baselineID, timing: timing, top: 0)
            } else if let run = try RunReport.baselineRun(in: store, for: report.run) {
                baseline = try RunReport.load(store: store, runID: run.id, timing: timing, top: 0)
            }
        }
        let section = RunSection(heading: "Run \(report.run.id): gofetch \(report.run.source)", report: report, baseline: baseline, database: store.path)
        return ReportPage(title: "gofetch report: run \(report.run.id)", runs: [section])
    }

    /// Writes the page to `path` (its folder is made when missing).
    public func write(to path: String) throws(ReportError) {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            // The page names every file and command of the run, as the store does: the owner's alone.
            let file = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: [.ownerReadWrite])
            defer { try? file.close() }
            try file.writeAll(Array(render().utf8))
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        } catch {
            throw ReportError(problem: "cannot write \(path): \(error.localizedDescription)")
        }
    }

    public func render() -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(e(title))</title>
            <style>\(Self.style)</style>
            </head><body>
            <h1>\(e(title))</h1>

            """
        if let bench { html += benchSection(bench) }
        for section in runs { html += runSection(section) }
        if bench == nil && runs.isEmpty { html += "<p>Nothing to show.</p>" }
        html += "<footer>Made by <code>gofetch report</code>. Stall here is time the job spent in reads slower than the page cache (docs/metrics.md)"
        html += bench == nil ? "." : "; in the side-by-side, time the training loop waited for a batch, as the job timed it."
        html += "</footer></body></html>\n"
        return html
    }

    // MARK: - The benchmark's side-by-side

    private func benchSection(_ bench: BenchResults) -> String {
        var html = "<section><h2>Side by side</h2>"
        if let meta = bench.meta {
            html += "<p class=\"note\">bench/run" + (meta.started.map { ", started \(e($0))" } ?? "") + (meta.gitHead.map { ", version \(e(String($0.prefix(12))))" } ?? "") + ". Each mode ran the same job on the same emulated storage, page cache dropped first.</p>"
        }
        for name in bench.scenarioNames {
            guard let scenario = bench.scenarios[name] else { continue }
            let modes = bench.modes(of: scenario)
            guard !modes.isEmpty else { continue }
            let epochs = modes.map { $0.mode.stallByEpochS?.count ?? 0 }.max() ?? 0
            html += "<h3>\(e(name))" + (scenario.title.map { ": \(e($0))" } ?? "") + "</h3>"
            let series = modes.enumerated().map { index, item in
                SVGChart.Series(name: item.name, color: Self.modeColors[index % Self.modeColors.count], values: item.mode.stallByEpochS ?? [])
            }
            html += figure(SVGChart.bars(categories: (1...max(epochs, 1)).map { "epoch \($0)" }, series: series,
                                         yLabel: "stall per epoch (s)", format: seconds),
                           caption: "Seconds the training loop waited for a batch, per epoch, in each mode.")
            // Ratios against no prefetch, else against the first mode that ran.
            let reference = modes.first { $0.name == "no-prefetch" } ?? modes[0]
            let baseline = reference.mode.stallByEpochS.map { $0.reduce(0, +) }
            html += "<table><tr><th>mode</th><th>stall per epoch (s)</th><th>stall (s)</th><th>vs \(e(reference.name))</th><th>epoch time (s)</th><th>what it is</th></tr>"
            for (name, mode) in modes {
                let stall = mode.stallByEpochS ?? [], wall = mode.epochByEpochS ?? []
                let total = stall.reduce(0, +)
                let ratio = baseline.map { $0 > 0 ? Format.fixed(total / $0, 2) + "×" : "–" } ?? "–"
                html += "<tr><td><b>\(e(name))</b></td><td>\(stall.map { Format.fixed($0, 2) }.joined(separator: " / "))</td>"
                html += "<td>\(Format.fixed(total, 2))</td><td>\(ratio)</td><td>\(wall.map { Format.fixed($0, 2) }.joined(separator: " / "))</td>"
                html += "<td class=\"what\">\(e(bench.meta?.modes?[name] ?? ""))</td></tr>"
            }
            html += "</table>"
        }
        return html + "</section>"
    }

    // MARK: - One run

    private func runSection(_ section: RunSection) -> String {
        let report = section.report, run = report.run
        var html = "<section><h2>\(e(section.heading))</h2>"
        let ended = run.endedNanoseconds.map { Format.duration(nanoseconds: max($0 - run.startedNanoseconds, 0)) } ?? "did not end cleanly"
        html += "<p class=\"note\">Run \(run.id) (<code>gofetch \(e(run.source))</code>) of <code>\(e(run.command))</code>; \(e(ended)); store \(e(section.database)).</p>"
        if let problem = report.summaryProblem { html += "<p class=\"note\">\(e(problem))</p>" }
        html += cards(section)
        html += stallSection(section)
        html += timelineSection(report)
        if let prefetch = report.summary?.prefetch {
            html += fatesSection(prefetch)
            html += budgetSection(report)
            html += latencySection(report, lead: prefetch.accounting.leadTimeBuckets)
        } else {
            html += latencySection(report, lead: nil)
        }
        html += filesSection(report)
        if let summary = report.summary {
            html += "<details><summary>The run's summary, as printed when it ended</summary><pre>\(e(summary.render(title: run.source)))</pre></details>"
        }
        return html + "</section>"
    }

    private func cards(_ section: RunSection) -> String {
        let report = section.report
        var items: [(String, String)] = [
            ("stall", Format.duration(nanoseconds: report.stallNanoseconds)),
            ("reads warm", report.reads == 0 ? "–" : "\(Format.fixed(100 * Double(report.reads - report.coldReads) / Double(report.reads), 1)) %"),
            ("epochs", "\(report.epochs.count)"),
        ]
        if let baseline = section.baseline {
            let before = Double(baseline.stallNanoseconds), after = Double(report.stallNanoseconds)
            items.append(("stall without prefetch", Format.duration(nanoseconds: baseline.stallNanoseconds)))
            items.append(("stall removed", before > 0 ? "\(Format.fixed(100 * (before - after) / before, 1)) %" : "–"))
        }
        if let accounting = report.summary?.prefetch?.accounting {
            items.append(("warm thanks to gofetch", "\(accounting.coveredAccesses) of \(accounting.accesses)"))
            items.append(("accuracy", "\(Format.fixed(100 * accounting.accuracy, 1)) %"))
            items.append(("coverage", "\(Format.fixed(100 * accounting.coverage, 1)) %"))
        }
        return "<div class=\"cards\">" + items.map { "<div class=\"card\"><div class=\"value\">\(e($0.1))</div><div class=\"name\">\(e($0.0))</div></div>" }.joined() + "</div>"
    }

    private func stallSection(_ section: RunSection) -> String {
        let report = section.report
        guard !report.epochs.isEmpty else { return "<h3>Stall per epoch</h3><p>No reads recorded.</p>" }
        let count = max(report.epochs.count, section.baseline?.epochs.count ?? 0)
        var series = [SVGChart.Series(name: "this run", color: Self.palette.run, values: report.epochs.map { Double($0.stallNanoseconds) / 1e9 })]
        if let baseline = section.baseline {
            series.insert(SVGChart.Series(name: "without prefetch (run \(baseline.run.id))", color: Self.palette.baseline,
                                          values: baseline.epochs.map { Double($0.stallNanoseconds) / 1e9 }), at: 0)
        }
        var html = "<h3>Stall per epoch</h3>"
        html += figure(SVGChart.bars(categories: (1...count).map { "epoch \($0)" }, series: series, yLabel: "time in cold reads (s)", format: seconds),
                       caption: section.baseline == nil
                           ? "No run of this command without prefetching is in the store (run it under <code>gofetch trace</code> to compare)."
                           : "Against the newest <code>gofetch trace</code> run of the same command.")
        html += "<table><tr><th>epoch</th><th>time</th><th>files</th><th>reads</th><th>cold</th><th>read</th><th>stall</th>"
        html += section.baseline == nil ? "</tr>" : "<th>stall without prefetch</th></tr>"
        for epoch in report.epochs {
            html += "<tr><td>\(epoch.epoch)</td><td>\(Format.duration(nanoseconds: max(epoch.endNanoseconds - epoch.startNanoseconds, 0)))</td>"
            html += "<td>\(epoch.files)</td><td>\(epoch.reads)</td><td>\(epoch.coldReads)</td><td>\(Format.bytes(epoch.bytesRead))</td>"
            html += "<td>\(Format.duration(nanoseconds: epoch.stallNanoseconds))</td>"
            if let baseline = section.baseline {
                html += "<td>" + (epoch.epoch <= baseline.epochs.count ? Format.duration(nanoseconds: baseline.epochs[epoch.epoch - 1].stallNanoseconds) : "–") + "</td>"
            }
            html += "</tr>"
        }
        return html + "</table>"
    }

    private func timelineSection(_ report: RunReport) -> String {
        guard report.reads > 0 else { return "" }
        let width = report.sliceSeconds
        let labels = report.timeline.map { Format.fixed($0.seconds, width < 1 ? 1 : 0) + " s" }
        let chart = SVGChart.bars(
            categories: labels,
            series: [SVGChart.Series(name: "warm", color: Self.palette.warm, values: report.timeline.map { Double($0.warm) }),
                     SVGChart.Series(name: "cold", color: Self.palette.cold, values: report.timeline.map { Double($0.cold) })],
            stacked: true, yLabel: "reads per \(Format.fixed(width, width < 1 ? 2 : 0)) s", format: count,
            labelEvery: max(1, report.timeline.count / 10))
        return "<h3>Reads over time</h3>" + figure(chart, caption: "The job's reads of traced files, warm (page cache) or cold, from the run's first event.")
    }

    private func fatesSection(_ prefetch: PrefetchSummary) -> String {
        let epochs = prefetch.epochFigures
        guard !epochs.isEmpty else { return "" }
        let fates: [(String, String, (EpochFigures) -> Int)] = [
            ("useful", Self.palette.useful, { $0.useful }), ("late", Self.palette.late, { $0.late }),
            ("wasted", Self.palette.wasted, { $0.wasted }), ("skipped", Self.palette.skipped, { $0.skipped }),
            ("failed", Self.palette.failed, { $0.failed }),
        ]
        let chart = SVGChart.bars(
            categories: epochs.map { "epoch \($0.epoch)" },
            series: fates.map { name, color, value in SVGChart.Series(name: name, color: color, values: epochs.map { Double(value($0)) }) },
            stacked: true, yLabel: "prefetches by fate", format: count)
        var html = "<h3>Prefetch fates per epoch</h3>"
        html += figure(chart, caption: "What became of each prefetch, counted in the epoch its fate was decided: useful (loaded before the read, read warm), late (still loading), wasted (evicted first or never read), skipped (already resident), failed.")
        html += "<table><tr><th>epoch</th><th>issued</th><th>useful</th><th>late</th><th>wasted</th><th>skipped</th><th>failed</th><th>accuracy</th><th>coverage</th><th>prefetched</th></tr>"
        for epoch in epochs {
            html += "<tr><td>\(epoch.epoch)</td><td>\(epoch.issued)</td><td>\(epoch.useful)</td><td>\(epoch.late)</td><td>\(epoch.wasted)</td>"
            html += "<td>\(epoch.skipped)</td><td>\(epoch.failed)</td><td>\(Format.fixed(100 * epoch.accuracy, 1)) %</td>"
            html += "<td>\(Format.fixed(100 * epoch.coverage, 1)) %</td><td>\(Format.bytes(epoch.bytesLoaded))</td></tr>"
        }
        return html + "</table><p class=\"note\">Accuracy: useful ÷ fates decided in the epoch. Coverage: reads served warm thanks to gofetch ÷ the epoch's reads.</p>"
    }

    private func budgetSection(_ report: RunReport) -> String {
        let samples = report.samples
        guard samples.count >= 2, let first = samples.first else { return "" }
        let start = min(first.wallNanoseconds, report.firstNanoseconds)
        let x = samples.map { Double($0.wallNanoseconds - start) / 1e9 }
        let chart = SVGChart.lines(
            x: x,
            series: [SVGChart.Series(name: "budget in force", color: Self.palette.budget, values: samples.map { Double($0.budgetBytes) / 1_048_576 }),
                     SVGChart.Series(name: "prefetched, not yet read", color: Self.palette.outstanding, values: samples.map { Double($0.outstandingBytes) / 1_048_576 })],
            yLabel: "MiB", format: { Format.fixed($0, $0 < 10 ? 1 : 0) })
        return "<h3>Memory budget over time</h3>" + figure(chart, caption: "The budget gofetch kept to (configuration, the memory cgroup's room, eviction feedback), and the prefetched bytes the job had not read yet.")
    }

    private func latencySection(_ report: RunReport, lead: [HistogramBucket]?) -> String {
        var html = ""
        if let lead, !lead.isEmpty {
            html += "<h3>Lead time</h3>" + figure(histogram(lead, name: "useful prefetches", color: Self.palette.useful),
                                                  caption: "How long before the job's read each useful prefetch had completed.")
        }
        if !report.coldReadLatency.isEmpty {
            html += "<h3>Cold-read latency</h3>" + figure(histogram(report.coldReadLatency, name: "cold reads", color: Self.palette.cold),
                                                          caption: "How long the job waited in each read the page cache did not serve.")
        }
        return html
    }

    private func histogram(_ buckets: [HistogramBucket], name: String, color: String) -> String {
        SVGChart.bars(categories: buckets.map { "≤ " + Self.bound($0.upToNanoseconds) },
                      series: [SVGChart.Series(name: name, color: color, values: buckets.map { Double($0.count) })],
                      yLabel: "count", format: count, labelEvery: (buckets.count + 7) / 8)
    }

    private func filesSection(_ report: RunReport) -> String {
        guard !report.topFiles.isEmpty else { return "" }
        var html = "<h3>Files by stall</h3><table><tr><th>file</th><th>size</th><th>reads</th><th>cold</th><th>stall</th></tr>"
        for file in report.topFiles {
            html += "<tr><td class=\"path\">\(e(file.path))</td><td>\(Format.bytes(file.size))</td><td>\(file.reads)</td>"
            html += "<td>\(file.coldReads)</td><td>\(Format.duration(nanoseconds: file.stallNanoseconds))</td></tr>"
        }
        return html + "</table>"
    }

    // MARK: - Helpers

    private func figure(_ svg: String, caption: String) -> String {
        "<figure>\(svg)<figcaption>\(caption)</figcaption></figure>"
    }

    private func e(_ text: String) -> String { SVGChart.escape(text) }
    private func seconds(_ value: Double) -> String { Format.fixed(value, value < 10 ? 2 : 1) }
    /// A bucket's bound, 1, 2 or 5 times a power of ten nanoseconds: "10 ms", not "10.00 ms".
    static func bound(_ nanoseconds: UInt64) -> String {
        for (scale, unit) in [(1e9, "s"), (1e6, "ms"), (1e3, "µs")] where Double(nanoseconds) >= scale {
            return "\(Format.fixed(Double(nanoseconds) / scale, 0)) \(unit)"
        }
        return "\(nanoseconds) ns"
    }
    private func count(_ value: Double) -> String { value >= 10_000 ? "\(Format.fixed(value / 1000, 0))k" : Format.fixed(value, 0) }

    static let style = """
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;max-width:980px;margin:24px auto;padding:0 16px;background:#fff}
        h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
        h3{font-size:15px;margin:22px 0 6px}code{font-size:12.5px;background:#f3f5f8;padding:1px 4px;border-radius:3px}
        .note{color:#5a6475;font-size:13px}figure{margin:6px 0 12px}figcaption{color:#5a6475;font-size:12.5px}
        svg.chart{width:100%;height:auto;max-width:720px;display:block}
        svg .tick{font-size:10.5px;fill:#5a6475}svg .label{font-size:11.5px;fill:#1d2430;font-weight:600}svg .legend{font-size:11px;fill:#1d2430}
        svg .grid{stroke:#e8ebf0;stroke-width:1}svg .axis{stroke:#9aa5b1;stroke-width:1}
        table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}th,td{border-bottom:1px solid #e8ebf0;padding:4px 10px 4px 0;text-align:left;vertical-align:top}
        th{color:#5a6475;font-weight:600}td.path{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}td.what{color:#5a6475;font-size:12px}
        .cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}.card{border:1px solid #dde2ea;border-radius:6px;padding:8px 12px;min-width:110px}
        .card .value{font-size:18px;font-weight:600}.card .name{color:#5a6475;font-size:12px}
        pre{background:#f6f8fa;padding:10px;overflow-x:auto;font-size:12px}footer{margin:32px 0 8px;color:#5a6475;font-size:12px}
        """
}
