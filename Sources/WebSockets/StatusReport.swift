import WebSocketsCore
import WebSocketsProtocol

/// The status page's data (`GET /WebSockets/status/data`), made from counters and the sampler only: nothing here
/// walks the connections, so a viewer costs the same with 19,000 of them open as with none.
struct StatusReport: Sendable {
    /// The server's own figures at the moment of the request.
    struct Live: Sendable {
        var server: String
        var version: String
        var uptime: Double
        var connections: Int
        var authenticated: Int
        var guests: Int
        var usersOnline: Int
        var siteBacklogBytes: Int
        var lanes: (waitingSessions: Int, waitingMessages: Int, running: Int)
        var httpConnections: Int
    }

    /// The cluster's part: `nil` on a single server.
    struct Cluster: Sendable {
        var pool: StatusPool
        /// `ok`, or why the last reading of the pool failed.
        var database: String
        /// The last reading's round trip, in milliseconds.
        var roundTrip: Double?
        var listening: Bool
    }

    var live: Live
    var sampler: StatusSampler
    var cluster: Cluster?
    /// Seconds between samples (the chart's step).
    var interval: Double

    /// The JSON the page reads.
    var json: JSON {
        var body: [String: JSON] = [
            "server": .string(live.server), "version": .string(live.version), "uptime": .double(rounded(live.uptime)),
            "interval": .double(interval),
            "connections": [
                "total": .int(Int64(live.connections)),
                "authenticated": .int(Int64(live.authenticated - live.guests)),
                "guests": .int(Int64(live.guests)),
                "unauthenticated": .int(Int64(live.connections - live.authenticated)),
                "http": .int(Int64(live.httpConnections)),
            ],
            "users_online": .int(Int64(live.usersOnline)),
        ]
        let points = sampler.history.points
        body["chart"] = [
            "messages_in": .array(points.map { Self.chartValue($0.messagesIn) }),
            "messages_out": .array(points.map { Self.chartValue($0.messagesOut) }),
            "bytes_out": .array(points.map { Self.chartValue($0.bytesOut) }),
        ]
        var site: [String: JSON] = [
            "backlog_bytes": .int(Int64(live.siteBacklogBytes)),
            "waiting_sessions": .int(Int64(live.lanes.waitingSessions)),
            "waiting_messages": .int(Int64(live.lanes.waitingMessages)),
            "running": .int(Int64(live.lanes.running)),
        ]
        var rates: [String: JSON] = [:]
        var refusals: [JSON] = []
        if let (earlier, later) = sampler.span {
            rates = [
                "messages_in": .double(rounded(later.rate(since: earlier, \.messagesIn))),
                "messages_out": .double(rounded(later.rate(since: earlier, \.messagesOut))),
                "bytes_out": .double(rounded(later.rate(since: earlier, \.bytesOut))),
            ]
            for (name, keyPath) in [("session", \StatusSnapshot.sessionLatency), ("message", \.messageLatency)] {
                let counts = StatusSnapshot.difference(later[keyPath: keyPath], earlier[keyPath: keyPath])
                site[name] = [
                    "per_second": .double(rounded(later.rate(since: earlier) { $0[keyPath: keyPath].reduce(0, +) })),
                    "p50_ms": milliseconds(LatencyTally.percentile(0.5, of: counts)),
                    "p99_ms": milliseconds(LatencyTally.percentile(0.99, of: counts)),
                    "total": .int(Int64(later[keyPath: keyPath].reduce(0, +))),
                ]
            }
            site["failures"] = .array(
                Self.reasons(later.siteFailures, earlier.siteFailures, later: later, earlier: earlier, kind: "site"))
            refusals =
                Self.reasons(later.refused, earlier.refused, later: later, earlier: earlier, kind: "refused")
                + Self.reasons(later.closed, earlier.closed, later: later, earlier: earlier, kind: "closed")
                + Self.reasons(later.dropped, earlier.dropped, later: later, earlier: earlier, kind: "dropped")
        }
        body["rates"] = .object(rates)
        body["site"] = .object(site)
        body["refusals"] = .array(refusals)
        if let cluster {
            body["cluster"] = [
                "database": .string(cluster.database),
                "round_trip_ms": cluster.roundTrip.map { .double(rounded($0)) } ?? .null,
                "listening": .bool(cluster.listening),
                "servers": cluster.pool.json(me: live.server),
            ]
        } else {
            body["cluster"] = .null
        }
        return .object(body)
    }

    /// The reasons that happened at least once, with their totals and their rate over the window, most frequent
    /// first.
    private static func reasons(
        _ now: [String: Int], _ before: [String: Int], later: StatusSnapshot, earlier: StatusSnapshot, kind: String
    ) -> [JSON] {
        now.filter { $0.value > 0 }.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { reason, total in
            let rate = later.perSecond(total - (before[reason] ?? 0), since: earlier)
            return [
                "kind": .string(kind), "reason": .string(reason), "total": .int(Int64(total)),
                "per_second": .double((rate * 100).rounded() / 100),
            ]
        }
    }

    /// A chart's point as few characters as a chart needs: whole numbers from 100, one decimal below (the page
    /// fetches 1,350 of them every 2 s).
    private static func chartValue(_ value: Float) -> JSON {
        value >= 100 ? .int(Int64(value.rounded())) : .double(Double((value * 10).rounded()) / 10)
    }

    private func milliseconds(_ value: Double?) -> JSON {
        guard let value else { return .null }
        return value.isFinite ? .double(rounded(value)) : .string("over 11.6 s")
    }

    private func rounded(_ value: Double) -> Double {
        (value * 1000).rounded() / 1000
    }
}
