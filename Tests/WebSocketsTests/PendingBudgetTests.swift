import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The server-wide budget for the waiting messages of connections not authenticated yet.
struct PendingBudgetTests {
    @Test func takesUpToItsLimitAndGetsBackWhatIsReleased() {
        let budget = PendingBudget(limit: 100)
        #expect(budget.take(60))
        #expect(!budget.take(41), "past the limit: nothing taken")
        #expect(budget.bytes == 60)
        #expect(budget.take(40))
        budget.release(60)
        #expect(budget.bytes == 40)
        #expect(budget.take(60))
        budget.release(100)
        #expect(budget.bytes == 0)
    }
}
