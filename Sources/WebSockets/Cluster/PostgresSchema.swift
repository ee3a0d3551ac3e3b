import Logging
import PostgresNIO

/// The cluster's tables and the SQL function, created idempotently by every server at start.
enum PostgresSchema {
    static func create(on client: PostgresClient, logger: Logger) async throws {
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
            // Presence: each server's tabs per user, and the users online cluster-wide (see PresenceSync).
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS websockets_presence (
                    server text NOT NULL, user_key text NOT NULL, user_value text NOT NULL, groups text NOT NULL,
                    tabs bigint NOT NULL, PRIMARY KEY (server, user_key))
                """, logger: logger)
            try await connection.query(
                "CREATE INDEX IF NOT EXISTS websockets_presence_user ON websockets_presence (user_key)", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS websockets_online (
                    user_key text PRIMARY KEY, user_value text NOT NULL, groups text NOT NULL DEFAULT '[]',
                    empty_since timestamptz)
                """, logger: logger)
            try await connection.query(
                "ALTER TABLE websockets_online ADD COLUMN IF NOT EXISTS groups text NOT NULL DEFAULT '[]'",
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

    /// The highest message id so far (0 when there is none): where a starting server begins reading.
    static func lastMessageID(on client: PostgresClient, logger: Logger) async throws -> Int64 {
        let rows = try await client.query(
            "SELECT COALESCE(max(id), 0)::bigint FROM websockets_messages", logger: logger)
        var last: Int64 = 0
        for try await (id) in rows.decode(Int64.self) { last = id }
        return last
    }

    /// A row's text, `[action, details, send_to, target, origin?]` with the details as their sender wrote them, as
    /// a send and the server that already delivered it (during an outage), if any.
    static func decode(_ payload: String) -> (Send, String?)? {
        Array(payload.utf8).withUnsafeBufferPointer { bytes -> (Send, String?)? in
            guard let elements = try? JSONParser.elements(of: bytes),
                let send = try? Send(elements: elements, in: bytes)
            else { return nil }
            return (send, elements.count > 4 ? elements[4].value.stringValue : nil)
        }
    }
}
