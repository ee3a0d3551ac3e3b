import NIOCore
import NIOHTTP1
import WebSocketsCluster
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol
import WebSocketsSite

/// A whole HTTP request as a responder sees it.
public struct HTTPServerRequest: Sendable {
    /// The request's method.
    public var method: HTTPMethod
    /// The path without the query.
    public var path: String
    /// The query (after `?`), empty when absent.
    public var query: String
    /// The header fields.
    public var headers: HTTPHeaders
    /// The body.
    public var body: [UInt8]
    /// The peer's IP address.
    public var remoteAddress: String

    /// The value of the query parameter `name`, percent-decoded.
    public func queryValue(_ name: String) -> String? {
        Self.value(of: name, inForm: query)
    }

    /// The value of the field `name` of an `application/x-www-form-urlencoded` body, percent-decoded.
    public func formValue(_ name: String) -> String? {
        Self.value(of: name, inForm: String(decoding: body, as: UTF8.self))
    }

    private static func value(of name: String, inForm query: String) -> String? {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.first.map(String.init) == name {
                let raw = parts.count > 1 ? String(parts[1]) : ""
                return raw.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? raw
            }
        }
        return nil
    }

    /// The value of the cookie `name` in the `Cookie` header.
    public func cookie(_ name: String) -> String? {
        for header in headers[canonicalForm: "cookie"] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                    return parts[1].trimmingCharacters(in: .whitespaces)
                }
            }
        }
        return nil
    }
}

/// An HTTP response a responder gives.
public struct HTTPServerResponse: Sendable {
    /// The status.
    public var status: HTTPResponseStatus
    /// Header fields; `Content-Length` is added.
    public var headers: HTTPHeaders
    /// The body.
    public var body: [UInt8]

    /// A response with the given status, headers and body.
    public init(status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// Whether every header may be sent as it is: each name a token (RFC 9110 5.6.2), each value free of control
    /// characters but tabs (no CR or LF that would end the header, or the head, early).
    var hasValidHeaders: Bool {
        headers.allSatisfy { name, value in
            !name.isEmpty && name.utf8.allSatisfy(Self.isTokenByte)
                && value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
        }
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// A JSON response.
    public static func json(_ value: JSON, status: HTTPResponseStatus = .ok) -> HTTPServerResponse {
        var body: [UInt8] = []
        value.write(into: &body)
        return HTTPServerResponse(status: status, headers: ["Content-Type": "application/json"], body: body)
    }

    /// A plain-text response.
    public static func text(_ text: String, status: HTTPResponseStatus = .ok) -> HTTPServerResponse {
        HTTPServerResponse(
            status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: Array(text.utf8))
    }

    /// A JSON error `{"error": {"code": ..., "message": ...}}`.
    public static func error(_ status: HTTPResponseStatus, _ message: String? = nil) -> HTTPServerResponse {
        .json(
            ["error": ["code": .int(Int64(status.code)), "message": .string(message ?? status.reasonPhrase)]],
            status: status)
    }
}

/// A function that answers HTTP requests.
public typealias HTTPResponder = @Sendable (HTTPServerRequest) async -> HTTPServerResponse
