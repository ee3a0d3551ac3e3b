import NIOCore
import Testing

@testable import WebSocketsConnection
@testable import WebSocketsCore

/// UTF-8 checked as it arrives (RFC 6455 sections 5.6 and 8.1, the Autobahn cases 6.4.x): a text message is refused
/// with 1007 at the fragment that holds its first invalid byte, without waiting for the rest.
@Suite struct UTF8ValidationTests {
    private func valid(_ bytes: [UInt8]) -> Bool {
        var check = UTF8Validation()
        return check.append(bytes) && check.isComplete
    }

    @Test func theRulesAreRFC3629s() {
        #expect(valid(Array("plain, é, €, 𝄞, and a long ASCII run past eight bytes".utf8)))
        #expect(valid([]))
        #expect(!valid([0xC0, 0x80]))  // overlong NUL
        #expect(!valid([0xE0, 0x80, 0x80]))  // overlong
        #expect(!valid([0xED, 0xA0, 0x80]))  // a surrogate, U+D800
        #expect(!valid([0xF4, 0x90, 0x80, 0x80]))  // past U+10FFFF
        #expect(!valid([0xF5, 0x80, 0x80, 0x80]))
        #expect(!valid([0x80]))  // a continuation byte alone
        #expect(!valid([0xE2, 0x82]))  // ends inside a character
        #expect(valid([0xED, 0x9F, 0xBF, 0xF4, 0x8F, 0xBF, 0xBF, 0xEF, 0xBF, 0xBF]))  // the edges that are allowed
        #expect(!valid(Array(repeating: 0x61, count: 17) + [0xFF]))  // after the eight-byte steps
    }

    @Test func aCharacterSplitAcrossPiecesIsWhole() {
        let euro: [UInt8] = [0xE2, 0x82, 0xAC]
        var check = UTF8Validation()
        let first = check.append([euro[0]])
        #expect(first && !check.isComplete)
        let second = check.append([euro[1]])
        let third = check.append([euro[2]])
        #expect(second && third && check.isComplete)
    }

    /// 6.4.1-style: the first fragment holds an invalid sequence; the refusal comes with it, not after a final
    /// fragment that never arrives (before: no event until the message ended).
    @Test func aFragmentWithAnInvalidByteIsRefusedAtOnce() {
        let first = HardeningTests.frame(0x1, Array("κόσμε".utf8) + [0xF4, 0x90, 0x80, 0x80], fin: false)
        #expect(InboundAssembler.events(of: first).refusalCode == 1007)
        // The invalid byte in the second fragment: refused with it, the first fragment having been accepted.
        let good = HardeningTests.frame(0x1, Array("hello ".utf8), fin: false)
        let bad = HardeningTests.frame(0x0, [0xED, 0xA0, 0x80], fin: false)
        #expect(InboundAssembler.events(of: good).isEmpty)
        #expect(InboundAssembler.events(of: good + bad).refusalCode == 1007)
        // A character split across fragments is fine; a message that ends inside one is not.
        let split =
            HardeningTests.frame(0x1, [0x5B, 0x22, 0xE2, 0x82], fin: false)
            + HardeningTests.frame(0x0, [0xAC, 0x22, 0x5D])
        #expect(
            InboundAssembler.events(of: split) == [
                .message(ByteBuffer(bytes: [0x5B, 0x22, 0xE2, 0x82, 0xAC, 0x22, 0x5D]))
            ])
        let truncated = HardeningTests.frame(0x1, [0x5B, 0x22, 0xE2, 0x82])
        #expect(InboundAssembler.events(of: truncated).refusalCode == 1007)
    }

    @Test func anInflatedMessageThatIsNotUTF8IsRefused() {
        let compressed = Array(
            PermessageDeflate.compress(ByteBuffer(bytes: [0x5B, 0xC0, 0x80, 0x5D])).readableBytesView)
        let frame = HardeningTests.frame(0x41, compressed)
        #expect(InboundAssembler.events(of: frame, inflates: true).refusalCode == 1007)
    }
}
