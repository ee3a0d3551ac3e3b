import NIOCore
import WebSocketsConnection

#if os(Linux)
    import Glibc

    /// Looks at a connection's first bytes, between the time limits' guard and SwiftNIO's HTTP decoder: a
    /// connection that begins with a send (`POST /WebSockets/send`), or with a request only a publisher's client makes
    /// (`GET /WebSockets/presence`, `GET /WebSockets/health`), is a publisher's, and its socket moves to a socket loop
    /// of ours, where ``PublisherConnection`` reads it; any other connection (a browser's upgrade, a page, a status
    /// request) goes on through SwiftNIO as before, and this handler leaves its pipeline.
    ///
    /// Why the two GETs: the decision is made once, on the first request, and a keep-alive client that asks who is
    /// online (or checks the health) before it sends carries its sends on the connection it opened for that. Left on
    /// SwiftNIO such sends cost 30–40% more server CPU each (8 publishers, 5,695 sends/s: 88.38 µs against 53.85,
    /// `Benchmarks/RESULTS.md`). No browser begins a connection with either, so no upgrade is taken off SwiftNIO.
    ///
    /// It holds at most the 24 bytes it needs to decide: a client that sends its request a byte at a time is
    /// decided when it has sent them, and the guard's request time limit runs meanwhile.
    final class PublisherSniffer: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer

        /// Takes the moved socket's descriptor (a duplicate: the channel is closed), the bytes read so far and the
        /// peer's address; called on the channel's loop.
        typealias Move = @Sendable (_ descriptor: CInt, _ received: ByteBuffer, _ peer: String) -> Void

        /// What a publisher's connection begins with: a send, or a request no browser begins a connection with.
        static let prefixes: [[UInt8]] = [
            SendTarget.requestLinePrefix, Array("GET /WebSockets/presence".utf8), Array("GET /WebSockets/health".utf8),
        ]

        /// What `bytes` (a connection's first) make of it: a publisher's, another's, or not known yet.
        enum Verdict: Equatable {
            case publisher
            case other
            case undecided
        }

        /// The verdict on a connection that began with `bytes`.
        static func verdict(_ bytes: ByteBuffer) -> Verdict {
            var verdict = Verdict.other
            for prefix in prefixes {
                let count = min(bytes.readableBytes, prefix.count)
                guard bytes.readableBytesView.prefix(count).elementsEqual(prefix.prefix(count)) else { continue }
                if count == prefix.count { return .publisher }
                verdict = .undecided
            }
            return verdict
        }

        private let descriptor: CInt
        private let connectionGuard: HTTPConnectionGuard
        private let move: Move
        private let failed: (_ errno: CInt) -> Void
        private var received: ByteBuffer?

        /// A sniffer for the channel of socket `descriptor` (known from ``AcceptLoop``) behind `connectionGuard`, whose
        /// count of the connection moves with it; `failed` when the socket cannot be duplicated (out of
        /// descriptors): the connection then stays SwiftNIO's.
        init(
            descriptor: CInt, connectionGuard: HTTPConnectionGuard, move: @escaping Move,
            failed: @escaping (_ errno: CInt) -> Void
        ) {
            self.descriptor = descriptor
            self.connectionGuard = connectionGuard
            self.move = move
            self.failed = failed
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            if var received {
                self.received = nil
                received.writeBuffer(&bytes)
                bytes = received
            }
            switch Self.verdict(bytes) {
            case .undecided:
                received = bytes
            case .other:
                passOn(bytes, context: context)
            case .publisher:
                let duplicate = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
                guard duplicate >= 0 else {
                    failed(errno)
                    passOn(bytes, context: context)
                    return
                }
                let peer = context.channel.remoteAddress?.ipAddress ?? ""
                connectionGuard.handOver()
                // SwiftNIO takes the descriptor out of its epoll and closes it; with the duplicate open, the kernel
                // keeps the connection (no FIN: a socket ends with its last descriptor).
                context.close(promise: nil)
                move(duplicate, bytes, peer)
            }
        }

        private func passOn(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
            context.fireChannelRead(wrapInboundOut(bytes))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
#endif
