/// Why the server closed a connection: the `reason` label of `websockets_closed_total`. One list, so that a label
/// is never misspelt at one call site and the metrics page's list can be checked against it.
package enum ClosedReason: String, Sendable, CaseIterable {
    case idle
    case `protocol`
    case malformed
    case tooLarge = "too_large"
    case binary
    case slowReader = "slow_reader"
    case authenticationTimeout = "authentication_timeout"
    case sessionExpired = "session_expired"
    case perIPCap = "per_ip_cap"
    case httpTimeout = "http_timeout"
    case httpCap = "http_cap"
    /// An upgraded socket that could not be moved to a loop of ours: out of descriptors.
    case descriptors
    /// `Server/close` and the sends that close connections.
    case serverClose = "server_close"
    /// An upgrade from an origin not in `allowed_origins`.
    case origin
    /// Another refused upgrade (starting, stopping).
    case refused
}

/// Why something accepted for delivery (to a browser or to the site) did not get there: the `reason` label of
/// `websockets_dropped_total`.
package enum DroppedReason: String, Sendable, CaseIterable {
    case slowReader = "slow_reader"
    case sessionExpired = "session_expired"
    case closed
    case replayOverflow = "replay_overflow"
    /// A cluster message a reconnected tab already had.
    case duplicate
    case unauthenticated
    case shutdown
    case oversized
    case oversizedRow = "oversized_row"
    case unreadableRow = "unreadable_row"
    case clusterBacklog = "cluster_backlog"
}

/// Why a browser's message or a send was refused before it was accepted: the `reason` label of
/// `websockets_refused_total`.
package enum RefusedReason: String, Sendable, CaseIterable {
    case rate
    case pending
    case pendingBytes = "pending_bytes"
    case unauthenticatedBudget = "unauthenticated_budget"
    case siteBacklog = "site_backlog"
    case sendKey = "send_key"
    case internalKey = "internal_key"
    /// A wrong key at the status page's sign-in, or a sign-in from an address that must wait.
    case statusKey = "status_key"
}
