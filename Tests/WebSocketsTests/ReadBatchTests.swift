import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The bus reader's batch size: split on failure down to one row, then a skip; grown back after reads.
struct ReadBatchTests {
    @Test func aFailingBatchIsSplitDownToOneRowThenSkipped() {
        var batch = ReadBatch(maximum: 500)
        #expect(batch.rows == 500)
        #expect(batch.failed() == .retry)
        #expect(batch.rows == 62)
        #expect(batch.failed() == .retry)
        #expect(batch.rows == 7)
        #expect(batch.failed() == .retry)
        #expect(batch.rows == 1)
        #expect(batch.failed() == .skipRow)
        #expect(batch.rows == 1)
    }

    @Test func readsGrowTheBatchBackToItsMaximum() {
        var batch = ReadBatch(maximum: 500)
        _ = batch.failed()
        _ = batch.failed()
        batch.skipped()
        #expect(batch.rows == 1)
        batch.succeeded()
        #expect(batch.rows == 8)
        batch.succeeded()
        batch.succeeded()
        #expect(batch.rows == 500)
        batch.succeeded()
        #expect(batch.rows == 500)
    }
}
