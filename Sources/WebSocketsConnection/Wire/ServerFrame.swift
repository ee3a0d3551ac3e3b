import NIOCore
import NIOWebSocket
import WebSocketsCore
import WebSocketsProtocol

/// Encodes a server's WebSocket frames, header and payload in one buffer.
///
/// A server's frames are not masked, so the bytes of a frame are the same for every recipient: a send is encoded
/// once and the one buffer is written to every connection, with no per-recipient header.
package enum ServerFrame {
    /// A final text frame carrying `payload`.
    package static func text(_ payload: ByteBuffer) -> ByteBuffer {
        final(.text, payload)
    }

    /// A final text frame carrying `bytes`.
    package static func text(_ bytes: [UInt8]) -> ByteBuffer {
        text(ByteBuffer(bytes: bytes))
    }

    /// A close frame with `code` and as much of `reason` as fits a control frame (125 bytes), cut between
    /// characters: a close reason must be valid UTF-8.
    package static func close(code: UInt16, reason: String) -> ByteBuffer {
        var payload = ByteBuffer()
        payload.writeInteger(code)
        var bytes = 0
        for character in reason {
            let size = character.utf8.count
            guard bytes + size <= 123 else { break }
            bytes += size
        }
        payload.writeBytes(reason.utf8.prefix(bytes))
        return final(.connectionClose, payload)
    }

    /// A final frame of `opcode` carrying `payload`; `compressed` sets RSV1, which marks a message compressed with
    /// permessage-deflate (RFC 7692 section 6).
    package static func final(_ opcode: WebSocketOpcode, _ payload: ByteBuffer, compressed: Bool = false)
        -> ByteBuffer
    {
        var payload = payload
        let length = payload.readableBytes
        var frame = ByteBuffer()
        frame.reserveCapacity(length + 10)
        frame.writeInteger(UInt8(0x80) | (compressed ? 0x40 : 0) | UInt8(webSocketOpcode: opcode))
        if length < 126 {
            frame.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            frame.writeInteger(UInt8(126))
            frame.writeInteger(UInt16(length))
        } else {
            frame.writeInteger(UInt8(127))
            frame.writeInteger(UInt64(length))
        }
        frame.writeBuffer(&payload)
        return frame
    }
}
