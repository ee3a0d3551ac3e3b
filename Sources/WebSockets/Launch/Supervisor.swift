import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Runs a command and starts it again after it stops, for as long as the supervisor lives (the seed's
/// `supervisor.php`). A command that keeps exiting quickly is restarted less and less often (capped); SIGTERM and
/// SIGINT are forwarded to the command's whole process group, and the supervisor exits once it has ended.
public final class Supervisor: Sendable {
    private let options: ChildProcess.Options
    private let logger: Logger
    private let restartDelay: Duration
    private let maximumDelay: Duration
    private let quickExit: Duration
    private let stopTimeout: Duration
    private let stopSignal = NIOLockedValueBox<Int32?>(nil)

    /// A supervisor of `arguments` (the program first); `restartDelay` after a normal exit, doubling up to
    /// `maximumDelay` while the command keeps exiting within `quickExit` of its start.
    public init(
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
    public convenience init(commandLine: String, logger: Logger) throws {
        try self.init(arguments: ["/bin/sh", "-c", commandLine], logger: logger)
    }

    /// Supervises until SIGTERM or SIGINT; returns the exit status for the supervisor's process.
    public func run() async -> Int32 {
        let sources = [SIGTERM, SIGINT].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [stopSignal] in
                stopSignal.withLockedValue { if $0 == nil { $0 = number } }
            }
            source.resume()
            return source
        }
        defer { for source in sources { source.cancel() } }
        var quickFailures = 0
        while stopSignal.withLockedValue({ $0 }) == nil {
            let started = ContinuousClock.now
            do {
                let pid = try ChildProcess.spawn(options)
                logger.info("started", metadata: ["pid": "\(pid)"])
                let status = await waitForExit(pid)
                if stopSignal.withLockedValue({ $0 }) != nil {
                    logger.info("stopped", metadata: ["pid": "\(pid)", "status": "\(status)"])
                    break
                }
                logger.info("exited", metadata: ["pid": "\(pid)", "status": "\(status)"])
            } catch {
                logger.error("cannot start", metadata: ["error": "\(error)"])
            }
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

    /// Waits for the child; once a stop signal arrives, forwards it to the child's group and, after
    /// `stopTimeout`, kills the group.
    private func waitForExit(_ pid: pid_t) async -> String {
        var forwardedAt: ContinuousClock.Instant?
        while true {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return Self.describe(status) }
            if result == -1 && errno != EINTR { return "unknown" }
            if forwardedAt == nil, let number = stopSignal.withLockedValue({ $0 }) {
                kill(-pid, number)
                forwardedAt = .now
            } else if let forwardedAt, ContinuousClock.now - forwardedAt > stopTimeout {
                logger.warning("the command did not stop in time: killing it", metadata: ["pid": "\(pid)"])
                kill(-pid, SIGKILL)
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func pause(_ delay: Duration) async {
        let end = ContinuousClock.now + delay
        while ContinuousClock.now < end && stopSignal.withLockedValue({ $0 }) == nil {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        return signal == 0 ? "exit \((status >> 8) & 0xff)" : "signal \(signal)"
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
