import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// TLS to PostgreSQL as libpq users expect it, against a real PostgreSQL with `ssl = on` and certificates made by
/// the test, with the real `websockets` binary.
@Suite(.serialized) struct PostgresTLSTests {
    /// What became of one `websockets start`: whether it came up, how many of PostgreSQL's connections were
    /// encrypted while it ran, and what it printed.
    struct Outcome {
        var started: Bool
        var encryptedConnections: Int
        var status: Int32?
        var output: String
    }

    private func start(_ postgres: PostgresServer, url: String, extra: [String] = []) async throws -> Outcome {
        let directory = try ServerProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = try ServerProcess.freePort()
        let process = try ServerProcess(
            ["start", "http://127.0.0.1:1", "--listen-port", "\(port)", "--security-key", "tls-key", "--postgres", url]
                + extra, directory: directory, captureErrors: true)
        defer { process.stop() }
        let health = "http://127.0.0.1:\(port)/WebSockets/health"
        let client = CurlClient(maximumConcurrency: 1)
        var started = false
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline && process.process.isRunning {
            if (try? await client.perform(HTTPClientRequest(url: health, timeout: .seconds(1))).get().status) == 200 {
                started = true
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        await client.shutdown()
        var encrypted = 0
        if started {
            // The test's psql connects without TLS: the encrypted connections are the server's.
            encrypted = Int(try await postgres.psql("SELECT count(*) FROM pg_stat_ssl WHERE ssl")) ?? 0
            kill(process.process.processIdentifier, SIGTERM)
        }
        let (_, output) = await process.finish()
        return Outcome(
            started: started, encryptedConnections: encrypted,
            status: started ? nil : process.process.terminationStatus, output: output)
    }

    @Test func everySSLModeDoesWhatLibpqDoes() async throws {
        let postgres = try await PostgresServer.start(tls: true)
        defer { postgres.shutdown() }
        let certificates = try #require(postgres.certificates)
        let base = "postgres://postgres@localhost:\(postgres.port)/postgres"

        // libpq's default, prefer: TLS when offered.
        let preferred = try await start(postgres, url: base)
        #expect(preferred.started, "\(preferred.output)")
        #expect(preferred.encryptedConnections > 0)

        let required = try await start(postgres, url: base + "?sslmode=require")
        #expect(required.started, "\(required.output)")
        #expect(required.encryptedConnections > 0)

        let disabled = try await start(postgres, url: base + "?sslmode=disable")
        #expect(disabled.started, "\(disabled.output)")
        #expect(disabled.encryptedConnections == 0)

        let verified = try await start(postgres, url: base + "?sslmode=verify-full&sslrootcert=\(certificates.root)")
        #expect(verified.started, "\(verified.output)")
        #expect(verified.encryptedConnections > 0)

        // The settings give the mode and root where the URL is silent.
        let fromSettings = try await start(
            postgres, url: base,
            extra: ["--postgres-sslmode", "verify-full", "--postgres-sslrootcert", certificates.root])
        #expect(fromSettings.started, "\(fromSettings.output)")
        #expect(fromSettings.encryptedConnections > 0)

        let wrongRoot = try await start(
            postgres, url: base + "?sslmode=verify-full&sslrootcert=\(certificates.otherRoot)")
        #expect(!wrongRoot.started)
        #expect(wrongRoot.status != 0)
        #expect(
            wrongRoot.output.contains(
                "PostgreSQL at localhost:\(postgres.port): its TLS certificate is not signed by sslrootcert \(certificates.otherRoot)"
            ), "\(wrongRoot.output)")

        // The certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca does not look at the name.
        let ipBase = "postgres://postgres@127.0.0.1:\(postgres.port)/postgres"
        let wrongHost = try await start(
            postgres, url: ipBase + "?sslmode=verify-full&sslrootcert=\(certificates.root)")
        #expect(!wrongHost.started)
        #expect(
            wrongHost.output.contains("its TLS certificate does not name host \"127.0.0.1\""), "\(wrongHost.output)")
        let anyHost = try await start(postgres, url: ipBase + "?sslmode=verify-ca&sslrootcert=\(certificates.root)")
        #expect(anyHost.started, "\(anyHost.output)")

        // A verifying mode without a root says where one is expected, as libpq does.
        let noRoot = try await start(postgres, url: base + "?sslmode=verify-full")
        #expect(!noRoot.started)
        #expect(noRoot.status == 2)
        #expect(noRoot.output.contains("give sslrootcert=<file>"), "\(noRoot.output)")
    }

    @Test func requireAgainstAServerWithoutTLSDoesNotStart() async throws {
        let postgres = try await PostgresServer.start()
        defer { postgres.shutdown() }
        let outcome = try await start(postgres, url: postgres.url + "&sslmode=require")
        #expect(!outcome.started)
        #expect(outcome.status != 0)
        #expect(
            outcome.output.contains(
                "PostgreSQL at 127.0.0.1:\(postgres.port) does not offer TLS, and sslmode=require requires it"),
            "\(outcome.output)")
        // prefer falls back to plain text there.
        let preferred = try await start(postgres, url: postgres.url)
        #expect(preferred.started, "\(preferred.output)")
    }

    @Test func theURLsTLSParametersAreReadAsLibpqReadsThem() throws {
        let plain = try PostgresURL(parsing: "postgres://u:p@db.example:6543/app")
        #expect(plain.sslMode == .prefer)
        #expect(plain.endpoint == "db.example:6543")
        let given = try PostgresURL(
            parsing: "postgresql://db.example/app?sslmode=verify-ca&sslrootcert=/r.pem", defaultMode: "disable",
            defaultRootCert: "/other.pem")
        #expect(given.sslMode == .verifyCA)
        #expect(given.sslRootCert == "/r.pem")
        let defaulted = try PostgresURL(parsing: "postgres://db.example/app", defaultMode: "require")
        #expect(defaulted.sslMode == .require)
        #expect(defaulted.verification == .none)
        // libpq: require with a root given checks the chain, as verify-ca.
        let rooted = try PostgresURL(parsing: "postgres://db.example/app?sslmode=require&sslrootcert=/r.pem")
        #expect(rooted.verification == .noHostnameVerification)
        #expect(try PostgresURL(parsing: "postgres://h/d?sslmode=verify-full").verification == .fullVerification)
        #expect(throws: SettingsError.self) { try PostgresURL(parsing: "postgres://h/d?sslmode=maybe") }
        #expect(throws: SettingsError.self) { try PostgresURL(parsing: "postgres://h/d?sslcert=/c.pem") }
        #expect(throws: SettingsError.self) { try PostgresURL(parsing: "mysql://h/d") }
        // libpq's connect_timeout: whole seconds, 1 read as 2; 2 where the URL is silent; never without a limit.
        #expect(plain.connectTimeout == 2)
        #expect(try PostgresURL(parsing: "postgres://h/d?connect_timeout=9").connectTimeout == 9)
        #expect(try PostgresURL(parsing: "postgres://h/d?connect_timeout=1").connectTimeout == 2)
        #expect(
            try PostgresURL(parsing: "postgres://h/d?connect_timeout=9").connectionConfiguration().options
                .connectTimeout == .seconds(9))
        for refused in ["0", "-1", "2.5", "", "3601"] {
            #expect(throws: SettingsError.self) {
                try PostgresURL(parsing: "postgres://h/d?connect_timeout=\(refused)")
            }
        }
        // The setting's values are checked as the file, the variable or the flag gives them.
        let loader = SettingsLoader(
            path: "/nonexistent/websockets.json", environment: [:],
            flags: ["security_key": "k", "postgres_sslmode": "always"])
        #expect(throws: SettingsError.self) { try loader.load(generateKey: false) }
    }
}
