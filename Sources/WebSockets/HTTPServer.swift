import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import WebSocketsCluster
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol
import WebSocketsSite

/// A small HTTP/1.1 server around one responder: the demo site, the web-start service and the tests' site use it.
public final class HTTPServer: Sendable {
    private let channel: any Channel
    private let accepted: NIOLockedValueBox<Int>

    /// The port it listens on (useful when started on port 0).
    public let port: Int

    /// Starts listening on `host`:`port` (`0` picks a free port). With `limits`, its connections get the HTTP limits
    /// of those settings (`http_idle_timeout`, `http_request_timeout`, `max_http_connections`) and bodies of at most
    /// 64 KiB, as the WebSockets server's own HTTP side: for a server that faces the network (web start).
    public init(
        host: String = "127.0.0.1", port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        limits: Settings? = nil, logger: Logger = Logger(label: "websockets"), responder: @escaping HTTPResponder
    ) async throws {
        let accepted = NIOLockedValueBox(0)
        let counter = HTTPConnectionCount()
        let metrics = ServerMetrics()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                accepted.withLockedValue { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    let connectionGuard = limits.map {
                        HTTPConnectionGuard(settings: $0, counter: counter, metrics: metrics, logger: logger)
                    }
                    if let connectionGuard { try channel.pipeline.syncOperations.addHandler(connectionGuard) }
                    // The handler answers pipelined requests in order itself.
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false)
                    let admit: RequestAdmitter = { _, _ in .accepted(bodyLimit: limits == nil ? 4 << 20 : 64 << 10) }
                    try channel.pipeline.syncOperations.addHandler(
                        HTTPRequestHandler(admit: admit, connectionGuard: connectionGuard, responder: responder))
                }
            }
            .bind(host: host, port: port).get()
        self.channel = channel
        self.accepted = accepted
        self.port = channel.localAddress?.port ?? port
    }

    /// How many TCP connections it has accepted so far.
    public var connectionsAccepted: Int {
        accepted.withLockedValue { $0 }
    }

    /// Stops listening; connections under way finish on their own.
    public func shutdown() async {
        try? await channel.close()
    }
}
