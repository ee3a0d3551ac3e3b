import WebSocketsConnection
import WebSocketsProtocol

/// What the hub's connections tell the server: their opening, their messages and their close. The server decides
/// what becomes of them (the indexes, the site, the handlers); a connection only passes them on.
package protocol ConnectionEvents: AnyObject, Sendable {
    /// `connection` opened: `false` when it may not stay (over `max_connections_per_ip`; logged here, counted by the
    /// connection's close).
    func connectionOpened(_ connection: Connection) -> Bool
    /// A message within the connection's rate arrived, on its loop.
    func received(_ message: Message, from connection: Connection) -> MessageReception
    /// The connection's socket closed.
    func connectionClosed(_ connection: Connection)
}
