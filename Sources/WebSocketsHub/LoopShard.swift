import Foundation
import NIOConcurrencyHelpers
import NIOCore
import WebSocketsConnection
import WebSocketsCore
import WebSocketsProtocol

/// What one event loop does for all of its connections at once: writes sends in batches, and pings.
///
/// Sends for the loop's connections queue here from any thread; one task on the loop writes everything queued
/// and then flushes each written connection once. Under load, sends pile up while the loop is busy, so a
/// connection's pending frames leave in one `writev`: the kernel's cost per write, the bulk of a delivery's cost,
/// is paid per batch instead of per message. One timer per loop pings its connections and closes silent ones, so
/// an idle connection has no timer of its own; each tick visits one of `pingInterval / tick` buckets of
/// connections, so that connections opened together are not all pinged on the same tick (19,000 pings at once
/// hold a loop for ~150 ms, a delay every send then waiting shares).
package final class LoopShard: Sendable {
    private struct Delivery {
        var frame: OutboundFrame
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
        /// The sends to everyone not yet written to every connection.
        var log = BroadcastLog()
        /// The connections the pass under way has yet to visit, from `passIndex` on (empty: no pass).
        var pass: [WebSocketConnectionHandler] = []
        var passIndex = 0
        /// The log's head when the pass began: once it ends, every connection has what came before.
        var passFrom: UInt64 = 0
        /// Whether the pass's next part is scheduled.
        var passScheduled = false
        /// Whether the queue is being taken or a pass part walked: a close during either takes nothing.
        var busy = false

        init(buckets: Int) {
            self.buckets = Array(repeating: [:], count: buckets)
        }

        /// A handler's bucket: spread at random (the identifier's hash), found again without storing it.
        func bucket(of handler: WebSocketConnectionHandler) -> Int {
            Int(UInt(bitPattern: ObjectIdentifier(handler).hashValue) % UInt(buckets.count))
        }
    }

    package let eventLoop: any EventLoop
    /// Where the handling of this loop's connections' messages runs (see ``LoopTaskExecutor``).
    package let taskExecutor: LoopTaskExecutor
    private let queue = NIOLockedValueBox(Queue())
    private let local: NIOLoopBound<Local>
    private let idleTimeout: TimeAmount
    private let authenticationTimeout: TimeAmount
    /// How often the sweep runs: every 100 ms, so that a tick's pings hold the loop briefly (at 19,000 connections
    /// and a 25 s interval, 76 pings a tick, well under a millisecond).
    private let tick: TimeAmount
    private let metrics: ServerMetrics

    package init(eventLoop: any EventLoop, settings: Settings, metrics: ServerMetrics) {
        self.eventLoop = eventLoop
        self.taskExecutor = LoopTaskExecutor(eventLoop: eventLoop)
        // Settings are checked before the server starts: the interval is at least 50 ms.
        let interval = TimeAmount.milliseconds(max(1, Int64(settings.pingInterval * 1000)))
        self.idleTimeout = .milliseconds(Int64(settings.idleTimeout * 1000))
        self.authenticationTimeout = .milliseconds(Int64(settings.authenticationTimeout * 1000))
        self.tick = min(interval, .milliseconds(100))
        let buckets = max(1, Int((Double(interval.nanoseconds) / Double(tick.nanoseconds)).rounded()))
        self.local = NIOLoopBound(Local(buckets: buckets), eventLoop: eventLoop)
        self.metrics = metrics
    }

    /// Queues `frame` (an encoded text frame, and its compressed form) for `connections`, all of this loop, or for
    /// every connection of the loop when `connections` is `nil` (a send to everyone then touches no list of
    /// connections, only the loop's own registry, on the loop).
    package func deliver(_ frame: OutboundFrame, to connections: [Connection]?, id: Int64?) {
        let idle = queue.withLockedValue { queue -> Bool in
            queue.deliveries.append(Delivery(frame: frame, connections: connections, id: id))
            return !queue.scheduled
        }
        // While a read's requests are being routed, the writer waits for all of them (see DeliveryCork).
        if idle && !DeliveryCork.hold(self) { scheduleDrain() }
    }

    /// Wakes the writer if sends wait and it is not already woken.
    func scheduleDrain() {
        let schedule = queue.withLockedValue { queue -> Bool in
            guard !queue.scheduled, !queue.deliveries.isEmpty else { return false }
            queue.scheduled = true
            return true
        }
        if schedule { eventLoop.execute { self.drain() } }
    }

    /// How many connections a part of a pass visits before the loop turns (reading requests, pinging) and new
    /// broadcasts join the pass: 0.3 to 4 ms of writes (1.3 to 17 µs per connection). With 1,024, a pass over 2,000
    /// subscribers read its publisher once, and with 8 requests in flight carried 8 broadcasts: 681,797
    /// deliveries/s at 1.44 µs each, against 2,913,173 at 0.33 µs with 256 (`LoadGenerator run --subscribers 2000
    /// --broadcast-rates 500,2000 --message-bytes 100 --publisher pipelined`); at 10,000 the same either way, and
    /// the p99 of a broadcast alone in its pass (4.5/s) 176–192 ms against 222–260.
    static let passPart = 256

    /// Takes what was queued: a send to everyone goes into the log, for the pass over the connections; a send to
    /// some connections is written to them at once, after the broadcasts each has not had yet (so that every
    /// connection gets the sends in the order they were made).
    private func drain() {
        let local = self.local.value
        let now = Int64(Date().timeIntervalSince1970)
        takeQueued(local, now: now)
        if !local.passScheduled { continuePass(local, now: now) }
    }

    /// Takes the queued sends (see ``drain()``); whether one of them was a send to everyone. Never nested: a
    /// connection's close during the walk leaves what arrives meanwhile to the next drain.
    @discardableResult
    private func takeQueued(_ local: Local, now: Int64) -> Bool {
        guard !local.busy else { return false }
        local.busy = true
        defer { local.busy = false }
        let deliveries = queue.withLockedValue { queue -> [Delivery] in
            queue.scheduled = false
            defer { queue.deliveries = [] }
            return queue.deliveries
        }
        var broadcast = false
        var count = 0
        var unflushed: [WebSocketConnectionHandler] = []
        for delivery in deliveries {
            guard let connections = delivery.connections else {
                local.log.append(delivery.frame, id: delivery.id)
                broadcast = true
                continue
            }
            for connection in connections {
                let handler = connection.handlerOnLoop()
                var first = false
                count += catchUp(handler, local: local, now: now, first: &first)
                let result = handler.queue(
                    frame: delivery.frame.bytes(forWindow: handler.deflateWindow), id: delivery.id, now: now)
                if result != .notWritten { count += 1 }
                if first || result == .firstSinceFlush { unflushed.append(handler) }
            }
        }
        var flushes = 0
        for handler in unflushed where handler.flushQueued() { flushes += 1 }
        record(frames: count, flushes: flushes)
        return broadcast
    }

    /// Visits the next part of the pass (beginning one when broadcasts wait), writing and flushing each connection
    /// its broadcasts; schedules the next part while there is more.
    private func continuePass(_ local: Local, now: Int64) {
        if local.passIndex >= local.pass.count {
            // The pass (if any) is over: every connection has what came before its start.
            local.log.forget(before: local.passFrom)
            local.pass = []
            local.passIndex = 0
            guard local.log.head > local.log.start else { return }
            local.passFrom = local.log.head
            local.pass.reserveCapacity(local.count)
            for bucket in local.buckets { local.pass.append(contentsOf: bucket.values) }
        }
        let end = min(local.pass.count, local.passIndex + Self.passPart)
        var count = 0
        var flushes = 0
        local.busy = true
        defer { local.busy = false }
        for handler in local.pass[local.passIndex..<end] {
            var first = false
            count += catchUp(handler, local: local, now: now, first: &first)
            if first, handler.flushQueued() { flushes += 1 }
        }
        local.passIndex = end
        record(frames: count, flushes: flushes)
        if local.passIndex < local.pass.count || local.log.head > local.passFrom {
            local.passScheduled = true
            // After the loop's ready I/O: the publisher's next requests are read, answered and join this pass, and
            // the loop's other connections are served between parts (with `execute` the whole pass ran first).
            eventLoop.executeAfterPendingIO {
                let local = self.local.value
                local.passScheduled = false
                self.continuePass(local, now: Int64(Date().timeIntervalSince1970))
            }
        } else {
            local.log.forget(before: local.passFrom)
            local.pass = []
            local.passIndex = 0
        }
    }

    /// Queues for `handler` the broadcasts it has not had (before a frame of its own, or its close, so that the
    /// browser gets everything in the order it was sent); on the loop, without flushing.
    func bringUpToDate(_ handler: WebSocketConnectionHandler) {
        let local = self.local.value
        let now = Int64(Date().timeIntervalSince1970)
        // The sends accepted before this frame may still be queued, their writer not woken yet (held by the cork
        // of another loop's read, whose 202 the sender already has): they are taken first. A send to everyone
        // among them needs a pass.
        if takeQueued(local, now: now) { eventLoop.execute { self.drain() } }
        var first = false
        let count = catchUp(handler, local: local, now: now, first: &first)
        metrics.messagesOut(count)
    }

    /// Queues for `handler` the broadcasts it has not had, as one buffer; how many frames were queued, and in
    /// `first` whether the connection needs a flush.
    private func catchUp(_ handler: WebSocketConnectionHandler, local: Local, now: Int64, first: inout Bool) -> Int {
        let cursor = handler.broadcastCursor
        guard cursor < local.log.head else { return 0 }
        handler.broadcastCursor = local.log.head
        if handler.tracksMessageIDs {
            // In a cluster, a recovering connection holds or skips frames by id: one by one.
            var count = 0
            for entry in local.log.entries(from: cursor) {
                let result = handler.queue(
                    frame: entry.frame.bytes(forWindow: handler.deflateWindow), id: entry.id, now: now)
                if result != .notWritten { count += 1 }
                first = first || result == .firstSinceFlush
            }
            return count
        }
        guard let (buffer, frames) = local.log.frames(from: cursor, window: handler.deflateWindow) else { return 0 }
        let result = handler.queue(frame: buffer, id: nil, now: now)
        first = first || result == .firstSinceFlush
        return result == .notWritten ? 0 : frames
    }

    private func record(frames: Int, flushes: Int) {
        metrics.messagesOut(frames)
        if flushes > 0 { metrics.flushes.increment(by: flushes) }
    }

    // MARK: Pings

    /// Starts pinging `handler`'s connection; on the loop.
    package func register(_ handler: WebSocketConnectionHandler) {
        let local = self.local.value
        // Broadcasts sent before the connection opened are not for it.
        handler.broadcastCursor = local.log.head
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
    package func unregister(_ handler: WebSocketConnectionHandler) {
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
    package func authenticated(_ handler: WebSocketConnectionHandler) {
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
