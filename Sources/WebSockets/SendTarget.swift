import NIOHTTP1

/// What a send's request is, `POST /WebSockets/send` with or without a query: one rule for both ways an HTTP request
/// is read (SwiftNIO's, in ``HTTPRequestHandler``, and ``HTTPRequestReader``'s on a socket loop) and the prefix
/// ``PublisherSniffer`` looks for in a connection's first bytes.
enum SendTarget {
    /// The path of a send.
    static let path: StaticString = "/WebSockets/send"

    /// What a publisher's connection begins with: the method, a space and the path.
    static let requestLinePrefix: [UInt8] = Array("POST ".utf8) + pathBytes

    private static let pathBytes = Array(UnsafeRawBufferPointer(start: path.utf8Start, count: path.utf8CodeUnitCount))

    /// Whether a request with `method` and the request target `target` (its bytes) is a send: the path alone or
    /// before a query (`/WebSockets/sender` is not one).
    static func matches(method: HTTPMethod, target: UnsafeRawBufferPointer) -> Bool {
        let count = path.utf8CodeUnitCount
        guard method == .POST, target.count >= count,
            UnsafeRawBufferPointer(rebasing: target[..<count]).elementsEqual(
                UnsafeRawBufferPointer(start: path.utf8Start, count: count))
        else { return false }
        return target.count == count || target[count] == UInt8(ascii: "?")
    }

    /// Whether `head` (SwiftNIO's) is a send's.
    static func matches(_ head: HTTPRequestHead) -> Bool {
        var uri = head.uri
        return uri.withUTF8 { matches(method: head.method, target: UnsafeRawBufferPointer($0)) }
    }
}
