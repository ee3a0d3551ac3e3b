import NIOConcurrencyHelpers
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol

/// The long-running parts of a service that have not ended yet, by name: named in the log when a shutdown does not
/// end in time (a server once stayed up after SIGTERM, its presence write never returning).
package final class RunningParts: Sendable {
    private let names = NIOLockedValueBox<Set<String>>([])

    /// Adds `part` to `group` under `name`, which is listed until the part returns.
    package func add(_ name: String, to group: inout TaskGroup<Void>, _ part: @escaping @Sendable () async -> Void) {
        names.withLockedValue { _ = $0.insert(name) }
        group.addTask {
            await part()
            self.names.withLockedValue { _ = $0.remove(name) }
        }
    }

    /// The parts still running, sorted.
    package var sorted: [String] { names.withLockedValue { $0.sorted() } }
}
