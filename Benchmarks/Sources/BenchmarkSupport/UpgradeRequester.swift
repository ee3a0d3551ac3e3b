import NIOCore
import NIOHTTP1

/// Sends a WebSocket client's upgrade request as soon as its connection is up (NIO's client upgrader waits for a
/// request to go out); removed once the upgrade is done.
public final class UpgradeRequester: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPClientResponsePart
    public typealias OutboundOut = HTTPClientRequestPart
    private let head: HTTPRequestHead

    /// A requester sending `head`.
    public init(head: HTTPRequestHead) { self.head = head }

    public func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }
}
