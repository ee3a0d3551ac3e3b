import ArgumentParser
import Foundation
import WebSockets

/// The settings every subcommand accepts as flags; they win over the environment and the settings file.
struct SettingsOptions: ParsableArguments {
    @Option(name: .customLong("settings"), help: "The settings file (default: websockets.json).")
    var settingsPath: String?

    @Option(name: .customLong("security-key"), help: "The shared secret of the server and the site.")
    var securityKey: String?
    @Option(name: .customLong("listen-port"), help: "Port of the server (default 8080).")
    var listenPort: String?
    @Option(name: .customLong("listen-locally"), help: "true: 127.0.0.1 only (default); false: all addresses.")
    var listenLocally: String?
    @Option(name: .customLong("session-endpoint"), help: "Default <site>/api/WebSockets/session.")
    var sessionEndpoint: String?
    @Option(
        name: .customLong("message-endpoint"), help: "Default <site>/api/WebSockets/message; none: in-process only.")
    var messageEndpoint: String?
    @Option(name: .customLong("allowed-origins"), help: "Comma-separated origins, or *; default the site's origin.")
    var allowedOrigins: String?
    @Option(name: .customLong("postgres"), help: "PostgreSQL URL of the cluster.")
    var postgres: String?
    @Option(name: .customLong("spawn"), help: "Whether web start may use posix_spawn (default true).")
    var spawn: String?
    @Option(name: .customLong("web-port"), help: "Port of the web-start service (default 8081).")
    var webPort: String?
    @Option(name: .customLong("site-timeout"), help: "Seconds a call to the site may take (default 5).")
    var siteTimeout: String?
    @Option(name: .customLong("session-cache-ttl"), help: "Seconds a session answer is reused per cookie (default 5).")
    var sessionCacheTTL: String?
    @Option(name: .customLong("site-concurrency"), help: "Calls to the site at once (default 32).")
    var siteConcurrency: String?
    @Option(name: .customLong("max-message-size"), help: "Largest browser message in bytes (default 65536).")
    var maxMessageSize: String?
    @Option(name: .customLong("ping-interval"), help: "Seconds between pings (default 25).")
    var pingInterval: String?
    @Option(name: .customLong("idle-timeout"), help: "Seconds of silence before a connection is closed (default 60).")
    var idleTimeout: String?
    @Option(
        name: .customLong("max-outbound-buffer"),
        help: "Bytes queued for one connection before it is closed as a slow reader (default 1048576).")
    var maxOutboundBuffer: String?
    @Option(name: .customLong("max-connections-per-ip"), help: "Connections per IP address; 0: no cap (default).")
    var maxConnectionsPerIP: String?

    /// The flags given, by setting name.
    var flags: [String: String] {
        let pairs: [(String, String?)] = [
            ("security_key", securityKey), ("listen_port", listenPort), ("listen_locally", listenLocally),
            ("session_endpoint", sessionEndpoint), ("message_endpoint", messageEndpoint),
            ("allowed_origins", allowedOrigins), ("postgres", postgres), ("spawn", spawn), ("web_port", webPort),
            ("site_timeout", siteTimeout), ("session_cache_ttl", sessionCacheTTL),
            ("site_concurrency", siteConcurrency), ("max_message_size", maxMessageSize),
            ("ping_interval", pingInterval), ("idle_timeout", idleTimeout),
            ("max_outbound_buffer", maxOutboundBuffer), ("max_connections_per_ip", maxConnectionsPerIP),
        ]
        var flags: [String: String] = [:]
        for (name, value) in pairs { if let value { flags[name] = value } }
        return flags
    }

    /// The loader for these flags, the process environment and the settings file.
    var loader: SettingsLoader {
        SettingsLoader(path: settingsPath, flags: flags)
    }

    /// The settings of a command that runs a server for a site (`start`, `web`): the arguments win, a site is
    /// required, and a key generated now is printed once so the operator can give it to the site.
    func serverSettings(site: String?, serverAddress: String?, command: String) throws -> Settings {
        let loader = self.loader
        var (settings, generated) = try loader.load()
        if let site { settings.site = site }
        if let serverAddress { settings.serverAddress = serverAddress }
        guard !settings.site.isEmpty else {
            throw ValidationError("Give the site's address: websockets \(command) https://example.com")
        }
        if generated {
            print("Generated a security key and saved it to \(loader.path): \(settings.securityKey)")
            fflush(nil)
        }
        return settings
    }
}
