import Foundation
import Testing
import WebSocketsDemo

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// `public/WebSockets.js` in a real browser engine (headless Chromium), against a real server and site.
@Suite(.serialized) struct BrowserTests {
    @Test func onOffOnceSendAndErrorCallbacks() async throws {
        let harness = try await Harness.start()
        let browser = try await Chromium.launch()
        try await withTeardown({ await harness.stop() }) {
            defer { browser.kill() }
            let page = try await browser.open(harness.pageURL("alice"), in: try await browser.newContext())
            try await page.waitFor("cs.WebSockets.state === 'online'")
            let result = try await page.evaluate(
                """
                (async () => {
                  const ws = cs.WebSockets, seen = [];
                  const next = (action) => new Promise((resolve) =>
                    ws.once(action, (...args) => resolve(['ok', ...args]), (...args) => resolve(['error', ...args])));
                  const a = (x) => seen.push('a:' + x), b = (x) => seen.push('b:' + x);
                  if (ws.on('hello', a).on('hello', b).once('hello', (x) => seen.push('once:' + x)) !== ws) throw 'not chained';
                  let reply = next('hello'); ws.send('hello', 'one'); await reply;
                  ws.off('hello', b);
                  reply = next('hello'); ws.send('hello', 'two'); await reply;
                  ws.off('hello');
                  reply = next('hello'); ws.send('hello', 'three'); await reply;
                  const boom = next('boom'); ws.send('boom'); const error = await boom;
                  let errors = 0; ws.once('boom', () => {}, () => errors++);
                  reply = next('boom'); ws.send('boom'); await reply;
                  reply = next('boom'); ws.send('boom'); await reply;
                  const spread = next('broadcast'); ws.send('broadcast', [1, 'two', {three: 3}]);
                  return { seen, error, errors, spread: await spread };
                })()
                """)
            #expect(result["seen"] == ["a:Hello, one!", "b:Hello, one!", "once:Hello, one!", "a:Hello, two!"])
            #expect(result["error"] == ["error", 502, "Bad Gateway"])
            #expect(result["errors"] == 1)
            #expect(result["spread"] == ["ok", 1, "two", ["three": 3]])
        }
    }

    /// Presence in the browser client: the snapshot after authentication, then online and offline, through
    /// `cs.WebSockets.on`.
    @Test func presenceEventsReachThePage() async throws {
        let harness = try await Harness.start { $0.presenceGrace = 0.5 }
        let browser = try await Chromium.launch()
        try await withTeardown({ await harness.stop() }) {
            defer { browser.kill() }
            let carol = try await harness.connect("carol")
            let page = try await browser.open(harness.pageURL("watcher"), in: try await browser.newContext())
            try await page.waitFor("presence.length === 1")
            #expect(try await page.evaluate("presence") == [["Presence/snapshot", ["online": [3]]]])
            let alice = try await harness.connect("alice")
            try await page.waitFor("presence.length === 2")
            await alice.close()
            await carol.close()
            try await page.waitFor("presence.length === 4")
            let seen = try await page.evaluate("presence").arrayValue ?? []
            #expect(seen[1] == ["Presence/online", 1])
            #expect(
                Set(seen[2...].map { $0.serialized() }) == [#"["Presence/offline",1]"#, #"["Presence/offline",3]"#])
        }
    }

    @Test func importableAsAnESModule() async throws {
        let harness = try await Harness.start()
        let browser = try await Chromium.launch()
        try await withTeardown({ await harness.stop() }) {
            defer { browser.kill() }
            let page = try await browser.open(harness.pageURL("bob") + "&module=1", in: try await browser.newContext())
            try await page.waitFor("window.imported === true && cs.WebSockets.state === 'online'")
            #expect(
                try await page.evaluate("new Promise((r) => cs.WebSockets.once('hello', r).send('hello', 'module'))")
                    == "Hello, module!")
        }
    }

    @Test func bothTabsOfAUserGetAPrivateMessage() async throws {
        let harness = try await Harness.start()
        let browser = try await Chromium.launch()
        try await withTeardown({ await harness.stop() }) {
            defer { browser.kill() }
            let aliceContext = try await browser.newContext()
            let tab1 = try await browser.open(harness.pageURL("alice"), in: aliceContext)
            let tab2 = try await browser.open(harness.pageURL("alice"), in: aliceContext)
            let bob = try await browser.open(harness.pageURL("bob"), in: try await browser.newContext())
            for page in [tab1, tab2, bob] {
                try await page.waitFor("cs.WebSockets.state === 'online'")
                try await page.evaluate("window.got = []; cs.WebSockets.on('private', (text) => got.push(text)); true")
            }
            #expect(harness.server.sendToClients("private", "psst", .specificUsers, 1) == 2)
            for page in [tab1, tab2] {
                try await page.waitFor("got.length === 1")
                #expect(try await page.evaluate("got") == ["psst"])
            }
            // Bob's own message comes after any that reached him: he has that one alone.
            #expect(harness.server.sendToClients("private", "for bob", .specificUsers, 2) == 1)
            try await bob.waitFor("got.length >= 1")
            #expect(try await bob.evaluate("got") == ["for bob"])
        }
    }

    @Test func aMessageQueuedWhileTheServerIsDownArrivesOnceAfterItReturns() async throws {
        let harness = try await Harness.start()
        let browser = try await Chromium.launch()
        defer { browser.kill() }
        let page = try await browser.open(harness.pageURL("bob"), in: try await browser.newContext())
        try await page.waitFor("cs.WebSockets.state === 'online'")
        await harness.server.shutdown()
        try await page.waitFor("cs.WebSockets.state === 'offline' || cs.WebSockets.state === 'connecting'")
        try await page.evaluate("cs.WebSockets.send('queued', 42).queued")
        #expect(try await page.evaluate("cs.WebSockets.queued") == 1)
        let restarted = try await harness.restarted()
        try await withTeardown({ await restarted.stop() }) {
            try await page.waitFor(
                "cs.WebSockets.state === 'online' && cs.WebSockets.queued === 0", timeout: .seconds(20))
            try await eventually("the queued message reaches the site") {
                harness.site.events(named: "WebSockets/message").contains { $0["action"] == "queued" }
            }
            // A message sent after it reaches the site after it (a connection's events are in order): a second copy
            // of the queued one would have come before.
            try await page.evaluate("cs.WebSockets.send('after', 43); true")
            try await eventually("the next message reaches the site") {
                harness.site.events(named: "WebSockets/message").contains { $0["action"] == "after" }
            }
            let queued = harness.site.events(named: "WebSockets/message").filter { $0["action"] == "queued" }
            #expect(queued.count == 1)
            #expect(queued.first?["details"] == 42)
            #expect(
                try await page.evaluate("log.includes('state:offline') && log[log.length - 1] === 'state:online'")
                    == true)
        }
    }

    @Test func serverCloseStopsReconnecting() async throws {
        let harness = try await Harness.start()
        let browser = try await Chromium.launch()
        try await withTeardown({ await harness.stop() }) {
            defer { browser.kill() }
            let page = try await browser.open(harness.pageURL("carol"), in: try await browser.newContext())
            try await page.waitFor("cs.WebSockets.state === 'online'")
            try await page.evaluate(
                "window.serverCloses = 0; cs.WebSockets.on('Server/close', () => serverCloses++); true")
            harness.server.sendToClients("Server/close_by_user", 3, .all)
            try await page.waitFor("cs.WebSockets.state === 'closed' && serverCloses === 1")
            // Going online again (or becoming visible) must not bring a closed client back.
            try await page.evaluate("window.dispatchEvent(new Event('online')); true")
            // What is tested is an absence over time: a client that reconnects does so within its first backoff
            // (at most 0.5 s), so two seconds without one is the answer.
            try await Task.sleep(for: .seconds(2))
            #expect(try await page.evaluate("cs.WebSockets.state") == "closed")
            #expect(harness.server.hub.counts.connections == 0)
            #expect(harness.site.sessionRequests("carol") == 1)
        }
    }

    /// The demo on a phone: a blank name says why it was refused, and at 390 px neither the form nor the chat is
    /// wider than the screen (both were, sideways, before).
    @Test func demoOnAPhone() async throws {
        let demo = try await DemoSite.start(port: 0)
        let browser = try await Chromium.launch()
        try await withTeardown({ await demo.webSocketsServer.shutdown() }) {
            defer { browser.kill() }
            let page = try await browser.open(demo.url, in: try await browser.newContext())
            _ = try await page.devtools.call(
                "Emulation.setDeviceMetricsOverride",
                ["width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true], session: page.session)
            let fits = "document.documentElement.scrollWidth <= 390"
            try await page.waitFor(fits)
            try await page.evaluate(
                "document.getElementById('name').value = '   '; document.querySelector('form').submit(); true")
            try await page.waitFor("document.getElementById('name-error')")
            #expect(
                try await page.evaluate("document.getElementById('name-error').innerText")
                    == "Pick a name of 1 to 32 characters.")
            try await page.evaluate(
                "document.getElementById('name').value = 'Ann'; document.querySelector('form').submit(); true")
            try await page.waitFor(
                "document.getElementById('status') && document.getElementById('status').textContent === 'online'")
            try await page.evaluate(
                "document.getElementById('text').value = '\(String(repeating: "w", count: 200))'; document.getElementById('send').requestSubmit(); true"
            )
            try await page.waitFor("document.getElementById('log').innerText.includes('www')")
            let width = try await page.evaluate("document.documentElement.scrollWidth")
            #expect(width.intValue.map { $0 <= 390 } == true, "\(width)")
            // Issue 25: the demo's socket negotiated permessage-deflate; the browser's message came compressed and
            // the server's broadcast of it went out compressed.
            let extensions = try await page.evaluate(
                """
                new Promise((resolve) => {
                  const ws = new WebSocket(location.origin.replace('http', 'ws') + '/WebSockets');
                  ws.onopen = () => { resolve(ws.extensions); ws.close(); };
                  ws.onerror = () => resolve('error');
                })
                """)
            #expect(extensions == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
            let server = demo.webSocketsServer
            #expect(CompressionTests.counter(server, CompressionTests.inCompressed) > 0)
            #expect(
                CompressionTests.counter(server, CompressionTests.outUncompressed)
                    > CompressionTests.counter(server, CompressionTests.outCompressed) * 3)
        }
    }

    @Test func demoChatBetweenTwoUsers() async throws {
        let demo = try await DemoSite.start(port: 0) { $0.presenceGrace = 1 }
        let browser = try await Chromium.launch()
        try await withTeardown({ await demo.webSocketsServer.shutdown() }) {
            defer { browser.kill() }
            func join(_ name: String) async throws -> BrowserPage {
                let page = try await browser.open(demo.url, in: try await browser.newContext())
                try await page.evaluate(
                    "document.getElementById('name').value = '\(name)'; document.querySelector('form').submit(); true")
                try await page.waitFor(
                    "document.getElementById('status') && document.getElementById('status').textContent === 'online'")
                return page
            }
            let ann = try await join("Ann")
            let ben = try await join("Ben")
            func text(_ page: BrowserPage, _ selector: String) async throws -> String {
                try await page.evaluate("document.querySelector('\(selector)').innerText").stringValue ?? ""
            }
            try await ann.waitFor("document.getElementById('users').innerText.includes('Ben')")
            // Everyone: Ann writes, Ben reads.
            try await ann.evaluate(
                "document.getElementById('text').value = 'Hi Ben'; document.getElementById('send').requestSubmit(); true"
            )
            try await ben.waitFor("document.getElementById('log').innerText.includes('Ann: Hi Ben')")
            // Privately: Ben picks Ann in the list and writes; both see it.
            try await ben.evaluate(
                "[...document.querySelectorAll('#users li')].find((li) => li.textContent === 'Ann').click(); true")
            try await ben.waitFor("document.getElementById('to').textContent.includes('Ann')")
            try await ben.evaluate(
                "document.getElementById('text').value = 'just you'; document.getElementById('send').requestSubmit(); true"
            )
            try await ann.waitFor("document.getElementById('log').innerText.includes('(private) Ben → Ann: just you')")
            try await ben.waitFor("document.getElementById('log').innerText.includes('(private) Ben → Ann: just you')")
            // An error reply is shown; the seed's hello works.
            try await ann.evaluate(
                "document.getElementById('text').value = '  '; document.getElementById('send').requestSubmit(); true")
            try await ann.waitFor(
                "document.getElementById('log').innerText.includes('Error 400: Write something first')")
            try await ann.evaluate("document.getElementById('hello').click(); true")
            try await ann.waitFor("document.getElementById('log').innerText.includes('Site says: Hello back, Ann!')")
            #expect(try await text(ann, "#users").contains("Ann (you)"))
            let screenshot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".build/demo-screenshot.png").path
            try await ann.screenshot(to: screenshot)
            // Both dots are green, from the server's presence.
            let benDot = "[...document.querySelectorAll('#users li')].find((li) => li.textContent === 'Ben').firstChild"
            #expect(try await ann.evaluate("\(benDot).className") == "dot online")
            // Signing out closes the tab's socket for good: Ben's dot turns grey after the grace, and stays listed.
            try await ben.evaluate("document.getElementById('logout').click(); true")
            try await ann.waitFor("\(benDot).className === 'dot'")
        }
    }

    /// Issue 25: headless Chromium logs in on the PHP site and opens its WebSocket, which negotiates
    /// permessage-deflate; the site's replies and a page's send arrive through it.
    @Test func chromiumTalksToThePHPSiteCompressed() async throws {
        try await PHPSiteTests.withPHPSite { phpPort, serverPort, get in
            let browser = try await Chromium.launch()
            defer { browser.kill() }
            let page = try await browser.open(
                "http://127.0.0.1:\(phpPort)/login.php?user=42", in: try await browser.newContext())
            try await page.waitFor("document.body && document.body.innerText.includes('Logged in as user 42')")
            let name = String(repeating: "Zoe ", count: 50)
            let result = try await page.evaluate(
                """
                new Promise((resolve) => {
                  const ws = new WebSocket('ws://127.0.0.1:\(serverPort)/WebSockets'), seen = [];
                  ws.onopen = () => ws.send(JSON.stringify(['Client/authentication', null]));
                  ws.onmessage = (event) => {
                    const message = JSON.parse(event.data);
                    seen.push(message[0]);
                    if (message[0] === 'Client/authentication') ws.send(JSON.stringify(['hello', '\(name)']));
                    if (message[0] === 'hello') {
                      if (message[1] !== 'Hello, \(name)!') seen.push('wrong reply');
                      window.socket = ws;
                      resolve({ extensions: ws.extensions, seen });
                    }
                  };
                  ws.onerror = () => resolve({ error: true });
                })
                """)
            #expect(
                result["extensions"] == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
            #expect(result["seen"] == ["Client/authentication", "hello"])
            // A page of the site sends to the tab through the server.
            try await page.evaluate(
                "window.news = null; window.socket.onmessage = (event) => { window.news = event.data; }; true")
            _ = try await get("http://127.0.0.1:\(phpPort)/notify.php")
            try await page.waitFor("window.news !== null")
            #expect(try await page.evaluate("window.news") == #"["news",{"title":"Hi"}]"#)
        }
    }
}
