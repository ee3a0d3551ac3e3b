import NIOCore
import WebSocketsConnection

/// The sends to everyone that an event loop has not yet written to all of its connections, numbered in order.
///
/// Each connection remembers the number of the next broadcast it has not been given (its cursor); a visit gives it
/// everything from its cursor to the head as one buffer. Broadcasts that arrive while a pass over the connections
/// is under way join the buffers of the connections not visited yet, so the busier the loop, the more frames each
/// write carries. The buffer for a range is joined once and shared by every connection that needs that range
/// (consecutive connections of a pass mostly do): once for the connections that take plain frames and once for
/// those that take compressed ones with the full window (every browser); others join theirs themselves.
package struct BroadcastLog {
    /// A broadcast: its encoded frames and, in a cluster, its message id.
    package struct Entry {
        package var frame: OutboundFrame
        package var id: Int64?
    }

    /// The entries from ``start`` on.
    private(set) var entries: [Entry] = []
    /// The number of `entries[0]`.
    private(set) var start: UInt64 = 0
    /// The number the next broadcast gets.
    package var head: UInt64 { start + UInt64(entries.count) }
    /// The last joined range and its buffer, for plain frames (`[0]`) and for a 15-bit window (`[1]`).
    private var joined: [(from: UInt64, to: UInt64, buffer: ByteBuffer)?] = [nil, nil]

    /// Adds a broadcast.
    package mutating func append(_ frame: OutboundFrame, id: Int64?) {
        entries.append(Entry(frame: frame, id: id))
    }

    /// The entries from `cursor` (at least ``start``) to the head.
    package func entries(from cursor: UInt64) -> ArraySlice<Entry> {
        entries[Int(max(cursor, start) - start)...]
    }

    /// Everything from `cursor` to the head as one buffer, each frame as a connection with a deflate window of
    /// `window` bits takes it (0: plain), and how many frames it holds; `nil` when there is nothing.
    package mutating func frames(from cursor: UInt64, window: UInt8 = 0) -> (buffer: ByteBuffer, count: Int)? {
        let from = max(cursor, start)
        guard from < head else { return nil }
        let count = Int(head - from)
        if count == 1 { return (entries[entries.count - 1].frame.bytes(forWindow: window), 1) }
        let cache = window == 0 ? 0 : window == 15 ? 1 : nil
        if let cache, let joined = joined[cache], joined.from == from, joined.to == head {
            return (joined.buffer, count)
        }
        let slice = entries[Int(from - start)...]
        let size = slice.reduce(0) { $0 + $1.frame.bytes(forWindow: window).readableBytes }
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        for entry in slice { buffer.writeImmutableBuffer(entry.frame.bytes(forWindow: window)) }
        if let cache { joined[cache] = (from, head, buffer) }
        return (buffer, count)
    }

    /// Forgets the broadcasts before `cursor`: every connection has them.
    mutating func forget(before cursor: UInt64) {
        let until = min(cursor, head)
        guard until > start else { return }
        let count = Int(until - start)
        entries.removeFirst(count)
        start += UInt64(count)
        if entries.isEmpty {
            // An emptied array keeps its storage: a burst's frames are let go.
            entries = []
            joined = [nil, nil]
        }
    }
}
