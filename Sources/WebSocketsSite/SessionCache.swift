import NIOConcurrencyHelpers
import WebSocketsCore
import WebSocketsProtocol

/// Answers of the session endpoint, kept for a short time per key (``BrowserCredentials/cacheKey``), with one
/// request in flight per key: a thousand tabs reconnecting with one cookie wait for the same answer instead of
/// asking a thousand times. Valid sessions are kept `lifetime`, rejections at most 5 s (a browser retrying a dead
/// cookie does not make the site answer each try), failures not at all.
package final class SessionCache<Key: Hashable & Sendable>: Sendable {
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

    private let entries = NIOLockedValueBox<[Key: Entry]>([:])
    private let nextPrune = NIOLockedValueBox(ContinuousClock.now)
    private let lifetime: Duration
    private let maximumEntries: Int

    private let rejectionLifetime: Duration

    package init(lifetime: Duration, maximumEntries: Int = 100_000) {
        self.lifetime = lifetime
        self.rejectionLifetime = min(lifetime, .seconds(5))
        self.maximumEntries = maximumEntries
    }

    /// How many answers and checks under way it holds.
    package var count: Int { entries.withLockedValue { $0.count } }

    /// The cached answer for `key`, or the answer of `fetch`, which runs once for all concurrent callers; with no
    /// key, `fetch` runs and nothing is kept. Site failures are handed to the callers that waited for them but not
    /// kept. An answer that is not `shareable` (a guest session the browser does not hold) is neither kept nor
    /// handed to the callers that waited: each of them asks the site itself.
    package func value(
        for key: Key?, shareable: @Sendable (SessionValidation) -> Bool = { _ in true },
        fetch: @Sendable () async -> SessionValidation
    ) async -> (SessionValidation, fromCache: Bool) {
        guard let key else { return (await fetch(), false) }
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
                    if entries.count >= maximumEntries { Self.evict(from: &entries, now: now, keeping: maximumEntries) }
                    entries[key] = .pending([])
                    return .some(nil)
                }
            }
            if let immediate { waiter.resume(returning: immediate) }
        }
        if let shared { return (shared, true) }
        let value = await fetch()
        let mayShare = shareable(value)
        let kept: Duration?
        switch value {
        case .valid: kept = mayShare ? lifetime : nil
        case .rejected: kept = rejectionLifetime
        case .failed: kept = nil
        }
        let waiters = entries.withLockedValue { entries -> [Waiter] in
            guard case .pending(let waiters) = entries[key] else { return [] }
            entries[key] = kept.map { .done(Answer(value, expires: .now + $0)) }
            return waiters
        }
        // A waiter resumed with nil fetches for itself.
        for waiter in waiters { waiter.resume(returning: mayShare ? value : nil) }
        return (value, false)
    }

    /// Makes room in a full cache: expired answers go first, then the answers closest to expiring, down to three
    /// quarters of `keeping`; a check that browsers wait for is never dropped.
    private static func evict(from entries: inout [Key: Entry], now: ContinuousClock.Instant, keeping: Int) {
        entries = entries.filter { _, entry in
            if case .done(let answer) = entry { return answer.expires > now }
            return true
        }
        let excess = entries.count - keeping * 3 / 4
        guard excess > 0 else { return }
        var answers: [(key: Key, expires: ContinuousClock.Instant)] = []
        for (key, entry) in entries {
            if case .done(let answer) = entry { answers.append((key, answer.expires)) }
        }
        answers.sort { $0.expires < $1.expires }
        for answer in answers.prefix(excess) { entries[answer.key] = nil }
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
