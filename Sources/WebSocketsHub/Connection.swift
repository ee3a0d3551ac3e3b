import Logging
import NIOConcurrencyHelpers
import NIOCore
import WebSocketsConnection
import WebSocketsCore
import WebSocketsProtocol

/// One browser's WebSocket connection: who it is once authenticated, and the messages waiting to be handled.
///
/// Messages are handled one at a time per connection, in arrival order, by a task that exists only while there is
/// something to handle: an idle connection costs no task.
public final class Connection: Sendable {
    /// Something to handle for this connection, in order.
    package enum Inbound: Sendable {
        case message(Message)
        case disconnected
    }

    /// What a waiting message holds, as counted against the limits: its bytes (the action and details as written,
    /// and what a message costs beside them), and whether they were taken from the server's budget for connections
    /// not authenticated yet.
    package struct Held: Sendable {
        package var bytes: Int
        var budgeted: Bool
    }

    private struct State {
        var session: SessionInfo?
        var inbox: [Inbound] = []
        /// What each waiting message holds, in the inbox's order (a disconnection holds nothing).
        var held: [Held] = []
        /// The bytes the waiting messages hold.
        var pendingBytes = 0
        var draining = false
        /// Set when the channel closed: nothing is queued after that.
        var closed = false
        /// Set when the server decided to close the connection: what it sent meanwhile is not handled.
        var closing = false
    }

    /// Unique in the cluster: the server's id and a counter.
    public let id: String
    /// What the browser presented at the upgrade.
    package let credentials: BrowserCredentials
    /// The server's budget for the waiting messages of connections not authenticated yet.
    private let budget: PendingBudget
    /// The address as given in `X-Forwarded-For` by a trusted proxy, or the peer's.
    public var address: String { credentials.address }
    /// The writer and pinger of the connection's event loop.
    package let shard: LoopShard
    /// The window the browser inflates with when it negotiated permessage-deflate, else 0 (see
    /// ``WebSocketConnectionHandler/deflateWindow``).
    package let deflateWindow: UInt8
    package var eventLoop: any EventLoop { shard.eventLoop }
    private let handler: NIOLoopBound<WebSocketConnectionHandler>
    private let state = NIOLockedValueBox(State())
    private let baseLogger: Logger
    /// Where its messages, its opening and its close go.
    private let events: any ConnectionEvents

    /// The connection of `handler` (which it becomes the delegate of), on `shard`'s loop.
    package init(
        id: String, credentials: BrowserCredentials, handler: WebSocketConnectionHandler, shard: LoopShard,
        logger: Logger, budget: PendingBudget, events: any ConnectionEvents
    ) {
        self.events = events
        self.budget = budget
        self.id = id
        self.credentials = credentials
        self.shard = shard
        self.deflateWindow = handler.deflateWindow
        self.handler = NIOLoopBound(handler, eventLoop: shard.eventLoop)
        self.baseLogger = logger
        handler.delegate = self
    }

    /// A logger that names the connection; made when needed, so that an idle connection keeps no metadata of its own.
    package var logger: Logger {
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
        let shard = self.shard
        withHandler { handler in
            handler.authenticated(expiry: expiry)
            shard.authenticated(handler)
        }
        return true
    }

    /// A logger that also names the user, once known.
    package var userLogger: Logger {
        var logger = self.logger
        if let session { logger[metadataKey: "user"] = "\(session.user.indexKey)" }
        return logger
    }

    /// What became of a message given to ``enqueue(_:limits:)``.
    package enum Admission: Equatable {
        /// Queued; `startDrain`: the caller must start draining (no drain is under way).
        case queued(startDrain: Bool)
        /// Not queued: `max_pending_messages` messages already wait.
        case full
        /// Not queued: the waiting messages would hold more than `max_pending_bytes`.
        case fullBytes
        /// Not queued: the server's budget for connections not authenticated yet is spent.
        case budgetSpent
        /// Not queued: the connection is closing.
        case closing
    }

    /// The limits on one connection's waiting messages.
    package struct Limits: Sendable {
        /// `max_pending_messages`.
        package var messages: Int
        /// `max_pending_bytes`: one message of any allowed size is always taken when none waits.
        package var bytes: Int

        package init(messages: Int, bytes: Int) {
            self.messages = messages
            self.bytes = bytes
        }
    }

    /// What `message` holds while it waits: its text, and about 64 bytes of the message and the array slot beside
    /// it. A message waits without its parsed details beyond 64 bytes of them (a 65 KB tree of nested arrays held
    /// several times its text): they are parsed again if an in-process handler asks.
    package static func held(by message: Message) -> Int {
        message.action.utf8.count + message.rawDetails.bytes.count + 64
    }

    /// Queues a message unless `limits` forbid it (the one being handled is not counted), or, for a connection not
    /// authenticated yet, the server's budget is spent.
    package func enqueue(_ message: Message, limits: Limits) -> Admission {
        let bytes = Self.held(by: message)
        let kept =
            message.rawDetails.bytes.count > 64
            ? Message(action: message.action, rawDetails: message.rawDetails) : message
        return state.withLockedValue { state in
            if state.closed || state.closing { return .closing }
            guard state.inbox.count < limits.messages else { return .full }
            guard state.inbox.isEmpty || state.pendingBytes + bytes <= limits.bytes else { return .fullBytes }
            let budgeted = state.session == nil
            if budgeted, !budget.take(bytes) { return .budgetSpent }
            state.inbox.append(.message(kept))
            state.held.append(Held(bytes: bytes, budgeted: budgeted))
            state.pendingBytes += bytes
            if state.draining { return .queued(startDrain: false) }
            state.draining = true
            return .queued(startDrain: true)
        }
    }

    /// Forgets what the waiting messages hold (they were discarded); the server's budget gets its part back.
    private func discardHeld(_ state: inout State) {
        budget.release(state.held.reduce(0) { $0 + ($1.budgeted ? $1.bytes : 0) })
        state.held = []
        state.pendingBytes = 0
    }

    /// The channel closed: discards the messages still waiting (the site must not get a message of a connection
    /// after its `Client/disconnection`) and, for an authenticated connection, queues its disconnection; returns how
    /// many were discarded and whether the caller must start draining.
    package func closed() -> (discarded: Int, startDrain: Bool) {
        state.withLockedValue { state in
            let discarded = state.inbox.count
            state.closed = true
            discardHeld(&state)
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
    package var isClosed: Bool {
        state.withLockedValue { $0.closed || $0.closing }
    }

    /// The next queued item, or `nil` (and draining stops) when there is none.
    package func nextInbound() -> Inbound? {
        state.withLockedValue { state in
            if !state.inbox.isEmpty {
                let item = state.inbox.removeFirst()
                if case .message = item, !state.held.isEmpty {
                    let held = state.held.removeFirst()
                    state.pendingBytes -= held.bytes
                    if held.budgeted { budget.release(held.bytes) }
                    if state.held.isEmpty { state.held = [] }
                }
                return item
            }
            state.draining = false
            // An emptied array keeps its storage: let it go, an idle connection holds no inbox.
            state.inbox = []
            return nil
        }
    }

    /// Writes a text frame carrying `payload`, from any thread; `bypassingHold` for the server's own replies,
    /// which go out even while the connection's live messages are held back for a replay.
    package func write(_ payload: ByteBuffer, bypassingHold: Bool = false) {
        withHandler { $0.write(frame: $0.textFrame(payload), bypassingHold: bypassingHold) }
    }

    /// Writes `frame` (made once for several connections) in the form this connection negotiated, from any thread.
    package func write(_ frame: OutboundFrame, bypassingHold: Bool = false) {
        let window = deflateWindow
        withHandler { $0.write(frame: frame.bytes(forWindow: window), bypassingHold: bypassingHold) }
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
    package func release(replay: [ByteBuffer], through: Int64?, replayed: Set<Int64>) {
        withHandler { $0.release(replay: replay, through: through, replayed: replayed) }
    }

    /// Sends one of the server's own messages (replies, system actions) to this connection.
    package func send(_ message: Message) {
        write(ByteBuffer(bytes: message.encoded()), bypassingHold: true)
    }

    /// Sends a close frame with `code` and `reason`, then closes the connection; the messages still waiting are
    /// not handled (after a failed authentication, twenty queued `Client/authentication` would each ask the site).
    /// Returns how many were discarded.
    @discardableResult
    package func close(code: WebSocketCloseCode, reason: String) -> Int {
        let discarded = state.withLockedValue { state -> Int in
            state.closing = true
            let messages = state.inbox.count { if case .message = $0 { return true } else { return false } }
            state.inbox.removeAll { if case .message = $0 { return true } else { return false } }
            discardHeld(&state)
            return messages
        }
        withHandler { $0.close(code: code, reason: reason) }
        return discarded
    }
}

extension Connection: ConnectionDelegate {
    package func connectionOpened(_ handler: WebSocketConnectionHandler) -> Bool {
        guard events.connectionOpened(self) else { return false }
        shard.register(handler)
        return true
    }

    package func connectionReceived(_ message: Message) -> MessageReception {
        events.received(message, from: self)
    }

    package func connectionClosed(_ handler: WebSocketConnectionHandler) {
        shard.unregister(handler)
        events.connectionClosed(self)
    }

    package func catchUp(_ handler: WebSocketConnectionHandler) {
        shard.bringUpToDate(handler)
    }
}
