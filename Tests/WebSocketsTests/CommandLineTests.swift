import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// A newcomer's mistakes on the command line, against the real binary: each gets one clear line naming the setting
/// or argument and what is allowed, exit status 2, nothing written and nothing listening.
@Suite struct CommandLineTests {
    private func run(_ arguments: [String], in directory: String) async throws -> (status: Int32, output: String) {
        let process = try ServerProcess(arguments, directory: directory, captureErrors: true)
        defer { process.stop() }
        return await process.finish()
    }

    @Test func mistakesAreOneLineWithStatusTwoAndWriteNothing() async throws {
        let cases: [([String], String)] = [
            (["start"], "no site: give the site's address"),
            (
                ["start", "example.com"],
                #"invalid site "example.com": expected the site's address as an http:// or https:// URL"#
            ),
            (["start", "not a url"], #"invalid site "not a url""#),
            (["start", "ftp://x"], #"invalid site "ftp://x""#),
            (["start", "https://example.com", "10.0.0.5"], #"invalid server address "10.0.0.5""#),
            (
                ["start", "https://example.com", "--listen-port", "70000"],
                "invalid setting listen_port = 70000 (from --listen-port): expected an integer from 0 to 65535"
            ),
            (["web", "https://example.com", "--web-port", "-1"], "invalid setting web_port = -1"),
            (["demo", "--listen-port", "70000"], "invalid --listen-port 70000: expected a port from 1 to 65535"),
            (
                ["start", "https://example.com", "--postgres", "postgres://h/d?sslmode=on"],
                #"sslmode "on" is not one of"#
            ),
        ]
        for (arguments, expected) in cases {
            let directory = try ServerProcess.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let (status, output) = try await run(arguments, in: directory)
            #expect(status == 2, "\(arguments): \(output)")
            #expect(output.hasPrefix("websockets: "), "\(arguments): \(output)")
            #expect(output.split(separator: "\n").count == 1, "\(arguments): \(output)")
            #expect(output.contains(expected), "\(arguments): \(output)")
            // Nothing written: no settings file, no key.
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty, "\(arguments)")
        }
    }

    @Test func aPortInUseIsNamedAndAKeyMadeBeforeIsPrinted() async throws {
        let blocker = try await HTTPServer(port: 0) { _ in .text("taken") }
        try await withTeardown({ await blocker.shutdown() }) {
            let directory = try ServerProcess.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let (status, output) = try await run(
                ["start", "https://example.com", "--listen-port", "\(blocker.port)"], in: directory)
            #expect(status == 2)
            #expect(
                output.contains(
                    "websockets: listen_port \(blocker.port) on 127.0.0.1 is in use by another process: choose another with --listen-port"
                ), "\(output)")
            #expect(!output.contains("errno"))
            // The key was made before the port was found taken: it is printed all the same, and saved privately.
            let settings = try JSON(
                parsing: Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/websockets.json"))))
            let key = try #require(settings["security_key"]?.stringValue)
            #expect(output.contains("Generated a security key and saved it to websockets.json: \(key)"))
            let (again, demoOutput) = try await run(["demo", "--listen-port", "\(blocker.port)"], in: directory)
            #expect(again == 2)
            #expect(demoOutput.contains("listen_port \(blocker.port) on 127.0.0.1 is in use"), "\(demoOutput)")
        }
    }

    @Test func everySubcommandHasHelp() async throws {
        let directory = try ServerProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for command in ["start", "web", "send", "demo", "supervise"] {
            let (status, output) = try await run([command, "--help"], in: directory)
            #expect(status == 0, "\(command): \(output)")
            #expect(output.contains("OVERVIEW:"), "\(command): \(output)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }

    /// A site that answers the session check with 404 (the README's PHP files served without a router did): the
    /// log names the URL called, never the cookie or the key.
    @Test func anUnexpectedSiteAnswerIsLoggedWithTheURL() async throws {
        let site = try await TestSite.start()
        try await withTeardown({ await site.shutdown() }) {
            let directory = try ServerProcess.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let port = try ServerProcess.freePort()
            let server = try ServerProcess(
                ["start", site.url + "/missing", "--listen-port", "\(port)", "--security-key", site.key],
                directory: directory,
                captureErrors: true)
            defer { server.stop() }
            try await eventually(timeout: .seconds(20), "the server is ready") {
                let client = CurlClient(maximumConcurrency: 1)
                return await withTeardown({ await client.shutdown() }) {
                    let health = HTTPClientRequest(url: "http://127.0.0.1:\(port)/WebSockets/health")
                    return (try? await client.perform(health).get().status) == 200
                }
            }
            let tab = try await TestWebSocket.connect(port: port, headers: [("Cookie", "sid=alice")])
            try await tab.send("Client/authentication", nil)
            let close = try await tab.nextClose()
            #expect(close.before.first?.action == "Client/authentication:error")
            kill(server.process.processIdentifier, SIGTERM)
            let (_, log) = await server.finish()
            #expect(log.contains("session endpoint answered an unexpected status"), "\(log)")
            #expect(log.contains("url=\(site.url)/missing/api/WebSockets/session"), "\(log)")
            #expect(!log.contains("sid=alice"))
            #expect(!log.contains(site.key))
        }
    }
}
