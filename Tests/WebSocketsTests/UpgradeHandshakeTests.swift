import Foundation
import Testing

@testable import WebSockets

/// An upgrade request followed, in the same packet, by more HTTP requests. The HTTP fuzz target found that one such
/// packet stopped the server: an upgrade without `Connection: Upgrade` was upgraded by SwiftNIO's upgrade handler,
/// while its HTTP parser (which stops after a request only when it sees both headers) went on to parse the next
/// requests, and the handler then gave those parsed requests to the connection's handler, which takes bytes: a trap.
@Suite struct UpgradeHandshakeTests {
    /// An upgrade request to the server, with the `Connection` header given (none when `nil`).
    static func upgrade(connection: String?) -> String {
        "GET /WebSockets HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            + (connection.map { "Connection: \($0)\r\n" } ?? "")
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    }

    static let pipelined = "GET /WebSockets/health HTTP/1.1\r\nHost: x\r\n\r\n"

    /// RFC 6455 4.2.1: the handshake needs a `Connection` header holding the token `Upgrade`; without it the answer
    /// is 400 and the requests after it are answered as HTTP.
    @Test(arguments: [nil, "keep-alive", "upgradex", "up grade"])
    func anUpgradeWithoutConnectionUpgradeIsRefusedAndTheRequestsAfterItAnswered(connection: String?) async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let socket = try await RawSocket.connect(port: harness.port)
            try await socket.write(Array((Self.upgrade(connection: connection) + Self.pipelined + Self.pipelined).utf8))
            try await eventually("three answers") {
                String(decoding: socket.received, as: UTF8.self).components(separatedBy: "HTTP/1.1 ").count == 4
            }
            let answers = String(decoding: socket.received, as: UTF8.self).components(separatedBy: "HTTP/1.1 ")
            #expect(answers[1].hasPrefix("400"), "\(answers)")
            #expect(answers[2].hasPrefix("200") && answers[3].hasPrefix("200"), "\(answers)")
            await socket.close()
            #expect(try await harness.http("GET", "/WebSockets/health").status == 200)
        }
    }

    /// With `Connection: Upgrade` the connection is a WebSocket from the request's end: what follows in the packet
    /// is read as frames (a request's bytes are not a masked frame: closed 1002), never as HTTP.
    @Test(arguments: ["Upgrade", "keep-alive, Upgrade", "UPGRADE"])
    func requestsAfterAnUpgradeAreReadAsFrames(connection: String) async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let socket = try await RawSocket.connect(port: harness.port)
            try await socket.write(Array((Self.upgrade(connection: connection) + Self.pipelined).utf8))
            #expect(await socket.waitForClose(timeout: .seconds(10)))
            let received = socket.received
            let text = String(decoding: received, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 101"), "\(text)")
            #expect(!text.contains("HTTP/1.1 200"), "\(text)")
            // The close frame that ends the answer: 0x88, its length, then the code 1002.
            let close = Array(received.suffix(from: received.lastIndex(of: 0x88) ?? received.endIndex))
            #expect(close.count >= 4 && UInt16(close[2]) << 8 | UInt16(close[3]) == 1002, "\(close)")
            #expect(try await harness.http("GET", "/WebSockets/health").status == 200)
        }
    }
}
