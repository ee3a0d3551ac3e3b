import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import WebSocketsConnection
import WebSocketsCore
import WebSocketsProtocol

/// The connections of one server and their indexes (by user, session, group, address), and the routing of a send
/// to the connections it selects.
///
/// A send is encoded once; the same bytes go to every recipient, written from each recipient's event loop with one
/// hop per event loop, not per connection.
public final class Hub: Sendable {
    private struct Indexes {
        var all: [String: Connection] = [:]
        // A user's, session's or group's connections are few (a user's tabs) or are all scanned anyway (a group):
        // an array costs less per connection than a dictionary, and finding one to remove is a short scan.
        var byUser: [String: [Connection]] = [:]
        var bySession: [String: [Connection]] = [:]
        var byGroup: [String: [Connection]] = [:]
        var byAddress: [String: Int] = [:]
        /// How many open connections negotiated compression: a send to everyone is compressed only when some did.
        var compressing = 0
        /// Connections whose session lets them see a user's presence, or a group's members'.
        var byWatchedUser: [String: [Connection]] = [:]
        var byWatchedGroup: [String: [Connection]] = [:]
        var authenticated = 0
        /// Authenticated connections of guests (the site said `guest`).
        var guests = 0
    }

    private let indexes = NIOLockedValueBox(Indexes())
    private let shards = NIOLockedValueBox<[ObjectIdentifier: LoopShard]>([:])
    private let metrics: ServerMetrics
    private let logger: Logger
    private let settings: Settings
    /// How a send becomes its frames: compressed once, for all its recipients that negotiated it.
    private let compression: OutboundCompression

    package init(metrics: ServerMetrics, logger: Logger, settings: Settings) {
        self.metrics = metrics
        self.logger = logger
        self.settings = settings
        self.compression = OutboundCompression(settings: settings, metrics: metrics)
    }

    /// The batching writer and pinger of `eventLoop`'s connections.
    package func shard(for eventLoop: any EventLoop) -> LoopShard {
        shards.withLockedValue { shards in
            if let shard = shards[ObjectIdentifier(eventLoop)] { return shard }
            let shard = LoopShard(eventLoop: eventLoop, settings: settings, metrics: metrics)
            shards[ObjectIdentifier(eventLoop)] = shard
            return shard
        }
    }

    /// How many authenticated connections are guests'.
    package var guestCount: Int { indexes.withLockedValue { $0.guests } }

    /// How many connections are open, and how many of them are authenticated.
    public var counts: (connections: Int, authenticated: Int) {
        indexes.withLockedValue { ($0.all.count, $0.authenticated) }
    }

    /// How many connections `address` holds.
    package func connectionCount(address: String) -> Int {
        indexes.withLockedValue { $0.byAddress[address] ?? 0 }
    }

    /// Adds a connection unless its address already holds `limit` (0: no limit); returns whether it was added.
    package func add(_ connection: Connection, limit: Int) -> Bool {
        indexes.withLockedValue { indexes in
            let held = indexes.byAddress[connection.address] ?? 0
            if limit > 0 && held >= limit { return false }
            indexes.byAddress[connection.address] = held + 1
            indexes.all[connection.id] = connection
            if connection.deflateWindow != 0 { indexes.compressing += 1 }
            return true
        }
    }

    /// Indexes an authenticated connection by its user, session and groups; returns `false` (and indexes nothing)
    /// when the connection closed first.
    package func authenticate(_ connection: Connection, session: SessionInfo) -> Bool {
        guard connection.setSession(session) else { return false }
        indexes.withLockedValue { indexes in
            guard indexes.all[connection.id] != nil else { return }
            indexes.authenticated += 1
            if session.guest { indexes.guests += 1 }
            indexes.byUser[session.user.indexKey, default: []].append(connection)
            indexes.bySession[session.session, default: []].append(connection)
            for group in Set(session.groups.map(\.indexKey)) {
                indexes.byGroup[group, default: []].append(connection)
            }
            for user in Set(session.presenceUsers.map(\.indexKey)) {
                indexes.byWatchedUser[user, default: []].append(connection)
            }
            for group in Set(session.presenceGroups.map(\.indexKey)) {
                indexes.byWatchedGroup[group, default: []].append(connection)
            }
        }
        return true
    }

    /// The connections that may see the presence of the user `user` (an index key) in `groups`, each once.
    package func presenceWatchers(of user: String, groups: Set<String>) -> [Connection] {
        indexes.withLockedValue { indexes in
            var found = indexes.byWatchedUser[user] ?? []
            guard !groups.isEmpty, !indexes.byWatchedGroup.isEmpty else { return found }
            var seen = Set(found.map { ObjectIdentifier($0) })
            for group in groups {
                for connection in indexes.byWatchedGroup[group] ?? []
                where seen.insert(ObjectIdentifier(connection)).inserted {
                    found.append(connection)
                }
            }
            return found
        }
    }

    /// Forgets a closed connection.
    package func remove(_ connection: Connection) {
        let session = connection.session
        indexes.withLockedValue { indexes in
            guard indexes.all.removeValue(forKey: connection.id) != nil else { return }
            let held = (indexes.byAddress[connection.address] ?? 1) - 1
            indexes.byAddress[connection.address] = held > 0 ? held : nil
            if connection.deflateWindow != 0 { indexes.compressing -= 1 }
            guard let session else { return }
            indexes.authenticated -= 1
            if session.guest { indexes.guests -= 1 }
            Self.remove(connection, key: session.user.indexKey, from: &indexes.byUser)
            Self.remove(connection, key: session.session, from: &indexes.bySession)
            for group in Set(session.groups.map(\.indexKey)) {
                Self.remove(connection, key: group, from: &indexes.byGroup)
            }
            for user in Set(session.presenceUsers.map(\.indexKey)) {
                Self.remove(connection, key: user, from: &indexes.byWatchedUser)
            }
            for group in Set(session.presenceGroups.map(\.indexKey)) {
                Self.remove(connection, key: group, from: &indexes.byWatchedGroup)
            }
        }
    }

    private static func remove(_ connection: Connection, key: String, from index: inout [String: [Connection]]) {
        // Mutated in place through the dictionary: a copy of a large group's array per departure would be quadratic.
        guard let last = index[key]?.indices.last,
            let position = index[key]?.firstIndex(where: { $0 === connection })
        else { return }
        index[key]?.swapAt(position, last)
        index[key]?.removeLast()
        if index[key]?.isEmpty == true { index[key] = nil }
    }

    /// Every open connection.
    package func allConnections() -> [Connection] {
        indexes.withLockedValue { Array($0.all.values) }
    }

    /// The connections `selection` selects: found through an index where one holds them, else by asking the
    /// selection of each connection.
    func recipients(of selection: SendSelection) -> [Connection] {
        indexes.withLockedValue { indexes -> [Connection] in
            func union(_ index: [String: [Connection]], _ keys: [String]) -> [Connection] {
                if keys.count == 1 { return index[keys[0]] ?? [] }
                var seen = Set<ObjectIdentifier>()
                var union: [Connection] = []
                for key in keys {
                    for connection in index[key] ?? [] where seen.insert(ObjectIdentifier(connection)).inserted {
                        union.append(connection)
                    }
                }
                return union
            }
            switch selection.lookup {
            case .all: return Array(indexes.all.values)
            case .users(let keys): return union(indexes.byUser, keys)
            case .groups(let keys): return union(indexes.byGroup, keys)
            case .sessions(let keys): return union(indexes.bySession, keys)
            case .connections(let keys): return keys.compactMap { indexes.all[$0] }
            case .scan:
                // Registered users, and filters on properties without an index: the sends that scan.
                return indexes.all.values.filter { Self.selection(selection, selects: $0) }
            }
        }
    }

    private static func selection(_ selection: SendSelection, selects connection: Connection) -> Bool {
        selection.selects(
            id: connection.id, session: connection.session, address: connection.address,
            userAgent: connection.credentials.userAgent)
    }

    /// `connection` as a replay selects for it: the same rule as routing (``SendSelection``), for one connection.
    package func replayRecipient(_ connection: Connection) -> ReplayRecipient {
        ReplayRecipient(
            id: connection.id, session: connection.session, address: connection.address,
            userAgent: connection.credentials.userAgent)
    }

    /// Whether every connection a `send_to 7` names is on this server (then the send needs no cluster bus).
    package func holdsAllConnections(of send: Send) -> Bool {
        guard send.sendTo == .connections else { return false }
        let keys = SendSelection(send).keys
        return indexes.withLockedValue { indexes in keys.allSatisfy { indexes.all[$0] != nil } }
    }

    /// Performs a send on this server's connections; returns how many connections it was handed to (one whose
    /// session has expired by then is closed instead, with a log line and the `session_expired` drop counted).
    /// `id` is the message's id in the cluster, written into the frame for recovery.
    @discardableResult
    public func deliver(_ send: Send, id: Int64? = nil) -> Int {
        metrics.sends(send.sendTo).increment()
        if let command = send.command {
            return closeForGood(recipients(of: SendSelection(command.closes, target: send.details)))
        }
        // A send to everyone: each loop writes to its own connections from its registry, no list of them is made.
        let targets = send.sendTo == .all ? nil : recipients(of: SendSelection(send))
        let (count, compressing) =
            targets.map { ($0.count, $0.contains { $0.deflateWindow != 0 }) }
            ?? indexes.withLockedValue { ($0.all.count, $0.compressing > 0) }
        guard count > 0 else { return 0 }
        // Compressed once, when a recipient negotiated it; each connection takes the form it negotiated.
        let frame = compression.textFrame(
            Message(action: send.action, rawDetails: send.rawDetails).encoded(id: id), compressing: compressing)
        guard let targets else {
            for shard in shards.withLockedValue({ Array($0.values) }) { shard.deliver(frame, to: nil, id: id) }
            return count
        }
        // Grouped by event loop (a handful): the last loop is compared first, a pointer comparison per recipient.
        // An expired session is closed by its handler, at delivery on its loop.
        var byShard: [(shard: LoopShard, connections: [Connection])] = []
        var last = -1
        for connection in targets {
            let shard = connection.shard
            if last < 0 || byShard[last].shard !== shard {
                last = byShard.firstIndex { $0.shard === shard } ?? -1
                if last < 0 {
                    byShard.append((shard, []))
                    last = byShard.count - 1
                }
            }
            byShard[last].connections.append(connection)
        }
        for (shard, connections) in byShard { shard.deliver(frame, to: connections, id: id) }
        return count
    }

    /// The frames of `message` for `connections`: compressed once when one of them negotiated it.
    package func frame(_ message: Message, for connections: [Connection]) -> OutboundFrame {
        compression.textFrame(message.encoded(), compressing: connections.contains { $0.deflateWindow != 0 })
    }

    /// Sends `message` to `connection` alone (an in-process handler's reply): counted and checked as a send to that
    /// connection, but written at once when called on the connection's loop, where in-process handlers run, rather
    /// than queued for the loop's writer (a lock, a task and a lookup by id fewer per echo).
    package func reply(_ message: Message, to connection: Connection) {
        guard ServerCommand(rawValue: message.action) == nil else {
            // Not a message: the same close as from any other send.
            deliver(
                Send(
                    action: message.action, rawDetails: message.rawDetails, sendTo: .connections,
                    target: .string(connection.id)))
            return
        }
        metrics.sends(.connections).increment()
        let frame = compression.textFrame(message.encoded(), compressing: connection.deflateWindow != 0)
        guard connection.eventLoop.inEventLoop else {
            connection.shard.deliver(frame, to: [connection], id: nil)
            return
        }
        connection.handlerOnLoop().write(
            frame: frame.bytes(forWindow: connection.deflateWindow), now: Int64(Date().timeIntervalSince1970))
    }

    /// Sends `Server/close` to `connections` and closes them: the client must not reconnect.
    private func closeForGood(_ connections: [Connection]) -> Int {
        let frame = ByteBuffer(bytes: Message(action: "Server/close", details: .null).encoded())
        for connection in connections {
            connection.write(frame, bypassingHold: true)
            connection.close(code: .normal, reason: "Closed by the server")
            metrics.closed(reason: .serverClose)
        }
        return connections.count
    }
}
