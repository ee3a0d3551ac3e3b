import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import WebSocketsCore

/// How presence's writes and sweeps run on PostgreSQL: in a transaction whose statements are watched, given up on
/// (rolled back, nothing committed) once they stall, and bounded on PostgreSQL's side too.
struct PresenceTransactions: Sendable {
    let client: PostgresClient
    let logger: Logger
    let metrics: ServerMetrics

    /// How long a transaction's statements may make no progress before it is given up on (``TransactionWatch``):
    /// longer than PostgreSQL's own limits on them (``limitWaits(_:)``), so that on a live database those fire first.
    static let stallLimit = Duration.seconds(5)

    /// A presence transaction given up on: its statements made no progress for ``stallLimit``.
    package struct Stall: Error, CustomStringConvertible {
        /// `write` or `sweep`.
        package let operation: String

        package var description: String {
            "presence \(operation) stalled for \(PresenceTransactions.stallLimit): given up, not committed"
        }
    }

    /// Runs `body` in a transaction until cancelled, giving it up (and throwing) once its statements stall for
    /// ``stallLimit``; nothing it decided is then committed. `body` marks each of its statements with `step`.
    func run<T: Sendable>(
        _ name: String,
        _ body: @escaping @Sendable (PostgresConnection, _ step: @Sendable () throws -> Void) async throws -> T
    ) async throws -> T {
        let watch = NIOLockedValueBox(TransactionWatch(now: DispatchTime.now().uptimeNanoseconds))
        let limit = UInt64(Self.stallLimit.components.seconds) * 1_000_000_000
        return try await PostgresDeadline.abandoning(checkingEvery: .milliseconds(250)) {
            try await transaction(watch, body)
        } giveUp: {
            let now = DispatchTime.now().uptimeNanoseconds
            guard watch.withLockedValue({ $0.abandonIfStalled(now: now, limit: limit) }) else { return nil }
            return Stall(operation: name)
        }
    }

    /// Counts a write or sweep that did not commit.
    func countFailure(of operation: String, _ error: any Error) {
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
        _ watch: NIOLockedValueBox<TransactionWatch>,
        _ body: @Sendable (PostgresConnection, _ step: @Sendable () throws -> Void) async throws -> T
    ) async throws -> T {
        let logger = self.logger
        return try await client.withConnection { connection in
            try Self.step(watch)
            try await connection.query("BEGIN", logger: logger)
            do {
                try Self.step(watch)
                try await Self.limitWaits(connection)
                try Self.step(watch)
                let value = try await body(connection) { try Self.step(watch) }
                try Self.step(watch, finished: true)
                try await connection.query("COMMIT", logger: logger)
                return value
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
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
}
