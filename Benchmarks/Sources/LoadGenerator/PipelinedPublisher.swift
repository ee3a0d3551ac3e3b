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

    /// What the publisher has sent and had answered.
    private struct Counts {
        var sent = 0
        var inFlight = 0
        var failed = 0
        var closed = false
    }

    /// Sends what the pacing and the depth allow; run on the connection's loop only, when an answer frees a place
    /// and when the pacing makes a send due. Before, a task looked every 200 µs: with 8 in flight that capped the
    /// publisher near 13,000 sends/s whatever the server could take (8 / ~0.6 ms of sleep on a busy core; both
    /// `ws` and ours stopped there in the targeted row).
    private struct Sender: Sendable {
        let channel: any Channel
        let counts: NIOLockedValueBox<Counts>
        let pacer: SendPacer
        let depth: Int
        let port: Int
        let request: @Sendable (Int) -> HTTPClientRequest

        func refill() {
            guard let due = pacer.due() else { return }
            let (first, count) = counts.withLockedValue { counts -> (Int, Int) in
                guard !counts.closed else { return (0, 0) }
                let count = max(0, min(due - counts.sent, depth - counts.inFlight))
                defer {
                    counts.sent += count
                    counts.inFlight += count
                }
                return (counts.sent, count)
            }
            guard count > 0 else { return }
            for index in first..<first + count {
                for part in PipelinedPublisher.parts(of: request(index), port: port) {
                    channel.write(part, promise: nil)
                }
            }
            channel.flush()
        }
    }

    /// Counts the answers and their failures, and sends more as each comes; on the connection's loop.
    private final class Answers: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        let counts: NIOLockedValueBox<Counts>
        /// Set once connected.
        var sender: Sender?
        private var status = 0

        init(counts: NIOLockedValueBox<Counts>) {
            self.counts = counts
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): status = Int(head.status.code)
            case .body: break
            case .end:
                let failed = status >= 300
                counts.withLockedValue {
                    if failed { $0.failed += 1 }
                    $0.inFlight -= 1
                }
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            sender?.refill()
        }

        func channelInactive(context: ChannelHandlerContext) {
            counts.withLockedValue { $0.closed = true }
        }
    }

    /// Publishes `rate` times a second for `seconds`; `request` makes the `index`th request, stamped now. Returns how
    /// many were sent (fewer than asked when the server answers too slowly) and how many failed (answered with an
    /// error, or unanswered when the connection closed).
    func run(rate: Double, seconds: Double, request: @escaping @Sendable (Int) -> HTTPClientRequest) async -> (
        sent: Int, failed: Int
    ) {
        let counts = NIOLockedValueBox(Counts())
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(Answers(counts: counts))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
        } catch {
            return (0, Int(rate * seconds))
        }
        // Paced from the connection's start, not from before it.
        let pacer = SendPacer(rate: rate, seconds: seconds)
        let sender = Sender(
            channel: channel, counts: counts, pacer: pacer, depth: depth, port: port, request: request)
        try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: Answers.self).sender = sender
        }.get()
        // The answers send what they free; this loop sends what the clock makes due.
        while pacer.due() != nil {
            let (sent, closed) = counts.withLockedValue { ($0.sent, $0.closed) }
            if sent >= pacer.total || closed { break }
            channel.eventLoop.execute { sender.refill() }
            try? await Task.sleep(for: .microseconds(200))
        }
        // The last answers: at most 30 s (a slow peer's broadcast to 10,000).
        let deadline = ContinuousClock.now + .seconds(30)
        while counts.withLockedValue({ $0.inFlight > 0 && !$0.closed }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(1))
        }
        try? await channel.close()
        return counts.withLockedValue { ($0.sent, $0.failed + $0.inFlight) }
    }

    fileprivate static func parts(of request: HTTPClientRequest, port: Int) -> [HTTPClientRequestPart] {
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
