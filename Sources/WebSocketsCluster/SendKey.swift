import WebSocketsConnection
import WebSocketsCore
import WebSocketsProtocol

/// The key of a send written by a server: `<server id>:<number>`, chosen before the send's first write and unique
/// in `websockets_messages`, so that writing the same send twice makes one row. Rows written by SQL
/// (`websockets_send`) have none: a site's transaction commits once.
package struct SendKey: Sendable, Hashable, CustomStringConvertible {
    /// The id of the server that wrote it (random per start).
    package let server: String
    /// Its number among that server's sends.
    package let number: UInt64

    package init(server: String, number: UInt64) {
        self.server = server
        self.number = number
    }

    /// The key a row holds, or `nil` when the text is not one.
    package init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let number = UInt64(text[text.index(after: colon)...]) else {
            return nil
        }
        self.init(server: String(text[..<colon]), number: number)
    }

    package var description: String { "\(server):\(number)" }
}
