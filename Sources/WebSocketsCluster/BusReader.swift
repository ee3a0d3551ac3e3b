import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol

/// The reading side of the PostgreSQL bus: a LISTEN connection that wakes the reader on every NOTIFY (and says
/// whether it is up: it drops the moment PostgreSQL goes away, seconds before a query would time out), and a
/// reader that applies new rows in id order through a ``GapTracker``, also once a second in case a NOTIFY was lost.
package final class BusReader: Sendable {
    private struct State {
        var tracker: GapTracker
        var listening = true
    }

    private let client: PostgresClient
    private let logger: Logger
    private let metrics: ServerMetrics
    /// The largest row applied (`max_send_size`); larger ones are skipped unread.
    private let maxRowSize: Int
    private let state: NIOLockedValueBox<State>
    private let apply: @Sendable (_ id: Int64, _ key: SendKey?, _ payload: String) -> Void
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private static let batchSize = 500
    /// The bytes of payload one batch reads, beyond its first row: what a reader holds at once (500 rows of up to
    /// 4 MiB each would be 2 GiB).
    private static let byteBudget = 8 << 20

    /// A reader from `lastApplied` on; `apply` is called for each new row, in id order (gap fillers when they come).
    package init(
        client: PostgresClient, logger: Logger, metrics: ServerMetrics, lastApplied: Int64, maxRowSize: Int,
        apply: @escaping @Sendable (_ id: Int64, _ key: SendKey?, _ payload: String) -> Void
    ) {
        self.client = client
        self.logger = logger
        self.metrics = metrics
        self.maxRowSize = maxRowSize
        self.apply = apply
        state = NIOLockedValueBox(State(tracker: GapTracker(lastApplied: lastApplied)))
        (wakes, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The id of the last message applied.
    package var head: Int64 { state.withLockedValue { $0.tracker.lastApplied } }

    /// Whether the LISTEN connection is up.
    var isListening: Bool { state.withLockedValue { $0.listening } }

    /// Listens and reads until cancelled.
    package func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listen() }
            group.addTask { await self.read() }
            group.addTask {
                // A safety net beside NOTIFY: rows are also looked for once a second.
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    self.wake.yield()
                }
            }
            await group.waitForAll()
        }
    }

    private func listen() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: "websockets") { notifications in
                        if failures > 0 { logger.info("LISTEN restored: catching up") }
                        failures = 0
                        state.withLockedValue { $0.listening = true }
                        wake.yield()
                        for try await _ in notifications { wake.yield() }
                    }
                }
            } catch {
                state.withLockedValue { $0.listening = false }
                if failures == 0 && !Task.isCancelled {
                    logger.warning("LISTEN lost: reconnecting", metadata: ["error": "\(String(reflecting: error))"])
                }
            }
            failures += 1
            await PostgresDeadline.backOff(failures)
        }
        wake.finish()
    }

    private func read() async {
        var batch = ReadBatch(maximum: Self.batchSize)
        var failures = 0
        for await _ in wakes {
            if Task.isCancelled { break }
            do {
                while try await PostgresDeadline.bounded(
                    PostgresDeadline.query, { [rows = batch.rows] in try await self.catchUp(rows: rows) })
                {
                    batch.succeeded()
                }
                batch.succeeded()
                failures = 0
            } catch  where PostgresFailure.isStatementTimeout(error) {
                failures += 1
                if failures == 1 {
                    logger.warning(
                        "a batch of the bus could not be read in time: splitting it",
                        metadata: ["rows": "\(batch.rows)", "error": "\(String(reflecting: error))"])
                }
                if batch.failed() == .skipRow, await skipFirstRow() {
                    batch.skipped()
                    failures = 0
                }
                // Again soon, smaller, rather than at the next second's wake.
                await PostgresDeadline.backOff(failures)
                wake.yield()
            } catch {
                // PostgreSQL is away: the LISTEN connection's loss says so, and the next wake tries again.
                logger.debug("catching up failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// Skips the first row wanted, which could not be read even alone, if PostgreSQL still answers (a database
    /// that is away is waited for, not skipped through); returns whether one was skipped.
    private func skipFirstRow() async -> Bool {
        let (after, gaps) = state.withLockedValue { $0.tracker.wanted(now: .now) }
        let first = try? await PostgresDeadline.bounded {
            var first: Int64?
            for try await id in try await self.client.query(
                """
                SELECT id FROM (
                    (SELECT id FROM websockets_messages WHERE id > \(after) ORDER BY id LIMIT 1)
                    UNION ALL
                    SELECT id FROM websockets_messages WHERE id = ANY(\(gaps)::bigint[])) AS wanted
                ORDER BY id LIMIT 1
                """, logger: self.logger
            ).decode(Int64.self) {
                first = id
            }
            return first
        }
        guard let id = first else { return false }
        _ = state.withLockedValue { $0.tracker.accept(id, now: .now) }
        logger.warning("message row skipped: it could not be read in time, even alone", metadata: ["id": "\(id)"])
        metrics.dropped(reason: .unreadableRow)
        return true
    }

    /// Applies up to `rows` rows after the last applied id, and rows that fill a gap, in id order; returns whether
    /// more may wait. A batch stops once the rows before it hold `byteBudget` bytes (one row always comes); a row
    /// over `maxRowSize` is skipped without its payload ever being read, with a warning and a metric.
    private func catchUp(rows: Int) async throws -> Bool {
        let (after, gaps) = state.withLockedValue { $0.tracker.wanted(now: .now) }
        // octet_length of a stored text is read from its header: a large row is not fetched to be measured.
        //
        // Written so that no plan scans the table, whatever PostgreSQL's statistics say: the new rows and the gaps
        // are two index lookups (`id > after OR id = ANY(gaps)` was one filtered walk of the whole index), the new
        // rows a range closed by the last id (with `id > after` alone and no statistics, the planner guessed a third
        // of the table and sorted all of it), and each payload is fetched by its id (a join let the planner read the
        // whole table into a hash). On a new table, before autovacuum had analyzed it, all of it happened on every
        // read: 570 scans a second at 550 sends/s, and a send reached the other server in 2.2 ms, then 4.3, 6.7 and
        // 7.5 as the table grew.
        let result = try await client.query(
            """
            WITH batch AS (
                SELECT id, size, send_key FROM (
                    (SELECT id, octet_length(payload) AS size, send_key FROM websockets_messages
                     WHERE id > \(after) AND id <= (SELECT max(id) FROM websockets_messages) ORDER BY id LIMIT \(rows))
                    UNION ALL
                    SELECT id, octet_length(payload), send_key FROM websockets_messages
                    WHERE id = ANY(\(gaps)::bigint[])) AS wanted
                ORDER BY id LIMIT \(rows)),
            counted AS (
                SELECT id, size, send_key, count(*) OVER () AS batched,
                    sum(CASE WHEN size <= \(maxRowSize) THEN size ELSE 0 END) OVER (ORDER BY id) AS through
                FROM batch)
            SELECT c.id, c.batched, c.size, c.send_key,
                CASE WHEN c.size <= \(maxRowSize) THEN (SELECT m.payload FROM websockets_messages m WHERE m.id = c.id) END
            FROM counted c
            WHERE c.through - CASE WHEN c.size <= \(maxRowSize) THEN c.size ELSE 0 END < \(Self.byteBudget)
            ORDER BY c.id
            """, logger: logger)
        var count = 0
        var batched = 0
        for try await (id, inBatch, size, key, payload) in result.decode((Int64, Int64, Int64, String?, String?).self) {
            count += 1
            batched = Int(inBatch)
            guard state.withLockedValue({ $0.tracker.accept(id, now: .now) }) else { continue }
            guard let payload else {
                logger.warning(
                    "message row over max_send_size skipped unread",
                    metadata: ["id": "\(id)", "bytes": "\(size)", "max_send_size": "\(maxRowSize)"])
                metrics.dropped(reason: .oversizedRow)
                continue
            }
            apply(id, key.flatMap(SendKey.init), payload)
        }
        return batched == rows || count < batched
    }
}
