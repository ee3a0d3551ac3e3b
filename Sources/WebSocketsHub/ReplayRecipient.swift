import WebSocketsCore
import WebSocketsProtocol

/// The connection a replay is for, as the replay's selection needs it: its routing keys (matched in SQL against a
/// stored send's, ``SendSelection/routingKeys``), whether it is a registered user's (send_to 2), and the selection
/// rule itself for what keys do not decide (filters, rows written by SQL or by hand).
package struct ReplayRecipient: Sendable {
    /// ``SendSelection/routingKeys(id:session:)`` of the connection.
    package let keys: [String]
    /// Whether send_to 2 (registered users) selects it.
    package let registered: Bool
    private let id: String
    private let session: SessionInfo?
    private let address: String
    private let userAgent: String

    /// The connection `id` with `session` (nil before authentication), from `address` with `userAgent`.
    package init(id: String, session: SessionInfo?, address: String, userAgent: String) {
        self.id = id
        self.session = session
        self.address = address
        self.userAgent = userAgent
        keys = SendSelection.routingKeys(id: id, session: session)
        registered = session.map { !$0.guest } ?? false
    }

    /// Whether `send` reaches this connection as a frame: never for a command, else the routing rule.
    package func selects(_ send: Send) -> Bool {
        send.command == nil && selects(SendSelection(send))
    }

    /// Whether `selection` selects this connection.
    package func selects(_ selection: SendSelection) -> Bool {
        selection.selects(id: id, session: session, address: address, userAgent: userAgent)
    }
}
