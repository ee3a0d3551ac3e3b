import WebSocketsProtocol

extension Settings {
    /// Every setting, once: the file, the variables, the flags, the help, the settings page's table and the checks
    /// are all made from this list. The ranges refuse what would crash or spin the server (a ping interval of 0
    /// divided the sweep's tick by zero; a negative one scheduled a timer that fired without pause).
    public static let definitions: [SettingDefinition] = [
        .string("site", \.site, default: "—", "the site's address; `websockets start <site>` gives it too"),
        .string(
            "security_key", \.securityKey, default: "generated",
            "the shared secret of the server and the site: 56 hex characters from the system's cryptographic source, saved to the file (mode 600) and printed on the start that made it"
        ),
        .integer("listen_port", \.listenPort, 0...65535, "the server's port; `0` picks a free one"),
        .boolean("listen_locally", \.listenLocally, "`true`: 127.0.0.1 only; `false`: all addresses"),
        .optionalString(
            "session_endpoint", \.sessionEndpoint, default: "`<site>/api/WebSockets/session`",
            "the site's session endpoint"),
        .optionalString(
            "message_endpoint", \.messageEndpoint, default: "`<site>/api/WebSockets/message`",
            "the site's message endpoint; `none`: in-process handlers only"),
        .list(
            "allowed_origins", \.allowedOrigins, default: "the site's origin",
            "comma-separated list, or `*`; other browser origins get 403 at the upgrade"),
        .optionalString(
            "postgres", \.postgres, default: "none",
            "a PostgreSQL URL: the servers form a cluster (see \"Several servers\"); `?sslmode=`, `?sslrootcert=` and `?connect_timeout=` as libpq reads them"
        ),
        .choice(
            "postgres_sslmode", \.postgresSSLMode, PostgresURL.SSLMode.allCases.map(\.rawValue), default: "`prefer`",
            "TLS to PostgreSQL where the URL gives no `sslmode`: `verify-full` checks the certificate and host name"),
        .optionalString(
            "postgres_sslrootcert", \.postgresSSLRootCert, default: "`~/.postgresql/root.crt`",
            "root certificates (PEM file) for `verify-ca`/`verify-full` where the URL gives no `sslrootcert`; `system`: the system's"
        ),
        .list(
            "trusted_proxies", \.trustedProxies, default: "`127.0.0.1,::1`",
            "addresses and CIDR ranges (`10.0.0.0/8`) whose `X-Forwarded-For` gives the client's address, read right to left as nginx's realip does",
            check: { TrustedProxies.problem(in: $0) }),
        .boolean("spawn", \.spawn, "whether web start may use posix_spawn; `false`: always in-process"),
        .number(
            "presence_grace", \.presenceGrace, 0...3600,
            "seconds a user whose last tab closed still counts as online: `User/offline` comes only after it, so a reload makes no event"
        ),
        .integer(
            "retention", \.retention, 1...2_592_000,
            "seconds cluster messages are kept: the window in which reconnecting tabs recover what they missed"),
        .integer(
            "max_send_size", \.maxSendSize, 1024...(512 << 20),
            "largest send a cluster carries, in bytes of its row; a larger one is not written (`websockets_send` refuses it with an error) and a larger row is skipped unread"
        ),
        .integer("web_port", \.webPort, 0...65535, "the web-start service's port"),
        .number(
            "web_start_timeout", \.webStartTimeout, 1...600,
            "seconds a server started by web start has to come up; then it is stopped with its supervisor and web start answers 500 with the end of its log"
        ),
        .string("log_file", \.logFile, "where a server started by web start writes its output"),
        .number("site_timeout", \.siteTimeout, 0.1...600, "seconds a call to the site may take, connecting included"),
        .number(
            "session_cache_ttl", \.sessionCacheTTL, 0...3600,
            "seconds a session answer is reused for the same cookie, browser and address"),
        .integer(
            "site_concurrency", \.siteConcurrency, 1...10_000,
            "calls to the site at once; more wait in lanes (session checks first, users taking turns)"),
        .integer(
            "max_message_size", \.maxMessageSize, 16...(64 << 20),
            "largest browser message in bytes; larger closes with 1009"),
        .boolean(
            "compression", \.compression,
            "whether the server accepts the browsers' offers of permessage-deflate: each message compressed once per send, no zlib stream kept per connection"
        ),
        .integer(
            "compression_threshold", \.compressionThreshold, 0...(64 << 20),
            "messages shorter than this many bytes are sent uncompressed; a compressed message larger than the plain one is sent plain"
        ),
        .integer(
            "compression_level", \.compressionLevel, 1...9,
            "zlib's level for the messages the server compresses (1 fastest, 9 smallest)"),
        .number("ping_interval", \.pingInterval, 0.05...3600, "seconds between pings"),
        .number(
            "idle_timeout", \.idleTimeout, 0.1...86400,
            "seconds without any frame or pong before a connection is closed (1001 \"Idle timeout\"); more than `ping_interval`"
        ),
        .integer(
            "max_outbound_buffer", \.maxOutboundBuffer, 1024...(1 << 30),
            "bytes waiting for one connection (messages, pongs) beyond which it is a slow reader and is closed"),
        .integer(
            "max_connections_per_ip", \.maxConnectionsPerIP, 0...1_000_000,
            "connections per client address; `0`: no cap; over it the upgrade gets 429"),
        .number(
            "message_rate", \.messageRate, 0.01...1_000_000,
            "messages per second one connection may send on average; beyond it and the burst: `<action>:error [429, ...]`"
        ),
        .integer(
            "message_burst", \.messageBurst, 1...1_000_000, "messages one connection may send at once above the rate"),
        .integer(
            "max_pending_messages", \.maxPendingMessages, 1...100_000,
            "messages of one connection waiting for the site; beyond it new ones get `<action>:error [429, ...]`"),
        .integer(
            "max_pending_bytes", \.maxPendingBytes, 1024...(1 << 30),
            "bytes one connection's waiting messages may hold (their text, and 64 bytes each); beyond it new ones get `<action>:error [429, ...]`; one message always fits"
        ),
        .integer(
            "max_unauthenticated_bytes", \.maxUnauthenticatedBytes, 1024...(1 << 40),
            "bytes the waiting messages of connections not authenticated yet may hold, server-wide; beyond it their new messages get `<action>:error [429, ...]`"
        ),
        .integer(
            "max_site_backlog_bytes", \.maxSiteBacklogBytes, 1024...(1 << 40),
            "bytes the events waiting for the site may hold, server-wide (about 1 KiB each); beyond it new tabs get `Client/authentication:error [503, ...]` and are closed (1013) until the site catches up; disconnections and presence events always wait their turn"
        ),
        .number(
            "authentication_timeout", \.authenticationTimeout, 0.05...3600,
            "seconds a new connection has to authenticate; then it is closed (1008 \"Authentication timeout\")"),
        .number(
            "http_idle_timeout", \.httpIdleTimeout, 0.05...3600,
            "seconds an HTTP (non-WebSocket) connection may wait for its next request"),
        .number(
            "http_request_timeout", \.httpRequestTimeout, 0.05...3600,
            "seconds an HTTP request may take to arrive, head and body, from its first byte"),
        .integer(
            "max_http_connections", \.maxHTTPConnections, 1...1_000_000,
            "open HTTP (non-WebSocket) connections beyond which new ones are closed at once"),
    ]

    /// The definition of the setting `name`.
    static func definition(named name: String) -> SettingDefinition? {
        definitions.first { $0.name == name }
    }

    /// Checks the rules that involve two settings (each one alone is checked as it is read); the server checks
    /// them too before it listens, for settings made in code.
    public func validate() throws(SettingsError) {
        for definition in Self.definitions {
            var copy = self
            guard let text = definition.text(of: self) else { continue }
            try definition.apply(try definition.value(of: text, source: "settings"), source: "settings", to: &copy)
        }
        if !site.isEmpty, Self.origin(of: site) == nil || !(site.hasPrefix("http://") || site.hasPrefix("https://")) {
            throw SettingsError(
                description:
                    "invalid site \"\(site)\": expected the site's address as an http:// or https:// URL, such as https://example.com"
            )
        }
        if let serverAddress, !serverAddress.isEmpty,
            !["ws://", "wss://", "http://", "https://"].contains(where: serverAddress.hasPrefix)
                || Self.origin(of: serverAddress) == nil
        {
            throw SettingsError(
                description:
                    "invalid server address \"\(serverAddress)\": expected how others reach this server, such as wss://10.0.0.5:8080/WebSockets"
            )
        }
        // The URL and its TLS settings, down to a root certificate that must exist: before anything listens.
        if let postgres, !postgres.isEmpty { _ = try PostgresURL(settings: self).tls() }
        guard idleTimeout > pingInterval else {
            throw SettingsError(
                description:
                    "invalid setting idle_timeout = \(idleTimeout): must be more than ping_interval (\(pingInterval)), or every connection is closed before its first ping"
            )
        }
    }

    /// The Markdown table of every setting, as docs/settings.md shows it.
    public static var markdownTable: String {
        var lines = ["| setting | default | allowed | meaning |", "| --- | --- | --- | --- |"]
        for definition in definitions {
            lines.append(
                "| `\(definition.name)` | \(definition.defaultDescription) | \(definition.allowed) | \(definition.help) |"
            )
        }
        return lines.joined(separator: "\n")
    }
}
