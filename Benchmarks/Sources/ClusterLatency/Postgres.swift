import Foundation
import WebSockets

/// A throwaway PostgreSQL in a temporary directory (as the postgres user when run as root).
struct Postgres {
    let directory: String
    let port: Int
    let binaries: String

    var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    static func start() throws -> Postgres {
        let version = try FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql").sorted().last ?? "15"
        let directory = NSTemporaryDirectory() + "websockets-bench-pg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let postgres = Postgres(
            directory: directory, port: Int.random(in: 40000...50000), binaries: "/usr/lib/postgresql/\(version)/bin")
        if getuid() == 0 { try run("chown -R postgres:postgres \(directory)", asPostgres: false) }
        try run("\(postgres.binaries)/initdb -D \(directory)/data -U postgres --auth=trust >/dev/null")
        try run(
            "\(postgres.binaries)/pg_ctl -D \(directory)/data -l \(directory)/log -w -o \"-p \(postgres.port) -k \(directory) -c listen_addresses=127.0.0.1\" start >/dev/null"
        )
        return postgres
    }

    func stop() {
        try? Postgres.run("\(binaries)/pg_ctl -D \(directory)/data -m immediate -w stop >/dev/null")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// CPU seconds used so far by the postmaster and its children (the backends).
    func cpuSeconds() -> Double {
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

/// A shell command that did not succeed.
struct CommandFailure: Error {
    let command: String
}
