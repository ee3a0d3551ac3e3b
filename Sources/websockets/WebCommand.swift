import ArgumentParser
import Foundation
import ServiceLifecycle
import WebSockets
import WebSocketsLaunch

/// `websockets web <site>`: the web-start service.
struct WebCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web",
        abstract: "Serve GET /WebSockets/<security key> on web_port (8081): it starts the server when none runs.",
        discussion: SettingsFlags.help)

    @Argument(help: "The site's address (or the `site` setting).")
    var site: String?

    @Argument(help: "How other servers and senders reach the started server.")
    var serverAddress: String?

    @Option(name: .customLong("log-file"), help: "Where the spawned server writes its output (default websockets.log).")
    var logFile: String?

    @OptionGroup var options: SettingsOptions

    func run() async throws {
        let logger = CLI.bootstrapLogging()
        var settings = try options.serverSettings(site: site, serverAddress: serverAddress, command: "web")
        if let logFile { settings.logFile = logFile }
        let service = WebStartService(settings: settings, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
