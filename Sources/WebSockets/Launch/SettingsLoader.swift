import Foundation

/// Builds ``Settings`` from the settings file, then the environment, then flags (each later one wins), and
/// generates the security key when none is configured.
public struct SettingsLoader: Sendable {
    /// The settings file; `websockets.json` in the working directory unless given.
    public var path: String
    /// The environment to read `WEBSOCKETS_*` variables from.
    public var environment: [String: String]
    /// Values given as flags, by setting name.
    public var flags: [String: String]

    /// A loader for the file at `path` (default `websockets.json`), the process environment and `flags`.
    public init(
        path: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment,
        flags: [String: String] = [:]
    ) {
        self.path = path ?? "websockets.json"
        self.environment = environment
        self.flags = flags
    }

    /// The flag of a setting: `listen_port` is `--listen-port`.
    public static func flagName(of name: String) -> String {
        "--" + name.replacingOccurrences(of: "_", with: "-")
    }

    /// The environment variable of a setting: `listen_port` is `WEBSOCKETS_LISTEN_PORT`.
    public static func variableName(of name: String) -> String {
        "WEBSOCKETS_" + name.uppercased()
    }

    /// The settings, and whether the security key was generated (and saved) by this call. Every value is checked
    /// as it is read: a wrong kind, a value out of range or an unknown name throws a one-line ``SettingsError``.
    public func load(generateKey: Bool = true) throws -> (settings: Settings, generatedKey: Bool) {
        var settings = Settings()
        let fileValues = try readFile()
        for (name, value) in fileValues.sorted(by: { $0.key < $1.key }) {
            guard let definition = Settings.definition(named: name) else {
                throw SettingsError(description: "\(path): unknown setting \"\(name)\"")
            }
            try definition.apply(value, source: path, to: &settings)
        }
        for definition in Settings.definitions {
            let variable = Self.variableName(of: definition.name)
            if let text = environment[variable] {
                try definition.apply(try definition.value(of: text, source: variable), source: variable, to: &settings)
            }
        }
        for (name, text) in flags.sorted(by: { $0.key < $1.key }) {
            guard let definition = Settings.definition(named: name) else {
                throw SettingsError(description: "unknown setting \(name)")
            }
            let flag = Self.flagName(of: name)
            try definition.apply(try definition.value(of: text, source: flag), source: flag, to: &settings)
        }
        try settings.validate()
        var generated = false
        if settings.securityKey.isEmpty && generateKey {
            settings.securityKey = SecurityKey.generate()
            var updated = fileValues
            updated["security_key"] = .string(settings.securityKey)
            try writeFile(updated)
            generated = true
        }
        return (settings, generated)
    }

    private func readFile() throws -> [String: JSON] {
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        do {
            let value = try JSON(parsing: [UInt8](data))
            guard case .object(let object) = value else {
                throw SettingsError(description: "\(path): the settings file must hold a JSON object")
            }
            return object
        } catch let error as JSONError {
            throw SettingsError(description: "\(path): \(error.description)")
        }
    }

    private func writeFile(_ values: [String: JSON]) throws {
        var text = "{\n"
        let lines = values.keys.sorted().map { key -> String in
            var bytes: [UInt8] = []
            JSON.writeString(key, into: &bytes)
            return "  " + String(decoding: bytes, as: UTF8.self) + ": " + values[key]!.serialized()
        }
        text += lines.joined(separator: ",\n") + "\n}\n"
        // The file holds the security key: readable by its owner only.
        guard
            FileManager.default.createFile(
                atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        else {
            throw SettingsError(description: "cannot write the settings file \(path)")
        }
    }
}

/// A setting that cannot be read.
public struct SettingsError: Error, Sendable, CustomStringConvertible {
    /// What is wrong and where.
    public let description: String
}
