/// One frame of the wire format: `[action, details]`.
public struct Message: Sendable, Equatable {
    /// The action, such as `Client/authentication` or `hello:error`.
    public var action: String
    /// The details as their sender wrote them: what is passed on.
    public var rawDetails: RawJSON {
        didSet { parsed = nil }
    }
    /// The details' value when it is known without parsing (decoded from a frame, or given): a browser's message is
    /// parsed once, for the check and for in-process handlers alike.
    private var parsed: JSON?

    /// The details' value; `null` when absent.
    public var details: JSON {
        get { parsed ?? rawDetails.value }
        set {
            rawDetails = RawJSON(newValue)
            parsed = newValue
        }
    }

    /// A message with the given action and details.
    public init(action: String, details: JSON = .null) {
        self.action = action
        self.rawDetails = RawJSON(details)
        self.parsed = details
    }

    /// A message with the given action and details as written.
    public init(action: String, rawDetails: RawJSON) {
        self.action = action
        self.rawDetails = rawDetails
    }

    /// Decodes a text frame; an array of at least two elements whose first is a string. The details are kept as
    /// written, and their value too.
    public init(frame bytes: UnsafeBufferPointer<UInt8>) throws(WireError) {
        let elements: [JSONElement]
        do {
            elements = try JSONParser.elements(of: bytes)
        } catch {
            // Not an array at all, or not valid JSON: tell them apart as before.
            if (try? JSON(parsing: bytes)) != nil { throw WireError(description: "not an array of [action, details]") }
            throw WireError(description: "not valid JSON: \(error.description)")
        }
        guard elements.count >= 2 else { throw WireError(description: "not an array of [action, details]") }
        guard case .string(let action) = elements[0].value else {
            throw WireError(description: "the action is not a string")
        }
        self.init(action: action, rawDetails: RawJSON(unchecked: Array(bytes[elements[1].range])))
        self.parsed = elements[1].value
    }

    /// Equal when the actions are and the details' values are.
    public static func == (left: Message, right: Message) -> Bool {
        left.action == right.action && left.rawDetails == right.rawDetails
    }

    /// Decodes a text frame given as a string.
    public init(frame text: String) throws(WireError) {
        let result = Array(text.utf8).withUnsafeBufferPointer { bytes in
            Result { () throws(WireError) -> Message in try Message(frame: bytes) }
        }
        self = try result.get()
    }

    /// The frame's text, `[action, details]`, as UTF-8 bytes; in a cluster a third element carries the message's
    /// id, which the browser client remembers for recovery.
    public func encoded(id: Int64? = nil) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(action.utf8.count + rawDetails.bytes.count + 24)
        bytes.append(UInt8(ascii: "["))
        JSON.writeString(action, into: &bytes)
        bytes.append(UInt8(ascii: ","))
        bytes.append(contentsOf: rawDetails.bytes)
        if let id {
            bytes.append(UInt8(ascii: ","))
            bytes.append(contentsOf: String(id).utf8)
        }
        bytes.append(UInt8(ascii: "]"))
        return bytes
    }

    /// The error reply to this message: `<action>:error` with `[code, message]`.
    public func errorReply(code: Int, message: String? = nil) -> Message {
        Message(action: action + ":error", details: composeError(code, message))
    }
}

/// Why a frame or a send is not of the wire format.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, for a close reason, a log line or a 400 answer.
    public let description: String
}
