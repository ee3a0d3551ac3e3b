/// A JSON value: the `details` of a frame, a user id, a send's target.
///
/// The project parses and prints JSON itself rather than through Foundation: frames are decoded on the hot path,
/// and integers must stay integers (a user id `42` is never `42.0`).
public enum JSON: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])
}

extension JSON {
    /// The string, when this value is one.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The integer, when this value is a whole number.
    public var intValue: Int64? {
        switch self {
        case .int(let value): return value
        case .double(let value) where value.rounded() == value && abs(value) < 9e15: return Int64(value)
        default: return nil
        }
    }

    /// The elements, when this value is an array.
    public var arrayValue: [JSON]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The members, when this value is an object.
    public var objectValue: [String: JSON]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// The member named `key`, when this value is an object that has it.
    public subscript(key: String) -> JSON? {
        objectValue?[key]
    }

    /// A key under which equal ids meet in an index, whatever their JSON type: `42`, `42.0` and `"42"` are one user.
    package var indexKey: String {
        switch self {
        case .string(let value): return value
        case .int(let value): return String(value)
        case .double(let value):
            if let whole = intValue { return String(whole) }
            return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .null: return "null"
        case .array, .object: return serialized()
        }
    }

    /// Equality as a site means it in a filter: numbers and their string forms compare by value.
    package func loosely(equals other: JSON) -> Bool {
        switch (self, other) {
        case (.array, _), (.object, _), (_, .array), (_, .object): return self == other
        default: return indexKey == other.indexKey
        }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    /// A string value.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An integer value.
    public init(integerLiteral value: Int64) { self = .int(value) }
    /// A boolean value.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// An array value.
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    /// An object value.
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    /// `null`.
    public init(nilLiteral: ()) { self = .null }
    /// A floating-point value.
    public init(floatLiteral value: Double) { self = .double(value) }
}
