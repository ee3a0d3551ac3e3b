import Foundation
import WebSocketsCore
import WebSocketsProtocol

/// What the site client makes of a browser's credentials: the session cache's key, and whether an answer may be shared.
extension BrowserCredentials {
    /// What session answers are cached under: everything forwarded to the session endpoint that may change its
    /// answer (a site may bind a session to the browser or the address), or `nil` without a cookie, since a site
    /// gives each cookieless browser a session of its own.
    var cacheKey: SessionCacheKey? {
        guard !cookie.isEmpty else { return nil }
        var hasher = Hasher()
        hasher.combine(userAgent)
        hasher.combine(acceptLanguage)
        hasher.combine(address)
        return SessionCacheKey(cookie: cookie, browser: hasher.finalize())
    }

    /// Whether the site's answer for these credentials may be given to another browser that presents the same
    /// ones: yes, unless it is a guest session that none of the browser's cookies carries. A site that opens a guest
    /// session per visitor answered for this browser alone, whatever other cookies (`lang=en`) it shares with
    /// others: two such browsers once shared one guest, and a send to one's session reached both. A registered
    /// user's answer is the site's word on the cookie itself, and is shared.
    func mayShare(_ validation: SessionValidation) -> Bool {
        guard case .valid(let session) = validation, session.guest else { return true }
        return cookieValues.contains { $0 == session.session }
    }

    /// The values of the `Cookie` header's cookies, quotes removed.
    var cookieValues: [Substring] {
        cookie.split(separator: ";").compactMap { pair in
            guard let equals = pair.firstIndex(of: "=") else { return nil }
            var value = pair[pair.index(after: equals)...].trimmingPrefix(while: \.isWhitespace)
            while value.last?.isWhitespace == true { value = value.dropLast() }
            if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
            return Substring(value)
        }
    }
}
