import WebSocketsProtocol

/// The invariants of the JSON a stranger sends: messages, `POST /WebSockets/send` bodies, internal messages and the
/// site's session answer.
enum JSONCheck {
    /// Parse → serialise → parse gives the same value; `RawJSON` takes exactly what the parser takes and keeps it
    /// byte for byte; the parser's elements (what messages and sends are read with) agree with the whole value; a
    /// message's details are its text as written.
    static func check(_ bytes: [UInt8]) throws(FuzzFinding) {
        let parsed = try? JSON(parsing: bytes)
        let raw = try? RawJSON(validating: bytes)
        try expect((parsed == nil) == (raw == nil), "JSON parsed: \(parsed != nil), RawJSON took it: \(raw != nil)")
        if let raw { try expect(raw.bytes == bytes, "RawJSON changed the bytes") }
        if let parsed {
            var text: [UInt8] = []
            parsed.write(into: &text)
            let again: JSON
            do { again = try JSON(parsing: text) } catch {
                throw FuzzFinding("the serialised \(String(decoding: text, as: UTF8.self)) does not parse: \(error)")
            }
            try expect(same(parsed, again), "parsed \(parsed), serialised and parsed again \(again)")
        }
        let elements = bytes.withUnsafeBufferPointer { try? JSONParser.elements(of: $0) }
        if let elements {
            guard case .array(let values)? = parsed, values.count == elements.count else {
                throw FuzzFinding(
                    "elements \(elements.map(\.value)) of a text that parses as \(String(describing: parsed))")
            }
            for (element, value) in zip(elements, values) {
                let written = Array(bytes[element.range])
                try expect(same(element.value, value), "element \(element.value) where the array has \(value)")
                try expect(
                    (try? JSON(parsing: written)).map { same($0, value) } == true,
                    "an element's text \(String(decoding: written, as: UTF8.self)) is not its value \(value)")
            }
        }
        let message = bytes.withUnsafeBufferPointer { try? Message(frame: $0) }
        if let message {
            guard case .array(let values)? = parsed, values.count >= 2, values[0] == .string(message.action) else {
                throw FuzzFinding(
                    "a message \(message.action) from a text that parses as \(String(describing: parsed))")
            }
            try expect(same(message.details, values[1]), "details \(message.details) where the text has \(values[1])")
            try expect(
                (try? JSON(parsing: message.rawDetails.bytes)).map { same($0, values[1]) } == true,
                "the details as written do not parse to their value")
        }
    }

    /// `Send.list(parsing:)` (bodies and internal messages, read from their bytes) and `Send.list(from:)` (a value)
    /// agree: both refuse or both give the same sends; every send's details are its text as written.
    static func checkSends(_ bytes: [UInt8]) throws(FuzzFinding) {
        let fromBytes = try? Send.list(parsing: bytes)
        guard let parsed = try? JSON(parsing: bytes) else {
            try expect(fromBytes == nil, "sends read from text that does not parse: \(fromBytes ?? [])")
            return
        }
        let fromValue = try? Send.list(from: parsed)
        switch (fromBytes, fromValue) {
        case (nil, nil):
            break
        case (let left?, let right?):
            try expect(left.count == right.count, "\(left.count) sends from the bytes, \(right.count) from the value")
            for (one, other) in zip(left, right) {
                try expect(
                    one.action == other.action && one.sendTo == other.sendTo && same(one.target, other.target)
                        && same(one.details, other.details),
                    "the send \(one) from the bytes, \(other) from the value")
                try expect((try? RawJSON(validating: one.rawDetails.bytes)) != nil, "details as written do not parse")
            }
        default:
            throw FuzzFinding(
                "from the bytes: \(String(describing: fromBytes)); from the value: \(String(describing: fromValue))")
        }
    }

    /// The session answer: either refused or read with its user and session as the answer gave them.
    static func checkSession(_ bytes: [UInt8]) throws(FuzzFinding) {
        guard let parsed = try? JSON(parsing: bytes), let session = try? SessionInfo(json: parsed) else { return }
        guard case .object(let object) = parsed, let user = object["user"], user != .null else {
            throw FuzzFinding("a session without a user was accepted: \(parsed)")
        }
        try expect(session.user == user, "user \(session.user) from \(user)")
        _ = session.isExpired(now: 0)
        _ = session.watchesPresence
    }

    /// Whether `left` and `right` are the same JSON value: numbers by value, whether written as integers or not,
    /// and a number too large for a double as `null` (what it is serialised as).
    static func same(_ left: JSON, _ right: JSON) -> Bool {
        switch (left, right) {
        case (.int(let one), .int(let other)): return one == other
        case (.int(let one), .double(let other)), (.double(let other), .int(let one)):
            return other.isFinite && Double(one) == other
        case (.double(let one), .double(let other)): return one == other || (!one.isFinite && !other.isFinite)
        case (.double(let one), .null), (.null, .double(let one)): return !one.isFinite
        case (.array(let one), .array(let other)):
            return one.count == other.count && zip(one, other).allSatisfy { same($0, $1) }
        case (.object(let one), .object(let other)):
            return one.count == other.count
                && one.allSatisfy { key, value in other[key].map { same(value, $0) } ?? false }
        default: return left == right
        }
    }
}
