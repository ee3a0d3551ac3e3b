/// Durations counted into fixed buckets, for the status page's p50 and p99 of the site's answers: the buckets'
/// upper bounds grow by √2 from 0.25 ms to 11.6 s (32 of them, and one for longer), so a percentile is known within
/// a factor of 1.41 and recording one duration is a search over 32 numbers and one atomic add.
package final class LatencyTally: Sendable {
    /// The buckets' upper bounds, in milliseconds.
    package static let bounds: [Double] = (0..<32).map { index in
        // Exact powers of two at even indexes (1 ms is a bound), times √2 between them.
        let power = 0.25 * Double(1 << (index / 2))
        return index.isMultiple(of: 2) ? power : power * 2.0.squareRoot()
    }
    private let buckets: [Tally] = (0...32).map { _ in Tally() }

    /// No duration counted.
    package init() {}

    /// Counts one duration of `nanoseconds`.
    package func record(nanoseconds: Int64) {
        buckets[Self.bucket(milliseconds: Double(nanoseconds) / 1e6)].add()
    }

    /// The bucket that holds `milliseconds`: the first whose bound is not below it, or the last.
    package static func bucket(milliseconds: Double) -> Int {
        bounds.firstIndex { milliseconds <= $0 } ?? bounds.count
    }

    /// The counts so far, bucket by bucket.
    package var counts: [Int] { buckets.map(\.value) }

    /// The upper bound (ms) of the bucket that holds the `fraction` (0.5 for p50) of the durations `counts` hold;
    /// `nil` when they hold none, `.infinity` when it is in the last bucket.
    package static func percentile(_ fraction: Double, of counts: [Int]) -> Double? {
        let total = counts.reduce(0, +)
        guard total > 0 else { return nil }
        let rank = Int((fraction * Double(total)).rounded(.up))
        var seen = 0
        for (index, count) in counts.enumerated() {
            seen += count
            if seen >= max(rank, 1) { return index < bounds.count ? bounds[index] : .infinity }
        }
        return .infinity
    }
}
