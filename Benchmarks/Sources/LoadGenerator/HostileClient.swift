import Foundation
import NIOConcurrencyHelpers

/// The attackers of issue 23's table, each on a thread of its own with blocking sockets, reconnecting whenever
/// the server closes them, until stopped: for the soak, which must stay flat while they run.
final class HostileClient: Sendable {
    enum Kind: String, CaseIterable {
        /// An unauthenticated tab that never reads and sends empty pings as fast as the socket takes them.
        case pinger = "pings, never reading"
        /// An HTTP connection pipelining `GET /WebSockets/client.js` without reading the answers.
        case pipeliner = "pipelined HTTP, never reading"
        /// A cookieless tab sending 64 KiB messages of nested arrays, never authenticating.
        case nester = "nested arrays before authentication"
        /// `POST /WebSockets/send` with a wrong key, 20 a second.
        case wrongKey = "sends with a wrong key"

        /// The kind named `name` on the command line: `pinger`, `pipeliner`, `nester`, `wrongKey`.
        init?(name: String) {
            guard let kind = Self.allCases.first(where: { "\($0)" == name }) else { return nil }
            self = kind
        }
    }

    let kind: Kind
    let port: Int
    private let stoppedBox = NIOLockedValueBox(false)
    private let roundsBox = NIOLockedValueBox(0)
    private var stopped: Bool { stoppedBox.withLockedValue { $0 } }
    /// Connections the server closed (and that were opened again).
    var rounds: Int { roundsBox.withLockedValue { $0 } }

    init(kind: Kind, port: Int) {
        self.kind = kind
        self.port = port
    }

    func start() {
        let thread = Thread { [self] in
            while !stopped {
                runOnce()
                roundsBox.withLockedValue { $0 += 1 }
                usleep(100_000)
            }
        }
        thread.name = "hostile-\(kind)"
        thread.start()
    }

    func stop() { stoppedBox.withLockedValue { $0 = true } }

    private func runOnce() {
        let socket = Self.connect(port: port)
        guard socket >= 0 else { return }
        defer { close(socket) }
        switch kind {
        case .pinger:
            guard write(socket, Self.upgrade(cookie: nil)) else { return }
            let ping = Subscriber.maskedFrame(opcode: 0x9, [])
            let pings = Array(repeating: Array(ping.readableBytesView), count: 512).flatMap { $0 }
            while !stopped, write(socket, pings) {}
        case .pipeliner:
            let request = Array("GET /WebSockets/client.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
            let batch = Array(repeating: request, count: 256).flatMap { $0 }
            while !stopped, write(socket, batch) {}
        case .nester:
            guard write(socket, Self.upgrade(cookie: nil)) else { return }
            // `["big",[[[0]],[[0]],...]]`, about 64 KiB: a parsed tree many times its text.
            let body = "[\"big\",[" + Array(repeating: "[[0]]", count: 10_800).joined(separator: ",") + "]]"
            let frame = Array(Subscriber.maskedFrame(opcode: 0x1, Array(body.utf8)).readableBytesView)
            while !stopped, write(socket, frame) {}
        case .wrongKey:
            let body = #"["b",{"x":1},1]"#
            let request = Array(
                ("POST /WebSockets/send HTTP/1.1\r\nHost: 127.0.0.1\r\nX-WebSockets-Key: wrong\r\n"
                    + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)").utf8)
            var answer = [UInt8](repeating: 0, count: 4096)
            while !stopped, write(socket, request) {
                guard recv(socket, &answer, answer.count, 0) > 0 else { return }
                usleep(50_000)
            }
        }
    }

    static func upgrade(cookie: String?) -> [UInt8] {
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        return Array(
            ("GET /WebSockets HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + (cookie.map { "Cookie: \($0)\r\n" } ?? "")
                + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8)
    }

    /// A blocking TCP connection to 127.0.0.1:`port`, or -1.
    static func connect(port: Int) -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return -1 }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        // A write blocked on a full socket gives up after a second, so that `stop()` is seen.
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(socket)
            return -1
        }
        return socket
    }

    /// Writes `bytes` whole; false when the connection is gone or the client stopped. A timeout (the server stopped
    /// reading) is not an end: the client goes on trying, as an attacker would.
    func write(_ socket: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                offset += written
            } else if written < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                if stopped { return false }
            } else {
                return false
            }
        }
        return true
    }
}
