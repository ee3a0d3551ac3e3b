import Foundation
import Testing

@testable import WebSockets

/// Issue 23: refusals can't flood the log. 3,000 sends with a wrong key to `websockets start`: each is counted, and
/// the log has one line for them with its count (at most one per 10 s). On 226b087: 3,000 lines.
@Suite(.serialized) struct RefusalLogTests {
    @Test func aFloodOfWrongKeysIsCountedAndLoggedOnce() async throws {
        let site = try await TestSite.start()
        defer { Task { await site.shutdown() } }
        let port = try ServerProcess.freePort()
        let process = try ServerProcess(
            ["start", site.url, "--listen-port", "\(port)", "--security-key", site.key],
            directory: try ServerProcess.temporaryDirectory(), captureErrors: true)
        defer { process.stop() }
        let ended = Task { await process.finish(within: .seconds(60)) }
        let client = CurlClient(maximumConcurrency: 32)
        @Sendable func request(_ method: String, _ path: String, key: String) async -> HTTPClientResponse? {
            try? await client.perform(
                HTTPClientRequest(
                    method: method, url: "http://127.0.0.1:\(port)\(path)", headers: [("X-WebSockets-Key", key)],
                    body: method == "POST" ? Array(#"["x", 1, 1]"#.utf8) : nil, timeout: .seconds(10))
            ).get()
        }
        try await eventually(timeout: .seconds(20), "the server answers") {
            await request("GET", "/WebSockets/health", key: "").map { $0.status == 200 } ?? false
        }
        let statuses = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<3000 {
                group.addTask { await request("POST", "/WebSockets/send", key: "wrong").map(\.status) ?? 0 }
            }
            var statuses: [Int: Int] = [:]
            for await status in group { statuses[status, default: 0] += 1 }
            return statuses
        }
        #expect(statuses == [403: 3000])
        let metrics = await request("GET", "/metrics", key: "").map { String(decoding: $0.body, as: UTF8.self) } ?? ""
        #expect(metrics.contains(#"websockets_refused_total{reason="send_key"} 3000"#))
        await client.shutdown()
        kill(process.process.processIdentifier, SIGTERM)
        let (_, output) = await ended.value
        let lines = output.split(separator: "\n").filter { $0.contains("send refused: wrong or missing key") }
        // The first at once; one more per 10 s at most.
        #expect((1...3).contains(lines.count), "\(lines.count) lines")
        #expect(lines.first?.contains("count=1") == true)
    }
}
