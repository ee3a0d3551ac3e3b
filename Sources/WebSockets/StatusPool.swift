import WebSocketsCluster
import WebSocketsProtocol

/// The cluster's servers as the status page shows them: those of the pool's last reading, and those seen before
/// that are no longer there (a server that stopped leaves the pool at once, one that was killed after 30 s), kept
/// as "gone" for 15 minutes so that the operator sees what went away. At most 64 are remembered.
struct StatusPool: Sendable {
    /// A server's state on the page.
    enum State: String, Sendable {
        /// Its heartbeat (every 5 s) is recent.
        case up
        /// No heartbeat for over 15 s: stalled, or its database connection is.
        case late
        /// Not in the pool any more.
        case gone
    }

    /// One row of the page's table.
    struct Row: Sendable, Equatable {
        var member: PoolMember
        var state: State
        /// When it was last in the pool, by the monotonic clock.
        var lastSeen: ContinuousClock.Instant
    }

    private(set) var rows: [String: Row] = [:]
    /// How long a gone server stays on the page.
    static let forgetAfter = Duration.seconds(15 * 60)
    static let maximumRows = 64

    /// Takes a reading of the pool made at `now`.
    mutating func update(_ members: [PoolMember], now: ContinuousClock.Instant) {
        let present = Set(members.map(\.address))
        for (address, row) in rows where !present.contains(address) {
            rows[address]?.state = .gone
            if now - row.lastSeen > Self.forgetAfter { rows[address] = nil }
        }
        for member in members.prefix(Self.maximumRows) {
            rows[member.address] = Row(
                member: member, state: member.heartbeatAge > 15 ? .late : .up, lastSeen: now)
        }
        if rows.count > Self.maximumRows {
            for row in rows.values.filter({ $0.state == .gone }).sorted(by: { $0.lastSeen < $1.lastSeen })
                .prefix(rows.count - Self.maximumRows)
            {
                rows[row.member.address] = nil
            }
        }
    }

    /// The rows as JSON, up first, then late, then gone, each by address; `me` marks this server's row.
    func json(me: String) -> JSON {
        let order: [State: Int] = [.up: 0, .late: 1, .gone: 2]
        let sorted = rows.values.sorted {
            (order[$0.state]!, $0.member.address) < (order[$1.state]!, $1.member.address)
        }
        return .array(
            sorted.map { row in
                [
                    "address": .string(row.member.address), "server": .string(row.member.server),
                    "connections": .int(Int64(row.member.connections)), "behind": .int(row.member.behind),
                    "heartbeat_age": .double((row.member.heartbeatAge * 10).rounded() / 10),
                    "state": .string(row.state.rawValue), "self": .bool(row.member.address == me),
                ]
            })
    }
}
