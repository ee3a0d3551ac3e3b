/// permessage-deflate (RFC 7692) as an upgrade negotiates it, on the values of the request's
/// `Sec-WebSocket-Extensions` headers alone: the first offer the server can honour is accepted, answered so that
/// neither side keeps a compression context between messages (an idle connection then holds no zlib stream); an
/// offer it cannot honour is declined, never half-accepted (RFC 7692 section 5).
package struct DeflateNegotiation: Equatable, Sendable {
    /// The window the server compresses with: `server_max_window_bits` as offered, else 15 (32 KiB).
    package var serverMaxWindowBits: Int

    /// The response's `Sec-WebSocket-Extensions` value: no context takeover either way, and the server's window
    /// when the offer limited it.
    package var responseHeader: String

    /// The agreement for the offers in `headerValues` (every `Sec-WebSocket-Extensions` header of the request, in
    /// order), or `nil` when none is a `permessage-deflate` offer the server can honour.
    package static func agreement(offers headerValues: [String]) -> DeflateNegotiation? {
        for offer in headerValues.flatMap(Self.split(list:)) {
            if let agreement = agreement(offer: offer) { return agreement }
        }
        return nil
    }

    /// The agreement for one offer (`permessage-deflate; client_max_window_bits`), or `nil` to decline it.
    static func agreement(offer: Substring) -> DeflateNegotiation? {
        let parts = split(offer, on: ";")
        guard let name = parts.first, name.lowercased() == "permessage-deflate" else { return nil }
        var seen: Set<String> = []
        var serverBits: Int?
        for part in parts.dropFirst() {
            let (key, value) = parameter(part)
            // A parameter given twice makes the offer invalid (RFC 7692 section 7).
            guard seen.insert(key).inserted else { return nil }
            switch key {
            case "server_no_context_takeover", "client_no_context_takeover":
                guard value == nil else { return nil }
            case "server_max_window_bits":
                // zlib cannot compress with an 8-bit window (it uses 9): an offer that asks for 8 is declined.
                guard let value, let bits = windowBits(value), bits >= 9 else { return nil }
                serverBits = bits
            case "client_max_window_bits":
                // Without a value the client only says it understands the parameter; with one, a valid size. The
                // server inflates each message with a fresh stream of up to 15 bits, so it does not limit the client.
                if let value, windowBits(value) == nil { return nil }
            default:
                return nil
            }
        }
        var header = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        if let serverBits { header += "; server_max_window_bits=\(serverBits)" }
        return DeflateNegotiation(serverMaxWindowBits: serverBits ?? 15, responseHeader: header)
    }

    /// A window size parameter's value: 8 to 15 in decimal, without leading zeros, perhaps quoted.
    private static func windowBits(_ value: Substring) -> Int? {
        var text = value
        if text.count >= 2, text.first == "\"", text.last == "\"" { text = text.dropFirst().dropLast() }
        guard let first = text.first, first != "0", text.allSatisfy({ $0.isASCII && $0.isNumber }),
            let bits = Int(text),
            (8...15).contains(bits)
        else { return nil }
        return bits
    }

    /// A parameter's lower-cased name and its value, if any.
    private static func parameter(_ text: Substring) -> (String, Substring?) {
        guard let equals = text.firstIndex(of: "=") else { return (String(text).lowercased(), nil) }
        let key = text[..<equals].trimmed().lowercased()
        return (key, text[text.index(after: equals)...].trimmed())
    }

    /// The offers of a header value: split on commas outside quoted strings.
    static func split(list: String) -> [Substring] {
        split(Substring(list), on: ",")
    }

    /// `text` split on `separator` outside quoted strings, each part trimmed, empty parts dropped.
    private static func split(_ text: Substring, on separator: Character) -> [Substring] {
        var parts: [Substring] = []
        var start = text.startIndex
        var quoted = false
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character == "\"" {
                quoted.toggle()
            } else if character == separator, !quoted {
                parts.append(text[start..<index])
                start = text.index(after: index)
            }
            index = text.index(after: index)
        }
        parts.append(text[start...])
        return parts.map { $0.trimmed() }.filter { !$0.isEmpty }
    }
}

extension Substring {
    /// The substring without leading and trailing spaces and tabs (HTTP's optional white space).
    fileprivate func trimmed() -> Substring {
        var text = self
        while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        while text.last == " " || text.last == "\t" { text = text.dropLast() }
        return text
    }
}
