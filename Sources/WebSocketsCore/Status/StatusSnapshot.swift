/// The status counts at one moment (``StatusCounters/snapshot(at:)``); two of them make rates.
package struct StatusSnapshot: Sendable {
    /// When it was taken.
    package var time: ContinuousClock.Instant
    /// Messages read from browsers so far.
    package var messagesIn: Int
    /// Frames queued for browsers so far.
    package var messagesOut: Int
    /// Bytes written to browsers so far.
    package var bytesOut: Int
    /// The session checks so far, per ``LatencyTally`` bucket.
    package var sessionLatency: [Int]
    /// The message posts so far, per ``LatencyTally`` bucket.
    package var messageLatency: [Int]
    /// Failed site calls so far, by `endpoint/reason`.
    package var siteFailures: [String: Int]
    /// Closes so far, by reason.
    package var closed: [String: Int]
    /// Refusals so far, by reason.
    package var refused: [String: Int]
    /// Drops so far, by reason.
    package var dropped: [String: Int]

    /// Per second, from `earlier` to this one, of the count `value` reads: 0 when no time passed.
    package func rate(since earlier: StatusSnapshot, _ value: (StatusSnapshot) -> Int) -> Double {
        perSecond(value(self) - value(earlier), since: earlier)
    }

    /// `increase` spread over the time from `earlier` to this one: 0 when no time passed.
    package func perSecond(_ increase: Int, since earlier: StatusSnapshot) -> Double {
        let seconds = (time - earlier.time).inSeconds
        guard seconds > 0 else { return 0 }
        return Double(max(increase, 0)) / seconds
    }

    /// The bucket counts added since `earlier`.
    package static func difference(_ later: [Int], _ earlier: [Int]) -> [Int] {
        zip(later, earlier).map { max($0 - $1, 0) }
    }
}
