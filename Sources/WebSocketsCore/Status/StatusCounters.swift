/// What the status page shows, counted as it happens: messages in and out, bytes out, the site's answers and
/// their durations, and every refusal, close and drop by its reason. The same events as the Prometheus metrics
/// (``ServerMetrics`` counts both), kept as plain atomics because the Prometheus registry offers no reading of a
/// counter short of rendering every metric. Reading them is a few dozen loads: the page's cost does not grow with
/// connections.
package final class StatusCounters: Sendable {
    /// Messages read from browsers.
    package let messagesIn = Tally()
    /// Frames queued for browsers.
    package let messagesOut = Tally()
    /// Bytes written to browsers' sockets (the socket loops count them; SwiftNIO's channels, where they are used,
    /// do not).
    package let bytesOut = Tally()
    /// The session checks' durations.
    package let sessionChecks = LatencyTally()
    /// The message posts' durations.
    package let messagePosts = LatencyTally()
    /// The site calls that failed, by `endpoint/reason` (``siteFailureKinds``).
    private let siteFailures: [Tally] = siteFailureKinds.map { _ in Tally() }
    private let closed: [Tally] = ClosedReason.allCases.map { _ in Tally() }
    private let refused: [Tally] = RefusedReason.allCases.map { _ in Tally() }
    private let dropped: [Tally] = DroppedReason.allCases.map { _ in Tally() }

    /// The kinds of site failures: `session` or `message`, then `timeout`, `transport`, `body` or `status`.
    package static let siteFailureKinds: [String] = ["session", "message"].flatMap { endpoint in
        ["timeout", "transport", "body", "status"].map { endpoint + "/" + $0 }
    }

    /// No event counted.
    package init() {}

    /// Counts a failed site call.
    package func siteFailed(endpoint: String, reason: String) {
        if let index = Self.siteFailureKinds.firstIndex(of: endpoint + "/" + reason) { siteFailures[index].add() }
    }

    /// Counts a close.
    package func closed(_ reason: ClosedReason) {
        closed[ClosedReason.allCases.firstIndex(of: reason)!].add()
    }

    /// Counts a refusal.
    package func refused(_ reason: RefusedReason) {
        refused[RefusedReason.allCases.firstIndex(of: reason)!].add()
    }

    /// Counts `count` drops.
    package func dropped(_ reason: DroppedReason, count: Int) {
        dropped[DroppedReason.allCases.firstIndex(of: reason)!].add(count)
    }

    /// Every count now, taken at `time`.
    package func snapshot(at time: ContinuousClock.Instant = .now) -> StatusSnapshot {
        func named<Reason: RawRepresentable<String> & CaseIterable>(_ tallies: [Tally], _: Reason.Type)
            -> [String: Int]
        {
            Dictionary(uniqueKeysWithValues: zip(Reason.allCases.map(\.rawValue), tallies.map(\.value)))
        }
        return StatusSnapshot(
            time: time, messagesIn: messagesIn.value, messagesOut: messagesOut.value, bytesOut: bytesOut.value,
            sessionLatency: sessionChecks.counts, messageLatency: messagePosts.counts,
            siteFailures: Dictionary(uniqueKeysWithValues: zip(Self.siteFailureKinds, siteFailures.map(\.value))),
            closed: named(closed, ClosedReason.self), refused: named(refused, RefusedReason.self),
            dropped: named(dropped, DroppedReason.self))
    }
}
