import Foundation
import Logging
import NIOCore
import WebSocketsCluster
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol
import WebSocketsSite

extension WebSocketsServer {
    /// The presence of `users` (ids as the site gives them), in that order.
    public func presence(of users: [JSON]) -> [PresenceStatus] {
        presence.withLockedValue { $0.status(of: users.map(\.indexKey)) }
    }

    /// The online members of `group`, by user id.
    public func presence(ofGroup group: JSON) -> [PresenceStatus] {
        presence.withLockedValue { $0.members(ofGroup: group.indexKey) }
    }

    /// A tab authenticated: its user may come online (registered users only). In a cluster the change is not
    /// this ledger's to announce: PostgreSQL decides (``PresenceSync``).
    func presenceOpened(_ session: SessionInfo) -> PresenceLedger.Change? {
        guard !session.guest else { return nil }
        let change = presence.withLockedValue { $0.opened(user: session.user, groups: session.groups) }
        return mode.presenceAuthority == .ledger ? change : nil
    }

    /// An authenticated tab closed: its user may start leaving.
    func presenceClosed(_ session: SessionInfo) {
        guard !session.guest else { return }
        presence.withLockedValue { $0.closed(user: session.user, now: .now) }
    }

    /// Checks four times a second (or more often for a shorter grace) for users whose grace has ended, and tells
    /// the site and the in-process handlers they are offline.
    func startPresenceTimer(on eventLoop: any EventLoop) {
        let interval = TimeAmount.milliseconds(Int64(max(10, min(250, settings.presenceGrace * 250))))
        let timer = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
            guard let self else { return }
            let changes = presence.withLockedValue { ledger -> [PresenceLedger.Change] in
                ledger.hasLeaving ? ledger.expire(now: .now) : []
            }
            guard !changes.isEmpty, mode.presenceAuthority == .ledger else { return }
            beginDrain()
            Task {
                for change in changes { await self.dispatchPresence(change) }
                self.endDrain()
            }
        }
        runtime.withLockedValue { $0.presenceTimer = timer }
    }

    /// Posts `User/online` or `User/offline` to the in-process handlers and the site, in the user's turn of the
    /// message lane (so a user's events reach the site in order; after the events of the connection `key` that
    /// brought the user online), and performs the sends in the site's answer. On a single server it also tells the
    /// browsers watching; in a cluster every server does that on its own (``tellWatchers(_:)``), told by PostgreSQL.
    func dispatchPresence(_ change: PresenceLedger.Change, after key: String? = nil) async {
        if mode.presenceAuthority == .ledger { tellWatchers(change) }
        let name = change.eventName
        let user = change.user
        let event = WebSocketsEvent(
            name: name, action: name, message: Message(action: name), sessionLanguage: "", acceptLanguage: "",
            user: user, session: "", connection: "", server: address, owner: self, origin: nil)
        let logger = self.logger
        let userLogger: @Sendable () -> Logger = {
            var userLogger = logger
            userLogger[metadataKey: "user"] = "\(user.indexKey)"
            return userLogger
        }
        for handler in handlers.withLockedValue({ $0[name] ?? [] }) {
            do {
                try await handler(event)
            } catch {
                userLogger().warning("event handler failed", metadata: ["event": "\(name)", "error": "\(error)"])
            }
        }
        guard settings.resolvedMessageEndpoint != nil else { return }
        postEvent(name, owner: user.indexKey, after: key, logger: userLogger) { event.siteBody }
    }

    /// Tells this server's browsers that may see `change.user` (by id or by one of its groups):
    /// `Presence/online` or `Presence/offline` with the user id.
    func tellWatchers(_ change: PresenceLedger.Change) {
        let watchers = hub.presenceWatchers(of: change.user.indexKey, groups: Set(change.groups))
        guard !watchers.isEmpty else { return }
        let message = Message(action: change.online ? "Presence/online" : "Presence/offline", details: change.user)
        // Encoded (and compressed, if a watcher negotiated it) once for all of them.
        let frame = hub.frame(message, for: watchers)
        for connection in watchers { connection.write(frame, bypassingHold: true) }
    }

    /// After authentication: the users this browser may see that are online now, as `Presence/snapshot`
    /// `{"online": [ids]}`; later changes come as `Presence/online` and `Presence/offline`.
    func sendPresenceSnapshot(to connection: Connection, session: SessionInfo) {
        guard session.watchesPresence else { return }
        let online = presence.withLockedValue { ledger in
            ledger.online(
                users: session.presenceUsers.map(\.indexKey), groups: session.presenceGroups.map(\.indexKey))
        }
        connection.send(Message(action: "Presence/snapshot", details: ["online": .array(online)]))
    }

    /// `GET /WebSockets/presence?users=1,2,3` or `?group=7`: `{"users": {"1": {"online": true, "tabs": 2}, ...}}`.
    func presenceResponse(to request: HTTPServerRequest) -> HTTPServerResponse {
        let statuses: [PresenceStatus]
        if let users = request.queryValue("users"), !users.isEmpty {
            let keys = users.split(separator: ",").map { String($0) }
            guard keys.count <= 10_000 else { return .error(.badRequest, "At most 10000 users at once") }
            statuses = presence.withLockedValue { $0.status(of: keys) }
        } else if let group = request.queryValue("group"), !group.isEmpty {
            statuses = presence.withLockedValue { $0.members(ofGroup: group) }
        } else {
            return .error(.badRequest, "Give users=1,2,3 or group=7")
        }
        var users: [String: JSON] = [:]
        for status in statuses { users[status.user] = status.json }
        return .json(["users": .object(users)])
    }
}
