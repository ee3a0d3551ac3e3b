import Foundation
import NIOConcurrencyHelpers
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol

/// Queries of the bus fail after a deadline: postgres-nio waits for a connection as long as it takes, and the bus
/// must notice an outage quickly instead (the first send after PostgreSQL stopped waited 2 s for this, once).
package enum PostgresDeadline {
    /// How long one query (or one batch of them) may take.
    package static let query = Duration.seconds(2)

    /// PostgreSQL's own `statement_timeout` for the bus's connections, a little under ``query``: a statement the
    /// client gives up on is also cancelled on PostgreSQL's side, instead of committing when a lock goes (an insert
    /// abandoned behind `LOCK TABLE` once committed 30 s later, beside its retry) or reading on for nobody. The
    /// client then mostly hears PostgreSQL's error before its own deadline. Transactions that need longer (the
    /// schema, presence) set their own with `set_config(..., true)`.
    static let statement = Duration.milliseconds(1900)

    /// PostgreSQL's `lock_timeout` for the bus's connections, under ``statement``: a statement that waits for a lock
    /// someone else holds fails with its own error (55P03), which tells a locked table (waited for) from a statement
    /// that runs too long (split, then skipped: ``ReadBatch``).
    static let lockWait = Duration.milliseconds(1000)

    /// `duration` as PostgreSQL reads a time setting.
    package static func setting(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000)ms"
    }

    /// Runs `operation`, failing after `limit`. The operation is abandoned, not awaited: postgres-nio does not
    /// stop a query when its task is cancelled, and a task group would wait for it (a query left waiting for good on
    /// a connection PostgreSQL closed would then hold the caller for good too).
    package static func bounded<T: Sendable>(
        _ limit: Duration = query, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let start = ContinuousClock.now
        return try await abandoning(checkingEvery: limit, operation) {
            ContinuousClock.now - start >= limit
                ? ClusterError(description: "PostgreSQL did not answer within \(limit)") : nil
        }
    }

    /// Runs `operation` with no deadline, but stops waiting for it when the calling task is cancelled (throwing
    /// `CancellationError`); the operation then finishes, or not, on its own. At shutdown, a presence write inside
    /// a transaction once never ended (its lease held through postgres-nio's forced shutdown, no lock wait on
    /// PostgreSQL's side: `lock_timeout` did not fire) and kept the server from stopping.
    static func untilCancelled<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws
        -> T
    {
        try await abandoning(checkingEvery: nil, operation) { nil }
    }

    /// Runs `operation`, and stops waiting for it when the calling task is cancelled (throwing
    /// `CancellationError`) or when `giveUp`, asked every `interval`, returns an error (thrown). The operation is
    /// told (cancelled) and then finishes, or not, on its own.
    package static func abandoning<T: Sendable>(
        checkingEvery interval: Duration?, _ operation: @escaping @Sendable () async throws -> T,
        giveUp: @escaping @Sendable () -> (any Error)?
    ) async throws -> T {
        let state = NIOLockedValueBox<CheckedContinuation<T, any Error>?>(nil)
        let tasks = NIOLockedValueBox<[Task<Void, Never>]>([])
        @Sendable func finish(_ result: Result<T, any Error>) {
            // Resumed outside the lock: a cancellation handler runs under its task's status lock and takes this
            // lock, while resuming takes the task's status lock. Resuming under this lock deadlocked the two (CI:
            // the presence listener cancelling its refresher as its read finished; every test then waited).
            let taken = state.withLockedValue { pending -> CheckedContinuation<T, any Error>? in
                defer { pending = nil }
                return pending
            }
            guard let continuation = taken else { return }
            continuation.resume(with: result)
            for task in tasks.withLockedValue({ $0 }) { task.cancel() }
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                state.withLockedValue { $0 = continuation }
                var started = [
                    Task {
                        let result: Result<T, any Error>
                        do { result = .success(try await operation()) } catch { result = .failure(error) }
                        finish(result)
                    }
                ]
                if let interval {
                    started.append(
                        Task {
                            while !Task.isCancelled {
                                try? await Task.sleep(for: interval)
                                if let error = giveUp() {
                                    finish(.failure(error))
                                    return
                                }
                            }
                        })
                }
                tasks.withLockedValue { $0 = started }
                // Finished before the tasks were recorded: they are told now.
                if state.withLockedValue({ $0 == nil }) { for task in started { task.cancel() } }
                if Task.isCancelled { finish(.failure(CancellationError())) }
            }
        } onCancel: {
            finish(.failure(CancellationError()))
        }
    }

    /// Waits for `task` to end, at most `limit`; past it, calls `late` and stops waiting (the task is cancelled and
    /// ends, or not, on its own).
    package static func waited(
        for task: Task<Void, Never>, within limit: Duration, late: @Sendable () -> Void
    ) async {
        let ended = (try? await bounded(limit) { await task.value }) != nil
        if !ended {
            task.cancel()
            late()
        }
    }

    /// A jittered pause after `failures` failures in a row (100 ms doubling, at most 5 s), so that servers do not
    /// all return to a restarted database at the same moment.
    static func backOff(_ failures: Int) async {
        let ceiling = min(5000.0, 100.0 * pow(2, Double(min(failures, 10))))
        try? await Task.sleep(for: .milliseconds(Int64(Double.random(in: ceiling / 2...ceiling))))
    }
}
