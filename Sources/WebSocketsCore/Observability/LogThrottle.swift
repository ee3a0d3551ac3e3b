/// When a refusal is written to the log: the first of a reason at once, then at most one line per reason every
/// ``interval``, carrying how many came since the line before. Refusals are counted always, by their metric; a flood
/// of them (3,000 wrong keys in 2.4 s were 3,000 lines) becomes a few lines. A value type: ``RefusalLog`` wires it
/// to a logger.
package struct LogThrottle: Sendable {
    private struct Reason {
        var loggedAt: ContinuousClock.Instant
        var since = 0
    }

    /// The shortest time between two lines of one reason.
    package let interval: Duration
    /// The reasons are the server's own few words, never a client's: the table stays small.
    private var reasons: [String: Reason] = [:]

    package init(interval: Duration = .seconds(10)) {
        self.interval = interval
    }

    /// Counts a refusal of `reason`; returns how many to report when a line is due (1 for the first), else `nil`.
    package mutating func admit(_ reason: String, now: ContinuousClock.Instant) -> Int? {
        guard var entry = reasons[reason] else {
            reasons[reason] = Reason(loggedAt: now)
            return 1
        }
        entry.since += 1
        guard now - entry.loggedAt >= interval else {
            reasons[reason] = entry
            return nil
        }
        reasons[reason] = Reason(loggedAt: now)
        return entry.since
    }

    /// The reasons with refusals not yet told whose line is due (all of them when `all`, at a stop), with their
    /// counts; they count as told now. So that the end of a flood is told too, not only its start.
    mutating func overdue(now: ContinuousClock.Instant, all: Bool = false) -> [(reason: String, count: Int)] {
        var due: [(reason: String, count: Int)] = []
        for (reason, entry) in reasons where entry.since > 0 && (all || now - entry.loggedAt >= interval) {
            due.append((reason, entry.since))
            reasons[reason] = Reason(loggedAt: now)
        }
        return due.sorted { $0.reason < $1.reason }
    }
}
