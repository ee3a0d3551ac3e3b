import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

@Suite struct ProcessTests {
    /// As a user without privileges, as the Debian package's unit runs it. Every connection used to be refused
    /// then ("accepted connection not set up", EACCES): `.socketOption(.tcp_nodelay)` is SOL_SOCKET's option 1,
    /// SO_DEBUG, which only a privileged process may set, and the suite ran as root. Found by `PackageTests`.
    @Test(.enabled(if: getuid() == 0, "needs root to become another user"))
    func anUnprivilegedServerServes() async throws {
        let site = try await TestSite.start()
        try await withTeardown({ await site.shutdown() }) {
            let directory = try ServerProcess.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let port = try ServerProcess.freePort()
            let server = try ServerProcess(
                [
                    "--reuid=nobody", "--regid=nogroup", "--clear-groups", ServerProcess.executable.path, "start",
                    site.url, "--listen-port", "\(port)", "--security-key", site.key,
                ], directory: directory, captureErrors: true, executable: "/usr/bin/setpriv")
            defer { server.stop() }
            let output = try await PackageTests.helloAndStop(server, port: port)
            #expect(!output.contains("not set up"), "\(output)")
        }
    }

    @Test func startSendAndGracefulStopAsAProcess() async throws {
        let directory = try ServerProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = try ServerProcess.freePort()
        try Data(#"{"listen_port": \#(port)}"#.utf8).write(to: URL(fileURLWithPath: directory + "/websockets.json"))

        // First start: the key is generated, saved and printed once.
        let probe = try await TestSite.start()
        let server = try ServerProcess(["start", probe.url], directory: directory)
        defer { server.stop() }
        let healthURL = "http://127.0.0.1:\(port)/WebSockets/health"
        try await eventually(timeout: .seconds(20), "the server answers its health check") {
            let client = CurlClient(maximumConcurrency: 1)
            return await withTeardown({ await client.shutdown() }) {
                return (try? await client.perform(HTTPClientRequest(url: healthURL)).get().status) == 200
            }
        }
        let settings = try JSON(
            parsing: [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/websockets.json"))))
        let key = try #require(settings["security_key"]?.stringValue)
        #expect(key.count == 56)
        server.process.terminate()
        let (_, printed) = await server.finish()
        #expect(printed.contains("Generated a security key"))
        #expect(printed.contains(key))
        await probe.shutdown()

        // Second start with a site that knows the key: nothing is printed; sends come in from the command line.
        let site = try await TestSite.start(key: key)
        let again = try ServerProcess(["start", site.url], directory: directory)
        defer { again.stop() }
        try await eventually(timeout: .seconds(20), "the server answers its health check") {
            let client = CurlClient(maximumConcurrency: 1)
            return await withTeardown({ await client.shutdown() }) {
                return (try? await client.perform(HTTPClientRequest(url: healthURL)).get().status) == 200
            }
        }
        let alice = try await TestWebSocket.authenticated(port: port, sid: "alice")
        let bob = try await TestWebSocket.authenticated(port: port, sid: "bob")
        let sent = try await ServerProcess.run(
            ["send", "greet", #"{"from":"cron"}"#, "--to", "users", "--target", "1"], directory: directory)
        #expect(sent.status == 0)
        #expect(try await alice.nextMessage() == Message(action: "greet", details: ["from": "cron"]))
        try await bob.expectNoMessage()
        let refused = try await ServerProcess.run(["send", "x", "--security-key", "wrong"], directory: directory)
        #expect(refused.status != 0)

        // SIGTERM: every client gets 1001 "going away" and the process exits 0.
        kill(again.process.processIdentifier, SIGTERM)
        for socket in [alice, bob] {
            let close = try await socket.nextClose()
            #expect(close.code == 1001)
        }
        let (status, printedAgain) = await again.finish()
        #expect(status == 0)
        #expect(printedAgain.isEmpty)
        await site.shutdown()
    }
}
