import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 server around one responder: the demo site, the web-start service and the tests' site use it.
public final class HTTPServer: Sendable {
    private let channel: any Channel
    private let accepted: NIOLockedValueBox<Int>

    /// The port it listens on (useful when started on port 0).
    public let port: Int

    /// Starts listening on `host`:`port` (`0` picks a free port).
    public init(
        host: String = "127.0.0.1", port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        responder: @escaping HTTPResponder
    ) async throws {
        let accepted = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                accepted.withLockedValue { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(HTTPRequestHandler(responder: responder))
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
