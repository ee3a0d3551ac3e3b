import Foundation
import WebSockets
import WebSocketsLaunch

/// A real PostgreSQL from Debian's packages, in a temporary data directory on a loopback port. It refuses to run as
/// root, so when the tests are root it runs as the `postgres` user.
final class PostgresServer: Sendable {
    let port: Int
    let directory: String
    private let binaries: String
    /// The `-c` options it starts with.
    private let settings: String
    /// The certificates of a server started with TLS on.
    let certificates: TestCertificates?

    /// A server with TLS on when `tls` (a certificate for `localhost` only, signed by a root the test makes).
    /// Starts one; `settings` are passed to the server as `-c name=value`.
    static func start(tls: Bool = false, settings: [String: String] = [:]) async throws -> PostgresServer {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let version = versions.sorted().last else {
            throw TestWebSocket.Failure(description: "PostgreSQL is not installed (apt-get install postgresql)")
        }
        let binaries = "/usr/lib/postgresql/\(version)/bin"
        let directory = NSTemporaryDirectory() + "websockets-pg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificates =
            tls ? try await TestCertificates.make(directory: directory + "/tls", names: ["localhost"]) : nil
        let server = PostgresServer(
            port: try ServerProcess.freePort(), directory: directory, binaries: binaries, certificates: certificates,
            settings: settings.sorted { $0.key < $1.key }.map { " -c \($0.key)=\($0.value)" }.joined())
        if getuid() == 0 { try await server.shell("chown -R postgres:postgres \(directory)", asPostgres: false) }
        try await server.shell("\(binaries)/initdb -D \(directory)/data -U postgres --auth=trust -E UTF8 >/dev/null")
        try await server.start()
        return server
    }

    private init(
        port: Int, directory: String, binaries: String, certificates: TestCertificates?, settings: String
    ) {
        self.certificates = certificates
        self.settings = settings
        self.port = port
        self.directory = directory
        self.binaries = binaries
    }

    /// The server's URL, with libpq's `connect_timeout` a generous margin scaled by the tests' patience: under
    /// ThreadSanitizer, with both cores busy, a connection to PostgreSQL on loopback took over the 2 s a server waits
    /// by default, and so did one in CI's plain run at the suite's start (PresenceClusterTests, with the other
    /// suites starting beside it). It only bounds how long a failure takes to show.
    var url: String {
        "postgres://postgres@127.0.0.1:\(port)/postgres?connect_timeout=\(Int(10 * TestPatience.factor))"
    }

    func start() async throws {
        let tls =
            certificates.map { " -c ssl=on -c ssl_cert_file=\($0.serverCertificate) -c ssl_key_file=\($0.serverKey)" }
            ?? ""
        try await shell(
            "\(binaries)/pg_ctl -D \(directory)/data -l \(directory)/log -w -o \"-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off\(tls)\(settings)\" start >/dev/null"
        )
    }

    func stop() async throws {
        try await shell("\(binaries)/pg_ctl -D \(directory)/data -m fast -w stop >/dev/null")
    }

    /// What the server has logged so far.
    var log: String {
        (try? String(contentsOfFile: directory + "/log", encoding: .utf8)) ?? ""
    }

    /// Runs SQL with psql; its output, tuples only.
    @discardableResult
    func psql(_ sql: String) async throws -> String {
        let escaped = sql.replacingOccurrences(of: "'", with: "'\\''")
        return try await shell(
            "PGSSLMODE=disable psql -X -q -t -A -h 127.0.0.1 -p \(port) -U postgres -d postgres -c '\(escaped)'",
            asPostgres: false)
    }

    /// A transaction that runs `sql` (a `LOCK TABLE`, say) and stays open until the returned release is called:
    /// the lock is held for as long as the test needs, whatever the machine's speed, not for a guessed time. Returns
    /// once `sql` has run; the release commits and returns when psql has ended.
    func holding(_ sql: String) async throws -> @Sendable () async throws -> Void {
        let marks = NSTemporaryDirectory() + "websockets-lock-\(UUID().uuidString)"
        let script = """
            BEGIN;
            \(sql);
            \\! touch \(marks).held
            \\! while [ ! -e \(marks).release ]; do sleep 0.02; done
            COMMIT;
            """
        try script.write(toFile: marks + ".sql", atomically: true, encoding: .utf8)
        // `.ended` tells the wait below that psql stopped before taking the lock (bad SQL): its error is thrown then.
        let session = Task {
            try await shell(
                "PGSSLMODE=disable psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p \(port) -U postgres -d postgres -f \(marks).sql; status=$?; touch \(marks).ended; exit $status",
                asPostgres: false)
        }
        let files = FileManager.default
        while !files.fileExists(atPath: marks + ".held") {
            if files.fileExists(atPath: marks + ".ended") {
                _ = try await session.value
                throw TestWebSocket.Failure(description: "psql ended without running \(sql)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return {
            files.createFile(atPath: marks + ".release", contents: nil)
            defer {
                for suffix in [".sql", ".held", ".release", ".ended"] { try? files.removeItem(atPath: marks + suffix) }
            }
            _ = try await session.value
        }
    }

    func shutdown() {
        // Immediate: the test is over, nothing needs to be flushed.
        // Waits here (a defer cannot await): an immediate stop takes a few milliseconds.
        let pid = try? Self.spawnShell(
            "\(binaries)/pg_ctl -D \(directory)/data -m immediate -w stop >/dev/null", asPostgres: true,
            outputPath: "/dev/null")
        var status: Int32 = 0
        if let pid { while waitpid(pid, &status, 0) == -1 && errno == EINTR {} }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs a shell command; its output goes through a file. It is started with the project's own posix_spawn
    /// (which passes no descriptor beyond 0–2) rather than Foundation's Process, whose end the daemon that pg_ctl
    /// starts would otherwise keep waiting.
    @discardableResult
    func shell(_ command: String, asPostgres: Bool = true) async throws -> String {
        try await Self.shell(command, asPostgres: asPostgres)
    }

    /// Runs a shell command (as the `postgres` user when `asPostgres` and the tests are root); its output.
    @discardableResult
    static func shell(_ command: String, asPostgres: Bool = false) async throws -> String {
        let outputPath = NSTemporaryDirectory() + "websockets-sh-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let pid = try spawnShell(command, asPostgres: asPostgres, outputPath: outputPath)
        // Polled, not waited for: a blocking wait holds one of the threads that run the suite's tasks (two here),
        // and two of them (initdb, pg_ctl) stalled every test for 5 s in CI.
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid || (result == -1 && errno != EINTR) { break }
            do { try await Task.sleep(for: .milliseconds(10)) } catch { await Task.yield() }
        }
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw TestWebSocket.Failure(description: "\(command) failed: \(text)")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts `/bin/sh -c command` (as `postgres` when `asPostgres` and the tests are root), its output to a file.
    private static func spawnShell(_ command: String, asPostgres: Bool, outputPath: String) throws -> pid_t {
        let quoted = command.replacingOccurrences(of: "'", with: "'\\''")
        let line = asPostgres && getuid() == 0 ? "runuser -u postgres -- sh -c '\(quoted)'" : command
        let options = ChildProcess.Options(
            executable: "/bin/sh", arguments: ["/bin/sh", "-c", "(\(line)) > \(outputPath) 2>&1"],
            environment: ProcessInfo.processInfo.environment)
        return try ChildProcess.spawn(options)
    }
}
