import Foundation
import WebSockets

/// What one viewer of the status page costs the server (issue 28): signs in as the page's form does, then fetches
/// `/WebSockets/status/data` as the page does, `count` times back to back, with whatever connections are open.
/// Reports the server's CPU and the wall time per fetch, and the answer's size.
enum StatusProbe {
    struct Result {
        var cpuMicroseconds: Double
        var milliseconds: Double
        var bytes: Int
    }

    static func run(peer: Peer, key: String, curl: CurlClient, count: Int = 200) async throws -> Result {
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
        // The idle server's own CPU (pings, timers) over a second, taken off the fetches' figure.
        let idleStart = peer.cpuSeconds
        try await Task.sleep(for: .seconds(2))
        let idlePerSecond = (peer.cpuSeconds - idleStart) / 2
        let cpuStart = peer.cpuSeconds
        let start = ContinuousClock.now
        var bytes = 0
        for _ in 0..<count {
            let response = try await curl.perform(request).get()
            guard response.status == 200 else { throw ProbeError("status data answered \(response.status)") }
            bytes = response.body.count
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let cpu = max(0, peer.cpuSeconds - cpuStart - idlePerSecond * seconds)
        return Result(
            cpuMicroseconds: cpu / Double(count) * 1e6, milliseconds: seconds / Double(count) * 1000, bytes: bytes)
    }
}

/// Why the probe could not measure.
struct ProbeError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
