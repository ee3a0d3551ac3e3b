import ArgumentParser
import Foundation
import ServiceLifecycle
import WebSockets

/// `websockets web <site>`: the web-start service.
struct WebCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web",
        abstract: "Serve GET /WebSockets/<security key> on web_port (8081): it starts the server when none runs.")

    @Argument(help: "The site's address (or the `site` setting).")
    var site: String?

    @Argument(help: "How other servers and senders reach the started server.")
    var serverAddress: String?

    @Option(name: .customLong("log-file"), help: "Where the spawned server writes its output (default websockets.log).")
    var logFile: String?

    @OptionGroup var options: SettingsOptions

    func run() async throws {
        let logger = CLI.bootstrapLogging()
        let loader = options.loader
        var (settings, generated) = try loader.load()
        if let site { settings.site = site }
        if let serverAddress { settings.serverAddress = serverAddress }
        if let logFile { settings.logFile = logFile }
        guard !settings.site.isEmpty else {
            throw ValidationError("Give the site's address: websockets web https://example.com")
        }
        if generated {
            print("Generated a security key and saved it to \(loader.path): \(settings.securityKey)")
            fflush(nil)
        }
        let service = WebStartService(settings: settings, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
