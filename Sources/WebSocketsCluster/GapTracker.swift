import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol

/// Which rows of `websockets_messages` the reader has applied. Ids are given at insert and rows become visible at
/// commit, so a row can appear after a higher id was applied (a slower transaction): the ids skipped on the way are
/// remembered as gaps for `lifetime`, and a row that fills one is applied when it appears. Nothing committed within
/// that time is skipped, nothing is applied twice. A value type: the reader only wires it to its queries.
package struct GapTracker: Sendable {
    /// The highest id applied.
    private(set) var lastApplied: Int64
    /// Ids below `lastApplied` not seen yet, with when they were first missed.
    private(set) var gaps: [Int64: ContinuousClock.Instant] = [:]
    /// How long a gap is waited for: a transaction that takes longer to commit is not applied.
    package let lifetime: Duration
    /// The most gaps remembered: a jump of millions of ids (a sequence reset by hand) must not fill memory.
    let maximumGaps: Int

    package init(lastApplied: Int64 = 0, lifetime: Duration = .seconds(30), maximumGaps: Int = 10_000) {
        self.lastApplied = lastApplied
        self.lifetime = lifetime
        self.maximumGaps = maximumGaps
    }

    /// Forgets gaps older than `lifetime`; what the next query asks for: rows after `lastApplied`, and the gaps.
    mutating func wanted(now: ContinuousClock.Instant) -> (after: Int64, gaps: [Int64]) {
        gaps = gaps.filter { now - $0.value < lifetime }
        return (lastApplied, gaps.keys.sorted())
    }

    /// Whether the row `id`, just read, is to be applied: it is new (the ids skipped below it become gaps) or it
    /// fills a gap. `false`: applied before.
    package mutating func accept(_ id: Int64, now: ContinuousClock.Instant) -> Bool {
        guard id > lastApplied else { return gaps.removeValue(forKey: id) != nil }
        var missing = lastApplied + 1
        while missing < id && gaps.count < maximumGaps {
            gaps[missing] = now
            missing += 1
        }
        lastApplied = id
        return true
    }
}
