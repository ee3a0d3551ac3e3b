import BenchmarkSupport
import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import WebSockets
import WebSocketsLaunch

/// Presence under a reconnect storm: two servers of a cluster (processes of their own, so that 10,000 tabs' two
/// ends fit the descriptor limits) on one PostgreSQL, a site in this process that counts the `User/online` and
/// `User/offline` it is told, and `tabs` tabs of `users` users connecting at once, every user's tabs spread over
/// both servers. Then every tab drops and reconnects to the other server, within the grace: that must tell the site
/// nothing. Prints Markdown.
///
///     ulimit -n $(ulimit -Hn); swift run -c release --package-path Benchmarks PresenceStorm [tabs] [users]
@main
struct PresenceStorm {
    static func main() async throws {
        if CommandLine.arguments.dropFirst().first == "serve" {
            try await serve(Array(CommandLine.arguments.dropFirst(2)))
            return
        }
        let arguments = CommandLine.arguments.dropFirst().compactMap(Int.init)
        let tabs = arguments.first ?? 10_000
        let users = arguments.dropFirst().first ?? 1_000
        var logger = Logger(label: "bench")
        logger.logLevel = .error

        let postgres = try Postgres.start()
        defer { postgres.stop() }
        let key = SecurityKey.generate()
        let heard = NIOLockedValueBox<[String: Int]>([:])
        let site = try await HTTPServer(port: 0) { request in
            if request.path == "/api/WebSockets/message" {
                if let event = try? JSON(parsing: request.body), let name = event["event"]?.stringValue,
                    name.hasPrefix("User/")
                {
                    heard.withLockedValue { $0[name, default: 0] += 1 }
                }
                return HTTPServerResponse()
            }
            guard request.path == "/api/WebSockets/session", let sid = request.cookie("sid"),
                let user = Int64(sid.dropFirst())
            else { return .error(.unauthorized) }
            return .json(["user": .int(user), "session": .string(sid)])
        }
        // Each server in a process of its own, on its own core where there are two.
        var processes: [pid_t] = []
        var ports: [Int] = []
        for index in 0..<2 {
            let port = Int.random(in: 10000...19000)
            var options = ChildProcess.Options(
                executable: "/usr/bin/taskset",
                arguments: [
                    "taskset", "-c", "\(index % max(1, EventLoopSizing.usableCores()))",
                    ChildProcess.currentExecutable() ?? CommandLine.arguments[0], "serve", "\(port)",
                    "http://127.0.0.1:\(site.port)", key, postgres.url,
                ], environment: ProcessInfo.processInfo.environment)
            options.outputPath = NSTemporaryDirectory() + "presence-storm-\(index).log"
            processes.append(try ChildProcess.spawn(options))
            ports.append(port)
        }
        defer { for pid in processes { kill(pid, SIGKILL) } }
        let curl = CurlClient(maximumConcurrency: 2)
        for port in ports {
            while (try? await curl.perform(HTTPClientRequest(url: "http://127.0.0.1:\(port)/WebSockets/health")).get()
                .status) != 200
            {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let query =
            "http://127.0.0.1:%d/WebSockets/presence?users=" + (1...users).map(String.init).joined(separator: ",")
        func complete() async -> Bool {
            for port in ports {
                let request = HTTPClientRequest(
                    url: String(format: query, port), headers: [("X-WebSockets-Key", key)], timeout: .seconds(10))
                guard let body = try? await curl.perform(request).get().body,
                    case .object(let statuses)? = (try? JSON(parsing: body))?["users"]
                else { return false }
                let online = statuses.values.filter { $0["online"] == .bool(true) }.count
                let open = statuses.values.reduce(0) { $0 + Int($1["tabs"]?.intValue ?? 0) }
                guard online == users, open == tabs else { return false }
            }
            return true
        }

        print(
            "| phase | tabs | users | until presence is complete | site told User/online | site told User/offline | PostgreSQL transactions/s |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        func row(_ phase: String, took: Duration?, transactions: Int, seconds: Double) {
            let (online, offline) = heard.withLockedValue { ($0["User/online"] ?? 0, $0["User/offline"] ?? 0) }
            let time =
                took.map {
                    String(format: "%.2f s", Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18)
                } ?? "—"
            print(
                "| \(phase) | \(tabs) | \(users) | \(time) | \(online) | \(offline) | \(String(format: "%.0f", Double(transactions) / seconds)) |"
            )
            fflush(nil)
        }

        // 1. The storm: every tab at once (1,000 upgrades in flight), from several local addresses.
        let recorder = LatencyRecorder(cluster: true)
        func connectAll(shift: Int) async throws -> [any Channel] {
            var channels: [any Channel] = []
            channels.reserveCapacity(tabs)
            try await withThrowingTaskGroup(of: (any Channel).self) { group in
                var next = 0
                func add() {
                    let tab = next
                    next += 1
                    let port = ports[(tab + shift) % 2]
                    let user = tab % users + 1
                    group.addTask {
                        try await LatencyClient.connect(
                            port: port, cookie: "sid=u\(user)", recorder: recorder,
                            localAddress: "127.0.0.\(2 + tab % 50)")
                    }
                }
                while next < min(tabs, 1000) { add() }
                while let channel = try await group.next() {
                    channels.append(channel)
                    if next < tabs { add() }
                }
            }
            return channels
        }
        var before = postgres.transactions()
        var start = ContinuousClock.now
        var channels = try await connectAll(shift: 0)
        while await !complete() || heard.withLockedValue({ $0["User/online"] ?? 0 }) < users {
            try await Task.sleep(for: .milliseconds(20))
        }
        var took = ContinuousClock.now - start
        try await Task.sleep(for: .seconds(1.5))  // pg_stat_database catches up within a second
        var seconds = Double((ContinuousClock.now - start).components.seconds) + 0.5
        row("storm: every tab connects", took: took, transactions: postgres.transactions() - before, seconds: seconds)

        // 2. Steady state: nobody comes or goes for 10 s.
        before = postgres.transactions()
        try await Task.sleep(for: .seconds(10))
        row("steady, 10 s", took: nil, transactions: postgres.transactions() - before, seconds: 10)

        // 3. A reconnect storm: every tab drops and comes back on the other server, within the grace.
        before = postgres.transactions()
        start = ContinuousClock.now
        for channel in channels { channel.close(promise: nil) }
        channels = try await connectAll(shift: 1)
        while await !complete() { try await Task.sleep(for: .milliseconds(20)) }
        took = ContinuousClock.now - start
        try await Task.sleep(for: .seconds(12))  // past the grace: any offline would have been told
        seconds = Double((ContinuousClock.now - start).components.seconds)
        row(
            "reconnect storm to the other server", took: took, transactions: postgres.transactions() - before,
            seconds: seconds)

        // 4. Everyone leaves.
        before = postgres.transactions()
        start = ContinuousClock.now
        for channel in channels { channel.close(promise: nil) }
        while heard.withLockedValue({ $0["User/offline"] ?? 0 }) < users {
            try await Task.sleep(for: .milliseconds(20))
        }
        took = ContinuousClock.now - start
        seconds = Double((ContinuousClock.now - start).components.seconds) + 1
        row(
            "every tab closes (offline after the 10 s grace)", took: took,
            transactions: postgres.transactions() - before, seconds: seconds)

        await curl.shutdown()
        await site.shutdown()
    }

    /// `serve <port> <site> <key> <postgres>`: one server of the cluster, until killed.
    static func serve(_ arguments: [String]) async throws {
        EventLoopSizing.sizeSharedGroup()
        var logger = Logger(label: "bench-server")
        logger.logLevel = .error
        var settings = Settings(site: arguments[1], securityKey: arguments[2])
        settings.listenPort = Int(arguments[0]) ?? 0
        settings.postgres = arguments[3]
        settings.sessionCacheTTL = 60
        let server = WebSocketsServer(settings: settings, logger: logger)
        try await server.start()
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}
