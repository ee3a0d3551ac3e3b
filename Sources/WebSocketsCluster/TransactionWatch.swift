import WebSocketsConnection
import WebSocketsHub

/// Whether a transaction that has stopped answering may be given up on, without losing what it decided.
///
/// postgres-nio can leave a statement waiting for good on a connection PostgreSQL closed under it: a presence write
/// begun as the database stopped never returned, neither result nor error, and that server wrote no presence again
/// (`aPostgresRestartMakesNoDuplicateOrMissingEvent`, one run in four: the user who had moved to it was swept
/// offline). A transaction whose statements make no progress for a while is given up on while its closure has not
/// finished: it has not sent COMMIT, and if it ever goes on, the closure learns it was given up on and throws, so
/// PostgreSQL rolls it back; nothing it decided is committed. Once COMMIT may have been sent, its outcome is
/// unknown and it is waited for.
package struct TransactionWatch: Equatable {
    package enum State: Equatable {
        /// Waiting for a connection or running statements; the last step was at `progress` (nanoseconds of a
        /// monotonic clock). Giving up while waiting for a connection costs nothing: the next try waits again.
        case running(progress: UInt64)
        /// The statements are done: COMMIT may be under way.
        case committing
        /// Given up on: it must not commit.
        case abandoned
    }

    private(set) var state: State

    /// A transaction asked for at `now`.
    package init(now: UInt64) {
        state = .running(progress: now)
    }

    /// A statement began or ended at `now`; whether the transaction may go on (it was not given up on).
    mutating func progressed(now: UInt64) -> Bool {
        switch state {
        case .abandoned: return false
        case .committing: return true
        case .running: state = .running(progress: now)
        }
        return true
    }

    /// The statements are done and the transaction wants to commit: whether it may (it was not given up on).
    mutating func finishStatements() -> Bool {
        guard state != .abandoned else { return false }
        state = .committing
        return true
    }

    /// Gives up on the transaction if it has made no progress for `limit` nanoseconds at `now`; whether it was
    /// given up on.
    mutating func abandonIfStalled(now: UInt64, limit: UInt64) -> Bool {
        guard case .running(let progress) = state, now &- progress >= limit else { return false }
        state = .abandoned
        return true
    }

    /// Whether it was given up on.
    var isAbandoned: Bool { state == .abandoned }
}
