import Logging
import WebSocketsCore
import WebSocketsHub

/// The cluster's pool of servers, as senders see it.
public enum ClusterPool {
    /// The addresses of servers with a recent heartbeat, freshest first, from the database of `settings`'
    /// `postgres` (with its TLS settings).
    public static func liveServers(settings: Settings) async throws -> [String] {
        try await PoolMembership.liveServers(settings: settings, logger: Logger(label: "websockets.pool"))
    }

    /// The `/WebSockets/send` URL of a server advertised as `ws(s)://host:port/WebSockets`.
    public static func sendURL(forServerAddress address: String) -> String {
        var url = address
        if url.hasPrefix("wss://") { url = "https://" + url.dropFirst(6) }
        if url.hasPrefix("ws://") { url = "http://" + url.dropFirst(5) }
        if url.hasSuffix("/") { url.removeLast() }
        if !url.hasSuffix("/WebSockets") { url += "/WebSockets" }
        return url + "/send"
    }
}
