import Foundation
import NIOCore
import NIOPosix
import WebSockets

/// The built `websockets` executable, run as a real process.
final class ServerProcess: @unchecked Sendable {
    // @unchecked: the Process and pipes are set up before the tests read them, then only read.
    let process: Process
    let output: Pipe
    let directory: String

    static var executable: URL {
        let fromTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var candidates = [fromTests.appendingPathComponent("websockets")]
        if fromTests.lastPathComponent.hasSuffix(".xctest") {
            candidates.append(fromTests.deletingLastPathComponent().appendingPathComponent("websockets"))
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/websockets"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
    }

    /// A free port on loopback (bound, read, released), below the kernel's ephemeral range (32768 and up here):
    /// a port picked from that range could be taken by one of the suite's many client sockets before the process
    /// binds it, and a server process once never came up in CI.
    static func freePort() throws -> Int {
        var lastError: (any Error)?
        for _ in 0..<50 {
            let port = Int.random(in: 20_000..<32_000)
            do {
                let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .bind(host: "127.0.0.1", port: port).wait()
                try channel.close().wait()
                return port
            } catch {
                lastError = error
            }
        }
        throw lastError!
    }

    /// Starts `websockets <arguments>` in `directory`.
    init(
        _ arguments: [String], directory: String, environment: [String: String] = [:], captureErrors: Bool = false,
        executable: String? = nil
    ) throws {
        self.directory = directory
        process = Process()
        process.executableURL = executable.map { URL(fileURLWithPath: $0) } ?? Self.executable
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var merged = ProcessInfo.processInfo.environment
        // Generous waits for the site, scaled by the tests' patience (variables lose to the flags a test of those
        // timeouts gives; no test sets them in a settings file, which variables would win over): under
        // ThreadSanitizer with both cores busy a session answer took over 5 s, and in the suite's first seconds on
        // 2026-12-08 one took over 5 s without a sanitizer (`anUnprivilegedServerServes`: 503).
        merged["WEBSOCKETS_SITE_TIMEOUT"] = "\(30 * TestPatience.factor)"
        merged["WEBSOCKETS_AUTHENTICATION_TIMEOUT"] = "\(30 * TestPatience.factor)"
        for (name, value) in environment { merged[name] = value }
        process.environment = merged
        output = Pipe()
        process.standardOutput = output
        process.standardError = captureErrors ? output : FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
    }

    /// Runs `websockets <arguments>` to its end; its exit status and standard output.
    static func run(_ arguments: [String], directory: String) async throws -> (status: Int32, output: String) {
        try await ServerProcess(arguments, directory: directory).finish()
    }

    /// Waits for the end of the process; its exit status and what it wrote. The pipe is read as it fills and never
    /// to its end (a process the command left behind could hold it open forever), and the wait does not hold a
    /// thread: the suite's tasks run on as many threads as there are cores (two here), and two blocking waits
    /// stalled every test for 5 s in CI.
    ///
    /// A process still running after `limit` is killed (SIGKILL, status 9 then): a test must fail, not hang the
    /// suite (a server that did not end after SIGTERM once kept CI waiting until its 90 minutes were up).
    func finish(within limit: Duration = .seconds(60)) async -> (status: Int32, output: String) {
        let descriptor = output.fileHandleForReading.fileDescriptor
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        func drain() {
            while true {
                let count = read(descriptor, &buffer, buffer.count)
                if count <= 0 { return }
                data += buffer[0..<count]
            }
        }
        await process.exited(within: limit, while: drain)
        drain()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Kills the process if a failed test left it running.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// `(ppid, session id)` of a process, from /proc.
    static func parentAndSession(of pid: Int32) -> (parent: Int32, session: Int32)? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(end, offsetBy: 2)...].split(separator: " ")
        guard fields.count > 3, let parent = Int32(fields[1]), let session = Int32(fields[3]) else { return nil }
        return (parent, session)
    }

    /// Whether a process with this id exists (and is not a zombie).
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(end, offsetBy: 2)] != "Z"
    }

    /// The children of `pid`, zombies included (a zombie's command line is empty: it is found by its parent).
    static func children(of pid: Int32) -> [(pid: Int32, zombie: Bool)] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> (Int32, Bool)? in
            guard let child = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let end = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(end, offsetBy: 2)...].split(separator: " ")
            guard fields.count > 1, Int32(fields[1]) == pid else { return nil }
            return (child, fields[0] == "Z")
        }
    }

    /// The arguments of every process whose command line contains `text`.
    static func commandLines(containing text: String) -> [(pid: Int32, arguments: [String])] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> (Int32, [String])? in
            guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
            else { return nil }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return arguments.contains(text) && isAlive(pid) ? (pid, arguments) : nil
        }
    }

    /// The memory a process holds now and at most so far, in KiB (`VmRSS`, `VmHWM`).
    static func memory(of pid: Int32) throws -> (now: Int, peak: Int) {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func field(_ name: String) -> Int {
            let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "websockets-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

extension Process {
    /// Waits for the end of the process without holding a thread, killing it after `limit` (see
    /// ``ServerProcess/finish(within:)``).
    func exited(within limit: Duration = .seconds(60), while waiting: () -> Void = {}) async {
        let deadline = ContinuousClock.now + limit
        while isRunning {
            waiting()
            if ContinuousClock.now > deadline {
                kill(processIdentifier, SIGKILL)
                waitUntilExit()
                return
            }
            await pause()
        }
    }
}

/// 10 ms, or no pause once the task is cancelled (so that a cancelled wait still ends, by polling).
private func pause() async {
    do { try await Task.sleep(for: .milliseconds(10)) } catch { await Task.yield() }
}
