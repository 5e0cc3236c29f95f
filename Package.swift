// swift-tools-version: 6.1
//
// Playhead: a content-analytics pipeline. See README.md and docs/architecture.md.
//
// Module graph (no cycles; only the CLI knows every module):
//
//   PlayheadEvents   the event: schemas, fast decoder, validation, binary record codec  -> CPlayhead (SSE2 string scan)
//   PlayheadLog      the log interface + the embedded segment log (bytes in, bytes out)  -> CPlayhead (CRC-32C)
//   PlayheadIngest   the HTTP edge                                          -> PlayheadEvents, PlayheadLog, PlayheadMetrics, Gzip
//   CZstd, Parquet   the Parquet writer (no Playhead dependency)
//   CZlib, CDeflate, Gzip  gzip decoding: several members, cut-off data an error; a whole body with
//                    libdeflate, explained by zlib when refused (no Playhead dependency)
//   S3               SigV4 signer and S3 client (no Playhead dependency)
//   CRdKafka, RdKafka  the librdkafka wrapper (no Playhead dependency)
//   PlayheadKafka    the Kafka log backend                                  -> PlayheadLog, RdKafka
//   PlayheadLake     batching, exactly-once files, dedup, rollups           -> PlayheadEvents, PlayheadLog, Parquet, S3, CPlayhead, Gzip
//   PlayheadMetrics  instruments, content KPIs consumer, live page          -> PlayheadEvents, PlayheadLog
//   playhead         the CLI                                                -> everything (and CPlayhead: mallopt)
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Playhead",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "playhead", targets: ["playhead"]),
        .library(name: "Parquet", targets: ["Parquet"]),
        .library(name: "S3", targets: ["S3"]),
        .library(name: "RdKafka", targets: ["RdKafka"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // MARK: Leaf libraries (no dependency on the rest of Playhead)
        .systemLibrary(
            name: "CZstd",
            path: "Sources/CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .systemLibrary(name: "CPlayhead", path: "Sources/CPlayhead"),
        .systemLibrary(
            name: "CZlib",
            path: "Sources/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .systemLibrary(
            name: "CDeflate",
            path: "Sources/CDeflate",
            pkgConfig: "libdeflate",
            providers: [.apt(["libdeflate-dev"])]
        ),
        .target(
            name: "Gzip",
            dependencies: ["CZlib", "CDeflate", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Parquet",
            dependencies: ["CZstd"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "S3",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "CRdKafka",
            path: "Sources/CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .target(
            name: "RdKafka",
            dependencies: [
                "CRdKafka",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Playhead stages
        .target(
            name: "PlayheadEvents",
            dependencies: ["CPlayhead"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlayheadLog",
            dependencies: [
                "CPlayhead",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlayheadKafka",
            dependencies: [
                "PlayheadLog", "RdKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlayheadMetrics",
            dependencies: [
                "PlayheadEvents", "PlayheadLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlayheadIngest",
            dependencies: [
                "PlayheadEvents", "PlayheadLog", "PlayheadMetrics", "Gzip",
                .product(name: "Crypto", package: "swift-crypto"),  // write keys held as digests
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlayheadLake",
            dependencies: [
                "PlayheadEvents", "PlayheadLog", "Parquet", "S3", "CPlayhead", "Gzip",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlayheadLoadgen",
            dependencies: [
                "PlayheadEvents",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "playhead",
            dependencies: [
                "PlayheadEvents", "PlayheadLog", "PlayheadIngest", "PlayheadKafka", "PlayheadLake",
                "PlayheadMetrics", "PlayheadLoadgen", "CPlayhead", "S3",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "CompressNIO", package: "compress-nio"),  // loadgen --gzip
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Benchmarks
        .executableTarget(
            name: "events-bench",
            dependencies: ["PlayheadEvents"],
            path: "Benchmarks/EventsBench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "bare-nio-server",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Benchmarks/BareNIOServer",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "content-aggregator-bench",
            dependencies: ["PlayheadMetrics"],
            path: "Benchmarks/ContentAggregator",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "parquet-bench",
            dependencies: ["Parquet"],
            path: "Benchmarks/ParquetBench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "kafka-bench",
            dependencies: [
                "PlayheadKafka", "PlayheadLog", "RdKafka",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/KafkaBench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "log-bench",
            dependencies: [
                "PlayheadLog",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/LogBench",
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        .executableTarget(
            name: "log-crash-writer",
            dependencies: [
                "PlayheadLog",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/LogCrashWriter",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlayheadTestSupport",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/PlayheadTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "ParquetTests", dependencies: ["Parquet", "PlayheadTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "S3Tests",
            dependencies: [
                "S3", "PlayheadTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "RdKafkaTests", dependencies: ["RdKafka", "PlayheadTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "PlayheadEventsTests", dependencies: ["PlayheadEvents", "PlayheadTestSupport", "FuzzChecks"], swiftSettings: swiftSettings),
        .testTarget(name: "PlayheadLogTests", dependencies: ["PlayheadLog", "PlayheadTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "PlayheadIngestTests",
            dependencies: [
                "PlayheadIngest", "PlayheadEvents", "PlayheadLog", "PlayheadTestSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GzipTests",
            dependencies: [
                "Gzip",
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlayheadLakeTests",
            dependencies: [
                "PlayheadLake", "PlayheadEvents", "PlayheadLog", "Parquet", "S3", "PlayheadTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlayheadMetricsTests",
            dependencies: [
                "PlayheadMetrics", "PlayheadLog", "PlayheadTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlayheadKafkaTests",
            dependencies: [
                "PlayheadKafka", "PlayheadLog", "RdKafka", "PlayheadTestSupport",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // MARK: Fuzzing (docs/fuzzing.md)
        // The properties every input must keep; the fuzzer's driver and the corpus tests call them.
        .target(name: "FuzzChecks", dependencies: ["PlayheadEvents", "PlayheadLog", "Gzip", "S3"], path: "Fuzz/Checks", swiftSettings: swiftSettings),
        .testTarget(name: "DeployTests", dependencies: ["PlayheadTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["PlayheadEvents", "PlayheadLoadgen", "PlayheadTestSupport", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
    ]
)

// The libFuzzer driver, only for `scripts/fuzz` (PLAYHEAD_FUZZ=1 and `-sanitize=fuzzer,address`):
// an ordinary build could not link it (libFuzzer is linked in only by `-sanitize=fuzzer`).
if Context.environment["PLAYHEAD_FUZZ"] == "1" {
    package.targets.append(.systemLibrary(name: "CFuzzer", path: "Fuzz/CFuzzer"))
    package.targets.append(
        .executableTarget(
            name: "playhead-fuzz", dependencies: ["FuzzChecks", "CFuzzer"], path: "Fuzz/Driver",
            swiftSettings: swiftSettings + [.unsafeFlags(["-parse-as-library"])]
        )
    )
    package.products.append(.executable(name: "playhead-fuzz", targets: ["playhead-fuzz"]))
}

// Faster iteration on one module: `PLAYHEAD_ONLY=Parquet,ParquetTests,CZstd,PlayheadTestSupport swift test`
// builds and tests only the listed targets (list every in-package target they depend on).
if let only = Context.environment["PLAYHEAD_ONLY"], !only.isEmpty {
    let names = Set(only.split(separator: ",").map { String($0) })
    package.targets = package.targets.filter { names.contains($0.name) }
    package.products = package.products.filter { product in product.name != "playhead" && names.contains(product.name) }
}
