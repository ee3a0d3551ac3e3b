import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import WebSocketsConnection

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking WebSocket client on a plain socket that offers permessage-deflate and reads the server's frames as
/// they are, RSV1 included: what a browser with compression sees on the wire.
final class RawDeflateClient {
    private let descriptor: CInt
    private var buffer: [UInt8] = []

    /// Connects with `Cookie: sid=<sid>`, offers `permessage-deflate; client_max_window_bits`, checks the answer
    /// (accepted unless `expectExtension` is false) and sends `Client/authentication`.
    static func connect(port: Int, sid: String, expectExtension: Bool = true) async throws -> RawDeflateClient {
        let client = try RawDeflateClient(port: port)
        try await client.upgrade(sid: sid, expectExtension: expectExtension)
        return client
    }

    private init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else { throw IOError(errnoCode: errno, reason: "connect") }
    }

    private func upgrade(sid: String, expectExtension: Bool) async throws {
        try send(
            Array(
                ("GET /WebSockets HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: sid=\(sid)\r\n"
                    + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n").utf8))
        while true {
            if let end = find([13, 10, 13, 10]) {
                let head = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end + 4)
                #expect(head.hasPrefix("HTTP/1.1 101"))
                #expect(
                    head.contains(
                        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"
                    )
                        == expectExtension, "\(head)")
                break
            }
            try await receive()
        }
        try send(HardeningTests.frame(0x1, Array(#"["Client/authentication",null]"#.utf8)))
    }

    /// A masked text frame of `text`, compressed (RSV1 set).
    static func compressedText(_ text: String) -> [UInt8] {
        HardeningTests.frame(0x41, Array(PermessageDeflate.compress(ByteBuffer(string: text)).readableBytesView))
    }

    func send(_ bytes: [UInt8]) throws {
        let sent = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw IOError(errnoCode: errno, reason: "send") }
    }

    /// The next data frame's text (inflated when compressed), and whether it came compressed; pings are skipped.
    func nextFrame() async throws -> (text: String, compressed: Bool) {
        while true {
            let (first, payload) = try await nextRawFrame()
            let opcode = first & 0x0F
            guard opcode == 0x1 else {
                if opcode == 0x8 { throw IOError(errnoCode: 0, reason: "closed: \(payload)") }
                continue
            }
            #expect(first & 0x80 != 0, "the server sends whole messages")
            let compressed = first & 0x40 != 0
            let bytes =
                compressed
                ? try PermessageDeflate.decompress(ByteBuffer(bytes: payload), limit: 1 << 24)
                : ByteBuffer(bytes: payload)
            return (String(buffer: bytes), compressed)
        }
    }

    /// The next data frame's text.
    func nextText() async throws -> String {
        try await nextFrame().text
    }

    /// The code of the server's close frame, skipping what comes before it.
    func closeCode() async throws -> UInt16? {
        while true {
            let (first, payload) = try await nextRawFrame()
            if first & 0x0F == 0x8 { return payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil }
        }
    }

    func close() {
        _ = Glibc.close(descriptor)
    }

    private func nextRawFrame() async throws -> (UInt8, [UInt8]) {
        while true {
            if buffer.count >= 2 {
                var length = Int(buffer[1] & 0x7F)
                var header = 2
                if length == 126, buffer.count >= 4 {
                    length = Int(buffer[2]) << 8 | Int(buffer[3])
                    header = 4
                } else if length == 127, buffer.count >= 10 {
                    length = buffer[2..<10].reduce(0) { $0 << 8 | Int($1) }
                    header = 10
                }
                if length < 126 || header > 2, buffer.count >= header + length {
                    let frame = (buffer[0], Array(buffer[header..<(header + length)]))
                    buffer.removeFirst(header + length)
                    return frame
                }
            }
            try await receive()
        }
    }

    /// Reads what the socket has, polling without blocking: a blocked thread would be one of the two that run the
    /// tests' tasks (and the test site's handlers), or one Dispatch runs them on.
    private func receive() async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let read = recv(descriptor, &chunk, chunk.count, Int32(MSG_DONTWAIT))
            if read > 0 {
                buffer += chunk[..<read]
                return
            }
            guard read < 0, errno == EAGAIN || errno == EWOULDBLOCK, ContinuousClock.now < deadline else {
                throw IOError(errnoCode: errno, reason: "recv")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    private func find(_ pattern: [UInt8]) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        for start in 0...(buffer.count - pattern.count) where Array(buffer[start..<(start + pattern.count)]) == pattern
        {
            return start
        }
        return nil
    }
}
