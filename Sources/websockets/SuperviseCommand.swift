import ArgumentParser
import Foundation
import WebSockets
import WebSocketsLaunch

/// `websockets supervise '<command>'` or `websockets supervise -- <program> <args...>`.
struct SuperviseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "supervise",
        abstract: "Run a command and start it again one second after it stops.",
        discussion: """
            Usage: websockets supervise 'websockets start https://example.com'
                   websockets supervise -- websockets start https://example.com

            The command runs in its own process group; SIGTERM or SIGINT stops it and then the supervisor.
            A command that keeps exiting within 5 s is restarted less often (up to every 30 s).
            """)

    @Argument(parsing: .captureForPassthrough, help: "A command line for /bin/sh, or -- and a program with arguments.")
    var command: [String] = []

    func run() async throws {
        let logger = CLI.bootstrapLogging()
        // The command's own arguments pass through untouched, so help is recognised here, alone.
        if command == ["--help"] || command == ["-h"] || command == ["help"] {
            print(Self.helpMessage())
            return
        }
        var arguments = command
        if arguments.first == "--" { arguments.removeFirst() }
        guard !arguments.isEmpty else {
            // As the seed's supervisor does: say how to call it.
            FileHandle.standardError.write(Data((Self.helpMessage() + "\n").utf8))
            throw ExitCode(2)
        }
        let supervisor: Supervisor
        do {
            supervisor =
                arguments.count == 1 && command.first != "--"
                ? try Supervisor(commandLine: arguments[0], logger: logger)
                : try Supervisor(arguments: arguments, logger: logger)
        } catch {
            throw ValidationError("\(error)")
        }
        let status = await supervisor.run()
        if status != 0 { throw ExitCode(status) }
    }
}
