import Foundation

/// The side-by-side that `bench/run` measured (its `results.json`): per scenario,
/// each mode's stall and epoch time per epoch, as the job itself timed them.
public struct BenchResults: Sendable, Decodable {
    public struct Mode: Sendable, Decodable {
        public var status: String?
        /// Seconds the training loop waited in `next()` per epoch.
        public var stallByEpochS: [Double]?
        public var epochByEpochS: [Double]?
        public var gofetchSummaryFile: String?
        /// The run's folder under the results' folder (`runs/<scenario>/<mode>` or, with
        /// --repeat, the median run's `runs/<scenario>/<mode>.<round>`); absent in older results.
        public var runDir: String?
    }

    public struct Scenario: Sendable, Decodable {
        public var title: String?
        public var modes: [String: Mode]
    }

    public struct Meta: Sendable, Decodable {
        /// What each mode is (`bench/harness/scenarios.py`).
        public var modes: [String: String]?
        public var modeOrder: [String]?
        public var started: String?
        public var gitHead: String?
    }

    public var scenarios: [String: Scenario]
    public var meta: Meta?

    public static func load(path: String) throws(ReportError) -> BenchResults {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ReportError(problem: "cannot read \(path) (give the results.json that bench/run wrote)")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try decoder.decode(BenchResults.self, from: data)
        } catch {
            throw ReportError(problem: "\(path) is not a bench/run results.json: \(error)")
        }
    }

    /// The modes that ran, in the bench's order, then any others by name.
    public func modes(of scenario: Scenario) -> [(name: String, mode: Mode)] {
        let order = meta?.modeOrder ?? ["no-prefetch", "loader", "warmup", "gofetch", "transparent", "warm"]
        let ran = scenario.modes.filter { $0.value.status == "ok" && !($0.value.stallByEpochS ?? []).isEmpty }
        let known = order.compactMap { name in ran[name].map { (name, $0) } }
        let others = ran.keys.filter { !order.contains($0) }.sorted().map { ($0, ran[$0]!) }
        return known + others
    }

    /// Scenarios in name order, S1 before S1-cap.
    public var scenarioNames: [String] { scenarios.keys.sorted() }
}
