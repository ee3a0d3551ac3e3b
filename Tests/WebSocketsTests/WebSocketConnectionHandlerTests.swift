import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The connection's handler in an `EmbeddedChannel`, with a delegate that records what it is told: no server, no
/// socket. What the handler decides itself (pongs, refusals, closes) is read back from the channel.
@Suite struct WebSocketConnectionHandlerTests {
    /// Records the handler's calls and answers as told.
    final class RecordingDelegate: ConnectionDelegate {
        var logger = Logger(label: "test")
        var userLogger: Logger { logger }
        var admits = true
        var reception = MessageReception.accepted
        var opened = 0
        var closed = 0
        var caughtUp = 0
        var messages: [String] = []

        func connectionOpened(_ handler: WebSocketConnectionHandler) -> Bool {
            opened += 1
            return admits
        }

        func connectionReceived(_ message: Message) -> MessageReception {
            messages.append(message.action)
            return reception
        }

        func connectionClosed(_ handler: WebSocketConnectionHandler) { closed += 1 }
        func catchUp(_ handler: WebSocketConnectionHandler) { caughtUp += 1 }
    }

    private struct Harness {
        let channel = EmbeddedChannel()
        let delegate = RecordingDelegate()
        let metrics = ServerMetrics()
        let handler: WebSocketConnectionHandler

        init(burst: Int = 20, admits: Bool = true) throws {
            var settings = Settings(site: "", securityKey: "k")
            settings.messageBurst = burst
            let environment = ConnectionEnvironment(
                settings: settings, holdsForReplay: false, metrics: metrics, refusals: RefusalLog())
            handler = WebSocketConnectionHandler(environment: environment)
            handler.delegate = delegate
            delegate.admits = admits
            try channel.pipeline.syncOperations.addHandler(handler)
        }

        func send(_ opcode: UInt8, _ payload: [UInt8]) throws {
            try channel.writeInbound(ByteBuffer(bytes: HardeningTests.frame(opcode, payload)))
        }

        func written() throws -> [ByteBuffer] {
            var frames: [ByteBuffer] = []
            while let frame = try channel.readOutbound(as: ByteBuffer.self) { frames.append(frame) }
            return frames
        }

        func closeCode(_ frame: ByteBuffer) -> UInt16? {
            var frame = frame
            guard frame.readInteger(as: UInt8.self) == 0x88 else { return nil }
            frame.moveReaderIndex(forwardBy: 1)
            return frame.readInteger(as: UInt16.self)
        }

        func metric(_ text: String) -> Bool {
            String(decoding: metrics.render(), as: UTF8.self).contains(text)
        }
    }

    @Test func pingsAreAnsweredTheLatestOnceAndACloseFrameEndsTheConnection() throws {
        let harness = try Harness()
        #expect(harness.delegate.opened == 1)
        try harness.send(0x9, [7, 8])
        #expect(try harness.written() == [ServerFrame.final(.pong, ByteBuffer(bytes: [7, 8]))])
        // Issue 23: of the pings one read carries, the latest alone is answered (RFC 6455 5.5.3): 10,000 pings cost
        // one pong, not 10,000 buffers of about 130 bytes each (10,000 pongs on 226b087).
        let pings = (0..<10_000).flatMap { HardeningTests.frame(0x9, [UInt8($0 % 256), UInt8($0 / 256)]) }
        try harness.channel.writeInbound(ByteBuffer(bytes: pings))
        #expect(try harness.written() == [ServerFrame.final(.pong, ByteBuffer(bytes: [15, 39]))])
        // A close frame with a 1-byte payload is answered 1002, and the channel is closed.
        try harness.send(0x8, [1])
        let frames = try harness.written()
        #expect(frames.count == 1 && harness.closeCode(frames[0]) == 1002)
        #expect(!harness.channel.isActive)
        #expect(harness.delegate.closed == 1)
        // Once removed from the pipeline, the handler lets go of its delegate (which holds it).
        harness.channel.embeddedEventLoop.run()
        #expect(harness.handler.delegate == nil)
        #expect(harness.metric(#"websockets_closed_total{reason="protocol"} 1"#))
    }

    @Test func messagesGoToTheDelegateAndRefusalsAreAnswered429() throws {
        let harness = try Harness(burst: 2)
        try harness.send(0x1, Array(#"["Hello",1]"#.utf8))
        try harness.send(0x1, Array(#"["Hello",2]"#.utf8))
        // Over the burst: answered `Hello:error [429, ...]`, not handed on.
        try harness.send(0x1, Array(#"["Hello",3]"#.utf8))
        #expect(harness.delegate.messages == ["Hello", "Hello"])
        var reply = try #require(try harness.written().first)
        reply.moveReaderIndex(forwardBy: 2)
        #expect(String(buffer: reply).hasPrefix(#"["Hello:error",[429"#))
        #expect(harness.metric(#"websockets_refused_total{reason="rate"} 1"#))
        // The delegate's own refusal is answered the same way, under its reason.
        let waiting = try Harness()
        waiting.delegate.reception = .refused(reason: .pending)
        try waiting.send(0x1, Array(#"["Bye",null]"#.utf8))
        #expect(waiting.delegate.messages == ["Bye"])
        var refusal = try #require(try waiting.written().first)
        refusal.moveReaderIndex(forwardBy: 2)
        #expect(String(buffer: refusal).hasPrefix(#"["Bye:error",[429"#))
        #expect(waiting.metric(#"websockets_refused_total{reason="pending"} 1"#))
    }

    @Test func aMalformedMessageClosesWith1007() throws {
        let harness = try Harness()
        try harness.send(0x1, Array("not json".utf8))
        let frames = try harness.written()
        #expect(frames.count == 1 && harness.closeCode(frames[0]) == 1007)
        #expect(harness.metric(#"websockets_closed_total{reason="malformed"} 1"#))
        #expect(harness.delegate.messages.isEmpty)
    }

    @Test func aConnectionTheDelegateRefusesClosesAtOnce() throws {
        let harness = try Harness(admits: false)
        let frames = try harness.written()
        #expect(frames.count == 1 && harness.closeCode(frames[0]) == 1008)
        #expect(harness.metric(#"websockets_closed_total{reason="per_ip_cap"} 1"#))
    }

    @Test func writesCatchUpFirstAndAServerCloseIsSentOnce() throws {
        let harness = try Harness()
        harness.handler.write(frame: ServerFrame.text(ByteBuffer(string: "[\"A\"]")))
        #expect(harness.delegate.caughtUp == 1)
        #expect(try harness.written() == [ServerFrame.text(ByteBuffer(string: "[\"A\"]"))])
        harness.handler.close(code: .normal, reason: "Sent")
        harness.handler.close(code: .goingAway, reason: "again")
        let frames = try harness.written()
        #expect(frames.count == 1 && harness.closeCode(frames[0]) == 1000)
        #expect(harness.delegate.caughtUp == 2)
        // Nothing is written once closing.
        harness.handler.write(frame: ServerFrame.text(ByteBuffer(string: "[\"B\"]")))
        #expect(try harness.written().isEmpty)
    }

    @Test func aSilentConnectionIsClosedAndALiveOneIsPinged() throws {
        let harness = try Harness()
        harness.handler.checkLiveness(now: .now(), idleTimeout: .seconds(60))
        #expect(try harness.written() == [ServerFrame.final(.ping, ByteBuffer())])
        harness.handler.checkLiveness(now: .now() + .seconds(61), idleTimeout: .seconds(60))
        let frames = try harness.written()
        #expect(frames.count == 1 && harness.closeCode(frames[0]) == 1001)
        #expect(harness.metric(#"websockets_closed_total{reason="idle"} 1"#))
    }

    @Test func theAuthenticationDeadlineClosesOnlyAnUnauthenticatedConnection() throws {
        let authenticated = try Harness()
        authenticated.handler.authenticated(expiry: .max)
        authenticated.handler.authenticationTimedOut()
        #expect(try authenticated.written().isEmpty)
        let waiting = try Harness()
        waiting.handler.authenticationTimedOut()
        let frames = try waiting.written()
        #expect(frames.count == 1 && waiting.closeCode(frames[0]) == 1008)
    }
}
