import NIOCore
import WebSocketsCore
import WebSocketsProtocol

/// The frames written to one socket of ours and not yet taken by the kernel, with the writability rule SwiftNIO
/// applies to a channel (unwritable above `high` bytes, writable again at `low` or below), and no socket of its own,
/// so that it can be tested on byte counts alone.
///
/// Its storage is let go whenever it drains: an idle connection holds no array (the cost is one allocation per
/// write that leaves something queued or carries several frames).
package struct OutputQueue {
    private(set) var frames: [ByteBuffer] = []
    /// Bytes queued and not yet written.
    private(set) var bytes = 0
    /// Whether the queue is at or below its bound, as a channel's writability.
    private(set) var isWritable = true
    package let high: Int
    package let low: Int

    package init(high: Int, low: Int) {
        self.high = high
        self.low = low
    }

    package var isEmpty: Bool { frames.isEmpty }

    /// Queues `frame`; `true` when this made the queue unwritable.
    package mutating func append(_ frame: ByteBuffer) -> Bool {
        frames.append(frame)
        bytes += frame.readableBytes
        guard isWritable, bytes > high else { return false }
        isWritable = false
        return true
    }

    /// Takes off the `written` bytes the kernel accepted, from the front; `true` when this made the queue writable.
    mutating func consume(_ written: Int) -> Bool {
        var left = written
        var whole = 0
        while whole < frames.count, frames[whole].readableBytes <= left {
            left -= frames[whole].readableBytes
            whole += 1
        }
        if whole == frames.count {
            frames = []
        } else {
            frames.removeFirst(whole)
            if left > 0 { frames[0].moveReaderIndex(forwardBy: left) }
        }
        bytes -= written
        guard !isWritable, bytes <= low else { return false }
        isWritable = true
        return true
    }

    /// Drops everything queued (the socket closed).
    package mutating func removeAll() {
        frames = []
        bytes = 0
    }
}
