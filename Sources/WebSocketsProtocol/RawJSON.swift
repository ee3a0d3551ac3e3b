/// A JSON value as its sender wrote it: validated, passed on byte for byte (key order, number spelling and escapes
/// kept), and parsed only when a value is asked for.
///
/// The `details` of every message and send travel as this: measured on issue 12's main, parsing and printing them
/// again sent `{"t":"1","s":"2"}` as `{"s":"2","t":"1"}`, `1e9999` as `null` and integers beyond 2^53 rounded.
public struct RawJSON: Sendable, Hashable, CustomStringConvertible {
    /// The UTF-8 text of one JSON value.
    public let bytes: [UInt8]

    /// `null`.
    public static let null = RawJSON(unchecked: Array("null".utf8))

    /// Checks that `bytes` are one JSON value and keeps them as they are.
    public init(validating bytes: [UInt8]) throws(JSONError) {
        _ = try JSON(parsing: bytes)
        self.bytes = bytes
    }

    /// The text of `value`.
    public init(_ value: JSON) {
        var bytes: [UInt8] = []
        value.write(into: &bytes)
        self.bytes = bytes
    }

    /// Bytes the parser has already validated as one JSON value.
    package init(unchecked bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The value, parsed now (each call parses again).
    public var value: JSON {
        // Validated when made, so parsing cannot fail; `null` keeps this total should that ever change.
        (try? JSON(parsing: bytes)) ?? .null
    }

    /// The text.
    public var description: String {
        String(decoding: bytes, as: UTF8.self)
    }

    /// Equal when the values are equal, whatever the spelling: `{"a":1,"b":2}` equals `{"b":2,"a":1}`.
    public static func == (left: RawJSON, right: RawJSON) -> Bool {
        left.bytes == right.bytes || left.value == right.value
    }

    /// Hashes the value, consistently with `==`.
    public func hash(into hasher: inout Hasher) {
        value.hash(into: &hasher)
    }
}
