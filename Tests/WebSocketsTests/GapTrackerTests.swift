import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The reader's bookkeeping of applied rows, on inputs: rows that commit out of id order are applied once each.
@Suite struct GapTrackerTests {
    /// The ids of `rows`, in order, that the tracker applies.
    private func applied(_ rows: [Int64], by tracker: inout GapTracker, at now: ContinuousClock.Instant) -> [Int64] {
        rows.filter { tracker.accept($0, now: now) }
    }

    @Test func rowsInOrderAreEachAppliedOnce() {
        var tracker = GapTracker(lastApplied: 10)
        let now = ContinuousClock.now
        #expect(applied([11, 12, 12, 5], by: &tracker, at: now) == [11, 12])
        let wanted = tracker.wanted(now: now)
        #expect(wanted.after == 12 && wanted.gaps.isEmpty)
    }

    @Test func aSlowTransactionsRowFillsItsGapOnce() {
        var tracker = GapTracker(lastApplied: 0)
        let now = ContinuousClock.now
        // 3 commits before 1 and 2: they are gaps, asked for by the next reads.
        #expect(applied([3], by: &tracker, at: now) == [3])
        let first = tracker.wanted(now: now)
        #expect(first.after == 3 && first.gaps == [1, 2])
        #expect(applied([2, 2], by: &tracker, at: now) == [2])
        #expect(tracker.wanted(now: now).gaps == [1])
        #expect(applied([1, 3], by: &tracker, at: now) == [1])
        #expect(tracker.wanted(now: now).gaps.isEmpty)
    }

    @Test func gapsAreForgottenAfterTheirLifetimeAndBounded() {
        var tracker = GapTracker(lastApplied: 0, lifetime: .seconds(30), maximumGaps: 100)
        let start = ContinuousClock.now
        #expect(applied([3], by: &tracker, at: start) == [3])
        #expect(tracker.wanted(now: start + .seconds(29)).gaps == [1, 2])
        #expect(tracker.wanted(now: start + .seconds(31)).gaps.isEmpty)
        // A row of a transaction that took longer than the lifetime is not applied: it is no longer waited for.
        #expect(applied([1], by: &tracker, at: start + .seconds(31)).isEmpty)
        // A jump of a million ids remembers at most `maximumGaps`.
        #expect(applied([1_000_000], by: &tracker, at: start) == [1_000_000])
        #expect(tracker.gaps.count == 100)
        #expect(tracker.lastApplied == 1_000_000)
    }
}
