import NIOCore
import WebSocketsCore

/// When and how the server compresses what it sends (`compression`, `compression_threshold`,
/// `compression_level`): the one place a message becomes an ``OutboundFrame``.
package struct OutboundCompression: Sendable {
    /// Messages shorter than this go plain; `Int.max` when compression is off.
    let threshold: Int
    /// zlib's level.
    let level: Int
    private let metrics: ServerMetrics?

    /// The policy of `settings`, counting what it compresses in `metrics`.
    package init(settings: Settings, metrics: ServerMetrics?) {
        threshold = settings.compression ? settings.compressionThreshold : .max
        level = settings.compressionLevel
        self.metrics = metrics
    }

    /// Whether connections may negotiate compression at all.
    package var isEnabled: Bool { threshold != .max }

    /// The text frame of `bytes` (see ``textFrame(_:compressing:)-(ByteBuffer,_)``).
    package func textFrame(_ bytes: [UInt8], compressing: Bool) -> OutboundFrame {
        textFrame(ByteBuffer(bytes: bytes), compressing: compressing)
    }

    /// The text frame of `payload`, compressed too when `compressing` (a recipient negotiated compression), the
    /// payload is at least the threshold, and the compressed form comes out smaller.
    package func textFrame(_ payload: ByteBuffer, compressing: Bool) -> OutboundFrame {
        let plain = ServerFrame.text(payload)
        let length = payload.readableBytes
        guard compressing, length >= threshold else { return OutboundFrame(plain: plain) }
        let bits = PermessageDeflate.windowBits(forLength: length)
        let deflated = PermessageDeflate.compress(payload, level: level, windowBits: bits)
        guard deflated.readableBytes < length else { return OutboundFrame(plain: plain) }
        metrics?.compressed(outbound: true, uncompressed: length, compressed: deflated.readableBytes)
        return OutboundFrame(
            plain: plain, compressed: ServerFrame.final(.text, deflated, compressed: true), windowBits: UInt8(bits))
    }
}
