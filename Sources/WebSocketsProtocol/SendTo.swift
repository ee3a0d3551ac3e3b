/// Whom a send reaches. The numbers 1–5 are the seed's `SEND_TO_*` constants and keep their values.
public enum SendTo: Int, Sendable, CaseIterable {
    /// Every connection, authenticated or not; the target is ignored.
    case all = 1
    /// Every authenticated connection whose user is not a guest; the target is ignored.
    case registeredUsers = 2
    /// The connections of a user id or an array of them.
    case specificUsers = 3
    /// The connections of users in a group id or an array of them.
    case usersGroup = 4
    /// `[property, value]`: connections whose property equals the value.
    case filter = 5
    /// The connections of a session id or an array of them (an addition to the seed).
    case sessions = 6
    /// Connections by connection id, or an array of them (an addition to the seed).
    case connections = 7

    /// The name used by the command line's `--to`.
    public var name: String {
        switch self {
        case .all: return "all"
        case .registeredUsers: return "registered"
        case .specificUsers: return "users"
        case .usersGroup: return "groups"
        case .filter: return "filter"
        case .sessions: return "sessions"
        case .connections: return "connections"
        }
    }

    /// The case whose command-line name is `name`.
    public init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = match
    }
}
