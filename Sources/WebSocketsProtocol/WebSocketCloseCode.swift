/// A close code: the standard ones the server uses.
public struct WebSocketCloseCode: Sendable, Equatable {
    /// The number sent in the close frame.
    public let rawValue: UInt16
    /// Normal closure.
    public static let normal = WebSocketCloseCode(rawValue: 1000)
    /// The server is going away (shutdown).
    public static let goingAway = WebSocketCloseCode(rawValue: 1001)
    /// A frame that breaks the WebSocket protocol.
    public static let protocolError = WebSocketCloseCode(rawValue: 1002)
    /// A frame type the server does not accept (binary).
    public static let unacceptableData = WebSocketCloseCode(rawValue: 1003)
    /// A frame whose data is not of the wire format.
    public static let invalidData = WebSocketCloseCode(rawValue: 1007)
    /// The connection broke a policy (rejected session, expired session, slow reader).
    public static let policyViolation = WebSocketCloseCode(rawValue: 1008)
    /// A message larger than the limit.
    public static let messageTooLarge = WebSocketCloseCode(rawValue: 1009)
    /// The server cannot serve it now (the site failed); try again later.
    public static let tryAgainLater = WebSocketCloseCode(rawValue: 1013)

    /// Whether a close frame from the other end may carry `code` (RFC 6455 section 7.4): the defined codes that may
    /// be sent (1000-1003, 1007-1011) and those for libraries and applications (3000-4999). 1005, 1006 and 1015 are
    /// never sent on the wire; the rest are reserved.
    package static func mayBeReceived(_ code: UInt16) -> Bool {
        (1000...1003).contains(code) || (1007...1011).contains(code) || (3000...4999).contains(code)
    }
}
