/// One send: `[action, details, send_to, target]`, as the site, `/WebSockets/send` and handlers give it.
public struct Send: Sendable, Equatable {
    /// The action the browsers receive.
    public var action: String
    /// The details the browsers receive.
    public var details: JSON
    /// Whom it reaches.
    public var sendTo: SendTo
    /// The ids (or `[property, value]`) that `sendTo` selects by; ignored for `all` and `registeredUsers`.
    public var target: JSON

    /// A send of `action` with `details` to the connections that `sendTo` and `target` select.
    public init(action: String, details: JSON = .null, sendTo: SendTo, target: JSON = .null) {
        self.action = action
        self.details = details
        self.sendTo = sendTo
        self.target = target
    }

    /// The actions the server performs itself rather than deliver.
    static let systemActions: Set<String> = ["Server/close_by_session", "Server/close_by_user"]

    /// Decodes `[action, details, send_to, target]` (details and target may be left off).
    public init(json: JSON) throws(WireError) {
        guard case .array(let elements) = json, elements.count >= 3 else {
            throw WireError(description: "a send is an array [action, details, send_to, target]")
        }
        guard case .string(let action) = elements[0] else {
            throw WireError(description: "the action of a send is not a string")
        }
        if Self.systemActions.contains(action) {
            // They close by the session or user their details name and ignore send_to and target: code written for
            // the seed may pass any send_to, 0 included.
            self.init(action: action, details: elements[1], sendTo: .all)
            return
        }
        guard let number = elements[2].intValue, let sendTo = SendTo(rawValue: Int(number)) else {
            throw WireError(description: "send_to must be one of 1...\(SendTo.allCases.count)")
        }
        let target = elements.count > 3 ? elements[3] : .null
        switch sendTo {
        case .all, .registeredUsers: break
        case .specificUsers, .usersGroup, .sessions, .connections:
            if case .null = target { throw WireError(description: "send_to \(number) needs a target") }
        case .filter:
            guard case .array(let pair) = target, pair.count == 2, pair[0].stringValue != nil else {
                throw WireError(description: "send_to 5 needs a target [property, value]")
            }
        }
        self.init(action: action, details: elements[1], sendTo: sendTo, target: target)
    }

    /// Decodes one send or an array of sends, as a body of `/WebSockets/send` or a site's answer.
    public static func list(from json: JSON) throws(WireError) -> [Send] {
        guard case .array(let elements) = json else {
            throw WireError(description: "expected [action, details, send_to, target] or an array of them")
        }
        if elements.isEmpty { return [] }
        if case .array = elements[0] {
            var sends: [Send] = []
            for element in elements { sends.append(try Send(json: element)) }
            return sends
        }
        return [try Send(json: json)]
    }

    /// `[action, details, send_to, target]`.
    public var json: JSON {
        .array([.string(action), details, .int(Int64(sendTo.rawValue)), target])
    }
}
