import Logging
import NIOCore
import WebSocketsCore
import WebSocketsProtocol

/// What a connection's handler (``WebSocketConnectionHandler``) tells the layers above it and asks of them, on the
/// connection's loop: the handler knows frames and their rules, the delegate knows users, sessions and sends.
package protocol ConnectionDelegate: AnyObject {
    /// A logger that names the connection.
    var logger: Logger { get }
    /// A logger that names the connection and, once known, its user.
    var userLogger: Logger { get }
    /// The connection opened on `handler`: `false` when it may not stay (over `max_connections_per_ip`).
    func connectionOpened(_ handler: WebSocketConnectionHandler) -> Bool
    /// A message within the connection's rate arrived.
    func connectionReceived(_ message: Message) -> MessageReception
    /// The socket closed.
    func connectionClosed(_ handler: WebSocketConnectionHandler)
    /// Queue for `handler` the sends to everyone it has not had, before a frame of its own or its close, so that the
    /// browser gets everything in the order it was sent.
    func catchUp(_ handler: WebSocketConnectionHandler)
}

/// What became of a browser's message handed to a ``ConnectionDelegate``.
package enum MessageReception: Equatable {
    /// Queued for handling.
    case accepted
    /// Refused (answered 429), for `reason`: `pending` (`max_pending_messages` already wait), `pending_bytes` (they
    /// would hold more than `max_pending_bytes`), `unauthenticated_budget` (the server holds
    /// `max_unauthenticated_bytes` for connections not authenticated yet).
    case refused(reason: RefusedReason)
    /// Not handled: the connection is closing (counted as dropped).
    case closing
}
