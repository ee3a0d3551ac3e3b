import Foundation
import Testing

@testable import WebSockets

/// The Debian package (`deploy/debian/build-package.sh`) installed on this machine with dpkg, as a user installs
/// it: its files, modes and user, the server it starts against a site, an upgrade over itself, remove and purge.
/// It runs where `WEBSOCKETS_TEST_PACKAGE` names the `.deb` and the tests run as root (`.ci/run` does both), and
/// leaves the machine without the package.
@Suite(.serialized, .enabled(if: PackageUnderTest.path != nil && getuid() == 0, "WEBSOCKETS_TEST_PACKAGE, as root"))
struct PackageTests {
    static let settingsPath = "/etc/websockets/websockets.json"

    /// The libraries the binary may need: what Debian and Ubuntu install on every system (the C library and
    /// the compiler's runtime, which apt itself needs), zlib, and libcurl4. The Swift runtime is linked in.
    static let allowedLibraries: Set<String> = [
        "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libutil.so.1",
        "ld-linux-x86-64.so.2", "libstdc++.so.6", "libgcc_s.so.1", "libz.so.1", "libcurl.so.4",
    ]

    /// Runs a program to its end: its status and what it wrote (standard output and error).
    static func run(_ program: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        let process = try ServerProcess(arguments, directory: "/", captureErrors: true, executable: program)
        return await process.finish(within: .seconds(120))
    }

    /// `stat`'s `%a %U %G` of `path`: its mode in octal, its owner and its group.
    static func ownership(_ path: String) async throws -> String {
        try await run("/usr/bin/stat", ["-c", "%a %U %G", path]).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func installRunUpgradeRemoveAndPurge() async throws {
        let deb = try #require(PackageUnderTest.path)
        #expect(
            try await Self.run("/usr/bin/dpkg-query", ["-W", "-f=${Status}", "websockets"]).output
                .contains("installed") == false, "the package is installed already: this test would remove it")

        // Whatever happens below, the machine is left without the package.
        try await withTeardown({ _ = try? await Self.run("/usr/bin/dpkg", ["-P", "websockets"]) }) {
            try await Self.cycle(deb)
        }
    }

    /// Install, run, upgrade, remove and purge, checking each.
    static func cycle(_ deb: String) async throws {
        // Install.
        let install = try await Self.run("/usr/bin/dpkg", ["-i", deb])
        try #require(install.status == 0, "\(install.output)")
        #expect(try await Self.ownership("/usr/bin/websockets") == "755 root root")
        #expect(try await Self.ownership("/lib/systemd/system/websockets.service") == "644 root root")
        #expect(try await Self.ownership("/usr/share/doc/websockets/examples/nginx-site.conf") == "644 root root")
        #expect(try await Self.ownership("/etc/websockets") == "750 root websockets")
        #expect(try await Self.ownership(Self.settingsPath) == "600 websockets websockets")
        let user = try await Self.run("/usr/bin/getent", ["passwd", "websockets"]).output.split(
            separator: ":", omittingEmptySubsequences: false)
        try #require(user.count == 7, "no websockets user")
        #expect(Int(user[2]).map { $0 < 1000 } == true, "a system user: \(user)")
        #expect(user[6].hasSuffix("nologin\n") || user[6].hasSuffix("false\n"), "\(user)")
        let version = try await Self.run("/usr/bin/websockets", ["--version"])
        #expect(version.output == WebSocketsServer.version + "\n")

        // The binary needs nothing outside the list.
        let dynamic = try await Self.run("/usr/bin/readelf", ["-d", "/usr/bin/websockets"]).output
        let needed = dynamic.split(separator: "\n").filter { $0.contains("(NEEDED)") }.compactMap { line in
            line.split(separator: "[").last?.split(separator: "]").first.map(String.init)
        }
        #expect(!needed.isEmpty)
        #expect(Set(needed).isSubset(of: Self.allowedLibraries), "\(Set(needed).subtracting(Self.allowedLibraries))")
        // Nor looks for libraries in a folder of the build machine (a Swift toolchain's): SwiftPM's `$ORIGIN`, the
        // binary's own folder, is the only search path.
        let paths = dynamic.split(separator: "\n").filter { $0.contains("(RPATH)") || $0.contains("(RUNPATH)") }
        #expect(paths.allSatisfy { $0.hasSuffix("[$ORIGIN]") }, "\(paths)")

        // The settings file made at the install: the placeholder site and a key of 56 hex characters.
        let settings = try JSON(parsing: String(contentsOfFile: Self.settingsPath, encoding: .utf8))
        let key = try #require(settings["security_key"]?.stringValue)
        #expect(key.count == 56 && key.allSatisfy(\.isHexDigit))
        #expect(settings["site"]?.stringValue == "http://localhost")

        // The server as the unit runs it (its user, folder and command), against a site with that key.
        try await Self.serve(key: key)

        // An upgrade over itself keeps the settings and their key.
        let upgrade = try await Self.run("/usr/bin/dpkg", ["-i", deb])
        try #require(upgrade.status == 0, "\(upgrade.output)")
        let kept = try JSON(parsing: String(contentsOfFile: Self.settingsPath, encoding: .utf8))
        #expect(kept["security_key"]?.stringValue == key)
        #expect(try await Self.ownership(Self.settingsPath) == "600 websockets websockets")

        // Remove: the program goes, the settings stay; purge: they go too. The user stays (Debian's policy).
        let remove = try await Self.run("/usr/bin/dpkg", ["-r", "websockets"])
        try #require(remove.status == 0, "\(remove.output)")
        #expect(!FileManager.default.fileExists(atPath: "/usr/bin/websockets"))
        #expect(!FileManager.default.fileExists(atPath: "/lib/systemd/system/websockets.service"))
        #expect(FileManager.default.fileExists(atPath: Self.settingsPath))
        let purge = try await Self.run("/usr/bin/dpkg", ["-P", "websockets"])
        try #require(purge.status == 0, "\(purge.output)")
        #expect(!FileManager.default.fileExists(atPath: "/etc/websockets"))
        #expect(!FileManager.default.fileExists(atPath: "/usr/share/doc/websockets"))
        #expect(try await Self.run("/usr/bin/getent", ["passwd", "websockets"]).status == 0)
    }

    /// Starts the installed server as its unit does (where systemd runs, through it; elsewhere the unit's
    /// `ExecStart` as its `User` in its `WorkingDirectory`), with the site and a free port given as flags, and sees
    /// health answer and a message go through the site and back.
    static func serve(key: String) async throws {
        let unit = try String(contentsOfFile: "/lib/systemd/system/websockets.service", encoding: .utf8)
        func value(_ name: String) -> String? {
            unit.split(separator: "\n").first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
        }
        let command = try #require(value("ExecStart")).split(separator: " ").map(String.init)
        let user = try #require(value("User"))
        let directory = try #require(value("WorkingDirectory"))
        let site = try await TestSite.start(key: key)
        try await withTeardown({ await site.shutdown() }) {
            let port = try ServerProcess.freePort()
            let server = try ServerProcess(
                ["--reuid=\(user)", "--regid=\(user)", "--init-groups"] + command
                    + ["--site", site.url, "--listen-port", "\(port)"],
                directory: directory, captureErrors: true, executable: "/usr/bin/setpriv")
            defer { server.stop() }
            let output = try await helloAndStop(server, port: port)
            #expect(!output.contains(key))
        }
    }

    /// Waits for `server` on `port` to answer, sees a message go through the site and back, stops it with SIGTERM
    /// and expects status 0; what it wrote (recorded as an issue when it never answered).
    static func helloAndStop(_ server: ServerProcess, port: Int) async throws -> String {
        do {
            try await answers(port: port)
        } catch {
            kill(server.process.processIdentifier, SIGTERM)
            Issue.record("the server wrote: \(await server.finish().output)")
            throw error
        }
        let tab = try await TestWebSocket.authenticated(port: port, sid: "alice")
        try await tab.send("hello", "package")
        #expect(try await tab.nextMessage() == Message(action: "hello", details: "Hello, package!"))
        await tab.close()
        kill(server.process.processIdentifier, SIGTERM)
        let (status, output) = await server.finish()
        #expect(status == 0, "\(output)")
        return output
    }

    /// Waits until the server on `port` answers its health check with this build's version.
    static func answers(port: Int) async throws {
        try await eventually(timeout: .seconds(30), "the installed server answers") {
            let client = CurlClient(maximumConcurrency: 1)
            let health = try? await client.perform(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/WebSockets/health")
            ).get()
            await client.shutdown()
            return health?.status == 200
                && String(decoding: health?.body ?? [], as: UTF8.self).contains(WebSocketsServer.version)
        }
    }
}

/// The package the tests install: `WEBSOCKETS_TEST_PACKAGE`, or `nil` when they do not.
enum PackageUnderTest {
    static let path = ProcessInfo.processInfo.environment["WEBSOCKETS_TEST_PACKAGE"]
}
