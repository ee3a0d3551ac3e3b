import Logging
import NIOConcurrencyHelpers
import WebSocketsCore
import WebSocketsHub

/// The one choice between a server alone and a cluster over PostgreSQL, made once from `postgres` when the server
/// is made. Each mode supplies what differs — the bus (and with it the router and the replay), whether a new
/// connection holds its live messages until its replay, where a send may be answered, and who decides presence —
/// so that nothing outside this file asks which mode it is.
package struct ClusterMode: Sendable, Equatable {
    /// Who decides that a user came online or went offline.
    package enum PresenceAuthority: Sendable, Equatable {
        /// This server's ledger: it announces as it decides, and tells its watching browsers itself.
        case ledger
        /// PostgreSQL, from every server's counts: the decisions this server is to announce and every decision of
        /// the cluster (for its watching browsers) come from the bus (``MessageBus/presenceDecisions``,
        /// ``MessageBus/presenceObserved``).
        case database
    }

    private let isCluster: Bool

    /// The mode `settings` ask for: a cluster when `postgres` is set.
    package init(settings: Settings) {
        isCluster = !(settings.postgres ?? "").isEmpty
    }

    /// Whether a new connection holds its live messages from its start until the replay of what its browser missed
    /// (a send that arrived while the site checked the session once reached the tab before its replay, and again in
    /// it); then skips what the replay carried.
    package var holdsLiveMessagesUntilReplay: Bool { isCluster }

    /// Whether an authenticated connection gets a replay of the messages after its `last_id`.
    package var replaysMissedMessages: Bool { isCluster }

    /// Whether a send to `/WebSockets/send` may be answered on the event loop, once delivered here: not in a
    /// cluster, where it is answered once PostgreSQL took it.
    package var answersSendsOnTheLoop: Bool { !isCluster }

    /// Who decides presence.
    package var presenceAuthority: PresenceAuthority { isCluster ? .database : .ledger }

    /// Whether the presence ledger keeps per-user counts for PostgreSQL to add up across servers.
    package var sharesPresenceCounts: Bool { isCluster }

    /// Whether `websockets send` finds a live server through the cluster's pool in PostgreSQL.
    package var findsServersInThePool: Bool { isCluster }

    /// The bus of this mode: this server's hub alone, or PostgreSQL.
    package func makeBus(
        settings: Settings, hub: Hub, metrics: ServerMetrics, logger: Logger, serverID: String,
        address: NIOLockedValueBox<String>, presence: NIOLockedValueBox<PresenceLedger>
    ) -> any MessageBus {
        guard isCluster else { return LocalBus(hub: hub) }
        return PostgresBus(
            settings: settings, hub: hub, metrics: metrics, logger: logger, serverID: serverID, address: address,
            retention: settings.retention, presence: presence)
    }

    /// The router between `hub` and `bus`: on a single server every send stays here; in a cluster only those whose
    /// every connection (send_to 7) is on this server do.
    package func router(hub: Hub, bus: any MessageBus) -> SendRouter {
        SendRouter(hub: hub, bus: bus, sharesSends: isCluster)
    }
}
