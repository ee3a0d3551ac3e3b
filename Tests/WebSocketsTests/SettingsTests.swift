import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

@Suite struct SettingsTests {
    private func temporaryFile(_ text: String?) -> String {
        let path = NSTemporaryDirectory() + "websockets-\(UUID().uuidString).json"
        if let text { _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) }
        return path
    }

    @Test func flagsWinOverEnvironmentOverFile() throws {
        let path = temporaryFile(
            #"{"security_key": "k", "listen_port": 1000, "idle_timeout": 90, "allowed_origins": ["https://a.example"]}"#
        )
        defer { try? FileManager.default.removeItem(atPath: path) }
        let loader = SettingsLoader(
            path: path,
            environment: [
                "WEBSOCKETS_LISTEN_PORT": "2000", "WEBSOCKETS_LISTEN_LOCALLY": "false", "WEBSOCKETS_IDLE_TIMEOUT": "70",
            ],
            flags: ["listen_port": "3000"])
        let (settings, generated) = try loader.load()
        #expect(!generated)
        #expect(settings.listenPort == 3000)
        #expect(settings.listenLocally == false)
        #expect(settings.idleTimeout == 70)
        #expect(settings.allowedOrigins == ["https://a.example"])
        #expect(settings.securityKey == "k")
    }

    @Test func generatesAndSavesTheKey() throws {
        let path = temporaryFile(#"{"listen_port": 8090}"#)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (first, generated) = try SettingsLoader(path: path, environment: [:]).load()
        #expect(generated)
        #expect(first.securityKey.count == 56)
        #expect(first.securityKey.allSatisfy { "0123456789abcdef".contains($0) })
        let (second, again) = try SettingsLoader(path: path, environment: [:]).load()
        #expect(!again)
        #expect(second.securityKey == first.securityKey)
        #expect(second.listenPort == 8090)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(SecurityKey.generate() != SecurityKey.generate())
    }

    /// A watcher in the same folder, looking as fast as it can at every file there while keys are generated, never
    /// sees one that others may read (on the old main: the key, readable, on the first round).
    @Test func theKeyIsNeverReadableByOthersWhileItIsWritten() throws {
        let directory = try ServerProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/websockets.json"
        let done = NIOLockedValueBox(false)
        let exposed = NIOLockedValueBox<[String]>([])
        let watcher = Thread {
            while !done.withLockedValue({ $0 }) {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                    var information = stat()
                    guard stat(directory + "/" + name, &information) == 0, information.st_size > 0,
                        information.st_mode & 0o077 != 0
                    else { continue }
                    exposed.withLockedValue {
                        $0.append("\(name) mode \(String(information.st_mode & 0o777, radix: 8))")
                    }
                }
            }
        }
        watcher.start()
        umask(0o022)
        for _ in 0..<200 {
            try? FileManager.default.removeItem(atPath: path)
            _ = try SettingsLoader(path: path, environment: [:]).saveGeneratedKey()
        }
        done.withLockedValue { $0 = true }
        while !watcher.isFinished { usleep(1000) }
        #expect(exposed.withLockedValue { $0 }.isEmpty, "\(exposed.withLockedValue { $0.prefix(3) })")
        // Only the settings file is left: no temporary file stays behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["websockets.json"])
        var information = stat()
        #expect(stat(path, &information) == 0 && information.st_mode & 0o777 == 0o600)

        // A file others may read gets a warning that names it; a private one does not.
        #expect(SettingsLoader(path: path, environment: [:]).permissionWarning() == nil)
        chmod(path, 0o644)
        let warning = try #require(SettingsLoader(path: path, environment: [:]).permissionWarning())
        #expect(warning.contains(path) && warning.contains("644") && warning.contains("chmod 600"))
    }

    @Test func reportsBadSettings() {
        let path = temporaryFile(#"{"listen_prot": 1}"#)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: SettingsError.self) { try SettingsLoader(path: path, environment: [:]).load() }
        #expect(throws: SettingsError.self) {
            try SettingsLoader(path: "/nonexistent/x.json", environment: ["WEBSOCKETS_LISTEN_PORT": "eighty"]).load(
                generateKey: false)
        }
    }

    @Test func derivesEndpointsAndOrigins() {
        var settings = Settings(site: "https://Example.com/", securityKey: "k")
        #expect(settings.resolvedSessionEndpoint == "https://Example.com/api/WebSockets/session")
        #expect(settings.resolvedMessageEndpoint == "https://Example.com/api/WebSockets/message")
        #expect(settings.allows(origin: "https://example.com"))
        #expect(settings.allows(origin: "https://example.com:443"))
        #expect(!settings.allows(origin: "https://evil.example"))
        #expect(!settings.allows(origin: "http://example.com"))
        #expect(settings.allows(origin: nil))
        settings.messageEndpoint = "none"
        #expect(settings.resolvedMessageEndpoint == nil)
        settings.allowedOrigins = ["*"]
        #expect(settings.allows(origin: "https://evil.example"))
    }

    /// The settings page's table (docs/settings.md) is the one `Settings.definitions` makes; `UPDATE_README=1`
    /// rewrites it.
    @Test func readmeListsEverySetting() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/settings.md").path
        let readme = try String(contentsOfFile: path, encoding: .utf8)
        let start = try #require(readme.range(of: "<!-- settings table"))
        let startLine = try #require(readme[start.upperBound...].range(of: "-->\n"))
        let end = try #require(readme.range(of: "<!-- end of settings table -->"))
        let table = Settings.markdownTable + "\n"
        if ProcessInfo.processInfo.environment["UPDATE_README"] == "1" {
            let updated = readme.replacingCharacters(in: startLine.upperBound..<end.lowerBound, with: table)
            try updated.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        #expect(String(readme[startLine.upperBound..<end.lowerBound]) == table)
    }

    @Test func comparesKeys() {
        #expect(SecurityKey.matches("abc", "abc"))
        #expect(!SecurityKey.matches("abd", "abc"))
        #expect(!SecurityKey.matches("ab", "abc"))
        #expect(!SecurityKey.matches("abcd", "abc"))
        #expect(!SecurityKey.matches("", ""))
        // A shorter key is not padded into a match, even against a key that ends in the padding's byte.
        #expect(!SecurityKey.matches("a", "a\0"))
        #expect(SecurityKey.matches("abc"[...], "abc"))
        // The bytes of a header still in a request.
        let head = Array("X-WebSockets-Key: abc\r\n".utf8)
        head.withUnsafeBytes { bytes in
            #expect(SecurityKey.matches(bytes: UnsafeRawBufferPointer(rebasing: bytes[18..<21]), "abc"))
            #expect(!SecurityKey.matches(bytes: UnsafeRawBufferPointer(rebasing: bytes[18..<20]), "abc"))
            #expect(!SecurityKey.matches(bytes: UnsafeRawBufferPointer(rebasing: bytes[18..<22]), "abc"))
        }
    }
}
