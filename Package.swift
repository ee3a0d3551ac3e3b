// swift-tools-version:6.1
import PackageDescription

/// SwiftNIO's modules by name: each target says in one line which it uses.
func nio(_ modules: String...) -> [Target.Dependency] {
    modules.map { .product(name: $0, package: "swift-nio") }
}

let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let lifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let metrics: [Target.Dependency] = [
    .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
]
/// PostgreSQL, with TLS (postgres-nio takes swift-nio-ssl's configuration).
let postgres: [Target.Dependency] = [
    .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
]

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
        // HMAC-SHA256 for the status page's sign-in cookie; postgres-nio builds it already (SCRAM-SHA-256).
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(name: "CLaunch"),
        // zlib for permessage-deflate: a raw stream per message, made and ended in one call (PermessageDeflate).
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        // epoll, eventfd and accept4 for the WebSocket connections' own transport (Transport/), Linux only; mallinfo2.
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
            dependencies: ["WebSocketsProtocol", "CEpoll", logging]
                + nio("NIOCore", "NIOHTTP1", "NIOConcurrencyHelpers") + metrics + postgres
        ),
        // One WebSocket connection: its transport (our epoll loops, Linux only), frames in and out, the
        // ConnectionStateMachine and its handler, which talks outward only through ConnectionDelegate.
        .target(
            name: "WebSocketsConnection",
            dependencies: ["WebSocketsCore", "WebSocketsProtocol", "CEpoll", "CZlib", logging]
                + nio("NIOCore", "NIOPosix", "NIOWebSocket", "NIOConcurrencyHelpers")
        ),
        // The connections of a server: their registry and indexes, whom a send selects, each loop's writer and
        // pinger, presence's ledger.
        .target(
            name: "WebSocketsHub",
            dependencies: ["WebSocketsConnection", "WebSocketsCore", "WebSocketsProtocol", logging]
                + nio("NIOCore", "NIOPosix", "NIOConcurrencyHelpers")
        ),
        // Every call to the site: libcurl's multi handle on its own thread, per-connection lanes, the session cache.
        .target(
            name: "WebSocketsSite",
            dependencies: ["WebSocketsCore", "WebSocketsProtocol", "CCurl", logging]
                + nio("NIOCore", "NIOConcurrencyHelpers")
        ),
        // The mode, chosen once: one server alone, or a cluster over PostgreSQL (router, recovery, replay hold,
        // presence).
        .target(
            name: "WebSocketsCluster",
            dependencies: [
                "WebSocketsHub", "WebSocketsConnection", "WebSocketsCore", "WebSocketsProtocol", logging, lifecycle,
            ] + nio("NIOCore", "NIOPosix", "NIOConcurrencyHelpers") + postgres
        ),
        // The server: assembly and lifecycle, HTTP, the events; the public face (WebSocketsServer, Settings, events).
        .target(
            name: "WebSockets",
            dependencies: [
                "WebSocketsCluster", "WebSocketsSite", "WebSocketsHub", "WebSocketsConnection", "WebSocketsCore",
                "WebSocketsProtocol", logging, lifecycle,
            ] + nio("NIOCore", "NIOPosix", "NIOHTTP1", "NIOWebSocket", "NIOConcurrencyHelpers") + metrics + postgres
                + [.product(name: "Crypto", package: "swift-crypto")]
        ),
        // What only the command line needs: the supervisor, web start, posix_spawn and the wrong-key limiter. An
        // application that embeds the server does not carry it. Web start asks the site through the same libcurl
        // client as the server.
        .target(
            name: "WebSocketsLaunch",
            dependencies: ["WebSockets", "WebSocketsCore", "WebSocketsSite", "CLaunch", logging, lifecycle]
                + nio("NIOCore", "NIOPosix", "NIOHTTP1", "NIOConcurrencyHelpers")
        ),
        .target(
            name: "WebSocketsDemo",
            dependencies: ["WebSockets", logging] + nio("NIOHTTP1", "NIOConcurrencyHelpers")
        ),
        // The invariants the fuzzers assert, one per parser a stranger's bytes reach (Fuzz/README.md); the corpus
        // test replays the kept inputs through them.
        .target(
            name: "WebSocketsFuzzChecks",
            dependencies: ["WebSockets", "WebSocketsConnection", "WebSocketsCore", "WebSocketsProtocol", logging]
                + nio("NIOCore", "NIOConcurrencyHelpers")
        ),
        // libFuzzer's entry when built with -sanitize=fuzzer -DFUZZING (Fuzz/run.sh), a replay of inputs otherwise.
        .executableTarget(name: "websockets-fuzz", dependencies: ["WebSocketsFuzzChecks", logging]),
        // `websockets send` inserts into the cluster's table or posts through libcurl.
        .executableTarget(
            name: "websockets",
            dependencies: [
                "WebSockets", "WebSocketsCluster", "WebSocketsSite", "WebSocketsLaunch", "WebSocketsDemo", logging,
                lifecycle, .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "WebSocketsTests",
            dependencies: [
                "WebSockets", "WebSocketsCore", "WebSocketsConnection", "WebSocketsHub", "WebSocketsSite",
                "WebSocketsCluster", "WebSocketsProtocol", "WebSocketsLaunch", "WebSocketsDemo", "WebSocketsFuzzChecks",
                logging,
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ] + nio("NIOCore", "NIOPosix", "NIOHTTP1", "NIOWebSocket", "NIOConcurrencyHelpers", "NIOEmbedded")
        ),
    ]
)
