import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite
@testable import WebSocketsLaunch

/// The supervisor and web start, as real processes.
@Suite struct LaunchTests {
    private func get(_ url: String) async -> (status: Int, body: String)? {
        let client = CurlClient(maximumConcurrency: 2)
        let result = await client.perform(HTTPClientRequest(url: url, timeout: .seconds(30)))
        await client.shutdown()
        guard let response = try? result.get() else { return nil }
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    private func healthPID(port: Int) async -> Int32? {
        guard let answer = await get("http://127.0.0.1:\(port)/WebSockets/health"), answer.status == 200,
            let pid = (try? JSON(parsing: answer.body))?["pid"]?.intValue
        else { return nil }
        return Int32(pid)
    }

    private func settingsDirectory(listenPort: Int, webPort: Int, extra: String = "") throws -> String {
        let directory = try ServerProcess.temporaryDirectory()
        let text = #"{"security_key": "web-key", "listen_port": \#(listenPort), "web_port": \#(webPort)\#(extra)}"#
        try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/websockets.json"))
        return directory
    }

    @Test func supervisorRestartsACommandThatExits() async throws {
        let directory = try ServerProcess.temporaryDirectory()
        let supervisor = try ServerProcess(
            ["supervise", "--", "/bin/sh", "-c", "echo $$ >> runs"], directory: directory, captureErrors: true)
        defer { supervisor.stop() }
        try await eventually(timeout: .seconds(10), "three runs") {
            ((try? String(contentsOfFile: directory + "/runs", encoding: .utf8)) ?? "").split(separator: "\n").count
                >= 3
        }
        kill(supervisor.process.processIdentifier, SIGTERM)
        let (status, log) = await supervisor.finish()
        #expect(status == 0)
        // Quick exits are a crash loop: the pause grows and the supervisor says so.
        #expect(log.contains("crash loop: restarting with a longer pause"))
        #expect(log.contains("pause=2.0 seconds"))
    }

    @Test func supervisorStopsItsChildOnSIGTERM() async throws {
        let directory = try ServerProcess.temporaryDirectory()
        let supervisor = try ServerProcess(["supervise", "echo $$ >> pids; exec sleep 60"], directory: directory)
        defer { supervisor.stop() }
        try await eventually(timeout: .seconds(10), "the child runs") { !Self.pids(in: directory).isEmpty }
        let child = Self.pids(in: directory)[0]
        #expect(ServerProcess.isAlive(child))
        #expect(ServerProcess.parentAndSession(of: child)?.parent == supervisor.process.processIdentifier)
        kill(supervisor.process.processIdentifier, SIGTERM)
        await supervisor.process.exited()
        #expect(supervisor.process.terminationStatus == 0)
        #expect(!ServerProcess.isAlive(child))
    }

    /// The process ids a supervised `echo $$ >> pids` wrote in `directory`, in order.
    private static func pids(in directory: String) -> [Int32] {
        ((try? String(contentsOfFile: directory + "/pids", encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { Int32($0) }
    }

    /// SIGHUP restarts the command at once; the supervisor stays, and so does its hold on the new command. On the
    /// old main, SIGHUP killed the supervisor and left its command running under init.
    @Test func supervisorRestartsItsCommandOnSIGHUP() async throws {
        let directory = try ServerProcess.temporaryDirectory()
        let supervisor = try ServerProcess(["supervise", "echo $$ >> pids; exec sleep 60"], directory: directory)
        defer { supervisor.stop() }
        @Sendable func pids() -> [Int32] { Self.pids(in: directory) }
        try await eventually(timeout: .seconds(10), "the command runs") { pids().count == 1 }
        let first = pids()[0]
        kill(supervisor.process.processIdentifier, SIGHUP)
        try await eventually(timeout: .seconds(10), "the command is restarted") { pids().count == 2 }
        let second = pids()[1]
        try await eventually(timeout: .seconds(5), "the first command ends") { !ServerProcess.isAlive(first) }
        #expect(supervisor.process.isRunning)
        #expect(ServerProcess.parentAndSession(of: second)?.parent == supervisor.process.processIdentifier)
        kill(supervisor.process.processIdentifier, SIGTERM)
        await supervisor.process.exited()
        #expect(supervisor.process.terminationStatus == 0)
        #expect(!ServerProcess.isAlive(second))
    }

    /// A command that exits 2 (a settings mistake) would fail the same way forever: it is not restarted.
    @Test func supervisorDoesNotRestartACommandThatExitsWithTwo() async throws {
        let directory = try ServerProcess.temporaryDirectory()
        let supervisor = try ServerProcess(
            ["supervise", "echo run >> runs; exit 2"], directory: directory, captureErrors: true)
        defer { supervisor.stop() }
        await supervisor.process.exited()
        #expect(supervisor.process.terminationStatus == 2)
        #expect(try String(contentsOfFile: directory + "/runs", encoding: .utf8) == "run\n")
        let help = try ServerProcess(["supervise", "--help"], directory: directory, captureErrors: true)
        let (helpStatus, text) = await help.finish()
        #expect(helpStatus == 0)
        #expect(text.contains("Usage: websockets supervise '"))
    }

    /// Web start's failed starts: a server that exits at once (its port is taken) and one that never comes up
    /// (its database does not answer) are each stopped with their supervisor before the 500, which carries the
    /// end of the log; nothing of theirs is left running, and the web service has no zombie. On the old main each
    /// try left a supervisor restarting its server.
    @Test func aFailedWebStartLeavesNothingBehind() async throws {
        let blocker = try await HTTPServer(port: 0) { _ in .text("taken", status: .notFound) }
        let closedPort = try ServerProcess.freePort()
        for (listenPort, extra, expected) in [
            (blocker.port, "", "listen_port \(blocker.port) on 127.0.0.1 is in use"),
            (
                try ServerProcess.freePort(),
                #", "postgres": "postgres://postgres@127.0.0.1:\#(closedPort)/postgres?sslmode=disable", "web_start_timeout": 3"#,
                "PostgreSQL at 127.0.0.1:\(closedPort)"
            ),
        ] {
            let webPort = try ServerProcess.freePort()
            let directory = try settingsDirectory(listenPort: listenPort, webPort: webPort, extra: extra)
            let site = "http://127.0.0.1:1/failed-start-\(webPort)"
            let web = try ServerProcess(["web", site], directory: directory)
            defer { web.stop() }
            try await eventually(timeout: .seconds(20), "web start listens") {
                await get("http://127.0.0.1:\(webPort)/") != nil
            }
            let answer = try #require(await get("http://127.0.0.1:\(webPort)/WebSockets/web-key"))
            #expect(answer.status == 500)
            #expect(answer.body.contains(expected), "\(answer.body)")
            #expect(
                ServerProcess.commandLines(containing: site).filter { $0.pid != web.process.processIdentifier }.isEmpty)
            #expect(ServerProcess.children(of: web.process.processIdentifier).isEmpty)
        }
        await blocker.shutdown()
    }

    @Test func supervisorWithoutACommandPrintsItsUsage() async throws {
        let directory = try ServerProcess.temporaryDirectory()
        let process = try ServerProcess(["supervise"], directory: directory, captureErrors: true)
        let (status, text) = await process.finish()
        #expect(status == 2)
        #expect(text.contains("Usage: websockets supervise '"))
    }

    @Test func webStartSpawnsOneDetachedServerThatOutlivesIt() async throws {
        let listenPort = try ServerProcess.freePort()
        let webPort = try ServerProcess.freePort()
        let directory = try settingsDirectory(listenPort: listenPort, webPort: webPort)
        let site = "http://127.0.0.1:\(listenPort + 1)/web-start-test-\(listenPort)"
        let web = try ServerProcess(["web", site], directory: directory)
        defer { web.stop() }
        let base = "http://127.0.0.1:\(webPort)/WebSockets/"
        try await eventually(timeout: .seconds(20), "web start listens") {
            await get("http://127.0.0.1:\(webPort)/") != nil
        }
        // A wrong key: 400 (the pause that follows is tested in TrustedProxiesTests, where a loaded machine cannot
        // outlast it); once it has passed, the right key starts the server.
        #expect(await get(base + "wrong")?.status == 400)
        try await Task.sleep(for: .milliseconds(700))

        async let first = get(base + "web-key")
        async let second = get(base + "web-key")
        let answers = await [first?.body, second?.body].compactMap { $0 }.sorted()
        #expect(answers == ["Server already running", "Server started"])
        let servers = ServerProcess.commandLines(containing: site).filter { $0.arguments.dropFirst().first == "start" }
        #expect(servers.count == 1)
        let pid = try #require(await healthPID(port: listenPort))
        let family = try #require(ServerProcess.parentAndSession(of: pid))
        let supervisor = family.parent
        #expect(
            ServerProcess.commandLines(containing: site).contains {
                $0.pid == supervisor && $0.arguments.contains("supervise")
            })
        #expect(family.session != ServerProcess.parentAndSession(of: web.process.processIdentifier)?.session)
        #expect(await get(base + "web-key")?.body == "Server already running")

        // A supervisor that stops while the web service runs is reaped by it, not left a zombie.
        kill(supervisor, SIGTERM)
        try await eventually(timeout: .seconds(10), "the supervised server stops and is reaped") {
            !ServerProcess.isAlive(pid) && !FileManager.default.fileExists(atPath: "/proc/\(supervisor)")
        }
        #expect(ServerProcess.children(of: web.process.processIdentifier).isEmpty)
        #expect(await get(base + "web-key")?.body == "Server started")
        let restarted = try #require(await healthPID(port: listenPort))
        let newSupervisor = try #require(ServerProcess.parentAndSession(of: restarted)).parent

        // The web service dies; the server it started does not.
        kill(web.process.processIdentifier, SIGKILL)
        await web.process.exited()
        try await Task.sleep(for: .milliseconds(300))
        #expect(await healthPID(port: listenPort) == restarted)

        kill(newSupervisor, SIGTERM)
        try await eventually(timeout: .seconds(10), "the supervised server stops") {
            !ServerProcess.isAlive(restarted) && !ServerProcess.isAlive(newSupervisor)
        }
        let log = try String(contentsOfFile: directory + "/websockets.log", encoding: .utf8)
        #expect(log.contains("listening"))
        #expect(!log.contains("web-key"))
    }

    @Test func webStartFallsBackToAnInProcessServer() async throws {
        // Forced by the setting, and by an executable that is gone (deleted after it started).
        let copy = try ServerProcess.temporaryDirectory() + "/websockets-copy"
        try FileManager.default.copyItem(atPath: ServerProcess.executable.path, toPath: copy)
        for useCopy in [false, true] {
            let listenPort = try ServerProcess.freePort()
            let webPort = try ServerProcess.freePort()
            let directory = try settingsDirectory(
                listenPort: listenPort, webPort: webPort, extra: useCopy ? "" : #", "spawn": false"#)
            let web = try ServerProcess(
                ["web", "http://127.0.0.1:1"], directory: directory, executable: useCopy ? copy : nil)
            defer { web.stop() }
            let base = "http://127.0.0.1:\(webPort)/WebSockets/"
            try await eventually(timeout: .seconds(20), "web start listens") {
                await get("http://127.0.0.1:\(webPort)/") != nil
            }
            if useCopy { try FileManager.default.removeItem(atPath: copy) }
            #expect(await get(base + "web-key")?.body == "Server started in-process")
            #expect(await healthPID(port: listenPort) == web.process.processIdentifier)
            #expect(await get(base + "web-key")?.body == "Server already running")
            kill(web.process.processIdentifier, SIGTERM)
            await web.process.exited()
            #expect(web.process.terminationStatus == 0)
            #expect(await healthPID(port: listenPort) == nil)
        }
    }
}
