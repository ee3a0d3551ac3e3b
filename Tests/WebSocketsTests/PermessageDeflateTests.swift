import NIOCore
import Testing

@testable import WebSocketsConnection

/// One message compressed and inflated as permessage-deflate carries it (RFC 7692 section 7.2), on bytes: the RFC's
/// own example, round trips, and what a hostile sender can send.
@Suite struct PermessageDeflateTests {
    /// RFC 7692 section 7.2.3.1: "Hello" in one compressed message, without context takeover.
    private static let hello: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]

    @Test func theRFCsExampleBothWays() throws {
        #expect(PermessageDeflate.compress(ByteBuffer(string: "Hello")) == ByteBuffer(bytes: Self.hello))
        #expect(
            try PermessageDeflate.decompress(ByteBuffer(bytes: Self.hello), limit: 5) == ByteBuffer(string: "Hello"))
        // The same message as a stored (uncompressed) block, then an empty one (RFC 7692's examples, section 7.2.3).
        let stored: [UInt8] = [0x00, 0x05, 0x00, 0xFA, 0xFF, 0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x00]
        #expect(try PermessageDeflate.decompress(ByteBuffer(bytes: stored), limit: 100) == ByteBuffer(string: "Hello"))
    }

    @Test func messagesComeBackAsTheyWereAtEveryWindowAndSize() throws {
        let json = #"["chat/message",{"user":42,"text":"Hello, everyone: this line repeats. "}]"#
        for size in [0, 1, 100, 1_000, 100_000] {
            let text = String(repeating: json, count: size / json.count + 1).prefix(size)
            for bits in [9, 12, 15] {
                let compressed = PermessageDeflate.compress(ByteBuffer(string: String(text)), windowBits: bits)
                let back = try PermessageDeflate.decompress(compressed, limit: size)
                #expect(back == ByteBuffer(string: String(text)), "\(size) bytes, \(bits) bits")
                if size >= 1_000 { #expect(compressed.readableBytes * 4 < size, "\(size) bytes compress well") }
            }
        }
        // An empty message compresses to one byte (0x00): an empty block once the sync flush's tail is removed.
        #expect(PermessageDeflate.compress(ByteBuffer()) == ByteBuffer(bytes: [0x00]))
        #expect(try PermessageDeflate.decompress(ByteBuffer(bytes: [0x00]), limit: 0) == ByteBuffer())
    }

    @Test func aBombIsRefusedAfterTheLimitWithoutInflatingTheRest() {
        // 10 MB of zeros compress to about 10 KB; the limit is 100 KB. (100 MB took 1.9 s of one of the two threads
        // that run the suite's tasks and its test sites, at its start: other tests' site calls timed out in CI.)
        let zeros = ByteBuffer(repeating: 0, count: 10_000_000)
        let bomb = PermessageDeflate.compress(zeros, level: 9)
        #expect(bomb.readableBytes < 20_000)
        #expect(throws: PermessageDeflate.InflateError.tooLarge) {
            try PermessageDeflate.decompress(bomb, limit: 100_000)
        }
        // One byte over is over.
        #expect(throws: PermessageDeflate.InflateError.tooLarge) {
            try PermessageDeflate.decompress(ByteBuffer(bytes: Self.hello), limit: 4)
        }
    }

    @Test func bytesThatAreNotDeflateDataAreMalformed() {
        for bytes: [UInt8] in [[0xFF, 0xFF, 0xFF, 0xFF], [0x07], Array("not deflate at all".utf8)] {
            #expect(throws: PermessageDeflate.InflateError.malformed, "\(bytes)") {
                try PermessageDeflate.decompress(ByteBuffer(bytes: bytes), limit: 1_000)
            }
        }
    }
}
