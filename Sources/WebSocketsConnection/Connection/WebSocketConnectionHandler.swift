import Foundation
import Logging
import NIOCore
import NIOWebSocket
import WebSocketsCore
import WebSocketsProtocol

/// The WebSocket end of one connection, on its event loop, and its only handler once upgraded: it wires the
/// decisions of ``ConnectionStateMachine`` and ``InboundAssembler`` to the socket (``ConnectionWire``), tells its
/// ``ConnectionDelegate`` of messages, and counts and logs every close in one place (``perform(_:)``).
///
/// One handler instead of NIO's decoder, encoder and a handler of frames: per idle connection that is three
/// pipeline slots and a decoder's buffers fewer, about 0.8 KiB of the 5 KiB a connection held.
package final class WebSocketConnectionHandler {
    /// What became of a frame given to ``queue(frame:id:bypassingHold:now:)``.
    package enum QueueResult {
        /// Queued, and the connection needs a flush (the first frame since the last one).
        case firstSinceFlush
        /// Queued behind others that await the same flush.
        case queued
        /// Not written: held for a replay, a duplicate, or the connection is closing.
        case notWritten
    }

    package let environment: ConnectionEnvironment
    /// Set before the handler is attached; let go of once the socket closed, since the delegate holds the handler
    /// too (0.74 KiB per connection ever opened was kept when the two held each other for good).
    package var delegate: (any ConnectionDelegate)?
    /// What the handler writes to, from ``attach(_:)`` until the connection is gone.
    var wire: ConnectionWire?
    var inbound: InboundAssembler
    var machine: ConnectionStateMachine
    /// The number of the next broadcast of the loop's ``BroadcastLog`` this connection has not been given.
    package var broadcastCursor: UInt64 = 0
    /// The window, in bits, the browser inflates the server's messages with (`server_max_window_bits`), when it
    /// negotiated permessage-deflate; 0 when it did not.
    package let deflateWindow: UInt8
    /// A ping frame: the same bytes for every connection and every sweep.
    private static let ping = ServerFrame.final(.ping, ByteBuffer())
    /// How long a close frame may wait behind the bytes already queued: a client that does not read would otherwise
    /// keep its connection open for good once closed (found with a ping flood closed for not authenticating).
    private static let closeTimeout = TimeAmount.seconds(2)

    /// A handler whose connection negotiated `deflate` at its upgrade, if anything.
    package init(environment: ConnectionEnvironment, deflate: DeflateNegotiation? = nil) {
        self.environment = environment
        self.deflateWindow = deflate.map { UInt8($0.serverMaxWindowBits) } ?? 0
        self.inbound = InboundAssembler(maximumMessageSize: environment.maximumMessageSize, inflates: deflate != nil)
        self.machine = ConnectionStateMachine(
            holdingForReplay: environment.holdsForReplay, burst: environment.messageBurst, now: .now())
    }

    /// Whether the site accepted the session.
    package var isAuthenticated: Bool { machine.isAuthenticated }
    /// Whether frames must be queued one by one with their ids (held or skipped during a replay).
    package var tracksMessageIDs: Bool { machine.tracksMessageIDs }

    /// Starts the connection over `wire`; it closes at once if its delegate refuses it.
    package func attach(_ wire: ConnectionWire) {
        self.wire = wire
        if delegate?.connectionOpened(self) != true { perform(.perIPCap) }
    }

    /// The outbound queue went over its bound (`false`) or back under half of it (`true`).
    package func writabilityChanged(_ writable: Bool) { machine.writabilityChanged(writable) }

    /// The socket of ours closed: as ``channelInactive(context:)`` and then ``handlerRemoved(context:)``.
    package func transportClosed() {
        closed()
        release()
    }

    package func closed() {
        machine.closed()
        delegate?.connectionClosed(self)
    }

    package func release() {
        wire = nil
        delegate = nil
    }

    /// Closes a silent connection, else pings it (and answers a ping a backlog held); called by the loop's sweep
    /// once per ping interval.
    package func checkLiveness(now: NIODeadline, idleTimeout: TimeAmount) {
        guard let wire else { return }
        switch machine.checkLiveness(now: now, idleTimeout: idleTimeout, backlogged: wire.isBacklogged) {
        case .none: break
        case .close(let reason): perform(reason)
        case .ping(let pong):
            if let pong { writeControl(ServerFrame.final(.pong, pong)) }
            writeControl(Self.ping)
            flushQueued()
        }
    }

    /// Closes a connection that has not authenticated in time; called by the loop's sweep.
    package func authenticationTimedOut() {
        if wire != nil, let reason = machine.authenticationDeadlinePassed() { perform(reason) }
    }

    /// The site accepted the session, which expires at `expiry` (Unix seconds): a send or a message after that
    /// closes the connection.
    package func authenticated(expiry: Int64) { machine.authenticated(expiry: expiry) }

    /// Writes `frames` (the replay), then the held messages, and goes live; from now on a message whose id is at or
    /// below `through` (what the browser had) or among `replayed` is not written again.
    package func release(replay frames: [ByteBuffer], through: Int64?, replayed: Set<Int64>) {
        let waiting = machine.release(through: through, replayed: replayed)
        // Queued directly, not through write(frame:), which first gives the connection the loop's broadcasts it has
        // not had: live messages would then come before the rest of the replay (seen in CI's failover test).
        var count = 0
        for payload in frames where queue(frame: textFrame(payload), id: nil, bypassingHold: true) != .notWritten {
            count += 1
        }
        for (frame, id) in waiting where queue(frame: frame, id: id) != .notWritten { count += 1 }
        environment.metrics.messagesOut(count)
        flushQueued()
    }

    /// The text frame of `payload` for this connection alone: compressed when it negotiated compression and the
    /// message is worth it.
    package func textFrame(_ payload: ByteBuffer) -> ByteBuffer {
        environment.compression.textFrame(payload, compressing: deflateWindow != 0).bytes(forWindow: deflateWindow)
    }

    /// Writes an encoded frame after the broadcasts sent before it; `now` (Unix seconds) for a send, which an
    /// expired session must not receive; flushed at once unless `flush` is false (the caller flushes).
    package func write(
        frame: ByteBuffer, id: Int64? = nil, bypassingHold: Bool = false, now: Int64 = .min, flush: Bool = true
    ) {
        delegate?.catchUp(self)
        if queue(frame: frame, id: id, bypassingHold: bypassingHold, now: now) != .notWritten {
            environment.metrics.messagesOut()
        }
        if flush { flushQueued() }
    }

    /// Queues an encoded frame for the next ``flushQueued()``, unless the machine holds it for the replay, skips it
    /// or closes the connection instead (a slow reader, an expired session).
    package func queue(frame: ByteBuffer, id: Int64?, bypassingHold: Bool = false, now: Int64 = .min) -> QueueResult {
        guard let wire else { return .notWritten }
        let offer = machine.offer(
            frame, id: id, bypassingHold: bypassingHold, now: now,
            maximumHeldBytes: environment.maximumOutboundBytes)
        switch offer {
        case .write(let first):
            wire.write(frame)
            return first ? .firstSinceFlush : .queued
        case .duplicate:
            environment.metrics.dropped(reason: .duplicate)
        case .close(let reason):
            perform(reason)
        case .held, .ignore:
            break
        }
        return .notWritten
    }

    /// Writes a ping or a pong: control frames count against the outbound buffer like messages.
    func writeControl(_ frame: ByteBuffer) {
        switch machine.offerControl() {
        case .write: wire?.write(frame)
        case .close(let reason): perform(reason)
        case .held, .duplicate, .ignore: break
        }
    }

    /// Flushes the frames queued since the last flush; whether there were any.
    @discardableResult
    package func flushQueued() -> Bool {
        guard machine.takeFlush() else { return false }
        wire?.flush()
        return true
    }

    /// Sends a close frame with `code` and `reason` after the broadcasts sent before it, and closes the connection
    /// once it is written.
    package func close(code: WebSocketCloseCode, reason: String) {
        perform(.requested(code: code, reason: reason))
    }

    /// Closes the connection for `reason`: the one place a close is counted, logged and written.
    package func perform(_ reason: ConnectionStateMachine.CloseReason) {
        guard let wire, machine.isOpen else { return }
        if reason.catchesUp { delegate?.catchUp(self) }
        guard machine.beginClose() else { return }
        let metrics = environment.metrics
        if let metric = reason.metric { metrics.closed(reason: metric) }
        if let (label, count) = reason.dropped { metrics.dropped(reason: label, count: count) }
        if let delegate {
            reason.log(logger: delegate.logger, userLogger: delegate.userLogger, refusals: environment.refusals)
        }
        guard let code = reason.code else { return wire.close() }
        wire.write(ServerFrame.close(code: code, reason: reason.text), thenCloseWithin: Self.closeTimeout)
    }
}
