import WebSocketsCore
import WebSocketsProtocol

#if os(Linux)
    import Glibc
    import NIOCore

    /// Stands in an upgraded connection's pipeline until its socket moves to a ``SocketLoop``: collects the bytes
    /// SwiftNIO read past the upgrade request (a browser may send its first frames with it), then duplicates the
    /// descriptor, closes the channel (the socket lives on in the duplicate) and hands both over.
    package final class SocketHandoff: ChannelInboundHandler, RemovableChannelHandler {
        package typealias InboundIn = ByteBuffer

        /// Takes the duplicated descriptor and the bytes read after the upgrade request; called on the channel's loop.
        package typealias Move = @Sendable (_ descriptor: CInt, _ received: ByteBuffer?) -> Void

        private let descriptor: CInt
        private let move: Move
        private let failed: @Sendable (_ errno: CInt) -> Void
        private var received: ByteBuffer?

        /// A handoff of the channel's socket `descriptor` (known from ``AcceptLoop``) to `move`; `failed` when it cannot be
        /// duplicated (the process is out of descriptors), after which the connection is closed.
        package init(descriptor: CInt, move: @escaping Move, failed: @escaping @Sendable (_ errno: CInt) -> Void) {
            self.descriptor = descriptor
            self.move = move
            self.failed = failed
        }

        package func handlerAdded(context: ChannelHandlerContext) {
            // The upgrade handler delivers what it buffered right after this, in the same call: the move comes after.
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.execute {
                let (handoff, context) = bound.value
                handoff.moveOut(context)
            }
        }

        package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            if received == nil {
                received = bytes
            } else {
                received!.writeBuffer(&bytes)
            }
        }

        private func moveOut(_ context: ChannelHandlerContext) {
            guard context.channel.isActive else { return }
            let duplicate = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
            guard duplicate >= 0 else {
                failed(errno)
                context.close(promise: nil)
                return
            }
            // SwiftNIO takes the descriptor out of its epoll and closes it; with the duplicate open, the kernel keeps
            // the connection (no FIN: a socket ends with its last descriptor).
            context.close(promise: nil)
            move(duplicate, received)
            received = nil
        }
    }
#endif
