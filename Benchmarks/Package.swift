// swift-tools-version:6.1
import PackageDescription

// Benchmarks live in their own package so that `swift test` at the root does not build them.
let package = Package(
    name: "websockets-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "websockets", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(name: "BenchZlib"),
        .target(
            name: "BenchmarkSupport",
            dependencies: [
                .product(name: "WebSockets", package: "websockets"),
                .product(name: "WebSocketsLaunch", package: "websockets"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "LoadGenerator",
            dependencies: [
                "BenchmarkSupport",
                "BenchZlib",
                .product(name: "WebSockets", package: "websockets"),
                .product(name: "WebSocketsLaunch", package: "websockets"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "PresenceStorm",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "WebSockets", package: "websockets"),
                .product(name: "WebSocketsLaunch", package: "websockets"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "ClusterLatency",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "WebSockets", package: "websockets"),
                .product(name: "WebSocketsLaunch", package: "websockets"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        )
    ]
)
