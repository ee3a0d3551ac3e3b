import Foundation
import NIOCore
import NIOHTTP1
import WebSocketsCluster
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol
import WebSocketsSite

extension WebSocketsServer {
    /// Answers the server's plain HTTP requests.
    func respond(to request: HTTPServerRequest) async -> HTTPServerResponse {
        switch respondImmediately(to: request) {
        case .response(let response): return response
        case .task(let work): return await work()
        case .later(let start):
            return await withCheckedContinuation { answered in start { answered.resume(returning: $0) } }
        case nil: break
        }
        if let additionalResponder, let response = await additionalResponder(request) {
            // The server's own answers are written without SwiftNIO's header validation (see `configure`); the
            // application's are checked here, so that none can split a response.
            guard response.hasValidHeaders else {
                logger.error(
                    "an application route answered with a header that cannot be sent",
                    metadata: ["path": "\(request.path)"])
                return .error(.internalServerError)
            }
            return response
        }
        return .error(.notFound)
    }

    /// The answer to a request that needs no waiting, made on the event loop; `nil` for the application's routes.
    /// A send is checked and answered by ``answerSend(body:)``.
    func respondImmediately(to request: HTTPServerRequest) -> ImmediateAnswer? {
        if request.method == .POST && request.path == "/WebSockets/send" {
            if let refusal = sendKeyRefusal(
                request.headers, address: clientAddress(request.headers, peer: request.remoteAddress))
            {
                return .response(refusal)
            }
            return answerSend(body: request.body)
        }
        if Self.isStatusRequest(request.path) { return respondToStatus(request) }
        return immediateResponse(to: request).map(ImmediateAnswer.response)
    }

    /// The answer to a send whose key is right, made on the event loop: on a single server its sends are parsed,
    /// routed and answered at once; in a cluster they are handed to the bus in the order of the connection's
    /// requests and answered once the bus accepted them. A body over 64 KiB is parsed on a task, so that the
    /// loop's other connections do not wait for it. The frames are only queued for each event loop's writer here,
    /// so the next request pipelined on the connection is read and routed in the same loop turn, and a recipient's
    /// frames of all of them leave in one `writev` (one publisher connection with 8 sends in flight delivered
    /// 72,206/s at 12.8 µs CPU and one write per delivery when a broadcast was answered from a task, each in a loop
    /// turn of its own).
    func answerSend(body: [UInt8]) -> ImmediateAnswer {
        guard body.count <= 65536 else {
            return .task { [self] in
                switch Self.parseSends(body) {
                case .failure(let refusal): return refusal.response
                case .success(let sends):
                    // In a cluster, accepted once written to PostgreSQL; each server counts its own deliveries.
                    return Self.accepted(sends.count, delivered: await router.perform(sends))
                }
            }
        }
        switch Self.parseSends(body) {
        case .failure(let refusal): return .response(refusal.response)
        case .success(let sends):
            guard !mode.answersSendsOnTheLoop else {
                return .response(Self.accepted(sends.count, delivered: router.enqueue(sends)))
            }
            return .later { [router] answer in
                router.submit(sends) { delivered in answer(Self.accepted(sends.count, delivered: delivered)) }
            }
        }
    }

    private func immediateResponse(to request: HTTPServerRequest) -> HTTPServerResponse? {
        switch (request.method, request.path) {
        case (.GET, "/WebSockets/health"):
            return health()
        case (.GET, "/WebSockets/presence"):
            if let refusal = sendKeyRefusal(
                request.headers, address: clientAddress(request.headers, peer: request.remoteAddress))
            {
                return refusal
            }
            return presenceResponse(to: request)
        case (.GET, "/metrics"):
            let counts = hub.counts
            metrics.connections.record(counts.connections)
            metrics.authenticatedConnections.record(counts.authenticated)
            metrics.recordProcess()
            metrics.siteBacklog.record(siteBacklog.bytes)
            return HTTPServerResponse(
                headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"], body: metrics.render())
        case (.GET, "/WebSockets/client.js"), (.GET, "/WebSockets/WebSockets.js"):
            return StaticAsset.classicClient.response(to: request)
        case (.GET, "/WebSockets/client.mjs"), (.GET, "/WebSockets/WebSockets.mjs"):
            return StaticAsset.moduleClient.response(to: request)
        case (.GET, "/WebSockets/client.d.ts"), (.GET, "/WebSockets/WebSockets.d.ts"):
            return StaticAsset.typeDeclarations.response(to: request)
        case (.GET, "/WebSockets/client.d.mts"), (.GET, "/WebSockets/WebSockets.d.mts"):
            return StaticAsset.moduleTypeDeclarations.response(to: request)
        case (_, "/WebSockets/send"):
            return .error(.methodNotAllowed)
        case (_, "/WebSockets"), (_, "/WebSockets/"):
            // Only an upgrade that was refused, or a plain request, arrives here.
            guard request.headers[canonicalForm: "upgrade"].contains(where: { $0.lowercased() == "websocket" }) else {
                return .error(.upgradeRequired, "This address takes WebSocket connections")
            }
            let address = clientAddress(request.headers, peer: request.remoteAddress)
            if let (status, reason) = upgradeRefusal(path: request.path, headers: request.headers, address: address) {
                return .error(status, reason)
            }
            return .error(.badRequest, "Malformed WebSocket upgrade")
        default:
            return nil
        }
    }

    private func health() -> HTTPServerResponse {
        let counts = hub.counts
        let uptime = ContinuousClock.now - startedAt
        let seconds = uptime.inSeconds
        guard isReady else { return .json(["status": "starting"], status: .serviceUnavailable) }
        return .json([
            "status": isStopping ? "stopping" : "ok",
            "connections": .int(Int64(counts.connections)),
            "authenticated": .int(Int64(counts.authenticated)),
            "uptime": .double((seconds * 1000).rounded() / 1000),
            "server": .string(address),
            "pid": .int(Int64(getpid())),
            "version": .string(Self.version),
        ])
    }

    /// The `202` answer to a send: how many sends were accepted and, when known here, how many connections of this
    /// server they reached.
    private static func accepted(_ count: Int, delivered: Int?) -> HTTPServerResponse {
        // Written out rather than through a dictionary and the serializer: it is every send's answer.
        let body = delivered.map { #"{"accepted":\#(count),"delivered":\#($0)}"# } ?? #"{"accepted":\#(count)}"#
        return HTTPServerResponse(status: .accepted, headers: jsonHeaders, body: Array(body.utf8))
    }

    /// The headers of a JSON answer, made once.
    private static let jsonHeaders: HTTPHeaders = ["Content-Type": "application/json"]

    /// Whether a request may be handled while the answers ahead of it on its connection are still owed: a send,
    /// whose order among the connection's sends is kept by the bus (``AnswerQueue``).
    static func readsAhead(_ head: HTTPRequestHead) -> Bool {
        isSend(head)
    }

    /// Whether `head` is a send's (``SendTarget``).
    static func isSend(_ head: HTTPRequestHead) -> Bool {
        SendTarget.matches(head)
    }

    /// How much body a send may bring, once its key was found right.
    static let sendBodyLimit = 4 << 20
    /// How much body any other request may bring (the demo's forms, an embedding application's small posts).
    static let otherBodyLimit = 64 << 10

    /// A refused send request's answer.
    struct Refusal: Error {
        let response: HTTPServerResponse
    }

    /// How much body a request may bring, or the answer that refuses it from its head alone: a send needs the key
    /// before its body (up to 4 MiB) is read; every other request may bring 64 KiB. Refusing from the head keeps a
    /// keyless client from making the server hold 4 MiB per connection (40 unfinished bodies took 180 MiB before).
    func admit(_ head: HTTPRequestHead, address: String) -> RequestAdmission {
        guard Self.isSend(head) else { return .accepted(bodyLimit: Self.otherBodyLimit) }
        if let refusal = sendKeyRefusal(head.headers, address: address) { return .refused(refusal) }
        return .accepted(bodyLimit: Self.sendBodyLimit)
    }

    /// The answer to a send whose key is wrong or missing, or `nil` when the key is right.
    func sendKeyRefusal(_ headers: HTTPHeaders, address: @autoclosure () -> String) -> HTTPServerResponse? {
        let key = headers.first(name: "x-websockets-key")
        return sendKeyRefusal(
            matches: key.map { SecurityKey.matches($0, settings.securityKey) } ?? false, address: address())
    }

    /// The answer to a send whose key did not match (logged and counted), or `nil` when it did.
    func sendKeyRefusal(matches: Bool, address: @autoclosure () -> String) -> HTTPServerResponse? {
        guard !matches else { return nil }
        metrics.refused(reason: .sendKey)
        refusals.refused(
            "send_key", "send refused: wrong or missing key", logger: logger, metadata: ["ip": "\(address())"])
        return .error(.forbidden, "Wrong or missing X-WebSockets-Key")
    }

    /// The sends of a send's body, or the answer that refuses it.
    private static func parseSends(_ body: [UInt8]) -> Result<[Send], Refusal> {
        do {
            return .success(try Send.list(parsing: body))
        } catch {
            return .failure(Refusal(response: .error(.badRequest, "\(error)")))
        }
    }
}
