import Dispatch
import Foundation
import BenchmarkSupport
import WebSockets
import WebSocketsLaunch
import NIOCore

/// Issue 29's cluster figures, as users run it: two `websockets start` processes on one PostgreSQL (fsync off, as
/// in the issue's measurement), 100 tabs on server B, each its own user, and one keep-alive publisher connection to
/// server A with `depth` `POST /WebSockets/send` requests in flight, each to one user, round robin. It reports how
/// long each send took to be answered, how long it took to reach its tab on B, and how many sends shared each of
/// A's writes to PostgreSQL.
///
///     Benchmarks/.build/release/ClusterLatency pipelined [depth[@rate] ...]
enum PipelinedCluster {
    /// Runs each `(depth, rate)`: `depth` requests in flight at most, `rate` sends a second at most (`nil`: as
    /// fast as the answers come).
    static func run(plan: [(depth: Int, rate: Int?)]) async throws {
        let users = 100
        let seconds = 5.0
        let postgres = try Postgres.start(fsync: false)
        defer { postgres.stop() }
        let key = SecurityKey.generate()
        // The site checks sessions and takes every event, as a site does.
        let site = try await HTTPServer(port: 0) { request in
            if request.path == "/api/WebSockets/session", let sid = request.cookie("sid"),
                let user = Int64(sid.dropFirst())
            {
                return .json(["user": .int(user), "session": .string(sid)])
            }
            return .json([:])
        }
        let directory = NSTemporaryDirectory() + "websockets-bench-cluster-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var launched: [pid_t] = []
        defer {
            for pid in launched {
                kill(pid, SIGTERM)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
        }
        var ports: [Int] = []
        for index in 0..<2 {
            let port = Int.random(in: 20000...30000) + index
            var options = ChildProcess.Options(
                executable: websocketsExecutable,
                arguments: [
                    "websockets", "start", "http://127.0.0.1:\(site.port)", "--listen-port", "\(port)",
                    "--postgres", postgres.url, "--security-key", key,
                ],
                environment: ProcessInfo.processInfo.environment.merging(["WEBSOCKETS_LOG_LEVEL": "warning"]) {
                    $1
                })
            options.outputPath = directory + "/server\(index).log"
            launched.append(try ChildProcess.spawn(options))
            ports.append(port)
        }
        for port in ports { try await waitUntilUp(port: port) }
        let recorder = LatencyRecorder(cluster: true)
        var channels: [any Channel] = []
        for user in 1...users {
            channels.append(
                try await LatencyClient.connect(port: ports[1], cookie: "sid=u\(user)", recorder: recorder))
        }
        while recorder.authenticatedCount < users { try await Task.sleep(for: .milliseconds(10)) }

        print(
            "| in flight | offered/s | sends/s | answered p50 ms | p99 ms | delivered on B p50 ms | p99 ms | sends per write |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for (depth, rate) in plan {
            _ = recorder.take()
            let writesBefore = try await clusterWrites(port: ports[0])
            let publishPort = ports[0]
            let result = try await Task.detached {
                try PipelinedSocket.publish(
                    port: publishPort, key: key, depth: depth, rate: rate, seconds: seconds, users: users)
            }.value
            var delivered: [UInt64] = []
            let deadline = ContinuousClock.now + .seconds(10)
            while delivered.count < result.sent && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                delivered += recorder.take()
            }
            let writes = try await clusterWrites(port: ports[0]) - writesBefore
            func percentile(_ samples: [UInt64], _ p: Double) -> String {
                let sorted = samples.sorted()
                guard !sorted.isEmpty else { return "-" }
                return String(
                    format: "%.2f", Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1e6)
            }
            let late = result.sent - delivered.count
            print(
                "| \(depth) | \(rate.map(String.init) ?? "max") | \(String(format: "%.0f", Double(result.answers.count) / seconds)) | \(percentile(result.answers, 0.5)) | \(percentile(result.answers, 0.99)) | \(percentile(delivered, 0.5))\(late > 0 ? " (\(late) not seen)" : "") | \(percentile(delivered, 0.99)) | \(String(format: "%.1f", Double(result.sent) / Double(max(1, writes)))) |"
            )
            fflush(nil)
        }
        for channel in channels { try? await channel.close() }
        await site.shutdown()
    }

    /// The `websockets` command under test: `BENCH_WEBSOCKETS`, or the root package's release build.
    static var websocketsExecutable: String {
        if let path = ProcessInfo.processInfo.environment["BENCH_WEBSOCKETS"] { return path }
        let here = FileManager.default.currentDirectoryPath
        let root = FileManager.default.fileExists(atPath: here + "/Benchmarks") ? here : here + "/.."
        return root + "/.build/release/websockets"
    }

    private static func waitUntilUp(port: Int) async throws {
        let curl = CurlClient(maximumConcurrency: 1)
        defer { Task { await curl.shutdown() } }
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? await curl.perform(HTTPClientRequest(url: "http://127.0.0.1:\(port)/WebSockets/health")).get()
            .status) != 200
        {
            guard ContinuousClock.now < deadline else { throw PipelinedSocket.Failure("server on \(port) not up") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private static func clusterWrites(port: Int) async throws -> Int {
        let curl = CurlClient(maximumConcurrency: 1)
        let result = await curl.perform(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"))
        await curl.shutdown()
        let text = String(decoding: try result.get().body, as: UTF8.self)
        let line = text.split(separator: "\n").first { $0.hasPrefix("websockets_cluster_writes_total ") }
        return Int(line?.split(separator: " ").last ?? "0") ?? 0
    }
}

/// One keep-alive connection with `depth` requests in flight, on a thread of its own with blocking reads: each
/// answer read frees a place, and the requests of the places freed by one read leave in one write.
enum PipelinedSocket {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Answer latencies in nanoseconds, and how many sends were written.
    static func publish(port: Int, key: String, depth: Int, rate: Int?, seconds: Double, users: Int) throws -> (
        answers: [UInt64], sent: Int
    ) {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw Failure("socket") }
        defer { close(socket) }
        var one: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure("connect") }
        var sentAt: [UInt64] = []
        var answers: [UInt64] = []
        func request(_ index: Int) -> [UInt8] {
            let body = #"["t",{"ts":\#(DispatchTime.now().uptimeNanoseconds)},3,\#(index % users + 1)]"#
            return Array(
                ("POST /WebSockets/send HTTP/1.1\r\nHost: 127.0.0.1\r\nX-WebSockets-Key: \(key)\r\n"
                    + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)").utf8)
        }
        func send(_ count: Int) throws {
            var bytes: [UInt8] = []
            for _ in 0..<count {
                bytes += request(sentAt.count)
                sentAt.append(DispatchTime.now().uptimeNanoseconds)
            }
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { write(socket, $0.baseAddress, $0.count) }
                guard written > 0 else { throw Failure("write") }
                offset += written
            }
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let end = start + UInt64(seconds * 1e9)
        /// What the rate and the depth allow now.
        func allowed() -> Int {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < end else { return 0 }
            let room = depth - (sentAt.count - answers.count)
            guard let rate else { return room }
            let due = Int(Double(now - start) / 1e9 * Double(rate)) + 1
            return max(0, min(room, due - sentAt.count))
        }
        try send(allowed())
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while answers.count < sentAt.count || DispatchTime.now().uptimeNanoseconds < end {
            if rate != nil {
                // Paced: wait for an answer at most until the next send is due.
                var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
                if poll(&descriptor, 1, 1) == 0 {
                    try send(allowed())
                    continue
                }
            }
            let count = chunk.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
            guard count > 0 else { throw Failure("the server closed the connection") }
            buffer += chunk[0..<count]
            var freed = 0
            while let headEnd = buffer.firstRange(of: [13, 10, 13, 10]) {
                let head = String(decoding: buffer[..<headEnd.lowerBound], as: UTF8.self)
                guard head.hasPrefix("HTTP/1.1 202") else { throw Failure("answer: \(head)") }
                let length =
                    head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                guard buffer.count >= headEnd.upperBound + length else { break }
                buffer.removeFirst(headEnd.upperBound + length)
                answers.append(DispatchTime.now().uptimeNanoseconds - sentAt[answers.count])
                freed += 1
            }
            if freed > 0 { try send(allowed()) }
        }
        return (answers, sentAt.count)
    }
}
