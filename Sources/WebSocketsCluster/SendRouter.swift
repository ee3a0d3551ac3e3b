import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol

/// Where a send goes: the one place that decides between this server's connections and the bus. Made by the
/// ``ClusterMode``.
package struct SendRouter: Sendable {
    package let hub: Hub
    package let bus: any MessageBus
    /// Whether sends may concern other servers (a cluster).
    private let sharesSends: Bool

    init(hub: Hub, bus: any MessageBus, sharesSends: Bool) {
        self.hub = hub
        self.bus = bus
        self.sharesSends = sharesSends
    }

    /// Whether `send` is delivered here at once: on a single server always, in a cluster when every connection it
    /// names (send_to 7) is on this server.
    func staysHere(_ send: Send) -> Bool {
        !sharesSends || hub.holdsAllConnections(of: send)
    }

    /// Delivers here what stays here and queues the rest on the bus, in order, without waiting; returns how many
    /// of this server's connections were written to at once.
    @discardableResult
    package func enqueue(_ sends: [Send]) -> Int {
        let (delivered, shared) = split(sends)
        if !shared.isEmpty { bus.enqueue(shared) }
        return delivered
    }

    /// Delivers here what stays here and hands the rest to the bus, returning once the bus accepted them (written
    /// to PostgreSQL, or delivered here during an outage); returns how many of this server's connections were
    /// written to at once, or `nil` when some sends went to the bus (their recipients are counted on each server).
    @discardableResult
    package func perform(_ sends: [Send]) async -> Int? {
        let (delivered, shared) = split(sends)
        guard !shared.isEmpty else { return delivered }
        await bus.publish(shared)
        return nil
    }

    /// Delivers here what stays here and hands the rest to the bus now, in order; calls `done` once the bus
    /// accepted them (written to PostgreSQL, or delivered here during an outage), from any thread, with how many
    /// of this server's connections were written to at once, or `nil` when some sends went to the bus. Unlike
    /// ``perform(_:)``, the caller need not wait: sends submitted before the bus writes share its write.
    package func submit(_ sends: [Send], then done: @escaping @Sendable (Int?) -> Void) {
        let (delivered, shared) = split(sends)
        guard !shared.isEmpty else { return done(delivered) }
        bus.publish(shared) { done(nil) }
    }

    private func split(_ sends: [Send]) -> (delivered: Int, shared: [Send]) {
        var delivered = 0
        var shared: [Send] = []
        for send in sends {
            if staysHere(send) { delivered += hub.deliver(send) } else { shared.append(send) }
        }
        return (delivered, shared)
    }
}
