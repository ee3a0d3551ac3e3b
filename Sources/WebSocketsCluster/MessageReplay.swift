import Logging
import PostgresNIO
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol

/// What a reconnecting browser missed: the rows after its last id that select its connection, read back from
/// `websockets_messages`. A replay costs what it returns: rows are selected on their routing columns (`send_to`,
/// `routing`, `target`; see ``PostgresSchema``) before any payload is read, only the selected payloads are read, up
/// to a byte budget, and a ``ReplayGate`` bounds how many replays run at once. Its statements are cancelled by
/// PostgreSQL when the replay gives up on them (``PostgresDeadline/statement``).
package struct MessageReplay: Sendable {
    package let client: PostgresClient
    package let logger: Logger
    package let metrics: ServerMetrics
    let gate: ReplayGate
    /// The largest row read (`max_send_size`); larger ones are not replayed.
    let maxRowSize: Int
    /// The most rows one replay returns; beyond it the replay says it is not complete.
    static let maximumRows = 10_000
    /// How long a replay waits for its turn before it answers, incomplete.
    static let turnWait = Duration.seconds(5)

    /// The messages after `after` up to `through` that select `recipient`, in order, holding at most `budget` bytes
    /// of payload, and whether they are all of them (none older than the retention window, none left out by a bound
    /// or a busy server).
    package func messages(
        after: Int64, through: Int64, for recipient: ReplayRecipient, budget: Int
    ) async throws -> (rows: [(id: Int64, send: Send)], complete: Bool) {
        guard await gate.enter(within: Self.turnWait) else {
            metrics.replays(result: "busy")
            return ([], false)
        }
        let gate = self.gate
        do {
            let result = try await PostgresDeadline.bounded {
                // The slot is given back when the reading ends, not when the caller stops waiting for it.
                defer { gate.leave() }
                return try await read(after: after, through: through, for: recipient, budget: budget)
            }
            metrics.replays(result: result.complete ? "complete" : "incomplete")
            return result
        } catch {
            metrics.replays(result: "failed")
            throw error
        }
    }

    private func read(
        after: Int64, through: Int64, for recipient: ReplayRecipient, budget: Int
    ) async throws -> (rows: [(id: Int64, send: Send)], complete: Bool) {
        // Which rows: routing keys decide in SQL where they exist; the target's text comes only where they do not
        // (filters, rows of websockets_send), and no payload at all. Commands (send_to 0) are never selected.
        let candidates = try await client.query(
            """
            SELECT id, send_to::int, CASE WHEN routing IS NULL THEN target END, octet_length(payload)
            FROM websockets_messages
            WHERE id > \(after) AND id <= \(through)
              AND (send_to IS NULL OR send_to = 1 OR (send_to = 2 AND \(recipient.registered)) OR send_to = 5
                   OR (send_to IN (3, 4, 6, 7) AND (routing IS NULL OR routing && \(recipient.keys)::text[])))
            ORDER BY id LIMIT \(Self.maximumRows + 1)
            """, logger: logger)
        var wanted: [Int64] = []
        var unrouted = Set<Int64>()
        var bytes = 0
        var complete = true
        for try await (id, sendTo, target, size) in candidates.decode((Int64, Int?, String?, Int64).self) {
            guard complete else { continue }
            if wanted.count == Self.maximumRows || bytes + Int(size) > budget {
                complete = false
                continue
            }
            if size > maxRowSize { continue }
            if let sendTo {
                if let target {
                    guard let to = SendTo(rawValue: sendTo), let value = try? JSON(parsing: Array(target.utf8)),
                        recipient.selects(SendSelection(to, target: value))
                    else { continue }
                }
            } else {
                // Written without routing columns (by hand, or before they existed): decided on the payload.
                unrouted.insert(id)
            }
            wanted.append(id)
            bytes += Int(size)
        }
        var result: [(id: Int64, send: Send)] = []
        if !wanted.isEmpty {
            let rows = try await client.query(
                "SELECT id, payload FROM websockets_messages WHERE id = ANY(\(wanted)::bigint[]) ORDER BY id",
                logger: logger)
            for try await (id, payload) in rows.decode((Int64, String).self) {
                guard let send = PostgresSchema.decode(payload) else { continue }
                if unrouted.contains(id), !recipient.selects(send) { continue }
                result.append((id, send))
            }
        }
        var oldest: Int64 = 0
        for try await (id) in try await client.query(
            "SELECT COALESCE(min(id), 0)::bigint FROM websockets_messages", logger: logger
        ).decode(Int64.self) {
            oldest = id
        }
        let retained = oldest != 0 ? after + 1 >= oldest : after >= through
        return (result, retained && complete)
    }
}
