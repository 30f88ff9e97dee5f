// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "gofetch",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gofetch", targets: ["gofetch"]),
        .library(name: "GoFetchCore", targets: ["GoFetchCore"]),
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
    ],
    targets: [
        // C shims for what Glibc's module map lacks (cachestat, fanotify, SO_PEERCRED, recvmmsg),
        // and the BLAS calls of the GRU predictor (OpenBLAS, Debian's libopenblas-dev).
        .target(name: "CGoFetchLinux", linkerSettings: [.linkedLibrary("openblas"), .linkedLibrary("bpf")]),
        .target(
            name: "GoFetchCore",
            dependencies: [
                "CGoFetchLinux",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "gofetch",
            dependencies: [
                "GoFetchCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Ingest and store throughput benchmark: `swift run -c release gofetch-bench-ingest`.
        .executableTarget(
            name: "gofetch-bench-ingest",
            dependencies: ["GoFetchCore"],
            path: "bench/ingest"
        ),
        // Markov training and prediction cost: `swift run -c release gofetch-bench-predict`.
        .executableTarget(
            name: "gofetch-bench-predict",
            dependencies: ["GoFetchCore"],
            path: "bench/predict"
        ),
        // GRU training throughput and inference latency: `swift run -c release gofetch-bench-gru`.
        .executableTarget(
            name: "gofetch-bench-gru",
            dependencies: ["GoFetchCore"],
            path: "bench/gru"
        ),
        .testTarget(
            name: "GoFetchCoreTests",
            dependencies: ["GoFetchCore"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
