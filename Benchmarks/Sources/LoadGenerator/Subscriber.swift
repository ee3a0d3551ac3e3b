import BenchmarkSupport
import Dispatch
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// A benchmark client: upgrades to a WebSocket at `path` with a cookie, authenticates when the peer wants it,
/// answers pings, records timestamped messages, and in echo mode sends the next echo when one comes back.
enum Subscriber {
    /// How a client becomes ready and speaks.
    enum Dialect: Sendable {
        /// `["Client/authentication", null]`, ready at the answer (ours, the `ws` hub).
        case webSockets
        /// Ready at the upgrade (Nchan).
        case plain
        /// Engine.IO 4: the server opens with `0{...}`, the client joins the namespace with `40` and is ready at
        /// the server's `40{...}`; events are `42[...]`; the server's ping `2` is answered with `3`.
        case socketIO
    }

    /// One event loop for all clients: the generator is pinned to one core.
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// Connects from `localAddress`, or from the kernel's choice when `nil`. A connect without a bind takes a port
    /// free for this one destination (about 28,000 of them); an explicit bind to port 0 must find a port free for
    /// every destination, a search that grows slow with thousands of sockets, so it is kept for connections past
    /// what one address holds.
    static func connect(
        port: Int, path: String, cookie: String, dialect: Dialect, recorder: Recorder, localAddress: String?
    ) async throws -> any Channel {
        let upgraded = group.next().makePromise(of: Void.self)
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: "127.0.0.1:\(port)")
        head.headers.add(name: "Cookie", value: cookie)
        let requestHead = head
        // Reusable addresses: a previous run's closed connections linger in TIME_WAIT on the same source ports.
        var bootstrap = ClientBootstrap(group: group).channelOption(.socketOption(.so_reuseaddr), value: 1)
        if let localAddress { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: localAddress, port: 0)) }
        let channel =
            try await bootstrap
            .channelInitializer { channel in
                let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
                let upgrader = NIOWebSocketClientUpgrader(requestKey: key, maxFrameSize: 1 << 20) { channel, _ in
                    // The reader goes in at once: a server may speak first (Engine.IO's open packet) in the same
                    // segment as its 101 answer.
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(Reader(recorder: recorder, dialect: dialect))
                        channel.pipeline.removeHandler(name: "request", promise: nil)
                        if dialect == .plain { recorder.markReady() }
                        upgraded.succeed()
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    // Bytes after the 101 answer are the server's first frames (Engine.IO's open packet): forward
                    // them to the WebSocket decoder instead of dropping them.
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes,
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                    try channel.pipeline.syncOperations.addHandler(UpgradeRequester(head: requestHead), name: "request")
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        // A peer that never answers the upgrade must fail the run, not hang it.
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(20)) {
            upgraded.fail(BenchmarkError("no upgrade within 20 s"))
            channel.close(promise: nil)
        }
        defer { timeout.cancel() }
        try await upgraded.futureResult.get()
        if dialect == .webSockets {
            try await send(#"["Client/authentication",null]"#, on: channel)
        }
        return channel
    }

    /// Sends a text frame, masked as a browser's.
    static func send(_ text: String, on channel: any Channel) async throws {
        try await channel.writeAndFlush(
            WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(string: text))
        ).get()
    }

    /// Puts the client in echo mode: each echo it reads is recorded and answered with the next one.
    static func startEchoing(on channel: any Channel) {
        channel.eventLoop.execute {
            guard let reader = try? channel.pipeline.syncOperations.handler(type: Reader.self) else { return }
            reader.echoing = true
            reader.sendEcho(channel: channel)
        }
    }

    static func stopEchoing(on channel: any Channel) {
        channel.eventLoop.execute {
            (try? channel.pipeline.syncOperations.handler(type: Reader.self))?.echoing = false
        }
    }

    final class Reader: ChannelInboundHandler {
        typealias InboundIn = WebSocketFrame
        typealias OutboundOut = WebSocketFrame
        let recorder: Recorder
        let dialect: Dialect
        var ready = false
        var echoing = false

        init(recorder: Recorder, dialect: Dialect) {
            self.recorder = recorder
            self.dialect = dialect
            ready = dialect == .plain
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            switch frame.opcode {
            case .text:
                let stamp = frame.data.withUnsafeReadableBytes { timestamp(in: $0) }
                if let stamp {
                    recorder.record(sent: stamp)
                    if echoing { sendEcho(channel: context.channel) }
                } else {
                    control(String(buffer: frame.data), context: context)
                }
            case .ping:
                let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
                context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
            default:
                break
            }
        }

        /// The messages that are not timestamped: authentication, Engine.IO's open, connect and ping.
        private func control(_ text: String, context: ChannelHandlerContext) {
            switch dialect {
            case .webSockets where !ready && text.hasPrefix(#"["Client/authentication""#):
                ready = true
                recorder.markReady()
            case .socketIO where text == "2":
                write("3", channel: context.channel)
            case .socketIO where text.hasPrefix("0{"):
                write("40", channel: context.channel)
            case .socketIO where !ready && text.hasPrefix("40"):
                ready = true
                recorder.markReady()
            default:
                break
            }
        }

        private func write(_ text: String, channel: any Channel) {
            channel.writeAndFlush(
                WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(string: text)),
                promise: nil)
        }

        func sendEcho(channel: any Channel) {
            let stamp = DispatchTime.now().uptimeNanoseconds
            let text = (dialect == .socketIO ? "42" : "") + #"["echo",{"ts":\#(stamp)}]"#
            channel.writeAndFlush(
                WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(string: text)),
                promise: nil)
        }
    }
}
