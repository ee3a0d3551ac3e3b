import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import WebSockets
import WebSocketsCore

#if canImport(Glibc)
    import Glibc
#endif

/// Raw bytes, as a stranger's connection sends them, to a real server in this process: SwiftNIO's HTTP decoder, the
/// connection guard, the server's decisions on each request (admission, the send key, the body limit, the upgrade's
/// refusal, compression's agreement, `X-Forwarded-For`, cookies) and, once upgraded, the socket loop's frames and
/// the messages. Its site does not answer (a refused connection), so authentication fails quickly.
///
/// The invariants: whatever comes back is HTTP (a status line first), a send is accepted (`202`) and the status
/// page signs in only a request that carries the key, the status page's data never comes back, and the server is still there for the next input (a trap would end the process).
package enum HTTPHeadCheck {
    /// The key the server is given: an input that does not hold it must never get a send accepted.
    package static let key = "fuzz-key-3f9c1b7e5a2d4c8f9e0b1a2c3d4e5f60"

    private static let server = ServerBox()

    /// Starts the server the check talks to (once; later calls return at once).
    package static func prepare() async throws {
        try await server.start()
    }

    /// Sends `bytes` on a new connection, closes its sending side and reads what comes back until the server
    /// closes the connection (or 2 s pass: a server may keep an upgraded connection waiting for its site).
    static func check(_ bytes: [UInt8]) throws(FuzzFinding) {
        guard let port = server.port else { throw FuzzFinding("the server is not started (HTTPHeadCheck.prepare)") }
        let answer = exchange(bytes, port: port)
        guard !answer.isEmpty else { return }
        let head = String(decoding: answer.prefix(12), as: UTF8.self)
        try expect(
            head.hasPrefix("HTTP/1.1 ") || head.hasPrefix("HTTP/1.0 "),
            "the answer does not begin with a status line: \(head)")
        let text = String(decoding: answer, as: UTF8.self)
        if text.contains("HTTP/1.1 202") || text.contains("HTTP/1.0 202") {
            let input = String(decoding: bytes, as: UTF8.self)
            try expect(input.contains(key), "a send was accepted from a request without the key")
        }
        // The status page (issue 28): its data is never shown, and its sign-in never given, to a request without
        // the key (a cookie is an HMAC under the key: no input can forge one).
        try expect(!text.contains("\"users_online\""), "the status page's data was shown without a sign-in")
        if text.contains("websockets_status=") && !text.contains("websockets_status=;") {
            let input = String(decoding: bytes, as: UTF8.self)
            try expect(input.contains(key), "the status page signed in a request without the key")
        }
    }

    /// What the server answers to `bytes` on a fresh connection.
    private static func exchange(_ bytes: [UInt8], port: Int) -> [UInt8] {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return [] }
        defer { close(socket) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return [] }
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { break }
            offset += sent
        }
        shutdown(socket, Int32(SHUT_WR))
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while answer.count < 1 << 20 {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            answer.append(contentsOf: buffer[..<count])
        }
        return answer
    }
}

/// The check's server, started once.
private final class ServerBox: Sendable {
    private let state = NIOLockedValueBox<(server: WebSocketsServer?, port: Int?)>((nil, nil))

    var port: Int? { state.withLockedValue { $0.port } }

    func start() async throws {
        if port != nil { return }
        var settings = Settings(site: "http://127.0.0.1:9", securityKey: HTTPHeadCheck.key)
        settings.listenPort = 0
        settings.siteTimeout = 1
        let server = WebSocketsServer(
            settings: settings, logger: Logger(label: "websockets-fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await server.start()
        state.withLockedValue { $0 = (server, server.port) }
    }
}
