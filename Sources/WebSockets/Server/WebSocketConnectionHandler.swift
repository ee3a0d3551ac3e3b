import Foundation
import Logging
import NIOCore
import NIOWebSocket

/// The WebSocket end of one connection, on its event loop, and its only handler once upgraded. It wires decisions
/// made elsewhere to the channel: what the bytes read amount to (``InboundAssembler``), whether a message is within
/// the connection's rate (``MessageRateLimiter``), whether a frame may be written (``OutboundGate``); and it closes
/// with the right code.
///
/// One handler instead of NIO's decoder, encoder and a handler of frames: per idle connection that is three
/// pipeline slots and a decoder's buffers fewer, about 0.8 KiB of the 5 KiB a connection held.
final class WebSocketConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// What became of a frame given to ``queue(frame:id:bypassingHold:now:)``.
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
    /// The connection, from ``handlerAdded(context:)`` until ``handlerRemoved(context:)``: the connection holds its
    /// handler, so the handler lets go of it once removed, or the two would keep each other alive for good (0.74 KiB
    /// per connection ever opened, measured before this was done).
    private(set) var connection: Connection!
    /// What the handler writes to, from ``attach(_:)`` until the connection is gone.
    private var wire: ConnectionWire?
    private var inbound: InboundAssembler
    private var gate = OutboundGate()
    private var rate: MessageRateLimiter
    /// Whether the site accepted the session (set on the loop by ``authenticated(expiry:)``).
    private(set) var isAuthenticated = false
    /// When the session expires (Unix seconds, as the site gives it): a send after that, or a message from the
    /// browser, closes the connection.
    private(set) var expiry = Int64.max
    private var lastHeard = NIODeadline.now()
    /// In a cluster, the live messages held until the replay, then the ids the browser already has; `nil` on a
    /// single server and for a connection that recovered nothing (one reference for both, to keep idle
    /// connections small).
    private var replay: ReplayState?

    /// The browser's pings still to answer.
    private var pings = PingAnswer()
    /// A ping frame: the same bytes for every connection and every sweep.
    private static let ping = ServerFrame.final(.ping, ByteBuffer())

    init(server: WebSocketsServer, credentials: BrowserCredentials, shard: LoopShard) {
        self.server = server
        self.credentials = credentials
        self.shard = shard
        self.inbound = InboundAssembler(maximumMessageSize: server.settings.maxMessageSize)
        self.rate = MessageRateLimiter(burst: server.settings.messageBurst)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        attach(.channel(context))
    }

    /// Starts the connection over `wire`: made, counted against its address's cap and registered with its loop.
    func attach(_ wire: ConnectionWire) {
        self.wire = wire
        connection = Connection(
            id: server.nextConnectionID(), credentials: credentials!, handler: self, shard: shard,
            logger: server.logger, budget: server.pendingBudget)
        credentials = nil
        guard server.hub.add(connection, limit: server.settings.maxConnectionsPerIP) else {
            // The cap was checked before the upgrade; another connection from the address won the race.
            server.refusals.refused(
                "per_ip_cap", "too many connections from one address", logger: connection.logger,
                metadata: ["ip": "\(connection.address)"])
            server.metrics.closed(reason: "per_ip_cap")
            close(code: .policyViolation, reason: "Too many connections")
            return
        }
        // In a cluster, live messages wait until authentication has replayed what the browser missed: a send that
        // arrived while the site checked the session once reached the tab before its replay, and again in it.
        if server.router.isCluster { hold() }
        shard.register(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        wire = nil
        connection = nil
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    /// The outbound queue went over its bound (`false`) or back under half of it (`true`).
    func writabilityChanged(_ writable: Bool) {
        gate.writable = writable
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed()
        context.fireChannelInactive()
    }

    /// The socket of ours closed: as ``channelInactive(context:)`` and then ``handlerRemoved(context:)``.
    func transportClosed() {
        closed()
        wire = nil
        connection = nil
    }

    private func closed() {
        shard.unregister(self)
        if let connection {
            server.connectionClosed(connection)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection?.logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    /// The site accepted the session, which expires at `expiry`: the authentication deadline no longer applies.
    func authenticated(expiry: Int64) {
        isAuthenticated = true
        self.expiry = expiry
        shard.authenticated(self)
    }

    /// Closes the connection when it has been silent longer than `idleTimeout`, else pings it; called by the loop's
    /// sweep once per ping interval.
    func checkLiveness(now: NIODeadline, idleTimeout: TimeAmount) {
        guard wire != nil, !gate.closing else { return }
        if now - lastHeard > idleTimeout {
            connection.logger.debug("closing a silent connection")
            server.metrics.closed(reason: "idle")
            close(code: .goingAway, reason: "Idle timeout")
            return
        }
        if let wire, let payload = pings.due(backlogged: wire.isBacklogged) {
            writeControl(ServerFrame.final(.pong, payload), flush: false)
        }
        writeControl(Self.ping)
    }

    /// Closes a connection that has not authenticated in time; called by the loop's sweep.
    func authenticationTimedOut() {
        guard wire != nil, !isAuthenticated, !gate.closing else { return }
        server.refusals.refused(
            "authentication_timeout", "closing a connection that did not authenticate in time",
            logger: connection.logger)
        server.metrics.closed(reason: "authentication_timeout")
        close(code: .policyViolation, reason: "Authentication timeout")
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received(unwrapInboundIn(data))
    }

    /// Handles bytes read from the browser.
    func received(_ bytes: ByteBuffer) {
        // The bytes may be a loop's shared read buffer (``SocketLoop``), or SwiftNIO's receive buffer: an incomplete
        // frame is copied out, or the connection would keep that buffer (up to 64 KiB) and the loop allocate another.
        defer { inbound.detach() }
        guard !gate.closing else { return }
        lastHeard = .now()
        inbound.append(bytes)
        // The latest ping of this read, answered once after it unless bytes wait for the kernel (``PingAnswer``):
        // each pong is its own buffer of about 130 bytes, and 4 tabs that pinged 2,000,000 times each without reading
        // grew the server by 261 MiB when every ping got one.
        var ping: ByteBuffer?
        while !gate.closing, let event = inbound.next() {
            switch event {
            case .message(let buffer):
                handle(text: buffer)
            case .ping(let payload):
                ping = payload
            case .pong:
                break
            case .close(let code):
                // Answer with the browser's own code (checked valid), then end the connection.
                guard gate.beginClose() else { return }
                wire?.write(ServerFrame.close(code: code, reason: ""), thenCloseWithin: Self.closeTimeout)
            case .refusal(let code, let reason, let metric):
                connection.logger.debug("frame refused", metadata: ["reason": "\(reason)"])
                server.metrics.closed(reason: metric)
                close(code: code, reason: reason)
            }
        }
        // Flushed once after the read with the rest.
        if let ping, let wire, let payload = pings.received(ping, backlogged: wire.isBacklogged) {
            writeControl(ServerFrame.final(.pong, payload), flush: false)
        }
        flushQueued()
    }

    /// Writes a ping or a pong through the gate: control frames count against the outbound buffer like messages.
    private func writeControl(_ frame: ByteBuffer, flush: Bool = true) {
        guard let wire else { return }
        switch gate.admit() {
        case .write:
            wire.write(frame)
            if flush { flushQueued() }
        case .slowReader:
            closeSlowReader(wire)
        case .closing:
            break
        }
    }

    private func handle(text buffer: ByteBuffer) {
        server.metrics.messagesIn.increment()
        let message: Message
        do {
            message = try buffer.withUnsafeReadableBytes { raw in
                try Message(frame: raw.assumingMemoryBound(to: UInt8.self))
            }
        } catch {
            // Logged at debug level once: the connection is closed right after.
            connection.logger.debug("malformed frame", metadata: ["error": "\(error)"])
            server.metrics.closed(reason: "malformed")
            close(code: .invalidData, reason: "Malformed frame: \(error)")
            return
        }
        if expiry != .max, isExpired(now: Int64(Date().timeIntervalSince1970)) {
            closeExpired(dropping: "message")
            return
        }
        let settings = server.settings
        guard
            rate.admit(
                now: NIODeadline.now().uptimeNanoseconds, rate: settings.messageRate, burst: settings.messageBurst)
        else {
            refuse(message, reason: "rate", "messages over the rate limit refused")
            return
        }
        switch server.received(message, from: connection) {
        case .accepted:
            break
        case .full(let reason):
            refuse(message, reason: reason, "messages over the waiting limit refused")
        case .closing:
            break
        }
    }

    /// Answers a message the connection may not send now with `<action>:error [429, ...]`; counted per message,
    /// logged once per connection and reason.
    private func refuse(_ message: Message, reason: String, _ text: String) {
        server.metrics.refused(reason: reason)
        server.refusals.refused(
            reason, "\(text)", level: .warning, logger: connection.userLogger,
            metadata: [
                "rate": "\(server.settings.messageRate)", "burst": "\(server.settings.messageBurst)",
                "pending": "\(server.settings.maxPendingMessages)",
                "pending_bytes": "\(server.settings.maxPendingBytes)",
            ])
        // Flushed once after the read, as pongs are: a flood of refused messages costs one write call per read.
        let reply = message.errorReply(code: 429)
        write(text: ByteBuffer(bytes: reply.encoded()), id: nil, bypassingHold: true, flush: false)
    }

    /// Whether the session has expired at `now` (Unix seconds): the one rule for sends and for messages.
    private func isExpired(now: Int64) -> Bool {
        now >= expiry
    }

    private func closeExpired(dropping what: String) {
        connection.userLogger.info("session expired: closing instead of delivering the \(what)")
        server.metrics.dropped(reason: "session_expired")
        server.metrics.closed(reason: "session_expired")
        close(code: .policyViolation, reason: "Session expired")
    }

    private func closeSlowReader(_ wire: ConnectionWire) {
        connection.userLogger.warning("slow reader: outbound buffer full, closing")
        server.metrics.dropped(reason: "slow_reader")
        server.metrics.closed(reason: "slow_reader")
        wire.close()
    }

    /// Holds live messages back until ``release(replay:through:replayed:)``.
    func hold() {
        if replay == nil { replay = ReplayState() }
    }

    /// Writes `frames` (the replay), then the held messages, and goes live; from now on a message whose id is at or
    /// below `through` (what the browser had) or among `replayed` is not written again.
    func release(replay frames: [ByteBuffer], through: Int64?, replayed: Set<Int64>) {
        let waiting = replay?.held ?? []
        if through != nil || !replayed.isEmpty {
            let state = replay ?? ReplayState()
            state.held = nil
            state.through = through ?? 0
            state.replayed = replayed
            replay = state
        } else {
            replay = nil
        }
        // Queued directly, not through write(text:), which first gives the connection the loop's broadcasts it has
        // not had: live messages would then come before the rest of the replay (seen in CI's failover test).
        for payload in frames where queue(frame: ServerFrame.text(payload), id: nil, bypassingHold: true) != .notWritten
        {
            server.metrics.messagesOut.increment()
        }
        for (frame, id) in waiting {
            if queue(frame: frame, id: id) != .notWritten { server.metrics.messagesOut.increment() }
        }
        flushQueued()
    }

    /// Writes a text frame carrying `payload`, flushed at once unless `flush` is false (the caller flushes).
    func write(text payload: ByteBuffer, id: Int64?, bypassingHold: Bool, flush: Bool = true) {
        write(frame: ServerFrame.text(payload), id: id, bypassingHold: bypassingHold, flush: flush)
    }

    /// Writes an encoded frame after the broadcasts sent before it; `now` (Unix seconds) for a send, which an
    /// expired session must not receive.
    func write(frame: ByteBuffer, id: Int64? = nil, bypassingHold: Bool = false, now: Int64 = .min, flush: Bool = true)
    {
        shard.bringUpToDate(self)
        if queue(frame: frame, id: id, bypassingHold: bypassingHold, now: now) != .notWritten {
            server.metrics.messagesOut.increment()
        }
        if flush { flushQueued() }
    }

    /// The number of the next broadcast of the loop's ``BroadcastLog`` this connection has not been given.
    var broadcastCursor: UInt64 = 0

    /// Whether frames must be queued one by one with their ids: a connection of a cluster that holds live messages
    /// until its replay, or skips those its replay carried.
    var tracksMessageIDs: Bool { replay != nil }

    /// Queues an encoded frame for the next ``flushQueued()`` unless the connection's outbound buffer is over its
    /// bound: a reader that slow is closed so that the server's memory stays bounded.
    /// `now` (Unix seconds) is given for sends, which an expired session must not receive.
    func queue(frame: ByteBuffer, id: Int64?, bypassingHold: Bool = false, now: Int64 = .min) -> QueueResult {
        guard let wire, !gate.closing else { return .notWritten }
        if isExpired(now: now) {
            closeExpired(dropping: "send")
            return .notWritten
        }
        if let replay {
            if let id, replay.alreadySent(id) {
                server.metrics.dropped(reason: "duplicate")
                return .notWritten
            }
            if !bypassingHold, replay.held != nil {
                replay.held!.append((frame, id))
                replay.heldBytes += frame.readableBytes
                // Held from the connection's start in a cluster, until authentication and its replay: bounded like
                // an outbound buffer, so that connections that never authenticate cannot hold broadcasts.
                if replay.held!.count > 10_000 || replay.heldBytes > server.settings.maxOutboundBuffer {
                    connection.userLogger.warning(
                        "too many messages held before the replay, closing",
                        metadata: ["count": "\(replay.held!.count)", "bytes": "\(replay.heldBytes)"])
                    server.metrics.dropped(reason: "replay_overflow", count: replay.held!.count)
                    self.replay = nil
                    close(code: .tryAgainLater, reason: "Try again")
                }
                return .notWritten
            }
        }
        switch gate.admit() {
        case .write(let first):
            wire.write(frame)
            return first ? .firstSinceFlush : .queued
        case .slowReader:
            closeSlowReader(wire)
            return .notWritten
        case .closing:
            return .notWritten
        }
    }

    /// Flushes the frames queued since the last flush; whether there were any.
    @discardableResult
    func flushQueued() -> Bool {
        guard gate.takeFlush() else { return false }
        wire?.flush()
        return true
    }

    /// Sends a close frame and closes the connection once it is written.
    func close(code: WebSocketCloseCode, reason: String) {
        guard let wire, !gate.closing else { return }
        // The broadcasts sent before the close reach the browser before it.
        shard.bringUpToDate(self)
        guard gate.beginClose() else { return }
        wire.write(ServerFrame.close(code: code.rawValue, reason: reason), thenCloseWithin: Self.closeTimeout)
    }

    /// How long a close frame may wait behind the bytes already queued: a client that does not read would otherwise
    /// keep its connection open for good once closed (found with a ping flood closed for not authenticating).
    private static let closeTimeout = TimeAmount.seconds(2)
}

/// What a connection of a cluster keeps about its replay: the live messages held until it (`held`, `nil` once
/// released), then the ids the browser already has.
final class ReplayState {
    var held: [(frame: ByteBuffer, id: Int64?)]? = []
    var heldBytes = 0
    var through: Int64 = 0
    var replayed: Set<Int64> = []

    /// Whether the message `id` reached the browser already: at or below its `last_id`, or in its replay.
    func alreadySent(_ id: Int64) -> Bool {
        id <= through || replayed.contains(id)
    }
}

#if os(Linux)
    extension WebSocketConnectionHandler: SocketConnectionHandler {}
#endif
