import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import WebSockets

/// A real WebSocket client on SwiftNIO, as a browser would be, with knobs a browser lacks (no pong, no reading).
final class TestWebSocket: Sendable {
    enum Event: Sendable, Equatable {
        case text(String)
        case close(code: UInt16, reason: String)
        case ping
        case ended
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let channel: any Channel
    private let inbox: EventInbox

    private init(channel: any Channel, inbox: EventInbox) {
        self.channel = channel
        self.inbox = inbox
    }

    /// Opens `/WebSockets` (or `path`) on `port` with extra request headers such as `Cookie` and `Origin`; over
    /// TLS (any certificate) when `tls`, from the local address `source` when given (such as 127.0.0.3).
    static func connect(
        port: Int, path: String = "/WebSockets", headers: [(String, String)] = [], answerPings: Bool = true,
        autoRead: Bool = true, tls: Bool = false, source: String? = nil
    ) async throws -> TestWebSocket {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        let sslContext = tls ? try NIOSSLContext(configuration: configuration) : nil
        let inbox = EventInbox()
        let upgraded = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: "127.0.0.1:\(port)")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        let requestHead = head
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let source { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0)) }
        let channel =
            try await bootstrap
            .channelOption(.autoRead, value: autoRead)
            .channelInitializer { channel in
                let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
                let upgrader = NIOWebSocketClientUpgrader(
                    requestKey: key, maxFrameSize: 1 << 24, automaticErrorHandling: false
                ) { channel, _ in
                    channel.pipeline.removeHandler(name: "request-sender").flatMapThrowing {
                        try channel.pipeline.syncOperations.addHandler(
                            Collector(inbox: inbox, answerPings: answerPings))
                        upgraded.succeed()
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: sslContext, serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                    try channel.pipeline.syncOperations.addHandler(
                        RequestSender(head: requestHead, upgraded: upgraded), name: "request-sender")
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        if !autoRead { channel.read() }
        try await upgraded.futureResult.get()
        return TestWebSocket(channel: channel, inbox: inbox)
    }

    /// Opens a connection with `Cookie: sid=<sid>` and authenticates; fails unless the server answers "ok".
    static func authenticated(port: Int, sid: String, headers: [(String, String)] = []) async throws -> TestWebSocket {
        let socket = try await connect(port: port, headers: [("Cookie", "sid=\(sid)")] + headers)
        try await socket.send("Client/authentication", nil)
        let reply = try await socket.nextMessage()
        guard reply == Message(action: "Client/authentication", details: "ok") else {
            throw Failure(description: "authentication of \(sid) answered \(reply)")
        }
        return socket
    }

    func send(text: String) async throws {
        try await sendFrame(.text, ByteBuffer(string: text))
    }

    func send(_ action: String, _ details: JSON) async throws {
        try await send(text: String(decoding: Message(action: action, details: details).encoded(), as: UTF8.self))
    }

    func sendFrame(_ opcode: WebSocketOpcode, _ data: ByteBuffer, fin: Bool = true) async throws {
        let mask = WebSocketMaskingKey.random()
        try await channel.writeAndFlush(WebSocketFrame(fin: fin, opcode: opcode, maskKey: mask, data: data)).get()
    }

    /// Writes `bytes` to the socket as they are, past the frame encoder: for frames a browser would never send.
    func sendRaw(_ bytes: [UInt8]) async throws {
        let channel = self.channel
        try await channel.eventLoop.submit {
            let encoder = try channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
            encoder.writeAndFlush(NIOAny(ByteBuffer(bytes: bytes)), promise: nil)
        }.get()
    }

    /// Writes `bytes` as ``sendRaw(_:)`` does, and waits until they are written to the socket.
    func sendRawAndWait(_ bytes: [UInt8]) async throws {
        let channel = self.channel
        let promise = channel.eventLoop.makePromise(of: Void.self)
        try await channel.eventLoop.submit {
            let encoder = try channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
            encoder.writeAndFlush(NIOAny(ByteBuffer(bytes: bytes)), promise: promise)
        }.get()
        try await promise.futureResult.get()
    }

    /// The next event, pings included; fails after `timeout` (scaled by ``TestPatience``).
    func next(timeout: Duration = .seconds(5)) async throws -> Event {
        try await next(before: ContinuousClock.now + TestPatience.scaled(timeout))
    }

    /// The next event, pings included; fails once `deadline` has passed.
    private func next(before deadline: ContinuousClock.Instant) async throws -> Event {
        let start = ContinuousClock.now
        while true {
            if let event = inbox.pop() { return event }
            if ContinuousClock.now >= deadline {
                throw Failure(description: "no event within \(deadline - start)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The next text frame's whole text (to see what the server wrote, byte for byte), skipping pings, which the
    /// server may send at any moment of a test; fails on a close or after `timeout`.
    func nextText(timeout: Duration = .seconds(5)) async throws -> String {
        let deadline = ContinuousClock.now + TestPatience.scaled(timeout)
        while true {
            switch try await next(before: deadline) {
            case .text(let text): return text
            case .ping: continue
            case let other: throw Failure(description: "expected a message, got \(other)")
            }
        }
    }

    /// The next message, skipping pings; fails on a close or after `timeout`.
    func nextMessage(timeout: Duration = .seconds(10)) async throws -> Message {
        while true {
            switch try await next(timeout: timeout) {
            case .ping: continue
            case .text(let text): return try Message(frame: text)
            case let other: throw Failure(description: "expected a message, got \(other)")
            }
        }
    }

    /// Messages until a close, which it returns with the messages before it.
    func nextClose(timeout: Duration = .seconds(10)) async throws -> (code: UInt16, reason: String, before: [Message]) {
        var before: [Message] = []
        while true {
            switch try await next(timeout: timeout) {
            case .ping: continue
            case .text(let text): before.append(try Message(frame: text))
            case .close(let code, let reason): return (code, reason, before)
            case .ended: throw Failure(description: "connection ended without a close frame")
            }
        }
    }

    /// Fails if a message arrives within `window`.
    func expectNoMessage(within window: Duration = .milliseconds(300)) async throws {
        do {
            let message = try await nextMessage(timeout: window)
            throw Failure(description: "unexpected message \(message)")
        } catch let failure as Failure where failure.description.hasPrefix("no event") {
            return
        }
    }

    func close() async {
        try? await channel.close()
    }
}

/// Sends the upgrade request once connected; reports a refused upgrade.
private final class RequestSender: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    let head: HTTPRequestHead
    let upgraded: EventLoopPromise<Void>

    init(head: HTTPRequestHead, upgraded: EventLoopPromise<Void>) {
        self.head = head
        self.upgraded = upgraded
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let response) = unwrapInboundIn(data) {
            upgraded.fail(TestWebSocket.Failure(description: "upgrade refused: \(response.status.code)"))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        upgraded.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        upgraded.fail(TestWebSocket.Failure(description: "closed before the upgrade"))
        context.fireChannelInactive()
    }
}

/// Turns frames into events.
private final class Collector: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    let inbox: EventInbox
    let answerPings: Bool
    var fragments: ByteBuffer?

    init(inbox: EventInbox, answerPings: Bool) {
        self.inbox = inbox
        self.answerPings = answerPings
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text where frame.fin:
            inbox.push(.text(String(buffer: frame.unmaskedData)))
        case .text:
            fragments = frame.unmaskedData
        case .continuation:
            var data = frame.unmaskedData
            fragments?.writeBuffer(&data)
            if frame.fin, let whole = fragments {
                inbox.push(.text(String(buffer: whole)))
                fragments = nil
            }
        case .connectionClose:
            var data = frame.unmaskedData
            let code = data.readInteger(as: UInt16.self) ?? 1005
            inbox.push(.close(code: code, reason: data.readString(length: data.readableBytes) ?? ""))
        case .ping:
            if answerPings {
                let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
                context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
            }
            inbox.push(.ping)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.push(.ended)
    }
}

/// Events in arrival order, taken by the test as it goes.
final class EventInbox: Sendable {
    private let events = NIOLockedValueBox<[TestWebSocket.Event]>([])

    func push(_ event: TestWebSocket.Event) {
        events.withLockedValue { $0.append(event) }
    }

    func pop() -> TestWebSocket.Event? {
        events.withLockedValue { $0.isEmpty ? nil : $0.removeFirst() }
    }
}
