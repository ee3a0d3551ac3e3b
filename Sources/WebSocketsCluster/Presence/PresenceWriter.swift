import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol

/// Writes this server's tab count per user to `websockets_presence` when it changes, at most every 250 ms, and
/// announces it; the write that creates a user's `websockets_online` row is the decision that the user came online.
final class PresenceWriter: Sendable {
    private let transactions: PresenceTransactions
    private let serverID: String
    private let ledger: NIOLockedValueBox<PresenceLedger>
    /// After a failed write (or at start), everything this server holds is written, not only what changed.
    private let writeEverything = NIOLockedValueBox(true)
    /// Arrivals not yet written (kept across failed writes): each must reach PostgreSQL once, even if the user has
    /// left since, so that a stay during an outage is announced (online, then offline after the grace).
    private let unwrittenArrivals = NIOLockedValueBox<[String: PresenceLedger.LocalCount]>([:])
    static let flushInterval = Duration.milliseconds(250)

    init(transactions: PresenceTransactions, serverID: String, ledger: NIOLockedValueBox<PresenceLedger>) {
        self.transactions = transactions
        self.serverID = serverID
        self.ledger = ledger
    }

    private var logger: Logger { transactions.logger }

    /// Writes until cancelled, passing the users each write brought online to `decided`.
    func run(decided: @escaping @Sendable (PresenceLedger.Change) -> Void) async {
        var failures = 0
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.flushInterval)
            if Task.isCancelled { return }
            let everything = writeEverything.withLockedValue { $0 }
            let (counts, arrived) = ledger.withLockedValue { ledger in
                let changed = ledger.takeChanges()
                return (everything ? ledger.localCounts : changed, ledger.takeArrivals())
            }
            let arrivals = unwrittenArrivals.withLockedValue { unwritten in
                for arrival in arrived { unwritten[arrival.key] = arrival }
                return Array(unwritten.values)
            }
            guard everything || !counts.isEmpty || !arrivals.isEmpty else { continue }
            // Who came and has gone again before this write: announced as having been here.
            let present = Set(counts.filter { $0.tabs > 0 }.map(\.key))
            let brief = arrivals.filter { !present.contains($0.key) }
            do {
                // No deadline on the whole: a write that succeeded after one would have its decisions thrown away
                // (a User/online lost in CI, where the first write after a database restart took over 2 s). While
                // PostgreSQL is away the write waits for a connection, and this server answers from its ledger.
                // Only statements that stall are given up on, before COMMIT (TransactionWatch).
                let online = try await transactions.run("write") { connection, step in
                    try await self.write(counts, brief: brief, replacing: everything, on: connection, step: step)
                }
                writeEverything.withLockedValue { $0 = false }
                unwrittenArrivals.withLockedValue { unwritten in
                    for arrival in arrivals where unwritten[arrival.key] == arrival { unwritten[arrival.key] = nil }
                }
                if failures > 0 { logger.info("presence written again") }
                failures = 0
                for change in online { decided(change) }
            } catch {
                // What was taken is lost with the failed transaction: the next write says everything again.
                writeEverything.withLockedValue { $0 = true }
                // Cancelled: the server is stopping, and `leave()` removes its rows; nothing to warn about.
                if Task.isCancelled { return }
                transactions.countFailure(of: "write", error)
                if failures == 0 {
                    logger.warning(
                        "presence could not be written: kept here until PostgreSQL answers",
                        metadata: ["error": "\(String(reflecting: error))"])
                }
                failures += 1
                // At most 800 ms between tries: once PostgreSQL is back, every server must write what it holds well
                // within the grace, or another server's sweep may find a user with no tab anywhere (a server that
                // waited its full 5 s back-off let a user who had moved to it during the outage go offline).
                await PostgresDeadline.backOff(min(failures, 3))
            }
        }
    }

    /// Writes this server's counts (all of them when `replacing`), and the `brief` stays (users who arrived and left
    /// between two writes: online now, empty since now); returns the users this write brought online.
    private func write(
        _ counts: [PresenceLedger.LocalCount], brief: [PresenceLedger.LocalCount], replacing: Bool,
        on connection: PostgresConnection, step: () throws -> Void
    ) async throws -> [PresenceLedger.Change] {
        let present = counts.filter { $0.tabs > 0 }
        let gone = counts.filter { $0.tabs == 0 }.map(\.key)
        let keys = present.map(\.key)
        let values = present.map { $0.user.serialized() }
        let groups = present.map { JSON.array($0.groups.map(JSON.string)).serialized() }
        let tabs = present.map { Int64($0.tabs) }
        let server = serverID
        if replacing {
            try await connection.query(
                "DELETE FROM websockets_presence WHERE server = \(server) AND NOT (user_key = ANY(\(keys)::text[]))",
                logger: logger)
            try step()
        }
        var online: [PresenceLedger.Change] = []
        if !present.isEmpty {
            try await connection.query(
                """
                INSERT INTO websockets_presence (server, user_key, user_value, groups, tabs)
                SELECT \(server), k, v, g, t FROM unnest(\(keys)::text[], \(values)::text[], \(groups)::text[], \(tabs)::bigint[]) AS u(k, v, g, t)
                ON CONFLICT (server, user_key) DO UPDATE
                SET user_value = EXCLUDED.user_value, groups = EXCLUDED.groups, tabs = EXCLUDED.tabs
                """, logger: logger)
            try step()
            // The row's creation is the decision; its NOTIFY (sent at commit) tells every server's browsers.
            let rows = try await connection.query(
                """
                WITH decided AS (
                    INSERT INTO websockets_online (user_key, user_value, groups)
                    SELECT k, v, g FROM unnest(\(keys)::text[], \(values)::text[], \(groups)::text[]) AS u(k, v, g)
                    ON CONFLICT (user_key) DO UPDATE SET empty_since = NULL, groups = EXCLUDED.groups
                    RETURNING user_value, groups, (xmax = 0) AS inserted)
                \(unescaped: PresenceSQL.announced(online: true, filter: "inserted"))
                """, logger: logger)
            online += try await PresenceSQL.decisions(rows, online: true)
            try step()
        }
        if !brief.isEmpty {
            let rows = try await connection.query(
                """
                WITH decided AS (
                    INSERT INTO websockets_online (user_key, user_value, groups, empty_since)
                    SELECT k, v, g, now() FROM unnest(\(brief.map(\.key))::text[], \(brief.map { $0.user.serialized() })::text[], \(brief.map { JSON.array($0.groups.map(JSON.string)).serialized() })::text[]) AS u(k, v, g)
                    ON CONFLICT (user_key) DO NOTHING
                    RETURNING user_value, groups)
                \(unescaped: PresenceSQL.announced(online: true))
                """, logger: logger)
            online += try await PresenceSQL.decisions(rows, online: true)
            try step()
        }
        if !gone.isEmpty || replacing {
            try await connection.query(
                "DELETE FROM websockets_presence WHERE server = \(server) AND user_key = ANY(\(gone)::text[])",
                logger: logger)
            try step()
            try await connection.query(PostgresQuery(unsafeSQL: PresenceSQL.markEmptied), logger: logger)
            try step()
        }
        try await connection.query("SELECT pg_notify('websockets_presence', \(server))", logger: logger)
        return online
    }

    /// Removes this server's rows (on shutdown): its users' tabs are gone from here.
    func leave() async {
        let (server, client, logger) = (serverID, transactions.client, logger)
        _ = try? await PostgresDeadline.bounded {
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query(
                    "DELETE FROM websockets_presence WHERE server = \(server)", logger: logger)
                try await connection.query(PostgresQuery(unsafeSQL: PresenceSQL.markEmptied), logger: logger)
                try await connection.query("SELECT pg_notify('websockets_presence', \(server))", logger: logger)
            }
        }
    }
}
