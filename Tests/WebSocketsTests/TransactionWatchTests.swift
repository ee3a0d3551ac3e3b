import NIOConcurrencyHelpers
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// A transaction whose statements stall (postgres-nio left one waiting for good on a connection PostgreSQL closed)
/// is given up on only before COMMIT, and the caller stops waiting for it.
@Suite struct TransactionWatchTests {
    @Test func stalledTransactionsAreGivenUpAndCannotGoOnOrCommitAfterwards() {
        // Asked for at 100: waiting for a connection counts as a step, as a statement does.
        var watch = TransactionWatch(now: 100)
        let early = watch.abandonIfStalled(now: 149, limit: 50)
        #expect(!early)
        let goesOn = watch.progressed(now: 140)
        #expect(goesOn)
        let stillRunning = watch.abandonIfStalled(now: 189, limit: 50)
        #expect(!stillRunning)
        let stalled = watch.abandonIfStalled(now: 190, limit: 50)
        #expect(stalled)
        #expect(watch.isAbandoned)
        // The statement comes back after all: the transaction must neither go on nor commit.
        let late = watch.progressed(now: 200)
        #expect(!late)
        let commits = watch.finishStatements()
        #expect(!commits)
    }

    @Test func aTransactionThatMayHaveCommittedIsWaitedFor() {
        var watch = TransactionWatch(now: 100)
        let commits = watch.finishStatements()
        #expect(commits)
        let abandoned = watch.abandonIfStalled(now: .max, limit: 50)
        #expect(!abandoned)
        let goesOn = watch.progressed(now: 300)
        #expect(goesOn)
        #expect(!watch.isAbandoned)
    }

    /// `bounded` once waited for its operation in a task group, which waits for every child: an operation that
    /// never returns and ignores cancellation (a stuck postgres-nio query) held the caller for good.
    @Test func aBoundedOperationThatNeverReturnsIsAbandonedAtItsDeadline() async throws {
        let held = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
        await #expect(throws: ClusterError.self) {
            try await PostgresDeadline.bounded(.milliseconds(200)) {
                await withCheckedContinuation { continuation in held.withLockedValue { $0 = continuation } }
                return 1
            }
        }
        // Let the abandoned operation end, as a query that finally fails would.
        try await eventually("the operation started") { held.withLockedValue { $0 != nil } }
        held.withLockedValue { $0?.resume() }
    }

    /// An operation finishing while its caller is cancelled: the continuation was once resumed under the lock the
    /// cancellation handler takes (under its task's status lock), and the two threads deadlocked (CI, the presence
    /// listener cancelling its refresher as its read finished).
    @Test func finishingWhileCancelledDoesNotDeadlock() async {
        for _ in 0..<20_000 {
            let caller = Task { try await PostgresDeadline.untilCancelled { 1 } }
            caller.cancel()
            _ = try? await caller.value
        }
    }

    @Test func aWatchedOperationIsGivenUpWhenAskedAndOtherwiseAwaited() async throws {
        let giveUp = NIOLockedValueBox(false)
        let held = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
        let result = try await PostgresDeadline.abandoning(checkingEvery: .milliseconds(20)) {
            7
        } giveUp: {
            nil
        }
        #expect(result == 7)
        let stuck = Task {
            try await PostgresDeadline.abandoning(checkingEvery: .milliseconds(20)) {
                await withCheckedContinuation { continuation in held.withLockedValue { $0 = continuation } }
                return 1
            } giveUp: {
                giveUp.withLockedValue { $0 } ? ClusterError(description: "stalled") : nil
            }
        }
        try await eventually("the operation started") { held.withLockedValue { $0 != nil } }
        giveUp.withLockedValue { $0 = true }
        await #expect(throws: ClusterError.self) { try await stuck.value }
        held.withLockedValue { $0?.resume() }
    }
}
