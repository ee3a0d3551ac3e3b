import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCore
@testable import WebSocketsProtocol

/// The status page in headless Chromium: the sign-in, the live figures, a chart, a refusal, the test send, the
/// look on a phone and a desktop, and a cluster's pool with a server gone.
@Suite(.serialized) struct StatusPageBrowserTests {
    /// Opens the page of the server on `port` in a new context and signs in with `key`.
    private func signIn(_ browser: Chromium, port: Int, key: String) async throws -> BrowserPage {
        let page = try await browser.open(
            "http://127.0.0.1:\(port)/WebSockets/status", in: try await browser.newContext())
        try await submit(page, key: key)
        try await page.waitFor(
            "document.getElementById('state') && document.getElementById('state').textContent === 'live'")
        return page
    }

    private func submit(_ page: BrowserPage, key: String) async throws {
        try await page.evaluate(
            "document.getElementById('key').value = \(JSON.string(key).serialized()); document.querySelector('form.login').submit(); true"
        )
        try await page.waitFor("document.readyState === 'complete' && !document.getElementById('key')?.value")
    }

    private func text(_ page: BrowserPage, _ id: String) async throws -> String {
        try await page.evaluate("document.getElementById('\(id)').textContent").stringValue ?? ""
    }

    @Test func aWrongKeyIsRefusedAndTheRightOneShowsTheServerLive() async throws {
        let harness = try await Harness.start {
            // 1 message a second with a burst of 2: the flood below is refused.
            $0.messageRate = 1
            $0.messageBurst = 2
        }
        let browser = try await Chromium.launch()
        var sockets: [TestWebSocket] = []
        try await withTeardown({
            for socket in sockets { await socket.close() }
            browser.kill()
            await harness.stop()
        }) {
            let page = try await browser.open(
                "http://127.0.0.1:\(harness.port)/WebSockets/status", in: try await browser.newContext())
            try await submit(page, key: "not the key")
            try await page.waitFor("document.getElementById('refusal')")
            let shown = try await page.evaluate("document.body.innerText")
            #expect(try await text(page, "refusal") == "Wrong key.", "\(shown)")
            #expect(try await page.evaluate("fetch('/WebSockets/status/data').then((r) => r.status)") == .int(401))
            // The address now waits 0.5 s before its next try (StatusPageTests checks the pause): forgotten here,
            // rather than slept through.
            harness.server.statusLimiter.recordSuccess("127.0.0.1")
            try await submit(page, key: harness.key)
            try await page.waitFor("document.getElementById('state')?.textContent === 'live'")
            // The sign-in is a cookie no script can read.
            #expect(try await page.evaluate("document.cookie.includes('websockets_status')") == .bool(false))
            try await page.waitFor("document.getElementById('total').textContent === '0'")

            // Connections rising as clients connect: two registered users' tabs, a guest's, one not authenticated;
            // presence counts the two users (guests are not tracked).
            sockets.append(try await harness.connect("alice"))
            sockets.append(try await harness.connect("bob"))
            sockets.append(try await harness.connect("guest"))
            sockets.append(try await TestWebSocket.connect(port: harness.port, headers: [("Cookie", "sid=carol")]))
            try await page.waitFor(
                """
                document.getElementById('authenticated').textContent === '2'
                  && document.getElementById('guests').textContent === '1'
                  && document.getElementById('unauthenticated').textContent === '1'
                  && document.getElementById('users-online').textContent === '2'
                """)

            // A chart that moves: a point is added every 2 s, and the messages in (the tabs' authentications and
            // two more) make one of them rise above zero.
            let line = "document.querySelector('#chart-in polyline').getAttribute('points')"
            let before = try await page.evaluate("Number(document.getElementById('chart-in').dataset.count)")
            let drawn = try await page.evaluate(line)
            try await sockets[0].send("echo", "one")
            try await sockets[1].send("echo", "two")
            try await page.waitFor(
                "Number(document.getElementById('chart-in').dataset.count) > \(before.intValue ?? 0)"
                    + " && Number(document.getElementById('chart-in').dataset.max) > 0", timeout: .seconds(20))
            #expect(try await page.evaluate(line) != drawn)

            // A client that breaks a limit: bob floods past message_rate, and the refusal appears with its reason.
            for index in 0..<20 { try await sockets[1].send("flood", .int(Int64(index))) }
            try await page.waitFor(
                "document.querySelector('#refusals tr[data-reason=\"rate\"]')", timeout: .seconds(20))
            #expect(try await page.evaluate("document.getElementById('no-refusals').hidden") == .bool(true))

            // The site's side: the session checks made for the four tabs, with their latency.
            try await page.waitFor("document.querySelector('#site tbody tr')")

            // A test message to user 1 from the form: delivered to alice's one tab.
            try await page.evaluate(
                """
                document.getElementById('send-action').value = 'Status/test';
                document.getElementById('send-details').value = '{"from": "the status page"}';
                document.getElementById('send-to').value = '3';
                document.getElementById('send-target').value = '1';
                document.querySelector('#send button').click(); true
                """)
            try await page.waitFor("document.getElementById('send-result').dataset.delivered === '1'")
            var received: Message
            repeat { received = try await sockets[0].nextMessage() } while received.action != "Status/test"
            #expect(received.details == ["from": "the status page"])

            // The look: nothing wider than a phone's 390 px or a desktop's 1280 px; screenshots kept for a person.
            for (width, height, mobile) in [(390, 844, true), (1280, 900, false)] {
                _ = try await page.devtools.call(
                    "Emulation.setDeviceMetricsOverride",
                    [
                        "width": .int(Int64(width)), "height": .int(Int64(height)), "deviceScaleFactor": 1,
                        "mobile": .bool(mobile),
                    ],
                    session: page.session)
                try await page.waitFor("document.documentElement.clientWidth === \(width)")
                let overflow = try await page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth")
                #expect(overflow == .int(0), "horizontal overflow at \(width) px: \(overflow)")
                try await page.screenshot(to: NSTemporaryDirectory() + "websockets-status-\(width).png")
            }

            // Signing out ends it: the data is refused again.
            try await page.evaluate("document.querySelector('header form').submit(); true")
            try await page.waitFor("document.getElementById('key')")
            #expect(try await page.evaluate("fetch('/WebSockets/status/data').then((r) => r.status)") == .int(401))
        }
    }

    @Test func aClusterShowsEveryServerAndOneThatStopped() async throws {
        let cluster = try await ClusterTests.Cluster.start(2)
        defer { cluster.postgres.shutdown() }
        let browser = try await Chromium.launch()
        try await withTeardown({
            browser.kill()
            await cluster.stopServers()
        }) {
            let first = cluster.servers[0]
            let page = try await signIn(browser, port: first.port, key: cluster.site.key)
            let (a, b) = (first.address, cluster.servers[1].address)
            func row(_ address: String, _ state: String) -> String {
                "document.querySelector('#servers tr[data-address=\"\(address)\"]')?.className.startsWith('\(state)')"
            }
            try await page.waitFor("!document.getElementById('cluster').hidden && \(row(a, "up")) && \(row(b, "up"))")
            #expect(try await text(page, "database").hasPrefix("Database: ok"))
            await cluster.servers[1].shutdown()
            try await page.waitFor(row(b, "gone"), timeout: .seconds(20))
            #expect(try await page.evaluate(row(a, "up")) == .bool(true))
        }
    }
}
