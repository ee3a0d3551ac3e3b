import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The files in deploy/, as shipped: Debian's nginx checks the site file (`nginx -t`) and proxies a real WebSocket
/// through it, over TLS, to a server; what the file keeps from the public stays private.
@Suite struct DeployTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The shipped site file with only what differs on a test machine replaced: ports, certificates, the web root.
    static func siteFile(serverPort: Int, nginxPort: Int, certificates: TestCertificates, root: String) throws
        -> String
    {
        var text = try String(contentsOf: Self.root.appendingPathComponent("deploy/nginx-site.conf"), encoding: .utf8)
        let replacements = [
            ("server 127.0.0.1:8080;", "server 127.0.0.1:\(serverPort);"),
            ("listen 443 ssl http2;", "listen 127.0.0.1:\(nginxPort) ssl http2;"),
            ("/etc/letsencrypt/live/example.com/fullchain.pem", certificates.serverCertificate),
            ("/etc/letsencrypt/live/example.com/privkey.pem", certificates.serverKey),
            ("root /var/www/example.com;", "root \(root);"),
        ]
        for (shipped, local) in replacements {
            guard text.contains(shipped) else {
                throw TestWebSocket.Failure(description: "deploy/nginx-site.conf no longer has \(shipped)")
            }
            text = text.replacingOccurrences(of: shipped, with: local)
        }
        return text
    }

    @Test func theNginxSiteFileProxiesWebSocketsAndKeepsTheRestPrivate() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let directory = try ServerProcess.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let certificates = try await TestCertificates.make(directory: directory + "/tls", names: ["localhost"])
            let nginxPort = try ServerProcess.freePort()
            try FileManager.default.createDirectory(atPath: directory + "/www", withIntermediateDirectories: true)
            let site = try Self.siteFile(
                serverPort: harness.port, nginxPort: nginxPort, certificates: certificates, root: directory + "/www")
            try Data(site.utf8).write(to: URL(fileURLWithPath: directory + "/site.conf"))
            let main = """
                daemon off;
                pid \(directory)/nginx.pid;
                error_log \(directory)/error.log;
                events {}
                http {
                    access_log off;
                    include \(directory)/site.conf;
                }
                """
            try Data(main.utf8).write(to: URL(fileURLWithPath: directory + "/nginx.conf"))
            let check = try await PostgresServer.shell("nginx -t -p \(directory)/ -c \(directory)/nginx.conf 2>&1")
            #expect(check.contains("syntax is ok") && check.contains("test is successful"), "\(check)")

            let nginx = Process()
            nginx.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
            nginx.arguments = ["-p", directory + "/", "-c", directory + "/nginx.conf"]
            try nginx.run()
            defer {
                nginx.terminate()
                nginx.waitUntilExit()
            }
            @Sendable func status(_ path: String) async throws -> String {
                try await PostgresServer.shell(
                    "curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:\(nginxPort)\(path) || true")
            }
            try await eventually(timeout: .seconds(10), "nginx listens") { try await status("/") != "000" }

            // A tab from 127.0.0.3, through nginx on loopback, over TLS: the site sees the tab's address.
            let tab = try await TestWebSocket.connect(
                port: nginxPort, headers: [("Cookie", "sid=alice")], tls: true, source: "127.0.0.3")
            try await tab.send("Client/authentication", nil)
            #expect(try await tab.nextMessage() == Message(action: "Client/authentication", details: "ok"))
            #expect(
                harness.site.state.withLockedValue { $0.sessionHeaders.last }?.first(name: "X-Forwarded-For")
                    == "127.0.0.3"
            )
            #expect(harness.server.sendToClients("news", "through nginx", .specificUsers, 1) == 1)
            #expect(try await tab.nextMessage() == Message(action: "news", details: "through nginx"))
            await tab.close()

            // Health, metrics and sends are not for the public.
            #expect(try await status("/WebSockets/health") == "403")
            #expect(try await status("/metrics") == "403")
            #expect(try await status("/WebSockets/send") == "403")
            #expect(try await status("/WebSockets/client.js") == "200")
        }
    }

    @Test func theSystemdUnitStartsTheServerAsTheREADMESays() throws {
        let unit = try String(
            contentsOf: Self.root.appendingPathComponent("deploy/websockets.service"), encoding: .utf8)
        // As the Debian package installs it: the binary, its settings file and its user.
        #expect(unit.contains("ExecStart=/usr/bin/websockets start --settings /etc/websockets/websockets.json"))
        #expect(unit.contains("User=websockets"))
        // Status 2 is a settings mistake: systemd must not restart it forever.
        #expect(unit.contains("RestartPreventExitStatus=2"))
        #expect(unit.contains("UMask=0077"))
        let page = try String(contentsOf: Self.root.appendingPathComponent("docs/production.md"), encoding: .utf8)
        #expect(page.contains("deploy/websockets.service") && page.contains("deploy/nginx-site.conf"))
    }

    /// The version is said once (`WebSocketsServer.version`): the package's changelog begins with it (the build
    /// script refuses otherwise) and the README's install commands name its package.
    @Test func theReadmeAndTheChangelogNameThisVersion() throws {
        let version = WebSocketsServer.version
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains("apt install ./websockets_\(version)_amd64.deb"))
        let changelog = try String(
            contentsOf: Self.root.appendingPathComponent("deploy/debian/changelog"), encoding: .utf8)
        #expect(changelog.hasPrefix("websockets (\(version)) "))
    }
}
