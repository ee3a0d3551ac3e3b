import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOHTTP1
import ServiceLifecycle
import WebSockets
import WebSocketsCore
import WebSocketsSite

/// The web-start service (`websockets web <site>`): for hosting where an operator can open a URL but not keep a
/// shell. `GET /WebSockets/<security key>` starts the server unless one is already answering: detached with
/// posix_spawn under `websockets supervise`, or, where spawning is not possible, inside this process.
package final class WebStartService: Service, Sendable {
    private let settings: Settings
    private let logger: Logger
    private let executable: String?
    private let environment: [String: String]
    private let limiter = AttemptLimiter()
    private let startTimeout: Duration
    private let reapers = NIOLockedValueBox<[Task<Void, Never>]>([])
    private let proxies: TrustedProxies
    private let starting = NIOLockedValueBox<Task<HTTPServerResponse, Never>?>(nil)
    private let inProcess = NIOLockedValueBox<WebSocketsServer?>(nil)
    private let http = NIOLockedValueBox<HTTPServer?>(nil)
    /// For health checks: one client (one curl thread) for the service's life, not one per check.
    private let curl = CurlClient(maximumConcurrency: 2)

    /// A service for `settings`; `executable` is the `websockets` binary to spawn (`nil`: none, in-process only);
    /// a spawned server that does not answer its health check within `web_start_timeout` is stopped and reported.
    package init(
        settings: Settings, logger: Logger, executable: String? = ChildProcess.currentExecutable(),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.startTimeout = .milliseconds(Int64(settings.webStartTimeout * 1000))
        self.settings = settings
        self.proxies = TrustedProxies(settings: settings)
        self.logger = logger
        self.executable = executable
        self.environment = environment
    }

    /// The port it listens on, once started.
    package var port: Int { http.withLockedValue { $0?.port ?? 0 } }

    /// Starts listening on `web_port`.
    package func start() async throws {
        let host = settings.listenLocally ? "127.0.0.1" : "0.0.0.0"
        let server = try await PortSetting.binding("web_port", port: settings.webPort, host: host) {
            try await HTTPServer(host: host, port: settings.webPort, limits: settings, logger: logger) {
                [self] request in await respond(to: request)
            }
        }
        http.withLockedValue { $0 = server }
        logger.info("web start listening", metadata: ["port": "\(server.port)"])
    }

    /// Serves until graceful shutdown. A server started in-process stops with it; a spawned one does not.
    package func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops listening and stops a server started in-process.
    package func shutdown() async {
        await http.withLockedValue { $0 }?.shutdown()
        await inProcess.withLockedValue { $0 }?.shutdown()
        await curl.shutdown()
        for task in reapers.withLockedValue({ $0 }) { task.cancel() }
    }

    func respond(to request: HTTPServerRequest) async -> HTTPServerResponse {
        // The path holds the key: it is never logged.
        guard request.method == .GET, request.path.hasPrefix("/WebSockets/") else {
            return .text("Not Found", status: .notFound)
        }
        // Counted per client, behind the proxies the operator named: one person's typo locks out no one else.
        let address = proxies.clientAddress(peer: request.remoteAddress, headers: request.headers)
        if limiter.isBlocked(address) {
            return .text("Too many wrong keys: wait and try again", status: .tooManyRequests)
        }
        guard SecurityKey.matches(request.path.dropFirst("/WebSockets/".count), settings.securityKey) else {
            limiter.recordFailure(address)
            logger.warning("web start: wrong key", metadata: ["ip": "\(address)"])
            return .text("Wrong key", status: .badRequest)
        }
        limiter.recordSuccess(address)
        // Requests at once share one attempt: one server, never two.
        let (task, first) = starting.withLockedValue { current -> (Task<HTTPServerResponse, Never>, Bool) in
            if let current { return (current, false) }
            let task = Task { await self.startServer() }
            current = task
            return (task, true)
        }
        let response = await task.value
        if first {
            starting.withLockedValue { $0 = nil }
            return response
        }
        return response.status == .ok ? .text("Server already running") : response
    }

    private func startServer() async -> HTTPServerResponse {
        if await serverAnswers() { return .text("Server already running") }
        if settings.spawn, let executable {
            do {
                return try await spawnServer(executable)
            } catch let error as ChildProcess.SpawnError {
                logger.warning("web start: spawning failed, starting in-process", metadata: ["error": "\(error)"])
            } catch {
                return .text("Server did not start: \(error)", status: .internalServerError)
            }
        } else {
            logger.info(
                "web start: spawning not possible, starting in-process",
                metadata: ["reason": "\(settings.spawn ? "executable not found" : "spawn is false")"])
        }
        let server = WebSocketsServer(settings: settings, logger: logger)
        do {
            try await server.start()
        } catch {
            return .text("Server did not start: \(error)", status: .internalServerError)
        }
        inProcess.withLockedValue { $0 = server }
        return .text("Server started in-process")
    }

    private func spawnServer(_ executable: String) async throws -> HTTPServerResponse {
        var arguments = [executable, "supervise", "--", executable, "start", settings.site]
        if let address = settings.serverAddress { arguments.append(address) }
        var environment = self.environment
        environment.merge(settings.variables) { _, setting in setting }
        var options = ChildProcess.Options(executable: executable, arguments: arguments, environment: environment)
        options.newSession = true
        let logPath = URL(fileURLWithPath: settings.logFile).path
        options.outputPath = logPath
        let pid = try ChildProcess.spawn(options)
        logger.info("web start: spawned the supervised server", metadata: ["pid": "\(pid)", "log": "\(logPath)"])
        let deadline = ContinuousClock.now + startTimeout
        var exited = false
        while ContinuousClock.now < deadline {
            if await serverAnswers() {
                reap(pid)
                return .text("Server started")
            }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                exited = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        // Nothing is left behind: the supervisor is stopped (it stops its server first) and reaped.
        if !exited { await stop(pid) }
        let tail = Self.tail(of: logPath, lines: 20)
        logger.error(
            "web start: the spawned server did not come up; stopped it", metadata: ["log": "\(logPath)"])
        return .text("Server did not start; \(logPath) ends with:\n\(tail)", status: .internalServerError)
    }

    /// Stops a supervisor that is still running: SIGTERM to its group (it passes it on to its server and waits for
    /// it), SIGKILL if it has not ended in time; then it is reaped.
    private func stop(_ pid: pid_t) async {
        kill(-pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(20)
        var status: Int32 = 0
        while ContinuousClock.now < deadline {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
        kill(-pid, SIGKILL)
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    }

    /// Waits for the supervisor in the background, so that when it ends it does not stay a zombie of this service.
    private func reap(_ pid: pid_t) {
        let task = Task.detached {
            var status: Int32 = 0
            while !Task.isCancelled {
                let result = waitpid(pid, &status, WNOHANG)
                if result == pid || (result == -1 && errno == ECHILD) { return }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        reapers.withLockedValue { $0.append(task) }
    }

    private func serverAnswers() async -> Bool {
        let result = await curl.perform(
            HTTPClientRequest(url: "http://127.0.0.1:\(settings.listenPort)/WebSockets/health", timeout: .seconds(1)))
        return (try? result.get().status) == 200
    }

    private static func tail(of path: String, lines: Int) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
