import Logging
import PostgresNIO
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol

/// The cluster's tables and the SQL function, created idempotently by every server at start.
package enum PostgresSchema {
    /// Creates what is missing; `websockets_send` refuses a send over `maxSendSize` bytes (the last server to
    /// start sets the limit it checks).
    package static func create(on client: PostgresClient, maxSendSize: Int, logger: Logger) async throws {
        // The commands, as SQL literals: a send of one is stored with send_to 0, which no replay selects.
        let commands = ServerCommand.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        try await client.withTransaction(logger: logger) { connection in
            // An index built on a table that already holds rows may take longer than the bus's statements may.
            try await connection.query(
                "SELECT set_config('statement_timeout', '0', true), set_config('lock_timeout', '0', true)",
                logger: logger)
            // Servers starting together must not race on CREATE.
            try await connection.query("SELECT pg_advisory_xact_lock(7272001)", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS websockets_pool (
                    address text PRIMARY KEY, server text NOT NULL, heartbeat timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            // What the status page shows of every server (added in 0.9: a table made before has them added). Only
            // when missing: ALTER TABLE takes the table's ACCESS EXCLUSIVE lock even when there is nothing to add,
            // and every other server's heartbeat and presence sweep would wait behind it at each start.
            try await connection.query(
                """
                DO $$ BEGIN
                    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                        WHERE table_schema = current_schema() AND table_name = 'websockets_pool'
                        AND column_name = 'behind')
                    THEN
                        ALTER TABLE websockets_pool ADD COLUMN IF NOT EXISTS connections integer NOT NULL DEFAULT 0,
                            ADD COLUMN IF NOT EXISTS behind bigint NOT NULL DEFAULT 0;
                    END IF;
                END $$
                """, logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS websockets_messages (
                    id bigserial PRIMARY KEY, payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            try await connection.query(
                "CREATE INDEX IF NOT EXISTS websockets_messages_created_at ON websockets_messages (created_at)",
                logger: logger)
            // A server's send is written with its key (see SendKey): a second write of it adds nothing.
            try await connection.query(
                "ALTER TABLE websockets_messages ADD COLUMN IF NOT EXISTS send_key text", logger: logger)
            try await connection.query(
                "CREATE UNIQUE INDEX IF NOT EXISTS websockets_messages_send_key ON websockets_messages (send_key)",
                logger: logger)
            // What a replay selects on before it reads a payload (see MessageReplay): send_to (0: a command, never
            // replayed), the routing keys where they decide (SendSelection.routingKeys), else the target's text.
            try await connection.query(
                """
                ALTER TABLE websockets_messages ADD COLUMN IF NOT EXISTS send_to smallint,
                    ADD COLUMN IF NOT EXISTS routing text[], ADD COLUMN IF NOT EXISTS target text
                """, logger: logger)
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
            // SendSelection.routingKeys in SQL, for websockets_send: an id's key is the string itself or a whole
            // number's digits (42, 42.0 and "42" are one key, as JSON.indexKey has it). Any other id (a fraction,
            // a number beyond 2^53, an array) gives NULL, and the row is then decided on its target in Swift:
            // exact either way. ClusterGuaranteeTests.websocketsSendRoutesAsTheServersDo checks both agree.
            try await connection.query(
                """
                CREATE OR REPLACE FUNCTION websockets_routing_key(value json) RETURNS text
                LANGUAGE sql IMMUTABLE AS $$
                    SELECT CASE json_typeof(value)
                        WHEN 'string' THEN value #>> '{}'
                        WHEN 'number' THEN CASE
                            WHEN (value::text)::numeric = trunc((value::text)::numeric)
                                 AND abs((value::text)::numeric) < 9007199254740992
                            THEN trunc((value::text)::numeric)::text END
                    END
                $$
                """, logger: logger)
            try await connection.query(
                """
                CREATE OR REPLACE FUNCTION websockets_routing(send_to integer, target json) RETURNS text[]
                LANGUAGE sql IMMUTABLE AS $$
                    SELECT CASE WHEN bool_and(key IS NOT NULL) THEN array_agg(prefix || key ORDER BY n) END
                    FROM (SELECT CASE send_to WHEN 3 THEN 'u:' WHEN 4 THEN 'g:' WHEN 6 THEN 's:' WHEN 7 THEN 'c:' END
                                     AS prefix,
                                 websockets_routing_key(element) AS key, n
                          FROM json_array_elements(
                              CASE WHEN json_typeof(target) = 'array' THEN target ELSE json_build_array(target) END)
                              WITH ORDINALITY AS t(element, n)) keys
                    WHERE send_to IN (3, 4, 6, 7)
                $$
                """, logger: logger)
            try await connection.query(
                """
                CREATE OR REPLACE FUNCTION websockets_send(action text, details json, send_to integer, target json DEFAULT NULL)
                RETURNS bigint LANGUAGE plpgsql AS $$
                DECLARE new_id bigint; row_text text;
                BEGIN
                    row_text := '[' || to_json(action)::text || ',' || coalesce(details::text, 'null') || ',' ||
                        coalesce(send_to::text, 'null') || ',' || coalesce(target::text, 'null') || ']';
                    IF octet_length(row_text) > \(unescaped: String(maxSendSize)) THEN
                        RAISE EXCEPTION 'websockets_send: the send is % bytes, over the cluster''s max_send_size of %',
                            octet_length(row_text), \(unescaped: String(maxSendSize))
                            USING ERRCODE = 'program_limit_exceeded';
                    END IF;
                    INSERT INTO websockets_messages (payload, send_to, routing, target)
                    VALUES (row_text, CASE WHEN action IN (\(unescaped: commands)) THEN 0 ELSE send_to END,
                            websockets_routing(send_to, target), target::text)
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

    /// The `send_to` column of a send: 0 for a command, which no replay selects.
    static func sendToColumn(of send: Send) -> Int {
        send.command == nil ? send.sendTo.rawValue : 0
    }

    /// A row's text, `[action, details, send_to, target]` with the details as their sender wrote them, as a send.
    static func decode(_ payload: String) -> Send? {
        Array(payload.utf8).withUnsafeBufferPointer { bytes -> Send? in
            guard let elements = try? JSONParser.elements(of: bytes) else { return nil }
            return try? Send(elements: elements, in: bytes)
        }
    }
}
