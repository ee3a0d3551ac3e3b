import ArgumentParser
import Foundation
import WebSockets

/// The settings every subcommand accepts as flags; they win over the environment and the settings file.
struct SettingsOptions: ParsableArguments {
    @Option(name: .customLong("settings"), help: "The settings file (default: websockets.json).")
    var settingsPath: String?

    /// This process's command line split once into the settings' flags and the rest (``SettingsFlags``), before
    /// the parser runs, so that each setting is declared once, in `Settings.definitions`; `main` reports a failure.
    static let commandLine: Result<SettingsFlags, SettingsError> = {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard takesSettings(arguments) else { return .success(SettingsFlags(rest: arguments)) }
        return Result { () throws(SettingsError) in try SettingsFlags(splitting: arguments) }
    }()

    /// Whether the subcommand of `arguments` takes settings' flags (`demo` has its own `--listen-port`; `supervise`
    /// passes its arguments to the command it runs).
    static func takesSettings(_ arguments: [String]) -> Bool {
        ["start", "web", "send"].contains(arguments.first ?? "")
    }

    /// The flags given, by setting name.
    var flags: [String: String] { (try? Self.commandLine.get())?.values ?? [:] }

    /// The loader for these flags, the process environment and the settings file.
    var loader: SettingsLoader {
        SettingsLoader(path: settingsPath, flags: flags)
    }

    /// The settings of a command that runs a server for a site (`start`, `web`): the arguments win, a site is
    /// required, and a key generated now is printed at once (whatever fails next), so the operator can give it to
    /// the site.
    func serverSettings(site: String?, serverAddress: String?, command: String) throws -> Settings {
        let loader = self.loader
        if let warning = loader.permissionWarning() {
            FileHandle.standardError.write(Data("websockets: \(warning)\n".utf8))
        }
        // Everything is checked before the key is generated: a mistake writes nothing.
        var (settings, _) = try loader.load(generateKey: false)
        if let site { settings.site = site }
        if let serverAddress { settings.serverAddress = serverAddress }
        guard !settings.site.isEmpty else {
            throw SettingsError(
                description: "no site: give the site's address, as in websockets \(command) https://example.com")
        }
        try settings.validate()
        if settings.securityKey.isEmpty {
            settings.securityKey = try loader.saveGeneratedKey()
            print("Generated a security key and saved it to \(loader.path): \(settings.securityKey)")
            fflush(nil)
        }
        return settings
    }
}
