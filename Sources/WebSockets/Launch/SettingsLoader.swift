import Foundation

/// Builds ``Settings`` from the settings file, then the environment, then flags (each later one wins), and
/// generates the security key when none is configured.
public struct SettingsLoader: Sendable {
    /// The kind of value a setting takes.
    enum Kind: Sendable { case string, integer, number, boolean, list }

    /// Every setting's name (as in the file) and kind; the flag and variable names derive from it.
    static let known: [(name: String, kind: Kind)] = [
        ("site", .string), ("security_key", .string), ("listen_port", .integer), ("listen_locally", .boolean),
        ("session_endpoint", .string), ("message_endpoint", .string), ("allowed_origins", .list),
        ("postgres", .string), ("spawn", .boolean), ("web_port", .integer), ("log_file", .string),
        ("retention", .integer),
        ("site_timeout", .number),
        ("session_cache_ttl", .number), ("site_concurrency", .integer), ("max_message_size", .integer),
        ("ping_interval", .number), ("idle_timeout", .number), ("max_outbound_buffer", .integer),
        ("max_connections_per_ip", .integer),
    ]

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

    /// The settings, and whether the security key was generated (and saved) by this call.
    public func load(generateKey: Bool = true) throws -> (settings: Settings, generatedKey: Bool) {
        var values: [String: JSON] = [:]
        let fileValues = try readFile()
        for (name, value) in fileValues {
            guard Self.known.contains(where: { $0.name == name }) else {
                throw SettingsError(description: "\(path): unknown setting \"\(name)\"")
            }
            values[name] = value
        }
        for (name, kind) in Self.known {
            if let text = environment[Self.variableName(of: name)] {
                values[name] = try Self.value(of: text, kind: kind, source: Self.variableName(of: name))
            }
        }
        for (name, text) in flags {
            guard let kind = Self.known.first(where: { $0.name == name })?.kind else {
                throw SettingsError(description: "unknown setting \(name)")
            }
            values[name] = try Self.value(of: text, kind: kind, source: Self.flagName(of: name))
        }
        var settings = Settings()
        for (name, value) in values {
            try Self.apply(name: name, value: value, to: &settings)
        }
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

    private static func value(of text: String, kind: Kind, source: String) throws -> JSON {
        switch kind {
        case .string: return .string(text)
        case .list: return .array(text.split(separator: ",").map { .string($0.trimmingCharacters(in: .whitespaces)) })
        case .integer:
            guard let value = Int64(text) else {
                throw SettingsError(description: "\(source): \"\(text)\" is not an integer")
            }
            return .int(value)
        case .number:
            guard let value = Double(text) else {
                throw SettingsError(description: "\(source): \"\(text)\" is not a number")
            }
            return .double(value)
        case .boolean:
            switch text.lowercased() {
            case "1", "true", "yes", "on": return .bool(true)
            case "0", "false", "no", "off": return .bool(false)
            default: throw SettingsError(description: "\(source): \"\(text)\" is not true or false")
            }
        }
    }

    private static func apply(name: String, value: JSON, to settings: inout Settings) throws {
        func string() throws -> String {
            if case .string(let text) = value { return text }
            throw SettingsError(description: "\(name) must be a string")
        }
        func integer() throws -> Int {
            if let number = value.intValue { return Int(number) }
            throw SettingsError(description: "\(name) must be an integer")
        }
        func number() throws -> Double {
            switch value {
            case .int(let number): return Double(number)
            case .double(let number): return number
            default: throw SettingsError(description: "\(name) must be a number")
            }
        }
        func boolean() throws -> Bool {
            if case .bool(let flag) = value { return flag }
            throw SettingsError(description: "\(name) must be true or false")
        }
        switch name {
        case "site": settings.site = try string()
        case "security_key": settings.securityKey = try string()
        case "listen_port": settings.listenPort = try integer()
        case "listen_locally": settings.listenLocally = try boolean()
        case "session_endpoint": settings.sessionEndpoint = try string()
        case "message_endpoint": settings.messageEndpoint = try string()
        case "allowed_origins":
            switch value {
            case .string(let text):
                settings.allowedOrigins = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            case .array(let items): settings.allowedOrigins = items.compactMap(\.stringValue)
            default: throw SettingsError(description: "allowed_origins must be a list or a comma-separated string")
            }
        case "postgres": settings.postgres = try string()
        case "spawn": settings.spawn = try boolean()
        case "web_port": settings.webPort = try integer()
        case "log_file": settings.logFile = try string()
        case "retention": settings.retention = try integer()
        case "site_timeout": settings.siteTimeout = try number()
        case "session_cache_ttl": settings.sessionCacheTTL = try number()
        case "site_concurrency": settings.siteConcurrency = try integer()
        case "max_message_size": settings.maxMessageSize = try integer()
        case "ping_interval": settings.pingInterval = try number()
        case "idle_timeout": settings.idleTimeout = try number()
        case "max_outbound_buffer": settings.maxOutboundBuffer = try integer()
        case "max_connections_per_ip": settings.maxConnectionsPerIP = try integer()
        default: throw SettingsError(description: "unknown setting \(name)")
        }
    }
}

/// A setting that cannot be read.
public struct SettingsError: Error, Sendable, CustomStringConvertible {
    /// What is wrong and where.
    public let description: String
}
