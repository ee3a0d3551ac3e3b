import Foundation
import NIOHTTP1
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsCore

/// The status page's rules, on inputs: who is let in, what the charts keep, how percentiles and the pool read.
@Suite struct StatusRulesTests {
    private let now: Int64 = 1_800_000_000

    private func headers(cookie: String?, origin: String? = nil, host: String = "127.0.0.1:8080", action: Bool = false)
        -> HTTPHeaders
    {
        var headers = HTTPHeaders([("Host", host)])
        if let cookie { headers.add(name: "Cookie", value: "other=1; " + cookie) }
        if let origin { headers.add(name: "Origin", value: origin) }
        if action { headers.add(name: "X-WebSockets-Status", value: "1") }
        return headers
    }

    @Test func theCookieAdmitsUntilItExpiresAndOnlyUnderItsKey() throws {
        let access = StatusAccess(securityKey: "the key")
        let token = try #require(access.token(expiry: now + 60))
        #expect(access.admits(headers(cookie: "websockets_status=\(token)"), now: now))
        // Expired, too far ahead (a forged expiry), tampered with, made under another key, missing, or no key set.
        #expect(!access.admits(headers(cookie: "websockets_status=\(token)"), now: now + 60))
        let far = try #require(access.token(expiry: now + StatusAccess.lifetime + 1))
        #expect(!access.admits(headers(cookie: "websockets_status=\(far)"), now: now))
        let later = token.replacingOccurrences(of: "\(now + 60).", with: "\(now + 61).")
        #expect(!access.admits(headers(cookie: "websockets_status=\(later)"), now: now))
        let other = try #require(StatusAccess(securityKey: "another key").token(expiry: now + 60))
        #expect(!access.admits(headers(cookie: "websockets_status=\(other)"), now: now))
        #expect(!access.admits(headers(cookie: nil), now: now))
        #expect(!access.admits(headers(cookie: "websockets_status="), now: now))
        #expect(!access.admits(headers(cookie: "websockets_status=\(now + 60).zz"), now: now))
        #expect(StatusAccess(securityKey: "").token(expiry: now + 60) == nil)
        #expect(!StatusAccess(securityKey: "").admits(headers(cookie: "websockets_status=\(token)"), now: now))
        // The cookie's own attributes: no script reads it, no other site sends it, HTTPS only when the page was.
        let cookie = try #require(access.signInCookie(expiry: now + 60, secure: false))
        #expect(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict")
                && cookie.contains("Path=/WebSockets/status"))
        #expect(!cookie.contains("the key") && !cookie.contains("Secure"))
        #expect(try #require(access.signInCookie(expiry: now + 60, secure: true)).hasSuffix("; Secure"))
    }

    @Test func anActionNeedsTheCookieThePagesOriginAndItsHeader() throws {
        let access = StatusAccess(securityKey: "the key")
        let cookie = "websockets_status=" + (try #require(access.token(expiry: now + 60)))
        #expect(access.admitsAction(headers(cookie: cookie, origin: "http://127.0.0.1:8080", action: true), now: now))
        #expect(
            access.admitsAction(
                headers(cookie: cookie, origin: "https://rt.example.com", host: "rt.example.com", action: true),
                now: now))
        #expect(!access.admitsAction(headers(cookie: cookie, origin: "http://127.0.0.1:8080"), now: now))
        #expect(!access.admitsAction(headers(cookie: cookie, origin: "http://evil.example", action: true), now: now))
        #expect(!access.admitsAction(headers(cookie: cookie, action: true), now: now))
        #expect(!access.admitsAction(headers(cookie: nil, origin: "http://127.0.0.1:8080", action: true), now: now))
    }

    @Test func theFormsKeyIsDecoded() {
        #expect(StatusAccess.formValue("key", in: Array("a=1&key=a%2Bb+c%26&z=".utf8)) == "a+b c&")
        #expect(StatusAccess.formValue("key", in: Array("keys=1".utf8)) == nil)
    }

    @Test func theHistoryKeepsTheNewestPointsInOrder() {
        var history = StatusHistory(capacity: 4)
        for value in 1...6 {
            history.append(.init(messagesIn: Float(value), messagesOut: 0, bytesOut: 0))
        }
        #expect(history.points.map(\.messagesIn) == [3, 4, 5, 6])
        #expect(StatusHistory().capacity * MemoryLayout<StatusHistory.Point>.stride <= 6 * 1024)
    }

    @Test func theSamplerMakesRatesAndPercentilesFromItsWindow() {
        let counters = StatusCounters()
        var sampler = StatusSampler(points: 10, window: 2)
        let start = ContinuousClock.now
        sampler.add(counters.snapshot(at: start))
        counters.messagesIn.add(20)
        for _ in 0..<99 { counters.sessionChecks.record(nanoseconds: 1_000_000) }
        counters.sessionChecks.record(nanoseconds: 3_000_000_000)
        counters.refused(.rate)
        sampler.add(counters.snapshot(at: start + .seconds(2)))
        #expect(sampler.history.points == [.init(messagesIn: 10, messagesOut: 0, bytesOut: 0)])
        let (earlier, later) = try! #require(sampler.span)
        let counts = StatusSnapshot.difference(later.sessionLatency, earlier.sessionLatency)
        #expect(LatencyTally.percentile(0.5, of: counts) == 1)
        #expect(LatencyTally.percentile(0.99, of: counts) == 1)
        #expect(LatencyTally.percentile(1, of: counts)! >= 3000)
        #expect(LatencyTally.percentile(0.5, of: [0, 0]) == nil)
        #expect(later.refused["rate"] == 1 && later.perSecond(1, since: earlier) == 0.5)
        // The window slides: after two more samples the first is gone.
        sampler.add(counters.snapshot(at: start + .seconds(4)))
        sampler.add(counters.snapshot(at: start + .seconds(6)))
        #expect(sampler.recent.count == 3 && sampler.span!.earlier.time == start + .seconds(2))
    }

    @Test func aServerThatLeftThePoolIsShownGoneThenForgotten() {
        var pool = StatusPool()
        let start = ContinuousClock.now
        let a = PoolMember(address: "ws://a", server: "1", connections: 3, behind: 0, heartbeatAge: 1)
        let b = PoolMember(address: "ws://b", server: "2", connections: 4, behind: 2, heartbeatAge: 20)
        pool.update([a, b], now: start)
        #expect(pool.rows["ws://a"]?.state == .up && pool.rows["ws://b"]?.state == .late)
        pool.update([a], now: start + .seconds(2))
        #expect(pool.rows["ws://b"]?.state == .gone)
        #expect(pool.json(me: "ws://a").arrayValue?.first?["self"] == .bool(true))
        pool.update([a], now: start + .seconds(16 * 60))
        #expect(pool.rows["ws://b"] == nil && pool.rows["ws://a"] != nil)
    }
}
