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
    /// Whether web start may use posix_spawn.
    public var spawn: Bool = true
    /// Seconds sends are kept in the cluster's messages table: the window in which a reconnecting browser
    /// recovers what it missed.
    public var retention: Int = 300
    /// The port of the web-start service.
    public var webPort: Int = 8081
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
    /// Seconds between pings to each connection.
    public var pingInterval: Double = 25
    /// Seconds of silence (no frame, no pong) after which a connection is closed.
    public var idleTimeout: Double = 60
    /// Bytes waiting to be written to one connection beyond which it is a slow reader and is closed.
    public var maxOutboundBuffer: Int = 1 << 20
    /// The most connections one IP address may hold; `0` means no cap.
    public var maxConnectionsPerIP: Int = 0

    /// Every setting as its `WEBSOCKETS_*` variable: how web start hands its effective settings to the server it
    /// spawns without putting the key on a command line (where `ps` would show it).
    public var variables: [String: String] {
        var values: [String: String] = [
            "site": site, "security_key": securityKey, "listen_port": String(listenPort),
            "listen_locally": String(listenLocally), "spawn": String(spawn), "web_port": String(webPort),
            "log_file": logFile, "retention": String(retention), "site_timeout": String(siteTimeout),
            "session_cache_ttl": String(sessionCacheTTL),
            "site_concurrency": String(siteConcurrency), "max_message_size": String(maxMessageSize),
            "ping_interval": String(pingInterval), "idle_timeout": String(idleTimeout),
            "max_outbound_buffer": String(maxOutboundBuffer), "max_connections_per_ip": String(maxConnectionsPerIP),
        ]
        if let sessionEndpoint { values["session_endpoint"] = sessionEndpoint }
        if let messageEndpoint { values["message_endpoint"] = messageEndpoint }
        if let allowedOrigins { values["allowed_origins"] = allowedOrigins.joined(separator: ",") }
        if let postgres { values["postgres"] = postgres }
        return Dictionary(uniqueKeysWithValues: values.map { (SettingsLoader.variableName(of: $0.key), $0.value) })
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
    static func origin(of url: String) -> String? {
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
    func allows(origin: String?) -> Bool {
        guard let origin else { return true }
        let allowed = resolvedAllowedOrigins
        if allowed.contains("*") { return true }
        let normalized = Self.origin(of: origin) ?? origin.lowercased()
        return allowed.contains { (Self.origin(of: $0) ?? $0.lowercased()) == normalized }
    }
}
