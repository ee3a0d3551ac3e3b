import Foundation
import WebSockets

/// What one viewer of the status page costs the server (issue 28): signs in as the page's form does, then fetches
/// `/WebSockets/status/data` as the page does, `count` times back to back, with whatever connections are open.
/// Reports the server's CPU and the wall time per fetch, and the answer's size. 3,000 fetches: the process's CPU
/// time moves in 10 ms ticks, and 200 fetches were 3 of them.
enum StatusProbe {
    struct Result {
        var cpuMicroseconds: Double
        var milliseconds: Double
        var bytes: Int
        /// The same for `GET /WebSockets/health`, the cheapest request there is: what any HTTP request costs.
        var healthCPUMicroseconds: Double
    }

    static func run(peer: Peer, key: String, curl: CurlClient, count: Int = 3000) async throws -> Result {
        // Sign in with curl, which shows the Set-Cookie header the page's browser would keep.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = [
            "-s", "-i", "-X", "POST", "-H", "Origin: http://127.0.0.1:\(peer.port)", "--data-urlencode", "key=\(key)",
            "http://127.0.0.1:\(peer.port)/WebSockets/status",
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let answer = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard
            let line = answer.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("set-cookie: ") })
        else { throw ProbeError("status page sign-in failed: \(answer.prefix(200))") }
        let cookie = String(line.dropFirst("set-cookie: ".count).split(separator: ";")[0])
        let request = HTTPClientRequest(
            url: "http://127.0.0.1:\(peer.port)/WebSockets/status/data", headers: [("Cookie", cookie)],
            timeout: .seconds(10))
        let data = try await fetch(request, peer: peer, curl: curl, count: count)
        let health = try await fetch(
            HTTPClientRequest(url: "http://127.0.0.1:\(peer.port)/WebSockets/health", timeout: .seconds(10)),
            peer: peer, curl: curl, count: count)
        return Result(
            cpuMicroseconds: data.cpu, milliseconds: data.milliseconds, bytes: data.bytes,
            healthCPUMicroseconds: health.cpu)
    }

    /// `request` `count` times back to back: the server's CPU (µs) and the wall time (ms) per request, the last
    /// answer's size.
    private static func fetch(_ request: HTTPClientRequest, peer: Peer, curl: CurlClient, count: Int) async throws
        -> (cpu: Double, milliseconds: Double, bytes: Int)
    {
        // The idle server's own CPU (pings, timers) over 2 s, taken off the figure.
        let idleStart = peer.cpuSeconds
        try await Task.sleep(for: .seconds(2))
        let idlePerSecond = (peer.cpuSeconds - idleStart) / 2
        let cpuStart = peer.cpuSeconds
        let start = ContinuousClock.now
        var bytes = 0
        for _ in 0..<count {
            let response = try await curl.perform(request).get()
            guard response.status == 200 else { throw ProbeError("\(request.url) answered \(response.status)") }
            bytes = response.body.count
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let cpu = max(0, peer.cpuSeconds - cpuStart - idlePerSecond * seconds)
        return (cpu / Double(count) * 1e6, seconds / Double(count) * 1000, bytes)
    }
}

/// Why the probe could not measure.
struct ProbeError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
