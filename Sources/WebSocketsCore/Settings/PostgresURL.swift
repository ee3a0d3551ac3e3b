import Foundation
import NIOSSL
import PostgresNIO
import WebSocketsProtocol

/// A PostgreSQL URL, `postgres://user:password@host:port/database?sslmode=verify-full&sslrootcert=/path`, read as
/// libpq reads it: the URL's `sslmode` and `sslrootcert` win over the `postgres_sslmode` and `postgres_sslrootcert`
/// settings (as libpq's parameters win over `PGSSLMODE`), and where neither says, the mode is `prefer`.
/// `connect_timeout` is libpq's too (whole seconds, 1 read as 2), except that it is 2 s where the URL is silent and
/// that a server never waits without limit (0 is refused).
package struct PostgresURL: Equatable, Sendable {
    /// libpq's `sslmode`.
    package enum SSLMode: String, CaseIterable, Sendable {
        /// No TLS.
        case disable
        /// libpq tries without TLS first, then with it; here it is `prefer` (TLS when offered, not verified).
        case allow
        /// TLS when the server offers it, without checking the certificate; plain otherwise.
        case prefer
        /// TLS or no connection; the certificate is not checked (unless a root is given: then as `verify-ca`).
        case require
        /// TLS with a certificate signed by the root; any host name.
        case verifyCA = "verify-ca"
        /// TLS with a certificate signed by the root and naming the host.
        case verifyFull = "verify-full"

        /// The names, for messages.
        package static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
    }

    package var host: String
    package var port: Int
    package var username: String
    package var password: String?
    package var database: String?
    package var sslMode: SSLMode
    /// `sslrootcert`: a file of PEM certificates, `system` for the system's roots, or `nil` (libpq's default,
    /// `~/.postgresql/root.crt`, where a mode verifies).
    package var sslRootCert: String?
    /// `connect_timeout`: how long one connection attempt may take, in seconds (2 unless the URL says).
    package var connectTimeout: Int = 2

    /// Reads `url`; `defaultMode` and `defaultRootCert` apply where the URL gives no `sslmode` or `sslrootcert`.
    package init(parsing url: String, defaultMode: String? = nil, defaultRootCert: String? = nil) throws(SettingsError)
    {
        guard let components = URLComponents(string: url),
            components.scheme == "postgres" || components.scheme == "postgresql", let host = components.host,
            !host.isEmpty
        else {
            throw SettingsError(
                description: "postgres must be a URL such as postgres://user:password@127.0.0.1:5432/db")
        }
        self.host = host
        port = components.port ?? 5432
        // A port no socket can have was taken as given and failed only when the bus connected (found by the fuzzer).
        guard (1...65535).contains(port) else {
            throw SettingsError(description: "postgres URL: port \(port) is not between 1 and 65535")
        }
        username = components.user ?? "postgres"
        password = components.password
        database = components.path.split(separator: "/").first.map(String.init)
        var modeText = defaultMode.flatMap { $0.isEmpty ? nil : $0 }
        var rootCert = defaultRootCert.flatMap { $0.isEmpty ? nil : $0 }
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode": modeText = item.value ?? ""
            case "sslrootcert": rootCert = item.value ?? ""
            case "connect_timeout":
                // libpq: whole seconds, at least 2 (1 is read as 2). A server that waits forever for a database
                // that does not answer never reports it, so libpq's 0 ("no limit") is refused; an hour is plenty.
                guard let seconds = item.value.flatMap({ Int($0) }), (1...3600).contains(seconds) else {
                    throw SettingsError(
                        description:
                            "postgres URL: connect_timeout \"\(item.value ?? "")\" must be whole seconds from 1 to 3600"
                    )
                }
                connectTimeout = max(2, seconds)
            default:
                // Refused rather than ignored: a parameter such as sslcert would otherwise be silently dropped.
                throw SettingsError(
                    description:
                        "postgres URL: unsupported parameter \"\(item.name)\"; supported: sslmode, sslrootcert, connect_timeout"
                )
            }
        }
        guard let mode = SSLMode(rawValue: modeText ?? "prefer") else {
            throw SettingsError(
                description: "postgres URL: sslmode \"\(modeText ?? "")\" is not one of \(SSLMode.names)")
        }
        sslMode = mode
        sslRootCert = rootCert
    }

    /// `host:port`, for messages (never the password).
    package var endpoint: String { "\(host):\(port)" }

    /// How the certificate is checked, after libpq's rule that `require` with a root given checks as `verify-ca`.
    var verification: CertificateVerification {
        switch sslMode {
        case .disable, .allow, .prefer: return .none
        case .require: return sslRootCert == nil ? .none : .noHostnameVerification
        case .verifyCA: return .noHostnameVerification
        case .verifyFull: return .fullVerification
        }
    }

    /// The trust roots of a verifying mode, or an error worded as libpq's when there are none to use.
    func trustRoots(home: String = NSHomeDirectory()) throws(SettingsError) -> NIOSSLTrustRoots {
        switch sslRootCert {
        case "system":
            return .default
        case let path?:
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw SettingsError(description: "postgres: sslrootcert \(path) cannot be read")
            }
            return .file(path)
        case nil:
            let path = home + "/.postgresql/root.crt"
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw SettingsError(
                    description:
                        "postgres: sslmode=\(sslMode.rawValue) checks the server's certificate, but there is no root certificate: give sslrootcert=<file> (or sslrootcert=system for the system's roots), or create \(path)"
                )
            }
            return .file(path)
        }
    }

    /// swift-nio-ssl's configuration for the mode, or `nil` for `disable`.
    func tlsConfiguration() throws(SettingsError) -> TLSConfiguration? {
        guard sslMode != .disable else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = verification
        if verification != .none { configuration.trustRoots = try trustRoots() }
        return configuration
    }

    /// Whether a server without TLS is refused.
    var requiresTLS: Bool { ![.disable, .allow, .prefer].contains(sslMode) }

    /// The TLS part of the client's configuration.
    package func tls() throws(SettingsError) -> PostgresClient.Configuration.TLS {
        guard let configuration = try tlsConfiguration() else { return .disable }
        return requiresTLS ? .require(configuration) : .prefer(configuration)
    }

    /// The configuration of one connection, as the pool's: the bus opens one first, so that a failure to connect
    /// is reported as PostgreSQL or TLS gave it (the pool only says it gave up).
    package func connectionConfiguration() throws(SettingsError) -> PostgresConnection.Configuration {
        var tls = PostgresConnection.Configuration.TLS.disable
        if let configuration = try tlsConfiguration() {
            let context: NIOSSLContext
            do {
                context = try NIOSSLContext(configuration: configuration)
            } catch {
                throw SettingsError(description: "postgres: TLS cannot be set up: \(error)")
            }
            tls = requiresTLS ? .require(context) : .prefer(context)
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.connectTimeout = .seconds(Int64(connectTimeout))
        return configuration
    }

    /// `settings`' `postgres`, with `postgres_sslmode` and `postgres_sslrootcert` where the URL is silent.
    package init(settings: Settings) throws(SettingsError) {
        try self.init(
            parsing: settings.postgres ?? "", defaultMode: settings.postgresSSLMode,
            defaultRootCert: settings.postgresSSLRootCert)
    }
}
