import NIOCore
import NIOWebSocket
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

@Suite struct ClientFrameReaderTests {
    /// A browser's frame: masked, with the 7-, 16- or 64-bit length form its size needs.
    private func frame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, mask: [UInt8] = [9, 8, 7, 6]) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        if payload.count < 126 {
            bytes.append(0x80 | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            bytes += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            bytes.append(0x80 | 127)
            bytes += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        return bytes + mask + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    }

    /// The socket transport reads every connection into one buffer, reuses it, and detaches what a connection keeps
    /// after each read: a fragmented message read one byte at a time, detached after each, arrives whole (the
    /// fragments are taken out of the assembler while they grow, and a kept frame is copied only while borrowed).
    @Test func aMessageReadOneByteAtATimeAndDetachedArrivesWhole() throws {
        // Text (UTF-8 is checked as it arrives): every ASCII byte, in an order the mask does not hide.
        let payload = (0..<300).map { UInt8($0 * 7 % 128) }
        let bytes = frame(0x1, Array(payload[..<100]), fin: false) + frame(0x0, Array(payload[100...]))
        var assembler = InboundAssembler(maximumMessageSize: 100_000)
        var shared = ByteBuffer()
        var events: [InboundEvent] = []
        for byte in bytes {
            shared.clear()
            shared.writeInteger(byte)
            assembler.append(shared)
            while let event = assembler.next() { events.append(event) }
            assembler.detach()
            // The loop's next read overwrites its buffer in place once nothing else holds it.
            shared.clear()
            shared.writeInteger(UInt8(0xEE))
        }
        #expect(events == [.message(ByteBuffer(bytes: payload))])
    }

    /// Issue 23: frames that never end where a read ends left the consumed bytes in front of the kept ones, and the
    /// kept buffer grew by every byte read: a tab streaming 64 KB messages for 10 s made the server hold 67 MB in it
    /// (found by the soak under heaptrack). What the reader keeps is at most a frame and a read.
    @Test func whatTheReaderKeepsIsBoundedByAFrameAndARead() throws {
        let frameBytes = frame(0x1, Array(repeating: UInt8(ascii: "x"), count: 994))
        var stream: [UInt8] = []
        for _ in 0..<2_000 { stream += frameBytes }
        var reader = ClientFrameReader(maximumPayload: 65_536)
        var frames = 0
        var largest = 0
        var shared = ByteBuffer()
        // Reads of 999 bytes: every read ends in the middle of a frame.
        for start in stride(from: 0, to: stream.count, by: 999) {
            shared.clear()
            shared.writeBytes(stream[start..<min(stream.count, start + 999)])
            reader.append(shared)
            while try reader.next() != nil { frames += 1 }
            reader.detach()
            largest = max(largest, reader.keptCapacity)
        }
        #expect(frames == 2_000)
        #expect(largest <= 4 * 1_024, "the reader kept \(largest) bytes")
    }

    /// Issue 23: a pong is queued only while nothing waits for the kernel; otherwise the latest ping is kept, and
    /// answered once the bytes move.
    @Test func onlyTheLatestPingIsAnsweredAndNoneBehindWaitingBytes() {
        var pings = PingAnswer()
        #expect(pings.received(ByteBuffer(string: "a"), backlogged: false) == ByteBuffer(string: "a"))
        #expect(pings.due(backlogged: false) == nil)
        #expect(pings.received(ByteBuffer(string: "b"), backlogged: true) == nil)
        #expect(pings.received(ByteBuffer(string: "c"), backlogged: true) == nil)
        #expect(pings.due(backlogged: true) == nil)
        #expect(pings.due(backlogged: false) == ByteBuffer(string: "c"))
        #expect(pings.due(backlogged: false) == nil)
    }

    @Test func readsFramesOfEveryLengthFormCutAnywhere() throws {
        for size in [0, 5, 125, 126, 300, 65535, 65536, 70000] {
            let payload = (0..<size).map { UInt8($0 % 251) }
            let bytes = frame(0x1, payload) + frame(0x9, [1, 2])
            // Cut the two frames at a few places, including inside each header.
            for cut in Set([1, 2, 3, 9, bytes.count / 2, bytes.count - 3, bytes.count - 1]) where cut < bytes.count {
                var reader = ClientFrameReader(maximumPayload: 100_000)
                reader.append(ByteBuffer(bytes: bytes[..<cut]))
                var frames: [ClientFrame] = []
                while let next = try reader.next() { frames.append(next) }
                reader.append(ByteBuffer(bytes: bytes[cut...]))
                while let next = try reader.next() { frames.append(next) }
                #expect(frames.count == 2, "size \(size), cut at \(cut)")
                #expect(frames.first?.opcode == .text)
                #expect(frames.first.map { Array($0.payload.readableBytesView) } == payload, "size \(size)")
                #expect(frames.last?.opcode == .ping)
                #expect(frames.last.map { Array($0.payload.readableBytesView) } == [1, 2])
            }
        }
    }

    @Test func refusesALargeFrameFromItsHeaderAlone() {
        var reader = ClientFrameReader(maximumPayload: 1000)
        // Only the header of a 70,000-byte frame: refused before its payload is awaited.
        reader.append(ByteBuffer(bytes: frame(0x1, [UInt8](repeating: 0, count: 70000)).prefix(14)))
        #expect(throws: ClientFrameError.tooLarge(70000)) { try reader.next() }
    }

    @Test func refusesWhatBreaksTheFraming() {
        let violations: [(String, [UInt8])] = [
            ("unmasked", [0x81, 0x01, 0x41]),
            ("reserved bit", [0xA1, 0x80, 1, 2, 3, 4]),
            ("unknown opcode", [0x8B, 0x80, 1, 2, 3, 4]),
            ("fragmented close", [0x08, 0x80, 1, 2, 3, 4]),
            ("long pong", [0x8A, 0xFE, 0x00, 0x7E, 1, 2, 3, 4]),
            ("length with its top bit set", [0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1]),
        ]
        for (name, bytes) in violations {
            var reader = ClientFrameReader(maximumPayload: 1 << 20)
            reader.append(ByteBuffer(bytes: bytes))
            do {
                _ = try reader.next()
                Issue.record("\(name) was accepted")
            } catch {
                guard case .protocolViolation = error else {
                    Issue.record("\(name): \(error)")
                    continue
                }
            }
        }
    }
}
