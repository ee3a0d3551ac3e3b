import ArgumentParser
import Foundation
import Logging
import WebSockets
import WebSocketsLaunch

/// The `websockets` command: a real-time server that gives any web site WebSockets.
@main
struct CLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "websockets",
        abstract: "A real-time WebSocket server in front of any web site.",
        version: WebSocketsServer.version,
        subcommands: [DemoCommand.self, StartCommand.self, SendCommand.self, SuperviseCommand.self, WebCommand.self]
    )

    /// Takes the settings' flags out of the command line before the parser sees the rest, and exits with 2 on a
    /// setting that is wrong (a one-line message naming it), before anything listens.
    static func main() async {
        do {
            var command = try parseAsRoot(try SettingsOptions.commandLine.get().rest)
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let error as SettingsError {
            FileHandle.standardError.write(Data("websockets: \(error.description)\n".utf8))
            Self.exit(withError: ExitCode(2))
        } catch {
            exit(withError: error)
        }
    }

    /// Logs to standard error; the level comes from `WEBSOCKETS_LOG_LEVEL` (default `info`). Every command calls it
    /// first, so the shared event loop group is also sized here, before its first use.
    static func bootstrapLogging() -> Logger {
        EventLoopSizing.sizeSharedGroup()
        let level =
            ProcessInfo.processInfo.environment["WEBSOCKETS_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "websockets")
    }
}
