import WebSocketsConnection
import WebSocketsCore
import WebSocketsProtocol

extension SendSelection {
    /// The keys a stored send is routed by, for a replay to select it in SQL before its payload is read: a
    /// connection is selected when it holds one of them (``routingKeys(id:session:)``). `nil` where keys do not
    /// decide: everyone (1), registered users (2) and filters (5) are decided on `send_to` and the target.
    /// The same rule as ``selects(id:session:address:userAgent:)``, which `SendSelectionRoutingTests` checks.
    package var routingKeys: [String]? {
        switch sendTo {
        case .specificUsers: return keys.map { "u:" + $0 }
        case .usersGroup: return keys.map { "g:" + $0 }
        case .sessions: return keys.map { "s:" + $0 }
        case .connections: return keys.map { "c:" + $0 }
        case .all, .registeredUsers, .filter: return nil
        }
    }

    /// The keys of the connection `id` with `session` (nil before authentication): its user, session, groups and
    /// id, each marked with what it is.
    package static func routingKeys(id: String, session: SessionInfo?) -> [String] {
        var keys = ["c:" + id]
        if let session {
            keys.append("u:" + session.user.indexKey)
            keys.append("s:" + session.session)
            keys.append(contentsOf: Set(session.groups.map(\.indexKey)).sorted().map { "g:" + $0 })
        }
        return keys
    }
}
