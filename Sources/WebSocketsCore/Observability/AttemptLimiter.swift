import NIOConcurrencyHelpers

/// Slows down guessing: after each wrong key from an address, that address is refused for a while (0.5 s,
/// doubling with each further failure, at most 30 s), whatever key it presents, so one address cannot try more
/// than a handful of keys a minute. Web start's `/start` and the status page's sign-in both follow this rule.
package final class AttemptLimiter: Sendable {
    private struct Record {
        var failures: Int
        var blockedUntil: ContinuousClock.Instant
    }

    private let records = NIOLockedValueBox<[String: Record]>([:])
    private let maximumRecords = 10_000

    /// A limiter with no address blocked.
    package init() {}

    /// Whether `address` must wait before trying again.
    package func isBlocked(_ address: String) -> Bool {
        records.withLockedValue { records in
            guard let record = records[address] else { return false }
            return ContinuousClock.now < record.blockedUntil
        }
    }

    /// Blocks `address` for twice as long as after its previous wrong key.
    package func recordFailure(_ address: String) {
        records.withLockedValue { records in
            if records.count >= maximumRecords { records.removeAll() }
            let failures = (records[address]?.failures ?? 0) + 1
            let pause = min(Duration.seconds(30), .milliseconds(500) * Int(1 << min(failures - 1, 10)))
            records[address] = Record(failures: failures, blockedUntil: .now + pause)
        }
    }

    /// Forgets `address`'s wrong keys.
    package func recordSuccess(_ address: String) {
        records.withLockedValue { _ = $0.removeValue(forKey: address) }
    }
}
