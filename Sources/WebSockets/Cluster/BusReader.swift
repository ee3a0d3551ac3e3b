import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// The reading side of the PostgreSQL bus: a LISTEN connection that wakes the reader on every NOTIFY (and says
/// whether it is up: it drops the moment PostgreSQL goes away, seconds before a query would time out), and a
/// reader that applies new rows in id order through a ``GapTracker``, also once a second in case a NOTIFY was lost.
final class BusReader: Sendable {
    private struct State {
        var tracker: GapTracker
        var listening = true
    }

    private let client: PostgresClient
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    private let apply: @Sendable (_ id: Int64, _ key: SendKey?, _ payload: String) -> Void
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private static let batchSize = 500

    /// A reader from `lastApplied` on; `apply` is called for each new row, in id order (gap fillers when they come).
    init(
        client: PostgresClient, logger: Logger, lastApplied: Int64,
        apply: @escaping @Sendable (_ id: Int64, _ key: SendKey?, _ payload: String) -> Void
    ) {
        self.client = client
        self.logger = logger
        self.apply = apply
        state = NIOLockedValueBox(State(tracker: GapTracker(lastApplied: lastApplied)))
        (wakes, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The id of the last message applied.
    var head: Int64 { state.withLockedValue { $0.tracker.lastApplied } }

    /// Whether the LISTEN connection is up.
    var isListening: Bool { state.withLockedValue { $0.listening } }

    /// Listens and reads until cancelled.
    func run() async {
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
        for await _ in wakes {
            if Task.isCancelled { break }
            do {
                while try await PostgresDeadline.bounded(PostgresDeadline.query, { try await self.catchUp() }) {}
            } catch {
                logger.debug("catching up failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// Applies rows after the last applied id, and rows that fill a gap; returns whether more may wait.
    private func catchUp() async throws -> Bool {
        let (after, gaps) = state.withLockedValue { $0.tracker.wanted(now: .now) }
        let rows = try await client.query(
            """
            SELECT id, send_key, payload FROM websockets_messages WHERE id > \(after) OR id = ANY(\(gaps)::bigint[])
            ORDER BY id LIMIT \(Self.batchSize)
            """, logger: logger)
        var count = 0
        for try await (id, key, payload) in rows.decode((Int64, String?, String).self) {
            count += 1
            if state.withLockedValue({ $0.tracker.accept(id, now: .now) }) {
                apply(id, key.flatMap(SendKey.init), payload)
            }
        }
        return count == Self.batchSize
    }
}
