import NIOCore
import WebSocketsCore
import WebSocketsProtocol

/// The live messages a connection of a cluster holds from its start until its replay is written: a send that
/// arrived while the site checked the session once reached the tab before its replay, and again in it.
package final class HeldFrames {
    /// A held frame and the id of its message, if it has one.
    package typealias Frame = (frame: ByteBuffer, id: Int64?)

    /// More frames than this close the connection, whatever their bytes: connections that never authenticate must
    /// not hold broadcasts.
    static let maximumCount = 10_000

    private(set) var frames: [Frame] = []
    /// The bytes of the held frames, bounded by `max_outbound_buffer` like an outbound buffer.
    private(set) var bytes = 0

    package var count: Int { frames.count }

    package func append(_ frame: ByteBuffer, id: Int64?) {
        frames.append((frame, id))
        bytes += frame.readableBytes
    }
}

/// The messages a replayed connection's browser already has: those at or below its `last_id`, and those its replay
/// carried.
package final class DeliveredIDs {
    package let through: Int64
    package let replayed: Set<Int64>

    package init(through: Int64, replayed: Set<Int64>) {
        self.through = through
        self.replayed = replayed
    }

    /// Whether the message `id` reached the browser already.
    package func contains(_ id: Int64) -> Bool {
        id <= through || replayed.contains(id)
    }
}
