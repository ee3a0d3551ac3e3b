import WebSocketsConnection
import WebSocketsCore
import WebSocketsProtocol

/// Who is online, decided on inputs: tabs that authenticate and close, and the clock. A user is online from the
/// first authenticated tab; when the last one closes the user is "leaving" for `grace`, and only a user still
/// without a tab after that goes offline. A reload, a tab switch or a network blip (a tab back within `grace`)
/// changes nothing, so the site hears one `User/online` and one `User/offline` per real stay. Guests are not
/// tracked: they share ids, and "who is online" is about registered users.
///
/// A value type: the server only wires it to its connections, its timer and the site.
package struct PresenceLedger: Sendable {
    /// A change the site (and the browsers watching) hear about.
    package struct Change: Equatable, Sendable {
        /// Online, or offline.
        package var online: Bool
        /// The id as the site gave it.
        package var user: JSON
        /// The user's groups (index keys, sorted): browsers watching one of them are told.
        package var groups: [String]

        package init(online: Bool, user: JSON, groups: [String]) {
            self.online = online
            self.user = user
            self.groups = groups
        }

        package static func online(_ user: JSON, groups: [String] = []) -> Change {
            Change(online: true, user: user, groups: groups)
        }

        package static func offline(_ user: JSON, groups: [String] = []) -> Change {
            Change(online: false, user: user, groups: groups)
        }

        /// `User/online` or `User/offline`.
        package var eventName: String { online ? "User/online" : "User/offline" }
    }

    /// One online (or leaving) user.
    package struct Entry: Equatable, Sendable {
        /// The id as the site gave it.
        package var user: JSON
        /// The groups of its tabs (by index key), for "who of group 7 is online".
        package var groups: Set<String>
        /// Authenticated tabs open now.
        package var tabs: Int
        /// When its last tab closed, while it has none.
        var leavingSince: ContinuousClock.Instant?
    }

    /// One user's tabs on this server, as the cluster's other servers learn it.
    package struct LocalCount: Equatable, Sendable {
        package var key: String
        package var user: JSON
        package var groups: [String]
        package var tabs: Int
    }

    /// Another server's tabs of one user.
    package struct RemoteCount: Equatable, Sendable {
        /// The id as the site gave it.
        package var user: JSON
        package var groups: Set<String>
        package var tabs: Int

        package init(user: JSON, groups: Set<String>, tabs: Int) {
            self.user = user
            self.groups = groups
            self.tabs = tabs
        }
    }

    /// How long a user without tabs still counts as online.
    package let grace: Duration
    /// Online and leaving users, by the user id's index key.
    private(set) var entries: [String: Entry] = [:]
    /// How many entries are leaving, kept as they change: asked on every presence tick, a walk of all the entries
    /// was 0.47% of a loaded server's samples with 19,000 users online.
    private var leavingCount = 0
    /// Users whose tab count here changed since the last ``takeChanges()``.
    private(set) var changed: Set<String> = []
    /// Users whose first tab here opened since the last ``takeArrivals()``, as they came: a stay that begins and
    /// ends between two writes (or during an outage) is still announced.
    private(set) var arrivals: [String: LocalCount] = [:]
    /// The other servers' tabs, by server id and user key (a cluster).
    private(set) var remote: [String: [String: RemoteCount]] = [:]

    /// Whether other servers are told this server's counts (a cluster): only then are `changed` and `arrivals`
    /// kept for them. On a single server no one took them, and they grew by every user who ever came (found by the
    /// soak: 0.6 MiB of heap a minute with 50 new users a second).
    package let sharesCounts: Bool

    package init(grace: Duration, sharesCounts: Bool = false) {
        self.grace = grace
        self.sharesCounts = sharesCounts
    }

    /// A tab of `user` authenticated: `.online` when the user was not online (nor leaving).
    package mutating func opened(user: JSON, groups: [JSON]) -> Change? {
        let key = user.indexKey
        let groupKeys = Set(groups.map(\.indexKey))
        if sharesCounts { changed.insert(key) }
        if var entry = entries[key] {
            entry.tabs += 1
            if entry.leavingSince != nil { leavingCount -= 1 }
            entry.leavingSince = nil
            entry.groups.formUnion(groupKeys)
            entries[key] = entry
            return nil
        }
        entries[key] = Entry(user: user, groups: groupKeys, tabs: 1, leavingSince: nil)
        if sharesCounts { arrivals[key] = LocalCount(key: key, user: user, groups: groupKeys.sorted(), tabs: 1) }
        return .online(user, groups: groupKeys.sorted())
    }

    /// An authenticated tab of `user` closed at `now`; with it the last, the user starts leaving.
    package mutating func closed(user: JSON, now: ContinuousClock.Instant) {
        let key = user.indexKey
        guard var entry = entries[key] else { return }
        if sharesCounts { changed.insert(key) }
        entry.tabs = max(0, entry.tabs - 1)
        if entry.tabs == 0 {
            if entry.leavingSince == nil { leavingCount += 1 }
            entry.leavingSince = now
        }
        entries[key] = entry
    }

    /// The users whose grace ended by `now`, each once: they are offline from now on.
    package mutating func expire(now: ContinuousClock.Instant) -> [Change] {
        var changes: [Change] = []
        for (key, entry) in entries {
            if let since = entry.leavingSince, now - since >= grace {
                entries[key] = nil
                leavingCount -= 1
                changes.append(.offline(entry.user, groups: entry.groups.sorted()))
            }
        }
        return changes
    }

    /// How many users this server counts online (tabs here, or gone within the grace).
    package var onlineCount: Int { entries.count }

    /// Whether anyone is leaving (the timer has something to do).
    package var hasLeaving: Bool { leavingCount > 0 }

    /// This server's tab counts of the users that changed since the last call (0: none left here).
    package mutating func takeChanges() -> [LocalCount] {
        defer { changed = [] }
        return changed.sorted().map { key in
            let entry = entries[key]
            return LocalCount(
                key: key, user: entry?.user ?? .string(key), groups: entry.map { $0.groups.sorted() } ?? [],
                tabs: entry?.tabs ?? 0)
        }
    }

    /// The users who arrived here since the last call.
    package mutating func takeArrivals() -> [LocalCount] {
        defer { arrivals = [:] }
        return arrivals.values.sorted { $0.key < $1.key }
    }

    /// Every user with tabs here, as counts: what a server writes when it (re)joins.
    package var localCounts: [LocalCount] {
        entries.filter { $0.value.tabs > 0 }.sorted { $0.key < $1.key }.map {
            LocalCount(key: $0.key, user: $0.value.user, groups: $0.value.groups.sorted(), tabs: $0.value.tabs)
        }
    }

    /// What `server` holds now, replacing what it held before.
    package mutating func replaceRemote(server: String, counts: [String: RemoteCount]) {
        remote[server] = counts.isEmpty ? nil : counts
    }

    /// Forgets the servers not in `live`.
    package mutating func keepRemote(_ live: Set<String>) {
        remote = remote.filter { live.contains($0.key) }
    }

    /// Tabs of `key` here and on the other servers, and whether it is online here (a tab, or leaving).
    private func total(_ key: String) -> (tabs: Int, known: Bool) {
        var tabs = entries[key]?.tabs ?? 0
        var known = entries[key] != nil
        for counts in remote.values {
            if let count = counts[key] {
                tabs += count.tabs
                known = true
            }
        }
        return (tabs, known)
    }

    /// The presence of the users with index keys `keys`, in that order (an unknown user is offline); cluster-wide.
    package func status(of keys: [String]) -> [PresenceStatus] {
        keys.map { key in
            let (tabs, known) = total(key)
            return PresenceStatus(user: key, online: known, tabs: tabs)
        }
    }

    /// The online users among `users` and the members of `groups` (index keys), as the site gave their ids: what
    /// a watching browser is shown when it authenticates; cluster-wide.
    package func online(users: [String], groups: [String]) -> [JSON] {
        var keys = Set(users)
        for group in groups { keys.formUnion(members(ofGroup: group).map(\.user)) }
        return status(of: keys.sorted()).filter(\.online).map { value(of: $0.user) }
    }

    /// The id with index key `key` as the site gave it (a number stays a number, `"007"` a string).
    package func value(of key: String) -> JSON {
        if let entry = entries[key] { return entry.user }
        for counts in remote.values { if let count = counts[key] { return count.user } }
        return .string(key)
    }

    /// The online members of the group with index key `group`, by user id; cluster-wide.
    package func members(ofGroup group: String) -> [PresenceStatus] {
        var keys = Set(entries.filter { $0.value.groups.contains(group) }.keys)
        for counts in remote.values {
            keys.formUnion(counts.filter { $0.value.groups.contains(group) }.keys)
        }
        return status(of: keys.sorted())
    }
}

/// Whether a user is online, and with how many tabs.
public struct PresenceStatus: Equatable, Sendable {
    /// The user id, as text (a numeric id as its digits).
    public let user: String
    /// Online: a tab is open, or the last one closed less than `presence_grace` ago.
    public let online: Bool
    /// Authenticated tabs open now (0 while the user is leaving).
    public let tabs: Int

    /// A status.
    public init(user: String, online: Bool, tabs: Int) {
        self.user = user
        self.online = online
        self.tabs = tabs
    }

    /// `{"online": true, "tabs": 2}`.
    package var json: JSON { ["online": .bool(online), "tabs": .int(Int64(tabs))] }
}
