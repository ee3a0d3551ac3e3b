import WebSocketsProtocol

/// One setting, declared once: its name, the kind of value it takes, its allowed values, its help, and how it is
/// read from and written to ``Settings``. The settings file, the `WEBSOCKETS_*` variables, the command line's
/// flags, the help text, the settings page's table and the checks all come from ``Settings/definitions``.
public struct SettingDefinition: Sendable {
    /// The kind of value a setting takes.
    public enum Kind: Sendable {
        /// Any text.
        case string
        /// A whole number.
        case integer
        /// A number, possibly with a fraction.
        case number
        /// `true` or `false` (`1`/`0`, `yes`/`no`, `on`/`off` in variables and flags).
        case boolean
        /// A list of strings; comma-separated in variables and flags.
        case list
    }

    /// The name in the settings file, such as `listen_port`.
    public let name: String
    /// The kind of value.
    public let kind: Kind
    /// What the setting does, one line.
    public let help: String
    /// The default, as the settings page and the help show it.
    public let defaultDescription: String
    /// The allowed values, in words (empty: any value of the kind).
    public let allowed: String
    private let read: @Sendable (Settings) -> String?
    private let write: @Sendable (inout Settings, JSON) -> String?

    /// The value in `settings` as a variable or flag would give it; `nil` when unset.
    public func text(of settings: Settings) -> String? {
        read(settings)
    }

    /// Sets the setting to `value` in `settings`, or throws a one-line error naming the setting, the value, where it
    /// came from and what is allowed.
    package func apply(_ value: JSON, source: String, to settings: inout Settings) throws(SettingsError) {
        if let problem = write(&settings, value) {
            throw SettingsError(
                description: "invalid setting \(name) = \(value.serialized()) (from \(source)): \(problem)")
        }
    }

    /// The JSON value of a variable's or flag's text, or an error naming the setting.
    package func value(of text: String, source: String) throws(SettingsError) -> JSON {
        func refuse(_ what: String) -> SettingsError {
            SettingsError(description: "invalid setting \(name) = \"\(text)\" (from \(source)): \(what)")
        }
        switch kind {
        case .string: return .string(text)
        case .list: return .array(text.split(separator: ",").map { .string($0.trimmingCharacters(in: .whitespaces)) })
        case .integer:
            guard let value = Int64(text) else { throw refuse("expected \(allowed)") }
            return .int(value)
        case .number:
            guard let value = Double(text), value.isFinite else { throw refuse("expected \(allowed)") }
            return .double(value)
        case .boolean:
            switch text.lowercased() {
            case "1", "true", "yes", "on": return .bool(true)
            case "0", "false", "no", "off": return .bool(false)
            default: throw refuse("expected true or false")
            }
        }
    }

    // MARK: Making definitions

    /// A text setting.
    package static func string(
        _ name: String, _ path: WritableKeyPath<Settings, String> & Sendable, default defaultDescription: String? = nil,
        _ help: String
    ) -> SettingDefinition {
        SettingDefinition(
            name: name, kind: .string, help: help,
            defaultDescription: defaultDescription ?? "`\(Settings()[keyPath: path])`", allowed: "",
            read: { $0[keyPath: path] },
            write: { settings, value in
                guard case .string(let text) = value else { return "expected a string" }
                settings[keyPath: path] = text
                return nil
            })
    }

    /// A text setting that may be absent.
    static func optionalString(
        _ name: String, _ path: WritableKeyPath<Settings, String?> & Sendable, default defaultDescription: String,
        _ help: String
    ) -> SettingDefinition {
        SettingDefinition(
            name: name, kind: .string, help: help, defaultDescription: defaultDescription, allowed: "",
            read: { $0[keyPath: path] },
            write: { settings, value in
                guard case .string(let text) = value else { return "expected a string" }
                settings[keyPath: path] = text
                return nil
            })
    }

    /// A text setting that may be absent and, when present, is one of `values`.
    static func choice(
        _ name: String, _ path: WritableKeyPath<Settings, String?> & Sendable, _ values: [String],
        default defaultDescription: String, _ help: String
    ) -> SettingDefinition {
        let allowed = "one of " + values.joined(separator: ", ")
        return SettingDefinition(
            name: name, kind: .string, help: help, defaultDescription: defaultDescription, allowed: allowed,
            read: { $0[keyPath: path] },
            write: { settings, value in
                guard case .string(let text) = value, values.contains(text) else { return "expected \(allowed)" }
                settings[keyPath: path] = text
                return nil
            })
    }

    /// A list of strings, also accepted as one comma-separated string; `check` names what is wrong with a list.
    package static func list(
        _ name: String, _ path: WritableKeyPath<Settings, [String]?> & Sendable, default defaultDescription: String,
        _ help: String, check: @escaping @Sendable ([String]) -> String? = { _ in nil }
    ) -> SettingDefinition {
        SettingDefinition(
            name: name, kind: .list, help: help, defaultDescription: defaultDescription, allowed: "",
            read: { $0[keyPath: path]?.joined(separator: ",") },
            write: { settings, value in
                let strings: [String]
                switch value {
                case .string(let text):
                    strings = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                case .array(let items):
                    strings = items.compactMap(\.stringValue)
                    guard strings.count == items.count else { return "expected a list of strings" }
                default: return "expected a list of strings or a comma-separated string"
                }
                if let problem = check(strings) { return problem }
                settings[keyPath: path] = strings
                return nil
            })
    }

    /// `true` or `false`.
    static func boolean(
        _ name: String, _ path: WritableKeyPath<Settings, Bool> & Sendable, _ help: String
    ) -> SettingDefinition {
        SettingDefinition(
            name: name, kind: .boolean, help: help, defaultDescription: "`\(Settings()[keyPath: path])`",
            allowed: "true or false",
            read: { String($0[keyPath: path]) },
            write: { settings, value in
                guard case .bool(let flag) = value else { return "expected true or false" }
                settings[keyPath: path] = flag
                return nil
            })
    }

    /// A whole number in `range`.
    package static func integer(
        _ name: String, _ path: WritableKeyPath<Settings, Int> & Sendable, _ range: ClosedRange<Int>, _ help: String
    ) -> SettingDefinition {
        let allowed = "an integer from \(range.lowerBound) to \(range.upperBound)"
        return SettingDefinition(
            name: name, kind: .integer, help: help, defaultDescription: "`\(Settings()[keyPath: path])`",
            allowed: allowed,
            read: { String($0[keyPath: path]) },
            write: { settings, value in
                guard let number = value.intValue, let integer = Int(exactly: number), range.contains(integer) else {
                    return "expected \(allowed)"
                }
                settings[keyPath: path] = integer
                return nil
            })
    }

    /// A number of seconds (or another unit) in `range`.
    package static func number(
        _ name: String, _ path: WritableKeyPath<Settings, Double> & Sendable, _ range: ClosedRange<Double>,
        _ help: String
    ) -> SettingDefinition {
        let allowed = "a number from \(Self.format(range.lowerBound)) to \(Self.format(range.upperBound))"
        return SettingDefinition(
            name: name, kind: .number, help: help, defaultDescription: "`\(format(Settings()[keyPath: path]))`",
            allowed: allowed,
            read: { String($0[keyPath: path]) },
            write: { settings, value in
                let number: Double
                switch value {
                case .int(let integer): number = Double(integer)
                case .double(let double): number = double
                default: return "expected \(allowed)"
                }
                guard number.isFinite, range.contains(number) else { return "expected \(allowed)" }
                settings[keyPath: path] = number
                return nil
            })
    }

    /// `25` rather than `25.0`.
    private static func format(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }
}
