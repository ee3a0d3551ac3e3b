import NIOCore
import WebSocketsCore
import WebSocketsProtocol

/// What a ``WebSocketConnectionHandler`` writes to: a SwiftNIO channel (where its socket cannot be taken over), or a
/// socket of ours on a ``SocketLoop``. The handler's decisions are the same for both; only these four calls differ.
package enum ConnectionWire {
    case channel(ChannelHandlerContext)
    #if os(Linux)
        case socket(SocketConnection)
    #endif

    /// Queues `frame` until the next ``flush()``.
    package func write(_ frame: ByteBuffer) {
        switch self {
        case .channel(let context): context.write(NIOAny(frame), promise: nil)
        #if os(Linux)
            case .socket(let socket): socket.write(frame)
        #endif
        }
    }

    /// Whether bytes wait because the kernel would not take them (a client that does not read).
    var isBacklogged: Bool {
        switch self {
        case .channel(let context): return !context.channel.isWritable
        #if os(Linux)
            case .socket(let socket): return socket.isBacklogged
        #endif
        }
    }

    /// Writes what was queued.
    package func flush() {
        switch self {
        case .channel(let context): context.flush()
        #if os(Linux)
            case .socket(let socket): socket.flush()
        #endif
        }
    }

    /// Closes at once; what is queued is dropped.
    package func close() {
        switch self {
        case .channel(let context): context.close(promise: nil)
        #if os(Linux)
            case .socket(let socket): socket.close()
        #endif
        }
    }

    /// Writes `frame` (a close frame) and closes once it is written, or after `timeout`: a client that does not read
    /// would otherwise keep its connection open for good once closed.
    package func write(_ frame: ByteBuffer, thenCloseWithin timeout: TimeAmount) {
        switch self {
        case .channel(let context):
            let channel = context.channel
            let deadline = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
            context.writeAndFlush(NIOAny(frame)).whenComplete { _ in
                deadline.cancel()
                channel.close(promise: nil)
            }
        #if os(Linux)
            case .socket(let socket): socket.write(frame, thenCloseWithin: timeout)
        #endif
        }
    }
}
