import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

@Suite struct RoutingTests {
    /// alice (user 1) in two tabs, bob (2), carol (3), a guest, and one connection that never authenticated.
    private func population(_ harness: Harness) async throws -> [String: TestWebSocket] {
        var sockets: [String: TestWebSocket] = [:]
        for sid in ["alice", "alice2", "bob", "carol", "guest"] { sockets[sid] = try await harness.connect(sid) }
        sockets["anonymous"] = try await TestWebSocket.connect(port: harness.port)
        // The 101 reaches the client before its socket has moved to a loop of ours and joined the hub.
        try await eventually("the six connections are in the hub") { harness.server.hub.counts.connections == 6 }
        return sockets
    }

    private func expectReceivers(
        _ sockets: [String: TestWebSocket], _ expected: Set<String>, action: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        for (name, socket) in sockets {
            if expected.contains(name) {
                let message = try await socket.nextMessage()
                #expect(message.action == action, "\(name)", sourceLocation: sourceLocation)
            } else {
                try await socket.expectNoMessage(within: .milliseconds(100))
            }
        }
    }

    @Test func routesEachSendToItsConnections() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let sockets = try await population(harness)
            let server = harness.server
            let cases: [(Send, Set<String>)] = [
                (Send(action: "all", sendTo: .all), ["alice", "alice2", "bob", "carol", "guest", "anonymous"]),
                (Send(action: "registered", sendTo: .registeredUsers), ["alice", "alice2", "bob", "carol"]),
                (Send(action: "user", sendTo: .specificUsers, target: 1), ["alice", "alice2"]),
                (Send(action: "users", sendTo: .specificUsers, target: [2, "3"]), ["bob", "carol"]),
                (Send(action: "group", sendTo: .usersGroup, target: 2), ["bob", "carol"]),
                (Send(action: "groups", sendTo: .usersGroup, target: [1, 10]), ["alice", "alice2", "bob"]),
                (Send(action: "language", sendTo: .filter, target: ["language", "de"]), ["bob"]),
                (Send(action: "property", sendTo: .filter, target: ["plan", "pro"]), ["carol"]),
                (Send(action: "filter-user", sendTo: .filter, target: ["user", 2]), ["bob"]),
                (Send(action: "session", sendTo: .sessions, target: "session-alice2"), ["alice2"]),
                (Send(action: "nobody", sendTo: .specificUsers, target: 99), []),
            ]
            for (send, expected) in cases {
                #expect(server.hub.deliver(send) == expected.count, "\(send.action)")
                try await expectReceivers(sockets, expected, action: send.action)
            }
            for socket in sockets.values { await socket.close() }
        }
    }

    /// Sends made faster than the sockets drain leave in batches (several frames per write); each still arrives
    /// once, whole and in order, and is counted once.
    @Test func aBurstOfSendsArrivesWholeAndInOrder() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let sockets = [
                try await harness.connect("alice"), try await harness.connect("alice2"),
                try await harness.connect("bob"),
            ]
            let count = 2000
            for index in 0..<count {
                #expect(
                    harness.server.hub.deliver(Send(action: "burst", details: .int(Int64(index)), sendTo: .all)) == 3)
            }
            for socket in sockets {
                for index in 0..<count {
                    let message = try await socket.nextMessage()
                    #expect(message.action == "burst" && message.details == .int(Int64(index)))
                    if message.details != .int(Int64(index)) { return }
                }
            }
            let metrics = try await harness.http("GET", "/metrics").body
            #expect(metrics.contains("websockets_messages_out_total \(3 * count + 3)"))
            for socket in sockets { await socket.close() }
        }
    }

    @Test func sendsToAConnectionById() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let alice = try await harness.connect("alice")
            let alice2 = try await harness.connect("alice2")
            try await eventually { harness.site.events(named: "Client/authentication").count == 2 }
            let first = try #require(harness.site.events(named: "Client/authentication").first?["connection"])
            harness.server.sendToClients("only", "you", .connections, first)
            // Both wait at once, long enough for a loaded machine (300 ms each was once too short in CI's load).
            async let onAlice = try? alice.nextMessage(timeout: .seconds(3))
            async let onAlice2 = try? alice2.nextMessage(timeout: .seconds(3))
            let (receivedByAlice, receivedByAlice2) = await (onAlice, onAlice2)
            #expect([receivedByAlice, receivedByAlice2].compactMap { $0 } == [Message(action: "only", details: "you")])
            await alice.close()
            await alice2.close()
        }
    }

    @Test func aMessageOnOneTabReachesEveryTabThroughTheSite() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let alice = try await harness.connect("alice")
            let alice2 = try await harness.connect("alice2")
            let bob = try await harness.connect("bob")
            try await bob.send("broadcast", "hi all")
            for socket in [alice, alice2, bob] {
                #expect(try await socket.nextMessage() == Message(action: "broadcast", details: "hi all"))
            }
        }
    }

    @Test func expiredSessionIsClosedInsteadOfSentTo() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            // Whole seconds: valid for at least four more seconds (authentication on a loaded machine once took more
            // than two; under ThreadSanitizer with both cores busy, more than five), then the send comes once it has
            // expired.
            // 10 s: in a full run on a slow day, authentication once took more than 5.
            let expire = Int64(Date().timeIntervalSince1970) + Int64(10 * TestPatience.factor)
            harness.site.addSession("short", user: 7, expire: expire)
            let socket = try await harness.connect("short")
            while Int64(Date().timeIntervalSince1970) < expire + 1 { try await Task.sleep(for: .milliseconds(100)) }
            harness.server.sendToClients("late", "x", .specificUsers, 7)
            let close = try await socket.nextClose()
            #expect(close.before.isEmpty)
            #expect(close.code == 1008)
            #expect(close.reason == "Session expired")
        }
    }

    @Test func closeByUserAndBySessionSendServerClose() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let alice = try await harness.connect("alice")
            let alice2 = try await harness.connect("alice2")
            let bob = try await harness.connect("bob")
            let carol = try await harness.connect("carol")
            harness.server.sendToClients("Server/close_by_user", 1, .all)
            for socket in [alice, alice2] {
                let close = try await socket.nextClose()
                #expect(close.before == [Message(action: "Server/close")])
                #expect(close.code == 1000)
            }
            harness.server.sendToClients("Server/close_by_session", "session-bob", .all)
            #expect(try await bob.nextClose().before == [Message(action: "Server/close")])
            try await carol.expectNoMessage()
            await carol.close()
        }
    }
}
