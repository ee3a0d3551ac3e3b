import NIOCore
import NIOWebSocket
import Testing

@testable import WebSocketsConnection
@testable import WebSocketsCore

/// permessage-deflate's rules on inputs alone (issue 25): what a browser's compressed frames amount to (RFC 7692
/// section 6), and when a message the server sends is compressed.
@Suite struct CompressionRulesTests {
    /// A browser's frame with any first-byte bits (RSV1 is 0x40).
    private func frame(_ first: UInt8, _ payload: [UInt8]) -> [UInt8] {
        HardeningTests.frame(first & 0x7F, payload, fin: first & 0x80 != 0)
    }

    private func events(_ bytes: [UInt8], inflates: Bool = true, limit: Int = 1_000) -> [InboundEvent] {
        InboundAssembler.events(of: bytes, maximumMessageSize: limit, inflates: inflates)
    }

    private func deflated(_ text: String) -> [UInt8] {
        Array(PermessageDeflate.compress(ByteBuffer(string: text)).readableBytesView)
    }

    private func refusalCode(_ events: [InboundEvent]) -> UInt16? {
        events.refusalCode
    }

    @Test func aCompressedMessageIsInflatedWholeOrAcrossFragments() {
        let text = #"["chat",{"text":"hello hello hello hello"}]"#
        let compressed = deflated(text)
        #expect(
            events(frame(0xC1, compressed))
                == [.inflatedMessage(ByteBuffer(string: text), compressedBytes: compressed.count)])
        // Fragmented: RSV1 on the first frame only, the continuations plain (RFC 7692 section 6.1).
        let cut = compressed.count / 2
        let fragments = frame(0x41, Array(compressed[..<cut])) + frame(0x80, Array(compressed[cut...]))
        #expect(
            events(fragments) == [.inflatedMessage(ByteBuffer(string: text), compressedBytes: compressed.count)])
        // A ping between the fragments is answered as usual; a plain message after a compressed one stays plain.
        let mixed =
            frame(0x41, Array(compressed[..<cut])) + frame(0x89, [1]) + frame(0x80, Array(compressed[cut...]))
            + frame(0x81, Array("plain".utf8))
        #expect(
            events(mixed) == [
                .ping(ByteBuffer(bytes: [1])),
                .inflatedMessage(ByteBuffer(string: text), compressedBytes: compressed.count),
                .message(ByteBuffer(string: "plain")),
            ])
    }

    @Test func anEmptyCompressedMessageIsAnEmptyMessage() {
        // RFC 7692 section 7.2.3.6: an empty message compresses to 0x00; a sender may also send no bytes at all.
        #expect(events(frame(0xC1, [0x00])) == [.inflatedMessage(ByteBuffer(), compressedBytes: 1)])
        #expect(events(frame(0xC1, [])) == [.inflatedMessage(ByteBuffer(), compressedBytes: 0)])
    }

    @Test func rsv1IsAProtocolErrorWhereTheRFCForbidsIt() {
        let compressed = deflated("hello")
        // Without the extension negotiated.
        #expect(refusalCode(events(frame(0xC1, compressed), inflates: false)) == 1002)
        // On a control frame.
        #expect(refusalCode(events(frame(0xC9, [1]))) == 1002)
        #expect(refusalCode(events(frame(0xC8, [0x03, 0xE8]))) == 1002)
        // On a continuation frame.
        #expect(
            refusalCode(events(frame(0x41, Array(compressed.prefix(2))) + frame(0xC0, Array(compressed.dropFirst(2)))))
                == 1002)
        // RSV2 and RSV3 stay reserved with the extension.
        #expect(refusalCode(events(frame(0xA1, Array("x".utf8)))) == 1002)
        #expect(refusalCode(events(frame(0x91, Array("x".utf8)))) == 1002)
    }

    @Test func aBombClosesWith1009AndBadDataWith1007() {
        // 1 MB of spaces compress to about 1 KB: the limit (64 KiB) applies to what it inflates to.
        let bomb = Array(
            PermessageDeflate.compress(ByteBuffer(repeating: 0x20, count: 1_000_000), level: 9).readableBytesView)
        #expect(bomb.count < 2_000)
        #expect(refusalCode(events(frame(0xC1, bomb), limit: 65_536)) == 1009)
        guard case .refusal(_, _, let metric) = events(frame(0xC1, bomb), limit: 65_536).last else {
            Issue.record("not refused")
            return
        }
        #expect(metric == .tooLarge)
        // Bytes that are not deflate data (a reserved block type).
        #expect(refusalCode(events(frame(0xC1, [0xFF, 0xFF, 0xFF]))) == 1007)
    }

    @Test func theServerCompressesAboveTheThresholdWhenItSavesBytes() throws {
        var settings = Settings(site: "", securityKey: "k")
        settings.compressionThreshold = 64
        let metrics = ServerMetrics()
        let policy = OutboundCompression(settings: settings, metrics: metrics)
        let long = ByteBuffer(string: #"["news",{"title":""# + String(repeating: "abc ", count: 100) + #""}]"#)
        let frame = policy.textFrame(long, compressing: true)
        let compressed = try #require(frame.compressed)
        // RSV1 set, and a 12-bit window is enough for a 400-byte message.
        #expect(compressed.getInteger(at: 0, as: UInt8.self) == 0xC1)
        #expect(frame.windowBits == 10)
        #expect(frame.bytes(forWindow: 0) == ServerFrame.text(long))
        #expect(frame.bytes(forWindow: 15) == compressed && frame.bytes(forWindow: 10) == compressed)
        #expect(frame.bytes(forWindow: 9) == ServerFrame.text(long))
        var payload = compressed
        #expect(compressed.getInteger(at: 1, as: UInt8.self).map { $0 < 126 } == true)
        payload.moveReaderIndex(forwardBy: 2)
        #expect(try PermessageDeflate.decompress(payload, limit: 1_000) == long)
        let rendered = String(decoding: metrics.render(), as: UTF8.self)
        #expect(
            rendered.contains(
                #"websockets_compression_bytes_total{direction="out",form="uncompressed"} \#(long.readableBytes)"#))
        // Under the threshold, no recipient that compresses, or nothing saved: plain only.
        #expect(policy.textFrame(ByteBuffer(string: #"["a","short one"]"#), compressing: true).compressed == nil)
        #expect(policy.textFrame(long, compressing: false).compressed == nil)
        let random = ByteBuffer(bytes: (0..<200).map { _ in UInt8.random(in: 0...255) })
        #expect(policy.textFrame(random, compressing: true).compressed == nil)
        // Off: nothing is compressed, and nothing is negotiated.
        settings.compression = false
        let off = OutboundCompression(settings: settings, metrics: nil)
        #expect(!off.isEnabled && off.textFrame(long, compressing: true).compressed == nil)
    }
}
