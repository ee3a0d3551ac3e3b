import Foundation
import WebSockets
import WebSocketsLaunch

/// A throwaway PostgreSQL in a temporary directory (as the postgres user when run as root).
public struct Postgres: Sendable {
    public let directory: String
    public let port: Int
    let binaries: String

    public var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    /// Starts one; `fsync: false` as the issues' cluster figures were measured (commits cost no disk flush).
    public static func start(fsync: Bool = true) throws -> Postgres {
        let version = try FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql").sorted().last ?? "15"
        let directory = NSTemporaryDirectory() + "websockets-bench-pg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let postgres = Postgres(
            directory: directory, port: Int.random(in: 40000...50000), binaries: "/usr/lib/postgresql/\(version)/bin")
        if getuid() == 0 { try run("chown -R postgres:postgres \(directory)", asPostgres: false) }
        try run("\(postgres.binaries)/initdb -D \(directory)/data -U postgres --auth=trust >/dev/null")
        try run(
            "\(postgres.binaries)/pg_ctl -D \(directory)/data -l \(directory)/log -w -o \"-p \(postgres.port) -k \(directory) -c listen_addresses=127.0.0.1\(fsync ? "" : " -c fsync=off")\" start >/dev/null"
        )
        return postgres
    }

    public func stop() {
        try? Postgres.run("\(binaries)/pg_ctl -D \(directory)/data -m immediate -w stop >/dev/null")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// CPU seconds used so far by the postmaster and its children (the backends).
    public func cpuSeconds() -> Double {
        guard let pidText = try? String(contentsOfFile: "\(directory)/data/postmaster.pid", encoding: .utf8),
            let postmaster = Int32(pidText.split(separator: "\n").first ?? "")
        else { return 0 }
        var ticks = 0
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let end = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(end, offsetBy: 2)...].split(separator: " ")
            guard fields.count > 13, let parent = Int32(fields[1]) else { continue }
            if pid == postmaster || parent == postmaster {
                ticks += (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
            }
        }
        return Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func run(_ command: String, asPostgres: Bool = true) throws {
        let line =
            asPostgres && getuid() == 0
            ? "runuser -u postgres -- sh -c '\(command.replacingOccurrences(of: "'", with: "'\\''"))'" : command
        let pid = try ChildProcess.spawn(
            ChildProcess.Options(
                executable: "/bin/sh", arguments: ["/bin/sh", "-c", line],
                environment: ProcessInfo.processInfo.environment))
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        guard status == 0 else { throw CommandFailure(command: command) }
    }
}

extension Postgres {
    /// The value of one SQL query, as psql prints it (tuples only), run without TLS from this machine.
    public func query(_ sql: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        process.arguments = [
            "-X", "-q", "-t", "-A", "-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-d", "postgres", "-c", sql,
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["PGSSLMODE"] = "disable"
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CommandFailure(command: sql) }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Transactions committed or rolled back in the `postgres` database so far (each statement outside a
    /// transaction is one); PostgreSQL updates it within a second of the work.
    public func transactions() -> Int {
        Int((try? query("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'postgres'")) ?? "")
            ?? 0
    }
}

/// A shell command that did not succeed.
struct CommandFailure: Error {
    let command: String
}
