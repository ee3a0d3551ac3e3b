import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol

/// Where sends that may concern other servers go: straight to this server's connections (one server), or through
/// PostgreSQL to every server's (a cluster).
package protocol MessageBus: Sendable {
    /// Queues sends in order without waiting.
    func enqueue(_ sends: [Send])
    /// Queues sends in order now and calls `done` once they are accepted (written to the database, or delivered
    /// here), on any thread.
    func publish(_ sends: [Send], then done: @escaping @Sendable () -> Void)
    /// The id of the last message this server applied (0 on a single server).
    var head: Int64 { get }
    /// Messages after `after` up to `through` that select `recipient`, in order, holding at most `budget` bytes of
    /// details, and whether they are all of them (the window still holds them all, no bound left any out).
    func messages(
        after: Int64, through: Int64, for recipient: ReplayRecipient, budget: Int
    ) async throws -> (rows: [(id: Int64, send: Send)], complete: Bool)
    /// The presence decisions this server is to announce, in a cluster (PostgreSQL decides who is online); none on
    /// a single server, whose own ledger decides.
    var presenceDecisions: AsyncStream<PresenceLedger.Change> { get }
    /// Every presence decision of the cluster, for this server's watching browsers; none on a single server.
    var presenceObserved: AsyncStream<PresenceLedger.Change> { get }
    /// Every server of the cluster's pool, as the status page shows them; `nil` on a single server.
    func poolMembers() async throws -> [PoolMember]?
    /// Whether this server hears the cluster's notifications now; `true` on a single server.
    var isListening: Bool { get }
    func start() async throws
    func shutdown() async
}

extension MessageBus {
    /// Queues sends in order and returns once they are accepted (written to the database, or delivered here).
    package func publish(_ sends: [Send]) async {
        await withCheckedContinuation { (accepted: CheckedContinuation<Void, Never>) in
            publish(sends) { accepted.resume() }
        }
    }

    /// None: the server's own ledger decides.
    package var presenceDecisions: AsyncStream<PresenceLedger.Change> { AsyncStream { $0.finish() } }
    /// None: the server tells its browsers as it decides.
    package var presenceObserved: AsyncStream<PresenceLedger.Change> { AsyncStream { $0.finish() } }
    /// No pool: a single server.
    package func poolMembers() async throws -> [PoolMember]? { nil }
    /// Nothing to hear.
    package var isListening: Bool { true }
}

/// The bus of a single server: a send is delivered to this server's connections at once.
package struct LocalBus: MessageBus {
    package let hub: Hub

    package init(hub: Hub) {
        self.hub = hub
    }

    package func enqueue(_ sends: [Send]) {
        for send in sends { hub.deliver(send) }
    }

    package func publish(_ sends: [Send], then done: @escaping @Sendable () -> Void) {
        enqueue(sends)
        done()
    }

    package var head: Int64 { 0 }

    package func messages(
        after: Int64, through: Int64, for recipient: ReplayRecipient, budget: Int
    ) async throws -> (rows: [(id: Int64, send: Send)], complete: Bool) {
        ([], true)
    }

    package func start() async throws {}
    package func shutdown() async {}
}
