import Foundation
import Logging
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite
@testable import WebSocketsLaunch

/// `trusted_proxies`: whose `X-Forwarded-For` is believed, read right to left as nginx's realip module does.
@Suite struct TrustedProxiesTests {
    @Test func rangesAndTheRightToLeftWalk() throws {
        let proxies = try TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8"])
        #expect(proxies.contains("127.0.0.1"))
        #expect(!proxies.contains("127.0.0.2"))
        #expect(proxies.contains("10.255.0.1"))
        #expect(!proxies.contains("11.0.0.1"))
        #expect(proxies.contains("fd12::1"))
        #expect(proxies.contains("::ffff:10.1.1.1"))
        #expect(!proxies.contains("fe80::1"))
        #expect(!proxies.contains("not an address"))
        // The first untrusted entry from the right is the client; what it wrote to the left of it is not believed.
        #expect(
            proxies.clientAddress(peer: "10.0.0.5", forwardedFor: ["1.1.1.1, 203.0.113.7, 10.1.2.3"]) == "203.0.113.7")
        #expect(proxies.clientAddress(peer: "10.0.0.5", forwardedFor: ["1.1.1.1", "203.0.113.7"]) == "203.0.113.7")
        // An untrusted peer is the client, whatever it writes.
        #expect(proxies.clientAddress(peer: "198.51.100.1", forwardedFor: ["203.0.113.7"]) == "198.51.100.1")
        // Every entry trusted: the leftmost stands; garbage ends the walk at the last address read.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["10.0.0.9, 10.0.0.8"]) == "10.0.0.9")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["evil, 10.0.0.8"]) == "10.0.0.8")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: []) == "127.0.0.1")
        #expect(TrustedProxies.loopback.contains("::1"))
        #expect(!TrustedProxies.loopback.contains("127.0.0.2"))

        #expect(TrustedProxies.problem(in: ["10.0.0.0/33"]) != nil)
        #expect(TrustedProxies.problem(in: ["nginx.local"]) != nil)
        #expect(TrustedProxies.problem(in: ["::/0", "0.0.0.0/0"]) == nil)
        let loader = SettingsLoader(
            path: "/nonexistent/websockets.json", environment: [:],
            flags: ["security_key": "k", "trusted_proxies": "10.0.0.1,proxy"])
        #expect {
            try loader.load(generateKey: false)
        } throws: { error in
            "\(error)".contains("trusted_proxies") && "\(error)".contains("\"proxy\" is not an IP address")
        }
    }

    @Test func theSiteSeesTheClientBehindTrustedProxiesOnly() async throws {
        // 127.0.0.1 (the test's own address) is a proxy, and so is 10.0.0.0/8 behind it.
        let trusting = try await Harness.start { $0.trustedProxies = ["127.0.0.1", "10.0.0.0/8"] }
        try await withTeardown({ await trusting.stop() }) {
            let behind = try await trusting.connect(
                "alice", headers: [("X-Forwarded-For", "1.1.1.1, 203.0.113.7, 10.1.2.3")])
            #expect(
                trusting.site.state.withLockedValue { $0.sessionHeaders.last }?.first(name: "X-Forwarded-For")
                    == "203.0.113.7")
            await behind.close()

            // 127.0.0.1 not among them: its header is ignored, for the site and for the per-address cap alike.
            let strict = try await Harness.start {
                $0.trustedProxies = ["10.0.0.0/8"]
                $0.maxConnectionsPerIP = 1
            }
            try await withTeardown({ await strict.stop() }) {
                let first = try await strict.connect("alice", headers: [("X-Forwarded-For", "203.0.113.7")])
                #expect(
                    strict.site.state.withLockedValue { $0.sessionHeaders.last }?.first(name: "X-Forwarded-For")
                        == "127.0.0.1")
                await #expect(throws: TestWebSocket.Failure.self) {
                    _ = try await TestWebSocket.connect(
                        port: strict.port, headers: [("X-Forwarded-For", "203.0.113.8")])
                }
                await first.close()
            }
        }
    }

    @Test func webStartPausesOnlyTheAddressThatGotTheKeyWrong() async throws {
        var settings = Settings(site: "http://127.0.0.1:1", securityKey: "right-key")
        settings.webPort = 0
        settings.listenPort = try ServerProcess.freePort()
        let web = WebStartService(settings: settings, logger: Logger(label: "test"), executable: nil)
        try await web.start()
        let client = CurlClient(maximumConcurrency: 1)
        func get(_ key: String, from address: String) async -> Int? {
            let url = "http://127.0.0.1:\(web.port)/WebSockets/\(key)"
            let request = HTTPClientRequest(
                url: url, headers: [("X-Forwarded-For", address)], timeout: TestPatience.scaled(.seconds(10)))
            return try? await client.perform(request).get().status
        }
        // Five wrong keys (each after the pause the one before set: 0.5, 1, 2, 4 s), so that the pause now, 8 s, is far
        // longer than a request takes on a loaded machine.
        var wrong = 0
        while wrong < 5 {
            let status = await get("wrong", from: "203.0.113.1")
            #expect(status == 400 || status == 429)
            if status == 400 { wrong += 1 } else { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(await get("right-key", from: "203.0.113.1") == 429)
        // Someone else, behind the same proxy, is not locked out by that typo.
        #expect(await get("right-key", from: "203.0.113.2") == 200)
        await client.shutdown()
        await web.shutdown()
    }
}
