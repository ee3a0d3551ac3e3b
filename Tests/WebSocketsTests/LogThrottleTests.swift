import Testing

@testable import WebSockets

/// Refusals are logged once per reason per interval, with the count since the line before.
struct LogThrottleTests {
    @Test func aFloodBecomesOneLinePerIntervalWithItsCount() {
        var throttle = LogThrottle(interval: .seconds(10))
        let start = ContinuousClock.now
        #expect(throttle.admit("key", now: start) == 1)
        for second in 1...9 { #expect(throttle.admit("key", now: start + .seconds(second)) == nil) }
        // Another reason has its own line.
        #expect(throttle.admit("upgrade", now: start + .seconds(1)) == 1)
        #expect(throttle.admit("key", now: start + .seconds(10)) == 10)
        #expect(throttle.admit("key", now: start + .seconds(11)) == nil)
        #expect(throttle.admit("key", now: start + .seconds(25)) == 2)
    }
}
