import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import WebSocketsCluster
import WebSocketsCore
import WebSocketsProtocol

/// What the status page keeps between requests: the sampler, and the cluster's pool as last read.
struct StatusState: Sendable {
    var sampler = StatusSampler()
    var pool = StatusPool()
    /// When the pool was last read, and whether a reading is under way (one at a time, whatever the viewers).
    var poolReadAt: ContinuousClock.Instant?
    var readingPool = false
    var database = "not read yet"
    var roundTrip: Double?
}

extension WebSocketsServer {
    /// Seconds between the status page's samples: its charts' step.
    static let statusInterval: Int64 = 2

    /// Samples the counters every 2 s for the status page's charts and rates: a few dozen atomic loads.
    func startStatusSampling(on eventLoop: any EventLoop) {
        let timer = eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(Self.statusInterval)) {
            [weak self] _ in
            guard let self else { return }
            let snapshot = metrics.status.snapshot()
            status.withLockedValue { $0.sampler.add(snapshot) }
        }
        runtime.withLockedValue { $0.statusTimer = timer }
    }

    /// Whether `request` is for the status page (`/WebSockets/status` and below).
    static func isStatusRequest(_ path: String) -> Bool {
        path == StatusAccess.path || path.hasPrefix(StatusAccess.path + "/") || path == "/WebSockets/status.css"
    }

    /// Answers the status page's requests (``StatusAccess`` says who may): on the event loop, but for a test send
    /// and, in a cluster, the data (which may read the pool from PostgreSQL).
    func respondToStatus(_ request: HTTPServerRequest) -> ImmediateAnswer {
        let now = Int64(Date().timeIntervalSince1970)
        // The HMAC is checked only for the answers that depend on it (not for the styles or the sign-in's post).
        var signedIn: Bool { statusAccess.admits(request.headers, now: now) }
        switch (request.method, request.path) {
        case (.GET, "/WebSockets/status.css"):
            return .response(StatusAsset.style.response(to: request))
        case (.GET, StatusAccess.path):
            return .response(StatusPage.response(signedIn ? StatusPage.status : StatusPage.signIn(message: nil)))
        case (.POST, StatusAccess.path):
            return .response(signIn(request, now: now))
        case (.GET, StatusAccess.path + "/app.js"):
            guard signedIn else { return .response(StatusPage.secured(.error(.unauthorized, "Sign in first"))) }
            return .response(StatusAsset.script.response(to: request))
        case (.GET, StatusAccess.path + "/data"):
            guard signedIn else { return .response(StatusPage.secured(.error(.unauthorized, "Sign in first"))) }
            guard mode.findsServersInThePool else { return .response(StatusPage.secured(.json(statusReport().json))) }
            return .task { [self] in
                await readPoolIfDue()
                return StatusPage.secured(.json(statusReport().json))
            }
        case (.POST, StatusAccess.path + "/send"):
            guard statusAccess.admitsAction(request.headers, now: now) else {
                return .response(StatusPage.secured(.error(.forbidden, "Sign in first, from the status page")))
            }
            let sends: [Send]
            do {
                sends = try Send.list(parsing: request.body)
            } catch {
                return .response(StatusPage.secured(.error(.badRequest, "\(error)")))
            }
            logger.info("status page: test send", metadata: ["sends": "\(sends.count)"])
            return .task { [self] in
                let delivered = await router.perform(sends)
                var body: [String: JSON] = ["accepted": .int(Int64(sends.count))]
                if let delivered { body["delivered"] = .int(Int64(delivered)) }
                return StatusPage.secured(.json(.object(body), status: .accepted))
            }
        case (.POST, StatusAccess.path + "/signout"):
            guard StatusAccess.isSameOrigin(request.headers) else {
                return .response(StatusPage.secured(.error(.forbidden)))
            }
            var response = StatusPage.redirect()
            response.headers.add(
                name: "Set-Cookie", value: StatusAccess.signOutCookie(secure: Self.isSecure(request.headers)))
            return .response(response)
        default:
            return .response(StatusPage.secured(.error(.notFound)))
        }
    }

    /// The sign-in form's post: the key right, a cookie; wrong, the refusal (and the address waits longer before
    /// each next try, as web start's limiter has it).
    private func signIn(_ request: HTTPServerRequest, now: Int64) -> HTTPServerResponse {
        let address = clientAddress(request.headers, peer: request.remoteAddress)
        guard StatusAccess.isSameOrigin(request.headers) else {
            return StatusPage.response(StatusPage.signIn(message: "Sign in from this page."), status: .forbidden)
        }
        if statusLimiter.isBlocked(address) {
            metrics.refused(reason: .statusKey)
            return StatusPage.response(
                StatusPage.signIn(message: "Too many wrong keys from your address: wait a moment and try again."),
                status: .tooManyRequests)
        }
        guard let key = StatusAccess.formValue("key", in: request.body), SecurityKey.matches(key, settings.securityKey),
            let cookie = statusAccess.signInCookie(
                expiry: now + StatusAccess.lifetime, secure: Self.isSecure(request.headers))
        else {
            statusLimiter.recordFailure(address)
            metrics.refused(reason: .statusKey)
            refusals.refused(
                "status_key", "status page sign-in refused: wrong key", logger: logger, metadata: ["ip": "\(address)"])
            return StatusPage.response(StatusPage.signIn(message: "Wrong key."), status: .forbidden)
        }
        statusLimiter.recordSuccess(address)
        logger.notice("status page: signed in", metadata: ["ip": "\(address)"])
        var response = StatusPage.redirect()
        response.headers.add(name: "Set-Cookie", value: cookie)
        return response
    }

    /// Whether the page was loaded over HTTPS (its `Origin` says so), so that its cookie is sent over HTTPS only.
    private static func isSecure(_ headers: HTTPHeaders) -> Bool {
        headers.first(name: "origin")?.hasPrefix("https://") ?? false
    }

    /// The page's data now, from counters and the sampler (and the pool as last read, in a cluster).
    func statusReport() -> StatusReport {
        let counts = hub.counts
        let uptime = ContinuousClock.now - startedAt
        let live = StatusReport.Live(
            server: address, version: Self.version,
            uptime: uptime.inSeconds,
            connections: counts.connections, authenticated: counts.authenticated, guests: hub.guestCount,
            usersOnline: presence.withLockedValue { $0.onlineCount }, siteBacklogBytes: siteBacklog.bytes,
            lanes: curl.laneFigures, httpConnections: httpConnectionCount)
        return status.withLockedValue { state in
            StatusReport(
                live: live, sampler: state.sampler,
                cluster: mode.findsServersInThePool
                    ? StatusReport.Cluster(
                        pool: state.pool, database: state.database, roundTrip: state.roundTrip,
                        listening: bus.isListening)
                    : nil,
                interval: Double(Self.statusInterval))
        }
    }

    /// Reads the cluster's pool when the last reading is 2 s old and none is under way, whatever the viewers.
    private func readPoolIfDue() async {
        let now = ContinuousClock.now
        let due = status.withLockedValue { state -> Bool in
            guard !state.readingPool, state.poolReadAt.map({ now - $0 >= .seconds(2) }) ?? true else { return false }
            state.readingPool = true
            return true
        }
        guard due else { return }
        let start = ContinuousClock.now
        let result: Result<[PoolMember], any Error>
        do {
            result = .success(try await bus.poolMembers() ?? [])
        } catch {
            result = .failure(error)
        }
        let elapsed = ContinuousClock.now - start
        let end = ContinuousClock.now
        status.withLockedValue { state in
            state.readingPool = false
            state.poolReadAt = end
            switch result {
            case .success(let members):
                state.pool.update(members, now: end)
                state.database = "ok"
                state.roundTrip = elapsed.inSeconds * 1000
            case .failure(let error):
                state.database = "unreachable: " + String(String(describing: error).prefix(200))
                state.roundTrip = nil
            }
        }
    }
}
