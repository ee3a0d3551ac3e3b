import Foundation
import WebSocketsProtocol

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
            settings.securityKey = try saveGeneratedKey()
            generated = true
        }
        return (settings, generated)
    }

    /// Generates a security key and saves it to the settings file (created, mode 0600, when there is none),
    /// keeping the file's other settings; the key.
    public func saveGeneratedKey() throws -> String {
        let key = SecurityKey.generate()
        var values = try readFile()
        values["security_key"] = .string(key)
        try writeFile(values)
        return key
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
        try Self.writePrivately(Array(text.utf8), to: path)
    }

    /// Writes `bytes` to `path` so that no one but the owner can read them at any instant: a new file in the same
    /// folder, created with mode 0600 (the umask can only narrow it), written, flushed to disk, then renamed over
    /// `path`. The previous way (write, rename, then chmod) let a process watching the folder read the new key.
    static func writePrivately(_ bytes: [UInt8], to path: String) throws(SettingsError) {
        let temporary = path + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw SettingsError(
                description: "cannot write the settings file \(path): \(String(cString: strerror(errno)))")
        }
        var written = 0
        var failure: Int32 = 0
        bytes.withUnsafeBytes { buffer in
            while written < buffer.count {
                let count = write(descriptor, buffer.baseAddress! + written, buffer.count - written)
                if count < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                written += count
            }
        }
        if failure == 0 && fsync(descriptor) != 0 { failure = errno }
        close(descriptor)
        if failure == 0 && rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw SettingsError(
                description: "cannot write the settings file \(path): \(String(cString: strerror(failure)))")
        }
    }

    /// A warning when the settings file exists and others than its owner may read or change it (it holds the
    /// key), naming the file and the fix; `nil` when it is private or absent.
    public func permissionWarning() -> String? {
        var information = stat()
        guard stat(path, &information) == 0, information.st_mode & 0o077 != 0 else { return nil }
        let mode = String(information.st_mode & 0o777, radix: 8)
        return "warning: the settings file \(path) holds the security key but has mode \(mode): run chmod 600 \(path)"
    }
}

/// A setting that cannot be read.
public struct SettingsError: Error, Sendable, CustomStringConvertible {
    /// What is wrong and where.
    public let description: String

    /// An error saying `description`: what is wrong, where, and what is allowed, in one line.
    public init(description: String) {
        self.description = description
    }
}
