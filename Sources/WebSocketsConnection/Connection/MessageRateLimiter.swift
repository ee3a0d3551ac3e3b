import WebSocketsCore

/// A token bucket per connection: `rate` messages a second on average, `burst` at once. Sixteen bytes, kept in the
/// connection's handler and touched only on its event loop.
package struct MessageRateLimiter {
    private var tokens: Double
    /// When tokens were last added (nanoseconds of a monotonic clock); `0` before the first message.
    private var last: UInt64 = 0

    /// A full bucket of `burst` tokens.
    package init(burst: Int) {
        tokens = Double(burst)
    }

    /// Whether a message arriving at `now` (monotonic nanoseconds) is within the limit; takes a token if it is.
    package mutating func admit(now: UInt64, rate: Double, burst: Int) -> Bool {
        if last != 0, now > last {
            tokens = min(Double(burst), tokens + Double(now - last) / 1e9 * rate)
        }
        last = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
