import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The PHP site of docs/site.md, as written: its files are taken from the page (each block that starts with
/// `<?php // <path>`), served by PHP's built-in server (Debian's php-cli and php-curl), in front of the real
/// `websockets` binary, with a real WebSocket client. The README shows three of them, which must be the same.
@Suite struct PHPSiteTests {
    /// The site page's PHP files by path.
    static func readmeFiles() throws -> [String: String] {
        try phpFiles(in: "docs/site.md")
    }

    /// The PHP files written in the Markdown file at `path` (from the repository's root), by their paths.
    static func phpFiles(in path: String) throws -> [String: String] {
        let readme = try String(contentsOf: DeployTests.root.appendingPathComponent(path), encoding: .utf8)
        var files: [String: String] = [:]
        for block in readme.components(separatedBy: "```php\n").dropFirst() {
            guard let end = block.range(of: "\n```") else { continue }
            let code = String(block[..<end.lowerBound]) + "\n"
            guard code.hasPrefix("<?php // ") else { continue }
            let path = code.dropFirst("<?php // ".count).prefix { $0 != ":" && $0 != " " && $0 != "\n" }
            files[String(path)] = code
        }
        return files
    }

    /// Runs `body` with the README's PHP site served by `php -S` and the real `websockets` binary in front of it:
    /// the site's port, the server's, and a GET through curl (headers only).
    static func withPHPSite(
        _ body: (_ phpPort: Int, _ serverPort: Int, _ get: @Sendable (String) async throws -> String) async throws
            -> Void
    ) async throws {
        let files = try readmeFiles()
        let directory = try ServerProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (path, code) in files {
            let url = URL(fileURLWithPath: directory + "/" + path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(code.utf8).write(to: url)
        }
        let key = SecurityKey.generate()
        let phpPort = try ServerProcess.freePort()
        let serverPort = try ServerProcess.freePort()
        let php = Process()
        php.executableURL = URL(fileURLWithPath: "/usr/bin/php")
        php.arguments = ["-S", "127.0.0.1:\(phpPort)", "router.php"]
        php.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["WEBSOCKETS_KEY"] = key
        environment["WEBSOCKETS_SERVER"] = "http://127.0.0.1:\(serverPort)"
        php.environment = environment
        php.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        php.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try php.run()
        defer {
            // SIGKILL: the test process's own signal setup reaches Foundation's children, and php -S ignored SIGTERM.
            kill(php.processIdentifier, SIGKILL)
            php.waitUntilExit()
        }
        let server = try ServerProcess(
            ["start", "http://127.0.0.1:\(phpPort)", "--listen-port", "\(serverPort)", "--security-key", key],
            directory: directory)
        defer { server.stop() }
        @Sendable func get(_ url: String) async throws -> String {
            try await PostgresServer.shell("curl -s -D - -o /dev/null '\(url)' || true")
        }
        try await eventually(timeout: .seconds(20), "PHP and the server answer") {
            let site = try await get("http://127.0.0.1:\(phpPort)/login.php")
            let health = try await get("http://127.0.0.1:\(serverPort)/WebSockets/health")
            return site.contains("200 OK") && health.contains("200 OK")
        }

        try await body(phpPort, serverPort, get)
    }

    /// The README's shortest site's side is the site page's files, not a copy that could drift from them.
    @Test func theREADMEsPHPFilesAreTheSitePagesFiles() throws {
        let readme = try Self.phpFiles(in: "README.md")
        let page = try Self.readmeFiles()
        #expect(Set(readme.keys) == ["websockets.php", "api/WebSockets/session.php", "api/WebSockets/message.php"])
        for (path, code) in readme { #expect(page[path] == code, "\(path) differs from docs/site.md") }
    }

    @Test func theREADMEsPHPSiteRunsAsWritten() async throws {
        let files = try Self.readmeFiles()
        #expect(
            Set(files.keys) == [
                "websockets.php", "api/WebSockets/session.php", "api/WebSockets/message.php", "notify.php",
                "login.php", "router.php",
            ])
        try await Self.withPHPSite { phpPort, serverPort, get in
            // Log in as user 42 on the PHP site; its session cookie opens the WebSocket.
            let login = try await get("http://127.0.0.1:\(phpPort)/login.php?user=42")
            let cookie = try #require(
                login.split(separator: "\r\n").first { $0.lowercased().hasPrefix("set-cookie:") }?
                    .dropFirst("set-cookie:".count).split(separator: ";").first?.trimmingCharacters(in: .whitespaces))
            let tab = try await TestWebSocket.connect(port: serverPort, headers: [("Cookie", cookie)])
            try await tab.send("Client/authentication", nil)
            #expect(try await tab.nextMessage() == Message(action: "Client/authentication", details: "ok"))

            try await tab.send("hello", "Zoe")
            #expect(try await tab.nextMessage() == Message(action: "hello", details: "Hello, Zoe!"))
            #expect(try await tab.nextMessage() == Message(action: "hello:elsewhere", details: "Zoe"))
            try await tab.send("hello", "")
            #expect(try await tab.nextMessage() == Message(action: "hello:error", details: [400, "Say your name"]))

            // The page sender reaches the tab (user 42 is in group 1); its logout closes it.
            _ = try await get("http://127.0.0.1:\(phpPort)/notify.php")
            #expect(try await tab.nextMessage() == Message(action: "news", details: ["title": "Hi"]))
            _ = try await get("http://127.0.0.1:\(phpPort)/notify.php?logout=42")
            let close = try await tab.nextClose()
            #expect(
                close.before == [Message(action: "news", details: ["title": "Hi"]), Message(action: "Server/close")])

            // Without the PHP session cookie, the site says 401 and the tab is refused.
            let stranger = try await TestWebSocket.connect(port: serverPort)
            try await stranger.send("Client/authentication", nil)
            #expect(try await stranger.nextClose().code == 1008)
        }
    }
}
