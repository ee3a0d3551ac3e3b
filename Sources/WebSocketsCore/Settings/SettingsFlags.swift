import WebSocketsProtocol

/// Finds the settings' flags (`--listen-port 8080` or `--listen-port=8080`, one per ``Settings/definitions``) in a
/// command line, so that the command-line parser only sees the rest: the flags come from the settings' table
/// instead of being declared one by one.
package struct SettingsFlags: Sendable, Equatable {
    /// The values given, by setting name (`listen_port`).
    package var values: [String: String] = [:]
    /// The arguments that are not settings' flags, in order.
    package var rest: [String] = []

    /// No flags: `rest` is the whole command line.
    package init(rest: [String] = []) {
        self.rest = rest
    }

    /// Splits `arguments` (without the program's name).
    package init(splitting arguments: [String]) throws(SettingsError) {
        var names: [String: String] = [:]
        for definition in Settings.definitions {
            names[SettingsLoader.flagName(of: definition.name)] = definition.name
        }
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                rest += arguments[(index - 1)...]
                break
            }
            let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
            guard let first = parts.first, let name = names[first] else {
                rest.append(argument)
                continue
            }
            if parts.count == 2 {
                values[name] = parts[1]
            } else {
                guard index < arguments.count else {
                    throw SettingsError(description: "invalid setting \(name): \(first) needs a value")
                }
                values[name] = arguments[index]
                index += 1
            }
        }
    }

    /// The settings as the help text lists them: flag, allowed values, default and meaning.
    package static var help: String {
        var lines = [
            "Settings: --<name> flags (here), WEBSOCKETS_<NAME> variables, or websockets.json (--settings PATH);",
            "flags win over variables, variables over the file.",
        ]
        for definition in Settings.definitions {
            let flag = SettingsLoader.flagName(of: definition.name)
            let allowed = definition.allowed.isEmpty ? "" : " (\(definition.allowed))"
            let defaultText = definition.defaultDescription.replacingOccurrences(of: "`", with: "")
            let help = definition.help.replacingOccurrences(of: "`", with: "")
            lines.append("  \(flag)\(allowed), default \(defaultText): \(help)")
        }
        return lines.joined(separator: "\n")
    }
}
