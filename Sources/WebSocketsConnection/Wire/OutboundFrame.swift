import NIOCore

/// One message as the server writes it: its plain text frame, and, when it was compressed, its permessage-deflate
/// frame. Made once per send and shared by every recipient; each connection takes the form it negotiated.
package struct OutboundFrame {
    /// The text frame, RSV1 clear.
    package var plain: ByteBuffer
    /// The compressed text frame (RSV1 set), when the message was compressed and came out smaller.
    package var compressed: ByteBuffer?
    /// The window, in bits, a reader needs to inflate ``compressed``.
    package var windowBits: UInt8

    /// A message sent plain to everyone.
    package init(plain: ByteBuffer) {
        self.plain = plain
        self.compressed = nil
        self.windowBits = 0
    }

    /// A message with both forms.
    package init(plain: ByteBuffer, compressed: ByteBuffer?, windowBits: UInt8) {
        self.plain = plain
        self.compressed = compressed
        self.windowBits = windowBits
    }

    /// The frame for a connection that negotiated a window of `window` bits (0: no compression): the compressed
    /// one when there is one that the window can inflate, else the plain one (RFC 7692 lets any message go plain).
    @inline(__always)
    package func bytes(forWindow window: UInt8) -> ByteBuffer {
        if window != 0, window >= windowBits, let compressed { return compressed }
        return plain
    }
}
