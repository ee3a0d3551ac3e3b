import Foundation
import WebSocketsCluster
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol
import WebSocketsSite

/// An event for in-process handlers: a browser's message (`WebSockets/message`), or a system event
/// (`Client/authentication`, `Client/disconnection`).
public struct WebSocketsEvent: Sendable {
    /// `WebSockets/message`, `Client/authentication` or `Client/disconnection`.
    public let name: String
    /// The browser's action (for system events, the event's name).
    public let action: String
    /// The browser's details as it wrote them.
    public var rawDetails: RawJSON { message.rawDetails }
    /// The browser's details' value (parsed once, when the frame was checked).
    public var details: JSON { message.details }
    /// The browser's message.
    let message: Message
    /// The connection's language: the session's, else the first of the browser's `Accept-Language`. Worked out
    /// when read: most in-process handlers never read it (2.7% of the server's samples in the echo benchmark when
    /// it was worked out for every message).
    public var language: String {
        if let sessionLanguage { return sessionLanguage }
        let first = acceptLanguage.split(separator: ",").first.map { $0.split(separator: ";")[0] } ?? ""
        return first.trimmingCharacters(in: .whitespaces)
    }
    let sessionLanguage: String?
    let acceptLanguage: String
    /// The user id.
    public let user: JSON
    /// The session id.
    public let session: String
    /// This connection's id, unique in the cluster.
    public let connection: String
    /// The address of the server the connection is on.
    public let server: String
    let owner: WebSocketsServer
    /// The connection the event is about, on this server (`nil` for presence events).
    let origin: Connection?

    /// Sends `action` with `details` to this event's connection.
    public func reply(_ action: String, _ details: JSON = .null) {
        guard let origin else {
            owner.sendToClients(action, details, .connections, .string(connection))
            return
        }
        owner.hub.reply(Message(action: action, details: details), to: origin)
    }

    /// Sends to any connections of the cluster, as `sendToClients` on the server.
    @discardableResult
    public func sendToClients(_ action: String, _ details: JSON, _ sendTo: SendTo, _ target: JSON = .null) -> Int {
        owner.sendToClients(action, details, sendTo, target)
    }

    /// The JSON body the site's message endpoint receives, with the details as the browser wrote them.
    var siteBody: [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(rawDetails.bytes.count + 256)
        func member(_ name: String, _ write: (inout [UInt8]) -> Void) {
            body.append(body.isEmpty ? UInt8(ascii: "{") : UInt8(ascii: ","))
            JSON.writeString(name, into: &body)
            body.append(UInt8(ascii: ":"))
            write(&body)
        }
        member("event") { JSON.writeString(name, into: &$0) }
        member("action") { JSON.writeString(action, into: &$0) }
        member("details") { $0.append(contentsOf: rawDetails.bytes) }
        member("language") { JSON.writeString(language, into: &$0) }
        member("user") { user.write(into: &$0) }
        member("session") { JSON.writeString(session, into: &$0) }
        member("connection") { JSON.writeString(connection, into: &$0) }
        member("server") { JSON.writeString(server, into: &$0) }
        body.append(UInt8(ascii: "}"))
        return body
    }
}

/// An in-process event handler. A handler of `WebSockets/message` that throws makes the browser receive
/// `<action>:error [500, "Internal Server Error"]`.
public typealias WebSocketsEventHandler = @Sendable (WebSocketsEvent) async throws -> Void
