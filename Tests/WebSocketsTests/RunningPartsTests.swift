import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The parts named in the log of a shutdown that did not end in time are those still running.
@Suite struct RunningPartsTests {
    @Test func aPartIsListedUntilItReturns() async {
        let parts = RunningParts()
        let (gate, open) = AsyncStream.makeStream(of: Void.self)
        await withTaskGroup(of: Void.self) { group in
            parts.add("quick", to: &group) {}
            parts.add("stuck", to: &group) { for await _ in gate {} }
            await group.next()
            #expect(parts.sorted == ["stuck"])
            open.finish()
            await group.waitForAll()
        }
        #expect(parts.sorted == [])
    }
}
