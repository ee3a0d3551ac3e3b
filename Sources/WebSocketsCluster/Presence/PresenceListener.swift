import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import WebSocketsCore
import WebSocketsHub

/// Reads the other servers: their counts into this server's ledger when they announce a change (and every 5 s, a
/// safety net beside NOTIFY and how dead servers' tabs leave the ledger), and every decision of the cluster for
/// this server's watching browsers.
struct PresenceListener: Sendable {
    let client: PostgresClient
    let logger: Logger
    let serverID: String
    let ledger: NIOLockedValueBox<PresenceLedger>

    /// Listens until cancelled, passing each decision announced by any other server to `observed`.
    func listen(observed: @escaping @Sendable (PresenceLedger.Change) -> Void) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: PresenceSQL.channel) { notifications in
                        failures = 0
                        for try await notification in notifications where notification.payload != serverID {
                            if notification.payload.hasPrefix("{") {
                                // A decision, from whichever server made it.
                                if let change = PresenceSQL.change(announcement: notification.payload) {
                                    observed(change)
                                }
                            } else {
                                try? await PostgresDeadline.bounded { try await read(server: notification.payload) }
                            }
                        }
                    }
                }
            } catch {
                failures += 1
            }
            await PostgresDeadline.backOff(failures)
        }
    }

    /// Reads every live server's counts every 5 s until cancelled.
    func refresh() async {
        while !Task.isCancelled {
            try? await PostgresDeadline.bounded { try await readAll() }
            try? await Task.sleep(for: .seconds(5))
        }
    }

    /// Reads `server`'s rows into the ledger.
    private func read(server: String) async throws {
        let rows = try await client.query(
            "SELECT user_key, user_value, groups, tabs FROM websockets_presence WHERE server = \(server)",
            logger: logger)
        var counts: [String: PresenceLedger.RemoteCount] = [:]
        for try await (key, value, groups, tabs) in rows.decode((String, String, String, Int64).self) {
            counts[key] = PresenceSQL.count(value: value, groups: groups, tabs: tabs)
        }
        ledger.withLockedValue { $0.replaceRemote(server: server, counts: counts) }
    }

    /// Reads every other live server's rows into the ledger, and forgets the servers that are gone.
    private func readAll() async throws {
        let rows = try await client.query(
            """
            SELECT p.server, p.user_key, p.user_value, p.groups, p.tabs FROM websockets_presence p
            JOIN websockets_pool s ON s.server = p.server
            WHERE p.server <> \(serverID) AND s.heartbeat > now() - interval '30 seconds'
            """, logger: logger)
        var servers: [String: [String: PresenceLedger.RemoteCount]] = [:]
        for try await (server, key, value, groups, tabs) in rows.decode((String, String, String, String, Int64).self) {
            servers[server, default: [:]][key] = PresenceSQL.count(value: value, groups: groups, tabs: tabs)
        }
        ledger.withLockedValue { ledger in
            ledger.keepRemote(Set(servers.keys))
            for (server, counts) in servers { ledger.replaceRemote(server: server, counts: counts) }
        }
    }
}
