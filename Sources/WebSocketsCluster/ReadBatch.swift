/// How many rows the bus's reader asks for next. A batch that cannot be read in time is split (an eighth each time)
/// down to one row, and a single row that still cannot be read is skipped, so that no row stops the bus; each batch
/// read lets the size grow back. A value type: the reader only wires it to its queries.
package struct ReadBatch: Sendable, Equatable {
    /// What to do after a failed read.
    package enum Next: Equatable {
        /// Try again with ``rows`` rows.
        case retry
        /// Skip the first row that is wanted: it failed alone.
        case skipRow
    }

    /// The most rows of one batch.
    package let maximum: Int
    /// The rows the next batch asks for.
    private(set) var rows: Int

    package init(maximum: Int) {
        self.maximum = max(1, maximum)
        rows = self.maximum
    }

    /// A batch of ``rows`` could not be read in time.
    package mutating func failed() -> Next {
        guard rows > 1 else { return .skipRow }
        rows = max(1, rows / 8)
        return .retry
    }

    /// A batch was read: the next may be larger again.
    mutating func succeeded() {
        rows = min(maximum, rows * 8)
    }

    /// The first row was skipped: the next batch starts small again, and grows as batches are read.
    package mutating func skipped() {
        rows = 1
    }
}
