import NIOCore
import WebSocketsCore

/// An HTTP connection's time limits on its event loop: its clock (``HTTPRequestClock``) and the one timer that
/// enforces it, for both kinds of HTTP connection (``HTTPConnectionGuard`` on SwiftNIO, ``PublisherConnection`` on a
/// socket loop). A change of phase only moves the deadline: the timer, when it fires, reports the expiry or waits
/// again. It is scheduled at most once per shortest limit per connection, instead of scheduled and cancelled twice for
/// each request of a keep-alive publisher.
final class HTTPTimeLimit {
    private var clock: HTTPRequestClock
    /// When the connection is to be closed unless the clock changes first; `nil`: no limit now.
    private var deadline: NIODeadline?
    private var timer: Scheduled<Void>?
    /// The shorter of the two limits: a timer set that far ahead never fires after a deadline set later.
    private let shortest: TimeAmount
    private let eventLoop: any EventLoop
    /// Told on the loop once a deadline passed, with the phase it passed in (``describe(_:)``).
    private let expired: (HTTPRequestClock.Phase) -> Void

    /// The limits of `settings` (`http_idle_timeout`, `http_request_timeout`) on `eventLoop`.
    init(settings: Settings, eventLoop: any EventLoop, expired: @escaping (HTTPRequestClock.Phase) -> Void) {
        clock = HTTPRequestClock(
            idleTimeout: .milliseconds(Int64(settings.httpIdleTimeout * 1000)),
            requestTimeout: .milliseconds(Int64(settings.httpRequestTimeout * 1000)))
        shortest = min(clock.idleTimeout, clock.requestTimeout)
        self.eventLoop = eventLoop
        self.expired = expired
    }

    /// How long a connection may stay idle (and an answer wait to be read).
    var idleTimeout: TimeAmount { clock.idleTimeout }

    /// Moves the clock (`change` is one of its steps) and the deadline with it; on the loop.
    func change(_ change: (inout HTTPRequestClock) -> HTTPRequestClock.Timer) {
        switch change(&clock) {
        case .keep:
            return
        case .disarm:
            deadline = nil
        case .arm(let timeout):
            deadline = .now() + timeout
            if timer == nil { schedule(in: shortest) }
        }
    }

    /// No limit any more: the connection closed or moved.
    func stop() {
        timer?.cancel()
        timer = nil
        deadline = nil
    }

    /// What a close in `phase` is, for the log.
    static func describe(_ phase: HTTPRequestClock.Phase) -> String {
        switch phase {
        case .idle: "idle"
        case .unread: "answers unread"
        case .receiving, .responding: "request too slow"
        }
    }

    private func schedule(in delay: TimeAmount) {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        timer = eventLoop.scheduleTask(in: delay) { bound.value.fired() }
    }

    private func fired() {
        timer = nil
        guard let deadline else { return }
        let now = NIODeadline.now()
        guard now >= deadline else {
            schedule(in: min(deadline - now, shortest))
            return
        }
        self.deadline = nil
        expired(clock.phase)
    }
}
