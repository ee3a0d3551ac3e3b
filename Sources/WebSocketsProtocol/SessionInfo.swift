/// Who a connection is, as the site's session endpoint says.
public struct SessionInfo: Sendable, Equatable {
    /// The user id (a number or a string).
    public var user: JSON
    /// The session id.
    public var session: String
    /// Unix time after which the session is no longer valid, when the site gives one.
    public var expire: Int64?
    /// The ids of the user's groups.
    public var groups: [JSON]
    /// The user's language, when the site gives one.
    public var language: String?
    /// Whether the user is a guest (not a registered user).
    public var guest: Bool
    /// Further properties a `SEND_TO_FILTER` send may select by.
    public var properties: [String: JSON]
    /// The users whose presence this browser may see (`presence.users` in the session answer).
    public var presenceUsers: [JSON] = []
    /// The groups whose members' presence this browser may see (`presence.groups`).
    public var presenceGroups: [JSON] = []

    /// A session; only `user` and `session` are required by the contract.
    public init(
        user: JSON, session: String, expire: Int64? = nil, groups: [JSON] = [], language: String? = nil,
        guest: Bool = false, properties: [String: JSON] = [:]
    ) {
        self.user = user
        self.session = session
        self.expire = expire
        self.groups = groups
        self.language = language
        self.guest = guest
        self.properties = properties
    }

    /// Decodes the session endpoint's JSON answer.
    public init(json: JSON) throws(WireError) {
        guard case .object(let object) = json else { throw WireError(description: "session answer is not an object") }
        guard let user = object["user"], user != .null else {
            throw WireError(description: "session answer has no user")
        }
        guard let sessionValue = object["session"], sessionValue != .null else {
            throw WireError(description: "session answer has no session")
        }
        var expire: Int64?
        if let value = object["expire"], value != .null {
            guard let number = value.intValue else { throw WireError(description: "expire is not a number") }
            expire = number
        }
        var groups: [JSON] = []
        if let value = object["groups"], value != .null {
            guard let array = value.arrayValue else { throw WireError(description: "groups is not an array") }
            groups = array
        }
        self.init(
            user: user, session: sessionValue.indexKey, expire: expire, groups: groups,
            language: object["language"]?.stringValue, guest: Self.isGuest(object["guest"]),
            properties: object["properties"]?.objectValue ?? [:])
        // `presence`: `{"users": [...], "groups": [...]}`, or an array of user ids.
        switch object["presence"] {
        case .array(let users)?:
            presenceUsers = users
        case .object(let watch)?:
            for (name, value) in watch {
                guard name == "users" || name == "groups" else {
                    throw WireError(description: "presence has \"\(name)\": only users and groups")
                }
                guard let ids = value.arrayValue else {
                    throw WireError(description: "presence.\(name) is not an array")
                }
                if name == "users" { presenceUsers = ids } else { presenceGroups = ids }
            }
        case .null?, nil:
            break
        default:
            throw WireError(description: "presence is not an object or an array")
        }
    }

    /// Whether this browser watches anyone's presence.
    public var watchesPresence: Bool { !presenceUsers.isEmpty || !presenceGroups.isEmpty }

    /// Reads `guest` as sites write it: PHP's truthiness, so `true`, `1` and `"1"` are guests, and `false`, `0`,
    /// `"0"`, `""`, `null` or no `guest` at all a registered user.
    package static func isGuest(_ value: JSON?) -> Bool {
        switch value {
        case .bool(let flag): return flag
        case .int(let number): return number != 0
        case .double(let number): return number != 0
        case .string(let text): return !text.isEmpty && text != "0"
        case .array(let items): return !items.isEmpty
        case .object(let members): return !members.isEmpty
        case .null, nil: return false
        }
    }

    /// Whether `expire` is in the past at `now` (Unix seconds).
    public func isExpired(now: Int64) -> Bool {
        guard let expire else { return false }
        return expire <= now
    }
}
