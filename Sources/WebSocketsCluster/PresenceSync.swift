import WebSocketsHub
import WebSocketsConnection
import WebSocketsCore
import WebSocketsProtocol
import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// Presence across the cluster, with PostgreSQL as the one place that decides. Each server writes its own tab
/// count per user (`websockets_presence`, one row per server and user) when it changes, at most every 250 ms, and
/// announces it (`NOTIFY websockets_presence`); the others read that server's rows into their ledger. A user's row
/// in `websockets_online` exists while the user is online:
/// - the server whose write creates it (`INSERT ... ON CONFLICT`) tells the site `User/online`: one server, once;
/// - when no live server (a heartbeat within 30 s) has a tab of the user, the row is marked empty, and once it has
///   been empty for `presence_grace` seconds, the server whose `DELETE ... RETURNING` removes it tells the site
///   `User/offline`. A reload, or a reconnect to another server, within the grace clears the mark: no event.
///
/// Nothing is written per connection at steady state: a second's sweep is three statements per server. While
/// PostgreSQL is away each server keeps its own ledger (asked by `/WebSockets/presence`), and writes everything it
/// holds when the database is back; the decisions, being PostgreSQL's, are neither repeated nor lost.
package final class PresenceSync: Sendable {
    private let client: PostgresClient
    private let logger: Logger
    private let metrics: ServerMetrics
    private let serverID: String
    private let grace: Double
    private let ledger: NIOLockedValueBox<PresenceLedger>
    /// After a failed write (or at start), everything this server holds is written, not only what changed.
    private let writeEverything = NIOLockedValueBox(true)
    /// Arrivals not yet written (kept across failed writes): each must reach PostgreSQL once, even if the user has
    /// left since, so that a stay during an outage is announced (online, then offline after the grace).
    private let unwrittenArrivals = NIOLockedValueBox<[String: PresenceLedger.LocalCount]>([:])
    private let changes: AsyncStream<PresenceLedger.Change>.Continuation
    /// The decisions this server made: the server tells the site and its handlers.
    package let decisions: AsyncStream<PresenceLedger.Change>
    private let seen: AsyncStream<PresenceLedger.Change>.Continuation
    /// Every decision of the cluster (announced with NOTIFY): each server tells its own watching browsers.
    package let observed: AsyncStream<PresenceLedger.Change>
    static let flushInterval = Duration.milliseconds(250)

    package init(
        client: PostgresClient, logger: Logger, metrics: ServerMetrics, serverID: String, grace: Double,
        ledger: NIOLockedValueBox<PresenceLedger>
    ) {
        self.client = client
        self.logger = logger
        self.metrics = metrics
        self.serverID = serverID
        self.grace = grace
        self.ledger = ledger
        (decisions, changes) = AsyncStream.makeStream()
        (observed, seen) = AsyncStream.makeStream()
    }

    /// The loops still running, by name (for the log of a shutdown that did not end in time).
    package let running = RunningParts()

    /// Writes, sweeps and listens until cancelled.
    package func run() async {
        await withTaskGroup(of: Void.self) { group in
            running.add("write", to: &group, writeLoop)
            running.add("sweep", to: &group, sweepLoop)
            running.add("listen", to: &group, listenLoop)
            await group.waitForAll()
        }
        changes.finish()
        seen.finish()
    }

    // MARK: Writing

    private func writeLoop() async {
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
                let online = try await watched("write") { watch in
                    try await self.write(counts, brief: brief, replacing: everything, watch: watch)
                }
                writeEverything.withLockedValue { $0 = false }
                unwrittenArrivals.withLockedValue { unwritten in
                    for arrival in arrivals where unwritten[arrival.key] == arrival { unwritten[arrival.key] = nil }
                }
                if failures > 0 { logger.info("presence written again") }
                failures = 0
                for change in online { changes.yield(change) }
            } catch {
                // What was taken is lost with the failed transaction: the next write says everything again.
                writeEverything.withLockedValue { $0 = true }
                // Cancelled: the server is stopping, and `leave()` removes its rows; nothing to warn about.
                if Task.isCancelled { return }
                countFailure(of: "write", error)
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

    /// How long a transaction's statements may make no progress before it is given up on (``TransactionWatch``):
    /// longer than PostgreSQL's own limits on them (``limitWaits(_:)``), so that on a live database those fire first.
    static let stallLimit = Duration.seconds(5)

    /// Runs `transaction` until cancelled, giving it up (and throwing) once its statements stall for
    /// ``stallLimit``; nothing it decided is then committed.
    private func watched<T: Sendable>(
        _ name: String, _ transaction: @escaping @Sendable (NIOLockedValueBox<TransactionWatch>) async throws -> T
    ) async throws -> T {
        let watch = NIOLockedValueBox(TransactionWatch(now: DispatchTime.now().uptimeNanoseconds))
        let limit = UInt64(Self.stallLimit.components.seconds) * 1_000_000_000
        return try await PostgresDeadline.abandoning(checkingEvery: .milliseconds(250)) {
            try await transaction(watch)
        } giveUp: {
            let now = DispatchTime.now().uptimeNanoseconds
            guard watch.withLockedValue({ $0.abandonIfStalled(now: now, limit: limit) }) else { return nil }
            return Stall(operation: name)
        }
    }

    /// A presence transaction given up on: its statements made no progress for ``stallLimit``.
    package struct Stall: Error, CustomStringConvertible {
        /// `write` or `sweep`.
        package let operation: String

        package var description: String {
            "presence \(operation) stalled for \(PresenceSync.stallLimit): given up, not committed"
        }
    }

    private func countFailure(of operation: String, _ error: any Error) {
        metrics.presenceFailure(operation: operation, reason: error is Stall ? "stalled" : "database")
    }

    /// Marks progress of a watched transaction, at each statement; throws when it was given up on, so that it rolls
    /// back instead of going on (and, at the end of its statements, `finished`, instead of committing).
    private static func step(_ watch: NIOLockedValueBox<TransactionWatch>, finished: Bool = false) throws {
        let goesOn = watch.withLockedValue { watch in
            finished ? watch.finishStatements() : watch.progressed(now: DispatchTime.now().uptimeNanoseconds)
        }
        guard goesOn else { throw ClusterError(description: "given up on while stalled: rolled back") }
    }

    /// Runs `body` in a transaction, with a step of `watch` at each of its own statements (postgres-nio's
    /// `withTransaction` has none around its `BEGIN`, which once never returned).
    private func transaction<T: Sendable>(
        _ watch: NIOLockedValueBox<TransactionWatch>, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        let logger = self.logger
        return try await client.withConnection { connection in
            try Self.step(watch)
            try await connection.query("BEGIN", logger: logger)
            do {
                try Self.step(watch)
                try await Self.limitWaits(connection)
                try Self.step(watch)
                let value = try await body(connection)
                try Self.step(watch, finished: true)
                try await connection.query("COMMIT", logger: logger)
                return value
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    /// Writes this server's counts (all of them when `replacing`), and the `brief` stays (users who arrived and left
    /// between two writes: online now, empty since now); returns the users this write brought online.
    private func write(
        _ counts: [PresenceLedger.LocalCount], brief: [PresenceLedger.LocalCount], replacing: Bool,
        watch: NIOLockedValueBox<TransactionWatch>
    ) async throws -> [PresenceLedger.Change] {
        let present = counts.filter { $0.tabs > 0 }
        let gone = counts.filter { $0.tabs == 0 }.map(\.key)
        let keys = present.map(\.key)
        let values = present.map { $0.user.serialized() }
        let groups = present.map { JSON.array($0.groups.map(JSON.string)).serialized() }
        let tabs = present.map { Int64($0.tabs) }
        let server = serverID
        let logger = self.logger
        return try await transaction(watch) { connection in
            if replacing {
                try await connection.query(
                    "DELETE FROM websockets_presence WHERE server = \(server) AND NOT (user_key = ANY(\(keys)::text[]))",
                    logger: logger)
                try Self.step(watch)
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
                try Self.step(watch)
                // The row's creation is the decision; its NOTIFY (sent at commit) tells every server's browsers.
                let rows = try await connection.query(
                    """
                    WITH decided AS (
                        INSERT INTO websockets_online (user_key, user_value, groups)
                        SELECT k, v, g FROM unnest(\(keys)::text[], \(values)::text[], \(groups)::text[]) AS u(k, v, g)
                        ON CONFLICT (user_key) DO UPDATE SET empty_since = NULL, groups = EXCLUDED.groups
                        RETURNING user_value, groups, (xmax = 0) AS inserted)
                    \(unescaped: Self.announced(online: true, filter: "inserted"))
                    """, logger: logger)
                online += try await Self.decisions(rows, online: true)
                try Self.step(watch)
            }
            if !brief.isEmpty {
                let rows = try await connection.query(
                    """
                    WITH decided AS (
                        INSERT INTO websockets_online (user_key, user_value, groups, empty_since)
                        SELECT k, v, g, now() FROM unnest(\(brief.map(\.key))::text[], \(brief.map { $0.user.serialized() })::text[], \(brief.map { JSON.array($0.groups.map(JSON.string)).serialized() })::text[]) AS u(k, v, g)
                        ON CONFLICT (user_key) DO NOTHING
                        RETURNING user_value, groups)
                    \(unescaped: Self.announced(online: true))
                    """, logger: logger)
                online += try await Self.decisions(rows, online: true)
                try Self.step(watch)
            }
            if !gone.isEmpty || replacing {
                try await connection.query(
                    "DELETE FROM websockets_presence WHERE server = \(server) AND user_key = ANY(\(gone)::text[])",
                    logger: logger)
                try Self.step(watch)
                try await connection.query(PostgresQuery(unsafeSQL: Self.markEmptied), logger: logger)
                try Self.step(watch)
            }
            try await connection.query("SELECT pg_notify('websockets_presence', \(server))", logger: logger)
            return online
        }
    }

    /// Bounds the transaction's statements on PostgreSQL's side (3 s for a lock, 4 s a statement; they touch a few
    /// rows): a write or a sweep waiting for a lock forever (seen in the tests, where a server's write then kept its
    /// shutdown from ending) fails and is made again, and being PostgreSQL's own abort, nothing of it was
    /// committed, so no decision is lost. Under ``stallLimit``, so that on a live database these fire first.
    private static func limitWaits(_ connection: PostgresConnection) async throws {
        try await connection.query(
            "SELECT set_config('lock_timeout', '3s', true), set_config('statement_timeout', '4s', true)",
            logger: Logger(label: "websockets.presence"))
    }

    /// Removes this server's rows (on shutdown): its users' tabs are gone from here.
    package func leave() async {
        let server = serverID
        _ = try? await PostgresDeadline.bounded {
            try await self.client.withTransaction(logger: self.logger) { connection in
                try await connection.query(
                    "DELETE FROM websockets_presence WHERE server = \(server)", logger: self.logger)
                try await connection.query(PostgresQuery(unsafeSQL: Self.markEmptied), logger: self.logger)
                try await connection.query(
                    "SELECT pg_notify('websockets_presence', \(server))", logger: self.logger)
            }
        }
    }

    // MARK: Deciding who went offline

    private func sweepLoop() async {
        while !Task.isCancelled {
            // Jittered, so that the servers do not all sweep at once.
            try? await Task.sleep(for: .milliseconds(Int64.random(in: 800...1200)))
            if Task.isCancelled { return }
            do {
                // Watched as the write is: given up on only while it has not committed.
                let offline = try await watched("sweep") { watch in try await self.sweep(watch: watch) }
                for change in offline { changes.yield(change) }
            } catch {
                if Task.isCancelled { return }
                countFailure(of: "sweep", error)
                logger.debug("presence sweep failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// Marks users without a tab on a live server, clears the mark of those with one again, and removes those
    /// marked for longer than the grace; the users removed by this server.
    private func sweep(watch: NIOLockedValueBox<TransactionWatch>) async throws -> [PresenceLedger.Change] {
        let live = """
            EXISTS (SELECT 1 FROM websockets_presence p JOIN websockets_pool s ON s.server = p.server
                    WHERE p.user_key = o.user_key AND s.heartbeat > now() - interval '30 seconds')
            """
        let (grace, logger) = (self.grace, self.logger)
        return try await transaction(watch) { connection in
            try await connection.query(
                PostgresQuery(
                    unsafeSQL:
                        "UPDATE websockets_online o SET empty_since = now() WHERE o.empty_since IS NULL AND NOT \(live)"
                ),
                logger: logger)
            try Self.step(watch)
            try await connection.query(
                PostgresQuery(
                    unsafeSQL:
                        "UPDATE websockets_online o SET empty_since = NULL WHERE o.empty_since IS NOT NULL AND \(live)"),
                logger: logger)
            try Self.step(watch)
            let rows = try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        WITH decided AS (
                            DELETE FROM websockets_online o
                            WHERE o.empty_since < now() - make_interval(secs => \(grace)) AND NOT \(live)
                            RETURNING user_value, groups)
                        \(Self.announced(online: false))
                        """), logger: logger)
            return try await Self.decisions(rows, online: false)
        }
    }

    // MARK: Reading the other servers

    private func listenLoop() async {
        var failures = 0
        let refresher = Task {
            // A safety net beside NOTIFY, and how dead servers' tabs leave the ledger.
            while !Task.isCancelled {
                try? await PostgresDeadline.bounded { try await self.readAll() }
                try? await Task.sleep(for: .seconds(5))
            }
        }
        defer { refresher.cancel() }
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: "websockets_presence") { notifications in
                        failures = 0
                        for try await notification in notifications where notification.payload != serverID {
                            if notification.payload.hasPrefix("{") {
                                // A decision, from whichever server made it.
                                if let change = Self.change(announcement: notification.payload) { seen.yield(change) }
                            } else {
                                try? await PostgresDeadline.bounded {
                                    try await self.read(server: notification.payload)
                                }
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

    /// Reads `server`'s rows into the ledger.
    private func read(server: String) async throws {
        let rows = try await client.query(
            "SELECT user_key, user_value, groups, tabs FROM websockets_presence WHERE server = \(server)",
            logger: logger)
        var counts: [String: PresenceLedger.RemoteCount] = [:]
        for try await (key, value, groups, tabs) in rows.decode((String, String, String, Int64).self) {
            counts[key] = Self.count(value: value, groups: groups, tabs: tabs)
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
            servers[server, default: [:]][key] = Self.count(value: value, groups: groups, tabs: tabs)
        }
        ledger.withLockedValue { ledger in
            ledger.keepRemote(Set(servers.keys))
            for (server, counts) in servers { ledger.replaceRemote(server: server, counts: counts) }
        }
    }

    /// Marks the online users with no tab left on any server: their grace starts now.
    private static let markEmptied = """
        UPDATE websockets_online o SET empty_since = now()
        WHERE o.empty_since IS NULL AND NOT EXISTS (SELECT 1 FROM websockets_presence p WHERE p.user_key = o.user_key)
        """

    /// The end of a statement whose CTE `decided` returns the rows of users it brought online or offline (those
    /// matching `filter`): each is announced to every server with a NOTIFY (sent at commit), and returned.
    private static func announced(online: Bool, filter: String = "true") -> String {
        """
        , notified AS (
            SELECT pg_notify('websockets_presence', '{"online":\(online),"user":' || user_value || ',"groups":' || groups || '}')
            FROM decided WHERE \(filter))
        SELECT user_value, groups FROM decided WHERE \(filter) AND (SELECT count(*) FROM notified) >= 0
        """
    }

    /// The decisions a statement ending with ``announced(online:filter:)`` returned.
    private static func decisions(_ rows: PostgresRowSequence, online: Bool) async throws -> [PresenceLedger.Change] {
        var changes: [PresenceLedger.Change] = []
        for try await (value, groups) in rows.decode((String, String).self) {
            changes.append(change(online: online, user: value, groups: groups))
        }
        return changes
    }

    /// Another server's row as a count.
    private static func count(value: String, groups: String, tabs: Int64) -> PresenceLedger.RemoteCount {
        PresenceLedger.RemoteCount(
            user: (try? JSON(parsing: value)) ?? .string(value), groups: Self.groups(groups), tabs: Int(tabs))
    }

    /// A decision from its row's text: the user as the site gave it, its groups as a JSON array.
    private static func change(online: Bool, user: String, groups: String) -> PresenceLedger.Change {
        PresenceLedger.Change(
            online: online, user: (try? JSON(parsing: user)) ?? .string(user), groups: Self.groups(groups).sorted())
    }

    /// A decision from its NOTIFY: `{"online": true, "user": 42, "groups": ["7"]}`.
    private static func change(announcement: String) -> PresenceLedger.Change? {
        guard let value = try? JSON(parsing: announcement), case .bool(let online)? = value["online"],
            let user = value["user"]
        else { return nil }
        let groups = value["groups"]?.arrayValue?.compactMap(\.stringValue) ?? []
        return PresenceLedger.Change(online: online, user: user, groups: groups.sorted())
    }

    private static func groups(_ text: String) -> Set<String> {
        guard case .array(let items) = (try? JSON(parsing: text)) ?? .null else { return [] }
        return Set(items.compactMap(\.stringValue))
    }
}
