import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// Issue 22: the cluster's promises on bad days, each on a real PostgreSQL: no command delivered as data, once
/// even when PostgreSQL is slow, no row that stops the bus.
@Suite(.serialized) struct ClusterGuaranteeTests {
    typealias Cluster = ClusterTests.Cluster

    /// Reads a tab's frames until `action` arrives; the frames before it, as text.
    static func frames(of socket: TestWebSocket, until action: String) async throws -> [String] {
        var seen: [String] = []
        while true {
            let text = try await socket.nextText(timeout: .seconds(10))
            if (try? JSON(parsing: text))?.arrayValue?.first == .string(action) { return seen }
            seen.append(text)
        }
    }

    /// Issue 22, row 1: a logout's session id and user id never reach another tab, live or in a replay on another
    /// server (`last_id` 0, and a tab that reconnects within the retention); the closed tab gets `Server/close`
    /// alone. On 226b087 bob's replay held `["Server/close_by_session","session-alice",1]`.
    @Test func aLogoutIsPerformedNeverReplayed() async throws {
        let cluster = try await Cluster.start(2)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let alice = try await cluster.connect("alice", to: 0)
            let bob = try await cluster.connect("bob", to: 1)
            let lastID = cluster.servers[1].bus.head
            // The site logs alice out: by session (the seed passes any send_to, 0 included) and by user.
            #expect(try await cluster.post(#"["Server/close_by_session", "session-alice", 0]"#, to: 0) == 202)
            let close = try await alice.nextClose()
            #expect(close.before == [Message(action: "Server/close")], "the closed tab gets Server/close alone")
            #expect(try await cluster.post(#"["Server/close_by_user", 1, 1]"#, to: 1) == 202)
            cluster.servers[0].sendToClients("marker", nil, .all)
            #expect(try await Self.frames(of: bob, until: "marker") == [], "bob's live tab got nothing of the logout")
            for (server, after) in [(1, 0), (0, 0), (1, Int(lastID))] {
                let back = try await TestWebSocket.connect(
                    port: cluster.servers[server].port, headers: [("Cookie", "sid=bob")])
                try await back.send("Client/authentication", ["last_id": .int(Int64(after))])
                #expect(try await back.nextMessage() == Message(action: "Client/authentication", details: "ok"))
                let replay = try await Self.frames(of: back, until: "Client/recovery")
                #expect(replay.count == 1 && replay[0].hasPrefix(#"["marker""#), "replay on \(server): \(replay)")
                #expect(!replay.contains { $0.contains("alice") || $0.contains("close_by") })
                await back.close()
            }
        }
    }

    /// Holds `LOCK TABLE websockets_messages IN EXCLUSIVE MODE` (no insert passes) for `duration` in another
    /// transaction; returns once the lock is taken, and the task that ends with it.
    static func lockMessages(_ postgres: PostgresServer, for duration: Duration) async throws -> Task<Void, Never> {
        let seconds = Double(duration.components.seconds)
        let holder = Task {
            _ = try? await postgres.psql(
                "BEGIN; LOCK TABLE websockets_messages IN EXCLUSIVE MODE; SELECT pg_sleep(\(seconds)); COMMIT;")
        }
        try await eventually(timeout: .seconds(10), "the lock is taken") {
            (try? await postgres.psql(
                "SELECT count(*) FROM pg_locks WHERE relation = 'websockets_messages'::regclass AND mode = 'ExclusiveLock' AND granted"
            )) == "1"
        }
        return holder
    }

    /// Issue 22, row 2: the table locked for longer than every deadline (8 s) while 5 sends are made; each tab, on
    /// every server, gets each send once, and each is one row. On 226b087: 12 rows for 5 sends, tabs got each send
    /// 2–6 times with new ids.
    @Test(arguments: [2, 3]) func aSlowDatabaseRepeatsNothing(servers count: Int) async throws {
        let cluster = try await Cluster.start(count)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let sids = ["alice", "bob", "carol"]
            var tabs: [TestWebSocket] = []
            for index in 0..<count { tabs.append(try await cluster.connect(sids[index], to: index)) }
            let holder = try await Self.lockMessages(cluster.postgres, for: .seconds(8))
            for number in 1...5 {
                #expect(try await cluster.post(#"["n", \#(number), 1]"#, to: 0) == 202)
                try await Task.sleep(for: .milliseconds(300))
            }
            await holder.value
            #expect(try await cluster.post(#"["end", null, 1]"#, to: 0) == 202)
            for (index, tab) in tabs.enumerated() {
                let seen = try await Self.frames(of: tab, until: "end").compactMap {
                    (try? JSON(parsing: $0))?.arrayValue?[1].intValue
                }
                #expect(seen == [1, 2, 3, 4, 5], "tab on server \(index): \(seen)")
                try await tab.expectNoMessage(within: .milliseconds(500))
            }
            try await eventually(timeout: .seconds(5), "the sends are written") {
                (try? await cluster.postgres.psql(
                    #"SELECT count(*) FROM websockets_messages WHERE payload LIKE '["end"%'"#)) == "1"
            }
            let rows = try await cluster.postgres.psql(
                #"SELECT count(*) FROM websockets_messages WHERE payload LIKE '["n",%'"#)
            #expect(rows == "5", "each send is one row")
        }
    }

    /// Issue 22, row 4: a 200 MB row written by hand, for a user who does not exist, is skipped unread on every
    /// server (a warning and `websockets_dropped_total{reason="oversized_row"}`), and a send after it reaches the
    /// tabs within a second; `websockets_send` refuses a send over `max_send_size` with an error that names it. On
    /// 226b087 the reader gave up on the batch after 2 s and read it again, forever.
    @Test func noRowStopsTheBus() async throws {
        let cluster = try await Cluster.start(2)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let alice = try await cluster.connect("alice", to: 0)
            let bob = try await cluster.connect("bob", to: 1)
            try await cluster.postgres.psql(
                #"INSERT INTO websockets_messages (payload) SELECT '["huge","' || repeat('x', 200000000) || '",3,424242]'"#
            )
            let start = ContinuousClock.now
            #expect(try await cluster.post(#"["after", 1, 1]"#, to: 0) == 202)
            for tab in [alice, bob] {
                #expect(try await tab.nextMessage(timeout: .seconds(5)) == Message(action: "after", details: 1))
            }
            let elapsed = ContinuousClock.now - start
            #expect(elapsed < .seconds(1), "the send after the row took \(elapsed)")
            for server in cluster.servers {
                let metrics = String(decoding: server.metrics.render(), as: UTF8.self)
                #expect(metrics.contains(#"websockets_dropped_total{reason="oversized_row"} 1"#))
            }
            await #expect(throws: (any Error).self) {
                try await cluster.postgres.psql("SELECT websockets_send('big', to_json(repeat('x', 5000000)), 1)")
            }
            do {
                try await cluster.postgres.psql("SELECT websockets_send('big', to_json(repeat('x', 5000000)), 1)")
            } catch {
                #expect("\(error)".contains("max_send_size"), "\(error)")
            }
            // A send over the limit from a server is not carried, and counted.
            cluster.servers[0].sendToClients("big", .string(String(repeating: "y", count: 5 << 20)), .all)
            cluster.servers[0].sendToClients("small", nil, .all)
            for tab in [alice, bob] { #expect(try await tab.nextMessage().action == "small") }
            let metrics = String(decoding: cluster.servers[0].metrics.render(), as: UTF8.self)
            #expect(metrics.contains(#"websockets_dropped_total{reason="oversized"} 1"#))
        }
    }

    /// Issue 22, row 3: 40 tabs of one user reconnect with `last_id: 0`, 10 rounds, while the table holds 10,000
    /// rows of 4 KB for a user who does not exist, against `websockets start` (a process of its own). Each replay
    /// selects on the rows' routing columns before reading any payload, and only a few run at once: the server's
    /// peak memory grows by under 64 MiB, and every tab gets its `Client/recovery`. On 226b087 the peak grew by
    /// about 900 MiB (each replay read and decoded every row). Live sends' latency meanwhile is printed, not
    /// asserted (figures are for Benchmarks/; the issue's target is under 100 ms at p99).
    @Test(.disabled(if: TestPatience.sanitized, TestPatience.memoryFiguresAreTheSanitizers))
    func aReplayCostsWhatItReturns() async throws {
        let cluster = try await Cluster.start(1)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let (process, port) = try await cluster.serverProcess()
            defer { process.stop() }
            try await cluster.postgres.psql(
                """
                SELECT count(websockets_send('nobody', to_json((SELECT string_agg(md5(random()::text || i || j), '')
                    FROM generate_series(1, 128) j)), 3, '999999')) FROM generate_series(1, 10000) i
                """)
            let pid = process.process.processIdentifier
            // The server has read the rows as they came (for nobody): what it holds from here on is the replays'.
            let bob = try await TestWebSocket.authenticated(port: port, sid: "bob")
            _ = try await Self.frames(of: bob, until: "Client/recovery")
            cluster.servers[0].sendToClients("settled", nil, .specificUsers, 2)
            _ = try await Self.frames(of: bob, until: "settled")
            let before = try ServerProcess.memory(of: pid)
            // Live sends to bob through the other server, every 20 ms, timed on arrival.
            let latencies = NIOLockedValueBox<[Duration]>([])
            let live = Task {
                var number: Int64 = 0
                while !Task.isCancelled {
                    number += 1
                    let sent = ContinuousClock.now
                    cluster.servers[0].sendToClients("live", .int(number), .specificUsers, 2)
                    guard (try? await Self.frames(of: bob, until: "live")) != nil else { return }
                    latencies.withLockedValue { $0.append(ContinuousClock.now - sent) }
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            for _ in 0..<10 {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<40 {
                        group.addTask {
                            let tab = try await TestWebSocket.connect(port: port, headers: [("Cookie", "sid=alice")])
                            try await withTeardown({ await tab.close() }) {
                                try await tab.send("Client/authentication", ["last_id": 0])
                                let frames = try await Self.frames(of: tab, until: "Client/recovery")
                                #expect(frames.count == 1, "only the authentication: \(frames.count) frames")
                            }
                        }
                    }
                    for try await _ in group {}
                }
            }
            live.cancel()
            await live.value
            let after = try ServerProcess.memory(of: pid)
            let grown = (after.peak - before.peak) / 1024
            let sorted = latencies.withLockedValue { $0 }.sorted()
            let p99 = sorted.isEmpty ? .zero : sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
            let median = sorted.isEmpty ? .zero : sorted[sorted.count / 2]
            print(
                "replay storm: peak RSS \(before.peak / 1024) -> \(after.peak / 1024) MiB (+\(grown)), now \(after.now / 1024) MiB; live sends: \(sorted.count), median \(median), p99 \(p99)"
            )
            #expect(grown < 64, "the server's peak memory grew by \(grown) MiB")
            #expect(sorted.count > 10)
        }
    }

    /// The routing keys `websockets_send` stores are those the servers store (SendSelection.routingKeys), or none
    /// where SQL cannot be sure (the row is then decided on its target); a command is stored with send_to 0.
    @Test func websocketsSendRoutesAsTheServersDo() async throws {
        let cluster = try await Cluster.start(1)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let targets: [(SendTo, String)] = [
                (.specificUsers, "42"), (.specificUsers, "42.0"), (.specificUsers, #""42""#), (.specificUsers, "4.2e1"),
                (.specificUsers, "[1, 2.0, \"3\"]"), (.usersGroup, "[10, 10]"), (.sessions, #""s-1""#),
                (.connections, #"["c1", "c2"]"#), (.specificUsers, "1.5"), (.specificUsers, "[[1]]"),
                (.specificUsers, "true"), (.specificUsers, "123456789012345678901"), (.specificUsers, "-0"),
            ]
            for (sendTo, target) in targets {
                let id = try await cluster.postgres.psql(
                    "SELECT websockets_send('r', null, \(sendTo.rawValue), '\(target)')")
                let stored = try await cluster.postgres.psql(
                    "SELECT coalesce(array_to_json(routing)::text, 'none') FROM websockets_messages WHERE id = \(id)")
                let expected = SendSelection(sendTo, target: try JSON(parsing: Array(target.utf8))).routingKeys ?? []
                if stored != "none" {
                    let keys = try JSON(parsing: Array(stored.utf8)).arrayValue?.compactMap(\.stringValue) ?? []
                    // A set: a repeated id selects the same connections.
                    #expect(Set(keys) == Set(expected), "send_to \(sendTo.rawValue) \(target)")
                }
            }
            #expect(
                try await cluster.postgres.psql(
                    "SELECT count(*) FROM websockets_messages WHERE routing IS NULL AND send_to = 3") == "4")
            let command = try await cluster.postgres.psql("SELECT websockets_send('Server/close_by_user', '1', 3)")
            #expect(
                try await cluster.postgres.psql("SELECT send_to FROM websockets_messages WHERE id = \(command)") == "0")
        }
    }

    /// Issue 22, row 5: a server (`websockets start`) with 300 tabs, each its own user, whose site goes quiet (every
    /// call lasts its whole `site_timeout`); the tabs leave, and at the same moment it gets SIGTERM, the other server
    /// stops and PostgreSQL stops. Three times: the process ends by itself (status 0) within its bound
    /// (`site_timeout` + 17 s), and the events the site could not take are logged once, with their count. On 226b087 it waited
    /// for every disconnection and presence event in turn, each for the whole timeout.
    @Test func aStopAlwaysEnds() async throws {
        let postgres = try await PostgresServer.start()
        defer { postgres.shutdown() }
        let site = try await TestSite.start()
        try await withTeardown({ await site.shutdown() }) {
            let quiet = try HangingListener()
            defer { quiet.close() }
            let tabs = 300
            for user in 0..<tabs { site.addSession("user-\(user)", user: Int64(1000 + user)) }
            for round in 1...3 {
                let other = try await Cluster.server(site: site, postgres: postgres) { $0.siteTimeout = 1 }
                let port = try ServerProcess.freePort()
                let process = try ServerProcess(
                    [
                        "start", site.url, "--listen-port", "\(port)", "--postgres", postgres.url, "--security-key",
                        site.key, "--message-endpoint", quiet.url + "/message", "--site-timeout", "1",
                    ], directory: try ServerProcess.temporaryDirectory(), captureErrors: true)
                defer { process.stop() }
                let ended = Task { await process.finish(within: .seconds(90)) }
                try await eventually(timeout: .seconds(20), "the server process joins the pool") {
                    (try? await postgres.psql("SELECT count(*) FROM websockets_pool")) == "2"
                }
                var sockets: [TestWebSocket] = []
                for user in 0..<tabs {
                    sockets.append(try await TestWebSocket.authenticated(port: port, sid: "user-\(user)"))
                }
                for number in 0..<20 { other.sendToClients("n", .int(Int64(number)), .all) }
                for socket in sockets { await socket.close() }
                // Everything goes at once.
                let start = ContinuousClock.now
                kill(process.process.processIdentifier, SIGTERM)
                async let otherStopped: Void = other.shutdown()
                async let databaseStopped: Void? = try? postgres.stop()
                let (status, output) = await ended.value
                let elapsed = ContinuousClock.now - start
                _ = await (otherStopped, databaseStopped)
                #expect(status == 0, "round \(round): exit status \(status) after \(elapsed)")
                #expect(
                    elapsed < WebSocketsServer.stopBound(siteTimeout: 1), "round \(round): the stop took \(elapsed)")
                // While it runs, each event the site fails to take is a warning; from the stop on, one line counts them.
                let stopping = output.split(separator: "\n").drop { !$0.contains("shutting down") }
                print("round \(round): stopped in \(elapsed), status \(status)")
                if elapsed > .seconds(10) { print(stopping.joined(separator: "\n")) }
                let failures = stopping.filter { $0.contains("message endpoint failed") }
                #expect(failures.count <= 1, "round \(round): \(failures.count) lines for the site's failures")
                #expect(output.contains("events the site did not take"), "round \(round)")
                try await postgres.start()
                try await postgres.psql("DELETE FROM websockets_pool")
            }
        }
    }
}
