import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// What one event loop does for all of its connections at once: writes sends in batches, and pings.
///
/// Sends for the loop's connections queue here from any thread; one task on the loop writes everything queued
/// and then flushes each written connection once. Under load, sends pile up while the loop is busy, so a
/// connection's pending frames leave in one `writev`: the kernel's cost per write, the bulk of a delivery's cost,
/// is paid per batch instead of per message. One timer per loop pings its connections and closes silent ones, so
/// an idle connection has no timer of its own; each tick visits one of `pingInterval / tick` buckets of
/// connections, so that connections opened together are not all pinged on the same tick (19,000 pings at once
/// hold a loop for ~150 ms, a delay every send then waiting shares).
final class LoopShard: Sendable {
    private struct Delivery {
        var frame: ByteBuffer
        /// `nil`: every connection of the loop.
        var connections: [Connection]?
        var id: Int64?
    }

    private struct Queue {
        var deliveries: [Delivery] = []
        var scheduled = false
    }

    /// State only the loop touches.
    private final class Local {
        var buckets: [[ObjectIdentifier: WebSocketConnectionHandler]]
        var count = 0
        var cursor = 0
        var sweeper: RepeatedTask?
        /// Connections not yet authenticated, with their deadline: only these, not every connection, are looked at
        /// for the authentication timeout; emptied as connections authenticate or close.
        var unauthenticated: [ObjectIdentifier: (handler: WebSocketConnectionHandler, deadline: NIODeadline)] = [:]

        init(buckets: Int) {
            self.buckets = Array(repeating: [:], count: buckets)
        }

        /// A handler's bucket: spread at random (the identifier's hash), found again without storing it.
        func bucket(of handler: WebSocketConnectionHandler) -> Int {
            Int(UInt(bitPattern: ObjectIdentifier(handler).hashValue) % UInt(buckets.count))
        }
    }

    let eventLoop: any EventLoop
    private let queue = NIOLockedValueBox(Queue())
    private let local: NIOLoopBound<Local>
    private let idleTimeout: TimeAmount
    private let authenticationTimeout: TimeAmount
    /// How often the sweep runs: every 100 ms, so that a tick's pings hold the loop briefly (at 19,000 connections
    /// and a 25 s interval, 76 pings a tick, well under a millisecond).
    private let tick: TimeAmount
    private let metrics: ServerMetrics

    init(eventLoop: any EventLoop, settings: Settings, metrics: ServerMetrics) {
        self.eventLoop = eventLoop
        // Settings are checked before the server starts: the interval is at least 50 ms.
        let interval = TimeAmount.milliseconds(max(1, Int64(settings.pingInterval * 1000)))
        self.idleTimeout = .milliseconds(Int64(settings.idleTimeout * 1000))
        self.authenticationTimeout = .milliseconds(Int64(settings.authenticationTimeout * 1000))
        self.tick = min(interval, .milliseconds(100))
        let buckets = max(1, Int((Double(interval.nanoseconds) / Double(tick.nanoseconds)).rounded()))
        self.local = NIOLoopBound(Local(buckets: buckets), eventLoop: eventLoop)
        self.metrics = metrics
    }

    /// Queues `frame` (an encoded text frame) for `connections`, all of this loop, or for every connection of the
    /// loop when `connections` is `nil` (a send to everyone then touches no list of connections, only the loop's
    /// own registry, on the loop).
    func deliver(_ frame: ByteBuffer, to connections: [Connection]?, id: Int64?) {
        let schedule = queue.withLockedValue { queue -> Bool in
            queue.deliveries.append(Delivery(frame: frame, connections: connections, id: id))
            if queue.scheduled { return false }
            queue.scheduled = true
            return true
        }
        if schedule {
            eventLoop.execute { self.drain() }
        }
    }

    private func drain() {
        let deliveries = queue.withLockedValue { queue -> [Delivery] in
            queue.scheduled = false
            defer { queue.deliveries = [] }
            return queue.deliveries
        }
        var count = 0
        let now = Int64(Date().timeIntervalSince1970)
        if deliveries.count == 1 {
            // Nothing to batch: write and flush each connection in one pass, so the first recipients get the frame
            // without waiting for the frame to be queued on all the others.
            let delivery = deliveries[0]
            forEachRecipient(of: delivery) { handler in
                if handler.queue(frame: delivery.frame, id: delivery.id, now: now) != .notWritten {
                    handler.flushQueued()
                    count += 1
                }
            }
        } else {
            var written: [WebSocketConnectionHandler] = []
            for delivery in deliveries {
                forEachRecipient(of: delivery) { handler in
                    switch handler.queue(frame: delivery.frame, id: delivery.id, now: now) {
                    case .firstSinceFlush:
                        written.append(handler)
                        count += 1
                    case .queued:
                        count += 1
                    case .notWritten:
                        break
                    }
                }
            }
            for handler in written { handler.flushQueued() }
        }
        if count > 0 { metrics.messagesOut.increment(by: count) }
    }

    private func forEachRecipient(of delivery: Delivery, _ body: (WebSocketConnectionHandler) -> Void) {
        if let connections = delivery.connections {
            for connection in connections { body(connection.handlerOnLoop()) }
        } else {
            // A close during the walk unregisters its handler: the walk goes over a copy of the registry.
            for bucket in local.value.buckets {
                for handler in bucket.values { body(handler) }
            }
        }
    }

    // MARK: Pings

    /// Starts pinging `handler`'s connection; on the loop.
    func register(_ handler: WebSocketConnectionHandler) {
        let local = self.local.value
        if local.buckets[local.bucket(of: handler)].updateValue(handler, forKey: ObjectIdentifier(handler)) == nil {
            local.count += 1
        }
        if !handler.isAuthenticated {
            local.unauthenticated[ObjectIdentifier(handler)] = (handler, .now() + authenticationTimeout)
        }
        guard local.sweeper == nil else { return }
        local.sweeper = eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { _ in
            self.sweep()
        }
    }

    /// Stops pinging `handler`'s connection; on the loop. The timer stops with the loop's last connection.
    func unregister(_ handler: WebSocketConnectionHandler) {
        let local = self.local.value
        if local.buckets[local.bucket(of: handler)].removeValue(forKey: ObjectIdentifier(handler)) != nil {
            local.count -= 1
        }
        forgetUnauthenticated(handler, local)
        if local.count == 0 {
            local.sweeper?.cancel()
            local.sweeper = nil
        }
    }

    /// `handler`'s connection authenticated: no deadline for it any more; on the loop.
    func authenticated(_ handler: WebSocketConnectionHandler) {
        forgetUnauthenticated(handler, local.value)
    }

    private func forgetUnauthenticated(_ handler: WebSocketConnectionHandler, _ local: Local) {
        guard local.unauthenticated.removeValue(forKey: ObjectIdentifier(handler)) != nil else { return }
        // An emptied dictionary keeps its storage: after a reconnect storm, let it go.
        if local.unauthenticated.isEmpty { local.unauthenticated = [:] }
    }

    /// Visits the next bucket: each connection once per ping interval; and closes the connections whose
    /// authentication deadline passed.
    private func sweep() {
        let local = self.local.value
        let now = NIODeadline.now()
        if !local.unauthenticated.isEmpty {
            for (_, entry) in local.unauthenticated where entry.deadline <= now {
                forgetUnauthenticated(entry.handler, local)
                entry.handler.authenticationTimedOut()
            }
        }
        let bucket = local.cursor
        local.cursor = (local.cursor + 1) % local.buckets.count
        for handler in Array(local.buckets[bucket].values) {
            handler.checkLiveness(now: now, idleTimeout: idleTimeout)
        }
    }
}
