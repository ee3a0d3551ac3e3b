import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOHTTP1
import WebSockets

/// A tiny chat site that implements the site's side of the contract (the session and message endpoints), served
/// by the WebSockets server itself on one port, with no database and no configuration.
///
/// It is an example of a site, kept apart from the server: it uses only the library's public API, and the server
/// reaches its endpoints over HTTP (libcurl) exactly as it would reach a PHP site.
public final class DemoSite: Sendable {
    struct Member: Sendable {
        let id: Int64
        let name: String
    }

    private struct State {
        var members: [String: Member] = [:]
        var sessions: [String: Member] = [:]
    }

    /// Every member is in this group, and every page may see its members' presence: the dots come from the
    /// server's presence (`Presence/snapshot`, `Presence/online`, `Presence/offline`), not from the site.
    static let everyone: JSON = 1

    private let state = NIOLockedValueBox(State())
    private let key: String
    private let server: NIOLockedValueBox<WebSocketsServer?> = NIOLockedValueBox(nil)

    private init(key: String) {
        self.key = key
    }

    /// The server in front of the demo site, once started.
    public var webSocketsServer: WebSocketsServer {
        server.withLockedValue { $0! }
    }

    /// Starts the demo on `port` of 127.0.0.1 (`0`: a free port) and returns it with its server.
    public static func start(
        port: Int, logger: Logger = Logger(label: "websockets.demo"), adjust: (inout Settings) -> Void = { _ in }
    ) async throws -> DemoSite {
        let port = port == 0 ? try freePort() : port
        let site = DemoSite(key: SecurityKey.generate())
        var settings = Settings(site: "http://127.0.0.1:\(port)", securityKey: site.key)
        settings.listenPort = port
        settings.allowedOrigins = ["http://127.0.0.1:\(port)", "http://localhost:\(port)"]
        adjust(&settings)
        let server = WebSocketsServer(settings: settings, logger: logger) { request in
            await site.respond(to: request)
        }
        site.server.withLockedValue { $0 = server }
        try await server.start()
        return site
    }

    /// This run's security key (new at each start): what the status page's sign-in asks for.
    public var securityKey: String { key }

    /// The page's address.
    public var url: String { "http://127.0.0.1:\(webSocketsServer.port)/" }

    private static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(descriptor, socketAddress, length) == 0 && getsockname(descriptor, socketAddress, &length) == 0
            }
        }
        guard bound else { throw DemoError(description: "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    // MARK: The site's pages and endpoints

    private func respond(to request: HTTPServerRequest) async -> HTTPServerResponse? {
        switch (request.method, request.path) {
        case (.GET, "/"):
            let member = request.cookie("demo_session").flatMap { token in state.withLockedValue { $0.sessions[token] }
            }
            return HTTPServerResponse(
                headers: ["Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"],
                body: Array(
                    DemoPage.html(
                        name: member?.name, id: member?.id,
                        nameRefused: request.queryValue("error") == "name"
                    ).utf8))
        case (.POST, "/login"):
            return login(request)
        case (.POST, "/logout"):
            return logout(request)
        case (.GET, "/api/WebSockets/session"):
            guard authorized(request) else { return .error(.forbidden) }
            guard let token = request.cookie("demo_session"),
                let member = state.withLockedValue({ $0.sessions[token] })
            else { return .error(.unauthorized) }
            return .json([
                "user": .int(member.id), "session": .string(token), "groups": [Self.everyone], "guest": false,
                "properties": ["name": .string(member.name)], "presence": ["groups": [Self.everyone]],
            ])
        case (.POST, "/api/WebSockets/message"):
            guard authorized(request) else { return .error(.forbidden) }
            guard let event = try? JSON(parsing: request.body) else { return .error(.badRequest) }
            return .json(.array(handle(event).map(\.json)))
        default:
            return nil
        }
    }

    private func authorized(_ request: HTTPServerRequest) -> Bool {
        SecurityKey.matches(request.headers.first(name: "X-WebSockets-Key") ?? "", key)
    }

    private func login(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let name = (request.formValue("name") ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 32 else {
            return HTTPServerResponse(status: .seeOther, headers: ["Location": "/?error=name"])
        }
        let token = SecurityKey.generate()
        state.withLockedValue { state in
            let member = state.members[name.lowercased()] ?? Member(id: Int64(state.members.count + 1), name: name)
            state.members[name.lowercased()] = member
            state.sessions[token] = member
        }
        return HTTPServerResponse(
            status: .seeOther,
            headers: ["Location": "/", "Set-Cookie": "demo_session=\(token); Path=/; HttpOnly; SameSite=Lax"])
    }

    private func logout(_ request: HTTPServerRequest) -> HTTPServerResponse {
        if let token = request.cookie("demo_session") {
            state.withLockedValue { _ = $0.sessions.removeValue(forKey: token) }
            // Every tab of this session gets Server/close and stops reconnecting.
            webSocketsServer.sendToClients("Server/close_by_session", .string(token), .all)
        }
        return HTTPServerResponse(
            status: .seeOther, headers: ["Location": "/", "Set-Cookie": "demo_session=; Path=/; Max-Age=0"])
    }

    /// The message endpoint: the sends to perform for one event.
    func handle(_ event: JSON) -> [Send] {
        let connection = event["connection"] ?? .null
        guard let user = event["user"]?.intValue, connection.stringValue != nil else { return [] }
        let me =
            state.withLockedValue { state in state.sessions.values.first { $0.id == user } }
            ?? Member(id: user, name: "user \(user)")
        func error(_ action: String, _ code: Int, _ message: String) -> [Send] {
            [
                Send(
                    action: action + ":error", details: composeError(code, message), sendTo: .connections,
                    target: connection)
            ]
        }
        if event["event"]?.stringValue == "Client/authentication" {
            // Everyone learns the names (a newcomer's among them); who is online, the server says.
            return [Send(action: "users", details: ["users": memberList()], sendTo: .registeredUsers)]
        }
        guard event["event"]?.stringValue == "WebSockets/message" else { return [] }
        let action = event["action"]?.stringValue ?? ""
        let details = event["details"] ?? .null
        switch action {
        case "hello":
            // The seed's example: the browser says hello, the site answers this tab.
            return [
                Send(
                    action: "hello", details: .string("Hello back, \(me.name)!"), sendTo: .connections,
                    target: connection)
            ]
        case "chat":
            let text = (details.stringValue ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            if text.isEmpty { return error(action, 400, "Write something first") }
            if text.count > 500 { return error(action, 413, "At most 500 characters") }
            return [
                Send(action: "chat", details: ["from": member(me), "text": .string(text)], sendTo: .registeredUsers)
            ]
        case "private":
            let text = (details["text"]?.stringValue ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            guard let to = details["to"]?.intValue else { return error(action, 400, "Choose whom to write to") }
            if text.isEmpty { return error(action, 400, "Write something first") }
            guard webSocketsServer.presence(of: [.int(to)]).first?.online == true,
                let recipient = state.withLockedValue({ state in state.members.values.first { $0.id == to } })
            else { return error(action, 404, "That user is not online") }
            return [
                Send(
                    action: "private", details: ["from": member(me), "to": member(recipient), "text": .string(text)],
                    sendTo: .specificUsers, target: [.int(to), .int(me.id)])
            ]
        case "users":
            return [Send(action: "users", details: ["users": memberList()], sendTo: .connections, target: connection)]
        default:
            return error(action, 404, "Unknown action")
        }
    }

    private func member(_ member: Member) -> JSON {
        ["id": .int(member.id), "name": .string(member.name)]
    }

    private func memberList() -> JSON {
        // An object around it, not a bare array: the client spreads array details into arguments.
        let members = state.withLockedValue { state in state.members.values.sorted { $0.id < $1.id } }
        return .array(members.map(member))
    }
}

/// Why the demo could not start.
public struct DemoError: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String
}
