import Foundation
import NIOCore
import Testing

@testable import WebSockets
@testable import WebSocketsCore

/// A connection that begins with a send is read on a socket loop by the server's own reader: the same answers,
/// limits and refusals as on SwiftNIO's path, and what that path did not do (a `100 Continue`).
@Suite struct PublisherConnectionTests {
    /// The bytes `socket` has received, as text.
    private static func text(_ socket: RawSocket) -> String {
        String(decoding: socket.received, as: UTF8.self)
    }

    @Test func aPublishersConnectionIsAnsweredInOrderOnASocketLoop() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let bob = try await harness.connect("bob")
            let publisher = try await RawSocket.connect(port: harness.port)
            // A client that waits for `100 Continue` before its body (curl 7.88 does, for bodies over 1 MiB): SwiftNIO's
            // path never answered it, so the client waited its own timeout (1 s for curl) on every such send.
            try await publisher.write(
                Array(
                    "POST /WebSockets/send HTTP/1.1\r\nHost: x\r\nX-WebSockets-Key: \(harness.key)\r\nExpect: 100-continue\r\nContent-Length: 23\r\n\r\n"
                        .utf8))
            try await eventually("100 Continue") { Self.text(publisher).hasPrefix("HTTP/1.1 100 Continue\r\n\r\n") }
            try await publisher.write(Array(#"["one", {"n": 1}, 3, 2]"#.utf8))
            #expect(try await bob.nextMessage() == Message(action: "one", details: ["n": 1]))
            // Pipelined in one write: a chunked send, a status request, a malformed send, then one that closes.
            let key = harness.key
            try await publisher.write(
                Array(
                    ("POST /WebSockets/send HTTP/1.1\r\nX-WebSockets-Key: \(key)\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + "6\r\n[\"two\"\r\na\r\n, 2, 3, 2]\r\n0\r\n\r\n"
                        + "GET /WebSockets/health HTTP/1.1\r\nHost: x\r\n\r\n"
                        + "POST /WebSockets/send HTTP/1.1\r\nX-WebSockets-Key: \(key)\r\nContent-Length: 3\r\n\r\n[1]"
                        + "POST /WebSockets/send HTTP/1.1\r\nX-WebSockets-Key: \(key)\r\nConnection: close\r\nContent-Length: 18\r\n\r\n[\"three\", 3, 3, 2]")
                        .utf8))
            #expect(await publisher.waitForClose(timeout: .seconds(10)))
            #expect(try await bob.nextMessage() == Message(action: "two", details: 2))
            #expect(try await bob.nextMessage() == Message(action: "three", details: 3))
            let answers = Self.text(publisher).components(separatedBy: "HTTP/1.1 ").dropFirst().map {
                String($0.prefix(3))
            }
            #expect(answers == ["100", "202", "202", "200", "400", "202"], "\(Self.text(publisher))")
            #expect(Self.text(publisher).contains(#""status":"ok""#))
            #expect(Self.text(publisher).hasSuffix("Connection: close\r\n\r\n{\"accepted\":1,\"delivered\":1}"))
            let metrics = try await harness.http("GET", "/metrics").body
            #expect(metrics.contains("websockets_publisher_connections_total 1"), "\(metrics)")
            try await eventually("the connection is no longer counted") { harness.server.httpConnectionCount == 0 }
        }
    }

    /// A keep-alive client that asks who is online before it sends (the decision is made on the first request) is
    /// a publisher's too: on SwiftNIO's path its sends cost 30–40% more CPU each.
    @Test func aConnectionThatAsksWhoIsOnlineFirstIsAPublishers() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let bob = try await harness.connect("bob")
            let publisher = try await RawSocket.connect(port: harness.port)
            let key = harness.key
            try await publisher.write(
                Array("GET /WebSockets/presence?users=2 HTTP/1.1\r\nHost: x\r\nX-WebSockets-Key: \(key)\r\n\r\n".utf8))
            try await eventually("the presence answered") { Self.text(publisher).hasPrefix("HTTP/1.1 200") }
            let body = #"["after", 1, 3, 2]"#
            try await publisher.write(
                Array(
                    "POST /WebSockets/send HTTP/1.1\r\nHost: x\r\nX-WebSockets-Key: \(key)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                        .utf8))
            #expect(try await bob.nextMessage() == Message(action: "after", details: 1))
            let metrics = try await harness.http("GET", "/metrics").body
            #expect(metrics.contains("websockets_publisher_connections_total 1"), "\(metrics)")
        }
    }

    /// Its time limits and refusals are those of any HTTP connection, and its count moves with it.
    @Test func aPublishersConnectionKeepsTheLimitsOfAnyHTTPConnection() async throws {
        let harness = try await Harness.start {
            // Long enough for a connection to be written to before it is closed idle, under the suite's load (at
            // 2 s, the whole suite's start once delayed a write past it).
            $0.httpRequestTimeout = 5
            $0.httpIdleTimeout = 5
            $0.maxHTTPConnections = 2
        }
        try await withTeardown({ await harness.stop() }) {
            // A send whose body never comes: closed by the request's time limit.
            let slow = try await RawSocket.connect(port: harness.port)
            try await slow.write(
                Array(
                    "POST /WebSockets/send HTTP/1.1\r\nX-WebSockets-Key: \(harness.key)\r\nContent-Length: 9\r\n\r\n["
                        .utf8))
            // A wrong key: refused from the head, before the 4 MB body, and closed.
            let keyless = try await RawSocket.connect(port: harness.port)
            try await keyless.write(
                Array(
                    "POST /WebSockets/send HTTP/1.1\r\nX-WebSockets-Key: nope\r\nContent-Length: 4000000\r\n\r\n".utf8))
            #expect(await keyless.waitForClose(timeout: .seconds(10)))
            #expect(Self.text(keyless).hasPrefix("HTTP/1.1 403 Forbidden\r\n"))
            #expect(await slow.waitForClose(timeout: .seconds(10)))
            #expect(Self.text(slow).isEmpty)
            // Smuggling is refused: a 400, then the connection closes.
            let smuggler = try await RawSocket.connect(port: harness.port)
            try await smuggler.write(
                Array(
                    "POST /WebSockets/send HTTP/1.1\r\nX-WebSockets-Key: \(harness.key)\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                        .utf8))
            #expect(await smuggler.waitForClose(timeout: .seconds(10)))
            #expect(Self.text(smuggler).hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
            try await eventually("no connection is counted") { harness.server.httpConnectionCount == 0 }
            // The cap counts publishers' connections too: two held, the third closed at once.
            var held: [RawSocket] = []
            for _ in 0..<2 {
                let socket = try await RawSocket.connect(port: harness.port)
                try await socket.write(Array("POST /WebSockets/send HTTP/1.1\r\n".utf8))
                held.append(socket)
            }
            try await eventually("two counted") { harness.server.httpConnectionCount == 2 }
            let refused = try await RawSocket.connect(port: harness.port)
            #expect(await refused.waitForClose(timeout: .seconds(10)))
            for socket in held { #expect(await socket.waitForClose(timeout: .seconds(10))) }
            try await eventually("none counted") { harness.server.httpConnectionCount == 0 }
            let metrics = try await harness.http("GET", "/metrics").body
            #expect(metrics.contains(#"websockets_closed_total{reason="http_timeout"} 3"#), "\(metrics)")
        }
    }
}
