import NIOCore
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The log of a loop's broadcasts, alone: what a connection gets from its cursor, joined once per range.
@Suite struct BroadcastLogTests {
    private func frame(_ text: String) -> OutboundFrame { OutboundFrame(plain: ByteBuffer(string: text)) }

    @Test func aConnectionGetsEverythingFromItsCursorAsOneBuffer() {
        var log = BroadcastLog()
        #expect(log.frames(from: 0) == nil)
        log.append(frame("a"), id: nil)
        #expect(log.frames(from: 0).map { String(buffer: $0.buffer) } == "a")
        log.append(frame("b"), id: nil)
        log.append(frame("c"), id: nil)
        let all = log.frames(from: 0)
        #expect(all.map { String(buffer: $0.buffer) } == "abc" && all?.count == 3)
        #expect(log.frames(from: 2).map { String(buffer: $0.buffer) } == "c")
        #expect(log.frames(from: 3) == nil)
        #expect(log.head == 3)
    }

    @Test func aRangeIsJoinedOnceForEveryConnectionThatNeedsIt() {
        var log = BroadcastLog()
        for text in ["a", "b", "c"] { log.append(frame(text), id: nil) }
        let first = log.frames(from: 1)!.buffer
        let second = log.frames(from: 1)!.buffer
        // The same storage: joined once, shared.
        let same = first.withUnsafeReadableBytes { a in
            second.withUnsafeReadableBytes { b in a.baseAddress == b.baseAddress }
        }
        #expect(same)
        // A broadcast arriving mid-pass makes a new range for the connections still to visit.
        log.append(frame("d"), id: nil)
        #expect(log.frames(from: 1).map { String(buffer: $0.buffer) } == "bcd")
    }

    @Test func forgottenBroadcastsAreNotGivenAgainAndIdsStayWithTheirFrames() {
        var log = BroadcastLog()
        log.append(frame("a"), id: 7)
        log.append(frame("b"), id: 8)
        log.forget(before: 1)
        #expect(log.start == 1 && log.head == 2)
        // A cursor from before what was forgotten gets only what is left.
        #expect(log.frames(from: 0).map { String(buffer: $0.buffer) } == "b")
        #expect(log.entries(from: 0).map(\.id) == [8])
        log.forget(before: 5)
        #expect(log.entries.isEmpty && log.start == 2 && log.head == 2)
        log.append(frame("c"), id: 9)
        #expect(log.frames(from: 2).map { String(buffer: $0.buffer) } == "c")
        #expect(log.entries(from: 2).map(\.id) == [9])
    }

    /// Plain and compressed connections each get their own join, made once per range; a connection whose window is
    /// too small for a compressed frame gets that frame plain.
    @Test func eachFormIsJoinedOnceAndASmallWindowTakesLargeMessagesPlain() {
        var log = BroadcastLog()
        log.append(
            OutboundFrame(plain: ByteBuffer(string: "A"), compressed: ByteBuffer(string: "a"), windowBits: 9), id: nil)
        log.append(frame("B"), id: nil)
        log.append(
            OutboundFrame(plain: ByteBuffer(string: "C"), compressed: ByteBuffer(string: "c"), windowBits: 13), id: nil)
        #expect(log.frames(from: 0, window: 0).map { String(buffer: $0.buffer) } == "ABC")
        #expect(log.frames(from: 0, window: 15).map { String(buffer: $0.buffer) } == "aBc")
        #expect(log.frames(from: 0, window: 12).map { String(buffer: $0.buffer) } == "aBC")
        let first = log.frames(from: 0, window: 15)!.buffer
        let plain = log.frames(from: 0, window: 0)!.buffer
        let second = log.frames(from: 0, window: 15)!.buffer
        let same = first.withUnsafeReadableBytes { a in
            second.withUnsafeReadableBytes { b in a.baseAddress == b.baseAddress }
        }
        #expect(same && String(buffer: plain) == "ABC")
        #expect(log.frames(from: 2, window: 15).map { String(buffer: $0.buffer) } == "c")
    }
}
