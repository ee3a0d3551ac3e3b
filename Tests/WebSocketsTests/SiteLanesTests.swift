import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The decisions of issue 12, on inputs: lanes to the site, the session cache, the session set after a close.
@Suite struct SiteLanesTests {
    @Test func sessionChecksGoFirstAndKeepSlotsOfTheirOwn() {
        var lanes = SiteLanes<String>(capacity: 8)
        #expect(lanes.sessionReserve == 2 && lanes.ownerShare == 2)
        for index in 0..<10 { lanes.add("a\(index)", lane: .message(owner: "a")) }
        for index in 0..<10 { lanes.add("b\(index)", lane: .message(owner: "b")) }
        for index in 0..<10 { lanes.add("c\(index)", lane: .message(owner: "c")) }
        lanes.add("s0", lane: .session)
        var started: [String] = []
        while let (item, _) = lanes.next() { started.append(item) }
        // The session check first; then owners take turns, two each at most, and two slots stay free for sessions.
        #expect(started == ["s0", "a0", "b0", "c0", "a1", "b1", "c1"])
        lanes.add("s1", lane: .session)
        #expect(lanes.next()?.item == "s1")
        #expect(lanes.next() == nil)
        lanes.finished(.message(owner: "a"))
        // One of a's posts ended: a takes the freed slot, b and c are at their share.
        #expect(lanes.next()?.item == "a2")
        #expect(lanes.next() == nil)
        #expect(lanes.waiting == 32 - 9)
        #expect(lanes.removeAll().count == 23)
    }

    /// Issue 23: a connection's events no longer wait in its drain but in the lanes, so the lanes keep their order:
    /// a post with a key starts only once no earlier post of that key is under way.
    @Test func aConnectionsPostsStartOneAfterTheOther() {
        var lanes = SiteLanes<String>(capacity: 8)
        lanes.add("authentication", lane: .message(owner: "u"), key: "c1")
        lanes.add("online", lane: .message(owner: "u"), key: "c1")
        lanes.add("other tab", lane: .message(owner: "u"), key: "c2")
        #expect(lanes.next()?.item == "authentication")
        // c1's next waits for its first, and the owner's other posts wait behind it (the owner's order is kept).
        #expect(lanes.next() == nil)
        lanes.finished(.message(owner: "u"), key: "c1")
        #expect(lanes.next()?.item == "online")
        #expect(lanes.next()?.item == "other tab")
        #expect(lanes.waiting == 0)
    }

    @Test func aSmallClientUsesEverySlot() {
        var lanes = SiteLanes<Int>(capacity: 1)
        lanes.add(1, lane: .message(owner: "x"))
        lanes.add(2, lane: .message(owner: "x"))
        #expect(lanes.next()?.item == 1)
        #expect(lanes.next() == nil)
        lanes.finished(.message(owner: "x"))
        #expect(lanes.next()?.item == 2)
    }

    @Test func theCacheKeyIsWhatTheSiteSeesAndNothingWithoutACookie() {
        let owner = BrowserCredentials(cookie: "sid=1", userAgent: "A", acceptLanguage: "en", address: "1.1.1.1")
        var other = owner
        other.userAgent = "B"
        #expect(owner.cacheKey != nil && owner.cacheKey != other.cacheKey)
        other = owner
        other.address = "2.2.2.2"
        #expect(owner.cacheKey != other.cacheKey)
        other = owner
        other.acceptLanguage = "de"
        #expect(owner.cacheKey != other.cacheKey)
        other = owner
        other.cookie = ""
        #expect(other.cacheKey == nil)
    }

    @Test func aFullCacheEvictsAnswersButNeverAPendingCheck() async {
        let cache = SessionCache<String>(lifetime: .seconds(60), maximumEntries: 4)
        let session = SessionValidation.valid(SessionInfo(user: 1, session: "s"))
        // A check under way for "slow", which must survive the evictions below.
        let (started, signal) = AsyncStream<Void>.makeStream()
        let (release, go) = AsyncStream<Void>.makeStream()
        let slow = Task {
            await cache.value(for: "slow") {
                signal.yield()
                for await _ in release { break }
                return session
            }
        }
        for await _ in started { break }
        for index in 0..<10 { _ = await cache.value(for: "k\(index)") { session } }
        #expect(cache.count <= 4)
        // A second caller for "slow" joins the check under way rather than starting another.
        let joined = Task { await cache.value(for: "slow") { .failed("asked twice") } }
        go.yield()
        #expect(await slow.value.0 == session)
        #expect(await joined.value == (session, true))
        // Without a key nothing is kept.
        _ = await cache.value(for: nil) { session }
        #expect(await cache.value(for: nil) { .failed("x") }.0 == .failed("x"))
    }

    @Test func rejectionsAreKeptBrieflyAndFailuresNot() async {
        let cache = SessionCache<String>(lifetime: .seconds(60))
        _ = await cache.value(for: "r") { .rejected(status: 401) }
        #expect(await cache.value(for: "r") { .failed("asked again") } == (.rejected(status: 401), true))
        _ = await cache.value(for: "f") { .failed("down") }
        #expect(await cache.value(for: "f") { .rejected(status: 403) } == (.rejected(status: 403), false))
    }
}
