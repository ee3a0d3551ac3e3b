/// What a browser presented when it opened its WebSocket; forwarded to the session endpoint.
public struct BrowserCredentials: Sendable {
    /// The `Cookie` header (never logged).
    public var cookie: String
    /// The `User-Agent` header.
    public var userAgent: String
    /// The `Accept-Language` header.
    public var acceptLanguage: String
    /// The client's IP address.
    public var address: String

    /// Credentials as presented.
    public init(cookie: String, userAgent: String, acceptLanguage: String, address: String) {
        self.cookie = cookie
        self.userAgent = userAgent
        self.acceptLanguage = acceptLanguage
        self.address = address
    }
}
