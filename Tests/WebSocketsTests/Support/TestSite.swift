import Foundation
import NIOConcurrencyHelpers
import NIOHTTP1
import WebSockets
import WebSocketsSite

/// A real site on loopback implementing the contract's session and message endpoints.
///
/// The session cookie `sid` says who the browser is, and a few names switch the session endpoint's behaviour:
/// `reject` (401), `fail` (500), `garbage` (200 with HTML), `hang` (answers after 10 s, times the tests' patience, as `slow` below), `slow` (300 ms, then a
/// valid session). Message actions do the same for the message endpoint: `hello` (replies to the connection),
/// `boom` (500), `slow` (answers after 10 s), `linger` (after 3 s), `pause` (answers after 400 ms), `broadcast` (sends to everyone).
/// The session `bound` is valid only from the User-Agent `owner-agent` (a site that binds sessions to it);
/// `phpguest` answers `"guest": 1`, as PHP sites do; `watcher` (user 17) may see the presence of user 1 and of
/// group 2's members.
final class TestSite: Sendable {
    struct State {
        var sessions: [String: JSON] = [:]
        var sessionRequests: [String: Int] = [:]
        var sessionHeaders: [HTTPHeaders] = []
        var events: [JSON] = []
        var completed: [JSON] = []
        /// When set, a request without a cookie gets a guest session of its own, as PHP sites start one per visitor.
        var guestsWithoutCookie = false
        /// How long the session `hang` waits before its answer.
        var hang: Duration = TestPatience.scaled(.seconds(10))
        var guestsStarted = 0
        /// The message endpoint's request bodies, as they arrived.
        var messageBodies: [String] = []
    }

    /// Details spelled the way a re-serialiser would change: keys out of order, a number beyond Double, an integer
    /// beyond 2^53, an escape, nesting. The action `verbatim` answers a send of exactly these bytes to everyone.
    static let verbatimDetails = #"{"z":1,"a":{"y":[1e400,12345678901234567890,-0.0],"b":"\u00e9"},"m":null}"#

    let key: String
    let state = NIOLockedValueBox(State())
    private let server: NIOLockedValueBox<HTTPServer?> = NIOLockedValueBox(nil)

    init(key: String = SecurityKey.generate()) {
        self.key = key
    }

    static func start(key: String = SecurityKey.generate()) async throws -> TestSite {
        let site = TestSite(key: key)
        let server = try await HTTPServer(port: 0) { request in await site.respond(to: request) }
        site.server.withLockedValue { $0 = server }
        site.addSession("alice", user: 1, groups: [1, 10], language: "en")
        site.addSession("alice2", user: 1, groups: [1, 10], language: "en")
        site.addSession("bob", user: 2, groups: [2, 10], language: "de")
        site.addSession("carol", user: 3, groups: [2], language: "en", properties: ["plan": "pro"])
        site.addSession("guest", user: 0, guest: true)
        site.addSession("slow", user: 4)
        site.addSession("bound", user: 5)
        site.state.withLockedValue {
            $0.sessions["phpguest"] = ["user": 6, "session": "session-phpguest", "guest": 1]
            // May see user 1's presence and group 2's members'.
            $0.sessions["watcher"] = [
                "user": 17, "session": "session-watcher", "presence": ["users": [1], "groups": [2]],
            ]
        }
        return site
    }

    var port: Int { server.withLockedValue { $0!.port } }
    var url: String { "http://127.0.0.1:\(port)" }

    func addSession(
        _ sid: String, user: Int64, groups: [JSON] = [], language: String? = nil, guest: Bool = false,
        expire: Int64? = nil, properties: [String: JSON] = [:]
    ) {
        var object: [String: JSON] = [
            "user": .int(user), "session": .string("session-\(sid)"), "groups": .array(groups), "guest": .bool(guest),
            "properties": .object(properties),
        ]
        if let language { object["language"] = .string(language) }
        if let expire { object["expire"] = .int(expire) }
        state.withLockedValue { $0.sessions[sid] = .object(object) }
    }

    func sessionRequests(_ sid: String) -> Int {
        state.withLockedValue { $0.sessionRequests[sid] ?? 0 }
    }

    var events: [JSON] { state.withLockedValue { $0.events } }

    /// Events whose handling by the site finished (the `pause` action takes 400 ms).
    var completed: [JSON] { state.withLockedValue { $0.completed } }

    /// TCP connections the site has accepted: the server's calls should reuse keep-alive connections.
    var connectionsAccepted: Int { server.withLockedValue { $0!.connectionsAccepted } }

    /// The events posted so far whose `event` is `name`.
    func events(named name: String) -> [JSON] {
        events.filter { $0["event"] == .string(name) }
    }

    func shutdown() async {
        await server.withLockedValue { $0 }?.shutdown()
    }

    private func respond(to request: HTTPServerRequest) async -> HTTPServerResponse {
        if request.path == "/page" { return page(request) }
        guard request.headers.first(name: "X-WebSockets-Key") == key else { return .error(.forbidden) }
        switch request.path {
        case "/api/WebSockets/session":
            let sid = request.cookie("sid") ?? ""
            let session = state.withLockedValue { state -> JSON? in
                state.sessionRequests[sid, default: 0] += 1
                state.sessionHeaders.append(request.headers)
                if sid.isEmpty && state.guestsWithoutCookie {
                    state.guestsStarted += 1
                    return ["user": 0, "session": .string("guest-\(state.guestsStarted)"), "guest": true]
                }
                if sid == "bound" && request.headers.first(name: "User-Agent") != "owner-agent" { return nil }
                return state.sessions[sid]
            }
            switch sid {
            case "reject": return .error(.unauthorized)
            case "fail": return .error(.internalServerError)
            case "garbage": return .text("<html>not json</html>")
            case "hang":
                try? await Task.sleep(for: state.withLockedValue { $0.hang })
                return .error(.unauthorized)
            case "slow":
                try? await Task.sleep(for: .milliseconds(300))
            default: break
            }
            guard let session else { return .error(.unauthorized) }
            return .json(session)
        case "/api/WebSockets/message":
            guard let event = try? JSON(parsing: request.body) else { return .error(.badRequest) }
            state.withLockedValue {
                $0.events.append(event)
                $0.messageBodies.append(String(decoding: request.body, as: UTF8.self))
            }
            guard event["event"] == "WebSockets/message" else { return HTTPServerResponse() }
            switch event["action"]?.stringValue ?? "" {
            case "hello":
                let name = event["details"] ?? .null
                return .json([
                    ["hello", .string("Hello, \(name.stringValue ?? "?")!"), 7, event["connection"] ?? .null]
                ])
            case "boom": return .error(.internalServerError)
            case "slow":
                try? await Task.sleep(for: TestPatience.scaled(.seconds(10)))
                return HTTPServerResponse()
            case "verbatim":
                return HTTPServerResponse(
                    headers: ["Content-Type": "application/json"],
                    body: Array(#"[["verbatim","#.utf8) + Array(Self.verbatimDetails.utf8) + Array(",1]]".utf8))
            case "linger":
                try? await Task.sleep(for: .seconds(3))
                return HTTPServerResponse()
            case "pause":
                try? await Task.sleep(for: .milliseconds(400))
                state.withLockedValue { $0.completed.append(event) }
                return HTTPServerResponse()
            case "broadcast":
                return .json([["broadcast", event["details"] ?? .null, 1]])
            default:
                return HTTPServerResponse()
            }
        default:
            return .error(.notFound)
        }
    }
}

extension TestSite {
    /// A page of the site that loads the client from the server on `?server=<port>`; `?sid=` sets the session
    /// cookie first. It records what the client reports in `window.log`.
    fileprivate func page(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let server = request.queryValue("server") ?? "0"
        var headers: HTTPHeaders = ["Content-Type": "text/html; charset=utf-8"]
        if let sid = request.queryValue("sid") { headers.add(name: "Set-Cookie", value: "sid=\(sid); Path=/") }
        let html: String
        if request.queryValue("module") != nil {
            // The ES-module form: the page names the address before importing.
            html = """
                <!doctype html><title>module page</title>
                <script>window.csWebSocketsUrl = 'ws://127.0.0.1:\(server)/WebSockets';</script>
                <script type="module">
                  import WebSockets, { WebSockets as named } from 'http://127.0.0.1:\(server)/WebSockets/client.mjs';
                  window.imported = WebSockets === named && WebSockets === cs.WebSockets;
                </script>
                """
        } else {
            html = """
                <!doctype html><title>test page</title>
                <script src="http://127.0.0.1:\(server)/WebSockets/client.js" data-url="\(request.queryValue("urls") ?? "ws://127.0.0.1:\(server)/WebSockets")"></script>
                <script>
                  window.log = [];
                  cs.WebSockets.on('Client/state', function (state) { log.push('state:' + state); });
                  window.presence = [];
                  ['Presence/snapshot', 'Presence/online', 'Presence/offline'].forEach(function (action) {
                    cs.WebSockets.on(action, function (details) { presence.push([action, details]); });
                  });
                </script>
                """
        }
        return HTTPServerResponse(headers: headers, body: Array(html.utf8))
    }
}

/// A WebSockets server in this process in front of a ``TestSite``, on free ports.
struct Harness: Sendable {
    let site: TestSite
    let server: WebSocketsServer

    static func start(_ adjust: (inout Settings) -> Void = { _ in }) async throws -> Harness {
        let site = try await TestSite.start()
        var settings = settings(for: site)
        adjust(&settings)
        let server = WebSocketsServer(settings: settings)
        try await server.start()
        return Harness(site: site, server: server)
    }

    /// The settings of an in-process server in front of `site`, on a free port.
    static func settings(for site: TestSite) -> Settings {
        var settings = Settings(site: site.url, securityKey: site.key)
        settings.listenPort = 0
        // Generous: at the suite's start 49 suites begin at once on 2 cores, and in CI (right after the build) a
        // good session request took over 3 s. Tests of timeouts set their own. Both scale with the tests' patience:
        // under ThreadSanitizer with both cores busy, 46 tests saw their tabs closed by the 10 s authentication
        // timeout while the site's answer was still on its way. 30 s since 2026-12-08: on this machine three of four
        // local runs of the whole suite (287 tests) had one to seven tabs whose session answer took over 10 s in the
        // suite's first seconds (trivial tests there took 6 s, the cores being the processes the tests start), on
        // the code before that session's changes as after them.
        settings.siteTimeout = 30 * TestPatience.factor
        settings.authenticationTimeout = 30 * TestPatience.factor
        return settings
    }

    var port: Int { server.port }
    var key: String { site.key }

    /// The address of the site's test page for `sid`.
    func pageURL(_ sid: String) -> String {
        "\(site.url)/page?server=\(port)&sid=\(sid)"
    }

    /// A new server with the same settings and port, in front of the same site (after `server.shutdown()`).
    func restarted() async throws -> Harness {
        var settings = server.settings
        settings.listenPort = port
        let server = WebSocketsServer(settings: settings)
        try await server.start()
        return Harness(site: site, server: server)
    }

    func connect(_ sid: String, headers: [(String, String)] = []) async throws -> TestWebSocket {
        try await TestWebSocket.authenticated(port: port, sid: sid, headers: headers)
    }

    func stop() async {
        await server.shutdown()
        await site.shutdown()
    }

    /// A plain HTTP request to the server through libcurl.
    func http(
        _ method: String = "GET", _ path: String, headers: [(String, String)] = [], body: String? = nil
    ) async throws -> (status: Int, body: String) {
        let client = CurlClient(maximumConcurrency: 1)
        let result = await client.perform(
            HTTPClientRequest(
                method: method, url: "http://127.0.0.1:\(port)\(path)", headers: headers,
                body: body.map { Array($0.utf8) }, timeout: TestPatience.scaled(.seconds(10))))
        await client.shutdown()
        let response = try result.get()
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }
}

/// Waits until `condition` holds, polling; fails after `timeout`. It returns as soon as the condition holds, so the
/// limit only bounds a failure: 5 s was too short for a fresh clone's first run, where the suite's start held a
/// site's answers for seconds.
func eventually(
    timeout: Duration = .seconds(15), _ what: String = "condition", _ condition: @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + TestPatience.scaled(timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TestWebSocket.Failure(description: "\(what) did not happen within \(timeout)")
}
