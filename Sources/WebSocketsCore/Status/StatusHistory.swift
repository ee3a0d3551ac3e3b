/// The status page's charts: messages in and out and bytes out per second, one point per sample, the last
/// ``capacity`` of them in a fixed ring (450 points, 15 minutes at one every 2 s: 5.4 KiB, allocated once).
package struct StatusHistory: Sendable {
    /// One chart point: three rates per second.
    package struct Point: Sendable, Equatable {
        /// Messages read from browsers per second.
        package var messagesIn: Float
        /// Frames queued for browsers per second.
        package var messagesOut: Float
        /// Bytes written to browsers per second.
        package var bytesOut: Float

        /// A point of these rates.
        package init(messagesIn: Float, messagesOut: Float, bytesOut: Float) {
            self.messagesIn = messagesIn
            self.messagesOut = messagesOut
            self.bytesOut = bytesOut
        }
    }

    /// How many points it keeps.
    package let capacity: Int
    private var ring: [Point]
    private var next = 0
    /// How many points it holds (up to ``capacity``).
    package private(set) var count = 0

    /// An empty history of `capacity` points.
    package init(capacity: Int = 450) {
        precondition(capacity > 0)
        self.capacity = capacity
        ring = Array(repeating: Point(messagesIn: 0, messagesOut: 0, bytesOut: 0), count: capacity)
    }

    /// Adds `point` as the newest, forgetting the oldest when full.
    package mutating func append(_ point: Point) {
        ring[next] = point
        next = (next + 1) % capacity
        count = min(count + 1, capacity)
    }

    /// The points, oldest first.
    package var points: [Point] {
        let start = (next - count + capacity) % capacity
        return (0..<count).map { ring[(start + $0) % capacity] }
    }
}
