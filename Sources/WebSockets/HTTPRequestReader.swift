import NIOCore
import NIOHTTP1

/// Reads HTTP/1.1 requests out of a connection's bytes, one step at a time, with no I/O: the request reader of a
/// publisher's connection on a socket loop (``PublisherConnection``), where SwiftNIO's decoder made strings of the
/// URL and of every header name and value of every send (about 7 of its 37 allocations) and its pipeline was a
/// hop between threads per batch. Only what routing and framing need is looked at: the request line, the framing
/// headers, `Connection`, `Expect` and the send key; the other headers stay bytes until a request other than a send
/// asks for them (``headers(in:)``).
///
/// Strict where leniency smuggles requests (RFC 9112): `Content-Length` with `Transfer-Encoding`, differing or
/// malformed lengths, whitespace before a header's colon, folded lines, bare line feeds and control characters are
/// errors, after which the connection answers and closes.
package struct HTTPRequestReader {
    /// A request's head, as far as the reader looked at it.
    package struct Head {
        package var method: HTTPMethod
        package var version: HTTPVersion
        /// Whether the connection stays open after the answer.
        package var keepAlive: Bool
        /// `POST /WebSockets/send` (with or without a query): a send.
        package var isSend: Bool
        /// `Expect: 100-continue`.
        package var expectsContinue: Bool
        /// How the body is framed.
        package var framing: Framing
        /// Where the request target's bytes are in the head.
        package var target: Range<Int>
        /// Where the value of `X-WebSockets-Key` is in the head, when given (the first one).
        package var key: Range<Int>?
    }

    /// How a request's body is framed.
    package enum Framing: Equatable {
        /// `Content-Length` (0 when neither header is given).
        case length(Int)
        /// `Transfer-Encoding: chunked`.
        case chunked
    }

    /// What the next bytes made.
    package enum Step {
        /// More bytes are needed.
        case needMore
        /// A request's head: its bytes (valid until the next step) and what was found in them.
        case head(Head, bytes: ByteBuffer)
        /// A part of the body (valid until the next step).
        case body(ByteBuffer)
        /// The request is complete.
        case end
    }

    /// Why the bytes are not a request: the answer's status says it.
    package struct Failure: Error, Equatable {
        package var status: HTTPResponseStatus
        package var reason: String
    }

    private enum State {
        case head(scanned: Int)
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers(scanned: Int, total: Int)
        case failed
    }

    /// The largest head accepted: a publisher's is a few hundred bytes; a browser's, with its cookies, rarely more
    /// than 8 KiB. What one connection may make the server hold before its request is whole.
    static let headLimit = 32 << 10
    /// The largest chunk-size line and trailer section.
    static let lineLimit = 4096

    private var state = State.head(scanned: 0)

    /// A reader at the start of a connection.
    package init() {}

    /// Takes the next step with the bytes readable in `buffer` (it moves past what the step used).
    package mutating func next(_ buffer: inout ByteBuffer) throws(Failure) -> Step {
        switch state {
        case .failed:
            throw Failure(status: .badRequest, reason: "the connection's earlier request was malformed")
        case .head(let scanned):
            // Empty lines before a request are skipped (RFC 9112 2.2: some clients end a POST's body with one).
            while scanned == 0, buffer.readableBytes >= 2,
                buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A
            {
                buffer.moveReaderIndex(forwardBy: 2)
            }
            guard let end = Self.find(crlfcrlf: buffer, from: scanned) else {
                if buffer.readableBytes > Self.headLimit {
                    throw failing(.init(status: .requestHeaderFieldsTooLarge, reason: "request head over 32 KiB"))
                }
                state = .head(scanned: max(0, buffer.readableBytes - 3))
                return .needMore
            }
            guard end <= Self.headLimit else {
                throw failing(.init(status: .requestHeaderFieldsTooLarge, reason: "request head over 32 KiB"))
            }
            let bytes = buffer.readSlice(length: end)!
            buffer.moveReaderIndex(forwardBy: 4)
            let head: Head
            do { head = try Self.parse(bytes) } catch { throw failing(error) }
            switch head.framing {
            case .chunked: state = .chunkSize
            case .length(let length): state = length == 0 ? .body(remaining: 0) : .body(remaining: length)
            }
            return .head(head, bytes: bytes)
        case .body(let remaining):
            if remaining == 0 {
                state = .head(scanned: 0)
                return .end
            }
            guard buffer.readableBytes > 0 else { return .needMore }
            let take = min(remaining, buffer.readableBytes)
            state = .body(remaining: remaining - take)
            return .body(buffer.readSlice(length: take)!)
        case .chunkSize:
            guard let line = Self.line(buffer) else {
                if buffer.readableBytes > Self.lineLimit {
                    throw failing(.init(status: .badRequest, reason: "chunk size line too long"))
                }
                return .needMore
            }
            let size: Int
            do { size = try Self.chunkSize(buffer.getSlice(at: buffer.readerIndex, length: line)!) } catch {
                throw failing(error)
            }
            buffer.moveReaderIndex(forwardBy: line + 2)
            state = size == 0 ? .trailers(scanned: 0, total: 0) : .chunkData(remaining: size)
            return try next(&buffer)
        case .chunkData(let remaining):
            guard buffer.readableBytes > 0 else { return .needMore }
            let take = min(remaining, buffer.readableBytes)
            state = take == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - take)
            return .body(buffer.readSlice(length: take)!)
        case .chunkDataEnd:
            guard buffer.readableBytes >= 2 else { return .needMore }
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else {
                throw failing(.init(status: .badRequest, reason: "chunk not followed by CRLF"))
            }
            state = .chunkSize
            return try next(&buffer)
        case .trailers(_, let total):
            // Trailer fields are read and dropped, up to an empty line.
            while true {
                guard let line = Self.line(buffer) else {
                    if buffer.readableBytes > Self.lineLimit {
                        throw failing(.init(status: .badRequest, reason: "trailer too long"))
                    }
                    return .needMore
                }
                guard total + line <= Self.lineLimit else {
                    throw failing(.init(status: .badRequest, reason: "trailers too long"))
                }
                buffer.moveReaderIndex(forwardBy: line + 2)
                if line == 0 {
                    state = .head(scanned: 0)
                    return .end
                }
                state = .trailers(scanned: 0, total: total + line)
            }
        }
    }

    /// Ends the reading: after a malformed request nothing more on the connection can be framed.
    private mutating func failing(_ failure: Failure) -> Failure {
        state = .failed
        return failure
    }

    // MARK: Parsing

    /// The offset of the first CRLF CRLF in `buffer`'s readable bytes at or after `from`.
    private static func find(crlfcrlf buffer: ByteBuffer, from: Int) -> Int? {
        buffer.withUnsafeReadableBytes { bytes in
            var index = from
            while index + 3 < bytes.count {
                if bytes[index + 3] == 0x0A {
                    if bytes[index] == 0x0D && bytes[index + 1] == 0x0A && bytes[index + 2] == 0x0D { return index }
                    index += 1
                } else if bytes[index + 3] == 0x0D {
                    index += 1
                } else {
                    index += 4
                }
            }
            return nil
        }
    }

    /// The length of the first line (up to CRLF) in `buffer`'s readable bytes, or `nil` when it is not whole.
    private static func line(_ buffer: ByteBuffer) -> Int? {
        buffer.withUnsafeReadableBytes { bytes in
            guard bytes.count >= 2 else { return nil }
            for index in 0..<(bytes.count - 1) where bytes[index] == 0x0D && bytes[index + 1] == 0x0A {
                return index
            }
            return nil
        }
    }

    private static func chunkSize(_ line: ByteBuffer) throws(Failure) -> Int {
        var size = 0
        var digits = 0
        for byte in line.readableBytesView {
            let value: Int
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = Int(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = Int(byte - UInt8(ascii: "a")) + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = Int(byte - UInt8(ascii: "A")) + 10
            case UInt8(ascii: ";"), UInt8(ascii: " "), UInt8(ascii: "\t"):
                // A chunk extension (ignored) follows.
                guard digits > 0 else { throw Failure(status: .badRequest, reason: "malformed chunk size") }
                return size
            default:
                throw Failure(status: .badRequest, reason: "malformed chunk size")
            }
            digits += 1
            guard digits <= 8 else { throw Failure(status: .payloadTooLarge, reason: "chunk too large") }
            size = size * 16 + value
        }
        guard digits > 0 else { throw Failure(status: .badRequest, reason: "malformed chunk size") }
        return size
    }

    /// Parses a request head (without its final CRLF CRLF).
    package static func parse(_ head: ByteBuffer) throws(Failure) -> Head {
        let result = head.withUnsafeReadableBytes { bytes in
            Result { () throws(Failure) -> Head in try parse(bytes) }
        }
        return try result.get()
    }

    private static func parse(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> Head {
        func malformed(_ reason: String) -> Failure { Failure(status: .badRequest, reason: reason) }
        // The request line: method SP target SP version.
        var index = 0
        while index < bytes.count, isToken(bytes[index]) { index += 1 }
        guard index > 0, index < bytes.count, bytes[index] == UInt8(ascii: " ") else {
            throw malformed("malformed request line")
        }
        let method = Self.method(bytes, 0..<index)
        index += 1
        let targetStart = index
        while index < bytes.count, bytes[index] > 0x20, bytes[index] != 0x7F { index += 1 }
        guard index > targetStart, index < bytes.count, bytes[index] == UInt8(ascii: " ") else {
            throw malformed("malformed request target")
        }
        let target = targetStart..<index
        index += 1
        guard index + 8 <= bytes.count, matches(bytes, at: index, "HTTP/"), isDigit(bytes[index + 5]),
            bytes[index + 6] == UInt8(ascii: "."), isDigit(bytes[index + 7])
        else { throw malformed("malformed HTTP version") }
        let major = Int(bytes[index + 5] - 0x30)
        let minor = Int(bytes[index + 7] - 0x30)
        guard major == 1, minor <= 1 else {
            throw Failure(status: .httpVersionNotSupported, reason: "HTTP/\(major).\(minor) is not supported")
        }
        index += 8
        var head = Head(
            method: method, version: HTTPVersion(major: major, minor: minor), keepAlive: minor == 1,
            isSend: false, expectsContinue: false, framing: .length(0), target: target, key: nil)
        var length: Int?
        var chunked = false
        var closes = false
        var keepsAlive = false
        // Header lines, each after a CRLF.
        while index < bytes.count {
            guard index + 1 < bytes.count, bytes[index] == 0x0D, bytes[index + 1] == 0x0A else {
                throw malformed("malformed line end")
            }
            index += 2
            let nameStart = index
            while index < bytes.count, isToken(bytes[index]) { index += 1 }
            guard index > nameStart, index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                throw malformed(index == nameStart ? "malformed header line" : "malformed header name")
            }
            let name = nameStart..<index
            index += 1
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
            let valueStart = index
            var valueEnd = index
            while index < bytes.count, bytes[index] != 0x0D {
                let byte = bytes[index]
                guard byte >= 0x20 || byte == 0x09, byte != 0x7F else {
                    throw malformed("control character in a header")
                }
                index += 1
                if byte != 0x20 && byte != 0x09 { valueEnd = index }
            }
            let value = valueStart..<valueEnd
            switch name.count {
            case 14 where equalsLowercased(bytes, name, "content-length"):
                guard !value.isEmpty, value.count <= 15, value.allSatisfy({ isDigit(bytes[$0]) }) else {
                    throw malformed("malformed Content-Length")
                }
                let parsed = value.reduce(0) { $0 * 10 + Int(bytes[$1] - 0x30) }
                guard length == nil || length == parsed else { throw malformed("differing Content-Length headers") }
                length = parsed
            case 17 where equalsLowercased(bytes, name, "transfer-encoding"):
                guard minor == 1 else { throw malformed("Transfer-Encoding in an HTTP/1.0 request") }
                guard !chunked, equalsLowercased(bytes, value, "chunked") else {
                    throw Failure(status: .notImplemented, reason: "only Transfer-Encoding: chunked is supported")
                }
                chunked = true
            case 10 where equalsLowercased(bytes, name, "connection"):
                for token in tokens(bytes, value) {
                    if equalsLowercased(bytes, token, "close") { closes = true }
                    if equalsLowercased(bytes, token, "keep-alive") { keepsAlive = true }
                }
            case 6 where equalsLowercased(bytes, name, "expect"):
                if equalsLowercased(bytes, value, "100-continue") { head.expectsContinue = true }
            case 16 where equalsLowercased(bytes, name, "x-websockets-key"):
                if head.key == nil { head.key = value }
            default:
                break
            }
        }
        if chunked {
            guard length == nil else { throw malformed("both Content-Length and Transfer-Encoding") }
            head.framing = .chunked
        } else {
            head.framing = .length(length ?? 0)
        }
        head.keepAlive = !closes && (minor == 1 || keepsAlive)
        head.isSend = SendTarget.matches(method: method, target: UnsafeRawBufferPointer(rebasing: bytes[target]))
        return head
    }

    private static func method(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTPMethod {
        switch range.count {
        case 3 where matches(bytes, at: 0, "GET"): return .GET
        case 4 where matches(bytes, at: 0, "POST"): return .POST
        case 3 where matches(bytes, at: 0, "PUT"): return .PUT
        case 4 where matches(bytes, at: 0, "HEAD"): return .HEAD
        case 6 where matches(bytes, at: 0, "DELETE"): return .DELETE
        case 7 where matches(bytes, at: 0, "OPTIONS"): return .OPTIONS
        case 5 where matches(bytes, at: 0, "PATCH"): return .PATCH
        default:
            return HTTPMethod(rawValue: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self))
        }
    }

    /// The comma-separated elements of a header value, trimmed.
    private static func tokens(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start = value.lowerBound
        for index in value.lowerBound...value.upperBound
        where index == value.upperBound || bytes[index] == UInt8(ascii: ",") {
            var lower = start
            var upper = index
            while lower < upper, bytes[lower] == 0x20 || bytes[lower] == 0x09 { lower += 1 }
            while upper > lower, bytes[upper - 1] == 0x20 || bytes[upper - 1] == 0x09 { upper -= 1 }
            if lower < upper { result.append(lower..<upper) }
            start = index + 1
        }
        return result
    }

    private static func matches(_ bytes: UnsafeRawBufferPointer, at offset: Int, _ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard offset + count <= bytes.count else { return false }
        let expected = UnsafeRawBufferPointer(start: text.utf8Start, count: count)
        for index in 0..<count where bytes[offset + index] != expected[index] { return false }
        return true
    }

    /// Whether the bytes in `range` are `lowercase` (ASCII, given in lower case) in any case.
    private static func equalsLowercased(
        _ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercase: StaticString
    ) -> Bool {
        let count = lowercase.utf8CodeUnitCount
        guard range.count == count else { return false }
        let expected = UnsafeRawBufferPointer(start: lowercase.utf8Start, count: count)
        for index in 0..<count {
            var byte = bytes[range.lowerBound + index]
            if byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") { byte |= 0x20 }
            if byte != expected[index] { return false }
        }
        return true
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// A `tchar` of RFC 9110 5.6.2.
    static func isToken(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    // MARK: For requests other than sends

    /// The request target of `head` in its `bytes`.
    package static func target(of head: Head, in bytes: ByteBuffer) -> String {
        bytes.getString(at: bytes.readerIndex + head.target.lowerBound, length: head.target.count) ?? ""
    }

    /// Every header of a head's `bytes` (already checked by the step that gave them).
    package static func headers(in bytes: ByteBuffer) -> HTTPHeaders {
        var headers = HTTPHeaders()
        bytes.withUnsafeReadableBytes { bytes in
            var index = 0
            // Past the request line.
            while index + 1 < bytes.count, !(bytes[index] == 0x0D && bytes[index + 1] == 0x0A) { index += 1 }
            while index + 1 < bytes.count {
                index += 2
                let nameStart = index
                while index < bytes.count, bytes[index] != UInt8(ascii: ":") { index += 1 }
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[nameStart..<index]), as: UTF8.self)
                index += 1
                while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
                let valueStart = index
                while index < bytes.count, bytes[index] != 0x0D { index += 1 }
                var valueEnd = index
                while valueEnd > valueStart, bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09 {
                    valueEnd -= 1
                }
                headers.add(
                    name: name,
                    value: String(
                        decoding: UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd]), as: UTF8.self))
            }
        }
        return headers
    }
}
