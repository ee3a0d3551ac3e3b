import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One browser's WebSocket connection: who it is once authenticated, and the messages waiting to be handled.
///
/// Messages are handled one at a time per connection, in arrival order, by a task that exists only while there is
/// something to handle: an idle connection costs no task.
public final class Connection: Sendable {
    /// Something to handle for this connection, in order.
    enum Inbound: Sendable {
        case message(Message)
        case disconnected
    }

    private struct State {
        var session: SessionInfo?
        var inbox: [Inbound] = []
        var draining = false
        /// Set when the channel closed: nothing is queued after that.
        var closed = false
        /// Set when the server decided to close the connection: what it sent meanwhile is not handled.
        var closing = false
    }

    /// Unique in the cluster: the server's id and a counter.
    public let id: String
    /// What the browser presented at the upgrade.
    let credentials: BrowserCredentials
    /// The address as given in `X-Forwarded-For` by a trusted proxy, or the peer's.
    public var address: String { credentials.address }
    /// The writer and pinger of the connection's event loop.
    let shard: LoopShard
    var eventLoop: any EventLoop { shard.eventLoop }
    private let handler: NIOLoopBound<WebSocketConnectionHandler>
    private let state = NIOLockedValueBox(State())
    private let baseLogger: Logger

    init(
        id: String, credentials: BrowserCredentials, handler: WebSocketConnectionHandler, shard: LoopShard,
        logger: Logger
    ) {
        self.id = id
        self.credentials = credentials
        self.shard = shard
        self.handler = NIOLoopBound(handler, eventLoop: shard.eventLoop)
        self.baseLogger = logger
    }

    /// A logger that names the connection; made when needed, so that an idle connection keeps no metadata of its own.
    var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "connection"] = "\(id)"
        return logger
    }

    /// The session, once authenticated.
    public var session: SessionInfo? {
        state.withLockedValue { $0.session }
    }

    /// Records the session unless the connection has closed (or is closing): checked and set under one lock with
    /// ``closed()``, so either the session is set before the close (and the close queues a disconnection) or it is
    /// not set at all (and no authentication event may be posted). Returns whether it was set.
    func setSession(_ session: SessionInfo) -> Bool {
        let set = state.withLockedValue { state -> Bool in
            guard !state.closed, !state.closing else { return false }
            state.session = session
            return true
        }
        guard set else { return false }
        // The handler checks the expiry at each delivery, on its loop, without this connection's lock. Queued
        // before the connection is indexed, so it runs before any send that finds the connection.
        let expiry = session.expire ?? .max
        withHandler { $0.authenticated(expiry: expiry) }
        return true
    }

    /// A logger that also names the user, once known.
    var userLogger: Logger {
        var logger = self.logger
        if let session { logger[metadataKey: "user"] = "\(session.user.indexKey)" }
        return logger
    }

    /// What became of a message given to ``enqueue(_:limit:)``.
    enum Admission {
        /// Queued; `startDrain`: the caller must start draining (no drain is under way).
        case queued(startDrain: Bool)
        /// Not queued: `limit` messages are already waiting.
        case full
        /// Not queued: the connection is closing.
        case closing
    }

    /// Queues a message unless `limit` messages already wait (the one being handled is not counted).
    func enqueue(_ message: Message, limit: Int) -> Admission {
        state.withLockedValue { state in
            if state.closed || state.closing { return .closing }
            guard state.inbox.count < limit else { return .full }
            state.inbox.append(.message(message))
            if state.draining { return .queued(startDrain: false) }
            state.draining = true
            return .queued(startDrain: true)
        }
    }

    /// The channel closed: discards the messages still waiting (the site must not get a message of a connection
    /// after its `Client/disconnection`) and, for an authenticated connection, queues its disconnection; returns how
    /// many were discarded and whether the caller must start draining.
    func closed() -> (discarded: Int, startDrain: Bool) {
        state.withLockedValue { state in
            let discarded = state.inbox.count
            state.closed = true
            guard state.session != nil else {
                state.inbox = []
                return (discarded, false)
            }
            state.inbox = [.disconnected]
            if state.draining { return (discarded, false) }
            state.draining = true
            return (discarded, true)
        }
    }

    /// Whether the channel has closed or the server is closing it.
    var isClosed: Bool {
        state.withLockedValue { $0.closed || $0.closing }
    }

    /// The next queued item, or `nil` (and draining stops) when there is none.
    func nextInbound() -> Inbound? {
        state.withLockedValue { state in
            if !state.inbox.isEmpty { return state.inbox.removeFirst() }
            state.draining = false
            // An emptied array keeps its storage: let it go, an idle connection holds no inbox.
            state.inbox = []
            return nil
        }
    }

    /// Writes a text frame carrying `payload`, from any thread; `bypassingHold` for the server's own replies,
    /// which go out even while the connection's live messages are held back for a replay.
    func write(_ payload: ByteBuffer, bypassingHold: Bool = false) {
        withHandler { $0.write(text: payload, id: nil, bypassingHold: bypassingHold) }
    }

    /// Runs `body` with the connection's handler on its loop: at once when called there, else queued. A
    /// connection's messages are handled on its loop (see ``LoopTaskExecutor``), so what the handling does to the
    /// connection (a reply, a replay, a snapshot, a close) then happens in the order it was done; queueing only some
    /// of them wrote a presence snapshot before the replay queued just before it (PresenceClusterTests).
    private func withHandler(_ body: @escaping @Sendable (WebSocketConnectionHandler) -> Void) {
        let handler = self.handler
        if eventLoop.inEventLoop {
            body(handler.value)
        } else {
            eventLoop.execute { body(handler.value) }
        }
    }

    /// The connection's handler; only on its event loop.
    func handlerOnLoop() -> WebSocketConnectionHandler {
        handler.value
    }

    /// Writes `replay` and then the live messages held since the connection opened (in a cluster), and goes live;
    /// from then on a message whose id is at or below `through` or among `replayed` is not written again.
    func release(replay: [ByteBuffer], through: Int64?, replayed: Set<Int64>) {
        withHandler { $0.release(replay: replay, through: through, replayed: replayed) }
    }

    /// Sends one of the server's own messages (replies, system actions) to this connection.
    func send(_ message: Message) {
        write(ByteBuffer(bytes: message.encoded()), bypassingHold: true)
    }

    /// Sends a close frame with `code` and `reason`, then closes the connection; the messages still waiting are
    /// not handled (after a failed authentication, twenty queued `Client/authentication` would each ask the site).
    /// Returns how many were discarded.
    @discardableResult
    func close(code: WebSocketCloseCode, reason: String) -> Int {
        let discarded = state.withLockedValue { state -> Int in
            state.closing = true
            let messages = state.inbox.count { if case .message = $0 { return true } else { return false } }
            state.inbox.removeAll { if case .message = $0 { return true } else { return false } }
            return messages
        }
        withHandler { $0.close(code: code, reason: reason) }
        return discarded
    }
}
