// swift-tools-version:6.1
import PackageDescription

// The daemon's hot path (events in, predictions, the store) without the run-time
// exclusivity checks of class properties: a call into the runtime per access, a
// tenth of the engine thread's CPU (bench/daemon-cost). The checks stay on in debug
// builds, where the tests run.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "gofetch",
    products: [
        .executable(name: "gofetch", targets: ["gofetch"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // The modules follow the data flow (docs/architecture.md): each may use only
        // the modules listed as its dependencies, so the compiler keeps the layering.
        //
        //   GoFetchSystem  ←  GoFetchEvents  ←  GoFetchConfig
        //        ↑ trace sources → ingest → predict → schedule → execute → metrics
        //        ↑ (the store beside ingest)                     runtime wires them all

        // C shims, one per linker need: Linux calls Glibc's module map lacks
        // (cachestat, fanotify, SO_PEERCRED, recvmmsg; libc only), the GRU's BLAS calls
        // (OpenBLAS), the eBPF loader (libbpf) and SQLite's variadic configuration call.
        .target(name: "CGoFetchLinux"),
        .target(name: "CGoFetchBLAS", linkerSettings: [.linkedLibrary("openblas")]),
        .target(name: "CGoFetchBPF", linkerSettings: [.linkedLibrary("bpf")]),
        .target(name: "CGoFetchSQLite", linkerSettings: [.linkedLibrary("sqlite3")]),

        // System calls (one thin layer, typed errors) and process facts.
        .target(
            name: "GoFetchSystem",
            dependencies: ["CGoFetchLinux", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // The event model, the wire format, and the measures on events (the read rule, latency histograms).
        .target(
            name: "GoFetchEvents",
            dependencies: ["GoFetchSystem", .product(name: "Histogram", package: "hdrhistogram-swift")],
            swiftSettings: hotPath
        ),
        // config.yaml: the settings every stage reads.
        .target(
            name: "GoFetchConfig",
            dependencies: ["GoFetchSystem", "GoFetchEvents", .product(name: "Yams", package: "Yams")]
        ),
        // Trace sources: fanotify, eBPF, the cgroup tracer.
        .target(
            name: "GoFetchTraceSources",
            dependencies: [
                "GoFetchSystem", "GoFetchEvents", "GoFetchConfig", "CGoFetchLinux", "CGoFetchBPF",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Ingest: the daemon's socket, the file catalog, the directory lister, users' shares.
        .target(
            name: "GoFetchIngest",
            dependencies: [
                "GoFetchSystem", "GoFetchEvents", "GoFetchConfig", "GoFetchTraceSources", "CGoFetchLinux",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        // The trace store (SQLite through GRDB), beside ingest; the cluster's shared
        // store (PostgreSQL through PostgresNIO) that committed runs are copied to.
        .target(
            name: "GoFetchStore",
            dependencies: [
                "GoFetchSystem", "GoFetchEvents", "GoFetchConfig", "CGoFetchSQLite",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        // Predictors: lookahead, Markov, GRU, patterns, the data-set tree, offline evaluation.
        .target(
            name: "GoFetchPredict",
            dependencies: [
                "GoFetchSystem", "GoFetchEvents", "GoFetchConfig", "GoFetchStore", "CGoFetchBLAS",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        // The executor: page-cache reads and their concurrency; the cache tools.
        .target(
            name: "GoFetchExecute",
            dependencies: [
                "GoFetchSystem", "GoFetchEvents", "CGoFetchLinux",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        // The scheduler and the engine that runs predictors → scheduler → executor; the ledger.
        .target(
            name: "GoFetchSchedule",
            dependencies: [
                "GoFetchSystem", "GoFetchEvents", "GoFetchConfig", "GoFetchIngest", "GoFetchPredict", "GoFetchExecute",
                "CGoFetchLinux",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        // Metrics: the run summary, the CSV reporter, Prometheus, the HTML report.
        .target(
            name: "GoFetchMetrics",
            dependencies: [
                "GoFetchSystem", "GoFetchEvents", "GoFetchConfig", "GoFetchIngest", "GoFetchStore",
                "GoFetchPredict", "GoFetchSchedule", "GoFetchExecute",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The runtime that wires the stages into a daemon or a traced job.
        .target(
            name: "GoFetchRuntime",
            dependencies: [
                "GoFetchSystem", "GoFetchEvents", "GoFetchConfig", "GoFetchTraceSources", "GoFetchIngest",
                "GoFetchStore", "GoFetchPredict", "GoFetchSchedule", "GoFetchExecute", "GoFetchMetrics",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "gofetch",
            dependencies: [
                "GoFetchSystem", "GoFetchEvents", "GoFetchConfig", "GoFetchTraceSources", "GoFetchIngest",
                "GoFetchStore", "GoFetchPredict", "GoFetchSchedule", "GoFetchExecute", "GoFetchMetrics", "GoFetchRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Ingest and store throughput benchmark: `swift run -c release gofetch-bench-ingest`.
        .executableTarget(
            name: "gofetch-bench-ingest",
            dependencies: [
                "GoFetchSystem", "GoFetchEvents", "GoFetchConfig", "GoFetchIngest", "GoFetchStore", "GoFetchRuntime",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "bench/ingest"
        ),
        // Markov training and prediction cost: `swift run -c release gofetch-bench-predict`.
        .executableTarget(
            name: "gofetch-bench-predict",
            dependencies: ["GoFetchEvents", "GoFetchConfig", "GoFetchStore", "GoFetchPredict"],
            path: "bench/predict"
        ),
        // GRU training throughput and inference latency: `swift run -c release gofetch-bench-gru`.
        .executableTarget(
            name: "gofetch-bench-gru",
            dependencies: ["GoFetchEvents", "GoFetchConfig", "GoFetchStore", "GoFetchPredict"],
            path: "bench/gru"
        ),
        // Swift Testing; beside the C, Python and end-to-end tests under tests/.
        .testTarget(
            name: "GoFetchTests",
            dependencies: [
                "GoFetchSystem", "GoFetchEvents", "GoFetchConfig", "GoFetchTraceSources", "GoFetchIngest",
                "GoFetchStore", "GoFetchPredict", "GoFetchSchedule", "GoFetchExecute", "GoFetchMetrics", "GoFetchRuntime",
                "CGoFetchLinux",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "tests/swift/GoFetchTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)

