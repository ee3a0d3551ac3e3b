import NIOCore

/// Which of a browser's pings get a pong: the latest of a read, and none while the connection's bytes wait for the
/// kernel (RFC 6455 5.5.3 lets an endpoint answer only the most recent ping). A pong queued behind bytes the client
/// does not read was one more buffer held for it, about 130 bytes each, counted as its 2; now a client that pings
/// without reading costs nothing per ping, and its latest ping is answered once its bytes move again.
package struct PingAnswer {
    /// The latest ping not answered yet.
    private(set) var latest: ByteBuffer?

    /// A ping with `payload` was read: the pong's payload to write now, or `nil` while bytes wait for the kernel
    /// (then it is kept, replacing any earlier one).
    package mutating func received(_ payload: ByteBuffer, backlogged: Bool) -> ByteBuffer? {
        latest = payload
        return due(backlogged: backlogged)
    }

    /// The pong's payload to write now, if a ping is unanswered and nothing waits for the kernel.
    package mutating func due(backlogged: Bool) -> ByteBuffer? {
        guard !backlogged, let payload = latest else { return nil }
        latest = nil
        return payload
    }
}
