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
    private var clock: HTTPRequestClock
    /// When the connection is closed unless the clock changes first; `nil`: no limit now.
    private var deadline: NIODeadline?
    /// The one timer, pending or not. A change of phase only moves `deadline`: the timer, when it fires, closes
    /// the connection or waits again. It is scheduled at most once per `shortest` per connection, instead of
    /// scheduled and cancelled twice for each request of a keep-alive publisher.
    private var timer: Scheduled<Void>?
    /// The shorter of the two limits: a timer set that far ahead never fires after a deadline set later.
    private let shortest: TimeAmount
    private var counted = false
    /// Its own context, while it is in the pipeline, for ``note(_:)``.
    private var context: ChannelHandlerContext?

    init(settings: Settings, counter: HTTPConnectionCount, metrics: ServerMetrics, logger: Logger) {
        self.counter = counter
        self.limit = settings.maxHTTPConnections
        self.metrics = metrics
        self.logger = logger
        self.clock = HTTPRequestClock(
            idleTimeout: .milliseconds(Int64(settings.httpIdleTimeout * 1000)),
            requestTimeout: .milliseconds(Int64(settings.httpRequestTimeout * 1000)))
        self.shortest = min(clock.idleTimeout, clock.requestTimeout)
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
        apply(clock.opened(), context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        apply(clock.bytesArrived(), context: context)
        context.fireChannelRead(data)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// What the HTTP handler behind it tells it, on the connection's loop. A call rather than a user event sent
    /// down the pipeline: two of those per request went through every outbound handler and a dynamic cast.
    func note(_ event: HTTPConnectionEvent) {
        guard let context else { return }
        switch event {
        case .requestReceived: apply(clock.requestReceived(), context: context)
        case .responseSent: apply(clock.responseSent(), context: context)
        case .answerWaiting: apply(clock.answerWaiting(), context: context)
        }
    }

    /// The connection's socket moves to a loop of ours (``PublisherSniffer``), which counts it from now on and
    /// applies the time limits itself.
    func handOver() {
        timer?.cancel()
        timer = nil
        deadline = nil
        counted = false
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        timer?.cancel()
        timer = nil
        deadline = nil
        if counted {
            counted = false
            counter.release()
        }
    }

    private func apply(_ change: HTTPRequestClock.Timer, context: ChannelHandlerContext) {
        switch change {
        case .keep:
            return
        case .disarm:
            deadline = nil
        case .arm(let timeout):
            deadline = .now() + timeout
            if timer == nil { schedule(in: shortest, context: context) }
        }
    }

    private func schedule(in delay: TimeAmount, context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = bound.value
            handler.timerFired(context: context)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        guard let deadline else { return }
        let now = NIODeadline.now()
        guard now >= deadline else {
            schedule(in: min(deadline - now, shortest), context: context)
            return
        }
        timedOut(in: clock.phase, context: context)
    }

    private func timedOut(in phase: HTTPRequestClock.Phase, context: ChannelHandlerContext) {
        logger.debug(
            "HTTP connection closed: \(phase == .idle ? "idle" : phase == .unread ? "answers unread" : "request too slow")",
            metadata: ["ip": "\(context.channel.remoteAddress?.ipAddress ?? "")"])
        metrics.closed(reason: .httpTimeout)
        context.close(promise: nil)
    }
}
