import Foundation
import WebSockets
import WebSocketsSite

/// `websockets start` as users run it, against `site`, on a free port, once it answers: its metrics, its memory,
/// and its stop. What it writes is read as it comes (a pipe left unread would stop a server that logs a lot).
final class StartedServer: Sendable {
    let process: ServerProcess
    let port: Int
    private let client: CurlClient
    private let ended: Task<(status: Int32, output: String), Never>

    /// Starts a server for `site` with `extra` arguments (and `environment`'s variables) and waits until its health check answers.
    static func start(site: TestSite, _ extra: [String] = [], environment: [String: String] = [:]) async throws
        -> StartedServer
    {
        let port = try ServerProcess.freePort()
        let process = try ServerProcess(
            ["start", site.url, "--listen-port", "\(port)", "--security-key", site.key] + extra,
            directory: try ServerProcess.temporaryDirectory(), environment: environment, captureErrors: true)
        let server = StartedServer(process: process, port: port)
        do {
            // 60 s: it returns once the server answers; at the suite's start, on 2 cores, 20 s was once not enough.
            try await eventually(timeout: .seconds(60), "the server answers") {
                await server.get("/WebSockets/health")?.status == 200
            }
        } catch {
            server.kill()
            throw error
        }
        return server
    }

    private init(process: ServerProcess, port: Int) {
        self.process = process
        self.port = port
        client = CurlClient(maximumConcurrency: 4)
        ended = Task { await process.finish(within: .seconds(600)) }
    }

    /// The answer to a request for `path`, or `nil` when there was none.
    func get(_ path: String) async -> HTTPClientResponse? {
        try? await client.perform(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")).get()
    }

    /// `/metrics`, as text.
    func metrics() async -> String {
        String(decoding: await get("/metrics")?.body ?? [], as: UTF8.self)
    }

    /// The value of the metric whose line starts with `name` (with its labels), 0 when there is none.
    func metric(_ name: String) async -> Int {
        let line = await metrics().split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return Int(Double(line?.split(separator: " ").last ?? "") ?? 0)
    }

    /// The memory the process holds now and at most so far, in KiB.
    func memory() throws -> (now: Int, peak: Int) {
        try ServerProcess.memory(of: process.process.processIdentifier)
    }

    /// Sends SIGTERM and waits for the end; the exit status and everything the server wrote.
    func stop() async -> (status: Int32, output: String) {
        _ = Glibc.kill(process.process.processIdentifier, SIGTERM)
        let result = await ended.value
        await client.shutdown()
        return result
    }

    /// Ends the process at once if it still runs (a failed test's cleanup).
    func kill() {
        process.stop()
    }
}
