import Foundation
import NIOHTTP1
import WebSocketsProtocol

/// The proxies whose `X-Forwarded-For` is believed (the `trusted_proxies` setting), and the rule that finds a
/// client's address behind them: nginx's realip module with `real_ip_recursive on`. When the peer is trusted, the
/// header's entries are read right to left, skipping trusted ones; the first untrusted entry is the client. A peer
/// that is not trusted is the client, whatever its header says, so nobody can choose the address they are counted
/// under by writing a header.
package struct TrustedProxies: Sendable, Equatable {
    /// One address or CIDR range, as network-order bytes (4 or 16) and a prefix length.
    package struct Range: Sendable, Equatable {
        package var bytes: [UInt8]
        package var prefix: Int

        package func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var remaining = prefix
            for index in bytes.indices where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if address[index] & mask != bytes[index] & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    /// The default: a proxy on this machine.
    package static let loopback = try! TrustedProxies(["127.0.0.1", "::1"])

    let ranges: [Range]

    /// Reads `entries` such as `10.0.0.5`, `10.0.0.0/8`, `::1` or `fd00::/8`.
    package init(_ entries: [String]) throws(SettingsError) {
        var ranges: [Range] = []
        for entry in entries {
            let parts = entry.split(separator: "/", maxSplits: 1).map(String.init)
            guard let first = parts.first, let bytes = Self.bytes(of: first) else {
                throw SettingsError(description: "\"\(entry)\" is not an IP address or CIDR range such as 10.0.0.0/8")
            }
            var prefix = bytes.count * 8
            if parts.count == 2 {
                guard let length = Int(parts[1]), (0...bytes.count * 8).contains(length) else {
                    throw SettingsError(
                        description: "\"\(entry)\": the prefix length must be 0 to \(bytes.count * 8)")
                }
                prefix = length
            }
            ranges.append(Range(bytes: bytes, prefix: prefix))
        }
        self.ranges = ranges
    }

    /// What is wrong with `entries`, for the settings' check, or `nil`.
    static func problem(in entries: [String]) -> String? {
        do {
            _ = try TrustedProxies(entries)
            return nil
        } catch {
            return error.description
        }
    }

    /// The setting's value, or loopback when it is not set.
    package init(settings: Settings) {
        self = settings.trustedProxies.flatMap { try? TrustedProxies($0) } ?? .loopback
    }

    /// Whether `address` is a trusted proxy.
    package func contains(_ address: String) -> Bool {
        guard let bytes = Self.bytes(of: address) else { return false }
        return ranges.contains { $0.contains(bytes) }
    }

    /// The client's address for a connection from `peer` carrying `forwardedFor` (every `X-Forwarded-For` header
    /// line, in order). An entry that is not an address ends the walk: the last address read stands.
    package func clientAddress(peer: String, forwardedFor: [String]) -> String {
        guard !forwardedFor.isEmpty, contains(peer) else { return peer }
        var client = peer
        for line in forwardedFor.reversed() {
            for entry in line.split(separator: ",").reversed() {
                let address = entry.trimmingCharacters(in: .whitespaces)
                guard Self.bytes(of: address) != nil else { return client }
                client = address
                if !contains(address) { return client }
            }
        }
        return client
    }

    /// The client's address for a request from `peer` with `headers`.
    package func clientAddress(peer: String, headers: HTTPHeaders) -> String {
        clientAddress(peer: peer, forwardedFor: headers[canonicalForm: "x-forwarded-for"].map(String.init))
    }

    /// The network-order bytes of an IPv4 or IPv6 address (an IPv4-mapped IPv6 address as IPv4), or `nil`.
    package static func bytes(of text: String) -> [UInt8]? {
        var text = text
        if text.hasPrefix("[") && text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return Array(bytes[12...])
        }
        return bytes
    }
}
