import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCore
@testable import WebSocketsProtocol

/// `/WebSockets/status` end to end: its sign-in and what it refuses over HTTP, then the page itself in Chromium on
/// a server and on a cluster of two.
@Suite(.serialized) struct StatusPageTests {
    /// Signs in over HTTP as the form does (with curl, which shows the answer's headers); the cookie's `name=value`.
    private func signIn(_ harness: Harness) async throws -> String {
        try await signIn(port: harness.port, key: harness.key)
    }

    private func signIn(port: Int, key: String) async throws -> String {
        let answer = try await run(
            "/usr/bin/curl",
            [
                "-s", "-i", "-X", "POST", "-H", "Origin: http://127.0.0.1:\(port)", "--data-urlencode",
                "key=\(key)", "http://127.0.0.1:\(port)/WebSockets/status",
            ],
            in: NSTemporaryDirectory())
        #expect(answer.output.hasPrefix("HTTP/1.1 303"))
        let line = try #require(
            answer.output.split(separator: "\r\n").first { $0.lowercased().hasPrefix("set-cookie: ") })
        #expect(line.contains("HttpOnly") && line.contains("SameSite=Strict"))
        return String(line.dropFirst("set-cookie: ".count).split(separator: ";")[0])
    }

    @Test func nothingIsReachableWithoutTheKey() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let origin = ("Origin", "http://127.0.0.1:\(harness.port)")
            // Without a sign-in: the form, and nothing else.
            let page = try await harness.http("GET", "/WebSockets/status")
            #expect(page.status == 200 && page.body.contains("name=\"key\"") && !page.body.contains("app.js"))
            #expect(try await harness.http("GET", "/WebSockets/status/data").status == 401)
            #expect(try await harness.http("GET", "/WebSockets/status/app.js").status == 401)
            #expect(
                try await harness.http(
                    "POST", "/WebSockets/status/send", headers: [origin, ("X-WebSockets-Status", "1")],
                    body: #"["x", null, 1, null]"#
                ).status == 403)
            // A forged cookie, and the send key where the cookie belongs, are not a sign-in.
            let forged = (
                "Cookie",
                "websockets_status=\(Int(Date().timeIntervalSince1970) + 60).\(String(repeating: "0", count: 64))"
            )
            #expect(try await harness.http("GET", "/WebSockets/status/data", headers: [forged]).status == 401)
            #expect(
                try await harness.http("GET", "/WebSockets/status/data", headers: [("X-WebSockets-Key", harness.key)])
                    .status == 401)
            // Signed in: the data; a send from another origin, or without the page's header, is still refused.
            let cookie = ("Cookie", try await signIn(harness))
            let data = try await harness.http("GET", "/WebSockets/status/data", headers: [cookie])
            #expect(data.status == 200)
            #expect(try JSON(parsing: data.body)["connections"]?["total"] == .int(0))
            #expect(!data.body.contains(harness.key))
            let body = #"["Status/test", "hi", 1, null]"#
            #expect(
                try await harness.http(
                    "POST", "/WebSockets/status/send",
                    headers: [cookie, ("Origin", "http://evil.example"), ("X-WebSockets-Status", "1")], body: body
                ).status == 403)
            #expect(
                try await harness.http("POST", "/WebSockets/status/send", headers: [cookie, origin], body: body).status
                    == 403)
            let alice = try await harness.connect("alice")
            let sent = try await harness.http(
                "POST", "/WebSockets/status/send", headers: [cookie, origin, ("X-WebSockets-Status", "1")], body: body)
            #expect(sent.status == 202)
            #expect(try JSON(parsing: sent.body)["delivered"] == .int(1))
            #expect(try await alice.nextMessage() == Message(action: "Status/test", details: "hi"))
            await alice.close()
        }
    }

    @Test func wrongKeysAreRefusedCountedAndSlowedDown() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let origin = ("Origin", "http://127.0.0.1:\(harness.port)")
            let wrong = try await harness.http("POST", "/WebSockets/status", headers: [origin], body: "key=guess")
            #expect(wrong.status == 403 && wrong.body.contains("Wrong key."))
            // After more wrong keys the address waits 30 s (0.5 s doubling; they are recorded here rather than
            // tried, since each try must wait out the pause before): even the right key is refused unread.
            for _ in 0..<7 { harness.server.statusLimiter.recordFailure("127.0.0.1") }
            let right = try await harness.http(
                "POST", "/WebSockets/status", headers: [origin], body: "key=\(harness.key)")
            #expect(right.status == 429 && right.body.contains("Too many wrong keys"))
            // Without the page's origin (a form on another site), not even tried.
            let elsewhere = try await harness.http(
                "POST", "/WebSockets/status", headers: [("Origin", "http://evil.example")], body: "key=\(harness.key)")
            #expect(elsewhere.status == 403)
            let metrics = String(decoding: harness.server.metrics.render(), as: UTF8.self)
            #expect(metrics.contains(#"websockets_refused_total{reason="status_key"} 2"#))
        }
    }

    @Test func neitherTheKeyNorTheCookieReachesTheLog() async throws {
        let site = try await TestSite.start()
        // Every log line the server can write.
        let server = try await StartedServer.start(site: site, environment: ["WEBSOCKETS_LOG_LEVEL": "trace"])
        try await withTeardown({
            server.kill()
            await site.shutdown()
        }) {
            let cookie = try await signIn(port: server.port, key: site.key)
            let token = String(cookie.split(separator: "=")[1])
            let client = CurlClient(maximumConcurrency: 1)
            let data = await client.perform(
                HTTPClientRequest(
                    url: "http://127.0.0.1:\(server.port)/WebSockets/status/data", headers: [("Cookie", cookie)],
                    timeout: .seconds(10)))
            await client.shutdown()
            #expect(try data.get().status == 200)
            let output = await server.stop().output
            #expect(output.contains("status page: signed in"))
            #expect(!output.contains(site.key))
            #expect(!output.contains(token))
        }
    }

    @Test func theClientsTypeDeclarationsAreServedAndCheckTypedCode() async throws {
        let tsc = "/usr/bin/tsc"
        try #require(FileManager.default.isExecutableFile(atPath: tsc), "tsc (Debian's node-typescript)")
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let folder = NSTemporaryDirectory() + "websockets-tsc-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            for (path, file) in [
                ("/WebSockets/client.d.ts", "WebSockets.d.ts"), ("/WebSockets/client.d.mts", "WebSockets.d.mts"),
            ] {
                let served = try await harness.http("GET", path)
                #expect(served.status == 200)
                try served.body.write(toFile: folder + "/" + file, atomically: true, encoding: .utf8)
            }
            // Typed code as a page writes it, for the classic script and for the module.
            try """
            /// <reference path="./WebSockets.d.ts" />
            const badge = { textContent: '' };
            cs.WebSockets
              .on('hello', (greeting: string, count: number) => console.log(greeting, count), (code, message) => {
                const c: number = code;
                const m: string = message;
                console.warn(c, m);
              })
              .on('Client/state', (state) => { badge.textContent = state; })
              .once('Client/authentication', (details) => console.log(details['user']))
              .off('hello')
              .send('hello', { name: 'Ann', tags: ['a', 1, null] })
              .send('ping');
            const online: boolean = cs.WebSockets.state === 'online';
            const queued: number = cs.WebSockets.queued;
            const last: number | null = cs.WebSockets.lastId;
            console.log(online, queued, last);
            """.write(toFile: folder + "/page.ts", atomically: true, encoding: .utf8)
            try """
            import WebSockets from './WebSockets.mjs';
            WebSockets.on('Client/state', (state) => console.log(state)).send('hello', 'Ann');
            const n: number = WebSockets.queued;
            console.log(n);
            """.write(toFile: folder + "/module.mts", atomically: true, encoding: .utf8)
            let good = try await run(
                tsc,
                [
                    "--noEmit", "--strict", "--module", "node16", "--moduleResolution", "node16", "--lib", "es2017,dom",
                    "page.ts", "module.mts",
                ], in: folder)
            #expect(good.status == 0, "\(good.output)")
            // And what the declarations must refuse: a state that does not exist, details that are not JSON, a
            // number where the action goes.
            try """
            /// <reference path="./WebSockets.d.ts" />
            const s: 'open' = cs.WebSockets.state;
            cs.WebSockets.send('x', () => 1);
            cs.WebSockets.on(42, () => {});
            cs.WebSockets.state = 'online';
            """.write(toFile: folder + "/wrong.ts", atomically: true, encoding: .utf8)
            let bad = try await run(tsc, ["--noEmit", "--strict", "--lib", "es2017,dom", "wrong.ts"], in: folder)
            #expect(bad.status != 0)
            for line in ["wrong.ts(2,", "wrong.ts(3,", "wrong.ts(4,", "wrong.ts(5,"] {
                #expect(bad.output.contains(line), "\(bad.output)")
            }
        }
    }

    /// Runs `executable` to its end: its status and output. Waited for without holding one of the two threads that run
    /// the suite's tasks (``ServerProcess/finish(within:)``): `tsc` takes seconds, and a blocking wait for it at the
    /// suite's start, while every test starts, left the test sites' session answers late (authentications timed out
    /// in three other suites in one local run).
    private func run(_ executable: String, _ arguments: [String], in folder: String) async throws -> (
        status: Int32, output: String
    ) {
        try await ServerProcess(arguments, directory: folder, captureErrors: true, executable: executable).finish(
            within: .seconds(120))
    }
}
