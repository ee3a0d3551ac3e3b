import WebSocketsProtocol

/// Everything a server is configured with. Each setting `name_with_underscores` can come from the settings file,
/// the variable `WEBSOCKETS_NAME_WITH_UNDERSCORES` or the flag `--name-with-underscores` (see ``SettingsLoader``).
public struct Settings: Sendable {
    /// The site's address, such as `https://example.com`.
    public var site: String = ""
    /// How other servers and senders reach this one (`wss://10.0.0.5:8080/WebSockets`), when given.
    public var serverAddress: String?
    /// The shared secret of the server and the site: `X-WebSockets-Key`, `/WebSockets/send`, internal messages.
    public var securityKey: String = ""
    /// The port of `/WebSockets`, `/WebSockets/send`, health and metrics; `0` picks a free one.
    public var listenPort: Int = 8080
    /// `true`: listen on 127.0.0.1 only; `false`: on all addresses.
    public var listenLocally: Bool = true
    /// The session endpoint, when not `<site>/api/WebSockets/session`.
    public var sessionEndpoint: String?
    /// The message endpoint, when not `<site>/api/WebSockets/message`; `none` posts no events to the site.
    public var messageEndpoint: String?
    /// Origins allowed to open a WebSocket, when not only the site's own; `*` allows any.
    public var allowedOrigins: [String]?
    /// A PostgreSQL URL for a cluster; none for a single server.
    public var postgres: String?
    /// libpq's `sslmode` for `postgres` where its URL gives none (`prefer` when neither does).
    public var postgresSSLMode: String?
    /// libpq's `sslrootcert` for `postgres` where its URL gives none: a PEM file of root certificates, or `system`.
    public var postgresSSLRootCert: String?
    /// Proxies whose `X-Forwarded-For` is believed: addresses and CIDR ranges.
    public var trustedProxies: [String]?
    /// Whether web start may use posix_spawn.
    public var spawn: Bool = true
    /// Seconds a user without an open tab still counts as online: a reload or a blip within it makes no event.
    public var presenceGrace: Double = 10
    /// Seconds sends are kept in the cluster's messages table: the window in which a reconnecting browser
    /// recovers what it missed.
    public var retention: Int = 300
    /// The largest send a cluster carries, in bytes of its row: a larger one is not written (and `websockets_send`
    /// refuses it), a larger row written by hand is skipped unread.
    public var maxSendSize: Int = 4 << 20
    /// The port of the web-start service.
    public var webPort: Int = 8081
    /// Seconds a server started by web start has to answer its health check before it is stopped and reported.
    public var webStartTimeout: Double = 20
    /// Where a server started by web start writes its output.
    public var logFile: String = "websockets.log"
    /// The hard timeout of a call to the site, in seconds.
    public var siteTimeout: Double = 5
    /// How long a session endpoint answer is reused for the same cookie, in seconds.
    public var sessionCacheTTL: Double = 5
    /// How many calls to the site may run at once; the others wait in order.
    public var siteConcurrency: Int = 32
    /// The largest message a browser may send, in bytes; a larger one closes the connection with 1009.
    public var maxMessageSize: Int = 64 * 1024
    /// Whether the server accepts browsers' offers of permessage-deflate (RFC 7692) at the upgrade.
    public var compression: Bool = true
    /// Messages shorter than this many bytes are sent uncompressed: below ~64 bytes deflate's block and code
    /// headers take back most of what a short JSON message saves.
    public var compressionThreshold: Int = 64
    /// zlib's level for the messages the server compresses (1 fastest, 9 smallest).
    public var compressionLevel: Int = 6
    /// The bytes one connection's waiting messages may hold (their text and about 64 bytes each); beyond it new
    /// ones are refused with 429. One message of any allowed size is always taken when none waits.
    public var maxPendingBytes: Int = 256 << 10
    /// The bytes the waiting messages of connections not authenticated yet may hold, server-wide; beyond it their
    /// new messages are refused with 429.
    public var maxUnauthenticatedBytes: Int = 64 << 20
    /// The bytes the events waiting for the site may hold, server-wide (about 1 KiB each); beyond it new tabs are
    /// refused authentication with 503 until the site catches up. Disconnections and presence events always wait
    /// their turn.
    public var maxSiteBacklogBytes: Int = 64 << 20
    /// Seconds between pings to each connection.
    public var pingInterval: Double = 25
    /// Seconds of silence (no frame, no pong) after which a connection is closed.
    public var idleTimeout: Double = 60
    /// Bytes waiting to be written to one connection beyond which it is a slow reader and is closed.
    public var maxOutboundBuffer: Int = 1 << 20
    /// The most connections one IP address may hold; `0` means no cap.
    public var maxConnectionsPerIP: Int = 0
    /// Messages one connection may send per second, on average; beyond it (and its burst) a message is refused
    /// with `<action>:error [429, "Too Many Requests"]`.
    public var messageRate: Double = 100
    /// Messages one connection may send at once above the rate.
    public var messageBurst: Int = 200
    /// Messages of one connection waiting for the site (or a handler) beyond which new ones are refused with 429.
    public var maxPendingMessages: Int = 64
    /// Seconds a new connection has to send `Client/authentication` and be accepted; then it is closed (1008).
    public var authenticationTimeout: Double = 10
    /// Seconds an HTTP (non-WebSocket) connection may wait between requests before it is closed.
    public var httpIdleTimeout: Double = 15
    /// Seconds an HTTP request may take to arrive, head and body, from its first byte.
    public var httpRequestTimeout: Double = 10
    /// Open HTTP (non-WebSocket) connections beyond which new ones are closed at once.
    public var maxHTTPConnections: Int = 10_000

    /// Every setting as its `WEBSOCKETS_*` variable: how web start hands its effective settings to the server it
    /// spawns without putting the key on a command line (where `ps` would show it).
    public var variables: [String: String] {
        var values: [String: String] = [:]
        for definition in Self.definitions {
            if let text = definition.text(of: self) { values[SettingsLoader.variableName(of: definition.name)] = text }
        }
        return values
    }

    /// Defaults for `site`, with a key to be filled in.
    public init(site: String = "", securityKey: String = "") {
        self.site = site
        self.securityKey = securityKey
    }

    /// The site without a trailing slash.
    var siteBase: String {
        site.hasSuffix("/") ? String(site.dropLast()) : site
    }

    /// The session endpoint in use.
    public var resolvedSessionEndpoint: String {
        sessionEndpoint ?? siteBase + "/api/WebSockets/session"
    }

    /// The message endpoint in use, or `nil` when events go to in-process handlers only.
    public var resolvedMessageEndpoint: String? {
        if let messageEndpoint {
            return messageEndpoint == "none" || messageEndpoint.isEmpty ? nil : messageEndpoint
        }
        return site.isEmpty ? nil : siteBase + "/api/WebSockets/message"
    }

    /// The origins allowed to open a WebSocket; `["*"]` for any.
    public var resolvedAllowedOrigins: [String] {
        if let allowedOrigins { return allowedOrigins }
        return Self.origin(of: site).map { [$0] } ?? []
    }

    /// `scheme://host[:port]` of a URL, lower-cased, or `nil` when it is not an absolute http(s) URL.
    package static func origin(of url: String) -> String? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        let rest = url[schemeEnd.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.isEmpty else { return nil }
        var host = authority.lowercased()
        if scheme == "http", host.hasSuffix(":80") { host.removeLast(3) }
        if scheme == "https", host.hasSuffix(":443") { host.removeLast(4) }
        return scheme + "://" + host
    }

    /// Whether a browser page of `origin` may open a WebSocket. Requests without an `Origin` header do not come
    /// from a browser page (browsers always send one on a WebSocket upgrade), so there is no cross-site risk to
    /// guard against and they are let through.
    package func allows(origin: String?) -> Bool {
        guard let origin else { return true }
        let allowed = resolvedAllowedOrigins
        if allowed.contains("*") { return true }
        let normalized = Self.origin(of: origin) ?? origin.lowercased()
        return allowed.contains { (Self.origin(of: $0) ?? $0.lowercased()) == normalized }
    }
}
