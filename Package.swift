// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "websockets",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "websockets", targets: ["websockets"]),
        .library(name: "WebSockets", targets: ["WebSockets"]),
        .library(name: "WebSocketsProtocol", targets: ["WebSocketsProtocol"]),
        // posix_spawn and event-loop sizing for tools (the benchmarks); the supervisor and web start stay
        // `package`, for the command line.
        .library(name: "WebSocketsLaunch", targets: ["WebSocketsLaunch"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(name: "CLaunch"),
        // epoll and eventfd for the WebSocket connections' own transport (Transport/), Linux only; mallinfo2.
        .systemLibrary(name: "CEpoll"),
        // The wire format (JSON, messages, sends, send_to, sessions, close codes, error replies): no NIO, so that
        // anything speaking the protocol can use it without the server.
        .target(name: "WebSocketsProtocol"),
        // The targets below depend one way, down this list, so that a back-edge does not compile (ARCHITECTURE.md):
        // core ← connection ← hub ← site, cluster ← the server.
        // Settings and their table, metrics, refusals in the log, memory figures, TrustedProxies, PostgresURL: what
        // every other target reads, deciding nothing about connections.
        .target(
            name: "WebSocketsCore",
            dependencies: [
                "WebSocketsProtocol",
                "CEpoll",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                // TLS to PostgreSQL (postgres-nio takes swift-nio-ssl's configuration).
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // One WebSocket connection: its transport (our epoll loops, Linux only), frames in and out, the
        // ConnectionStateMachine and its handler, which talks outward only through ConnectionDelegate.
        .target(
            name: "WebSocketsConnection",
            dependencies: [
                "WebSocketsCore",
                "WebSocketsProtocol",
                "CEpoll",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The connections of a server: their registry and indexes, whom a send selects, each loop's writer and
        // pinger, presence's ledger.
        .target(
            name: "WebSocketsHub",
            dependencies: [
                "WebSocketsConnection",
                "WebSocketsCore",
                "WebSocketsProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Every call to the site: libcurl's multi handle on its own thread, per-connection lanes, the session cache.
        .target(
            name: "WebSocketsSite",
            dependencies: [
                "WebSocketsCore",
                "WebSocketsProtocol",
                "CCurl",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The mode, chosen once: one server alone, or a cluster over PostgreSQL (router, recovery, replay hold,
        // presence).
        .target(
            name: "WebSocketsCluster",
            dependencies: [
                "WebSocketsHub",
                "WebSocketsConnection",
                "WebSocketsCore",
                "WebSocketsProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The server: assembly and lifecycle, HTTP, the events; the public face (WebSocketsServer, Settings, events).
        .target(
            name: "WebSockets",
            dependencies: [
                "WebSocketsCluster",
                "WebSocketsSite",
                "WebSocketsHub",
                "WebSocketsConnection",
                "WebSocketsCore",
                "WebSocketsProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // What only the command line needs: the supervisor, web start, posix_spawn and the wrong-key limiter. An
        // application that embeds the server does not carry it.
        .target(
            name: "WebSocketsLaunch",
            dependencies: [
                "WebSockets",
                // Web start asks the site through the same libcurl client as the server.
                "WebSocketsSite",
                "CLaunch",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "WebSocketsDemo",
            dependencies: [
                "WebSockets",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "websockets",
            dependencies: [
                "WebSockets",
                // `websockets send` inserts into the cluster's table or posts through libcurl.
                "WebSocketsCluster",
                "WebSocketsSite",
                "WebSocketsLaunch",
                "WebSocketsDemo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "WebSocketsTests",
            dependencies: [
                "WebSockets",
                "WebSocketsCore",
                "WebSocketsConnection",
                "WebSocketsHub",
                "WebSocketsSite",
                "WebSocketsCluster",
                "WebSocketsProtocol",
                "WebSocketsLaunch",
                "WebSocketsDemo",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
