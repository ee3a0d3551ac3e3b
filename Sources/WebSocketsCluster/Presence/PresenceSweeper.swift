import Logging
import PostgresNIO
import WebSocketsHub

/// Decides who went offline: about once a second (jittered, so that the servers do not all sweep at once) it marks
/// the users without a tab on a live server, clears the mark of those with one again, and removes those marked for
/// longer than `presence_grace`; the server whose sweep removes a user announces it.
struct PresenceSweeper: Sendable {
    let transactions: PresenceTransactions
    /// `presence_grace`, in seconds.
    let grace: Double

    /// Sweeps until cancelled, passing the users each sweep removed to `decided`.
    func run(decided: @escaping @Sendable (PresenceLedger.Change) -> Void) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(Int64.random(in: 800...1200)))
            if Task.isCancelled { return }
            do {
                // Watched as the write is: given up on only while it has not committed.
                let offline = try await transactions.run("sweep") { connection, step in
                    try await sweep(on: connection, step: step)
                }
                for change in offline { decided(change) }
            } catch {
                if Task.isCancelled { return }
                transactions.countFailure(of: "sweep", error)
                transactions.logger.debug(
                    "presence sweep failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// One sweep's statements; the users it removed.
    private func sweep(on connection: PostgresConnection, step: () throws -> Void) async throws
        -> [PresenceLedger.Change]
    {
        let logger = transactions.logger
        try await connection.query(PostgresQuery(unsafeSQL: PresenceSQL.markWithoutLiveTab), logger: logger)
        try step()
        try await connection.query(PostgresQuery(unsafeSQL: PresenceSQL.clearWithLiveTab), logger: logger)
        try step()
        let rows = try await connection.query(
            PostgresQuery(unsafeSQL: PresenceSQL.removeAfter(grace: grace)), logger: logger)
        return try await PresenceSQL.decisions(rows, online: false)
    }
}
