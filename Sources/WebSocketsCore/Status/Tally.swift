import Synchronization

/// A count that any thread adds to and the status page reads: one relaxed atomic, so that counting costs the path
/// that counts a few nanoseconds and reading takes no lock.
package final class Tally: Sendable {
    private let count = Atomic<Int>(0)

    /// A count of zero.
    package init() {}

    /// Adds `amount`.
    package func add(_ amount: Int = 1) {
        count.wrappingAdd(amount, ordering: .relaxed)
    }

    /// The count now.
    package var value: Int { count.load(ordering: .relaxed) }
}
