import Logging
import WebSocketsCore
import WebSocketsProtocol

/// The outcome of checking a browser's session with the site.
public enum SessionValidation: Sendable, Equatable {
    /// The site knows the session.
    case valid(SessionInfo)
    /// The site answered 401 or 403.
    case rejected(status: Int)
    /// The site could not be asked or gave an answer that is not one (timeout, refused, other status, bad body).
    case failed(String)
}

/// A session cache key: the cookie, and the rest of what the site saw as a hash. The hash keeps the key small (a
/// short cookie stays inline, no allocation per cached session: the joined text cost about 60 bytes per idle
/// connection at 19,000 in the benchmark); `Hasher` is seeded per process, so no one can make another browser's
/// headers collide with theirs on purpose.
package struct SessionCacheKey: Hashable, Sendable {
    package let cookie: String
    package let browser: Int
}

/// Why an event could not be handed to the site.
package enum SiteCallError: Error, Sendable {
    case timeout
    case failed(String)
    /// Not posted: the connection had closed when its turn came.
    case cancelled

    /// The error code the browser gets: 504 for a timeout, 502 otherwise.
    package var code: Int {
        switch self {
        case .timeout: return 504
        case .failed, .cancelled: return 502
        }
    }
}

/// The server's side of the site's endpoints (contract section 3), over libcurl.
package final class SiteClient: Sendable {
    private let curl: CurlClient
    private let settings: Settings
    private let cache: SessionCache<SessionCacheKey>
    private let metrics: ServerMetrics
    private let logger: Logger

    package init(curl: CurlClient, settings: Settings, metrics: ServerMetrics, logger: Logger) {
        self.curl = curl
        self.settings = settings
        self.cache = SessionCache(lifetime: .milliseconds(Int64(settings.sessionCacheTTL * 1000)))
        self.metrics = metrics
        self.logger = logger
    }

    private var timeout: Duration { .milliseconds(Int64(settings.siteTimeout * 1000)) }

    /// Checks a session with the site, or reuses the answer given moments ago for the same credentials.
    package func validate(_ credentials: BrowserCredentials) async -> SessionValidation {
        let (result, fromCache) = await cache.value(
            for: credentials.cacheKey, shareable: { credentials.mayShare($0) }
        ) { [self] in
            await self.requestSession(credentials)
        }
        if fromCache { metrics.sessionCacheHits.increment() }
        return result
    }

    private func requestSession(_ credentials: BrowserCredentials) async -> SessionValidation {
        let request = HTTPClientRequest(
            url: settings.resolvedSessionEndpoint,
            headers: [
                ("Cookie", credentials.cookie), ("User-Agent", credentials.userAgent),
                ("Accept-Language", credentials.acceptLanguage), ("X-Forwarded-For", credentials.address),
                ("X-WebSockets-Key", settings.securityKey), ("Accept", "application/json"),
            ],
            timeout: timeout)
        let start = ContinuousClock.now
        let result = await curl.perform(request, lane: .session)
        metrics.siteCall("session", since: start)
        switch result {
        case .failure(let error):
            metrics.siteFailure(endpoint: "session", reason: error == .timeout ? "timeout" : "transport")
            logger.warning("session endpoint failed", metadata: ["error": "\(error)", "url": "\(sessionURL)"])
            return .failed(error.description)
        case .success(let response) where response.status == 401 || response.status == 403:
            return .rejected(status: response.status)
        case .success(let response) where (200..<300).contains(response.status):
            do {
                return .valid(try SessionInfo(json: try JSON(parsing: response.body)))
            } catch {
                metrics.siteFailure(endpoint: "session", reason: "body")
                logger.warning(
                    "session endpoint answered a malformed body",
                    metadata: ["error": "\(error)", "url": "\(sessionURL)"])
                return .failed("malformed session answer")
            }
        case .success(let response):
            metrics.siteFailure(endpoint: "session", reason: "status")
            logger.warning(
                "session endpoint answered an unexpected status",
                metadata: ["status": "\(response.status)", "url": "\(sessionURL)"])
            return .failed("status \(response.status)")
        }
    }

    /// Posts an event to the message endpoint in `owner`'s turn of the message lane, after the earlier events of
    /// `key` (its connection); returns the sends the site's answer carries. When the turn comes and `isWanted` says
    /// no, nothing is posted: ``SiteCallError/cancelled``.
    package func post(
        event: [UInt8], owner: String, after key: String? = nil, isWanted: @escaping @Sendable () -> Bool = { true }
    ) async -> Result<[Send], SiteCallError> {
        await withCheckedContinuation { continuation in
            enqueue(owner: owner, after: key, isWanted: isWanted, event: { event }) {
                continuation.resume(returning: $0)
            }
        }
    }

    /// Queues an event for the message endpoint like ``post(event:owner:after:isWanted:)`` and returns at once:
    /// what waits is what `event` captures (its body is made when the turn comes), and `completion` gets the
    /// outcome, on the site client's thread.
    package func enqueue(
        owner: String, after key: String?, isWanted: @escaping @Sendable () -> Bool = { true },
        event: @escaping @Sendable () -> [UInt8],
        completion: @escaping @Sendable (Result<[Send], SiteCallError>) -> Void
    ) {
        guard let endpoint = settings.resolvedMessageEndpoint else { return completion(.success([])) }
        let start = ContinuousClock.now
        curl.submit(
            lane: .message(owner: owner), after: key, isWanted: isWanted,
            request: { [self] in messageRequest(endpoint, body: event()) }
        ) { [self] result in
            completion(sends(from: result, endpoint: endpoint, since: start))
        }
    }

    private func messageRequest(_ endpoint: String, body: [UInt8]) -> HTTPClientRequest {
        HTTPClientRequest(
            method: "POST", url: endpoint,
            headers: [
                ("Content-Type", "application/json"), ("X-WebSockets-Key", settings.securityKey),
                ("Accept", "application/json"),
            ],
            body: body, timeout: timeout)
    }

    /// The sends of the message endpoint's answer, or why there are none.
    private func sends(
        from result: Result<HTTPClientResponse, HTTPClientError>, endpoint: String, since start: ContinuousClock.Instant
    ) -> Result<[Send], SiteCallError> {
        metrics.siteCall("message", since: start)
        switch result {
        case .failure(.cancelled):
            return .failure(.cancelled)
        case .failure(let error):
            metrics.siteFailure(endpoint: "message", reason: error == .timeout ? "timeout" : "transport")
            return .failure(error == .timeout ? .timeout : .failed("\(error.description) (\(Self.shown(endpoint)))"))
        case .success(let response) where (200..<300).contains(response.status):
            if response.body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
                return .success([])
            }
            do {
                return .success(try Send.list(parsing: response.body))
            } catch {
                metrics.siteFailure(endpoint: "message", reason: "body")
                return .failure(.failed("malformed answer from \(Self.shown(endpoint)): \(error)"))
            }
        case .success(let response):
            metrics.siteFailure(endpoint: "message", reason: "status")
            return .failure(.failed("status \(response.status) from \(Self.shown(endpoint))"))
        }
    }

    /// The session endpoint as logs show it.
    private var sessionURL: String { Self.shown(settings.resolvedSessionEndpoint) }

    /// A URL as logs show it: without a `user:password@` part or a query (which may carry a token); the key and
    /// the browser's cookie travel in headers and are never part of it.
    static func shown(_ url: String) -> String {
        var text = url
        if let query = text.firstIndex(where: { $0 == "?" || $0 == "#" }) { text = String(text[..<query]) }
        if let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].firstIndex(of: "@"),
            !text[scheme.upperBound..<at].contains("/")
        {
            text.removeSubrange(scheme.upperBound...at)
        }
        return text
    }
}
