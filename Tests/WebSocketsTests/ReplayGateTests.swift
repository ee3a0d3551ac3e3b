import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The bound on replays running at once: slots, a bounded wait in order, refusals.
struct ReplayGateTests {
    @Test func slotsPassInOrderAndTheRestWaitTheirTurn() async {
        let gate = ReplayGate(slots: 2, maximumWaiting: 1)
        #expect(await gate.enter(within: .seconds(5)))
        #expect(await gate.enter(within: .seconds(5)))
        let waiting = Task { await gate.enter(within: .seconds(30)) }
        while gate.counts.waiting == 0 { await Task.yield() }
        // The queue is full: refused at once.
        #expect(await gate.enter(within: .seconds(30)) == false)
        gate.leave()
        #expect(await waiting.value)
        #expect(gate.counts == (2, 0))
        gate.leave()
        gate.leave()
        #expect(gate.counts == (0, 0))
    }

    @Test func aWaitThatOutlastsItsLimitIsRefused() async {
        let gate = ReplayGate(slots: 1, maximumWaiting: 8)
        #expect(await gate.enter(within: .seconds(5)))
        #expect(await gate.enter(within: .milliseconds(50)) == false)
        #expect(gate.counts == (1, 0))
        gate.leave()
        #expect(await gate.enter(within: .milliseconds(50)))
        gate.leave()
    }
}
