@testable import GoFetchConfig
import Testing

@Suite("config.yaml")
struct ConfigurationTests {
    @Test("an empty file keeps every default")
    func emptyFileGivesDefaults() throws {
        #expect(try Configuration.parse(yaml: "") == Configuration())
        #expect(try Configuration.parse(yaml: "# only a comment\n") == Configuration())
    }

    @Test("the seed README's example reads with the seed's meaning")
    func seedExample() throws {
        let config = try Configuration.parse(yaml: """
            storage:
              db_path: "traces.db"

            prefetcher:
              policy_type: "fifo"          # Options: "heap" or "fifo"
              confidence_threshold: 0.7     # Minimum confidence to prefetch
              rate_limit_per_sec: 25        # Max prefetch operations per second
              top_k_predictions: 3          # Number of files to predict
              max_prefetch_size_mb: 16      # Maximum file size to prefetch

            predictor:
              baseline:
                enabled: true               # Markov chain predictor
              ml:
                enabled: false              # GRU neural network predictor
                model_path: "models/prefetch_gru.pt"
            """)
        #expect(config.storage.dbPath == "traces.db")
        #expect(config.prefetcher.policyType == .fifo)
        #expect(config.prefetcher.confidenceThreshold == 0.7)
        #expect(config.prefetcher.rateLimitPerSec == 25)
        #expect(config.prefetcher.topKPredictions == 3)
        #expect(config.prefetcher.maxPrefetchSizeMB == 16)
        #expect(config.predictor.baselineEnabled)
        #expect(!config.predictor.mlEnabled)
        #expect(config.predictor.mlModelPath == "models/prefetch_gru.pt")
    }

    @Test("the project's own keys")
    func projectKeys() throws {
        let config = try Configuration.parse(yaml: """
            daemon:
              socket_path: /tmp/x/gofetch.sock
              socket_mode: 0660
              max_clients: 10
            trace:
              include_prefixes: [/data, /mnt/dataset/]
              exclude_prefixes: []
              flush_interval_ms: 5
              python_hook: false
              open_readahead_kb: 256
            storage:
              retention:
                max_age_days: 7
                max_events: 1_000_000
            ingest:
              max_files: 5000
            predictor:
              baseline:
                max_order: 2
              pattern:
                strided_min_repeats: 4
                max_gap_kb: 16
              lookahead:
                window: 128
            prefetcher:
              method: read
              executor_threads: 8
            """)
        #expect(config.daemon.socketPath == "/tmp/x/gofetch.sock")
        #expect(config.daemon.socketMode == 0o660)
        #expect(config.daemon.maxClients == 10)
        #expect(config.trace.includePrefixes == ["/data", "/mnt/dataset"])
        #expect(config.trace.excludePrefixes.isEmpty)
        #expect(config.trace.flushIntervalMS == 5)
        #expect(config.trace.pythonHook == false)
        #expect(Configuration().trace.pythonHook == true)
        #expect(config.trace.openReadaheadKB == 256)
        #expect(Configuration().trace.openReadaheadKB == 1_024)
        #expect(config.storage.retentionMaxAgeDays == 7)
        #expect(config.storage.retentionMaxEvents == 1_000_000)
        #expect(config.ingest.maxFiles == 5000)
        #expect(config.predictor.baselineMaxOrder == 2)
        #expect(config.predictor.patternStridedMinRepeats == 4)
        #expect(config.predictor.patternMaxGapKB == 16)
        #expect(config.predictor.lookaheadWindow == 128)
        #expect(config.prefetcher.method == .read)
        #expect(config.prefetcher.executorThreads == 8)
    }

    /// The error text a user sees for `yaml`.
    private func error(_ yaml: String) -> String {
        do {
            _ = try Configuration.parse(yaml: yaml, file: "bad.yaml")
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test("an unknown key names the key and what is allowed")
    func unknownKey() {
        let text = error("prefetcher:\n  polcy_type: heap\n")
        #expect(text.contains("bad.yaml"))
        #expect(text.contains("prefetcher.polcy_type"))
        #expect(text.contains("unknown key"))
        #expect(text.contains("policy_type"))
        #expect(error("storge:\n  db_path: x\n").contains("storge"))
    }

    @Test("a wrong type names the key, the value and the expected type")
    func wrongType() {
        let text = error("prefetcher:\n  top_k_predictions: five\n")
        #expect(text.contains("prefetcher.top_k_predictions"))
        #expect(text.contains("'five'"))
        #expect(text.contains("integer"))
        #expect(error("predictor:\n  ml:\n    enabled: maybe\n").contains("true or false"))
        #expect(error("prefetcher: 3\n").contains("expected a mapping"))
        #expect(error("trace:\n  include_prefixes: /data\n").contains("list of absolute paths"))
        #expect(error("trace:\n  include_prefixes: [data]\n").contains("absolute path"))
        #expect(error("storage:\n  db_path:\n").contains("must not be empty"))
    }

    @Test("an out-of-range value names the allowed range")
    func outOfRange() {
        let text = error("prefetcher:\n  confidence_threshold: 1.5\n")
        #expect(text.contains("prefetcher.confidence_threshold"))
        #expect(text.contains("'1.5'"))
        #expect(text.contains("allowed 0 to 1"))
        #expect(error("prefetcher:\n  policy_type: lifo\n").contains("\"heap\" or \"fifo\""))
        #expect(error("daemon:\n  socket_mode: 0999\n").contains("octal mode"))
        #expect(error("prefetcher:\n  rate_limit_per_sec: 0\n").contains("out of range"))
    }

    @Test("the cluster's store: PostgreSQL URLs over TCP or a Unix socket, and what is wrong with the others")
    func clusterStoreURL() throws {
        let tcp = try ClusterStoreAddress(parsing: "postgresql://gofetch:secret@db.internal:6432/traces")
        #expect(tcp.endpoint == .tcp(host: "db.internal", port: 6432))
        #expect(tcp.user == "gofetch" && tcp.password == "secret" && tcp.database == "traces")
        #expect(!tcp.description.contains("secret"))
        let socket = try ClusterStoreAddress(parsing: "postgres://gofetch@/gofetch?host=/run/postgresql")
        #expect(socket.endpoint == .unix(path: "/run/postgresql/.s.PGSQL.5432"))
        #expect(try ClusterStoreAddress(parsing: "postgresql://u@h/d").endpoint == .tcp(host: "h", port: 5432))

        let loaded = try Configuration.parse(yaml: "storage:\n  url: postgresql://u@/d?host=/tmp/pg\n  node: worker-3\n  job: resnet\n", file: "c.yaml")
        #expect(loaded.storage.url == "postgresql://u@/d?host=/tmp/pg")
        #expect(loaded.storage.node == "worker-3" && loaded.storage.job == "resnet")
        #expect(Configuration().storage.url.isEmpty && !Configuration().storage.node.isEmpty)

        #expect(error("storage:\n  url: mysql://u@h/d\n").contains("not a PostgreSQL URL"))
        #expect(error("storage:\n  url: postgresql://h/d\n").contains("names no user"))
        #expect(error("storage:\n  url: postgresql://u@h\n").contains("names no database"))
        #expect(error("storage:\n  url: postgresql://u@/d\n").contains("names no host"))
        #expect(error("storage:\n  url: postgresql://u@/d?host=run\n").contains("not an absolute folder"))
        #expect(error("storage:\n  url: postgresql://u@h/d?sslmode=require\n").contains("unknown parameter 'sslmode'"))
        #expect(error("storage:\n  node: ''\n").contains("must not be empty"))
    }

    @Test("YAML that does not parse is reported as such")
    func badSyntax() {
        #expect(error("storage: [unclosed\n").contains("not valid YAML"))
    }

    @Test("a missing config file is a clear error")
    func missingFile() {
        #expect(throws: ConfigurationError.self) { try Configuration.load(path: "/nonexistent/gofetch.yaml") }
    }
}
