import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization
import WebSocketsCluster
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol
import WebSocketsSite

/// What the HTTP handler tells the guard in front of it (``HTTPConnectionGuard/note(_:)``).
enum HTTPConnectionEvent {
    /// A request's head and body have arrived.
    case requestReceived
    /// Its answer has been written.
    case responseSent
    /// Its answer waits for the client to read the ones before.
    case answerWaiting
}

/// Open HTTP (non-WebSocket) connections of one server, against `max_http_connections`.
final class HTTPConnectionCount: Sendable {
    private let count = Atomic<Int>(0)
    /// When a refusal is logged: the rule every refusal of the server follows.
    private let throttle = NIOLockedValueBox(LogThrottle())

    /// Counts a new connection; `false` (and not counted) when `limit` are already open.
    func admit(limit: Int) -> Bool {
        let after = count.wrappingAdd(1, ordering: .relaxed).newValue
        if after <= limit { return true }
        count.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    /// A counted connection closed or became a WebSocket.
    func release() {
        count.wrappingSubtract(1, ordering: .relaxed)
    }

    /// How many are open.
    var value: Int { count.load(ordering: .relaxed) }

    /// Counts a refusal; returns how many to report when a log line is due (the first, then at most one every
    /// 10 s): a flood over the cap must not become a flood of log lines.
    func noteRefusal(now: ContinuousClock.Instant = .now) -> Int? {
        throttle.withLockedValue { $0.admit("http_cap", now: now) }
    }
}

/// The first handler of every connection while it speaks HTTP: caps the open HTTP connections and applies the time
/// limits of ``HTTPRequestClock`` (slowloris, idle keep-alive). Removed when the connection becomes a WebSocket,
/// which has its own limits.
final class HTTPConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let counter: HTTPConnectionCount
    private let limit: Int
    private let metrics: ServerMetrics
    private let logger: Logger
    private let settings: Settings
    /// The time limits, once the handler is in a pipeline (they need its loop).
    private var timeLimit: HTTPTimeLimit?
    private var counted = false

    init(settings: Settings, counter: HTTPConnectionCount, metrics: ServerMetrics, logger: Logger) {
        self.counter = counter
        self.limit = settings.maxHTTPConnections
        self.metrics = metrics
        self.logger = logger
        self.settings = settings
    }

    func channelActive(context: ChannelHandlerContext) {
        guard counter.admit(limit: limit) else {
            if let refused = counter.noteRefusal() {
                logger.warning(
                    "HTTP connections refused: too many open",
                    metadata: [
                        "limit": "\(limit)", "refused": "\(refused)",
                        "ip": "\(context.channel.remoteAddress?.ipAddress ?? "")",
                    ])
            }
            metrics.closed(reason: .httpCap)
            context.close(promise: nil)
            return
        }
        counted = true
        timeLimit?.change { $0.opened() }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        timeLimit?.change { $0.bytesArrived() }
        context.fireChannelRead(data)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timeLimit = HTTPTimeLimit(settings: settings, eventLoop: context.eventLoop) {
            [weak self, logger, metrics] phase in
            guard self != nil else { return }
            logger.debug(
                "HTTP connection closed: \(HTTPTimeLimit.describe(phase))",
                metadata: ["ip": "\(channel.remoteAddress?.ipAddress ?? "")"])
            metrics.closed(reason: .httpTimeout)
            channel.close(promise: nil)
        }
    }

    /// What the HTTP handler behind it tells it, on the connection's loop. A call rather than a user event sent
    /// down the pipeline: two of those per request went through every outbound handler and a dynamic cast.
    func note(_ event: HTTPConnectionEvent) {
        switch event {
        case .requestReceived: timeLimit?.change { $0.requestReceived() }
        case .responseSent: timeLimit?.change { $0.responseSent() }
        case .answerWaiting: timeLimit?.change { $0.answerWaiting() }
        }
    }

    /// The connection's socket moves to a loop of ours (``PublisherSniffer``), which counts it from now on and
    /// applies the time limits itself.
    func handOver() {
        timeLimit?.stop()
        counted = false
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeLimit?.stop()
        timeLimit = nil
        if counted {
            counted = false
            counter.release()
        }
    }
}
