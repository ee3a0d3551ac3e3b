import WebSocketsCore
import WebSocketsProtocol

/// A request the server makes to a site (or, from the command line, to a server).
public struct HTTPClientRequest: Sendable {
    /// `GET` or `POST`.
    public var method: String
    /// The absolute URL.
    public var url: String
    /// Header fields, sent in order.
    public var headers: [(String, String)]
    /// The body of a `POST`.
    public var body: [UInt8]?
    /// The hard limit for the whole exchange, connecting included.
    public var timeout: Duration

    /// A request; `GET` unless a body is given.
    public init(
        method: String? = nil, url: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        timeout: Duration = .seconds(5)
    ) {
        self.method = method ?? (body == nil ? "GET" : "POST")
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

/// The answer to an ``HTTPClientRequest``.
public struct HTTPClientResponse: Sendable {
    /// The HTTP status code.
    public var status: Int
    /// The body, at most the client's response limit.
    public var body: [UInt8]
}

/// Why an ``HTTPClientRequest`` got no answer.
public enum HTTPClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The hard timeout passed.
    case timeout
    /// The body was longer than the client accepts.
    case responseTooLarge
    /// The client is shutting down and takes no new requests.
    case shutDown
    /// Not made: when its turn came, the caller no longer wanted it.
    case cancelled
    /// Any other transport failure, as libcurl describes it (refused connection, DNS, TLS...).
    case transport(String)

    /// A short text for logs and errors.
    public var description: String {
        switch self {
        case .timeout: return "timed out"
        case .responseTooLarge: return "response too large"
        case .shutDown: return "client shut down"
        case .cancelled: return "cancelled"
        case .transport(let message): return message
        }
    }
}
