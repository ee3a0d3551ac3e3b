import Dispatch
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import WebSockets

/// Latencies in nanoseconds, from the publisher's timestamp in the details to the moment a client read the frame.
public final class LatencyRecorder: Sendable {
    private let samples = NIOLockedValueBox<[UInt64]>([])
    private let authenticated = NIOLockedValueBox(0)
    private let clusterMode: Bool

    /// A recorder; `cluster` when the server is part of a cluster.
    public init(cluster: Bool) {
        clusterMode = cluster
    }

    /// Records one frame's text.
    public func record(_ text: String) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard let message = try? Message(frame: text) else { return }
        // A single server ends authentication with "ok"; a cluster with Client/recovery after it.
        if message.action == (clusterMode ? "Client/recovery" : "Client/authentication") {
            authenticated.withLockedValue { $0 += 1 }
            return
        }
        guard let sent = message.details["ts"]?.intValue else { return }
        samples.withLockedValue { $0.append(now &- UInt64(sent)) }
    }

    /// Connections that finished authenticating.
    public var authenticatedCount: Int { authenticated.withLockedValue { $0 } }

    /// The samples so far, and clears them.
    public func take() -> [UInt64] {
        samples.withLockedValue { samples in
            defer { samples = [] }
            return samples
        }
    }
}

/// A WebSocket client that authenticates with a cookie and records the latency of every message it reads.
public enum LatencyClient {
    /// Connects from `localAddress` (one of 127.0.0.x, so that more connections than one address's ephemeral
    /// ports fit), authenticates with `cookie`, and records every message into `recorder`.
    public static func connect(
        port: Int, cookie: String, recorder: LatencyRecorder, localAddress: String = "127.0.0.1"
    ) async throws -> any Channel {
        let group = MultiThreadedEventLoopGroup.singleton
        let upgraded = group.next().makePromise(of: Void.self)
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/WebSockets")
        head.headers.add(name: "Host", value: "127.0.0.1:\(port)")
        head.headers.add(name: "Cookie", value: cookie)
        let requestHead = head
        let channel = try await ClientBootstrap(group: group)
            .bind(to: try SocketAddress(ipAddress: localAddress, port: 0))
            .channelInitializer { channel in
                let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
                let upgrader = NIOWebSocketClientUpgrader(requestKey: key, maxFrameSize: 1 << 20) { channel, _ in
                    channel.pipeline.removeHandler(name: "request").flatMapThrowing {
                        try channel.pipeline.syncOperations.addHandler(Reader(recorder: recorder))
                        upgraded.succeed()
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                    try channel.pipeline.syncOperations.addHandler(UpgradeRequester(head: requestHead), name: "request")
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await upgraded.futureResult.get()
        let hello = ByteBuffer(string: #"["Client/authentication",null]"#)
        try await channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: hello)).get()
        return channel
    }

    private final class Reader: ChannelInboundHandler {
        typealias InboundIn = WebSocketFrame
        typealias OutboundOut = WebSocketFrame
        let recorder: LatencyRecorder
        init(recorder: LatencyRecorder) { self.recorder = recorder }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            switch frame.opcode {
            case .text: recorder.record(String(buffer: frame.unmaskedData))
            case .ping:
                let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
                context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
            default: break
            }
        }
    }
}
