import Logging
import NIOCore
import NIOWebSocket

/// The WebSocket end of one connection, on its event loop, and its only handler once upgraded: reads frames from
/// the socket's bytes, reassembles messages, enforces the frame rules, answers pings of its loop's sweep, writes
/// encoded frames within a bounded buffer, and closes with the right code.
///
/// One handler instead of NIO's decoder, encoder and a handler of frames: per idle connection that is three
/// pipeline slots and a decoder's buffers fewer, about 0.8 KiB of the 5 KiB a connection held.
final class WebSocketConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// What became of a frame given to ``queue(frame:id:)``.
    enum QueueResult {
        /// Queued, and the connection needs a flush (the first frame since the last one).
        case firstSinceFlush
        /// Queued behind others that await the same flush.
        case queued
        /// Not written: held for a replay, or the connection is closing.
        case notWritten
    }

    private let server: WebSocketsServer
    /// Until ``handlerAdded(context:)`` hands them to the connection.
    private var credentials: BrowserCredentials?
    private let shard: LoopShard
    private(set) var connection: Connection!
    private var context: ChannelHandlerContext?
    private var reader: ClientFrameReader
    private var fragments: ByteBuffer?
    private var closing = false
    private var awaitingFlush = false
    /// The channel's writability as last reported: kept here so that a write to many connections reads a field of
    /// a handler it already touches instead of each channel's atomic.
    private var writable = true
    /// When the session expires (Unix seconds, as the site gives it); a send after that closes the connection.
    var expiry = Int64.max
    private var lastHeard = NIODeadline.now()
    /// Live messages held back during a replay (encoded frames), with their cluster ids; `nil` when live.
    private var held: [(frame: ByteBuffer, id: Int64?)]?

    /// A ping frame: the same bytes for every connection and every sweep.
    private static let ping = ServerFrame.final(.ping, ByteBuffer())

    init(server: WebSocketsServer, credentials: BrowserCredentials, shard: LoopShard) {
        self.server = server
        self.credentials = credentials
        self.shard = shard
        // A frame may be as large as a message (fragments are checked against the limit as they add up).
        self.reader = ClientFrameReader(maximumPayload: server.settings.maxMessageSize)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        connection = Connection(
            id: server.nextConnectionID(), credentials: credentials!, handler: self, shard: shard,
            logger: server.logger)
        credentials = nil
        guard server.hub.add(connection, limit: server.settings.maxConnectionsPerIP) else {
            // The cap was checked before the upgrade; another connection from the address won the race.
            connection.logger.info("too many connections from one address", metadata: ["ip": "\(connection.address)"])
            server.metrics.closed(reason: "per_ip_cap")
            close(code: .policyViolation, reason: "Too many connections")
            return
        }
        shard.register(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        shard.unregister(self)
        if let connection {
            server.connectionClosed(connection)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection?.logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    /// Closes the connection when it has been silent longer than `idleTimeout`, else pings it; called by the loop's
    /// sweep once per ping interval.
    func checkLiveness(now: NIODeadline, idleTimeout: TimeAmount) {
        guard let context, !closing else { return }
        if now - lastHeard > idleTimeout {
            connection.logger.debug("closing a silent connection")
            server.metrics.closed(reason: "idle")
            close(code: .goingAway, reason: "Idle timeout")
            return
        }
        context.writeAndFlush(wrapOutboundOut(Self.ping), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        lastHeard = .now()
        reader.append(unwrapInboundIn(data))
        while !closing {
            let frame: ClientFrame?
            do {
                frame = try reader.next()
            } catch {
                switch error {
                case .tooLarge(let length):
                    connection.logger.debug("frame too large", metadata: ["length": "\(length)"])
                    server.metrics.closed(reason: "too_large")
                    reject(.messageTooLarge, "Frame larger than \(server.settings.maxMessageSize) bytes")
                case .protocolViolation(let reason):
                    connection.logger.debug("protocol error", metadata: ["reason": "\(reason)"])
                    server.metrics.closed(reason: "protocol")
                    reject(.protocolError, reason)
                }
                return
            }
            guard let frame else { return }
            handle(frame, context: context)
        }
    }

    private func handle(_ frame: ClientFrame, context: ChannelHandlerContext) {
        switch frame.opcode {
        case .text:
            if frame.fin {
                if fragments != nil {
                    reject(.invalidData, "A new message began inside a fragmented one")
                    return
                }
                handle(text: frame.payload)
            } else {
                fragments = frame.payload
            }
        case .continuation:
            guard var buffer = fragments else {
                reject(.invalidData, "Continuation without a message")
                return
            }
            var data = frame.payload
            guard buffer.readableBytes + data.readableBytes <= server.settings.maxMessageSize else {
                fragments = nil
                server.metrics.closed(reason: "too_large")
                reject(.messageTooLarge, "Message larger than \(server.settings.maxMessageSize) bytes")
                return
            }
            buffer.writeBuffer(&data)
            if frame.fin {
                fragments = nil
                handle(text: buffer)
            } else {
                fragments = buffer
            }
        case .binary:
            server.metrics.closed(reason: "binary")
            reject(.unacceptableData, "Binary frames are not accepted")
        case .ping:
            context.writeAndFlush(wrapOutboundOut(ServerFrame.final(.pong, frame.payload)), promise: nil)
        case .pong:
            break
        case .connectionClose:
            // Answer the close with the same code, then end the connection.
            closing = true
            var data = frame.payload
            let code = data.readInteger(as: UInt16.self) ?? WebSocketCloseCode.normal.rawValue
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(ServerFrame.close(code: code, reason: "")))
                .whenComplete { _ in channel.close(promise: nil) }
        default:
            reject(.protocolError, "Unknown opcode")
        }
    }

    private func handle(text buffer: ByteBuffer) {
        server.metrics.messagesIn.increment()
        do {
            let message = try buffer.withUnsafeReadableBytes { raw in
                try Message(frame: raw.assumingMemoryBound(to: UInt8.self))
            }
            server.received(message, from: connection)
        } catch {
            // Logged at debug level once: the connection is closed right after.
            connection.logger.debug("malformed frame", metadata: ["error": "\(error)"])
            server.metrics.closed(reason: "malformed")
            reject(.invalidData, "Malformed frame: \(error)")
        }
    }

    private func reject(_ code: WebSocketCloseCode, _ reason: String) {
        close(code: code, reason: reason)
    }

    func hold() {
        if held == nil { held = [] }
    }

    func release(replay: [ByteBuffer], skipping: Set<Int64>) {
        let waiting = held ?? []
        held = nil
        for payload in replay { write(text: payload, id: nil, bypassingHold: true) }
        for (frame, id) in waiting where id.map({ !skipping.contains($0) }) ?? true {
            if queue(frame: frame, id: id) != .notWritten { server.metrics.messagesOut.increment() }
        }
        flushQueued()
    }

    /// Writes a text frame carrying `payload` at once.
    func write(text payload: ByteBuffer, id: Int64?, bypassingHold: Bool) {
        if queue(frame: ServerFrame.text(payload), id: id, bypassingHold: bypassingHold) != .notWritten {
            server.metrics.messagesOut.increment()
        }
        flushQueued()
    }

    /// Queues an encoded frame for the next ``flushQueued()`` unless the connection's outbound buffer is over its
    /// bound: a reader that slow is closed so that the server's memory stays bounded.
    /// `now` (Unix seconds) is given for sends, which an expired session must not receive.
    func queue(frame: ByteBuffer, id: Int64?, bypassingHold: Bool = false, now: Int64 = .min) -> QueueResult {
        guard let context, !closing else { return .notWritten }
        if now >= expiry {
            connection.userLogger.info("session expired: closing instead of sending")
            server.metrics.dropped(reason: "session_expired")
            server.metrics.closed(reason: "session_expired")
            close(code: .policyViolation, reason: "Session expired")
            return .notWritten
        }
        if !bypassingHold, held != nil {
            held!.append((frame, id))
            // A replay that takes long must not let memory grow without bound either.
            if held!.count > 10_000 {
                connection.userLogger.warning("too many messages held during a replay, closing")
                server.metrics.dropped(reason: "replay_overflow")
                close(code: .tryAgainLater, reason: "Try again")
            }
            return .notWritten
        }
        guard writable else {
            connection.userLogger.warning("slow reader: outbound buffer full, closing")
            server.metrics.dropped(reason: "slow_reader")
            server.metrics.closed(reason: "slow_reader")
            closing = true
            context.close(promise: nil)
            return .notWritten
        }
        context.write(wrapOutboundOut(frame), promise: nil)
        if awaitingFlush { return .queued }
        awaitingFlush = true
        return .firstSinceFlush
    }

    /// Flushes the frames queued since the last flush.
    func flushQueued() {
        guard awaitingFlush else { return }
        awaitingFlush = false
        context?.flush()
    }

    /// Sends a close frame and closes the connection once it is written.
    func close(code: WebSocketCloseCode, reason: String) {
        guard let context, !closing else { return }
        closing = true
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ServerFrame.close(code: code.rawValue, reason: reason)))
            .whenComplete { _ in channel.close(promise: nil) }
    }
}
