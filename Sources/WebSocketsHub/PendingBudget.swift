import Synchronization
import WebSocketsConnection
import WebSocketsCore
import WebSocketsProtocol

/// Bytes held server-wide for one purpose, against a limit: the messages waiting for connections that have not
/// authenticated yet (they are anyone's, and a site that answers session checks slowly let 50 such tabs make the
/// server hold 445 MiB; past the limit their new messages are refused, 429), and the events waiting for the site
/// (past the limit new tabs are refused authentication, 503).
package final class PendingBudget: Sendable {
    /// The most bytes held at once.
    package let limit: Int
    private let held = Atomic<Int>(0)

    package init(limit: Int) {
        self.limit = limit
    }

    /// Takes `bytes` from the budget; `false` (nothing taken) when that would pass the limit.
    package func take(_ bytes: Int) -> Bool {
        let after = held.wrappingAdd(bytes, ordering: .relaxed).newValue
        if after <= limit { return true }
        held.wrappingSubtract(bytes, ordering: .relaxed)
        return false
    }

    /// Takes `bytes` whatever the limit: for what must not be refused (a disconnection after its authentication).
    package func hold(_ bytes: Int) {
        held.wrappingAdd(bytes, ordering: .relaxed)
    }

    /// Whether the limit is reached.
    package var isSpent: Bool { bytes >= limit }

    /// Gives `bytes` back.
    package func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        held.wrappingSubtract(bytes, ordering: .relaxed)
    }

    /// The bytes held now.
    package var bytes: Int { held.load(ordering: .relaxed) }
}
