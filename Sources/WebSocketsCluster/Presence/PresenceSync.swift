import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import WebSocketsCore
import WebSocketsHub

/// Presence across the cluster, with PostgreSQL as the one place that decides. Each server writes its own tab
/// count per user (`websockets_presence`, one row per server and user) when it changes, at most every 250 ms, and
/// announces it (`NOTIFY websockets_presence`); the others read that server's rows into their ledger. A user's row
/// in `websockets_online` exists while the user is online:
/// - the server whose write creates it (`INSERT ... ON CONFLICT`) tells the site `User/online`: one server, once;
/// - when no live server (a heartbeat within 30 s) has a tab of the user, the row is marked empty, and once it has
///   been empty for `presence_grace` seconds, the server whose `DELETE ... RETURNING` removes it tells the site
///   `User/offline`. A reload, or a reconnect to another server, within the grace clears the mark: no event.
///
/// Nothing is written per connection at steady state: a second's sweep is three statements per server. While
/// PostgreSQL is away each server keeps its own ledger (asked by `/WebSockets/presence`), and writes everything it
/// holds when the database is back; the decisions, being PostgreSQL's, are neither repeated nor lost.
///
/// Its parts each have one job — ``PresenceWriter``, ``PresenceSweeper``, ``PresenceListener`` (the statements
/// are ``PresenceSQL``'s) — and run in the bus's task group (``addParts(to:running:)``).
package final class PresenceSync: Sendable {
    private let writer: PresenceWriter
    private let sweeper: PresenceSweeper
    private let listener: PresenceListener
    private let changes: AsyncStream<PresenceLedger.Change>.Continuation
    /// The decisions this server made: the server tells the site and its handlers.
    package let decisions: AsyncStream<PresenceLedger.Change>
    private let seen: AsyncStream<PresenceLedger.Change>.Continuation
    /// Every decision of the cluster (announced with NOTIFY): each server tells its own watching browsers.
    package let observed: AsyncStream<PresenceLedger.Change>

    package init(
        client: PostgresClient, logger: Logger, metrics: ServerMetrics, serverID: String, grace: Double,
        ledger: NIOLockedValueBox<PresenceLedger>
    ) {
        let transactions = PresenceTransactions(client: client, logger: logger, metrics: metrics)
        writer = PresenceWriter(transactions: transactions, serverID: serverID, ledger: ledger)
        sweeper = PresenceSweeper(transactions: transactions, grace: grace)
        listener = PresenceListener(client: client, logger: logger, serverID: serverID, ledger: ledger)
        (decisions, changes) = AsyncStream.makeStream()
        (observed, seen) = AsyncStream.makeStream()
    }

    /// Adds the writer, the sweeper, the listener and its refresher to `group`, each under its name; they run until
    /// the group is cancelled.
    package func addParts(to group: inout TaskGroup<Void>, running: RunningParts) {
        let (writer, sweeper, listener) = (self.writer, self.sweeper, self.listener)
        let (changes, seen) = (self.changes, self.seen)
        running.add("presence write", to: &group) { await writer.run { changes.yield($0) } }
        running.add("presence sweep", to: &group) { await sweeper.run { changes.yield($0) } }
        running.add("presence listen", to: &group) { await listener.listen { seen.yield($0) } }
        running.add("presence refresh", to: &group) { await listener.refresh() }
    }

    /// Ends the streams of decisions, once the parts have stopped (or were given up on).
    package func finish() {
        changes.finish()
        seen.finish()
    }

    /// Removes this server's rows (on shutdown): its users' tabs are gone from here.
    package func leave() async {
        await writer.leave()
    }
}
