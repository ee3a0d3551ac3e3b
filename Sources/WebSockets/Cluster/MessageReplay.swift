import Logging
import PostgresNIO

/// What a reconnecting browser missed: the rows after its last id, read back from `websockets_messages`.
struct MessageReplay: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// The most rows one replay reads; beyond it the replay says it is not complete.
    static let maximumRows = 10_000

    /// Messages after `after` up to `through`, in order, and whether the window still holds everything after
    /// `after` (older rows are pruned after `retention`).
    func messages(after: Int64, through: Int64) async throws -> (rows: [(id: Int64, send: Send)], complete: Bool) {
        try await PostgresDeadline.bounded { try await read(after: after, through: through) }
    }

    private func read(after: Int64, through: Int64) async throws -> (rows: [(id: Int64, send: Send)], complete: Bool) {
        var result: [(id: Int64, send: Send)] = []
        let rows = try await client.query(
            """
            SELECT id, payload FROM websockets_messages WHERE id > \(after) AND id <= \(through) ORDER BY id LIMIT \(Self.maximumRows)
            """, logger: logger)
        for try await (id, payload) in rows.decode((Int64, String).self) {
            if let send = PostgresSchema.decode(payload) { result.append((id, send)) }
        }
        var oldest: Int64 = 0
        for try await (id) in try await client.query(
            "SELECT COALESCE(min(id), 0)::bigint FROM websockets_messages", logger: logger
        ).decode(Int64.self) {
            oldest = id
        }
        let complete = oldest != 0 ? after + 1 >= oldest : after >= through
        return (result, complete && result.count < Self.maximumRows)
    }
}
