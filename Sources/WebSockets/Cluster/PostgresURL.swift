import Foundation
import PostgresNIO

/// Reads `postgres://user:password@host:port/database` into a client configuration.
enum PostgresURL {
    static func configuration(_ url: String) throws -> PostgresClient.Configuration {
        guard let components = URLComponents(string: url),
            components.scheme == "postgres" || components.scheme == "postgresql", let host = components.host
        else {
            throw SettingsError(
                description: "postgres must be a URL such as postgres://user:password@127.0.0.1:5432/db")
        }
        let database = components.path.split(separator: "/").first.map(String.init)
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
            password: components.password, database: database, tls: .disable)
        configuration.options.minimumConnections = 1
        configuration.options.maximumConnections = 8
        configuration.options.connectTimeout = .seconds(2)
        return configuration
    }
}
