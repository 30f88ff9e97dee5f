import Foundation
import Yams

extension Configuration {
    /// Reads a config file; keys it does not name keep their defaults.
    /// - Throws: ``ConfigurationError`` naming the key, the value and what is allowed.
    public static func load(path: String) throws(ConfigurationError) -> Configuration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(file: path, key: "", value: "", problem: "cannot read the file: \(error.localizedDescription)")
        }
        return try parse(yaml: text, file: path)
    }

    /// Parses config YAML text. `file` names the source in error messages.
    public static func parse(yaml: String, file: String = "config.yaml") throws(ConfigurationError) -> Configuration {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigurationError(file: file, key: "", value: "", problem: "not valid YAML: \(error)")
        }
        var config = Configuration()
        guard let root else { return config }  // an empty file: all defaults
        let top = try Section(node: root, path: "", file: file)

        if let node = try top.section("storage") {
            try node.string("db_path", into: &config.storage.dbPath, nonEmpty: true)
            try node.int("queue_capacity", into: &config.storage.queueCapacity, in: 1_000...100_000_000)
            try node.int("batch_size", into: &config.storage.batchSize, in: 1...1_000_000)
            try node.bool("record_events", into: &config.storage.recordEvents)
            try node.clusterStoreURL("url", into: &config.storage.url)
            try node.string("node", into: &config.storage.node, nonEmpty: true, maxLength: 255)
            try node.string("job", into: &config.storage.job, nonEmpty: false, maxLength: 255)
            if let retention = try node.section("retention") {
                try retention.double("max_age_days", into: &config.storage.retentionMaxAgeDays, in: 0...36_500)
                try retention.int("max_events", into: &config.storage.retentionMaxEvents, in: 0...Int(Int64.max))
                try retention.finish()
            }
            try node.finish()
        }
        if let node = try top.section("prefetcher") {
            try node.choice("policy_type", into: &config.prefetcher.policyType)
            try node.double("confidence_threshold", into: &config.prefetcher.confidenceThreshold, in: 0...1)
            try node.double("rate_limit_per_sec", into: &config.prefetcher.rateLimitPerSec, in: 0.001...1_000_000)
            try node.double("rate_limit_mb_per_sec", into: &config.prefetcher.rateLimitMBPerSec, in: 0...1_000_000)
            try node.int("top_k_predictions", into: &config.prefetcher.topKPredictions, in: 1...1_000)
            try node.double("max_prefetch_size_mb", into: &config.prefetcher.maxPrefetchSizeMB, in: 0.001...1_048_576)
            try node.double("memory_budget_mb", into: &config.prefetcher.memoryBudgetMB, in: 1...1_048_576)
            try node.int("executor_threads", into: &config.prefetcher.executorThreads, in: 1...256)
            try node.choice("method", into: &config.prefetcher.method)
            try node.double("memory_pressure_threshold", into: &config.prefetcher.memoryPressureThreshold, in: 0...100)
            try node.double("cgroup_budget_fraction", into: &config.prefetcher.cgroupBudgetFraction, in: 0...1)
            try node.bool("evict_consumed", into: &config.prefetcher.evictConsumed)
            try node.bool("command_line_hints", into: &config.prefetcher.commandLineHints)
            try node.finish()
        }
        if let node = try top.section("predictor") {
            if let baseline = try node.section("baseline") {
                try baseline.bool("enabled", into: &config.predictor.baselineEnabled)
                try baseline.string("model_path", into: &config.predictor.baselineModelPath, nonEmpty: true)
                try baseline.int("max_order", into: &config.predictor.baselineMaxOrder, in: 1...3)
                try baseline.finish()
            }
            if let pattern = try node.section("pattern") {
                try pattern.double("min_file_size_mb", into: &config.predictor.patternMinFileSizeMB, in: 0...1_048_576)
                try pattern.int("sequential_threshold", into: &config.predictor.patternSequentialThreshold, in: 1...1_000)
                try pattern.double("max_gap_kb", into: &config.predictor.patternMaxGapKB, in: 0...1_048_576)
                try pattern.int("strided_min_repeats", into: &config.predictor.patternStridedMinRepeats, in: 2...1_000)
                try pattern.double("lookahead_seconds", into: &config.predictor.patternLookaheadSeconds, in: 0.01...60)
                try pattern.finish()
            }
            if let lookahead = try node.section("lookahead") {
                try lookahead.int("window", into: &config.predictor.lookaheadWindow, in: 1...1_000_000)
                try lookahead.finish()
            }
            if let ml = try node.section("ml") {
                try ml.bool("enabled", into: &config.predictor.mlEnabled)
                try ml.string("model_path", into: &config.predictor.mlModelPath, nonEmpty: true)
                try ml.finish()
            }
            try node.finish()
        }
        if let node = try top.section("daemon") {
            try node.string("socket_path", into: &config.daemon.socketPath, nonEmpty: true, maxLength: 107)
            try node.octalMode("socket_mode", into: &config.daemon.socketMode)
            try node.int("max_clients", into: &config.daemon.maxClients, in: 1...65_536)
            try node.double("user_cpu_share", into: &config.daemon.userCPUShare, in: 0...1)
            try node.finish()
        }
        if let node = try top.section("trace") {
            try node.pathPrefixes("include_prefixes", into: &config.trace.includePrefixes)
            try node.pathPrefixes("exclude_prefixes", into: &config.trace.excludePrefixes)
            try node.string("preload_library", into: &config.trace.preloadLibrary, nonEmpty: false)
            try node.double("flush_interval_ms", into: &config.trace.flushIntervalMS, in: 0.1...10_000)
            try node.bool("python_hook", into: &config.trace.pythonHook)
            try node.int("open_readahead_kb", into: &config.trace.openReadaheadKB, in: 0...1_048_576)
            try node.finish()
        }
        if let node = try top.section("ingest") {
            try node.int("max_open_files", into: &config.ingest.maxOpenFiles, in: 1_000...100_000_000)
            try node.int("max_files", into: &config.ingest.maxFiles, in: 1_000...1_000_000_000)
            try node.finish()
        }
        if let node = try top.section("metrics") {
            try node.bool("csv_enabled", into: &config.metrics.csvEnabled)
            try node.string("csv_dir", into: &config.metrics.csvDirectory, nonEmpty: false)
            try node.double("interval_seconds", into: &config.metrics.intervalSeconds, in: 0.1...86_400)
            try node.double("cold_read_base_us", into: &config.metrics.coldReadBaseMicroseconds, in: 0...10_000_000)
            try node.double("warm_read_mb_per_sec", into: &config.metrics.warmReadMBPerSecond, in: 1...1_000_000)
            try node.listenAddress("prometheus_listen", into: &config.metrics.prometheusListen)
            try node.finish()
        }
        try top.finish()
        return config
    }
}

/// One YAML mapping being read: hands out typed values by key and, at the end,
/// rejects every key nobody asked for.
private final class Section {
    let mapping: Node.Mapping
    let path: String
    let file: String
    private var known: [String] = []

    init(node: Node, path: String, file: String) throws(ConfigurationError) {
        guard case .mapping(let mapping) = node else {
            throw ConfigurationError(
                file: file, key: path.isEmpty ? "(top level)" : path, value: Section.show(node),
                problem: "expected a mapping of keys to values")
        }
        self.mapping = mapping
        self.path = path
        self.file = file
    }

    private func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private func value(_ key: String) -> Node? {
        known.append(key)
        return mapping[key]
    }

    private func fail(_ key: String, _ node: Node, _ problem: String) -> ConfigurationError {
        ConfigurationError(file: file, key: keyPath(key), value: Section.show(node), problem: problem)
    }

    static func show(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return scalar.string.isEmpty ? "(empty)" : "'\(scalar.string)'"
        case .mapping: return "(a mapping)"
        case .sequence: return "(a list)"
        default: return "(an alias)"
        }
    }

    /// The plain text of a scalar, or an error that says what was expected.
    private func scalar(_ key: String, _ node: Node, expected: String) throws(ConfigurationError) -> String {
        guard case .scalar(let scalar) = node else { throw fail(key, node, "expected \(expected)") }
        let text = scalar.string
        if scalar.style == .plain, ["", "~", "null", "Null", "NULL"].contains(text) {
            throw fail(key, node, "expected \(expected), got nothing")
        }
        return text
    }

    func section(_ key: String) throws(ConfigurationError) -> Section? {
        guard let node = value(key) else { return nil }
        return try Section(node: node, path: keyPath(key), file: file)
    }

    func string(_ key: String, into target: inout String, nonEmpty: Bool, maxLength: Int = 4_096) throws(ConfigurationError) {
        guard let node = value(key) else { return }
        guard case .scalar(let scalar) = node else { throw fail(key, node, "expected a string") }
        let text = scalar.string
        if nonEmpty && text.isEmpty { throw fail(key, node, "must not be empty") }
        if text.utf8.count > maxLength { throw fail(key, node, "longer than \(maxLength) bytes") }
        target = text
    }

    func bool(_ key: String, into target: inout Bool) throws(ConfigurationError) {
        guard let node = value(key) else { return }
        switch try scalar(key, node, expected: "true or false").lowercased() {
        case "true": target = true
        case "false": target = false
        default: throw fail(key, node, "expected true or false")
        }
    }

    func int(_ key: String, into target: inout Int, in range: ClosedRange<Int>) throws(ConfigurationError) {
        guard let node = value(key) else { return }
        let text = try scalar(key, node, expected: "an integer")
        guard let number = Int(text.replacingOccurrences(of: "_", with: "")) else {
            throw fail(key, node, "expected an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        guard range.contains(number) else {
            throw fail(key, node, "out of range: allowed \(range.lowerBound) to \(range.upperBound)")
        }
        target = number
    }

    func double(_ key: String, into target: inout Double, in range: ClosedRange<Double>) throws(ConfigurationError) {
        guard let node = value(key) else { return }
        let text = try scalar(key, node, expected: "a number")
        guard let number = Double(text.replacingOccurrences(of: "_", with: "")), number.isFinite else {
            throw fail(key, node, "expected a number from \(range.lowerBound.shortText) to \(range.upperBound.shortText)")
        }
        guard range.contains(number) else {
            throw fail(key, node, "out of range: allowed \(range.lowerBound.shortText) to \(range.upperBound.shortText)")
        }
        target = number
    }

    func choice<T: RawRepresentable & CaseIterable>(_ key: String, into target: inout T) throws(ConfigurationError) where T.RawValue == String {
        guard let node = value(key) else { return }
        let allowed = T.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: " or ")
        let text = try scalar(key, node, expected: allowed)
        guard let choice = T(rawValue: text) else { throw fail(key, node, "allowed: \(allowed)") }
        target = choice
    }

    /// A permission mode such as `0600` or `"0660"`, read as octal.
    func octalMode(_ key: String, into target: inout UInt32) throws(ConfigurationError) {
        guard let node = value(key) else { return }
        let text = try scalar(key, node, expected: "an octal mode such as 0600")
        let digits = text.hasPrefix("0o") ? String(text.dropFirst(2)) : text
        guard let mode = UInt32(digits, radix: 8), mode <= 0o777 else {
            throw fail(key, node, "expected an octal mode from 0000 to 0777, such as 0600")
        }
        target = mode
    }

    func pathPrefixes(_ key: String, into target: inout [String]) throws(ConfigurationError) {
        guard let node = value(key) else { return }
        guard case .sequence(let sequence) = node else {
            throw fail(key, node, "expected a list of absolute paths, such as [\"/data\"]")
        }
        var prefixes: [String] = []
        for item in sequence {
            guard case .scalar(let scalar) = item, scalar.string.hasPrefix("/") else {
                throw fail(key, item, "each entry must be an absolute path (starting with /)")
            }
            guard !scalar.string.contains(":") else {
                throw fail(key, item, "a path prefix may not contain ':' (the shim's list separator)")
            }
            prefixes.append(scalar.string.count > 1 && scalar.string.hasSuffix("/") ? String(scalar.string.dropLast()) : scalar.string)
        }
        target = prefixes
    }

    /// `""` or a PostgreSQL URL (``ClusterStoreAddress``).
    func clusterStoreURL(_ key: String, into target: inout String) throws(ConfigurationError) {
        guard let node = value(key) else { return }
        guard case .scalar(let scalar) = node else { throw fail(key, node, "expected a string") }
        let text = scalar.string
        guard !text.isEmpty else { target = ""; return }
        do {
            _ = try ClusterStoreAddress(parsing: text)
        } catch {
            throw fail(key, node, error.description)
        }
        target = text
    }

    /// `""`, `unix:/absolute/path`, or `HOST:PORT` with a loopback host.
    func listenAddress(_ key: String, into target: inout String) throws(ConfigurationError) {
        guard let node = value(key) else { return }
        guard case .scalar(let scalar) = node else { throw fail(key, node, "expected a string") }
        let text = scalar.string
        guard !text.isEmpty else { target = ""; return }
        guard let address = ListenAddress(text) else {
            throw fail(key, node, "allowed: \"\" (off), \"127.0.0.1:PORT\", \"localhost:PORT\", \"[::1]:PORT\" (PORT 1 to 65535) or \"unix:/absolute/path\"")
        }
        _ = address
        target = text
    }

    func finish() throws(ConfigurationError) {
        for (keyNode, valueNode) in mapping {
            let key = keyNode.string ?? Section.show(keyNode)
            guard known.contains(key) else {
                throw ConfigurationError(
                    file: file, key: keyPath(key), value: Section.show(valueNode),
                    problem: "unknown key; allowed here: \(known.joined(separator: ", "))")
            }
        }
    }
}

extension Double {
    fileprivate var shortText: String {
        self == rounded() && abs(self) < 1e15 ? String(Int64(self)) : String(self)
    }
}
