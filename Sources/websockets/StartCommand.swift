import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import WebSockets

/// `websockets start <site> [<server address>]`: a server in the foreground.
struct StartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Run a server in the foreground (SIGTERM or SIGINT stops it gracefully).",
        discussion: SettingsFlags.help)

    @Argument(help: "The site's address, such as https://example.com (or the `site` setting).")
    var site: String?

    @Argument(help: "How other servers and senders reach this one, such as wss://10.0.0.5:8080/WebSockets.")
    var serverAddress: String?

    @OptionGroup var options: SettingsOptions

    func run() async throws {
        let logger = CLI.bootstrapLogging()
        let settings = try options.serverSettings(site: site, serverAddress: serverAddress, command: "start")
        raiseOpenFileLimit(logger: logger)
        let server = WebSocketsServer(settings: settings, logger: logger)
        var configuration = ServiceGroupConfiguration(
            services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // A last resort: the stop ends within its bound by itself (tested); past it and 3 s more, the process is
        // ended rather than left half-stopped with its port closed.
        configuration.maximumGracefulShutdownDuration = WebSocketsServer.stopBound(siteTimeout: settings.siteTimeout)
        configuration.maximumCancellationDuration = .seconds(3)
        try await ServiceGroup(configuration: configuration).run()
    }
}

/// Each browser tab holds a descriptor: the soft limit (often 1024) is raised to the hard one.
func raiseOpenFileLimit(logger: Logger) {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    let previous = limit.rlim_cur
    limit.rlim_cur = limit.rlim_max
    if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
        logger.info("open-file limit raised", metadata: ["from": "\(previous)", "to": "\(limit.rlim_max)"])
    }
}
