import Logging
import NIOCore
import NIOWebSocket

/// The WebSocket end of one connection, on its event loop: reassembles messages, enforces the frame rules, pings,
/// writes outbound frames within a bounded buffer, and closes with the right code.
final class WebSocketConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let server: WebSocketsServer
    private let credentials: BrowserCredentials
    private(set) var connection: Connection!
    private var context: ChannelHandlerContext?
    private var fragments: ByteBuffer?
    private var closing = false
    private var lastHeard = NIODeadline.now()
    private var pinger: RepeatedTask?
    /// Live messages held back during a replay, with their cluster ids; `nil` when live.
    private var held: [(frame: ByteBuffer, id: Int64?)]?

    init(server: WebSocketsServer, credentials: BrowserCredentials) {
        self.server = server
        self.credentials = credentials
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        connection = Connection(
            id: server.nextConnectionID(), credentials: credentials, handler: self, eventLoop: context.eventLoop,
            logger: server.logger)
        guard server.hub.add(connection, limit: server.settings.maxConnectionsPerIP) else {
            // The cap was checked before the upgrade; another connection from the address won the race.
            connection.logger.info("too many connections from one address", metadata: ["ip": "\(credentials.address)"])
            server.metrics.closed(reason: "per_ip_cap")
            close(code: .policyViolation, reason: "Too many connections")
            return
        }
        let interval = TimeAmount.milliseconds(Int64(server.settings.pingInterval * 1000))
        let idle = TimeAmount.milliseconds(Int64(server.settings.idleTimeout * 1000))
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        pinger = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            loopBound.value.ping(idleTimeout: idle)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        pinger?.cancel()
        pinger = nil
        if let connection {
            server.connectionClosed(connection)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection?.logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    private func ping(idleTimeout: TimeAmount) {
        guard let context, !closing else { return }
        if NIODeadline.now() - lastHeard > idleTimeout {
            connection.logger.debug("closing a silent connection")
            server.metrics.closed(reason: "idle")
            close(code: .goingAway, reason: "Idle timeout")
            return
        }
        context.writeAndFlush(
            wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer())), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard !closing else { return }
        lastHeard = .now()
        switch frame.opcode {
        case .text:
            if frame.fin {
                if fragments != nil {
                    reject(.invalidData, "A new message began inside a fragmented one")
                    return
                }
                handle(text: frame.unmaskedData)
            } else {
                fragments = frame.unmaskedData
            }
        case .continuation:
            guard var buffer = fragments else {
                reject(.invalidData, "Continuation without a message")
                return
            }
            var data = frame.unmaskedData
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
            var payload = frame.unmaskedData
            let pong = WebSocketFrame(
                fin: true, opcode: .pong, data: payload.readSlice(length: payload.readableBytes) ?? ByteBuffer())
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .pong:
            break
        case .connectionClose:
            // Answer the close with the same code, then end the connection.
            closing = true
            var data = frame.unmaskedData
            let code = data.readWebSocketErrorCode() ?? .normalClosure
            var reply = context.channel.allocator.buffer(capacity: 2)
            reply.write(webSocketErrorCode: code)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply)))
                .whenComplete { _ in channel.close(promise: nil) }
        default:
            reject(.invalidData, "Unknown opcode")
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
        for frame in replay { write(text: frame, id: nil, bypassingHold: true) }
        for (frame, id) in waiting where id.map({ !skipping.contains($0) }) ?? true {
            write(text: frame, id: id, bypassingHold: true)
        }
    }

    /// Writes a text frame unless the connection's outbound buffer is over its bound: a reader that slow is closed
    /// so that the server's memory stays bounded.
    func write(text: ByteBuffer, id: Int64?, bypassingHold: Bool) {
        guard let context, !closing else { return }
        if !bypassingHold, held != nil {
            held!.append((text, id))
            // A replay that takes long must not let memory grow without bound either.
            if held!.count > 10_000 {
                connection.userLogger.warning("too many messages held during a replay, closing")
                server.metrics.dropped(reason: "replay_overflow")
                close(code: .tryAgainLater, reason: "Try again")
            }
            return
        }
        guard context.channel.isWritable else {
            connection.userLogger.warning("slow reader: outbound buffer full, closing")
            server.metrics.dropped(reason: "slow_reader")
            server.metrics.closed(reason: "slow_reader")
            closing = true
            context.close(promise: nil)
            return
        }
        server.metrics.messagesOut.increment()
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: text)), promise: nil)
    }

    /// Sends a close frame and closes the connection once it is written.
    func close(code: WebSocketCloseCode, reason: String) {
        guard let context, !closing else { return }
        closing = true
        var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.writeInteger(code.rawValue)
        // A close frame's payload is at most 125 bytes.
        data.writeBytes(reason.utf8.prefix(123))
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)))
            .whenComplete { _ in channel.close(promise: nil) }
    }
}
