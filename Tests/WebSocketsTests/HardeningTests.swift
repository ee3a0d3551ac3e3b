import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite
@testable import WebSocketsLaunch

/// Issue 11: every resource a hostile or unlucky client can touch is bounded, and nothing leaks. One test per
/// point of the issue, each against the real server.
@Suite struct HardeningTests {
    /// A masked client frame with any header bits, for frames a browser would never send.
    static func frame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
        let mask: [UInt8] = [0x11, 0x22, 0x33, 0x44]
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        if payload.count < 126 {
            bytes.append(0x80 | UInt8(payload.count))
        } else {
            bytes.append(0x80 | 126)
            bytes += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        }
        return bytes + mask + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    }

    static func close(_ code: UInt16, _ reason: [UInt8] = []) -> [UInt8] {
        frame(0x8, [UInt8(code >> 8), UInt8(code & 0xFF)] + reason)
    }

    // 1. No leak: a closed connection's objects are released.
    @Test func aClosedConnectionsObjectsAreReleased() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            final class Watch: @unchecked Sendable {
                // Written once before the close (the handler on its loop, awaited) and read after: no concurrent access.
                weak var connection: Connection?
                weak var handler: WebSocketConnectionHandler?
            }
            let watch = Watch()
            do {
                let socket = try await harness.connect("alice")
                try await socket.send("hello", "alice")
                _ = try await socket.nextMessage()
                let connection = try #require(harness.server.hub.allConnections().first)
                watch.connection = connection
                try await connection.eventLoop.submit { watch.handler = connection.handlerOnLoop() }.get()
                await socket.close()
            }
            try await eventually { harness.server.hub.counts.connections == 0 }
            try await eventually("the site got the disconnection") {
                !harness.site.events(named: "Client/disconnection").isEmpty
            }
            try await eventually("the connection is released") { watch.connection == nil && watch.handler == nil }
        }
    }

    // 2. Pongs count against the outbound buffer, and a client that pings without reading costs next to nothing:
    // only the latest ping of a read is answered. Issue 23: 4 unauthenticated tabs that never read send 2,000,000
    // empty pings each (12 MB) to `websockets start`; the server's peak memory grows by under 64 MiB, or a tab is
    // closed as a slow reader and counted. On 226b087: +261 MiB, 2 of 4 tabs closed.
    @Test(.disabled(if: TestPatience.sanitized, TestPatience.memoryFiguresAreTheSanitizers))
    func pingFloodsThatNeverReadCostNextToNothing() async throws {
        let site = try await TestSite.start()
        try await withTeardown({ await site.shutdown() }) {
            // The tabs never authenticate: the limit outlasts the test's own bound (300 s below). At 120 s, CI's full
            // run (the floods took 129 s to send) closed them before their last message, which then never came.
            let server = try await StartedServer.start(site: site, ["--authentication-timeout", "900"])
            defer { server.kill() }
            var tabs: [TestWebSocket] = []
            for _ in 0..<4 { tabs.append(try await TestWebSocket.connect(port: server.port, autoRead: false)) }
            let before = try server.memory()
            // 10,000 empty pings per write, 200 writes per tab: 2,000,000 each.
            let burst = [UInt8]((0..<10_000).flatMap { _ in Self.frame(0x9, []) })
            try await withThrowingTaskGroup(of: Void.self) { group in
                for tab in tabs {
                    group.addTask {
                        for _ in 0..<200 {
                            do { try await tab.sendRawAndWait(burst) } catch { return }
                        }
                        // A message after the pings: once the server has read it, it has read them all.
                        try? await tab.sendRawAndWait(Self.frame(0x1, Array(#"["after", 1]"#.utf8)))
                    }
                }
                try await group.waitForAll()
            }
            // Every tab's last message read, or the tab closed.
            // 300 s: a bound on a failure only (41 s alone with a debug build, 96 s beside four other suites).
            try await eventually(timeout: .seconds(300), "the server has read every ping") {
                let read = await server.metric("websockets_messages_in_total")
                let closed = await server.metric(#"websockets_closed_total{reason="slow_reader"}"#)
                return read + closed >= 4
            }
            let after = try server.memory()
            let grown = (after.peak - before.peak) / 1024
            print("ping floods: peak RSS \(before.peak / 1024) -> \(after.peak / 1024) MiB (+\(grown))")
            #expect(grown < 64, "peak RSS grew by \(grown) MiB")
            for tab in tabs { await tab.close() }
        }
    }

    // Issue 23, found by the soak: a tab whose frames never end where the server's reads end (60 KB messages read
    // 64 KiB at a time) made the server keep every byte it had read behind the frames still incomplete: one such tab
    // held 67 MB after 10 s. 500 messages of 60 KB (30 MB) from a tab that never reads: the server's peak memory
    // grows by under 12 MiB (+57 MiB for 60 MB before).
    @Test(.disabled(if: TestPatience.sanitized, TestPatience.memoryFiguresAreTheSanitizers))
    func aTabStreamingLargeFramesHoldsAFrameNotTheStream() async throws {
        let site = try await TestSite.start()
        try await withTeardown({ await site.shutdown() }) {
            // The tab never authenticates: the limit outlasts the test (see the ping floods above).
            let server = try await StartedServer.start(site: site, ["--authentication-timeout", "900"])
            defer { server.kill() }
            let tab = try await TestWebSocket.connect(port: server.port, autoRead: false)
            let before = try server.memory()
            let message = Self.frame(
                0x1, Array(#"["big",""#.utf8) + Array(repeating: UInt8(ascii: "x"), count: 60_000) + Array(#""]"#.utf8))
            let burst = [UInt8]((0..<10).flatMap { _ in message })
            for _ in 0..<50 { try await tab.sendRawAndWait(burst) }
            try await eventually(timeout: .seconds(120), "the server has read every message") {
                await server.metric("websockets_messages_in_total") >= 500
            }
            let after = try server.memory()
            let grown = (after.peak - before.peak) / 1024
            print("30 MB of 60 KB frames: peak RSS \(before.peak / 1024) -> \(after.peak / 1024) MiB (+\(grown))")
            #expect(grown < 12, "peak RSS grew by \(grown) MiB")
            await tab.close()
        }
    }

    /// Guests of a site whose message endpoint never answers, and `websockets start` against it (with `extra`
    /// arguments): every event the server posts waits.
    struct QuietSite {
        let site: TestSite
        let listener: HangingListener
        let server: StartedServer

        static func start(_ extra: [String] = []) async throws -> QuietSite {
            let site = try await TestSite.start()
            site.state.withLockedValue { $0.guestsWithoutCookie = true }
            let listener = try HangingListener()
            do {
                let server = try await StartedServer.start(
                    site: site,
                    ["--message-endpoint", listener.url + "/api/WebSockets/message", "--site-timeout", "120"] + extra)
                return QuietSite(site: site, listener: listener, server: server)
            } catch {
                listener.close()
                await site.shutdown()
                throw error
            }
        }

        func tearDown() {
            server.kill()
            listener.close()
            Task { await site.shutdown() }
        }

        /// A new guest tab that asked to authenticate, and the server's answer.
        func guest() async throws -> (TestWebSocket, Message) {
            let tab = try await TestWebSocket.connect(port: server.port)
            try await tab.send("Client/authentication", nil)
            return (tab, try await tab.nextMessage())
        }
    }

    /// A loopback socket to `port`, non-blocking once connected.
    static func rawSocket(to port: Int) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard descriptor >= 0, connected == 0 else { throw TestWebSocket.Failure(description: "connect failed") }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        return descriptor
    }

    // Issue 23: 3 HTTP connections send 40,000 pipelined requests for the client script each (5.6 MB in all) and
    // never read. An answer the connection cannot take is held until it can, and the next request is not read
    // meanwhile: the server's peak memory grows by under 64 MiB. On 226b087: +1,468 MiB.
    @Test(.disabled(if: TestPatience.sanitized, TestPatience.memoryFiguresAreTheSanitizers))
    func pipelinedRequestsThatAreNeverReadHoldOneAnswer() async throws {
        let site = try await TestSite.start()
        try await withTeardown({ await site.shutdown() }) {
            let server = try await StartedServer.start(site: site)
            defer { server.kill() }
            let port = server.port
            let before = try server.memory()
            let request = Array("GET /WebSockets/client.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
            let requests = [UInt8]((0..<40_000).flatMap { _ in request })
            let sockets = try (0..<3).map { _ in try Self.rawSocket(to: port) }
            defer { for socket in sockets { _ = Glibc.close(socket) } }
            var sent = [Int](repeating: 0, count: 3)
            // Written as the server takes them; done when all are sent, or when none was taken for 2 s (the server
            // stopped reading: what it holds then is all it will hold).
            var lastProgress = ContinuousClock.now
            while sent.contains(where: { $0 < requests.count }), ContinuousClock.now - lastProgress < .seconds(2) {
                for (index, socket) in sockets.enumerated() where sent[index] < requests.count {
                    let written = requests.withUnsafeBytes {
                        write(socket, $0.baseAddress! + sent[index], requests.count - sent[index])
                    }
                    if written > 0 {
                        sent[index] += written
                        lastProgress = .now
                    }
                }
                try await Task.sleep(for: .milliseconds(5))
            }
            // The last requests taken are answered, or held, within moments.
            try await Task.sleep(for: .seconds(1))
            let after = try server.memory()
            let grown = (after.peak - before.peak) / 1024
            print(
                "pipelined requests: \(sent.reduce(0, +)) bytes taken; peak RSS \(before.peak / 1024) -> \(after.peak / 1024) MiB (+\(grown))"
            )
            #expect(grown < 64, "peak RSS grew by \(grown) MiB")
            // The server still serves others.
            #expect(await server.get("/WebSockets/health")?.status == 200)
        }
    }

    // Issue 23: an answer held for a client that pipelines requests and never reads waits `http_idle_timeout` to be
    // read; then the connection is closed and counted. It was held for good (the soak's pipelining attacker kept
    // its one connection for 30 minutes).
    @Test func anAnswerNeverReadIsGivenUpAfterTheIdleTimeout() async throws {
        let site = try await TestSite.start()
        try await withTeardown({ await site.shutdown() }) {
            let server = try await StartedServer.start(site: site, ["--http-idle-timeout", "1"])
            defer { server.kill() }
            let socket = try Self.rawSocket(to: server.port)
            defer { _ = Glibc.close(socket) }
            let request = Array("GET /WebSockets/client.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
            let requests = [UInt8]((0..<2_000).flatMap { _ in request })
            var sent = 0
            var closed = false
            let deadline = ContinuousClock.now + .seconds(15)
            while !closed, ContinuousClock.now < deadline {
                let written = requests.withUnsafeBytes {
                    send(
                        socket, $0.baseAddress! + sent % requests.count, requests.count - sent % requests.count,
                        Int32(MSG_NOSIGNAL))
                }
                if written > 0 {
                    sent += written
                } else if written < 0, errno != EAGAIN, errno != EWOULDBLOCK {
                    closed = true
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(closed, "the connection is still open after 15 s; \(sent) bytes sent")
            #expect(await server.metric(#"websockets_closed_total{reason="http_timeout"}"#) >= 1)
        }
    }

    // Issue 23: 50 tabs whose session check the site answers only after 10 s each send 64 messages of 60 KB of
    // nested arrays meanwhile. What waits is bounded in bytes per connection (`max_pending_bytes`, its text) and
    // server-wide for connections not authenticated yet (`max_unauthenticated_bytes`); the rest is refused (429) and
    // counted. On 226b087 every message waited with its parsed tree: +2,428 MiB here (+445 MiB in the issue's
    // release build).
    @Test(.disabled(if: TestPatience.sanitized, TestPatience.memoryFiguresAreTheSanitizers))
    func messagesWaitingForASlowSessionCheckAreBoundedInBytes() async throws {
        let site = try await TestSite.start()
        try await withTeardown({ await site.shutdown() }) {
            // `max_pending_bytes` at 64 KiB: each tab's second waiting message is refused. With the default (256 KiB,
            // the fifth) the debug server, under the suite's load, had parsed only 166 of the messages (3 a tab) when
            // the site answered after 10 s, and refused none (seen in CI and here).
            let server = try await StartedServer.start(
                site: site,
                ["--site-timeout", "30", "--authentication-timeout", "60", "--max-pending-bytes", "65536"])
            defer { server.kill() }
            let port = server.port
            let before = try server.memory()
            // Masked once: the frame is the same bytes each time.
            let big = Self.frame(
                0x1, Array((#"["big",["# + Array(repeating: "[[0]]", count: 10_000).joined(separator: ",") + "]]").utf8)
            )
            let tabs = 50
            let sending = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<tabs {
                    group.addTask {
                        // "hang": the site answers this session check after 10 s.
                        let tab = try await TestWebSocket.connect(port: port, headers: [("Cookie", "sid=hang")])
                        try await tab.send("Client/authentication", nil)
                        for _ in 0..<64 { try await tab.sendRaw(big) }
                    }
                }
                try await group.waitForAll()
            }
            print("slow session checks: sent in \(ContinuousClock.now - sending)")
            // The site answers each check after 10 s (a rejection): every tab is then closed, its waiting messages
            // discarded. The peak is what the server held on the way.
            try await eventually(timeout: .seconds(60), "every tab is closed") {
                await server.metrics().contains("\nwebsockets_connections 0")
            }
            let after = try server.memory()
            let grown = (after.peak - before.peak) / 1024
            let text = await server.metrics()
            print("slow session checks: peak RSS \(before.peak / 1024) -> \(after.peak / 1024) MiB (+\(grown))")
            // The issue's figure is under 128 MiB: measured +94 to +121 MiB here (a debug build), of which about 100 are
            // there whatever the bounds (with max_pending_bytes at 1 KiB: +103), from reading and parsing 192 MB of
            // nested arrays. The bound asserted leaves room for a loaded machine and still fails the old code by 10x.
            #expect(grown < 256, "peak RSS grew by \(grown) MiB")
            #expect(text.contains(#"websockets_refused_total{reason="pending_bytes"}"#))
        }
    }

    // Issue 23: 4 tabs without a cookie (each a guest of its own) send 64 messages of 65 KB of nested arrays each;
    // the site takes 10 s over the first, so the rest wait. What waits is their text, up to `max_pending_bytes` per
    // tab, not their parsed trees: the server's peak memory grows by under 64 MiB. On 226b087 all 64 waited with
    // their trees (+355 MiB in the issue).
    @Test(.disabled(if: TestPatience.sanitized, TestPatience.memoryFiguresAreTheSanitizers))
    func messagesWaitingForASlowSiteHoldTheirTextOnly() async throws {
        let site = try await TestSite.start()
        try await withTeardown({ await site.shutdown() }) {
            site.state.withLockedValue { $0.guestsWithoutCookie = true }
            let server = try await StartedServer.start(site: site, ["--site-timeout", "30"])
            defer { server.kill() }
            let before = try server.memory()
            let big = Self.frame(
                0x1,
                Array((#"["slow",["# + Array(repeating: "[[0]]", count: 10_800).joined(separator: ",") + "]]").utf8))
            var tabs: [TestWebSocket] = []
            for _ in 0..<4 {
                let tab = try await TestWebSocket.connect(port: server.port)
                try await tab.send("Client/authentication", nil)
                #expect(try await tab.nextMessage() == Message(action: "Client/authentication", details: "ok"))
                tabs.append(tab)
            }
            for tab in tabs {
                for _ in 0..<64 { try await tab.sendRaw(big) }
            }
            try await eventually(timeout: .seconds(60), "every message is read") {
                await server.metric("websockets_messages_in_total") >= 4 * 65
            }
            let after = try server.memory()
            let grown = (after.peak - before.peak) / 1024
            print(
                "messages waiting for a slow site: peak RSS \(before.peak / 1024) -> \(after.peak / 1024) MiB (+\(grown))"
            )
            #expect(grown < 64, "peak RSS grew by \(grown) MiB")
            #expect(await server.metric(#"websockets_refused_total{reason="pending_bytes"}"#) > 0)
            for tab in tabs { await tab.close() }
        }
    }

    // Issue 23: memory a burst used is given back once its work is done, while its connections stay open (the
    // trim after 226b087 waited for half of the connections to close). 200 tabs send 4 messages of 60 KB each:
    // about 48 MB waiting for the site and posted to it at once, then freed.
    @Test(.disabled(if: TestPatience.sanitized, TestPatience.memoryFiguresAreTheSanitizers))
    func memoryABurstUsedIsGivenBackOnceItsWorkIsDone() async throws {
        let site = try await TestSite.start()
        try await withTeardown({ await site.shutdown() }) {
            site.state.withLockedValue { $0.guestsWithoutCookie = true }
            let server = try await StartedServer.start(site: site)
            defer { server.kill() }
            // What the allocator keeps without using it, MiB.
            @Sendable func kept() async -> Int {
                let resident = await server.metric("process_resident_memory_bytes")
                return (resident - (await server.metric("websockets_heap_in_use_bytes"))) >> 20
            }
            var tabs: [TestWebSocket] = []
            for _ in 0..<200 {
                let tab = try await TestWebSocket.connect(port: server.port)
                try await tab.send("Client/authentication", nil)
                #expect(try await tab.nextMessage() == Message(action: "Client/authentication", details: "ok"))
                tabs.append(tab)
            }
            // The figures /metrics gives operators: the 200 tabs' descriptors, a heap of a few MiB at least.
            #expect(await server.metric("process_open_fds") > 200)
            #expect(await server.metric("websockets_heap_in_use_bytes") > 1 << 20)
            let before = await kept()
            let big = Self.frame(
                0x1, Array(#"["note",""#.utf8) + Array(repeating: UInt8(ascii: "x"), count: 60_000) + Array(#""]"#.utf8)
            )
            for tab in tabs {
                for _ in 0..<4 { try await tab.sendRaw(big) }
            }
            try await eventually(timeout: .seconds(60), "every message reaches the site") {
                site.events(named: "WebSockets/message").count == 800
            }
            let peak = try server.memory().peak >> 10
            try await eventually(timeout: .seconds(15), "freed memory is given back") { await kept() < before + 16 }
            print("a burst of 48 MB: peak RSS \(peak) MiB; kept free \(before) -> \(await kept()) MiB")
            // Given back by a trim, or by the allocator itself when the freed memory was at the top of its heap.
            for tab in tabs { await tab.close() }
        }
    }

    // Issue 23: events waiting for a slow site are data, not suspended work. 1,000 guest tabs authenticate against
    // a site whose message endpoint never answers: their `Client/authentication` events all wait. The server's heap
    // grows by under 6 KiB per tab, the tab itself included; each waiting event held its connection's suspended
    // drain before (release build, 19,000 tabs, a site taking 2 s an event: 17.07 KiB per tab before, 3.82 after).
    @Test(.disabled(if: TestPatience.sanitized, TestPatience.memoryFiguresAreTheSanitizers))
    func eventsWaitingForASlowSiteHoldLittle() async throws {
        let quiet = try await QuietSite.start()
        defer { quiet.tearDown() }
        let server = quiet.server
        let before = await server.metric("websockets_heap_in_use_bytes")
        var tabs: [TestWebSocket] = []
        for _ in 0..<1_000 {
            let (tab, answer) = try await quiet.guest()
            #expect(answer == Message(action: "Client/authentication", details: "ok"))
            tabs.append(tab)
        }
        let perTab = Double(await server.metric("websockets_heap_in_use_bytes") - before) / 1_000 / 1_024
        print(String(format: "1,000 tabs with their events waiting: %.2f KiB of heap each", perTab))
        #expect(perTab < 6, "\(perTab) KiB per tab")
        for tab in tabs { await tab.close() }
    }

    // Issue 23: the events waiting for the site are bounded in bytes. With room for about 100 (each counts 1,100
    // bytes) and a site that never answers, new tabs are refused authentication (503, closed 1013) once the events
    // fill it, counted; the disconnections of the tabs let in still wait their turn, past the limit, since every
    // authentication the site saw must be followed by its disconnection.
    @Test func eventsWaitingForTheSiteAreBoundedAndPairsKept() async throws {
        let quiet = try await QuietSite.start(["--max-site-backlog-bytes", "110000"])
        defer { quiet.tearDown() }
        let server = quiet.server
        var admitted: [TestWebSocket] = []
        var refused = 0
        for _ in 0..<130 {
            let (tab, answer) = try await quiet.guest()
            if answer == Message(action: "Client/authentication", details: "ok") {
                admitted.append(tab)
            } else {
                #expect(
                    answer == Message(action: "Client/authentication:error", details: [503, "Service Unavailable"]))
                refused += 1
                await tab.close()
            }
        }
        #expect(admitted.count == 100 && refused == 30, "\(admitted.count) admitted, \(refused) refused")
        #expect(await server.metric(#"websockets_refused_total{reason="site_backlog"}"#) == 30)
        for tab in admitted { await tab.close() }
        // 200 events of 1,100 bytes and their details (`null`, 4 bytes each).
        try await eventually(timeout: .seconds(10), "every disconnection waits") {
            await server.metric("websockets_site_backlog_bytes") == 200 * 1_104
        }
    }

    // 2. Messages per second, with a burst, per connection (the refill is tested on the limiter alone, in
    // LimitsTests, where time is given).
    @Test func messagesBeyondTheRateGetA429AndAreNotDispatched() async throws {
        let harness = try await Harness.start {
            $0.messageRate = 0.01
            $0.messageBurst = 10
        }
        try await withTeardown({ await harness.stop() }) {
            // The authentication was the first message of the burst: 9 more fit.
            let socket = try await harness.connect("alice")
            for index in 0..<30 { try await socket.send("note", .int(Int64(index))) }
            for _ in 0..<21 {
                #expect(
                    try await socket.nextMessage()
                        == Message(action: "note:error", details: [429, "Too Many Requests"]))
            }
            try await eventually { harness.site.events(named: "WebSockets/message").count == 9 }
            try await socket.expectNoMessage()
            #expect(harness.site.events(named: "WebSockets/message").map { $0["details"] } == (0..<9).map { .int($0) })
            let metrics = try await harness.http("GET", "/metrics").body
            #expect(metrics.contains(#"websockets_refused_total{reason="rate"} 21"#))
            await socket.close()
        }
    }

    // 2. Messages waiting for the site are capped, and a closed connection's are discarded, never posted after
    // its disconnection.
    @Test func waitingMessagesAreCappedAndDiscardedAtTheClose() async throws {
        // The site takes 10 s for "slow" and the server gives up after 8: the first is in flight, four wait, the rest
        // are refused. (With the harness's 3 s, a loaded machine once took longer than that to close the socket,
        // and the second message was posted before the close.) Times the tests' patience: under ThreadSanitizer with
        // both cores busy the session request took over 8 s; the in-flight message then ends at 10 s, the close after.
        let harness = try await Harness.start {
            $0.maxPendingMessages = 4
            $0.siteTimeout = 8 * TestPatience.factor
        }
        try await withTeardown({ await harness.stop() }) {
            let socket = try await harness.connect("alice")
            try await socket.send("slow", nil)
            try await eventually { harness.site.events(named: "WebSockets/message").count == 1 }
            for _ in 0..<9 { try await socket.send("slow", nil) }
            for _ in 0..<5 {
                #expect(
                    try await socket.nextMessage()
                        == Message(action: "slow:error", details: [429, "Too Many Requests"]))
            }
            await socket.close()
            try await eventually(timeout: .seconds(15), "the disconnection is posted") {
                !harness.site.events(named: "Client/disconnection").isEmpty
            }
            let events = harness.site.events.map { $0["event"]?.stringValue ?? "" }
            #expect(events.filter { $0 == "WebSockets/message" }.count == 1)
            #expect(events.last == "Client/disconnection")
            let metrics = try await harness.http("GET", "/metrics").body
            #expect(metrics.contains(#"websockets_refused_total{reason="pending"} 5"#))
            #expect(metrics.contains(#"websockets_dropped_total{reason="closed"} 4"#))
        }
    }

    // 3. HTTP: idle and slow requests are timed out, a send with a wrong key is refused from its head.
    @Test func idleAndSlowHTTPConnectionsAreClosed() async throws {
        // Margins wide enough for a loaded CI machine: with an idle timeout of 0.5 s, the whole suite's start once
        // delayed the test's first write past it and the keep-alive socket was closed before its request.
        let harness = try await Harness.start {
            $0.httpIdleTimeout = 1.5
            $0.httpRequestTimeout = 2
        }
        try await withTeardown({ await harness.stop() }) {
            let idle = try await RawSocket.connect(port: harness.port)
            let slow = try await RawSocket.connect(port: harness.port)
            for byte in "GET /WebSockets/health HTTP/1.1\r\nHost: x\r\n".utf8 {
                if slow.isClosed { break }
                try? await slow.write([byte])
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(await idle.waitForClose(timeout: .seconds(6)))
            #expect(await slow.waitForClose(timeout: .seconds(6)))
            // A keep-alive connection that answered is closed once idle too. Its request must arrive within the idle
            // timeout of the connection's accept, which a loaded machine may not manage (in CI the request came
            // after the close): a connection closed before its answer is counted and tried again.
            var attempts = 0
            var answered = false
            while !answered && attempts < 5 {
                attempts += 1
                let kept = try await RawSocket.connect(port: harness.port)
                try? await kept.write(Array("GET /WebSockets/health HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                #expect(await kept.waitForClose(timeout: .seconds(6)))
                answered = String(decoding: kept.received, as: UTF8.self).hasPrefix("HTTP/1.1 200")
            }
            #expect(answered)
            // The metrics' own connection has the same 1.5 s to bring its request: under a full run's load, curl's
            // once came later and was closed. Such a close is counted too, and the fetch tried again.
            var metrics = ""
            var closedFetches = 0
            while metrics.isEmpty && closedFetches < 5 {
                do {
                    metrics = try await harness.http("GET", "/metrics").body
                } catch {
                    closedFetches += 1
                }
            }
            #expect(
                metrics.contains(#"websockets_closed_total{reason="http_timeout"} \#(2 + attempts + closedFetches)"#))
        }
    }

    /// Web start faces the network too (with `listen_locally` false): its HTTP connections have the same limits.
    @Test func webStartClosesIdleHTTPConnections() async throws {
        var settings = Settings(site: "http://127.0.0.1:1", securityKey: "k")
        settings.webPort = 0
        settings.httpIdleTimeout = 0.5
        let web = WebStartService(settings: settings, logger: Logger(label: "test"), executable: nil)
        try await web.start()
        let idle = try await RawSocket.connect(port: web.port)
        // The bound of a failure only: at the suite's start in CI (a fresh build, every suite starting at once) the
        // close of a connection idle for 0.5 s once came after more than 3 s.
        #expect(await idle.waitForClose(timeout: .seconds(15)))
        await web.shutdown()
    }

    @Test func httpConnectionsAreCappedAndASendWithoutKeyIsRefusedFromItsHead() async throws {
        let harness = try await Harness.start { $0.maxHTTPConnections = 3 }
        try await withTeardown({ await harness.stop() }) {
            var held: [RawSocket] = []
            for _ in 0..<3 { held.append(try await RawSocket.connect(port: harness.port)) }
            try await eventually { harness.server.httpConnectionCount == 3 }
            let refused = try await RawSocket.connect(port: harness.port)
            #expect(await refused.waitForClose(timeout: .seconds(10)))
            for socket in held { await socket.close() }
            try await eventually { harness.server.httpConnectionCount == 0 }
            // A 4 MB body announced without a key: answered 403 at once, before a byte of it is sent.
            let sender = try await RawSocket.connect(port: harness.port)
            try await sender.write(
                Array("POST /WebSockets/send HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n".utf8))
            #expect(await sender.waitForClose(timeout: .seconds(10)))
            #expect(String(decoding: sender.received, as: UTF8.self).hasPrefix("HTTP/1.1 403"))
            // Any other request may bring 64 KiB: a larger announced body is answered 413 from the head.
            let poster = try await RawSocket.connect(port: harness.port)
            try await poster.write(
                Array("POST /WebSockets/health HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n".utf8))
            #expect(await poster.waitForClose(timeout: .seconds(10)))
            #expect(String(decoding: poster.received, as: UTF8.self).hasPrefix("HTTP/1.1 413"))
            // A chunked body is cut off as soon as it passes the limit.
            let chunked = try await RawSocket.connect(port: harness.port)
            try await chunked.write(
                Array("POST /WebSockets/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".utf8))
            for _ in 0..<3 {
                if chunked.isClosed { break }
                try? await chunked.write(
                    Array("8000\r\n".utf8) + [UInt8](repeating: 0x61, count: 0x8000) + Array("\r\n".utf8))
            }
            #expect(await chunked.waitForClose(timeout: .seconds(10)))
            #expect(String(decoding: chunked.received, as: UTF8.self).hasPrefix("HTTP/1.1 413"))
            let metrics = try await harness.http("GET", "/metrics").body
            #expect(metrics.contains(#"websockets_closed_total{reason="http_cap"} 1"#))
        }
    }

    // 4. Authentication timeout.
    @Test func aConnectionThatNeverAuthenticatesIsClosed() async throws {
        // The member must authenticate within the timeout, which depends on the machine's speed (under the suite's
        // load one took over 3 s, under ThreadSanitizer over 5 s): when it could not, the server was right to close
        // it, and the test starts again with a timeout four times as long.
        var timeout = 5.0
        var started: (Harness, TestWebSocket)?
        while started == nil {
            let harness = try await Harness.start { $0.authenticationTimeout = timeout }
            do {
                started = (harness, try await harness.connect("alice"))
            } catch let failure as TestWebSocket.Failure where timeout < 80 {
                print("the member did not authenticate within \(timeout) s (\(failure)): again with \(timeout * 4) s")
                await harness.stop()
                timeout *= 4
            }
        }
        let (harness, member) = try #require(started)
        try await withTeardown({ await harness.stop() }) {
            // One that authenticated in time stays past the deadline.
            let lurker = try await TestWebSocket.connect(port: harness.port)
            let close = try await lurker.nextClose(timeout: .seconds(timeout + 5))
            #expect(close.code == 1008)
            #expect(close.reason == "Authentication timeout")
            harness.server.sendToClients("still", "here", .specificUsers, 1)
            #expect(try await member.nextMessage() == Message(action: "still", details: "here"))
            let metrics = try await harness.http("GET", "/metrics").body
            #expect(metrics.contains(#"websockets_closed_total{reason="authentication_timeout"} 1"#))
            await member.close()
        }
    }

    // 5. Expiry both ways: a message after the session's expiry is not dispatched.
    @Test func aMessageAfterTheSessionExpiredIsNotDispatched() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            // 4 s ahead (3 to 4 s with whole seconds): the authentication must finish before. At the suite's start
            // (every suite starting PostgreSQL, Chromium, PHP at once) one took over 3 s in CI and was refused as
            // expired: a session refused once its expiry has passed is tried again with a new one, at most twice.
            var attempt = 0
            var expire: Int64
            var socket: TestWebSocket
            while true {
                expire = Int64(Date().timeIntervalSince1970) + Int64(4 * TestPatience.factor)
                harness.site.addSession("brief\(attempt)", user: 9, expire: expire)
                do {
                    socket = try await harness.connect("brief\(attempt)")
                    break
                } catch  where attempt < 2 && Int64(Date().timeIntervalSince1970) >= expire - 1 {
                    attempt += 1
                }
            }
            let expiry = expire
            try await eventually(timeout: .seconds(6)) { Int64(Date().timeIntervalSince1970) > expiry }
            try await socket.send("hello", "late")
            let close = try await socket.nextClose()
            #expect(close.code == 1008)
            #expect(close.reason == "Session expired")
            #expect(close.before.isEmpty)
            #expect(harness.site.events(named: "WebSockets/message").isEmpty)
        }
    }

    // 6. RFC 6455 close handling and fragments.
    @Test func closeFramesAndFragmentsFollowRFC6455() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            var cases: [(String, [UInt8], UInt16)] = [
                ("empty close", Self.frame(0x8, []), 1000),
                ("1-byte close", Self.frame(0x8, [0x03]), 1002),
                ("valid 1000", Self.close(1000), 1000),
                ("valid 3000", Self.close(3000), 3000),
                ("valid 4999", Self.close(4999), 4999),
                (
                    "reason not UTF-8",
                    Self.close(
                        1000, [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80]),
                    1007
                ),
                ("continuation first", Self.frame(0x0, Array("x".utf8)), 1002),
                (
                    "text inside a fragmented message",
                    Self.frame(0x1, Array("[\"a\",".utf8), fin: false) + Self.frame(0x1, Array("[\"b\",1]".utf8)), 1002
                ),
            ]
            for code: UInt16 in [0, 999, 1004, 1005, 1006, 1012, 1016, 1100, 2000, 2999, 5000, 65535] {
                cases.append(("invalid code \(code)", Self.close(code), 1002))
            }
            for (name, bytes, expected) in cases {
                let socket = try await TestWebSocket.connect(port: harness.port)
                try await socket.sendRaw(bytes)
                #expect(try await socket.nextClose().code == expected, "\(name)")
            }
            let after = try await harness.connect("bob")
            try await after.send("hello", "bob")
            #expect(try await after.nextMessage() == Message(action: "hello", details: "Hello, bob!"))
        }
    }

    // 7. Lone surrogate escapes, as JSON.stringify writes them, are accepted (replaced by U+FFFD).
    @Test func loneSurrogateEscapesAreAccepted() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let socket = try await harness.connect("alice")
            try await socket.send(text: #"["hello","cut \ud83d"]"#)
            #expect(try await socket.nextMessage() == Message(action: "hello", details: "Hello, cut \u{FFFD}!"))
            try await socket.send(text: #"["hello","\udc00\ud83d\ude00"]"#)
            #expect(try await socket.nextMessage() == Message(action: "hello", details: "Hello, \u{FFFD}😀!"))
            try await socket.send(text: #"["hello","\ud800\u"]"#)
            #expect(try await socket.nextClose().code == 1007)
        }
    }

    // 8. Settings are checked when loaded, before anything listens.
    @Test(arguments: [
        ("--ping-interval", "0", "ping_interval"), ("--ping-interval", "-1", "ping_interval"),
        ("--listen-port", "70000", "listen_port"), ("--max-message-size", "abc", "max_message_size"),
        ("--site-concurrency", "0", "site_concurrency"), ("--message-rate", "-5", "message_rate"),
    ])
    func invalidSettingsExitWith2(flag: String, value: String, setting: String) async throws {
        let directory = try ServerProcess.temporaryDirectory()
        let process = try ServerProcess(
            ["start", "http://127.0.0.1:1", "--listen-port", "0", flag, value], directory: directory,
            captureErrors: true)
        defer { process.stop() }
        let result = await process.finish()
        #expect(result.status == 2, "\(result.output)")
        #expect(result.output.split(separator: "\n").count == 1, "\(result.output)")
        #expect(result.output.contains(setting), "\(result.output)")
        #expect(!result.output.contains("listening"), "\(result.output)")
    }
}

/// A plain TCP client: for HTTP requests a library would not send (unfinished, byte by byte).
final class RawSocket: Sendable {
    private struct State {
        var received: [UInt8] = []
        var closed = false
    }

    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    private init(channel: any Channel, state: NIOLockedValueBox<State>) {
        self.channel = channel
        self.state = state
    }

    static func connect(port: Int) async throws -> RawSocket {
        let state = NIOLockedValueBox(State())
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(state: state))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawSocket(channel: channel, state: state)
    }

    var received: [UInt8] { state.withLockedValue { $0.received } }
    var isClosed: Bool { state.withLockedValue { $0.closed } }

    func write(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// Whether the server closed the connection within `timeout`.
    func waitForClose(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + TestPatience.scaled(timeout)
        while !isClosed && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return isClosed
    }

    func close() async {
        try? await channel.close()
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let state: NIOLockedValueBox<State>

        init(state: NIOLockedValueBox<State>) {
            self.state = state
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(buffer: unwrapInboundIn(data))
            state.withLockedValue { $0.received += bytes }
        }

        func channelInactive(context: ChannelHandlerContext) {
            state.withLockedValue { $0.closed = true }
        }
    }
}
