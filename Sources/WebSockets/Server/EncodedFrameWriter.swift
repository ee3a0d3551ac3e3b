import NIOCore

/// Sits between NIO's WebSocket frame encoder and the socket so that frames encoded once (``ServerFrame``) are
/// written as they are: writes made through its context skip the encoder, and the per-recipient work of a send is
/// one buffer reference in the socket's queue.
final class EncodedFrameWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }
}
