import BenchmarkSupport
import Dispatch
import Foundation
import NIOCore
import WebSockets

/// Our server alone, for now (the peers of issue 5 are still to come): idle memory per authenticated connection,
/// and broadcast fan-out through `POST /WebSockets/send` at fixed rates. The server runs as its own process (the
/// release binary); the site, the publisher and every client run in this one.
///
///     LoadGenerator <path to websockets> <connections> [broadcasts per second ...]
@main
struct LoadGenerator {
    static func main() async throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let binary = arguments.first ?? "../.build/release/websockets"
        let connections = arguments.count > 1 ? Int(arguments[1]) ?? 10000 : 10000
        let rates = arguments.count > 2 ? arguments.dropFirst(2).compactMap(Int.init) : [5, 10, 20]

        let key = SecurityKey.generate()
        let site = try await HTTPServer(port: 0) { request in
            guard request.path == "/api/WebSockets/session", let sid = request.cookie("sid"), let user = Int64(sid.dropFirst())
            else { return HTTPServerResponse() }
            return .json(["user": .int(user), "session": .string(sid)])
        }
        let port = Int.random(in: 30000...39000)
        let directory = NSTemporaryDirectory() + "websockets-load-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var options = ChildProcess.Options(
            executable: binary,
            arguments: [
                binary, "start", "http://127.0.0.1:\(site.port)", "--listen-port", "\(port)", "--security-key", key,
                "--message-endpoint", "none",
            ],
            environment: ProcessInfo.processInfo.environment)
        options.outputPath = directory + "/server.log"
        let server = try ChildProcess.spawn(options)
        defer { kill(server, SIGTERM) }
        let curl = CurlClient(maximumConcurrency: 4)
        let health = "http://127.0.0.1:\(port)/WebSockets/health"
        while (try? await curl.perform(HTTPClientRequest(url: health)).get().status) != 200 {
            try await Task.sleep(for: .milliseconds(50))
        }
        let baseline = rssKiB(server)

        let recorder = LatencyRecorder(cluster: false)
        var channels: [any Channel] = []
        let started = ContinuousClock.now
        for index in 0..<connections {
            let address = "127.0.0.\(2 + index / 15000)"
            channels.append(
                try await LatencyClient.connect(
                    port: port, cookie: "sid=u\(index + 1)", recorder: recorder, localAddress: address))
        }
        while recorder.authenticatedCount < connections { try await Task.sleep(for: .milliseconds(20)) }
        let connectTime = ContinuousClock.now - started
        try await Task.sleep(for: .seconds(2))
        let loaded = rssKiB(server)
        print("Server: \(binary) (pid \(server)); \(connections) authenticated connections in \(connectTime)")
        print("RSS before: \(baseline) KiB; after: \(loaded) KiB; per idle authenticated connection: \(String(format: "%.2f", Double(loaded - baseline) / Double(connections))) KiB")
        print("")
        print("| broadcasts/s | deliveries/s offered | delivered/s | p50 ms | p99 ms | p99.9 ms | server CPU µs per delivery |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for rate in rates {
            _ = recorder.take()
            let seconds = 5.0
            let total = Int(Double(rate) * seconds)
            let cpuBefore = cpuSeconds(server)
            let start = DispatchTime.now().uptimeNanoseconds
            var sent = 0
            while sent < total {
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                while sent < min(total, Int(elapsed * Double(rate))) {
                    let now = DispatchTime.now().uptimeNanoseconds
                    _ = await curl.perform(
                        HTTPClientRequest(
                            method: "POST", url: "http://127.0.0.1:\(port)/WebSockets/send",
                            headers: [("X-WebSockets-Key", key)], body: Array(#"["b",{"ts":\#(now)},1]"#.utf8)))
                    sent += 1
                }
                try await Task.sleep(for: .milliseconds(2))
            }
            var samples: [UInt64] = []
            let expected = total * connections
            let deadline = ContinuousClock.now + .seconds(15)
            while samples.count < expected && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                samples += recorder.take()
            }
            let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let cpu = cpuSeconds(server) - cpuBefore
            samples.sort()
            func percentile(_ p: Double) -> String {
                guard !samples.isEmpty else { return "-" }
                return String(format: "%.1f", Double(samples[min(samples.count - 1, Int(Double(samples.count) * p))]) / 1e6)
            }
            print(
                "| \(rate) | \(rate * connections) | \(String(format: "%.0f", Double(samples.count) / wall))\(samples.count < expected ? " (\(expected - samples.count) missing)" : "") | \(percentile(0.5)) | \(percentile(0.99)) | \(percentile(0.999)) | \(String(format: "%.2f", cpu * 1e6 / Double(max(samples.count, 1)))) |"
            )
            fflush(nil)
        }
        for channel in channels { channel.close(promise: nil) }
        await curl.shutdown()
        await site.shutdown()
    }

    static func rssKiB(_ pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    static func cpuSeconds(_ pid: pid_t) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let end = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(end, offsetBy: 2)...].split(separator: " ")
        return Double((Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
