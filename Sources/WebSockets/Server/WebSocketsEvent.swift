/// An event for in-process handlers: a browser's message (`WebSockets/message`), or a system event
/// (`Client/authentication`, `Client/disconnection`).
public struct WebSocketsEvent: Sendable {
    /// `WebSockets/message`, `Client/authentication` or `Client/disconnection`.
    public let name: String
    /// The browser's action (for system events, the event's name).
    public let action: String
    /// The browser's details.
    public let details: JSON
    /// The connection's language.
    public let language: String
    /// The user id.
    public let user: JSON
    /// The session id.
    public let session: String
    /// This connection's id, unique in the cluster.
    public let connection: String
    /// The address of the server the connection is on.
    public let server: String
    let owner: WebSocketsServer

    /// Sends `action` with `details` to this event's connection.
    public func reply(_ action: String, _ details: JSON = .null) {
        owner.sendToClients(action, details, .connections, .string(connection))
    }

    /// Sends to any connections of the cluster, as `sendToClients` on the server.
    @discardableResult
    public func sendToClients(_ action: String, _ details: JSON, _ sendTo: SendTo, _ target: JSON = .null) -> Int {
        owner.sendToClients(action, details, sendTo, target)
    }

    /// The JSON body the site's message endpoint receives.
    var siteBody: JSON {
        [
            "event": .string(name), "action": .string(action), "details": details, "language": .string(language),
            "user": user, "session": .string(session), "connection": .string(connection), "server": .string(server),
        ]
    }
}

/// An in-process event handler. A handler of `WebSockets/message` that throws makes the browser receive
/// `<action>:error [500, "Internal Server Error"]`.
public typealias WebSocketsEventHandler = @Sendable (WebSocketsEvent) async throws -> Void
