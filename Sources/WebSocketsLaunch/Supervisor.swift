import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import WebSockets

/// Runs a command and starts it again after it stops, for as long as the supervisor lives (the seed's
/// `supervisor.php`). A command that keeps exiting quickly is restarted less and less often (capped). Signals:
/// - SIGTERM, SIGINT (and SIGQUIT) are forwarded to the command's whole process group; the supervisor exits once it
///   has ended (killing the group after `stopTimeout`), so the command is never left without it.
/// - SIGHUP restarts the command: SIGTERM to its group, then a new start at once (settings are read again).
/// - A command that exits with status 2 (a usage or settings mistake: `websockets` exits 2 on a wrong setting or a
///   port in use) is not restarted, since it would fail the same way; the supervisor exits 2.
package final class Supervisor: Sendable {
    private let options: ChildProcess.Options
    private let logger: Logger
    private let restartDelay: Duration
    private let maximumDelay: Duration
    private let quickExit: Duration
    private let stopTimeout: Duration
    private let stopSignal = NIOLockedValueBox<Int32?>(nil)
    /// Set by SIGHUP, cleared when the restart it asks for begins.
    private let restartRequested = NIOLockedValueBox(false)

    /// A supervisor of `arguments` (the program first); `restartDelay` after a normal exit, doubling up to
    /// `maximumDelay` while the command keeps exiting within `quickExit` of its start.
    package init(
        arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger, restartDelay: Duration = .seconds(1), maximumDelay: Duration = .seconds(30),
        quickExit: Duration = .seconds(5), stopTimeout: Duration = .seconds(15)
    ) throws {
        guard let program = arguments.first, let path = Self.resolve(program, path: environment["PATH"]) else {
            throw ChildProcess.SpawnError(description: "command not found: \(arguments.first ?? "")")
        }
        var options = ChildProcess.Options(executable: path, arguments: arguments, environment: environment)
        options.newProcessGroup = true
        self.options = options
        var logger = logger
        logger[metadataKey: "command"] = "\(arguments.joined(separator: " "))"
        self.logger = logger
        self.restartDelay = restartDelay
        self.maximumDelay = maximumDelay
        self.quickExit = quickExit
        self.stopTimeout = stopTimeout
    }

    /// A supervisor of a shell command line, run with `/bin/sh -c`.
    package convenience init(commandLine: String, logger: Logger) throws {
        try self.init(arguments: ["/bin/sh", "-c", commandLine], logger: logger)
    }

    /// Supervises until SIGTERM, SIGINT or SIGQUIT, or until the command exits with status 2; returns the exit
    /// status for the supervisor's process.
    package func run() async -> Int32 {
        let stops = [SIGTERM, SIGINT, SIGQUIT].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [stopSignal] in
                stopSignal.withLockedValue { if $0 == nil { $0 = number } }
            }
            source.resume()
            return source
        }
        signal(SIGHUP, SIG_IGN)
        let hangUp = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangUp.setEventHandler { [restartRequested] in restartRequested.withLockedValue { $0 = true } }
        hangUp.resume()
        defer { for source in stops + [hangUp] { source.cancel() } }
        var quickFailures = 0
        while stopSignal.withLockedValue({ $0 }) == nil {
            let started = ContinuousClock.now
            restartRequested.withLockedValue { $0 = false }
            var restarting = false
            do {
                let pid = try ChildProcess.spawn(options)
                logger.info("started", metadata: ["pid": "\(pid)"])
                let (status, restarted) = await waitForExit(pid)
                restarting = restarted
                if stopSignal.withLockedValue({ $0 }) != nil {
                    logger.info("stopped", metadata: ["pid": "\(pid)", "status": "\(status.description)"])
                    break
                }
                if restarted {
                    logger.info("restarted on SIGHUP", metadata: ["pid": "\(pid)", "status": "\(status.description)"])
                    continue
                }
                logger.info("exited", metadata: ["pid": "\(pid)", "status": "\(status.description)"])
                if status == .exited(2) {
                    logger.error("the command exited with status 2 (a usage or settings mistake): not restarting it")
                    return 2
                }
            } catch {
                logger.error("cannot start", metadata: ["error": "\(error)"])
            }
            guard !restarting else { continue }
            quickFailures = ContinuousClock.now - started < quickExit ? quickFailures + 1 : 0
            var delay = restartDelay
            if quickFailures > 1 {
                delay = min(maximumDelay, restartDelay * Int(1 << min(quickFailures - 1, 16)))
                logger.warning(
                    "crash loop: restarting with a longer pause",
                    metadata: ["quick_exits": "\(quickFailures)", "pause": "\(delay)"])
            }
            await pause(delay)
        }
        return 0
    }

    /// How a child ended.
    enum ExitStatus: Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)
        case unknown

        init(_ status: Int32) {
            let signal = status & 0x7f
            self = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
        }

        var description: String {
            switch self {
            case .exited(let code): return "exit \(code)"
            case .signaled(let signal): return "signal \(signal)"
            case .unknown: return "unknown"
            }
        }
    }

    /// Waits for the child; once a stop signal (or SIGHUP) arrives, sends SIGTERM or the stop signal to the child's
    /// group and, after `stopTimeout`, kills the group. Whether the end was a restart asked by SIGHUP.
    private func waitForExit(_ pid: pid_t) async -> (ExitStatus, restarted: Bool) {
        var forwardedAt: ContinuousClock.Instant?
        var restarted = false
        while true {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return (ExitStatus(status), restarted) }
            if result == -1 && errno != EINTR { return (.unknown, restarted) }
            if forwardedAt == nil, let number = stopSignal.withLockedValue({ $0 }) {
                kill(-pid, number)
                forwardedAt = .now
            } else if forwardedAt == nil, restartRequested.withLockedValue({ $0 }) {
                logger.info("SIGHUP: restarting the command", metadata: ["pid": "\(pid)"])
                kill(-pid, SIGTERM)
                forwardedAt = .now
                restarted = true
            } else if let forwardedAt, ContinuousClock.now - forwardedAt > stopTimeout {
                logger.warning("the command did not stop in time: killing it", metadata: ["pid": "\(pid)"])
                kill(-pid, SIGKILL)
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func pause(_ delay: Duration) async {
        let end = ContinuousClock.now + delay
        // A stop ends the pause; so does SIGHUP (a restart asked for now).
        while ContinuousClock.now < end && stopSignal.withLockedValue({ $0 }) == nil
            && !restartRequested.withLockedValue({ $0 })
        {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// `program` as a path: as given when it has a slash, else found in `PATH`.
    static func resolve(_ program: String, path: String?) -> String? {
        if program.contains("/") { return FileManager.default.isExecutableFile(atPath: program) ? program : nil }
        for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
