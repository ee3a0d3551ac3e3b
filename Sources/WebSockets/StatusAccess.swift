import Crypto
import Foundation
import NIOHTTP1
import WebSocketsCore

/// Who may see the status page: the one rule for its sign-in and for every request after it.
///
/// The security key is typed into a form once and never travels again: the answer sets a cookie holding an expiry
/// and an HMAC-SHA256 of it under the key (so every server of a cluster with the same key accepts it, and a new key
/// voids every cookie), `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it), scoped to
/// `/WebSockets/status`, for ``lifetime`` seconds. Requests that change something (sending a test message) must also
/// come from the page's own origin and carry a header a form cannot set, so a forged cross-site request fails twice.
struct StatusAccess: Sendable {
    /// The cookie's name.
    static let cookieName = "websockets_status"
    /// The cookie's path: the page, its data and its actions.
    static let path = "/WebSockets/status"
    /// How long a sign-in lasts: a working day, in seconds.
    static let lifetime: Int64 = 8 * 3600
    /// The header the page's scripts send with every action.
    static let actionHeader = "x-websockets-status"

    private let key: SymmetricKey?

    /// Access for the server's `security_key`; an empty key lets no one in.
    init(securityKey: String) {
        key = securityKey.isEmpty ? nil : SymmetricKey(data: Array(securityKey.utf8))
    }

    /// The token for a sign-in that ends at `expiry` (Unix seconds): the expiry, a dot, the HMAC's hex.
    func token(expiry: Int64) -> String? {
        guard let key else { return nil }
        let mac = HMAC<SHA256>.authenticationCode(for: Array(Self.message(expiry).utf8), using: key)
        return String(expiry) + "." + mac.map { String(format: "%02x", $0) }.joined()
    }

    private static func message(_ expiry: Int64) -> String {
        "websockets status page until \(expiry)"
    }

    /// Whether `headers` carry a cookie this key made that has not expired at `now` (Unix seconds).
    func admits(_ headers: HTTPHeaders, now: Int64) -> Bool {
        guard let key, let token = Self.cookie(in: headers) else { return false }
        let parts = token.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let expiry = Int64(parts[0]), expiry > now, expiry <= now + Self.lifetime,
            let presented = Self.bytes(hex: parts[1])
        else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(
            presented, authenticating: Array(Self.message(expiry).utf8), using: key)
    }

    /// Whether a request that changes something may: signed in, from the page's own origin (its `Origin` names the
    /// `Host` it was sent to), with the page's header.
    func admitsAction(_ headers: HTTPHeaders, now: Int64) -> Bool {
        admits(headers, now: now) && Self.isSameOrigin(headers) && headers.first(name: Self.actionHeader) == "1"
    }

    /// Whether the request's `Origin` is the server it was sent to; a request without `Origin` is not.
    static func isSameOrigin(_ headers: HTTPHeaders) -> Bool {
        guard let origin = headers.first(name: "origin"), let host = headers.first(name: "host") else { return false }
        return origin == "http://" + host || origin == "https://" + host
    }

    /// The `Set-Cookie` value that signs in until `expiry`; `Secure` when the form was sent over HTTPS.
    func signInCookie(expiry: Int64, secure: Bool) -> String? {
        token(expiry: expiry).map { Self.cookieValue($0, maxAge: Self.lifetime, secure: secure) }
    }

    /// The `Set-Cookie` value that signs out.
    static func signOutCookie(secure: Bool) -> String {
        cookieValue("", maxAge: 0, secure: secure)
    }

    private static func cookieValue(_ token: String, maxAge: Int64, secure: Bool) -> String {
        "\(cookieName)=\(token); Path=\(path); Max-Age=\(maxAge); HttpOnly; SameSite=Strict"
            + (secure ? "; Secure" : "")
    }

    /// The status cookie's value among `headers`' cookies.
    static func cookie(in headers: HTTPHeaders) -> Substring? {
        for line in headers[canonicalForm: "cookie"] {
            for pair in line.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " }
                if trimmed.hasPrefix(cookieName + "=") { return trimmed.dropFirst(cookieName.count + 1) }
            }
        }
        return nil
    }

    /// The value of `field` in an `application/x-www-form-urlencoded` body.
    static func formValue(_ field: String, in body: [UInt8]) -> String? {
        let text = String(decoding: body, as: UTF8.self)
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == field else { continue }
            return String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        }
        return nil
    }

    private static func bytes(hex: Substring) -> [UInt8]? {
        guard hex.utf8.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }
}
