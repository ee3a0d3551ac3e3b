import NIOCore
import WebSocketsCore

/// The handler as a SwiftNIO channel handler, for a connection whose socket stays SwiftNIO's (where it cannot move
/// to a ``SocketLoop``): each channel event maps to the call a socket of ours makes.
extension WebSocketConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    package func handlerAdded(context: ChannelHandlerContext) { attach(.channel(context)) }

    package func handlerRemoved(context: ChannelHandlerContext) { release() }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) { received(unwrapInboundIn(data)) }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        writabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        closed()
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        delegate?.logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}

#if os(Linux)
    extension WebSocketConnectionHandler: SocketConnectionHandler {}
#endif
