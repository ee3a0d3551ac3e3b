import Foundation
import WebSockets
import WebSocketsLaunch

/// A server under test: how to start it (pinned to core 0), where its clients connect, and how to publish to it.
struct Peer {
    enum Kind: String, CaseIterable {
        case ours = "WebSockets (ours)"
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
        case .ours, .ws, .nioFloor: return .webSockets
        case .socketIO: return .socketIO
        case .nchan: return .plain
        }
    }
    /// Whether it has an in-process echo handler.
    var echoes: Bool { kind == .ours || kind == .ws || kind == .socketIO }

    /// Starts a peer; `siteEvents`: ours posts its events to the site's message endpoint (else in-process only).
    static func start(
        _ kind: Kind, siteURL: String, key: String, core: String, siteEvents: Bool = false
    ) async throws -> Peer {
        // Below the ephemeral range (32768 and up): a port that a closed client left in TIME_WAIT cannot be listened on.
        let port = Int.random(in: 10000...19000)
        let directory = NSTemporaryDirectory() + "websockets-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        var command: [String]
        switch kind {
        case .ours:
            let me = ChildProcess.currentExecutable() ?? CommandLine.arguments[0]
            command = [me, "serve", "\(port)", siteURL, key] + (siteEvents ? ["site-events"] : [])
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
        case .ours, .ws, .nioFloor, .socketIO:
            let send = "[" + message.dropFirst().dropLast() + (user.map { ",3,\($0)]" } ?? ",1]")
            return HTTPClientRequest(
                method: "POST", url: "http://127.0.0.1:\(port)/WebSockets/send",
                headers: [("X-WebSockets-Key", key)], body: Array(send.utf8), timeout: publishTimeout)
        }
    }

    /// Long enough for a slow peer's broadcast to 10,000 (Socket.IO's Python server takes seconds), so that it is
    /// measured slow rather than failed.
    private var publishTimeout: Duration { .seconds(30) }

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
