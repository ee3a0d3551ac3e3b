import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

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

    @Test func theEndOfAFloodIsToldOnceItsLineIsDueOrAtAStop() {
        var throttle = LogThrottle(interval: .seconds(10))
        let start = ContinuousClock.now
        #expect(throttle.admit("key", now: start) == 1)
        #expect(throttle.admit("key", now: start + .seconds(1)) == nil)
        #expect(throttle.admit("key", now: start + .seconds(2)) == nil)
        #expect(throttle.admit("upgrade", now: start) == 1)
        #expect(throttle.overdue(now: start + .seconds(5)).isEmpty)
        let due = throttle.overdue(now: start + .seconds(10))
        #expect(due.map(\.reason) == ["key"] && due.map(\.count) == [2])
        #expect(throttle.overdue(now: start + .seconds(12)).isEmpty, "told once")
        #expect(throttle.admit("key", now: start + .seconds(15)) == nil)
        let atStop = throttle.overdue(now: start + .seconds(16), all: true)
        #expect(atStop.map(\.reason) == ["key"] && atStop.map(\.count) == [1])
    }
}
