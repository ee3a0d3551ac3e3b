import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// The cluster's bus on PostgreSQL. A send is written once as a row of `websockets_messages` and announced with
/// `NOTIFY websockets, '<id>'` (the id only, so NOTIFY's 8000-byte limit never matters). Every server reads new rows
/// in id order and applies them to its own connections; after a lost LISTEN connection or a restart it catches up
/// from the last id it applied. Rows are kept for `retention` seconds, which is also the window for recovery.
///
/// Ids are given at insert and rows become visible at commit, so a row can appear after a higher id was applied
/// (a slower transaction). The reader remembers such gaps for a while and applies a row that fills one when it
/// appears: nothing committed is skipped, nothing is applied twice.
final class PostgresBus: MessageBus, Sendable {
    private struct Pending {
        var send: Send
        var origin: String?
    }

    private struct State {
        var queue: [(sends: [Pending], done: CheckedContinuation<Void, Never>?)] = []
        /// Sends already delivered here during an outage, waiting to reach the other servers.
        var unpublished: [Pending] = []
        var lastApplied: Int64 = 0
        var gaps: [Int64: ContinuousClock.Instant] = [:]
        var databaseUp = true
        /// Whether the LISTEN connection is up. It drops the moment PostgreSQL goes away, seconds before a query
        /// would time out: while it is down, sends are delivered here at once and written when the database is
        /// back (the first send after a stop waited 2 s before).
        var listening = true
    }

    private let client: PostgresClient
    private let hub: Hub
    private let metrics: ServerMetrics
    private let logger: Logger
    private let serverID: String
    private let address: NIOLockedValueBox<String>
    private let configurationError: (any Error)?
    /// What the URL names, for messages.
    private let target: PostgresURL?
    private let retention: Int
    private let state = NIOLockedValueBox(State())
    private let tasks = NIOLockedValueBox<[Task<Void, Never>]>([])
    private let readerWake: AsyncStream<Void>.Continuation
    private let readerWakes: AsyncStream<Void>
    private let publisherWake: AsyncStream<Void>.Continuation
    private let publisherWakes: AsyncStream<Void>
    private let retryWake: AsyncStream<Void>.Continuation
    private let retryWakes: AsyncStream<Void>

    private static let gapLifetime = Duration.seconds(30)
    /// postgres-nio waits for a connection as long as it takes; the bus must notice an outage quickly instead.
    private static let queryTimeout = Duration.seconds(2)
    private static let maximumUnpublished = 10_000
    private static let batchSize = 500

    var isCluster: Bool { true }

    /// A bus on the database of `settings`' `postgres`; `address` holds this server's advertised address once it
    /// listens.
    init(
        settings: Settings, hub: Hub, metrics: ServerMetrics, logger: Logger, serverID: String,
        address: NIOLockedValueBox<String>, retention: Int
    ) {
        target = try? PostgresURL(
            parsing: settings.postgres ?? "", defaultMode: settings.postgresSSLMode,
            defaultRootCert: settings.postgresSSLRootCert)
        var configuration: PostgresClient.Configuration
        do {
            configuration = try PostgresURL.configuration(settings)
            configurationError = nil
        } catch {
            // Reported by start(), so that the server can be constructed without throwing.
            configuration = PostgresClient.Configuration(
                host: "127.0.0.1", username: "", password: nil, database: nil, tls: .disable)
            configurationError = error
        }
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.hub = hub
        self.metrics = metrics
        self.logger = logger
        self.serverID = serverID
        self.address = address
        self.retention = retention
        (readerWakes, readerWake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        (publisherWakes, publisherWake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        (retryWakes, retryWake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The id of the last message this server applied.
    var head: Int64 { state.withLockedValue { $0.lastApplied } }

    // MARK: Lifecycle

    func start() async throws {
        if let configurationError { throw configurationError }
        if let target {
            // One connection first: its failure says what went wrong (TLS refused, certificate, password).
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: try target.connectionConfiguration(), id: 0, logger: logger)
                try await connection.close()
            } catch {
                throw ClusterError(description: PostgresFailure.describe(error, target: target))
            }
        }
        let client = self.client
        let runner = Task { await client.run() }
        do {
            try await createSchema()
            let rows = try await client.query(
                "SELECT COALESCE(max(id), 0)::bigint FROM websockets_messages", logger: logger)
            var last: Int64 = 0
            for try await (id) in rows.decode(Int64.self) { last = id }
            state.withLockedValue { $0.lastApplied = last }
            try await heartbeat()
        } catch {
            runner.cancel()
            throw ClusterError(description: PostgresFailure.describe(error, target: target))
        }
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.listenLoop() }
                group.addTask { await self.readLoop() }
                group.addTask { await self.publishLoop() }
                group.addTask { await self.retryLoop() }
                group.addTask { await self.maintenanceLoop() }
                await group.waitForAll()
            }
        }
        tasks.withLockedValue { $0 = [task, runner] }
        logger.info("cluster bus on PostgreSQL started", metadata: ["last_id": "\(head)"])
    }

    func shutdown() async {
        // Sends accepted before the shutdown still go out.
        let deadline = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < deadline && state.withLockedValue({ !$0.queue.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        _ = try? await client.query(
            "DELETE FROM websockets_pool WHERE address = \(address.withLockedValue { $0 })", logger: logger)
        // The loops first, then the client they use.
        let running = tasks.withLockedValue { $0 }
        for task in running {
            task.cancel()
            await task.value
        }
    }

    private func createSchema() async throws {
        try await client.withTransaction(logger: logger) { connection in
            // Servers starting together must not race on CREATE.
            try await connection.query("SELECT pg_advisory_xact_lock(7272001)", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS websockets_pool (
                    address text PRIMARY KEY, server text NOT NULL, heartbeat timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS websockets_messages (
                    id bigserial PRIMARY KEY, payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            try await connection.query(
                "CREATE INDEX IF NOT EXISTS websockets_messages_created_at ON websockets_messages (created_at)",
                logger: logger)
            // A site sends inside its own transaction: the row and the NOTIFY exist only if it commits. The details
            // are `json`, which keeps the text as written (`jsonb` reorders keys and respells numbers); the jsonb
            // version of earlier releases is dropped, since both would make a call with a literal ambiguous.
            try await connection.query(
                "DROP FUNCTION IF EXISTS websockets_send(text, jsonb, integer, jsonb)", logger: logger)
            try await connection.query(
                """
                CREATE OR REPLACE FUNCTION websockets_send(action text, details json, send_to integer, target json DEFAULT NULL)
                RETURNS bigint LANGUAGE plpgsql AS $$
                DECLARE new_id bigint;
                BEGIN
                    INSERT INTO websockets_messages (payload)
                    VALUES ('[' || to_json(action)::text || ',' || coalesce(details::text, 'null') || ',' ||
                            coalesce(send_to::text, 'null') || ',' || coalesce(target::text, 'null') || ']')
                    RETURNING id INTO new_id;
                    PERFORM pg_notify('websockets', new_id::text);
                    RETURN new_id;
                END $$
                """, logger: logger)
        }
    }

    // MARK: Publishing

    func enqueue(_ sends: [Send]) {
        state.withLockedValue { $0.queue.append((sends.map { Pending(send: $0) }, nil)) }
        publisherWake.yield()
    }

    func publish(_ sends: [Send]) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            state.withLockedValue { $0.queue.append((sends.map { Pending(send: $0) }, done)) }
            publisherWake.yield()
        }
    }

    private func publishLoop() async {
        for await _ in publisherWakes {
            while !Task.isCancelled {
                let batch = state.withLockedValue {
                    state -> [(sends: [Pending], done: CheckedContinuation<Void, Never>?)] in
                    var taken = 0
                    var batch: [(sends: [Pending], done: CheckedContinuation<Void, Never>?)] = []
                    while !state.queue.isEmpty && taken < Self.batchSize {
                        let entry = state.queue.removeFirst()
                        taken += entry.sends.count
                        batch.append(entry)
                    }
                    return batch
                }
                if batch.isEmpty { break }
                let pending = batch.flatMap(\.sends)
                if state.withLockedValue({ !$0.unpublished.isEmpty || !$0.listening }) {
                    // In an outage: deliver here now, in order behind the sends already waiting.
                    deliverDuringOutage(pending, error: nil)
                } else {
                    do {
                        try await insert(pending)
                    } catch {
                        // The database is away: local connections still get the sends now, the other servers once
                        // it is back (the origin mark keeps this server from applying them twice).
                        deliverDuringOutage(pending, error: error)
                    }
                }
                for entry in batch { entry.done?.resume() }
            }
        }
    }

    /// Writes the sends delivered here during an outage once the database answers again, oldest first.
    private func retryLoop() async {
        var failures = 0
        for await _ in retryWakes {
            while !Task.isCancelled {
                let retry = state.withLockedValue { Array($0.unpublished.prefix(Self.batchSize)) }
                if retry.isEmpty { break }
                do {
                    try await insert(retry)
                    state.withLockedValue { $0.unpublished.removeFirst(retry.count) }
                    failures = 0
                } catch {
                    failures += 1
                    await backOff(failures)
                }
            }
        }
    }

    private func deliverDuringOutage(_ pending: [Pending], error: (any Error)?) {
        let (wasUp, dropped) = state.withLockedValue { state -> (Bool, Int) in
            let wasUp = state.databaseUp
            state.databaseUp = false
            // Beyond the cap the newest are not kept (the oldest may be under way to the database).
            let room = max(0, Self.maximumUnpublished - state.unpublished.count)
            state.unpublished.append(contentsOf: pending.prefix(room).map { Pending(send: $0.send, origin: serverID) })
            return (wasUp, pending.count - min(room, pending.count))
        }
        if wasUp {
            logger.warning(
                "PostgreSQL unavailable: delivering sends locally and keeping them for the other servers",
                metadata: ["error": "\(error.map { String(reflecting: $0) } ?? "")"])
        }
        retryWake.yield()
        for entry in pending { hub.deliver(entry.send) }
        if dropped > 0 {
            logger.error(
                "too many sends waiting for PostgreSQL: these will not reach other servers",
                metadata: ["dropped": "\(dropped)"])
            for _ in 0..<dropped { metrics.dropped(reason: "cluster_backlog") }
        }
    }

    /// Runs `operation`, failing after `queryTimeout`.
    private func bounded<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: Self.queryTimeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw ClusterError(description: "PostgreSQL did not answer within \(Self.queryTimeout)")
            }
            return value
        }
    }

    private func insert(_ pending: [Pending]) async throws {
        try await bounded { try await self.insertNow(pending) }
    }

    private func insertNow(_ pending: [Pending]) async throws {
        let payloads = pending.map { entry -> String in
            String(decoding: entry.send.encoded(extra: entry.origin.map { [.string($0)] } ?? []), as: UTF8.self)
        }
        try await client.query(
            """
            WITH rows AS (
                INSERT INTO websockets_messages (payload)
                SELECT payload FROM unnest(\(payloads)::text[]) WITH ORDINALITY AS t(payload, n) ORDER BY n
                RETURNING id)
            SELECT pg_notify('websockets', max(id)::text) FROM rows
            """, logger: logger)
        let recovered = state.withLockedValue { state -> Bool in
            defer { state.databaseUp = true }
            return !state.databaseUp
        }
        if recovered { logger.info("PostgreSQL is back: publishing again") }
    }

    private func backOff(_ failures: Int) async {
        let ceiling = min(5000.0, 100.0 * pow(2, Double(min(failures, 10))))
        try? await Task.sleep(for: .milliseconds(Int64(Double.random(in: ceiling / 2...ceiling))))
    }

    // MARK: Reading

    private func listenLoop() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: "websockets") { notifications in
                        if failures > 0 { logger.info("LISTEN restored: catching up") }
                        failures = 0
                        state.withLockedValue { $0.listening = true }
                        readerWake.yield()
                        for try await _ in notifications { readerWake.yield() }
                    }
                }
            } catch {
                state.withLockedValue { $0.listening = false }
                if failures == 0 {
                    logger.warning("LISTEN lost: reconnecting", metadata: ["error": "\(String(reflecting: error))"])
                }
            }
            failures += 1
            // Jittered, so that servers do not all return to a restarted database at the same moment.
            await backOff(failures)
        }
    }

    private func readLoop() async {
        let ticker = Task {
            // A safety net beside NOTIFY: rows are also looked for once a second.
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                readerWake.yield()
            }
        }
        defer { ticker.cancel() }
        for await _ in readerWakes {
            if Task.isCancelled { break }
            do {
                while try await bounded({ try await self.catchUp() }) {}
            } catch {
                logger.debug("catching up failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// Applies rows after the last applied id, and rows that fill a gap; returns whether more may wait.
    private func catchUp() async throws -> Bool {
        let (last, gaps) = state.withLockedValue { state -> (Int64, [Int64]) in
            let now = ContinuousClock.now
            state.gaps = state.gaps.filter { now - $0.value < Self.gapLifetime }
            return (state.lastApplied, Array(state.gaps.keys))
        }
        let rows = try await client.query(
            """
            SELECT id, payload FROM websockets_messages WHERE id > \(last) OR id = ANY(\(gaps)::bigint[])
            ORDER BY id LIMIT \(Self.batchSize)
            """, logger: logger)
        var count = 0
        for try await (id, payload) in rows.decode((Int64, String).self) {
            count += 1
            let fresh = state.withLockedValue { state -> Bool in
                if id > state.lastApplied {
                    let now = ContinuousClock.now
                    var missing = state.lastApplied + 1
                    // Ids skipped on the way may belong to transactions still running.
                    while missing < id && state.gaps.count < 10_000 {
                        state.gaps[missing] = now
                        missing += 1
                    }
                    state.lastApplied = id
                    return true
                }
                return state.gaps.removeValue(forKey: id) != nil
            }
            if fresh { apply(id: id, payload: payload) }
        }
        return count == Self.batchSize
    }

    private func apply(id: Int64, payload: String) {
        guard let (send, origin) = Self.decode(payload) else {
            logger.warning("unreadable message row skipped", metadata: ["id": "\(id)"])
            metrics.dropped(reason: "unreadable_row")
            return
        }
        // Delivered here already, while the database was away.
        if origin == serverID { return }
        hub.deliver(send, id: id)
    }

    static func decode(_ payload: String) -> (Send, String?)? {
        // The row's text is `[action, details, send_to, target, origin?]`, the details as their sender wrote them.
        Array(payload.utf8).withUnsafeBufferPointer { bytes -> (Send, String?)? in
            guard let elements = try? JSONParser.elements(of: bytes),
                let send = try? Send(elements: elements, in: bytes)
            else { return nil }
            return (send, elements.count > 4 ? elements[4].value.stringValue : nil)
        }
    }

    /// Messages after `after` up to `through`, in order, and whether the window still holds everything after
    /// `after` (older rows are pruned after `retention`).
    func messages(after: Int64, through: Int64) async throws -> (rows: [(id: Int64, send: Send)], complete: Bool) {
        try await bounded { try await self.messagesNow(after: after, through: through) }
    }

    private func messagesNow(after: Int64, through: Int64) async throws -> (
        rows: [(id: Int64, send: Send)], complete: Bool
    ) {
        var result: [(id: Int64, send: Send)] = []
        let rows = try await client.query(
            """
            SELECT id, payload FROM websockets_messages WHERE id > \(after) AND id <= \(through) ORDER BY id LIMIT 10000
            """, logger: logger)
        for try await (id, payload) in rows.decode((Int64, String).self) {
            if let (send, _) = Self.decode(payload) { result.append((id, send)) }
        }
        var oldest: Int64 = 0
        for try await (id) in try await client.query(
            "SELECT COALESCE(min(id), 0)::bigint FROM websockets_messages", logger: logger
        ).decode(Int64.self) {
            oldest = id
        }
        let complete = oldest != 0 ? after + 1 >= oldest : after >= through
        return (result, complete && result.count < 10000)
    }

    // MARK: Pool and retention

    private func heartbeat() async throws {
        try await client.query(
            """
            INSERT INTO websockets_pool (address, server, heartbeat) VALUES (\(address.withLockedValue { $0 }), \(serverID), now())
            ON CONFLICT (address) DO UPDATE SET server = EXCLUDED.server, heartbeat = now()
            """, logger: logger)
    }

    private func maintenanceLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(5))
            do {
                try await bounded { try await self.heartbeat() }
                try await client.query(
                    "DELETE FROM websockets_pool WHERE heartbeat < now() - interval '30 seconds'", logger: logger)
                try await client.query(
                    "DELETE FROM websockets_messages WHERE created_at < now() - make_interval(secs => \(Double(retention)))",
                    logger: logger)
            } catch {
                logger.debug("cluster maintenance failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// The addresses of servers with a recent heartbeat, freshest first.
    static func liveServers(settings: Settings, logger: Logger) async throws -> [String] {
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

/// The cluster could not be joined.
public struct ClusterError: Error, CustomStringConvertible {
    /// What failed.
    public let description: String
}
