/// One send: `[action, details, send_to, target]`, as the site, `/WebSockets/send` and handlers give it.
public struct Send: Sendable, Equatable {
    /// The action the browsers receive.
    public var action: String
    /// The details the browsers receive, as the sender wrote them.
    public var rawDetails: RawJSON
    /// Whom it reaches.
    public var sendTo: SendTo
    /// The ids (or `[property, value]`) that `sendTo` selects by; ignored for `all` and `registeredUsers`.
    public var target: JSON

    /// The details' value, parsed when asked for.
    public var details: JSON {
        get { rawDetails.value }
        set { rawDetails = RawJSON(newValue) }
    }

    /// A send of `action` with `details` to the connections that `sendTo` and `target` select.
    public init(action: String, details: JSON = .null, sendTo: SendTo, target: JSON = .null) {
        self.init(action: action, rawDetails: RawJSON(details), sendTo: sendTo, target: target)
    }

    /// A send of `action` with details as written to the connections that `sendTo` and `target` select.
    public init(action: String, rawDetails: RawJSON, sendTo: SendTo, target: JSON = .null) {
        self.action = action
        self.rawDetails = rawDetails
        self.sendTo = sendTo
        self.target = target
    }

    /// Decodes `[action, details, send_to, target]` (details and target may be left off).
    public init(json: JSON) throws(WireError) {
        guard case .array(let elements) = json, elements.count >= 3 else {
            throw WireError(description: "a send is an array [action, details, send_to, target]")
        }
        try self.init(
            action: elements[0], rawDetails: RawJSON(elements[1]), sendTo: elements[2],
            target: elements.count > 3 ? elements[3] : .null)
    }

    /// Checks the parts of a send: the one place its rules are written.
    private init(action: JSON, rawDetails: RawJSON, sendTo: JSON, target: JSON) throws(WireError) {
        guard case .string(let action) = action else {
            throw WireError(description: "the action of a send is not a string")
        }
        if ServerCommand(rawValue: action) != nil {
            // They close by the session or user their details name and ignore send_to and target: code written for
            // the seed may pass any send_to, 0 included.
            self.init(action: action, rawDetails: rawDetails, sendTo: .all)
            return
        }
        guard let number = sendTo.intValue, let sendTo = SendTo(rawValue: Int(number)) else {
            throw WireError(description: "send_to must be one of 1...\(SendTo.allCases.count)")
        }
        switch sendTo {
        case .all, .registeredUsers: break
        case .specificUsers, .usersGroup, .sessions, .connections:
            if case .null = target { throw WireError(description: "send_to \(number) needs a target") }
        case .filter:
            guard case .array(let pair) = target, pair.count == 2, pair[0].stringValue != nil else {
                throw WireError(description: "send_to 5 needs a target [property, value]")
            }
        }
        self.init(action: action, rawDetails: rawDetails, sendTo: sendTo, target: target)
    }

    /// Decodes a send from its parsed elements in `bytes`: the details are kept as written, the rest is read from
    /// the values (routing needs them).
    package init(elements: [JSONElement], in bytes: UnsafeBufferPointer<UInt8>) throws(WireError) {
        guard elements.count >= 3 else {
            throw WireError(description: "a send is an array [action, details, send_to, target]")
        }
        try self.init(
            action: elements[0].value, rawDetails: RawJSON(unchecked: Array(bytes[elements[1].range])),
            sendTo: elements[2].value, target: elements.count > 3 ? elements[3].value : .null)
    }

    /// Decodes one send or an array of sends from JSON text (a body of `/WebSockets/send`, a site's answer),
    /// keeping each send's details as written.
    public static func list(parsing text: [UInt8]) throws(WireError) -> [Send] {
        let result = text.withUnsafeBufferPointer { bytes in
            Result { () throws(WireError) -> [Send] in try list(parsing: bytes) }
        }
        return try result.get()
    }

    private static func list(parsing bytes: UnsafeBufferPointer<UInt8>) throws(WireError) -> [Send] {
        // The first element tells one send (a string) from a list of them (an array).
        var position = 0
        func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x0A, 0x0D, 0x09: position += 1
                default: return
                }
            }
        }
        skipWhitespace()
        let isArray = position < bytes.count && bytes[position] == UInt8(ascii: "[")
        position += 1
        skipWhitespace()
        do {
            if isArray, position < bytes.count, bytes[position] == UInt8(ascii: "[") {
                var sends: [Send] = []
                for elements in try JSONParser.nestedElements(of: bytes, skipping: 1) {
                    sends.append(try Send(elements: elements, in: bytes))
                }
                return sends
            }
            let elements = try JSONParser.elements(of: bytes, skipping: 1)
            return elements.isEmpty ? [] : [try Send(elements: elements, in: bytes)]
        } catch let error as JSONError {
            if isArray, (try? JSON(parsing: bytes)) != nil {
                throw WireError(description: "expected [action, details, send_to, target] or an array of them")
            }
            throw WireError(description: "not valid JSON: \(error.description)")
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(description: "\(error)")
        }
    }

    /// Decodes one send or an array of sends given as a value; the rules are those of ``list(parsing:)``, which
    /// this calls with the value's text.
    public static func list(from json: JSON) throws(WireError) -> [Send] {
        var text: [UInt8] = []
        json.write(into: &text)
        return try list(parsing: text)
    }

    /// `[action, details, send_to, target]`.
    public var json: JSON {
        .array([.string(action), details, .int(Int64(sendTo.rawValue)), target])
    }

    /// The length of ``encoded(extra:)`` with no extra elements, without copying the details: what a limit on a
    /// send's size measures (the cluster's `max_send_size`, on every published send).
    public var encodedCount: Int {
        var parts: [UInt8] = []
        JSON.writeString(action, into: &parts)
        target.write(into: &parts)
        // `[` action `,` details `,` send_to `,` target `]`
        return parts.count + rawDetails.bytes.count + String(sendTo.rawValue).utf8.count + 5
    }

    /// The text `[action, details, send_to, target]` with the details as written, and `extra` elements after them.
    public func encoded(extra: [JSON] = []) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "[")]
        bytes.reserveCapacity(rawDetails.bytes.count + action.utf8.count + 32)
        JSON.writeString(action, into: &bytes)
        bytes.append(UInt8(ascii: ","))
        bytes.append(contentsOf: rawDetails.bytes)
        bytes.append(contentsOf: ",\(sendTo.rawValue),".utf8)
        target.write(into: &bytes)
        for element in extra {
            bytes.append(UInt8(ascii: ","))
            element.write(into: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
        return bytes
    }
}
