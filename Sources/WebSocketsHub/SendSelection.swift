import WebSocketsConnection
import WebSocketsCore
import WebSocketsProtocol

/// Which connections a send selects: the rule, written once. Live routing asks it which index holds the selected
/// connections (an index is only a faster way to the same set) and, where no index helps, asks it of each
/// connection; a reconnected tab's replay asks it of that one connection. Both therefore agree on every send_to.
package struct SendSelection: Sendable {
    /// Where the selected connections are found.
    package enum Lookup: Equatable {
        /// Every connection.
        case all
        /// The connections indexed under these user ids.
        case users([String])
        /// The connections indexed under these group ids.
        case groups([String])
        /// The connections indexed under these session ids.
        case sessions([String])
        /// These connection ids.
        case connections([String])
        /// No index: each connection is asked.
        case scan
    }

    package let sendTo: SendTo
    package let target: JSON
    /// The target's ids as index keys (`42`, `42.0` and `"42"` are one key), in the target's order, without repeats.
    package let keys: [String]

    package init(_ sendTo: SendTo, target: JSON) {
        self.sendTo = sendTo
        self.target = target
        guard case .array(let items) = target, items.count > 1 else {
            // One id (the common targeted send): no set to build per send.
            self.keys = target.arrayValue.map { $0.map(\.indexKey) } ?? [target.indexKey]
            return
        }
        var seen = Set<String>()
        self.keys = items.map(\.indexKey).filter { seen.insert($0).inserted }
    }

    /// The selection of `send`.
    package init(_ send: Send) {
        self.init(send.sendTo, target: send.target)
    }

    /// The `[property, value]` of a filter, when the target is one.
    private var filter: (property: String, value: JSON)? {
        guard case .array(let pair) = target, pair.count == 2, let property = pair[0].stringValue else { return nil }
        return (property, pair[1])
    }

    /// Where the selected connections are found.
    var lookup: Lookup {
        switch sendTo {
        case .all: return .all
        case .registeredUsers: return .scan
        case .specificUsers: return .users(keys)
        case .usersGroup: return .groups(keys)
        case .sessions: return .sessions(keys)
        case .connections: return .connections(keys)
        case .filter:
            guard let filter else { return .connections([]) }
            switch filter.property {
            case "user": return .users([filter.value.indexKey])
            case "session": return .sessions([filter.value.indexKey])
            default: return .scan
            }
        }
    }

    /// Whether the connection `id` with `session` (nil before authentication), from `address` with `userAgent`, is
    /// selected.
    package func selects(id: String, session: SessionInfo?, address: String, userAgent: String) -> Bool {
        switch sendTo {
        case .all: return true
        case .registeredUsers: return session.map { !$0.guest } ?? false
        case .specificUsers: return session.map { keys.contains($0.user.indexKey) } ?? false
        case .usersGroup: return session?.groups.contains { keys.contains($0.indexKey) } ?? false
        case .sessions: return session.map { keys.contains($0.session) } ?? false
        case .connections: return keys.contains(id)
        case .filter:
            guard let (property, value) = filter else { return false }
            let actual: JSON?
            switch property {
            case "user": actual = session?.user
            case "session": actual = session.map { .string($0.session) }
            case "ip": actual = .string(address)
            case "user_agent": actual = .string(userAgent)
            case "language": actual = (session?.language).map(JSON.string)
            case "guest": actual = session.map { .bool($0.guest) }
            default: actual = session?.properties[property]
            }
            guard let actual else { return false }
            return actual.loosely(equals: value)
        }
    }
}
