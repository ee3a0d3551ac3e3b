import Foundation
import WebSocketsConnection
import WebSocketsCore
import WebSocketsProtocol

/// The invariants of what an operator or a proxy gives the server as text: `trusted_proxies` and
/// `X-Forwarded-For`, the PostgreSQL URL, the settings file and a setting's flag, and compression offers.
enum SettingInputCheck {
    /// The lines of `bytes` (split on newlines), as text.
    private static func lines(_ bytes: [UInt8]) -> [String] {
        bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Input: a line of `trusted_proxies` entries (comma-separated), a line with the peer's address, then
    /// `X-Forwarded-For` lines. The client's address is the peer's unless the peer is trusted, and otherwise an
    /// address from the header; an untrusted hop ends the walk.
    static func checkForwarded(_ bytes: [UInt8]) throws(FuzzFinding) {
        let lines = lines(bytes)
        guard lines.count >= 2 else { return }
        let entries = lines[0].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let proxies = (try? TrustedProxies(entries)) ?? .loopback
        let peer = lines[1]
        let forwarded = Array(lines.dropFirst(2))
        let client = proxies.clientAddress(peer: peer, forwardedFor: forwarded)
        if forwarded.isEmpty || !proxies.contains(peer) {
            try expect(client == peer, "an untrusted peer \(peer) was given the address \(client)")
            return
        }
        guard client != peer else { return }
        let hops = forwarded.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        try expect(hops.contains(client), "the address \(client) is not one of the header's \(hops)")
        try expect(TrustedProxies.bytes(of: client) != nil, "the address \(client) is not an address")
        // Every hop after the client's, up to the peer, is a trusted proxy.
        if let index = hops.lastIndex(of: client) {
            for hop in hops[(index + 1)...] {
                try expect(proxies.contains(hop), "the untrusted hop \(hop) was walked past to \(client)")
            }
        }
    }

    /// Input: a URL. Accepted only with a host and a port a socket can have, and then turned into postgres-nio's
    /// configuration without a trap.
    static func checkPostgresURL(_ bytes: [UInt8]) throws(FuzzFinding) {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let url = try? PostgresURL(parsing: text) else { return }
        try expect(!url.host.isEmpty, "a URL without a host accepted: \(text)")
        try expect((1...65535).contains(url.port), "a URL with port \(url.port) accepted: \(text)")
        // A root certificate would be read from the path the URL names: not from a fuzzer's.
        if url.sslRootCert == nil { _ = try? url.connectionConfiguration() }
    }

    /// The settings file's path for this process.
    private static let settingsPath = NSTemporaryDirectory() + "websockets-fuzz-\(getpid()).json"

    /// Input: a byte that chooses what is read (even: the settings file; odd: the flag of the setting the next
    /// byte names), then its text. Either a clear error, or settings that pass their own validation.
    static func checkSettings(_ bytes: [UInt8]) throws(FuzzFinding) {
        guard bytes.count >= 2 else { return }
        let text = Array(bytes.dropFirst(2))
        if bytes[0] & 1 == 0 {
            FileManager.default.createFile(atPath: settingsPath, contents: Data(text))
            defer { try? FileManager.default.removeItem(atPath: settingsPath) }
            let loader = SettingsLoader(path: settingsPath, environment: [:], flags: [:])
            guard let (settings, _) = try? loader.load(generateKey: false) else { return }
            do { try settings.validate() } catch { throw FuzzFinding("loaded settings that do not validate: \(error)") }
        } else {
            let definition = Settings.definitions[Int(bytes[1]) % Settings.definitions.count]
            var settings = Settings()
            guard let value = try? definition.value(of: String(decoding: text, as: UTF8.self), source: "fuzz"),
                (try? definition.apply(value, source: "fuzz", to: &settings)) != nil
            else { return }
            _ = definition.text(of: settings)
        }
    }

    /// Input: `Sec-WebSocket-Extensions` lines. An agreement has a window zlib can use and a response header with
    /// no line break, and the server's own answer, offered again, is agreed to as it is.
    static func checkDeflateOffer(_ bytes: [UInt8]) throws(FuzzFinding) {
        guard let agreement = DeflateNegotiation.agreement(offers: lines(bytes)) else { return }
        try expect((9...15).contains(agreement.serverMaxWindowBits), "window \(agreement.serverMaxWindowBits)")
        let header = agreement.responseHeader
        try expect(!header.contains("\r") && !header.contains("\n"), "a line break in \(header)")
        try expect(
            DeflateNegotiation.agreement(offers: [header]) == agreement, "the answer \(header) is not agreed to again")
    }
}
