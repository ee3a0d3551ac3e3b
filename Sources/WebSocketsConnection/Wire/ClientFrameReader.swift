import NIOCore
import NIOWebSocket
import WebSocketsCore
import WebSocketsProtocol

/// One frame from a browser, unmasked.
package struct ClientFrame {
    var fin: Bool
    /// RSV1: the first frame of a message compressed with permessage-deflate.
    var compressed = false
    var opcode: WebSocketOpcode
    package var payload: ByteBuffer
}

/// Why a browser's bytes are not a WebSocket frame the server accepts (RFC 6455, section 5).
package enum ClientFrameError: Error, Equatable {
    /// A frame's declared payload is larger than the limit.
    case tooLarge(Int)
    /// A frame that breaks the framing rules: reserved bits set, an unmasked frame, a control frame that is
    /// fragmented or longer than 125 bytes, an unknown opcode, a length with its top bit set.
    case protocolViolation(String)
}

/// Cuts a connection's inbound bytes into frames, keeping the bytes of an incomplete frame until the rest arrives.
///
/// Part of the connection's handler rather than a handler of its own: an idle connection keeps nothing here (no
/// buffer, no pipeline slot), which is most of what a WebSocket server holds per connection.
package struct ClientFrameReader {
    /// The largest payload a frame may declare.
    let maximumPayload: Int
    /// Whether the connection negotiated permessage-deflate: RSV1 then marks a compressed message's first frame.
    let allowsCompression: Bool
    /// Bytes of a frame not yet complete; `nil` between frames.
    private var pending: ByteBuffer?
    /// Whether `pending` is still the caller's buffer (see ``detach()``).
    private var borrowed = false

    package init(maximumPayload: Int, allowsCompression: Bool = false) {
        self.maximumPayload = maximumPayload
        self.allowsCompression = allowsCompression
    }

    /// Adds bytes read from the socket.
    package mutating func append(_ bytes: ByteBuffer) {
        if pending == nil {
            pending = bytes
            borrowed = true
        } else {
            var bytes = bytes
            // The frames already read go first: appended behind them, a buffer that never emptied (reads that never
            // end where a frame does) grew by every byte read, 67 MB for 10 s of 64 KB messages. What moves is at
            // most the start of one frame.
            if !borrowed { pending!.discardReadBytes() }
            pending!.writeBuffer(&bytes)
        }
    }

    /// The bytes the reader's kept buffer holds (its capacity), for tests.
    var keptCapacity: Int { pending?.capacity ?? 0 }

    /// Copies the bytes of an incomplete frame into storage of their own (see ``InboundAssembler/detach()``).
    mutating func detach() {
        // Only a buffer still borrowed is copied: one that grew is the reader's own already (the caller's copy is
        // still held, so the append copied it), and copying it at every read made a slow frame quadratic.
        if borrowed, let kept = pending { pending = ByteBuffer(bytes: kept.readableBytesView) }
        borrowed = false
    }

    /// The next complete frame, or `nil` when more bytes are needed.
    package mutating func next() throws(ClientFrameError) -> ClientFrame? {
        guard var buffer = pending else { return nil }
        guard let frame = try Self.parse(&buffer, maximumPayload: maximumPayload, compression: allowsCompression)
        else { return nil }
        // Keep leftovers only: an idle connection then holds no receive buffer of its own.
        pending = buffer.readableBytes > 0 ? buffer : nil
        if pending == nil { borrowed = false }
        return frame
    }

    /// Parses one frame from the front of `buffer`, consuming it; leaves `buffer` untouched when incomplete.
    private static func parse(_ buffer: inout ByteBuffer, maximumPayload: Int, compression: Bool)
        throws(ClientFrameError) -> ClientFrame?
    {
        var view = buffer
        guard let first = view.readInteger(as: UInt8.self), let second = view.readInteger(as: UInt8.self) else {
            return nil
        }
        let fin = first & 0x80 != 0
        guard first & 0x30 == 0 else { throw .protocolViolation("Reserved bits set") }
        let opcode = first & 0x0F
        let isControl = opcode & 0x08 != 0
        // RSV1 only with permessage-deflate, and only on a message's first frame (RFC 7692 section 6.1).
        let compressed = first & 0x40 != 0
        if compressed {
            guard compression else { throw .protocolViolation("Reserved bits set") }
            guard !isControl else { throw .protocolViolation("Compressed control frame") }
            guard opcode != 0 else { throw .protocolViolation("Compressed continuation frame") }
        }
        guard [0x0, 0x1, 0x2, 0x8, 0x9, 0xA].contains(opcode) else { throw .protocolViolation("Unknown opcode") }
        guard second & 0x80 != 0 else { throw .protocolViolation("Unmasked frame") }
        var length = Int(second & 0x7F)
        if length == 126 {
            guard let extended = view.readInteger(as: UInt16.self) else { return nil }
            length = Int(extended)
        } else if length == 127 {
            guard let extended = view.readInteger(as: UInt64.self) else { return nil }
            guard extended & (1 << 63) == 0 else { throw .protocolViolation("Invalid length") }
            length = extended > UInt64(Int.max) ? Int.max : Int(extended)
        }
        if isControl {
            guard fin else { throw .protocolViolation("Fragmented control frame") }
            guard length <= 125 else { throw .protocolViolation("Control frame longer than 125 bytes") }
        }
        guard length <= maximumPayload else { throw .tooLarge(length) }
        guard let mask = view.readBytes(length: 4), var payload = view.readSlice(length: length) else {
            return nil
        }
        payload.webSocketUnmask(WebSocketMaskingKey(mask)!)
        buffer = view
        return ClientFrame(
            fin: fin, compressed: compressed, opcode: WebSocketOpcode(encodedWebSocketOpcode: opcode)!, payload: payload
        )
    }
}
