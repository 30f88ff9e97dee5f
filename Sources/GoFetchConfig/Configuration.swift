import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Everything `config.yaml` can set, with a default for each key.
///
/// The seed's keys keep the seed's meaning; `docs/config.md` lists every key.
public struct Configuration: Sendable, Equatable {
    public var storage = Storage()
    public var prefetcher = Prefetcher()
    public var predictor = Predictor()
    public var daemon = Daemon()
    public var trace = Trace()
    public var ingest = Ingest()
    public var metrics = Metrics()

    public init() {}

    public struct Storage: Sendable, Equatable {
        /// SQLite trace store (seed: `storage.db_path`); by default in the state folder.
        public var dbPath = Configuration.defaultStateDirectory() + "/traces.db"
        /// Events the writer queue holds before it drops (and counts) new ones.
        public var queueCapacity = 1_000_000
        /// Most events committed in one transaction.
        public var batchSize = 20_000
        /// Events older than this many days are deleted; 0 keeps all.
        public var retentionMaxAgeDays = 0.0
        /// Only the newest this many events are kept; 0 keeps all.
        public var retentionMaxEvents = 0
        /// The cluster's shared store (`docs/store.md`): a PostgreSQL URL
        /// (``ClusterStoreAddress``) the daemon copies its committed runs to, and
        /// `train`, `eval`, `stats` and `report` read; `""`: this machine's file only.
        public var url = ""

        /// The cluster's store that `url` names; `nil` when it names none.
        public func clusterAddress() throws(ClusterStoreAddress.Invalid) -> ClusterStoreAddress? {
            url.isEmpty ? nil : try ClusterStoreAddress(parsing: url)
        }
        /// This daemon's name in the cluster's store (default: the host name).
        public var node = ProcessInfo.processInfo.hostName
        /// The job its runs are filed under in the cluster's store (`gofetch run --job`).
        public var job = ""
        /// Write each event to the store (false: runs, samples and summaries only;
        /// prediction and prefetching are the same, `train` and `eval` have no trace).
        public var recordEvents = true
    }

    public enum PolicyType: String, Sendable, CaseIterable { case heap, fifo }

    public struct Prefetcher: Sendable, Equatable {
        /// Queue order of prefetch requests (seed: `heap` or `fifo`).
        public var policyType = PolicyType.heap
        /// Minimum confidence to prefetch (seed).
        public var confidenceThreshold = 0.6
        /// Maximum prefetch operations per second (seed).
        public var rateLimitPerSec = 10_000.0
        /// Maximum bytes per second read by prefetching; 0 is unlimited.
        public var rateLimitMBPerSec = 0.0
        /// Number of predictions considered per access (seed).
        public var topKPredictions = 5
        /// Files larger than this are prefetched only up to this size (seed).
        public var maxPrefetchSizeMB = 16.0
        /// Prefetched bytes not yet read by the job, at most.
        public var memoryBudgetMB = 1_024.0
        /// I/O threads of the executor: the most prefetch reads at the storage at once
        /// (how many are follows the storage's answers).
        public var executorThreads = 32
        /// `auto` chooses per device (hint, checked with cachestat, else read).
        public var method = Method.auto
        /// PSI memory "some avg10" percentage above which prefetching pauses.
        public var memoryPressureThreshold = 10.0
        /// Share of a client's memory-cgroup room (limit − anonymous memory − active page cache) the budget may use.
        public var cgroupBudgetFraction = 0.5
        /// When an epoch's data set does not fit the clients' memory cgroup, give back
        /// the pages of each file the epoch has read once the job closes it.
        public var evictConsumed = true
        /// `gofetch run`: warm the folders the job's command line names (as arguments,
        /// or in the script or configuration it names) from the job's start, until the
        /// job's opens show it reads elsewhere.
        public var commandLineHints = true
    }

    public enum Method: String, Sendable, CaseIterable {
        case auto, fadvise, readahead, read
    }

    public struct Predictor: Sendable, Equatable {
        /// Markov predictor over files (seed: `predictor.baseline.enabled`).
        public var baselineEnabled = true
        /// Where `gofetch train` saves the Markov model and the daemon loads it from.
        public var baselineModelPath = Configuration.defaultStateDirectory() + "/models/markov.gfmk"
        /// Longest Markov context, 1 to 3.
        public var baselineMaxOrder = 3
        /// Intra-file pattern detector: files below this size are left to the file-level predictors.
        public var patternMinFileSizeMB = 1.0
        /// Sequential reads in a row before a sequential pattern counts.
        public var patternSequentialThreshold = 3
        /// A gap up to this many KiB between reads is still sequential.
        public var patternMaxGapKB = 64.0
        /// Equal strides in a row before a strided pattern counts.
        public var patternStridedMinRepeats = 3
        /// How far ahead of a reader to warm, in seconds of its read rate.
        public var patternLookaheadSeconds = 0.5
        /// Files the lookahead warms ahead of the job's position in the announced order.
        public var lookaheadWindow = 64
        /// GRU predictor (seed: `predictor.ml.enabled`).
        public var mlEnabled = false
        /// Where the GRU's weights live (seed: `predictor.ml.model_path`).
        public var mlModelPath = Configuration.defaultStateDirectory() + "/models/prefetch_gru.safetensors"
    }

    public struct Daemon: Sendable, Equatable {
        /// The Unix socket trace sources connect to.
        public var socketPath = Configuration.defaultSocketPath()
        /// Permission bits of the socket file.
        public var socketMode: UInt32 = 0o600
        /// Clients beyond this many connections are refused (and counted).
        public var maxClients = 1_024
        /// While several users are connected, the share of one core the daemon spends
        /// on any one user's messages, at most; a user past it waits (its sockets are
        /// left unread), so a flood from one client costs the others little.
        /// 0 turns the bound off.
        public var userCPUShare = 0.1
    }

    public struct Trace: Sendable, Equatable {
        /// When not empty, only paths under one of these prefixes are traced.
        public var includePrefixes: [String] = []
        /// Paths under these prefixes are never traced (Python's own install is added by the shim).
        public var excludePrefixes = ["/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/etc", "/run", "/var/lib/dpkg"]
        /// The preload shim; empty means next to the `gofetch` executable.
        public var preloadLibrary = ""
        /// The shim sends buffered events at least this often.
        public var flushIntervalMS = 2.0
        /// `gofetch run` (and `gofetch env`) load the Python client into every Python
        /// interpreter the job starts, which announces each DataLoader epoch's files in
        /// the order it will read them (exact lookahead, no change to the script).
        public var pythonHook = true
        /// The shim warms a file of at most this many KiB when the job opens it, on FUSE
        /// and network file systems, while the job reads such files whole (one round trip
        /// to the storage instead of the two or three of the kernel's first readahead).
        /// 0 turns it off.
        public var openReadaheadKB = 1_024
    }

    public struct Ingest: Sendable, Equatable {
        /// Entries of the (pid, fd) → file table, at most.
        public var maxOpenFiles = 1_000_000
        /// Distinct files ingest remembers, at most.
        public var maxFiles = 2_000_000
    }

    public struct Metrics: Sendable, Equatable {
        /// Write `metrics_<policy>.csv` (seed) every `interval_seconds` while prefetching.
        public var csvEnabled = true
        /// Folder of the CSV; empty means the trace store's folder.
        public var csvDirectory = ""
        /// Seconds per CSV row.
        public var intervalSeconds = 5.0
        /// A read is cold when it took longer than this many µs plus its bytes at `warm_read_mb_per_sec`.
        public var coldReadBaseMicroseconds = 100.0
        /// The slowest rate (MB/s) a read served from the page cache is assumed to move.
        public var warmReadMBPerSecond = 1_000.0
        /// Prometheus text exposition: `""` (off), `HOST:PORT` on loopback, or `unix:/path`.
        public var prometheusListen = ""
    }

    /// Where gofetch keeps its state (the trace store, the metrics CSV, trained models)
    /// unless the config or `--db` says otherwise: `$XDG_STATE_HOME/gofetch`, else
    /// `$HOME/.local/state/gofetch`, else `/var/lib/gofetch` (the system daemon's,
    /// which its unit names). Never the current folder.
    public static func defaultStateDirectory() -> String {
        if let state = getenv("XDG_STATE_HOME"), state.pointee == 47 /* absolute */ {
            return String(cString: state) + "/gofetch"
        }
        if let home = getenv("HOME"), home.pointee == 47 {
            let path = String(cString: home)
            return (path == "/" ? "" : path) + "/.local/state/gofetch"
        }
        return "/var/lib/gofetch"
    }

    /// `$XDG_RUNTIME_DIR/gofetch-<uid>/gofetch.sock`; without it, root's is
    /// `/run/gofetch/gofetch.sock` (the system daemon's: nobody else can make that
    /// folder first) and another user's is under `/tmp` (where someone may make it
    /// first: the daemon then refuses to start and clients refuse to send, see
    /// docs/security.md). The preload shim and the Python client compute the same default.
    public static func defaultSocketPath() -> String {
        var base = "/tmp"
        if let runtime = getenv("XDG_RUNTIME_DIR"), runtime.pointee != 0 {
            base = String(cString: runtime)
        } else if getuid() == 0 {
            return "/run/gofetch/gofetch.sock"
        }
        return "\(base)/gofetch-\(getuid())/gofetch.sock"
    }
}
