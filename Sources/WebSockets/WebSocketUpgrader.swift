import NIOCore
import NIOHTTP1
import NIOWebSocket
import WebSocketsHub

/// Upgrades an HTTP connection to a WebSocket one: NIO's upgrader checks the handshake and answers it, and the
/// connection then gets one handler of ours (``WebSocketConnectionHandler``) instead of NIO's frame decoder and
/// encoder.
struct WebSocketUpgrader: HTTPServerProtocolUpgrader {
    /// Makes the connection's handler from the channel and the upgrade request: ours, or a handoff of the socket to
    /// a loop of ours (``SocketHandoff``).
    typealias MakeHandler = @Sendable (any Channel, HTTPRequestHead) -> any ChannelHandler

    private let handshake: NIOWebSocketServerUpgrader
    private let makeHandler: MakeHandler

    var supportedProtocol: String { handshake.supportedProtocol }
    /// `Upgrade` must be named in the request's `Connection` header (RFC 6455 4.2.1), which NIO's upgrader does not
    /// ask for. It is what SwiftNIO's HTTP parser asks before it stops parsing at the request's end: an upgrade it
    /// did not see as one let it parse the requests behind it in the packet, which the upgrade handler then gave to
    /// the connection's handler as parsed requests instead of bytes, a trap that stopped the server (found by the
    /// HTTP fuzz target; `UpgradeHandshakeTests`). Without it the request is answered 400 as HTTP.
    var requiredUpgradeHeaders: [String] { handshake.requiredUpgradeHeaders + ["upgrade"] }

    /// `shouldUpgrade` decides as for NIO's upgrader: extra response headers, or `nil` to refuse.
    init(
        shouldUpgrade: @escaping @Sendable (any Channel, HTTPRequestHead) -> EventLoopFuture<HTTPHeaders?>,
        makeHandler: @escaping MakeHandler
    ) {
        self.handshake = NIOWebSocketServerUpgrader(
            shouldUpgrade: shouldUpgrade,
            upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() })
        self.makeHandler = makeHandler
    }

    func buildUpgradeResponse(
        channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        handshake.buildUpgradeResponse(
            channel: channel, upgradeRequest: upgradeRequest, initialResponseHeaders: initialResponseHeaders)
    }

    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        context.eventLoop.makeCompletedFuture {
            try context.pipeline.syncOperations.addHandler(makeHandler(context.channel, upgradeRequest))
        }
    }
}
