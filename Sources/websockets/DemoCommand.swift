import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import WebSockets
import WebSocketsDemo

/// `websockets demo`: the server and a small chat site in one process, no configuration, no database.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Run the server with a built-in chat site at http://127.0.0.1:8080/.")

    @Option(name: .customLong("listen-port"), help: "The port of the page and the server (default 8080).")
    var listenPort: Int = 8080

    func run() async throws {
        guard (1...65535).contains(listenPort) else {
            throw SettingsError(description: "invalid --listen-port \(listenPort): expected a port from 1 to 65535")
        }
        let logger = CLI.bootstrapLogging()
        let demo = try await PortSetting.binding("listen_port", port: listenPort, host: "127.0.0.1") {
            try await DemoSite.start(port: listenPort, logger: logger)
        }
        print("Demo running: open \(demo.url) in two browsers (or a private window) and chat. Ctrl-C stops it.")
        // The key is this run's own, made at start and known to nothing else: printed (not logged) so that the
        // status page can be tried.
        print("Status page: \(demo.url)WebSockets/status, with this run's key \(demo.securityKey)")
        fflush(nil)
        let group = ServiceGroup(
            configuration: .init(
                services: [DemoService(server: demo.webSocketsServer)], gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

/// Keeps the already started demo server running until graceful shutdown, then stops it.
private struct DemoService: Service {
    let server: WebSocketsServer

    func run() async throws {
        try? await gracefulShutdown()
        await server.shutdown()
    }
}
