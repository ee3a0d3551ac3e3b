import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import WebSockets

/// Publishes over one keep-alive connection with up to `depth` requests pipelined, as a queue worker, a cron job or
/// the SQL function's reader does: each request is written as soon as the rate and the depth allow, before the
/// answers to the earlier ones came. Sends arriving one after another on one connection are the case a server
/// that batches only concurrent publishers does not coalesce.
struct PipelinedPublisher {
    let port: Int
    let depth: Int

    /// Counts the answers and their failures; on the connection's loop.
    private final class Answers: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        let inFlight: NIOLockedValueBox<Int>
        let failed: NIOLockedValueBox<Int>
        let closed: NIOLockedValueBox<Bool>
        private var status = 0

        init(inFlight: NIOLockedValueBox<Int>, failed: NIOLockedValueBox<Int>, closed: NIOLockedValueBox<Bool>) {
            self.inFlight = inFlight
            self.failed = failed
            self.closed = closed
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): status = Int(head.status.code)
            case .body: break
            case .end:
                if status >= 300 { failed.withLockedValue { $0 += 1 } }
                inFlight.withLockedValue { $0 -= 1 }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            closed.withLockedValue { $0 = true }
        }
    }

    /// Publishes `rate` times a second for `seconds`; `request` makes the `index`th request, stamped now. Returns how
    /// many were sent (fewer than asked when the server answers too slowly) and how many failed (answered with an
    /// error, or unanswered when the connection closed).
    func run(rate: Double, seconds: Double, request: @escaping @Sendable (Int) -> HTTPClientRequest) async -> (
        sent: Int, failed: Int
    ) {
        let inFlight = NIOLockedValueBox(0)
        let failed = NIOLockedValueBox(0)
        let closed = NIOLockedValueBox(false)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(
                            Answers(inFlight: inFlight, failed: failed, closed: closed))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
        } catch {
            return (0, Int(rate * seconds))
        }
        // Paced from the connection's start, not from before it.
        let pacer = SendPacer(rate: rate, seconds: seconds)
        var sent = 0
        while sent < pacer.total, !closed.withLockedValue({ $0 }) {
            guard let due = pacer.due() else { break }
            var wrote = false
            while sent < due, inFlight.withLockedValue({ $0 }) < depth {
                inFlight.withLockedValue { $0 += 1 }
                for part in Self.parts(of: request(sent), port: port) { channel.write(part, promise: nil) }
                sent += 1
                wrote = true
            }
            if wrote { channel.flush() }
            try? await Task.sleep(for: .microseconds(200))
        }
        // The last answers: at most 30 s (a slow peer's broadcast to 10,000).
        let deadline = ContinuousClock.now + .seconds(30)
        while inFlight.withLockedValue({ $0 }) > 0, !closed.withLockedValue({ $0 }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(1))
        }
        let unanswered = inFlight.withLockedValue { $0 }
        try? await channel.close()
        return (sent, failed.withLockedValue { $0 } + unanswered)
    }

    private static func parts(of request: HTTPClientRequest, port: Int) -> [HTTPClientRequestPart] {
        let prefix = "http://127.0.0.1:\(port)"
        let path = request.url.hasPrefix(prefix) ? String(request.url.dropFirst(prefix.count)) : request.url
        var headers = HTTPHeaders(request.headers)
        headers.add(name: "Host", value: "127.0.0.1:\(port)")
        let body = request.body ?? []
        headers.add(name: "Content-Length", value: "\(body.count)")
        var parts: [HTTPClientRequestPart] = [
            .head(
                HTTPRequestHead(
                    version: .http1_1, method: HTTPMethod(rawValue: request.method), uri: path, headers: headers))
        ]
        if !body.isEmpty { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
        parts.append(.end(nil))
        return parts
    }
}
