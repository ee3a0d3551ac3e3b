import PostgresNIO
import WebSocketsHub
import WebSocketsProtocol

/// Presence's statements on PostgreSQL and what their rows mean (``PresenceSync``): `websockets_presence` holds
/// each server's tab count per user, `websockets_online` a row per online user, and each decision is announced with
/// `NOTIFY websockets_presence` as it commits.
enum PresenceSQL {
    /// The channel every server listens on: a server's id (its counts changed) or a decision as JSON.
    static let channel = "websockets_presence"

    /// Whether a live server (a heartbeat within 30 s) has a tab of the online user `o`.
    static let hasLiveTab = """
        EXISTS (SELECT 1 FROM websockets_presence p JOIN websockets_pool s ON s.server = p.server
                WHERE p.user_key = o.user_key AND s.heartbeat > now() - interval '30 seconds')
        """

    /// Marks the online users with no tab left on any server: their grace starts now.
    static let markEmptied = """
        UPDATE websockets_online o SET empty_since = now()
        WHERE o.empty_since IS NULL AND NOT EXISTS (SELECT 1 FROM websockets_presence p WHERE p.user_key = o.user_key)
        """

    /// Marks the online users without a tab on a live server.
    static let markWithoutLiveTab =
        "UPDATE websockets_online o SET empty_since = now() WHERE o.empty_since IS NULL AND NOT \(hasLiveTab)"

    /// Clears the mark of users with a tab on a live server again.
    static let clearWithLiveTab =
        "UPDATE websockets_online o SET empty_since = NULL WHERE o.empty_since IS NOT NULL AND \(hasLiveTab)"

    /// Removes the users marked for longer than `grace` seconds, announcing each as offline.
    static func removeAfter(grace: Double) -> String {
        """
        WITH decided AS (
            DELETE FROM websockets_online o
            WHERE o.empty_since < now() - make_interval(secs => \(grace)) AND NOT \(hasLiveTab)
            RETURNING user_value, groups)
        \(announced(online: false))
        """
    }

    /// The end of a statement whose CTE `decided` returns the rows of users it brought online or offline (those
    /// matching `filter`): each is announced to every server with a NOTIFY (sent at commit), and returned.
    static func announced(online: Bool, filter: String = "true") -> String {
        """
        , notified AS (
            SELECT pg_notify('websockets_presence', '{"online":\(online),"user":' || user_value || ',"groups":' || groups || '}')
            FROM decided WHERE \(filter))
        SELECT user_value, groups FROM decided WHERE \(filter) AND (SELECT count(*) FROM notified) >= 0
        """
    }

    /// The decisions a statement ending with ``announced(online:filter:)`` returned.
    static func decisions(_ rows: PostgresRowSequence, online: Bool) async throws -> [PresenceLedger.Change] {
        var changes: [PresenceLedger.Change] = []
        for try await (value, groups) in rows.decode((String, String).self) {
            changes.append(change(online: online, user: value, groups: groups))
        }
        return changes
    }

    /// Another server's row as a count.
    static func count(value: String, groups: String, tabs: Int64) -> PresenceLedger.RemoteCount {
        PresenceLedger.RemoteCount(
            user: (try? JSON(parsing: value)) ?? .string(value), groups: Self.groups(groups), tabs: Int(tabs))
    }

    /// A decision from its row's text: the user as the site gave it, its groups as a JSON array.
    static func change(online: Bool, user: String, groups: String) -> PresenceLedger.Change {
        PresenceLedger.Change(
            online: online, user: (try? JSON(parsing: user)) ?? .string(user), groups: Self.groups(groups).sorted())
    }

    /// A decision from its NOTIFY: `{"online": true, "user": 42, "groups": ["7"]}`.
    static func change(announcement: String) -> PresenceLedger.Change? {
        guard let value = try? JSON(parsing: announcement), case .bool(let online)? = value["online"],
            let user = value["user"]
        else { return nil }
        let groups = value["groups"]?.arrayValue?.compactMap(\.stringValue) ?? []
        return PresenceLedger.Change(online: online, user: user, groups: groups.sorted())
    }

    private static func groups(_ text: String) -> Set<String> {
        guard case .array(let items) = (try? JSON(parsing: text)) ?? .null else { return [] }
        return Set(items.compactMap(\.stringValue))
    }
}
