/// Why a text is not the JSON it should be.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, for a log line or a 400 answer.
    public let description: String
    /// The byte offset where parsing stopped.
    public let offset: Int
}

extension JSON {
    /// Parses one JSON value that spans the whole text (whitespace around it allowed).
    public init(parsing text: String) throws(JSONError) {
        try self.init(parsing: Array(text.utf8))
    }

    /// Parses one JSON value that spans all of `bytes`.
    public init(parsing bytes: UnsafeBufferPointer<UInt8>) throws(JSONError) {
        var parser = JSONParser(bytes: bytes)
        self = try parser.parseDocument()
    }

    /// Parses one JSON value that spans all of `bytes`.
    public init(parsing bytes: [UInt8]) throws(JSONError) {
        let result = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(JSONError) -> JSON in try JSON(parsing: buffer) }
        }
        self = try result.get()
    }
}

/// One element of a parsed array: its value and the byte range of its text.
package struct JSONElement: Sendable {
    /// The value.
    package let value: JSON
    /// Where its text lies in the parsed bytes.
    package let range: Range<Int>
}

/// A recursive-descent parser over UTF-8 bytes; nesting is capped so a hostile frame cannot exhaust the stack.
package struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0
    private static let maximumDepth = 128

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    mutating func parseDocument() throws(JSONError) -> JSON {
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        guard index == bytes.count else { throw error("unexpected text after the value") }
        return value
    }

    /// The elements of the array that spans all of `bytes` (whitespace around it allowed): each one's value and
    /// where its text lies, so that a caller can keep the text as written and still read the value.
    /// The element at `skipping` is checked but not read: its value is `null` (a send's details, kept as written,
    /// need no tree).
    package static func elements(of bytes: UnsafeBufferPointer<UInt8>, skipping: Int? = nil) throws(JSONError)
        -> [JSONElement]
    {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        let elements = try parser.parseElements(skipping: skipping)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected text after the value") }
        return elements
    }

    /// For an array of arrays that spans all of `bytes`, the elements of each inner array, in one pass.
    package static func nestedElements(of bytes: UnsafeBufferPointer<UInt8>, skipping: Int? = nil) throws(JSONError)
        -> [[JSONElement]]
    {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        guard parser.index < bytes.count, bytes[parser.index] == UInt8(ascii: "[") else {
            throw parser.error("expected an array")
        }
        var outer: [[JSONElement]] = []
        try parser.parseArrayElements { (parser: inout JSONParser) throws(JSONError) in
            outer.append(try parser.parseElements(skipping: skipping))
        }
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected text after the value") }
        return outer
    }

    /// Parses the array at the current position, returning each element's value and where its text lies.
    private mutating func parseElements(skipping: Int? = nil) throws(JSONError) -> [JSONElement] {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else { throw error("expected an array") }
        var elements: [JSONElement] = []
        // A send has four: grown one by one, the array was three allocations of every send.
        elements.reserveCapacity(4)
        try parseArrayElements { (parser: inout JSONParser) throws(JSONError) in
            let start = parser.index
            let value: JSON
            if elements.count == skipping {
                try parser.skipValue()
                value = .null
            } else {
                value = try parser.parseValue()
            }
            elements.append(JSONElement(value: value, range: start..<parser.index))
        }
        return elements
    }

    // MARK: Checking without reading

    /// Moves past the value at the current position, refusing what ``parseValue()`` refuses, without making it: a
    /// send's details are kept as written, and their tree (a dictionary, strings) was three allocations of every
    /// targeted send and 6% of its samples.
    private mutating func skipValue() throws(JSONError) {
        guard index < bytes.count else { throw error("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"): try skipObject()
        case UInt8(ascii: "["):
            try parseArrayElements { (parser: inout JSONParser) throws(JSONError) in try parser.skipValue() }
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try scanNumber()
        default: throw error("unexpected character")
        }
    }

    private mutating func skipObject() throws(JSONError) {
        try parseObjectMembers(
            key: { (parser: inout JSONParser) throws(JSONError) in try parser.skipString() },
            value: { (parser: inout JSONParser) throws(JSONError) in try parser.skipValue() })
    }

    /// Moves past a string: its escapes and characters checked as ``parseString()`` checks them. Its raw bytes are
    /// valid UTF-8 exactly when the unescaped ones are: an escape is ASCII and stands for whole characters.
    private mutating func skipString() throws(JSONError) {
        index += 1
        let start = index
        var ascii = true
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                let end = index
                index += 1
                guard ascii || Self.isValidUTF8(UnsafeBufferPointer(rebasing: bytes[start..<end])) else {
                    throw error("invalid UTF-8 in string")
                }
                return
            case UInt8(ascii: "\\"):
                _ = try parseEscape()
            default:
                if byte < 0x20 { throw error("control character in string") }
                if byte >= 0x80 { ascii = false }
                index += 1
            }
        }
        throw error("unterminated string")
    }

    private static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    /// Parses the array whose `[` is at the current position: `element` reads each element (it starts at the
    /// current position) and the separators, the brackets and the nesting limit are checked here, once for every
    /// kind of array.
    private mutating func parseArrayElements(
        _ element: (inout JSONParser) throws(JSONError) -> Void
    ) throws(JSONError) {
        try enter()
        defer { depth -= 1 }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            try element(&self)
            skipWhitespace()
            guard index < bytes.count else { throw error("unterminated array") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return
            } else {
                throw error("expected , or ]")
            }
        }
    }

    private func error(_ message: String) -> JSONError {
        JSONError(description: "\(message) at byte \(index)", offset: index)
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue() throws(JSONError) -> JSON {
        guard index < bytes.count else { throw error("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end") }
        let start = literal.utf8Start
        for offset in 0..<count where bytes[index + offset] != start[offset] {
            throw error("invalid literal")
        }
        index += count
    }

    private mutating func enter() throws(JSONError) {
        depth += 1
        if depth > Self.maximumDepth { throw error("nesting deeper than \(Self.maximumDepth)") }
    }

    private mutating func parseArray() throws(JSONError) -> JSON {
        var elements: [JSON] = []
        try parseArrayElements { (parser: inout JSONParser) throws(JSONError) in
            elements.append(try parser.parseValue())
        }
        return .array(elements)
    }

    private mutating func parseObject() throws(JSONError) -> JSON {
        var members: [String: JSON] = [:]
        var key = ""
        try parseObjectMembers(
            key: { (parser: inout JSONParser) throws(JSONError) in key = try parser.parseString() },
            value: { (parser: inout JSONParser) throws(JSONError) in members[key] = try parser.parseValue() })
        return .object(members)
    }

    /// Parses the object whose `{` is at the current position: `key` reads each member's key (at its `"`), `value`
    /// its value; the separators, the braces and the nesting limit are checked here, once for reading and skipping.
    private mutating func parseObjectMembers(
        key: (inout JSONParser) throws(JSONError) -> Void, value: (inout JSONParser) throws(JSONError) -> Void
    ) throws(JSONError) {
        try enter()
        defer { depth -= 1 }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a key") }
            try key(&self)
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected :") }
            index += 1
            skipWhitespace()
            try value(&self)
            skipWhitespace()
            guard index < bytes.count else { throw error("unterminated object") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return
            } else {
                throw error("expected , or }")
            }
        }
    }

    private mutating func parseString() throws(JSONError) -> String {
        index += 1
        let start = index
        // Fast path: no escapes, the bytes are the string.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                guard let string = String(validating: slice, as: UTF8.self) else {
                    throw error("invalid UTF-8 in string")
                }
                return string
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("control character in string") }
            index += 1
        }
        var scalars: [UInt8] = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let string = String(validating: scalars, as: UTF8.self) else {
                    throw error("invalid UTF-8 in string")
                }
                return string
            case UInt8(ascii: "\\"):
                scalars.append(contentsOf: UTF8.encode(try parseEscape())!)
            default:
                if byte < 0x20 { throw error("control character in string") }
                scalars.append(byte)
                index += 1
            }
        }
        throw error("unterminated string")
    }

    /// The character an escape stands for, read from its backslash at `index` (RFC 8259 section 7); one rule for
    /// reading and for skipping a string. A high surrogate pairs with a following low one; alone (as
    /// JSON.stringify writes a string cut inside an emoji), or a low one alone, it is allowed by RFC 8259 but has no
    /// UTF-8 form: it becomes U+FFFD.
    private mutating func parseEscape() throws(JSONError) -> Unicode.Scalar {
        index += 1
        guard index < bytes.count else { throw error("unterminated escape") }
        let escape = bytes[index]
        index += 1
        switch escape {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            var code = try parseHex4()
            if (0xD800...0xDBFF).contains(code) {
                let mark = index
                if index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                    index += 2
                    let low = try parseHex4()
                    if (0xDC00...0xDFFF).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        index = mark
                        code = 0xFFFD
                    }
                } else {
                    code = 0xFFFD
                }
            } else if (0xDC00...0xDFFF).contains(code) {
                code = 0xFFFD
            }
            guard let scalar = Unicode.Scalar(code) else { throw error("invalid escape") }
            return scalar
        default:
            throw error("invalid escape")
        }
    }

    private mutating func parseHex4() throws(JSONError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private mutating func parseNumber() throws(JSONError) -> JSON {
        let start = index
        let isInteger = try scanNumber()
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if isInteger, let value = Int64(text) { return .int(value) }
        guard let value = Double(text) else { throw error("invalid number") }
        return .double(value)
    }

    /// Moves past a number's text, checked against RFC 8259's grammar; whether it is an integer.
    private mutating func scanNumber() throws(JSONError) -> Bool {
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, isDigit(bytes[index]) else { throw error("invalid number") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        var isInteger = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { throw error("invalid fraction") }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < bytes.count, isDigit(bytes[index]) else { throw error("invalid exponent") }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        return isInteger
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}
