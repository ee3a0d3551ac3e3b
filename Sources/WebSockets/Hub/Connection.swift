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

    func setSession(_ session: SessionInfo) {
        state.withLockedValue { $0.session = session }
        // The handler checks the expiry at each delivery, on its loop, without this connection's lock. Queued
        // before the connection is indexed, so it runs before any send that finds the connection.
        let handler = self.handler
        let expiry = session.expire ?? .max
        eventLoop.execute { handler.value.expiry = expiry }
    }

    /// A logger that also names the user, once known.
    var userLogger: Logger {
        var logger = self.logger
        if let session { logger[metadataKey: "user"] = "\(session.user.indexKey)" }
        return logger
    }

    /// Queues `item`; returns `true` when the caller must start draining (no drain is under way).
    func enqueue(_ item: Inbound) -> Bool {
        state.withLockedValue { state in
            state.inbox.append(item)
            if state.draining { return false }
            state.draining = true
            return true
        }
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
        let handler = self.handler
        if eventLoop.inEventLoop {
            handler.value.write(text: payload, id: nil, bypassingHold: bypassingHold)
        } else {
            eventLoop.execute { handler.value.write(text: payload, id: nil, bypassingHold: bypassingHold) }
        }
    }

    /// The connection's handler; only on its event loop.
    func handlerOnLoop() -> WebSocketConnectionHandler {
        handler.value
    }

    /// Holds live messages back from now on, until ``release(replay:skipping:)``: a replay of missed messages must
    /// reach the browser before them.
    func hold() {
        let handler = self.handler
        eventLoop.execute { handler.value.hold() }
    }

    /// Writes `replay` and then the held messages, without those whose ids `skipping` contains (the replay
    /// already covered them), and goes live.
    func release(replay: [ByteBuffer], skipping: Set<Int64>) {
        let handler = self.handler
        eventLoop.execute { handler.value.release(replay: replay, skipping: skipping) }
    }

    /// Sends one of the server's own messages (replies, system actions) to this connection.
    func send(_ message: Message) {
        write(ByteBuffer(bytes: message.encoded()), bypassingHold: true)
    }

    /// Sends a close frame with `code` and `reason`, then closes the connection.
    func close(code: WebSocketCloseCode, reason: String) {
        let handler = self.handler
        eventLoop.execute { handler.value.close(code: code, reason: reason) }
    }
}

/// A close code: the standard ones the server uses.
public struct WebSocketCloseCode: Sendable, Equatable {
    /// The number sent in the close frame.
    public let rawValue: UInt16
    /// Normal closure.
    public static let normal = WebSocketCloseCode(rawValue: 1000)
    /// The server is going away (shutdown).
    public static let goingAway = WebSocketCloseCode(rawValue: 1001)
    /// A frame that breaks the WebSocket protocol.
    public static let protocolError = WebSocketCloseCode(rawValue: 1002)
    /// A frame type the server does not accept (binary).
    public static let unacceptableData = WebSocketCloseCode(rawValue: 1003)
    /// A frame whose data is not of the wire format.
    public static let invalidData = WebSocketCloseCode(rawValue: 1007)
    /// The connection broke a policy (rejected session, expired session, slow reader).
    public static let policyViolation = WebSocketCloseCode(rawValue: 1008)
    /// A message larger than the limit.
    public static let messageTooLarge = WebSocketCloseCode(rawValue: 1009)
    /// The server cannot serve it now (the site failed); try again later.
    public static let tryAgainLater = WebSocketCloseCode(rawValue: 1013)
}
