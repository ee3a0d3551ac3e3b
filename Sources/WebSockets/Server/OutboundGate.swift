/// Decides whether a frame may be written to a connection, with no channel: every frame the server writes —
/// messages, replies, pings and the pongs a browser's pings ask for — passes here, so that all of them count against
/// `max_outbound_buffer`. NIO reports the channel unwritable once the bytes queued for it pass that bound; a frame
/// offered then makes the connection a slow reader, which is closed. (Pongs used to be written past this check: a
/// client that pinged and never read grew the server by 150 MiB with 400,000 pings.)
struct OutboundGate {
    /// What to do with a frame.
    enum Decision: Equatable {
        /// Write it; `firstSinceFlush`: the connection needs a flush afterwards.
        case write(firstSinceFlush: Bool)
        /// The outbound buffer is full: close the connection as a slow reader (the gate is now closing).
        case slowReader
        /// The connection is closing: drop the frame.
        case closing
    }

    /// The channel's writability, as NIO last reported it.
    var writable = true
    /// Whether a close has begun: nothing more is written.
    private(set) var closing = false
    /// Whether frames were written since the last flush.
    private(set) var awaitingFlush = false

    /// Whether a frame may be written now.
    mutating func admit() -> Decision {
        if closing { return .closing }
        guard writable else {
            closing = true
            return .slowReader
        }
        if awaitingFlush { return .write(firstSinceFlush: false) }
        awaitingFlush = true
        return .write(firstSinceFlush: true)
    }

    /// Whether a flush is due; the frames written so far are then considered flushed.
    mutating func takeFlush() -> Bool {
        defer { awaitingFlush = false }
        return awaitingFlush
    }

    /// Begins the close; `false` when it had already begun (a close frame is sent once).
    mutating func beginClose() -> Bool {
        if closing { return false }
        closing = true
        return true
    }
}
