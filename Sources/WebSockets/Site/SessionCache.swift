import NIOConcurrencyHelpers

/// Answers of the session endpoint, kept for a short time per session cookie, with one request in flight per
/// cookie: a thousand tabs reconnecting with one cookie wait for the same answer instead of asking a thousand times.
final class SessionCache: Sendable {
    /// A waiter is resumed with the answer, or with `nil` when it is the one that must fetch it.
    private typealias Waiter = CheckedContinuation<SessionValidation?, Never>

    private enum Entry {
        case pending([Waiter])
        case done(Answer)
    }

    /// A kept answer, boxed: the dictionary's slots (about twice as many as entries) then hold a reference each
    /// instead of a whole session, a third of the memory per cached session.
    private final class Answer: Sendable {
        let validation: SessionValidation
        let expires: ContinuousClock.Instant

        init(_ validation: SessionValidation, expires: ContinuousClock.Instant) {
            self.validation = validation
            self.expires = expires
        }
    }

    private let entries = NIOLockedValueBox<[String: Entry]>([:])
    private let nextPrune = NIOLockedValueBox(ContinuousClock.now)
    private let lifetime: Duration
    private let maximumEntries: Int

    init(lifetime: Duration, maximumEntries: Int = 100_000) {
        self.lifetime = lifetime
        self.maximumEntries = maximumEntries
    }

    /// The cached answer for `key`, or the answer of `fetch`, which runs once for all concurrent callers.
    /// Site failures are handed to the callers that waited for them but not kept.
    func value(for key: String, fetch: @Sendable () async -> SessionValidation) async -> (
        SessionValidation, fromCache: Bool
    ) {
        let now = ContinuousClock.now
        pruneIfDue(now: now)
        // Looking up and joining the waiters happen under one lock, so no waiter can miss the answer.
        let shared = await withCheckedContinuation { (waiter: Waiter) in
            let immediate: SessionValidation?? = entries.withLockedValue { entries in
                switch entries[key] {
                case .done(let answer) where answer.expires > now:
                    return .some(answer.validation)
                case .pending(var waiters):
                    waiters.append(waiter)
                    entries[key] = .pending(waiters)
                    return .none
                default:
                    if entries.count >= maximumEntries { entries.removeAll(keepingCapacity: true) }
                    entries[key] = .pending([])
                    return .some(nil)
                }
            }
            if let immediate { waiter.resume(returning: immediate) }
        }
        if let shared { return (shared, true) }
        let value = await fetch()
        let keep: Bool
        switch value {
        case .valid, .rejected: keep = true
        case .failed: keep = false
        }
        let waiters = entries.withLockedValue { entries -> [Waiter] in
            guard case .pending(let waiters) = entries[key] else { return [] }
            entries[key] = keep ? .done(Answer(value, expires: .now + lifetime)) : nil
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: value) }
        return (value, false)
    }

    /// Drops expired answers, at most once per lifetime: a cache of every cookie ever seen would grow with the
    /// number of sessions, not with the number of connections.
    private func pruneIfDue(now: ContinuousClock.Instant) {
        let due = nextPrune.withLockedValue { next -> Bool in
            guard now >= next else { return false }
            next = now + lifetime
            return true
        }
        guard due else { return }
        entries.withLockedValue { entries in
            entries = entries.filter { _, entry in
                if case .done(let answer) = entry { return answer.expires > now }
                return true
            }
        }
    }
}
