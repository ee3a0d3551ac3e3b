import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// Several servers on one real PostgreSQL.
@Suite(.serialized) struct ClusterTests {
    struct Cluster {
        let postgres: PostgresServer
        let site: TestSite
        let servers: [WebSocketsServer]

        static func start(_ count: Int, adjust: (inout Settings) -> Void = { _ in }) async throws -> Cluster {
            let postgres = try await PostgresServer.start()
            let site = try await TestSite.start()
            var servers: [WebSocketsServer] = []
            do {
                for _ in 0..<count {
                    servers.append(try await Cluster.server(site: site, postgres: postgres, adjust: adjust))
                }
            } catch {
                // The caller's teardown never sees a cluster that did not start: what did start is stopped here (a
                // server that could not connect in time once left its PostgreSQL running after the suite).
                for server in servers { await server.shutdown() }
                await site.shutdown()
                postgres.shutdown()
                throw error
            }
            return Cluster(postgres: postgres, site: site, servers: servers)
        }

        static func server(
            site: TestSite, postgres: PostgresServer, port: Int = 0, adjust: (inout Settings) -> Void = { _ in }
        ) async throws -> WebSocketsServer {
            var settings = Harness.settings(for: site)
            settings.listenPort = port
            settings.postgres = postgres.url
            adjust(&settings)
            let server = WebSocketsServer(settings: settings)
            try await server.start()
            return server
        }

        func connect(_ sid: String, to index: Int) async throws -> TestWebSocket {
            let socket = try await TestWebSocket.authenticated(port: servers[index].port, sid: sid)
            let recovery = try await socket.nextMessage()
            guard recovery.action == "Client/recovery" else {
                throw TestWebSocket.Failure(description: "expected Client/recovery, got \(recovery)")
            }
            return socket
        }

        func post(_ body: String, to index: Int) async throws -> Int {
            let client = CurlClient(maximumConcurrency: 1)
            let result = await client.perform(
                HTTPClientRequest(
                    method: "POST", url: "http://127.0.0.1:\(servers[index].port)/WebSockets/send",
                    headers: [("X-WebSockets-Key", site.key)], body: Array(body.utf8), timeout: .seconds(10)))
            await client.shutdown()
            return try result.get().status
        }

        /// One more server of the cluster, as a process of its own (to be killed), once it is in the pool.
        func serverProcess(extra: [String] = []) async throws -> (ServerProcess, port: Int) {
            let port = try ServerProcess.freePort()
            let process = try ServerProcess(
                [
                    "start", site.url, "--listen-port", "\(port)", "--postgres", postgres.url, "--security-key",
                    site.key,
                ] + extra, directory: try ServerProcess.temporaryDirectory())
            let expected = String(servers.count + 1)
            do {
                try await eventually(timeout: .seconds(20), "the server process joins the pool") {
                    (try? await postgres.psql("SELECT count(*) FROM websockets_pool")) == expected
                }
            } catch {
                process.stop()
                throw error
            }
            return (process, port)
        }

        func stopServers() async {
            for server in servers { await server.shutdown() }
            await site.shutdown()
        }
    }

    @Test func sendsOnEachServerReachTabsOnTheOthers() async throws {
        let cluster = try await Cluster.start(3)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let aliceOnA = try await cluster.connect("alice", to: 0)
            let aliceOnB = try await cluster.connect("alice2", to: 1)
            let bobOnC = try await cluster.connect("bob", to: 2)
            for index in 0..<3 {
                #expect(try await cluster.post(#"["from", \#(index), 3, 1]"#, to: index) == 202)
                for socket in [aliceOnA, aliceOnB] {
                    let frame = try JSON(parsing: try await socket.nextText())
                    #expect(frame.arrayValue?.prefix(2) == ["from", .int(Int64(index))])
                    #expect(frame.arrayValue?.count == 3, "the frame carries its id")
                }
            }
            try await bobOnC.expectNoMessage()
            // Groups and in-process sends cross servers too; a browser's message answered by the site reaches all.
            cluster.servers[2].sendToClients("group", "g2", .usersGroup, 2)
            #expect(try await bobOnC.nextMessage() == Message(action: "group", details: "g2"))
            try await aliceOnB.send("broadcast", "everyone")
            for socket in [aliceOnA, aliceOnB, bobOnC] {
                #expect(try await socket.nextMessage() == Message(action: "broadcast", details: "everyone"))
            }
            // Logging a user out closes their tabs on every server.
            cluster.servers[2].sendToClients("Server/close_by_user", 1, .all)
            for socket in [aliceOnA, aliceOnB] {
                #expect(try await socket.nextClose().before.last == Message(action: "Server/close"))
            }
            try await bobOnC.expectNoMessage()
            // Every server is in the pool, and leaves it on shutdown.
            #expect(try await cluster.postgres.psql("SELECT count(*) FROM websockets_pool") == "3")
            await cluster.servers[1].shutdown()
            #expect(try await cluster.postgres.psql("SELECT count(*) FROM websockets_pool") == "2")
        }
    }

    /// Issue 29: a publisher's pipelined sends in a cluster share PostgreSQL's writes, and their answers keep their
    /// order. Before, each waited for the answer to the one before it: 8 writes for 8 sends, one round trip each
    /// (8 in flight were answered in 6.1 ms at p50, 1,100 sends/s on loopback).
    @Test func pipelinedSendsShareTheirWritesAndAreAnsweredInOrder() async throws {
        let cluster = try await Cluster.start(2)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let alice = try await cluster.connect("alice", to: 1)
            let publisher = try await RawSocket.connect(port: cluster.servers[0].port)
            try await withTeardown({ await publisher.close() }) {
                func writes() async throws -> Int {
                    let client = CurlClient(maximumConcurrency: 1)
                    let result = await client.perform(
                        HTTPClientRequest(
                            method: "GET", url: "http://127.0.0.1:\(cluster.servers[0].port)/metrics", headers: [],
                            body: nil, timeout: .seconds(10)))
                    await client.shutdown()
                    let metrics = String(decoding: try result.get().body, as: UTF8.self)
                    let line = metrics.split(separator: "\n").first { $0.hasPrefix("websockets_cluster_writes_total ") }
                    return Int(line?.split(separator: " ").last ?? "0") ?? 0
                }
                func request(_ body: String) -> String {
                    "POST /WebSockets/send HTTP/1.1\r\nHost: 127.0.0.1\r\nX-WebSockets-Key: \(cluster.site.key)\r\n"
                        + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
                }
                // A first request makes the connection read more at once (it starts at 128 bytes, as a browser's).
                try await publisher.write(Array(request(#"["p", 0, 3, 2]"#).utf8))
                try await eventually("the first answer") {
                    String(decoding: publisher.received, as: UTF8.self).contains("HTTP/1.1 202")
                }
                let before = try await writes()
                var requests = ""
                for number in 0..<9 {
                    // Request 4 is malformed: its 400 comes in its place, and the sends behind it still go.
                    requests += request(number == 4 ? "[" : #"["p\#(number)", \#(number), 3, 1]"#)
                }
                try await publisher.write(Array(requests.utf8))
                try await eventually("nine answers") {
                    String(decoding: publisher.received, as: UTF8.self).components(separatedBy: "HTTP/1.1 ").count == 11
                }
                let statuses = String(decoding: publisher.received, as: UTF8.self).components(separatedBy: "HTTP/1.1 ")
                    .dropFirst(2).map { String($0.prefix(3)) }
                #expect(statuses == ["202", "202", "202", "202", "400", "202", "202", "202", "202"])
                var actions: [String] = []
                for _ in 0..<8 { actions.append(try await alice.nextMessage().action) }
                #expect(actions == ["p0", "p1", "p2", "p3", "p5", "p6", "p7", "p8"])
                // The first send may be written alone, while the others are still being read; the rest share.
                let written = try await writes() - before
                #expect(written >= 1 && written <= 3, "8 sends in \(written) writes")
            }
        }
    }

    /// Issue 29: the reader's query reads by index whatever PostgreSQL's statistics say. With statistics taken while
    /// the table was empty and thousands of rows since (a new cluster's first minutes: autovacuum had not analyzed
    /// it yet), the query before planned a walk of the whole index and a hash of the whole table at every read: a
    /// send reached the other server in 2.2 ms, then 4.3, 6.7 and 7.5 as the table grew.
    @Test func theReaderNeverScansTheMessagesTable() async throws {
        let postgres = try await PostgresServer.start(settings: [
            "session_preload_libraries": "auto_explain", "auto_explain.log_min_duration": "0",
        ])
        defer { postgres.shutdown() }
        let site = try await TestSite.start()
        let server = try await Cluster.server(site: site, postgres: postgres)
        try await withTeardown({
            await server.shutdown()
            await site.shutdown()
        }) {
            _ = try await postgres.psql("ALTER TABLE websockets_messages SET (autovacuum_enabled = false)")
            _ = try await postgres.psql("ANALYZE websockets_messages")
            _ = try await postgres.psql(
                #"INSERT INTO websockets_messages (payload) SELECT '["old", null, 3, 99]' FROM generate_series(1, 5000)"#
            )
            // Only the reads planned once the rows are there count. A read between the ANALYZE and the INSERT (the
            // reader's poll, or alice's recovery) sees a table with no pages and rightly scans it: CI once failed on
            // such a plan (`id > '0'`, cost 0.00). It takes 0.02 ms, so none spans the INSERT and ends after this mark.
            let mark = postgres.log.utf8.count
            let alice = try await TestWebSocket.authenticated(port: server.port, sid: "alice")
            #expect(try await alice.nextMessage().action == "Client/recovery")
            for number in 0..<5 {
                server.sendToClients("new", .int(Int64(number)), .specificUsers, 1)
                #expect(try await alice.nextMessage() == Message(action: "new", details: .int(Int64(number))))
            }
            // auto_explain logs each statement's plan: none of the reader's may read the table whole.
            let reads = String(decoding: postgres.log.utf8.dropFirst(mark), as: UTF8.self).components(
                separatedBy: "LOG:  duration:"
            ).filter {
                $0.contains("WITH batch AS")
            }
            #expect(!reads.isEmpty)
            #expect(reads.filter { $0.contains("Seq Scan on websockets_messages") }.isEmpty)
            #expect(reads.filter { $0.contains("Filter: ((id >") }.isEmpty, "a walk of the whole index")
        }
    }

    @Test func aSendInsideARolledBackTransactionReachesNoOne() async throws {
        let cluster = try await Cluster.start(2)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let alice = try await cluster.connect("alice", to: 0)
            let bob = try await cluster.connect("bob", to: 1)
            try await cluster.postgres.psql(#"BEGIN; SELECT websockets_send('tx', '"rolled back"', 1); ROLLBACK;"#)
            try await alice.expectNoMessage(within: .milliseconds(1500))
            try await bob.expectNoMessage(within: .milliseconds(100))
            try await cluster.postgres.psql(#"BEGIN; SELECT websockets_send('tx', '"committed"', 3, '2'); COMMIT;"#)
            #expect(try await bob.nextMessage() == Message(action: "tx", details: "committed"))
            try await alice.expectNoMessage()
        }
    }

    @Test func aHundredKilobytePayloadCrossesServers() async throws {
        let cluster = try await Cluster.start(2)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let bob = try await cluster.connect("bob", to: 1)
            let big = String(repeating: "0123456789abcdef", count: 6400)
            cluster.servers[0].sendToClients("big", .string(big), .specificUsers, 2)
            let message = try await bob.nextMessage()
            #expect(message.details.stringValue == big)
        }
    }

    @Test func aPostgresRestartMidStreamLosesNothing() async throws {
        let cluster = try await Cluster.start(2)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let alice = try await cluster.connect("alice", to: 0)
            let bob = try await cluster.connect("bob", to: 1)
            for number in 1...45 {
                if number == 16 { try await cluster.postgres.stop() }
                if number == 31 { try await cluster.postgres.start() }
                #expect(try await cluster.post(#"["n", \#(number), 1]"#, to: 0) == 202)
                try await Task.sleep(for: .milliseconds(20))
            }
            for socket in [alice, bob] {
                var seen: [Int64] = []
                while seen.count < 45 {
                    let message = try await socket.nextMessage(timeout: .seconds(20))
                    if message.action == "n", let number = message.details.intValue { seen.append(number) }
                }
                #expect(seen.sorted() == Array(1...45), "every send arrives once")
                try await socket.expectNoMessage(within: .milliseconds(300))
            }
        }
    }

    /// Issue 12, point 7: the first send after PostgreSQL stops reaches this server's tabs at once; it waited for
    /// the 2 s query timeout before.
    @Test func aSendRightAfterPostgresStopsReachesThisServersTabsAtOnce() async throws {
        let cluster = try await Cluster.start(1)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let alice = try await cluster.connect("alice", to: 0)
            // A server running for a while: its LISTEN connection is up. Under the whole suite's load it once was
            // not yet when PostgreSQL stopped, and a LISTEN never made is never lost (the flag starts up).
            try await eventually("the server listens") {
                try await cluster.postgres.psql(
                    #"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN "websockets"%'"#) != "0"
            }
            try await cluster.postgres.stop()
            // The LISTEN connection's loss is how the server learns it.
            let bus = try #require(cluster.servers[0].bus as? PostgresBus)
            try await eventually("the server notices PostgreSQL is gone") { !bus.isListening }
            cluster.servers[0].sendToClients("during", 1, .specificUsers, 1)
            #expect(try await alice.nextMessage(timeout: .seconds(1)) == Message(action: "during", details: 1))
        }
    }

    @Test func clientsOfAKilledServerRecoverThroughAnother() async throws {
        let cluster = try await Cluster.start(1)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let (doomed, port) = try await cluster.serverProcess()
            defer { doomed.stop() }
            let alice = try await TestWebSocket.authenticated(port: port, sid: "alice")
            _ = try await alice.nextMessage()
            cluster.servers[0].sendToClients("before", 1, .specificUsers, 1)
            let seen = try JSON(parsing: try await alice.nextText())
            let lastID = try #require(seen.arrayValue?[2].intValue)

            kill(doomed.process.processIdentifier, SIGKILL)
            await doomed.process.exited()
            for (index, action) in ["missed-1", "other-user", "missed-2"].enumerated() {
                cluster.servers[0].sendToClients(
                    action, .int(Int64(index)), .specificUsers, action == "other-user" ? 2 : 1)
            }
            // Written and read back by the server the tab comes back to.
            try await eventually("the sends are applied") { cluster.servers[0].bus.head >= lastID + 3 }
            // Back through the other server, saying what it saw last: the missed messages come first, in order.
            let back = try await TestWebSocket.connect(
                port: cluster.servers[0].port, headers: [("Cookie", "sid=alice")])
            try await back.send("Client/authentication", ["last_id": .int(lastID)])
            #expect(try await back.nextMessage() == Message(action: "Client/authentication", details: "ok"))
            #expect(try await back.nextMessage().action == "missed-1")
            #expect(try await back.nextMessage().action == "missed-2")
            let recovery = try await back.nextMessage()
            #expect(recovery.action == "Client/recovery")
            #expect(recovery.details["recovered"] == 2)
            #expect(recovery.details["complete"] == true)
            cluster.servers[0].sendToClients("live", nil, .specificUsers, 1)
            #expect(try await back.nextMessage().action == "live")

            // Beyond the retention window the browser is told that recovery is incomplete.
            try await cluster.postgres.psql("DELETE FROM websockets_messages")
            let late = try await TestWebSocket.connect(
                port: cluster.servers[0].port, headers: [("Cookie", "sid=alice")])
            try await late.send("Client/authentication", ["last_id": .int(lastID)])
            _ = try await late.nextMessage()
            let incomplete = try await late.nextMessage()
            #expect(incomplete.action == "Client/recovery")
            #expect(incomplete.details["complete"] == false)
        }
    }

    /// Issue 12, point 7: three servers, one SIGKILLed under a mixed stream of sends; its tabs reconnect to the
    /// others with their `last_id`, as the browser client does. Every tab gets every send meant for it exactly once,
    /// in id order, and nothing live before its replay.
    @Test func aFailoverUnderAMixedStreamLosesNothingAndRepeatsNothing() async throws {
        let cluster = try await Cluster.start(2)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let (doomed, doomedPort) = try await cluster.serverProcess()
            defer { doomed.stop() }
            let ports = [cluster.servers[0].port, cluster.servers[1].port, doomedPort]
            let sids = ["alice", "bob", "carol"]
            // The killed server's tabs come back on the two others, alternately.
            let tabs = (0..<30).map { index in
                FailoverTab(sid: sids[index % sids.count], port: ports[index % 3], fallback: ports[(index / 3) % 2])
            }
            let runs = tabs.map { tab in Task { await tab.run() } }
            try await eventually(timeout: .seconds(20), "every tab authenticated") { tabs.allSatisfy(\.isRecovered) }
            // 300 sends from one server (one id sequence in commit order): to everyone, to user 1, to group 2.
            let total = 300
            for k in 0..<total {
                if k == 100 {
                    kill(doomed.process.processIdentifier, SIGKILL)
                }
                let send: Send
                switch k % 3 {
                case 0: send = Send(action: "s", details: .int(Int64(k)), sendTo: .all)
                case 1: send = Send(action: "s", details: .int(Int64(k)), sendTo: .specificUsers, target: [1])
                default: send = Send(action: "s", details: .int(Int64(k)), sendTo: .usersGroup, target: 2)
                }
                await cluster.servers[0].perform([send])
                try await Task.sleep(for: .milliseconds(4))
            }
            await cluster.servers[0].perform([Send(action: "end", sendTo: .all)])
            try await eventually(timeout: .seconds(30), "every tab got the end") { tabs.allSatisfy(\.ended) }
            for tab in tabs { tab.stop() }
            for run in runs { await run.value }
            await doomed.process.exited()
            for tab in tabs {
                let expected = (0..<total).filter { k in
                    switch k % 3 {
                    case 0: return true
                    case 1: return tab.sid == "alice"
                    default: return tab.sid != "alice"
                    }
                }
                let (ids, details, liveBeforeReplay) = tab.received
                #expect(Set(ids).count == ids.count, "\(tab.sid) on \(tab.port): a message twice")
                #expect(ids == ids.sorted(), "\(tab.sid) on \(tab.port): out of id order")
                #expect(
                    details.sorted() == expected, "\(tab.sid) on \(tab.port): \(expected.count - details.count) missing"
                )
                #expect(liveBeforeReplay == 0, "\(tab.sid) on \(tab.port): live messages before its replay")
            }
            #expect(tabs.contains { $0.reconnections > 0 })
        }
    }

    /// In a cluster a connection holds live messages until its replay: one that never authenticates cannot make
    /// the server keep broadcasts for it beyond `max_outbound_buffer`.
    @Test func messagesHeldBeforeAuthenticationAreBounded() async throws {
        let cluster = try await Cluster.start(1) {
            $0.maxOutboundBuffer = 16384
            $0.authenticationTimeout = 60
        }
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let silent = try await TestWebSocket.connect(port: cluster.servers[0].port)
            let alice = try await cluster.connect("alice", to: 0)
            let payload = JSON.string(String(repeating: "z", count: 1000))
            // One at a time, each read by alice: she is a fast reader; the silent one holds 1 KB more each time.
            for _ in 0..<30 {
                cluster.servers[0].sendToClients("big", payload, .all)
                #expect(try await alice.nextMessage().action == "big")
            }
            let close = try await silent.nextClose()
            #expect(close.code == 1013)
            let metrics = String(decoding: cluster.servers[0].metrics.render(), as: UTF8.self)
            #expect(metrics.contains(#"websockets_dropped_total{reason="replay_overflow"}"#))
        }
    }

    /// Issue 12, point 4: details reach the browser byte for byte through every way in of a cluster.
    @Test func detailsPassThroughEveryWayInAsWritten() async throws {
        let cluster = try await Cluster.start(1) { $0.siteTimeout = 15 }
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let details = TestSite.verbatimDetails
            let alice = try await cluster.connect("alice", to: 0)
            func expectVerbatim(_ action: String) async throws {
                let text = try await alice.nextText(timeout: .seconds(15))
                #expect(text.hasPrefix("[\"\(action)\",\(details),") && text.hasSuffix("]"), "\(text)")
            }
            // HTTP.
            #expect(try await cluster.post(#"["http","# + details + ",1]", to: 0) == 202)
            try await expectVerbatim("http")
            // The seed's internal message over a WebSocket.
            let port = cluster.servers[0].port
            let seed = try await TestWebSocket.connect(port: port)
            try await seed.send(
                text: #"["Application/Internal:"# + cluster.site.key + #"",["internal","# + details + ",3,1]]")
            try await expectVerbatim("internal")
            // The site's answer to a browser's message, and the browser's details as the site got them.
            try await alice.send(text: #"["verbatim","# + details + "]")
            try await expectVerbatim("verbatim")
            // Found by its action: the user's `User/online`, told by PostgreSQL, may reach the site after it.
            let bodies = cluster.site.state.withLockedValue { $0.messageBodies }
            #expect(bodies.contains { $0.contains(#""action":"verbatim""#) && $0.contains(#""details":"# + details) })
            // The command line.
            let sent = try await ServerProcess.run(
                [
                    "send", "cli", details, "--to", "all", "--postgres", cluster.postgres.url, "--security-key",
                    cluster.site.key, "--listen-port", "1",
                ], directory: try ServerProcess.temporaryDirectory())
            #expect(sent.status == 0)
            try await expectVerbatim("cli")
            // SQL.
            _ = try await cluster.postgres.psql("SELECT websockets_send('sql', '\(details)', 3, '1')")
            try await expectVerbatim("sql")
        }
    }

    @Test func theCommandLineFindsALiveServerInThePool() async throws {
        let cluster = try await Cluster.start(1)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let bob = try await cluster.connect("bob", to: 0)
            let directory = try ServerProcess.temporaryDirectory()
            // No listen_port here: the address comes from the pool.
            let sent = try await ServerProcess.run(
                [
                    "send", "pooled", #""hi""#, "--to", "users", "--target", "2", "--postgres", cluster.postgres.url,
                    "--security-key", cluster.site.key, "--listen-port", "1",
                ], directory: directory)
            #expect(sent.status == 0)
            #expect(try await bob.nextMessage() == Message(action: "pooled", details: "hi"))
        }
    }

    @Test func aBrowserTabFailsOverToAnotherServerWithNothingMissing() async throws {
        let cluster = try await Cluster.start(1)
        defer { cluster.postgres.shutdown() }
        try await withTeardown({ await cluster.stopServers() }) {
            let (doomed, port) = try await cluster.serverProcess()
            defer { doomed.stop() }
            let survivor = cluster.servers[0]
            let browser = try await Chromium.launch()
            defer { browser.kill() }
            let urls = "ws://127.0.0.1:\(port)/WebSockets,ws://127.0.0.1:\(survivor.port)/WebSockets"
            let page = try await browser.open(
                "\(cluster.site.url)/page?server=\(survivor.port)&sid=alice&urls=\(urls)",
                in: try await browser.newContext())
            try await page.evaluate(
                "window.got = []; window.recoveries = []; cs.WebSockets.on('n', (n) => got.push(n)).on('Client/recovery', (r) => recoveries.push(r)); true"
            )
            // The first Client/recovery (on load) tells the page where the stream stands.
            try await page.waitFor("cs.WebSockets.state === 'online' && cs.WebSockets.lastId !== null")
            #expect(survivor.hub.counts.connections == 0, "the tab is on the server that will die")
            survivor.sendToClients("n", 1, .specificUsers, 1)
            try await page.waitFor("got.length === 1")

            kill(doomed.process.processIdentifier, SIGKILL)
            for number in 2...4 { survivor.sendToClients("n", .int(Int64(number)), .specificUsers, 1) }
            try await page.waitFor("cs.WebSockets.state === 'online' && recoveries.length === 1", timeout: .seconds(20))
            survivor.sendToClients("n", 5, .specificUsers, 1)
            // One more after it: a repeat of any would come before the last (a tab's messages are in order).
            survivor.sendToClients("n", 6, .specificUsers, 1)
            try await page.waitFor("got.includes(6)")
            #expect(try await page.evaluate("got") == [1, 2, 3, 4, 5, 6])
            #expect(try await page.evaluate("recoveries[0].complete") == true)
            #expect(survivor.hub.counts.connections == 1)
        }
    }
}

/// A browser tab of the failover test: reconnects to `fallback` with the last id it saw when its server dies, as
/// the browser client does (but without the client's own duplicate filter, so that the server's guarantee shows).
final class FailoverTab: Sendable {
    let sid: String
    let port: Int
    let fallback: Int
    private struct State {
        var ids: [Int64] = []
        var details: [Int] = []
        var recovered = false
        var ended = false
        var stopped = false
        var reconnections = 0
        var liveBeforeReplay = 0
    }
    private let state = NIOLockedValueBox(State())

    init(sid: String, port: Int, fallback: Int) {
        self.sid = sid
        self.port = port
        self.fallback = fallback
    }

    var isRecovered: Bool { state.withLockedValue { $0.recovered } }
    var ended: Bool { state.withLockedValue { $0.ended } }
    var reconnections: Int { state.withLockedValue { $0.reconnections } }
    var received: (ids: [Int64], details: [Int], liveBeforeReplay: Int) {
        state.withLockedValue { ($0.ids, $0.details, $0.liveBeforeReplay) }
    }

    func stop() { state.withLockedValue { $0.stopped = true } }

    func run() async {
        var target = port
        while !state.withLockedValue({ $0.stopped }) {
            do {
                let socket = try await TestWebSocket.connect(port: target, headers: [("Cookie", "sid=\(sid)")])
                let lastID = state.withLockedValue { $0.ids.last }
                try await socket.send("Client/authentication", lastID.map { ["last_id": .int($0)] } ?? nil)
                // Before Client/recovery only the replay may arrive: ids up to the recovery's last_id.
                var beforeRecovery: [Int64] = []
                var replayDone = false
                reading: while !state.withLockedValue({ $0.stopped }) {
                    let event: TestWebSocket.Event
                    do {
                        event = try await socket.next(timeout: .milliseconds(200))
                    } catch {
                        continue
                    }
                    switch event {
                    case .text(let text):
                        guard let frame = try? JSON(parsing: text), let action = frame.arrayValue?.first?.stringValue
                        else { continue }
                        switch action {
                        case "Client/recovery":
                            replayDone = true
                            let head = frame.arrayValue?[1]["last_id"]?.intValue ?? 0
                            state.withLockedValue { state in
                                state.recovered = true
                                state.liveBeforeReplay += beforeRecovery.filter { $0 > head }.count
                            }
                        case "end":
                            state.withLockedValue { $0.ended = true }
                        case "s":
                            let id = frame.arrayValue?[2].intValue ?? -1
                            let k = Int(frame.arrayValue?[1].intValue ?? -1)
                            if !replayDone { beforeRecovery.append(id) }
                            state.withLockedValue { state in
                                state.ids.append(id)
                                state.details.append(k)
                            }
                        default: break
                        }
                    case .ping: continue
                    case .close, .ended: break reading
                    }
                }
                await socket.close()
            } catch {
                try? await Task.sleep(for: .milliseconds(50))
            }
            if state.withLockedValue({ $0.stopped }) { break }
            // The server went away: back on the other one (after a moment, as the client's backoff does).
            target = fallback
            state.withLockedValue { $0.reconnections += 1 }
            try? await Task.sleep(for: .milliseconds(Int.random(in: 20...200)))
        }
    }
}
