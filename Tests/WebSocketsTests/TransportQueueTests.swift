import NIOCore
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The decisions of the socket transport, on values alone: which timer is due (``TimerQueue``) and what a socket's
/// outbound queue holds and whether it is writable (``OutputQueue``).
@Suite struct TransportQueueTests {
    @Test func timersComeDueInDeadlineOrderThenArmingOrder() {
        var timers = TimerQueue<String>()
        timers.insert(id: 1, deadline: 300, entry: "c")
        timers.insert(id: 2, deadline: 100, entry: "a")
        timers.insert(id: 3, deadline: 200, entry: "b1")
        timers.insert(id: 4, deadline: 200, entry: "b2")
        #expect(timers.nextDeadline() == 100)
        #expect(timers.popDue(now: 50) == nil)
        var fired: [String] = []
        while let entry = timers.popDue(now: 250) { fired.append(entry) }
        #expect(fired == ["a", "b1", "b2"])
        #expect(timers.nextDeadline() == 300)
        #expect(timers.count == 1)
    }

    @Test func aCancelledTimerNeitherFiresNorDelaysTheNext() {
        var timers = TimerQueue<String>()
        timers.insert(id: 1, deadline: 100, entry: "cancelled")
        timers.insert(id: 2, deadline: 500, entry: "kept")
        #expect(timers.remove(id: 1) == "cancelled")
        #expect(timers.remove(id: 1) == nil)
        // The sleep is until the next armed timer, not the cancelled one.
        #expect(timers.nextDeadline() == 500)
        #expect(timers.popDue(now: 400) == nil)
        #expect(timers.popDue(now: 500) == "kept")
        #expect(timers.nextDeadline() == nil)
    }

    @Test func manyTimersFireSorted() {
        var timers = TimerQueue<UInt64>()
        var generator = SystemRandomNumberGenerator()
        let deadlines = (0..<1000).map { _ in UInt64.random(in: 0..<10_000, using: &generator) }
        for (id, deadline) in deadlines.enumerated() {
            timers.insert(id: UInt64(id), deadline: deadline, entry: deadline)
        }
        for id in stride(from: 0, to: 1000, by: 3) { _ = timers.remove(id: UInt64(id)) }
        var fired: [UInt64] = []
        while let deadline = timers.popDue(now: .max) { fired.append(deadline) }
        #expect(fired == fired.sorted())
        #expect(fired.count == 1000 - 334)
    }

    @Test func aQueueIsUnwritableAboveItsBoundAndWritableAgainAtHalf() {
        var queue = OutputQueue(high: 100, low: 50)
        #expect(queue.append(ByteBuffer(repeating: 1, count: 60)) == false)
        #expect(queue.append(ByteBuffer(repeating: 2, count: 40)) == false)  // 100: at the bound, still writable
        #expect(queue.append(ByteBuffer(repeating: 3, count: 1)) == true)
        #expect(!queue.isWritable)
        #expect(queue.append(ByteBuffer(repeating: 4, count: 10)) == false)  // told once
        #expect(queue.consume(30) == false)  // 81 left
        #expect(queue.frames.count == 4)
        #expect(queue.frames[0].readableBytes == 30)
        #expect(queue.consume(31) == true)  // 50 left
        #expect(queue.isWritable)
        #expect(queue.bytes == 50)
        #expect(queue.frames.map(\.readableBytes) == [39, 1, 10])
        #expect(queue.frames[0].readableBytesView.allSatisfy { $0 == 2 })
        #expect(queue.consume(50) == false)
        #expect(queue.isEmpty)
        #expect(queue.frames.capacity == 0)  // an idle connection keeps no array
    }
}
