import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// Presence: who is online, with calm `User/online` and `User/offline` events.
@Suite struct PresenceTests {
    @Test func theLedgerDebouncesReloadsAndBlips() {
        var ledger = PresenceLedger(grace: .seconds(10))
        let start = ContinuousClock.now
        #expect(ledger.opened(user: 1, groups: [7]) == .online(1, groups: ["7"]))
        #expect(ledger.opened(user: 1, groups: [8]) == nil)
        ledger.closed(user: 1, now: start)
        ledger.closed(user: 1, now: start)
        #expect(ledger.status(of: ["1"]) == [PresenceStatus(user: "1", online: true, tabs: 0)])
        // A close more than the tabs opened (a close seen twice) leaves the user leaving once.
        ledger.closed(user: 1, now: start)
        #expect(ledger.hasLeaving)
        // Back within the grace (a reload): nothing.
        #expect(ledger.opened(user: 1, groups: [7]) == nil)
        #expect(!ledger.hasLeaving)
        #expect(ledger.expire(now: start + .seconds(11)).isEmpty)
        ledger.closed(user: 1, now: start + .seconds(11))
        #expect(ledger.expire(now: start + .seconds(20)).isEmpty)
        #expect(ledger.hasLeaving)
        #expect(ledger.expire(now: start + .seconds(21)) == [.offline(1, groups: ["7", "8"])])
        #expect(ledger.expire(now: start + .seconds(30)).isEmpty)
        #expect(!ledger.hasLeaving)
        #expect(ledger.status(of: ["1", "2"]).map(\.online) == [false, false])
        // A closed tab of a user never seen (a guest, a restart) changes nothing.
        ledger.closed(user: 3, now: start)
        #expect(ledger.entries.isEmpty)
        // Groups: the union of the user's tabs' groups.
        #expect(ledger.opened(user: "ann", groups: [7]) == .online("ann", groups: ["7"]))
        #expect(ledger.opened(user: 2, groups: [7, 9]) == .online(2, groups: ["7", "9"]))
        #expect(ledger.members(ofGroup: "7").map(\.user) == ["2", "ann"])
        #expect(ledger.members(ofGroup: "9") == [PresenceStatus(user: "2", online: true, tabs: 1)])
    }

    /// Issue 23, found by the soak: on a single server the ledger kept every user who ever came in the changes and
    /// arrivals it keeps for a cluster, which no one took. 1,000 users come and go: nothing is left.
    @Test func aSingleServersLedgerKeepsNothingOfUsersWhoLeft() {
        var ledger = PresenceLedger(grace: .zero)
        let start = ContinuousClock.now
        for user in 0..<1_000 {
            _ = ledger.opened(user: .int(Int64(user)), groups: [7])
            ledger.closed(user: .int(Int64(user)), now: start)
        }
        #expect(ledger.expire(now: start).count == 1_000)
        #expect(ledger.entries.isEmpty && ledger.changed.isEmpty && ledger.arrivals.isEmpty)
    }

    @Test func theLedgerAddsTheOtherServersTabs() {
        var ledger = PresenceLedger(grace: .seconds(10), sharesCounts: true)
        _ = ledger.opened(user: 1, groups: [7])
        ledger.replaceRemote(
            server: "b",
            counts: [
                "1": .init(user: 1, groups: ["7"], tabs: 2), "007": .init(user: "007", groups: ["7", "9"], tabs: 1),
            ])
        #expect(ledger.status(of: ["1", "007", "2"]).map(\.tabs) == [3, 1, 0])
        #expect(ledger.members(ofGroup: "9").map(\.user) == ["007"])
        // Ids keep the site's spelling: "007" is not 7.
        #expect(ledger.online(users: ["2"], groups: ["7"]) == ["007", 1])
        ledger.keepRemote([])
        #expect(ledger.status(of: ["1", "007"]).map(\.tabs) == [1, 0])
        #expect(ledger.takeChanges() == [.init(key: "1", user: 1, groups: ["7"], tabs: 1)])
        #expect(ledger.takeChanges().isEmpty)
        // A stay that begins and ends between two writes is still an arrival to announce.
        #expect(ledger.takeArrivals() == [.init(key: "1", user: 1, groups: ["7"], tabs: 1)])
        _ = ledger.opened(user: 5, groups: [])
        ledger.closed(user: 5, now: .now)
        #expect(ledger.takeArrivals().map(\.key) == ["5"])
        #expect(ledger.takeChanges() == [.init(key: "5", user: 5, groups: [], tabs: 0)])
    }

    /// One user, two tabs, a reload and the end: the site hears one online and, a grace after the last tab
    /// closed, one offline; in-process handlers hear the same. Guests make no presence.
    @Test func theSiteHearsOneOnlineAndOneOfflinePerStay() async throws {
        let harness = try await Harness.start { $0.presenceGrace = 0.5 }
        try await withTeardown({ await harness.stop() }) {
            let heard = NIOLockedValueBox<[String]>([])
            for name in ["User/online", "User/offline"] {
                harness.server.on(name) { event in
                    heard.withLockedValue { $0.append("\(event.name) \(event.user.indexKey)") }
                }
            }
            let first = try await harness.connect("alice")
            let second = try await harness.connect("alice2")
            let guest = try await harness.connect("guest")
            try await eventually { harness.site.events(named: "User/online").count == 1 }
            let online = try #require(harness.site.events(named: "User/online").first)
            #expect(online["user"] == 1)
            #expect(online["action"] == "User/online")
            // A reload of one tab: closed, and open again within the grace.
            await first.close()
            let reloaded = try await harness.connect("alice")
            await second.close()
            try await Task.sleep(for: .milliseconds(800))
            #expect(harness.site.events(named: "User/offline").isEmpty)
            #expect(harness.server.presence(of: [1, 0]).map(\.online) == [true, false])
            // The last tab closes: offline, once, after the grace.
            let closedAt = ContinuousClock.now
            await reloaded.close()
            try await eventually(timeout: .seconds(5)) { harness.site.events(named: "User/offline").count == 1 }
            #expect(ContinuousClock.now - closedAt >= .milliseconds(450))
            try await Task.sleep(for: .milliseconds(600))
            #expect(harness.site.events(named: "User/online").count == 1)
            #expect(harness.site.events(named: "User/offline").count == 1)
            #expect(heard.withLockedValue { $0 } == ["User/online 1", "User/offline 1"])
            #expect(harness.server.presence(of: [1]).map(\.online) == [false])
            await guest.close()
        }
    }

    @Test func presenceIsAskedByUsersOrGroupWithTheKey() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let alice = try await harness.connect("alice")
            let alice2 = try await harness.connect("alice2")
            let bob = try await harness.connect("bob")
            let key = [("X-WebSockets-Key", harness.key)]
            let byUsers = try await harness.http("GET", "/WebSockets/presence?users=1,2,3", headers: key)
            #expect(byUsers.status == 200)
            #expect(
                try JSON(parsing: byUsers.body)
                    == [
                        "users": [
                            "1": ["online": true, "tabs": 2], "2": ["online": true, "tabs": 1],
                            "3": ["online": false, "tabs": 0],
                        ]
                    ])
            let byGroup = try await harness.http("GET", "/WebSockets/presence?group=10", headers: key)
            #expect(
                try JSON(parsing: byGroup.body)
                    == ["users": ["1": ["online": true, "tabs": 2], "2": ["online": true, "tabs": 1]]])
            #expect(try await harness.http("GET", "/WebSockets/presence?users=1").status == 403)
            #expect(try await harness.http("GET", "/WebSockets/presence", headers: key).status == 400)
            #expect(harness.server.presence(ofGroup: 2).map(\.user) == ["2"])
            for socket in [alice, alice2, bob] { await socket.close() }
        }
    }

    /// A browser sees the presence the site lets it see: a snapshot after authentication, then changes, debounced
    /// as the site's events are; nothing about anyone else.
    @Test func browsersSeeThePresenceTheSiteAllows() async throws {
        // A grace of 6 s: in full-suite runs under CI's load (0.5 s once, 2 s once more, both at the suite's start)
        // the watcher got another message where carol's offline was due: the reload below (a new tab that asks the
        // site for its session) took longer than the grace, so the user rightly went offline and came back.
        let harness = try await Harness.start { $0.presenceGrace = 6 }
        try await withTeardown({ await harness.stop() }) {
            let carol = try await harness.connect("carol")
            let watcher = try await harness.connect("watcher")
            #expect(try await watcher.nextMessage() == Message(action: "Presence/snapshot", details: ["online": [3]]))
            let nosy = try await harness.connect("alice2")
            #expect(try await watcher.nextMessage() == Message(action: "Presence/online", details: 1))
            let bob = try await harness.connect("bob")
            #expect(try await watcher.nextMessage() == Message(action: "Presence/online", details: 2))
            // A reload: nothing; the end: offline after the grace.
            await nosy.close()
            let back = try await harness.connect("alice")
            await back.close()
            #expect(
                try await watcher.nextMessage(timeout: .seconds(20)) == Message(action: "Presence/offline", details: 1))
            await carol.close()
            #expect(
                try await watcher.nextMessage(timeout: .seconds(20)) == Message(action: "Presence/offline", details: 3))
            // Bob may see nobody: he heard nothing of it all.
            try await bob.expectNoMessage()
            await bob.close()
            await watcher.close()
        }
    }
}
