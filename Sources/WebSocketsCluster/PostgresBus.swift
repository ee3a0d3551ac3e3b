import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol

/// The cluster's bus on PostgreSQL. A send is written once as a row of `websockets_messages` and announced with
/// `NOTIFY websockets, '<id>'` (the id only, so NOTIFY's 8000-byte limit never matters). Every server reads new rows
/// in id order and applies them to its own connections; after a lost LISTEN connection or a restart it catches up
/// from the last id it applied. Rows are kept for `retention` seconds, which is also the window for recovery.
///
/// The parts, each with one job: ``PostgresSchema`` (tables and the SQL function), ``BusPublisher`` (writing, and
/// delivering here during an outage), ``BusReader`` (LISTEN and applying rows, through a ``GapTracker``),
/// ``PoolMembership`` (heartbeat and upkeep), ``MessageReplay`` (what a reconnecting browser missed) and
/// ``PresenceSync`` (who is online, cluster-wide). They run
/// as child tasks of one task group beside `PostgresClient.run()`, as postgres-nio asks; shutdown cancels the group.
package final class PostgresBus: MessageBus, Sendable {
    private let client: PostgresClient
    private let hub: Hub
    private let metrics: ServerMetrics
    private let logger: Logger
    private let serverID: String
    /// The largest row the bus writes or reads (`max_send_size`).
    private let maxSendSize: Int
    private let configurationError: (any Error)?
    /// What the URL names, for messages.
    private let target: PostgresURL?
    private let pool: PoolMembership
    private let replay: MessageReplay
    private let publisher: BusPublisher
    private let presenceSync: PresenceSync
    /// Set at start, once the last id is known.
    private let reader = NIOLockedValueBox<BusReader?>(nil)
    /// The task group of the client and the parts.
    private let running = NIOLockedValueBox<Task<Void, Never>?>(nil)
    /// The parts still running, by name: named in the log when they do not stop in time.
    private let runningParts = RunningParts()
    /// How long the parts have to stop once cancelled: with the drain (2 s) and the two leaves (2 s each), the bus
    /// stops within 10 s, part of the server's stop bound (``WebSocketsServer/stopBound(siteTimeout:)``).
    package static let stopTimeout = Duration.seconds(4)

    /// A bus on the database of `settings`' `postgres`; `address` holds this server's advertised address once it
    /// listens.
    package init(
        settings: Settings, hub: Hub, metrics: ServerMetrics, logger: Logger, serverID: String,
        address: NIOLockedValueBox<String>, retention: Int, presence: NIOLockedValueBox<PresenceLedger>
    ) {
        var configuration: PostgresClient.Configuration
        var target: PostgresURL?
        do {
            let parsed = try PostgresURL(settings: settings)
            target = parsed
            configuration = try parsed.configuration()
            configurationError = nil
        } catch {
            // Reported by start(), so that the server can be constructed without throwing.
            configuration = PostgresClient.Configuration(
                host: "127.0.0.1", username: "", password: nil, database: nil, tls: .disable)
            configurationError = error
        }
        self.target = target
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.hub = hub
        self.metrics = metrics
        self.logger = logger
        self.serverID = serverID
        maxSendSize = settings.maxSendSize
        let reader = self.reader
        pool = PoolMembership(
            client: client, logger: logger, serverID: serverID, address: address, retention: retention,
            figures: { (hub.counts.connections, reader.withLockedValue { $0?.head ?? 0 }) })
        // Two replays at once per core: a storm waits its turn (at most 1,024 waiting) instead of reading the table
        // 40 times at once.
        replay = MessageReplay(
            client: client, logger: logger, metrics: metrics,
            gate: ReplayGate(slots: 2 * System.coreCount, maximumWaiting: 1024), maxRowSize: settings.maxSendSize)
        presenceSync = PresenceSync(
            client: client, logger: logger, metrics: metrics, serverID: serverID, grace: settings.presenceGrace,
            ledger: presence)
        publisher = BusPublisher(
            client: client, hub: hub, metrics: metrics, logger: logger, serverID: serverID,
            maxSendSize: settings.maxSendSize, isListening: { reader.withLockedValue { $0?.isListening ?? false } })
    }

    package var presenceDecisions: AsyncStream<PresenceLedger.Change> { presenceSync.decisions }
    package var presenceObserved: AsyncStream<PresenceLedger.Change> { presenceSync.observed }

    /// Whether this server hears the cluster's notifications now (its LISTEN connection is up).
    package var isListening: Bool { reader.withLockedValue { $0?.isListening ?? false } }

    /// The id of the last message this server applied.
    package var head: Int64 { reader.withLockedValue { $0?.head ?? 0 } }

    /// Every server of the pool (``PoolMembership/members()``), within 2 s.
    package func poolMembers() async throws -> [PoolMember]? {
        try await PostgresDeadline.bounded(.seconds(2)) { [pool] in try await pool.members() }
    }

    // MARK: Lifecycle

    package func start() async throws {
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
        // The client runs from now on; the parts join it once the schema and the last id are known.
        let (parts, addParts) = AsyncStream.makeStream(of: BusReader.self)
        let client = self.client
        let (pool, publisher, presenceSync) = (self.pool, self.publisher, self.presenceSync)
        let runningParts = self.runningParts
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                runningParts.add("client", to: &group) { await client.run() }
                for await reader in parts {
                    runningParts.add("reader", to: &group) { await reader.run() }
                    runningParts.add("publisher", to: &group) { await publisher.run() }
                    runningParts.add("pool", to: &group) { await pool.run() }
                    presenceSync.addParts(to: &group, running: runningParts)
                }
                await group.waitForAll()
            }
        }
        running.withLockedValue { $0 = task }
        do {
            try await PostgresSchema.create(on: client, maxSendSize: maxSendSize, logger: logger)
            let last = try await PostgresSchema.lastMessageID(on: client, logger: logger)
            try await pool.heartbeat()
            let reader = BusReader(
                client: client, logger: logger, metrics: metrics, lastApplied: last, maxRowSize: maxSendSize
            ) { [self] id, key, payload in
                apply(id: id, key: key, payload: payload)
            }
            self.reader.withLockedValue { $0 = reader }
            addParts.yield(reader)
            addParts.finish()
        } catch {
            addParts.finish()
            task.cancel()
            await task.value
            presenceSync.finish()
            throw ClusterError(description: PostgresFailure.describe(error, target: target))
        }
        logger.info("cluster bus on PostgreSQL started", metadata: ["last_id": "\(head)"])
    }

    package func shutdown() async {
        // Sends accepted before the shutdown still go out (for up to 2 s), then the server leaves the pool.
        await publisher.drain(within: .seconds(2))
        await presenceSync.leave()
        await pool.leave()
        guard let task = running.withLockedValue({ $0 }) else { return }
        task.cancel()
        // Bounded: a part that does not stop must not keep the process from ending (a server once stayed up, not
        // listening, after SIGTERM in the tests). Then the part is named, for the next person to look.
        let stopped = (try? await PostgresDeadline.bounded(Self.stopTimeout) { await task.value }) != nil
        presenceSync.finish()
        if !stopped {
            logger.error(
                "cluster bus: parts did not stop in time; leaving them", metadata: ["parts": "\(runningParts.sorted)"])
        }
    }

    // MARK: Sends

    package func enqueue(_ sends: [Send]) {
        publisher.enqueue(sends)
    }

    package func publish(_ sends: [Send], then done: @escaping @Sendable () -> Void) {
        publisher.publish(sends, then: done)
    }

    package func messages(
        after: Int64, through: Int64, for recipient: ReplayRecipient, budget: Int
    ) async throws -> (rows: [(id: Int64, send: Send)], complete: Bool) {
        try await replay.messages(after: after, through: through, for: recipient, budget: budget)
    }

    private func apply(id: Int64, key: SendKey?, payload: String) {
        // Delivered here already, while the database was away.
        if publisher.wasDeliveredHere(key) { return }
        guard let send = PostgresSchema.decode(payload) else {
            logger.warning("unreadable message row skipped", metadata: ["id": "\(id)"])
            metrics.dropped(reason: .unreadableRow)
            return
        }
        hub.deliver(send, id: id)
    }
}

/// The cluster could not be joined.
public struct ClusterError: Error, CustomStringConvertible {
    /// What failed.
    public let description: String
}
