// swift-tools-version: 6.1
// The package of swift-durable-objects: one executable (`durable`) and the libraries it is made of.
// One module per job: wire / storage / model / node / gateway / client (the README's Layout table lists them).

import Foundation
import PackageDescription

/// CI sets `DURABLE_WARNINGS_AS_ERRORS=1` so that a warning in our own modules fails the build
/// (dependencies are not affected: SwiftPM builds them with their warnings suppressed).
let strictSettings: [SwiftSetting] =
    ProcessInfo.processInfo.environment["DURABLE_WARNINGS_AS_ERRORS"] == "1"
    ? [.unsafeFlags(["-warnings-as-errors"])] : []

let package = Package(
    name: "swift-durable-objects",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "durable", targets: ["durable"]),
        .library(name: "DurableStorage", targets: ["DurableStorage"]),
        .library(name: "DurableObjects", targets: ["DurableObjects"]),
        .library(name: "DurableObjectsTesting", targets: ["DurableObjectsTesting"]),
        .library(name: "DurableExamples", targets: ["DurableExamples"]),
        .library(name: "DurableClient", targets: ["DurableClient"]),
        .library(name: "DurableApp", targets: ["DurableApp"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.30.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.1.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.29.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.3.0"),
        // Tracing: the API every module uses, and the OTLP exporter the processes bootstrap (OTLP/HTTP only: no gRPC).
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.2"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        // Only for `swift package generate-documentation` (make docs): no target depends on it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.4.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRocksDB",
            pkgConfig: "rocksdb",
            providers: [.apt(["librocksdb-dev"])]
        ),
        // Spans and W3C trace context in call metadata, shared by every module a call crosses.
        .target(
            name: "DurableTracing",
            dependencies: [.product(name: "Tracing", package: "swift-distributed-tracing")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableStorage",
            dependencies: ["CRocksDB", .product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableWire",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            exclude: ["Generated/README.md"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableCertificates",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableObjects",
            dependencies: [
                "DurableStorage", "DurableTracing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableObjectsTesting",
            dependencies: ["DurableObjects", "DurableStorage", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableNode",
            dependencies: [
                "DurableObjects", "DurableWire", "DurableStorage", "DurableProtocol", "DurableTracing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableGateway",
            dependencies: [
                "DurableObjects", "DurableWire", "DurableStorage", "DurableClient", "DurableProtocol", "DurableEtcd",
                "DurableTracing",
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableEtcd",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableProtocol",
            dependencies: [
                "DurableWire", "DurableObjects",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableClient",
            dependencies: [
                "DurableWire", "DurableObjects", "DurableProtocol", "DurableTracing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableExamples",
            dependencies: ["DurableObjects", .product(name: "HTTPTypes", package: "swift-http-types")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableHTTP",
            dependencies: [
                "DurableObjects", "DurableTracing",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableMetrics",
            dependencies: [
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DurableApp",
            dependencies: [
                "DurableEtcd",
                "DurableMetrics",
                "DurableStorage",
                "DurableNode",
                "DurableClient",
                "DurableObjects",
                "DurableGateway",
                "DurableHTTP",
                "DurableWire",
                "DurableCertificates",
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                "DurableTracing",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "durable",
            dependencies: ["DurableApp", "DurableExamples"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            // Test fixtures, never shipped: the example app's `durable` command line plus the DIAGNOSTIC object
            // and the crash writer that process tests drive.
            name: "durable-test-server",
            dependencies: [
                "DurableApp", "DurableExamples", "DurableObjects", "DurableStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tests/TestServer",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "objects-benchmark",
            dependencies: ["DurableObjects", "DurableObjectsTesting", "DurableExamples"],
            path: "benchmarks/objects-benchmark",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "durable-load",
            dependencies: [
                "DurableClient", "DurableObjects", "DurableWire",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "benchmarks/durable-load",
            swiftSettings: strictSettings
        ),
        .target(name: "DurableChaos", swiftSettings: strictSettings),
        .executableTarget(
            name: "durable-chaos",
            dependencies: [
                "DurableChaos", "DurableClient", "DurableObjects", "DurableWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "storage-benchmark",
            dependencies: ["DurableStorage"],
            path: "benchmarks/storage-benchmark",
            swiftSettings: strictSettings
        ),
        // What every test target shares: waiting on events, child processes, the test cluster, raw sockets,
        // temporary folders, the test passes (Tests/README.md).
        .target(
            name: "TestSupport",
            dependencies: [
                "DurableWire", "DurableCertificates", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DurableStorageTests", dependencies: ["DurableStorage", "TestSupport"], swiftSettings: strictSettings),
        .testTarget(
            name: "DurableTracingTests",
            dependencies: [
                "DurableTracing",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "DurableChaosTests", dependencies: ["DurableChaos"], swiftSettings: strictSettings),
        .testTarget(
            name: "DurableObjectsTests",
            dependencies: [
                "DurableObjects", "DurableObjectsTesting", "DurableStorage", "DurableMetrics", "TestSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DurableWireTests",
            dependencies: [
                "DurableWire", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Corpus"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DurableEtcdTests",
            dependencies: ["DurableEtcd", "DurableWire", "TestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DurableGatewayTests",
            dependencies: [
                "DurableGateway", "DurableObjects", "DurableStorage", "DurableWire", "DurableEtcd", "TestSupport",
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DurableExamplesTests",
            dependencies: ["DurableExamples", "DurableObjectsTesting"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DurableAppTests",
            dependencies: [
                "DurableApp", "DurableGateway", "DurableNode", "DurableHTTP", "DurableClient", "DurableObjects",
                "DurableStorage", "DurableExamples", "DurableWire", "TestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "DurableStorage", "DurableClient", "DurableObjects", "DurableWire", "DurableProtocol", "TestSupport",
                "durable",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // The heavy pass: tests that load the whole machine (Tests/README.md).
        .testTarget(
            name: "HeavyTests",
            dependencies: [
                "DurableChaos", "DurableClient", "DurableExamples", "DurableObjects", "DurableWire", "DurableEtcd",
                "DurableGateway", "TestSupport", "durable", "durable-load", "durable-chaos",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
