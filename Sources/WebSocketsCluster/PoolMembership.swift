import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub

/// This server's entry in `websockets_pool` (its address and a heartbeat every 5 s), and the cluster's upkeep:
/// entries silent for 30 s and messages older than `retention` are removed.
package struct PoolMembership: Sendable {
    package let client: PostgresClient
    package let logger: Logger
    package let serverID: String
    package let address: NIOLockedValueBox<String>
    package let retention: Int
    /// This server's connections and the id of the last message it applied, for the status page's pool.
    package let figures: @Sendable () -> (connections: Int, head: Int64)

    /// Writes this server's heartbeat, with its connections and how many messages it had yet to apply.
    func heartbeat() async throws {
        let (connections, head) = figures()
        try await client.query(
            """
            INSERT INTO websockets_pool (address, server, heartbeat, connections, behind)
            VALUES (\(address.withLockedValue { $0 }), \(serverID), now(), \(connections),
                greatest((SELECT coalesce(max(id), 0) FROM websockets_messages) - \(head), 0))
            ON CONFLICT (address) DO UPDATE SET server = EXCLUDED.server, heartbeat = now(),
                connections = EXCLUDED.connections, behind = EXCLUDED.behind
            """, logger: logger)
    }

    /// Every server of the pool as its last heartbeat left it, freshest first (at most 256 rows).
    package func members() async throws -> [PoolMember] {
        let rows = try await client.query(
            """
            SELECT address, server, connections, behind, extract(epoch FROM now() - heartbeat)::float8
            FROM websockets_pool ORDER BY heartbeat DESC LIMIT 256
            """, logger: logger)
        var members: [PoolMember] = []
        for try await (address, server, connections, behind, age) in rows.decode(
            (String, String, Int32, Int64, Double).self)
        {
            members.append(
                PoolMember(
                    address: address, server: server, connections: Int(connections), behind: behind,
                    heartbeatAge: age))
        }
        return members
    }

    /// Heartbeats and upkeep until cancelled.
    package func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(5))
            if Task.isCancelled { return }
            do {
                try await PostgresDeadline.bounded { try await heartbeat() }
                try await client.query(
                    "DELETE FROM websockets_pool WHERE heartbeat < now() - interval '30 seconds'", logger: logger)
                // The presence rows of servers that left the pool (killed): their tabs are gone.
                try await client.query(
                    "DELETE FROM websockets_presence WHERE server NOT IN (SELECT server FROM websockets_pool)",
                    logger: logger)
                try await client.query(
                    "DELETE FROM websockets_messages WHERE created_at < now() - make_interval(secs => \(Double(retention)))",
                    logger: logger)
            } catch {
                logger.debug("cluster maintenance failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// Leaves the pool (on shutdown): senders stop choosing this server at once.
    package func leave() async {
        _ = try? await PostgresDeadline.bounded {
            try await client.query(
                "DELETE FROM websockets_pool WHERE address = \(address.withLockedValue { $0 })", logger: logger)
        }
    }

    /// The addresses of servers with a recent heartbeat, freshest first.
    package static func liveServers(settings: Settings, logger: Logger) async throws -> [String] {
        let client = PostgresClient(configuration: try PostgresURL.configuration(settings), backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: [String]?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            let rows = try await client.query(
                """
                SELECT address FROM websockets_pool WHERE heartbeat > now() - interval '30 seconds'
                ORDER BY heartbeat DESC
                """, logger: logger)
            var addresses: [String] = []
            for try await (address) in rows.decode(String.self) { addresses.append(address) }
            return addresses
        }
    }
}
