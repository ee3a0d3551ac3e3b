import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol

/// The writing side of the PostgreSQL bus: sends are written in batches, in order, as rows of
/// `websockets_messages`, each batch announced by one `NOTIFY websockets, '<max id>'`. While PostgreSQL is away
/// (a failed insert, or the LISTEN connection down), sends are delivered to this server's connections at once and
/// kept, to be written when the database is back, oldest first.
///
/// Each send gets its key (``SendKey``: this server's id and a number) before its first try, and a row's key is
/// unique: a write abandoned here that PostgreSQL still commits (the client gave up, the server did not) and its
/// retry make one row, not two. The keys of sends delivered here during an outage are remembered until their rows
/// are read back, so that this server does not apply them twice (``wasDeliveredHere(_:)``).
package final class BusPublisher: Sendable {
    private struct Pending {
        var send: Send
        var key: UInt64
    }

    private struct Entry {
        var sends: [Pending]
        /// Called once the sends are written (or delivered here during an outage), or given up at shutdown.
        var done: (@Sendable () -> Void)?
    }

    private struct State {
        var queue: [Entry] = []
        /// Sends already delivered here during an outage, waiting to reach the other servers.
        var unpublished: [Pending] = []
        var databaseUp = true
        /// Shutdown waits for the queue to empty: resumed when it does.
        var drained: [CheckedContinuation<Void, Never>] = []
        /// The number of the next send's key.
        var nextKey: UInt64 = 1
        /// The keys of sends delivered here during an outage whose rows have not been read back yet.
        var deliveredHere: Set<UInt64> = []

        /// `sends` with their keys, numbered from here on.
        mutating func keyed(_ sends: [Send]) -> [Pending] {
            defer { nextKey += UInt64(sends.count) }
            return sends.enumerated().map { Pending(send: $1, key: nextKey + UInt64($0)) }
        }
    }

    private let client: PostgresClient
    private let hub: Hub
    private let metrics: ServerMetrics
    private let logger: Logger
    private let serverID: String
    private let maxSendSize: Int
    private let isListening: @Sendable () -> Bool
    private let state = NIOLockedValueBox(State())
    private let publisherWake: AsyncStream<Void>.Continuation
    private let publisherWakes: AsyncStream<Void>
    private let retryWake: AsyncStream<Void>.Continuation
    private let retryWakes: AsyncStream<Void>
    private static let maximumUnpublished = 10_000
    private static let batchSize = 500

    /// A publisher for this server (`serverID`); `isListening` tells whether the LISTEN connection is up.
    package init(
        client: PostgresClient, hub: Hub, metrics: ServerMetrics, logger: Logger, serverID: String, maxSendSize: Int,
        isListening: @escaping @Sendable () -> Bool
    ) {
        self.maxSendSize = maxSendSize
        self.client = client
        self.hub = hub
        self.metrics = metrics
        self.logger = logger
        self.serverID = serverID
        self.isListening = isListening
        (publisherWakes, publisherWake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        (retryWakes, retryWake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues sends in order without waiting.
    package func enqueue(_ sends: [Send]) {
        let sends = carried(sends)
        state.withLockedValue { $0.queue.append(Entry(sends: $0.keyed(sends), done: nil)) }
        publisherWake.yield()
    }

    /// Queues sends in order now and calls `done` once they are written (or delivered here during an outage), from
    /// the publisher's task. Sends queued before its write began share it: a publisher's pipelined requests make
    /// one insert, not one each.
    func publish(_ sends: [Send], then done: @escaping @Sendable () -> Void) {
        let sends = carried(sends)
        state.withLockedValue { $0.queue.append(Entry(sends: $0.keyed(sends), done: done)) }
        publisherWake.yield()
    }

    /// `sends` without those over `max_send_size`, which the cluster does not carry (counted and logged): every
    /// server would skip their rows unread.
    private func carried(_ sends: [Send]) -> [Send] {
        let carried = sends.filter { $0.encodedCount <= maxSendSize }
        if carried.count < sends.count {
            let refused = sends.count - carried.count
            logger.warning(
                "send over max_send_size not carried by the cluster",
                metadata: ["count": "\(refused)", "max_send_size": "\(maxSendSize)"])
            metrics.dropped(reason: .oversized, count: refused)
        }
        return carried
    }

    /// Returns once every send queued so far has been written (or delivered here), or after `limit`. The wait is
    /// abandoned at the limit, not awaited (a task group would wait for its waiting child), and its waiter resumed.
    package func drain(within limit: Duration) async {
        _ = try? await PostgresDeadline.bounded(limit) {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = self.state.withLockedValue { state -> Bool in
                    if state.queue.isEmpty { return true }
                    state.drained.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
        // A waiter left behind by the time limit is resumed, never leaked.
        for waiter in state.withLockedValue({ state in
            defer { state.drained = [] }
            return state.drained
        }) {
            waiter.resume()
        }
    }

    /// Publishes and retries until cancelled. Sends still queued then are not written: they are counted and logged,
    /// and whoever waits for them is let go.
    package func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.publishLoop() }
            group.addTask { await self.retryLoop() }
            await group.waitForAll()
        }
        let left = state.withLockedValue { state -> [Entry] in
            defer { state.queue = [] }
            return state.queue
        }
        let count = left.reduce(0) { $0 + $1.sends.count }
        if count > 0 {
            logger.warning("stopped with sends not written to PostgreSQL", metadata: ["count": "\(count)"])
            metrics.dropped(reason: .shutdown, count: count)
        }
        for entry in left { entry.done?() }
    }

    private func publishLoop() async {
        await withTaskCancellationHandler {
            for await _ in publisherWakes {
                while !Task.isCancelled {
                    let batch = state.withLockedValue { state -> [Entry] in
                        var taken = 0
                        var batch: [Entry] = []
                        while !state.queue.isEmpty && taken < Self.batchSize {
                            let entry = state.queue.removeFirst()
                            taken += entry.sends.count
                            batch.append(entry)
                        }
                        return batch
                    }
                    if batch.isEmpty { break }
                    let pending = batch.flatMap(\.sends)
                    if state.withLockedValue({ !$0.unpublished.isEmpty }) || !isListening() {
                        // In an outage: deliver here now, in order behind the sends already waiting.
                        deliverDuringOutage(pending, error: nil)
                    } else {
                        do {
                            try await PostgresDeadline.bounded { try await self.insert(pending) }
                        } catch {
                            // The database is away: local connections still get the sends now, the other servers
                            // once it is back.
                            deliverDuringOutage(pending, error: error)
                        }
                    }
                    for entry in batch { entry.done?() }
                    let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
                        guard state.queue.isEmpty else { return [] }
                        defer { state.drained = [] }
                        return state.drained
                    }
                    for waiter in waiters { waiter.resume() }
                }
            }
        } onCancel: {
            publisherWake.finish()
        }
    }

    /// Writes the sends delivered here during an outage once the database answers again, oldest first.
    private func retryLoop() async {
        await withTaskCancellationHandler {
            var failures = 0
            for await _ in retryWakes {
                while !Task.isCancelled {
                    let retry = state.withLockedValue { Array($0.unpublished.prefix(Self.batchSize)) }
                    if retry.isEmpty { break }
                    do {
                        try await PostgresDeadline.bounded { try await self.insert(retry) }
                        state.withLockedValue { $0.unpublished.removeFirst(retry.count) }
                        failures = 0
                    } catch {
                        failures += 1
                        await PostgresDeadline.backOff(failures)
                    }
                }
            }
        } onCancel: {
            retryWake.finish()
        }
    }

    private func deliverDuringOutage(_ pending: [Pending], error: (any Error)?) {
        let (wasUp, dropped) = state.withLockedValue { state -> (Bool, Int) in
            let wasUp = state.databaseUp
            state.databaseUp = false
            // Beyond the cap the newest are not kept (the oldest may be under way to the database).
            let room = max(0, Self.maximumUnpublished - state.unpublished.count)
            let kept = pending.prefix(room)
            state.unpublished.append(contentsOf: kept)
            state.deliveredHere.formUnion(kept.map(\.key))
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
            metrics.dropped(reason: .clusterBacklog, count: dropped)
        }
    }

    /// Whether the row keyed `key`, just read, holds a send this server delivered here during an outage; it is
    /// then forgotten (a row is read once).
    func wasDeliveredHere(_ key: SendKey?) -> Bool {
        guard let key, key.server == serverID else { return false }
        return state.withLockedValue { $0.deliveredHere.remove(key.number) != nil }
    }

    private func insert(_ pending: [Pending]) async throws {
        let payloads = pending.map { String(decoding: $0.send.encoded(), as: UTF8.self) }
        let keys = pending.map { SendKey(server: serverID, number: $0.key).description }
        // The routing columns (see PostgresSchema): keys as a JSON array where they decide, else the target.
        let sendTo = pending.map { PostgresSchema.sendToColumn(of: $0.send) }
        let selections = pending.map { SendSelection($0.send) }
        // An empty text stands for NULL (binds of arrays do not carry NULLs).
        let routing = selections.map { selection in
            selection.routingKeys.map { JSON.array($0.map(JSON.string)).serialized() } ?? ""
        }
        let targets = pending.map { $0.send.sendTo == .filter ? $0.send.target.serialized() : "" }
        // ON CONFLICT: a second write of the same sends (a retry after an abandoned write that committed after all)
        // adds nothing. An insert waits for an uncommitted one of the same key and then does nothing.
        try await client.query(
            """
            WITH rows AS (
                INSERT INTO websockets_messages (send_key, payload, send_to, routing, target)
                SELECT send_key, payload, send_to,
                    CASE WHEN routing <> '' THEN ARRAY(SELECT json_array_elements_text(routing::json)) END,
                    NULLIF(target, '')
                FROM unnest(\(keys)::text[], \(payloads)::text[], \(sendTo)::int[], \(routing)::text[],
                    \(targets)::text[])
                    WITH ORDINALITY AS t(send_key, payload, send_to, routing, target, n) ORDER BY n
                ON CONFLICT (send_key) DO NOTHING
                RETURNING id)
            SELECT pg_notify('websockets', max(id)::text) FROM rows HAVING count(*) > 0
            """, logger: logger)
        metrics.clusterWrites.increment()
        let recovered = state.withLockedValue { state -> Bool in
            defer { state.databaseUp = true }
            return !state.databaseUp
        }
        if recovered { logger.info("PostgreSQL is back: publishing again") }
    }
}
