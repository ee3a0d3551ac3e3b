/// The status page's memory of the counts: the chart points (``StatusHistory``) and the last few snapshots, from
/// which the rates, the site's percentiles and the refusals' rates over the last ``window`` samples are computed.
/// Fed by a timer every 2 s whether or not anyone looks, so that a page opened after a spike still shows it.
package struct StatusSampler: Sendable {
    /// The charts.
    package private(set) var history: StatusHistory
    /// The newest snapshots, oldest first: at most ``window`` + 1.
    package private(set) var recent: [StatusSnapshot] = []
    /// How many sample intervals the rates and percentiles span (5 × 2 s: 10 s, long enough for a p99 of a few
    /// hundred calls, short enough to show a change within seconds).
    package let window: Int

    /// An empty sampler keeping `points` chart points and rates over `window` intervals.
    package init(points: Int = 450, window: Int = 5) {
        history = StatusHistory(capacity: points)
        self.window = window
    }

    /// Adds a snapshot: a chart point from the one before it, and the window moves on.
    package mutating func add(_ snapshot: StatusSnapshot) {
        if let previous = recent.last {
            history.append(
                StatusHistory.Point(
                    messagesIn: Float(snapshot.rate(since: previous, \.messagesIn)),
                    messagesOut: Float(snapshot.rate(since: previous, \.messagesOut)),
                    bytesOut: Float(snapshot.rate(since: previous, \.bytesOut))))
        }
        recent.append(snapshot)
        if recent.count > window + 1 { recent.removeFirst(recent.count - window - 1) }
    }

    /// The oldest and newest snapshots of the window, once there are two.
    package var span: (earlier: StatusSnapshot, later: StatusSnapshot)? {
        guard let first = recent.first, let last = recent.last, recent.count > 1 else { return nil }
        return (first, last)
    }
}
