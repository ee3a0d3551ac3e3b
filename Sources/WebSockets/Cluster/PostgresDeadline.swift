import Foundation
import NIOConcurrencyHelpers

/// Queries of the bus fail after a deadline: postgres-nio waits for a connection as long as it takes, and the bus
/// must notice an outage quickly instead (the first send after PostgreSQL stopped waited 2 s for this, once).
enum PostgresDeadline {
    /// How long one query (or one batch of them) may take.
    static let query = Duration.seconds(2)

    /// Runs `operation`, failing after `limit`.
    static func bounded<T: Sendable>(
        _ limit: Duration = query, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw ClusterError(description: "PostgreSQL did not answer within \(limit)")
            }
            return value
        }
    }

    /// Runs `operation` with no deadline, but stops waiting for it when the calling task is cancelled (throwing
    /// `CancellationError`); the operation then finishes, or not, on its own. At shutdown, a presence write inside
    /// a transaction once never ended (its lease held through postgres-nio's forced shutdown, no lock wait on
    /// PostgreSQL's side: `lock_timeout` did not fire) and kept the server from stopping.
    static func untilCancelled<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let state = NIOLockedValueBox<CheckedContinuation<T, any Error>?>(nil)
        let work = NIOLockedValueBox<Task<Void, Never>?>(nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                state.withLockedValue { $0 = continuation }
                let task = Task {
                    let result: Result<T, any Error>
                    do { result = .success(try await operation()) } catch { result = .failure(error) }
                    state.withLockedValue { pending in
                        pending?.resume(with: result)
                        pending = nil
                    }
                }
                work.withLockedValue { $0 = task }
                if Task.isCancelled {
                    state.withLockedValue { pending in
                        pending?.resume(throwing: CancellationError())
                        pending = nil
                    }
                }
            }
        } onCancel: {
            // The operation is told too, in case it listens.
            work.withLockedValue { $0?.cancel() }
            state.withLockedValue { pending in
                pending?.resume(throwing: CancellationError())
                pending = nil
            }
        }
    }

    /// A jittered pause after `failures` failures in a row (100 ms doubling, at most 5 s), so that servers do not
    /// all return to a restarted database at the same moment.
    static func backOff(_ failures: Int) async {
        let ceiling = min(5000.0, 100.0 * pow(2, Double(min(failures, 10))))
        try? await Task.sleep(for: .milliseconds(Int64(Double.random(in: ceiling / 2...ceiling))))
    }
}
