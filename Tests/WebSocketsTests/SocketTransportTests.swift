#if os(Linux)
    import Glibc
    import NIOCore
    import Testing
    import WebSocketsProtocol

    @testable import WebSockets
    @testable import WebSocketsCluster
    @testable import WebSocketsConnection
    @testable import WebSocketsCore
    @testable import WebSocketsHub
    @testable import WebSocketsSite

    /// Upgraded connections leave SwiftNIO for loops of ours (``SocketLoop``): they are served there, keep the bytes a
    /// browser sent with its upgrade request, and leave nothing behind when they close or the server stops.
    @Suite struct SocketTransportTests {
        @Test func anUpgradedConnectionIsServedOnALoopOfOurs() async throws {
            let harness = try await Harness.start { $0.messageEndpoint = "none" }
            try await withTeardown({ await harness.stop() }) {
                harness.server.on("WebSockets/message") { event in event.reply("echo", event.details) }
                let first = try await harness.connect("alice")
                let second = try await harness.connect("bob")
                let connections = harness.server.hub.allConnections()
                #expect(connections.count == 2)
                #expect(connections.allSatisfy { $0.eventLoop is SocketLoop })
                // One per loop, in turn.
                #expect(Set(connections.map { ObjectIdentifier($0.eventLoop) }).count == 2)
                // Nothing of SwiftNIO's is left open for them.
                try await eventually("the channels closed") { harness.server.httpConnectionCount == 0 }
                try await first.send("echo", 1)
                try await second.send("echo", 2)
                #expect(try await first.nextMessage() == Message(action: "echo", details: 1))
                #expect(try await second.nextMessage() == Message(action: "echo", details: 2))
                await first.close()
                await second.close()
            }
        }

        /// Where the socket cannot be taken over, the connection stays a SwiftNIO channel and the same handler
        /// serves it: messages, replies, a close by the server and one by the browser.
        @Test func withoutLoopsOfOursAConnectionStaysASwiftNIOChannel() async throws {
            let site = try await TestSite.start()
            var settings = Harness.settings(for: site)
            settings.messageEndpoint = "none"
            let server = WebSocketsServer(settings: settings)
            server.runtime.withLockedValue { $0.socketLoopsWanted = false }
            try await server.start()
            let harness = Harness(site: site, server: server)
            try await withTeardown({ await harness.stop() }) {
                harness.server.on("WebSockets/message") { event in event.reply("echo", event.details) }
                #expect(harness.server.runtime.withLockedValue { $0.socketLoops }.isEmpty)
                let socket = try await harness.connect("alice")
                let malformed = try await harness.connect("bob")
                #expect(harness.server.hub.allConnections().allSatisfy { !($0.eventLoop is SocketLoop) })
                #expect(harness.server.httpConnectionCount == 0)
                try await socket.send("echo", [1, 2])
                #expect(try await socket.nextMessage() == Message(action: "echo", details: [1, 2]))
                try await malformed.send(text: "not json")
                #expect(try await malformed.nextClose().code == 1007)
                await socket.close()
                try await eventually("both gone") { harness.server.hub.counts.connections == 0 }
            }
        }

        /// A client may send frames in the same packet as its upgrade request: SwiftNIO has read them by the time the
        /// socket moves, and they are handed over with it.
        @Test func framesSentWithTheUpgradeRequestAreRead() async throws {
            let harness = try await Harness.start { $0.messageEndpoint = "none" }
            try await withTeardown({ await harness.stop() }) {
                harness.server.on("WebSockets/message") { event in event.reply("echo", event.details) }
                let client = try RawClient(port: harness.port)
                defer { client.close() }
                var request = Array(
                    ("GET /WebSockets HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: sid=alice\r\n\r\n")
                        .utf8)
                request += RawClient.maskedText(#"["Client/authentication",null]"#)
                request += RawClient.maskedText(#"["echo",[1,2,3]]"#)
                try client.send(request)
                let texts = try client.texts(count: 2)
                #expect(texts == [#"["Client/authentication","ok"]"#, #"["echo",[1,2,3]]"#])
            }
        }

        @Test func closedConnectionsLeaveNothingOnTheLoops() async throws {
            let harness = try await Harness.start()
            try await withTeardown({ await harness.stop() }) {
                let loops = harness.server.runtime.withLockedValue { $0.socketLoops }
                #expect(loops.count >= 1)
                @Sendable func open() async throws -> Int {
                    var total = 0
                    for loop in loops { total += try await loop.submit { loop.connectionCount }.get() }
                    return total
                }
                let closedByTheClient = try await harness.connect("alice")
                let closedByTheServer = try await harness.connect("alice")
                let resetByTheClient = try RawClient(port: harness.port)
                try resetByTheClient.send(
                    Array(
                        ("GET /WebSockets HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").utf8))
                _ = try resetByTheClient.texts(count: 0)
                try await eventually("three connections open") { try await open() == 3 }
                await closedByTheClient.close()
                try await closedByTheServer.send(text: "not json")
                #expect(try await closedByTheServer.nextClose().code == 1007)
                resetByTheClient.reset()
                try await eventually("every connection gone from the loops and the hub") {
                    try await open() == 0 && harness.server.hub.counts.connections == 0
                }
            }
        }

        @Test func aStoppedServerStopsItsLoops() async throws {
            let harness = try await Harness.start()
            let socket = try await harness.connect("alice")
            let loops = harness.server.runtime.withLockedValue { $0.socketLoops }
            #expect(!loops.isEmpty)
            await harness.stop()
            #expect(try await socket.nextClose().code == 1001)
            #expect(harness.server.runtime.withLockedValue { $0.socketLoops }.isEmpty)
            for loop in loops {
                await #expect(throws: EventLoopError.shutdown) {
                    try await loop.scheduleTask(in: .milliseconds(1)) { () }.futureResult.get()
                }
            }
        }
    }

    /// A blocking TCP client of plain bytes: what a browser sends in one packet, and the server's unmasked frames.
    private final class RawClient {
        let descriptor: CInt
        private var buffer: [UInt8] = []
        private var headerSeen = false

        init(port: Int) throws {
            descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var timeout = timeval(tv_sec: Int(5 * TestPatience.factor), tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard result == 0 else { throw IOError(errnoCode: errno, reason: "connect") }
        }

        static func maskedText(_ text: String) -> [UInt8] {
            let payload = Array(text.utf8)
            let mask: [UInt8] = [1, 2, 3, 4]
            precondition(payload.count < 126)
            return [0x81, 0x80 | UInt8(payload.count)] + mask
                + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        }

        func send(_ bytes: [UInt8]) throws {
            let sent = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, 0) }
            guard sent == bytes.count else { throw IOError(errnoCode: errno, reason: "send") }
        }

        /// Reads past the `101` answer, then `count` text frames.
        func texts(count: Int) throws -> [String] {
            var texts: [String] = []
            while true {
                if !headerSeen, let end = find([13, 10, 13, 10]) {
                    #expect(String(decoding: buffer[..<end], as: UTF8.self).hasPrefix("HTTP/1.1 101"))
                    buffer.removeFirst(end + 4)
                    headerSeen = true
                }
                if headerSeen {
                    while texts.count < count, buffer.count >= 2, buffer.count >= 2 + Int(buffer[1] & 0x7F) {
                        let length = Int(buffer[1] & 0x7F)
                        // A ping of the loop's sweep may come first when the connection registered just before it
                        // (seen once under the suite's load): control frames are skipped.
                        if buffer[0] == 0x89 || buffer[0] == 0x8A {
                            buffer.removeFirst(2 + length)
                            continue
                        }
                        #expect(buffer[0] == 0x81 && length < 126)
                        texts.append(String(decoding: buffer[2..<(2 + length)], as: UTF8.self))
                        buffer.removeFirst(2 + length)
                    }
                    if texts.count == count { return texts }
                }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let read = recv(descriptor, &chunk, chunk.count, 0)
                guard read > 0 else { throw IOError(errnoCode: errno, reason: "recv") }
                buffer += chunk[..<read]
            }
        }

        /// Closes with a reset (`SO_LINGER` 0): a browser killed, not closed.
        func reset() {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            close()
        }

        func close() {
            _ = Glibc.close(descriptor)
        }

        private func find(_ pattern: [UInt8]) -> Int? {
            guard buffer.count >= pattern.count else { return nil }
            for start in 0...(buffer.count - pattern.count)
            where Array(buffer[start..<(start + pattern.count)]) == pattern {
                return start
            }
            return nil
        }
    }
#endif
