import Foundation
import WebSockets
import WebSocketsLaunch

/// A server under test: how to start it (pinned to core 0), where its clients connect, and how to publish to it.
struct Peer {
    enum Kind: String, CaseIterable {
        /// `websockets start` against the generator's site, which receives every event: the mode users run.
        case ours = "WebSockets (ours)"
        /// `websockets start` with `message_endpoint none`: the site gets no events (the figure earlier tables gave).
        case oursWithoutEvents = "WebSockets (ours, message_endpoint none)"
        case ws = "Node ws"
        case socketIO = "Socket.IO"
        case nchan = "Nchan"
        case nioFloor = "SwiftNIO floor"
    }

    let kind: Kind
    let port: Int
    /// The process whose CPU time and RSS are measured (for nginx, its one worker).
    var pid: pid_t
    private let launched: pid_t
    let directory: String

    var dialect: Subscriber.Dialect {
        switch kind {
        case .ours, .oursWithoutEvents, .ws, .nioFloor: return .webSockets
        case .socketIO: return .socketIO
        case .nchan: return .plain
        }
    }
    /// Whether it answers `echo` messages (ours through the site, whose answer carries the reply).
    var echoes: Bool { kind == .ours || kind == .ws || kind == .socketIO }

    /// Starts a peer.
    static func start(_ kind: Kind, siteURL: String, key: String, core: String) async throws -> Peer {
        // Below the ephemeral range (32768 and up): a port that a closed client left in TIME_WAIT cannot be listened on.
        let port = Int.random(in: 10000...19000)
        let directory = NSTemporaryDirectory() + "websockets-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        var command: [String]
        switch kind {
        case .ours, .oursWithoutEvents:
            // The release build of the root package's command (`Benchmarks/run.sh` builds it), as users run it.
            command = [websocketsExecutable, "start", siteURL, "--settings", directory + "/websockets.json"]
            environment["WEBSOCKETS_SECURITY_KEY"] = key
            environment["WEBSOCKETS_LISTEN_PORT"] = "\(port)"
            environment["WEBSOCKETS_LOG_LEVEL"] = "warning"
            // The echo scenario keeps 100 connections with one message in flight each (about 500 a second each): far
            // over the default per-connection rate (100/s, burst 200), which would answer most of them 429 and
            // measure the limit instead (5,198 echoes/s in the first run with it).
            environment["WEBSOCKETS_MESSAGE_RATE"] = "1000000"
            environment["WEBSOCKETS_MESSAGE_BURST"] = "1000000"
            if kind == .oursWithoutEvents { environment["WEBSOCKETS_MESSAGE_ENDPOINT"] = "none" }
            // For profiling: BENCH_PROFILER="valgrind --tool=massif" runs our server under it.
            if let profiler = environment["BENCH_PROFILER"] {
                command = profiler.split(separator: " ").map(String.init) + command
            }
        case .nioFloor:
            command = [ChildProcess.currentExecutable() ?? CommandLine.arguments[0], "serve-nio-floor", "\(port)"]
        case .socketIO:
            command = ["/usr/bin/python3", peersDirectory + "/socketio-hub.py", "\(port)"]
        case .ws:
            environment["NODE_PATH"] = "/usr/share/nodejs"
            command = ["/usr/bin/node", peersDirectory + "/ws-hub.js", "\(port)"]
        case .nchan:
            let template = try String(contentsOfFile: peersDirectory + "/nchan.conf.template", encoding: .utf8)
            let config = template.replacingOccurrences(of: "@DIR@", with: directory)
                .replacingOccurrences(of: "@PORT@", with: "\(port)")
            try config.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
            command = ["/usr/sbin/nginx", "-c", directory + "/nginx.conf", "-p", directory]
        }
        var options = ChildProcess.Options(
            executable: "/usr/bin/taskset", arguments: ["taskset", "-c", core] + command, environment: environment)
        options.outputPath = directory + "/server.log"
        let launched = try ChildProcess.spawn(options)
        var peer = Peer(kind: kind, port: port, pid: launched, launched: launched, directory: directory)
        let curl = CurlClient(maximumConcurrency: 1)
        defer { Task { await curl.shutdown() } }
        let health = "http://127.0.0.1:\(port)" + (kind == .nchan ? "/health" : "/WebSockets/health")
        // Under a profiler (valgrind runs the server ~50× slower) starting takes far longer.
        let deadline = ContinuousClock.now + .seconds(environment["BENCH_PROFILER"] == nil ? 20 : 300)
        while (try? await curl.perform(HTTPClientRequest(url: health)).get().status) != 200 {
            guard ContinuousClock.now < deadline else { throw BenchmarkError("\(kind.rawValue) did not start") }
            try await Task.sleep(for: .milliseconds(50))
        }
        if kind == .nchan, let worker = childProcesses(of: launched).first { peer.pid = worker }
        return peer
    }

    func stop() {
        kill(launched, SIGTERM)
        var status: Int32 = 0
        waitpid(launched, &status, 0)
    }

    /// The URL path a client of user `user`, tab `tab` connects to.
    func path(user: Int) -> String {
        switch kind {
        case .nchan: return "/sub/u\(user)"
        case .socketIO: return "/socket.io/?EIO=4&transport=websocket"
        default: return "/WebSockets"
        }
    }

    /// The request publishing `text` to everyone (`user` nil) or to one user.
    func publish(_ message: String, user: Int?, key: String) -> HTTPClientRequest {
        switch kind {
        case .nchan:
            return HTTPClientRequest(
                method: "POST", url: "http://127.0.0.1:\(port)/pub/\(user.map { "u\($0)" } ?? "all")",
                body: Array(message.utf8), timeout: publishTimeout)
        case .ours, .oursWithoutEvents, .ws, .nioFloor, .socketIO:
            let send = "[" + message.dropFirst().dropLast() + (user.map { ",3,\($0)]" } ?? ",1]")
            return HTTPClientRequest(
                method: "POST", url: "http://127.0.0.1:\(port)/WebSockets/send",
                headers: [("X-WebSockets-Key", key)], body: Array(send.utf8), timeout: publishTimeout)
        }
    }

    /// Long enough for a slow peer's broadcast to 10,000 (Socket.IO's Python server takes seconds), so that it is
    /// measured slow rather than failed.
    private var publishTimeout: Duration { .seconds(30) }

    /// The value of `name` in the server's `/metrics` (ours), the first sample of that name.
    func metric(_ name: String, curl: CurlClient) async -> Double? {
        let request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics")
        guard let response = try? await curl.perform(request).get(), response.status == 200 else { return nil }
        let text = String(decoding: response.body, as: UTF8.self)
        let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
        return line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
    }

    var rssKiB: Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    var cpuSeconds: Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(end, offsetBy: 2)...].split(separator: " ")
        return Double((Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Write system calls made so far (`syscw` in /proc/<pid>/io: write and writev alike).
    var writeCalls: Int {
        let io = (try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8)) ?? ""
        let line = io.split(separator: "\n").first { $0.hasPrefix("syscw:") } ?? ""
        return Int(line.split(separator: " ").last ?? "0") ?? 0
    }

    static func childProcesses(of parent: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let end = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(end, offsetBy: 2)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == parent
        }
    }

    /// The `websockets` command under test: `BENCH_WEBSOCKETS`, or the root package's release build.
    static var websocketsExecutable: String {
        if let path = ProcessInfo.processInfo.environment["BENCH_WEBSOCKETS"] { return path }
        let peers = URL(fileURLWithPath: peersDirectory)
        return peers.deletingLastPathComponent().deletingLastPathComponent().path + "/.build/release/websockets"
    }

    /// `Benchmarks/peers`, found from the working directory (the run script starts the generator in Benchmarks).
    static var peersDirectory: String {
        let here = FileManager.default.currentDirectoryPath
        for candidate in [here + "/peers", here + "/Benchmarks/peers"]
        where FileManager.default.fileExists(atPath: candidate + "/ws-hub.js") {
            return candidate
        }
        return here + "/peers"
    }
}

struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
