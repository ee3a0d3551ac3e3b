import Dispatch
import Foundation
import Logging
import NIOCore
import BenchmarkSupport
import WebSockets

/// Cross-server publish-to-deliver latency on PostgreSQL: two servers in this process, one PostgreSQL, clients on
/// server B, a publisher on server A at fixed rates. Prints a Markdown table.
///
///     swift run -c release --package-path Benchmarks ClusterLatency [rate ...]
@main
struct ClusterLatency {
    static func main() async throws {
        if CommandLine.arguments.dropFirst().first == "pipelined" {
            // depth[@rate]: "8@1000" is 8 in flight, 1,000 sends a second.
            let plan = CommandLine.arguments.dropFirst(2).compactMap { argument -> (depth: Int, rate: Int?)? in
                let parts = argument.split(separator: "@")
                guard let depth = Int(parts[0]) else { return nil }
                return (depth, parts.count > 1 ? Int(parts[1]) : nil)
            }
            try await PipelinedCluster.run(plan: plan.isEmpty ? [(1, nil), (8, 550), (8, 2000), (8, nil)] : plan)
            return
        }
        let rates = CommandLine.arguments.dropFirst().compactMap(Int.init)
        let plan = rates.isEmpty ? [1000, 10000, 20000, 40000] : rates
        let users = 100
        let seconds = 5.0
        var logger = Logger(label: "bench")
        logger.logLevel = .error

        let postgres = try Postgres.start()
        defer { postgres.stop() }
        let key = SecurityKey.generate()
        let site = try await HTTPServer(port: 0) { request in
            guard request.path == "/api/WebSockets/session", let sid = request.cookie("sid"),
                let user = Int64(sid.dropFirst())
            else { return HTTPServerResponse() }
            return .json(["user": .int(user), "session": .string(sid)])
        }
        func server() async throws -> WebSocketsServer {
            var settings = Settings(site: "http://127.0.0.1:\(site.port)", securityKey: key)
            settings.listenPort = 0
            settings.postgres = postgres.url
            settings.messageEndpoint = "none"
            let server = WebSocketsServer(settings: settings, logger: logger)
            try await server.start()
            return server
        }
        let a = try await server()
        let b = try await server()
        let recorder = LatencyRecorder(cluster: true)
        var channels: [any Channel] = []
        for user in 1...users {
            channels.append(try await LatencyClient.connect(port: b.port, cookie: "sid=u\(user)", recorder: recorder))
        }
        while recorder.authenticatedCount < users { try await Task.sleep(for: .milliseconds(10)) }

        print("| offered sends/s | delivered/s | p50 ms | p99 ms | max ms | PostgreSQL CPU | this process CPU |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for rate in plan {
            _ = recorder.take()
            let pgBefore = postgres.cpuSeconds()
            let processBefore = processCPUSeconds()
            let start = DispatchTime.now().uptimeNanoseconds
            let total = Int(Double(rate) * seconds)
            var sent = 0
            while sent < total {
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                let due = min(total, Int(elapsed * Double(rate)))
                while sent < due {
                    let now = Int64(DispatchTime.now().uptimeNanoseconds)
                    a.sendToClients("t", ["ts": .int(now)], .specificUsers, .int(Int64(sent % users + 1)))
                    sent += 1
                }
                try await Task.sleep(for: .milliseconds(1))
            }
            let publishEnd = DispatchTime.now().uptimeNanoseconds
            // Let the stream drain (at most 10 s).
            var samples: [UInt64] = []
            let drainDeadline = ContinuousClock.now + .seconds(10)
            while samples.count < total && ContinuousClock.now < drainDeadline {
                try await Task.sleep(for: .milliseconds(50))
                samples += recorder.take()
            }
            let end = DispatchTime.now().uptimeNanoseconds
            let wall = Double(end - start) / 1e9
            let pgCPU = postgres.cpuSeconds() - pgBefore
            let processCPU = processCPUSeconds() - processBefore
            samples.sort()
            func percentile(_ p: Double) -> String {
                guard !samples.isEmpty else { return "-" }
                let index = min(samples.count - 1, Int(Double(samples.count) * p))
                return String(format: "%.1f", Double(samples[index]) / 1e6)
            }
            let deliveredRate = Double(samples.count) / max(wall, Double(publishEnd - start) / 1e9)
            print(
                "| \(rate) | \(String(format: "%.0f", deliveredRate))\(samples.count < total ? " (\(total - samples.count) late)" : "") | \(percentile(0.5)) | \(percentile(0.99)) | \(percentile(1.0 - 1e-9)) | \(String(format: "%.0f%%", 100 * pgCPU / wall)) | \(String(format: "%.0f%%", 100 * processCPU / wall)) |"
            )
            fflush(nil)
        }
        for channel in channels { try? await channel.close() }
        await a.shutdown()
        await b.shutdown()
        await site.shutdown()
    }

    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}
