import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// Presence across servers on a real PostgreSQL: one `User/online` and one `User/offline` per stay, cluster-wide,
/// whichever servers the tabs are on, through a reconnect elsewhere, a killed server and a database restart.
@Suite(.serialized) struct PresenceClusterTests {
    typealias Cluster = ClusterTests.Cluster

    private func count(_ site: TestSite, _ name: String, user: JSON = 1) -> Int {
        site.events(named: name).filter { $0["user"] == user }.count
    }

    @Test func twoTabsOnTwoServersAreOneStay() async throws {
        let cluster = try await Cluster.start(2) { $0.presenceGrace = 1 }
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let here = try await cluster.connect("alice", to: 0)
            let there = try await cluster.connect("alice2", to: 1)
            try await eventually(timeout: .seconds(5)) {
                cluster.servers.allSatisfy { $0.presence(of: [1]).first?.tabs == 2 }
            }
            #expect(count(cluster.site, "User/online") == 1)
            #expect(cluster.servers[1].presence(ofGroup: 10).map(\.user) == ["1"])
            // A browser on either server that may see user 1 learns the state, then the change, once.
            let watcher = try await cluster.connect("watcher", to: 1)
            #expect(try await watcher.nextMessage() == Message(action: "Presence/snapshot", details: ["online": [1]]))

            // One tab closes, and comes back on the other server within the grace (a reconnect elsewhere): nothing.
            await here.close()
            let moved = try await cluster.connect("alice", to: 1)
            await there.close()
            try await Task.sleep(for: .milliseconds(2500))
            #expect(count(cluster.site, "User/online") == 1)
            #expect(count(cluster.site, "User/offline") == 0)

            // The last tab closes: one offline, from one server, after the grace.
            await moved.close()
            try await eventually(timeout: .seconds(10)) { count(cluster.site, "User/offline") == 1 }
            #expect(try await watcher.nextMessage() == Message(action: "Presence/offline", details: 1))
            try await Task.sleep(for: .milliseconds(1500))
            try await watcher.expectNoMessage()
            #expect(count(cluster.site, "User/offline") == 1)
            #expect(count(cluster.site, "User/online") == 1)
            try await eventually(timeout: .seconds(5)) {
                cluster.servers.allSatisfy { $0.presence(of: [1]).first?.online == false }
            }
        }
    }

    /// A presence table locked for longer than the servers' lock timeout (a migration, an administrator's long
    /// transaction): every write and sweep that waited on it fails after 3 s and is counted, and presence catches up
    /// once the lock is gone. The lock is held until both servers have counted a failure, however long that takes
    /// on a loaded machine (a fixed 4.5 s missed one server's failed sweep in CI).
    @Test func aLockedPresenceTableIsCountedAndCaughtUpWith() async throws {
        let cluster = try await Cluster.start(2) { $0.presenceGrace = 3 }
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let alice = try await cluster.connect("alice", to: 0)
            try await eventually(timeout: .seconds(5)) { count(cluster.site, "User/online") == 1 }
            #expect(cluster.servers.map(presenceFailures) == [0, 0])

            let release = try await cluster.postgres.holding(
                "LOCK TABLE websockets_presence IN ACCESS EXCLUSIVE MODE")
            let bob = try await cluster.connect("bob", to: 1)
            // Each server sweeps every second: a sweep under the lock fails on PostgreSQL's lock timeout (3 s).
            do {
                try await eventually(timeout: .seconds(30)) {
                    cluster.servers.allSatisfy { presenceFailures($0) >= 1 }
                }
            } catch {
                try await release()
                throw error
            }
            try await release()

            // Bob, who came while the table was locked, is announced once it is free; alice stayed throughout.
            try await eventually(timeout: .seconds(10)) { count(cluster.site, "User/online", user: 2) == 1 }
            #expect(count(cluster.site, "User/online") == 1)
            #expect(count(cluster.site, "User/offline") == 0)
            await alice.close()
            await bob.close()
        }
    }

    /// The `websockets_presence_failures_total` of `server`, all labels (each is `database` here).
    private func presenceFailures(_ server: WebSocketsServer) -> Double {
        String(decoding: server.metrics.render(), as: UTF8.self).split(separator: "\n")
            .filter { $0.hasPrefix(#"websockets_presence_failures_total{"#) }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            .reduce(0, +)
    }

    @Test func aPostgresRestartMakesNoDuplicateOrMissingEvent() async throws {
        // A grace of 3 s: each server writes again within 800 ms of PostgreSQL's return, then a sweep takes up to
        // 1.2 s; with 1 s, a user who moved servers during the outage could be swept before the write. Times the tests'
        // patience: under ThreadSanitizer with both cores busy the write came after 3 s.
        let cluster = try await Cluster.start(2) { $0.presenceGrace = 3 * TestPatience.factor }
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let first = try await cluster.connect("alice", to: 0)
            try await eventually(timeout: .seconds(5)) { count(cluster.site, "User/online") == 1 }

            // While PostgreSQL is away the user moves to the other server, and bob comes and goes.
            try await cluster.postgres.stop()
            let second = try await TestWebSocket.authenticated(port: cluster.servers[1].port, sid: "alice2")
            await first.close()
            let bob = try await TestWebSocket.authenticated(port: cluster.servers[0].port, sid: "bob")
            // Each server still answers from what it knows: its own tab, and the other's last known count.
            try await eventually("the other server answers from its own tab") {
                cluster.servers[1].presence(of: [1]).first?.online == true
            }
            await bob.close()
            // Long enough for every write begun during the outage to have failed (each has 2 s): bob's whole stay must
            // be told from what the server kept, not from a write that happened to wait for the database. (Times the
            // tests' patience, as the connection attempts' timeout in the URL.)
            try await Task.sleep(for: TestPatience.scaled(.seconds(3)))
            try await cluster.postgres.start()

            // Back: alice never left (no event); bob came and went: one online, then one offline.
            try await eventually(timeout: .seconds(20)) {
                count(cluster.site, "User/offline", user: 2) == 1
            }
            #expect(count(cluster.site, "User/online", user: 2) == 1)
            try await Task.sleep(for: .milliseconds(2000))
            #expect(count(cluster.site, "User/online") == 1)
            // Alice, who moved to the other server during the outage, stays online. In about one run in four, that
            // server's write begun as PostgreSQL stopped never returned (postgres-nio) and it wrote nothing again, so
            // she was swept offline: a stalled transaction is now given up on before it commits (TransactionWatch).
            #expect(count(cluster.site, "User/offline") == 0)
            await second.close()
            try await eventually(timeout: .seconds(10)) { count(cluster.site, "User/offline") == 1 }
        }
    }

    /// A SIGKILLed server says nothing: its users with tabs elsewhere stay online with no event; the others go
    /// offline once the pool drops it (30 s without a heartbeat) and the grace has passed.
    @Test func theUsersOfAKilledServerGoOfflineUnlessTheyHaveTabsElsewhere() async throws {
        let cluster = try await Cluster.start(1) { $0.presenceGrace = 1 }
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let (doomed, port) = try await cluster.serverProcess(extra: ["--presence-grace", "1"])
            defer { doomed.stop() }
            let alice = try await TestWebSocket.authenticated(port: port, sid: "alice")
            let bobThere = try await TestWebSocket.authenticated(port: port, sid: "bob")
            let bobHere = try await cluster.connect("bob", to: 0)
            try await eventually(timeout: .seconds(5)) {
                count(cluster.site, "User/online", user: 1) == 1 && count(cluster.site, "User/online", user: 2) == 1
            }
            kill(doomed.process.processIdentifier, SIGKILL)
            await doomed.process.exited()
            try await eventually(timeout: .seconds(60), "alice goes offline") {
                count(cluster.site, "User/offline", user: 1) == 1
            }
            #expect(count(cluster.site, "User/offline", user: 2) == 0)
            // The survivor's ledger forgets the dead server at its next full read (every 5 s).
            try await eventually(timeout: .seconds(10)) {
                cluster.servers[0].presence(of: [1, 2]).map(\.online) == [false, true]
            }
            _ = (alice, bobThere)
            await bobHere.close()
        }
    }
}
