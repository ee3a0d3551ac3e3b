import PostgresNIO
import WebSocketsCore

/// The client's configuration for a `postgres` URL: the pool's size and the server-side timeouts
/// (``PostgresDeadline``) that the cluster's statements rely on.
extension PostgresURL {
    /// The client's configuration.
    package func configuration() throws(SettingsError) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: try tls())
        configuration.options.minimumConnections = 1
        configuration.options.maximumConnections = 8
        configuration.options.connectTimeout = .seconds(Int64(connectTimeout))
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", PostgresDeadline.setting(PostgresDeadline.statement)),
            ("lock_timeout", PostgresDeadline.setting(PostgresDeadline.lockWait)),
        ]
        return configuration
    }

    /// The configuration for `settings`' `postgres`, `postgres_sslmode` and `postgres_sslrootcert`.
    package static func configuration(_ settings: Settings) throws(SettingsError) -> PostgresClient.Configuration {
        try PostgresURL(settings: settings).configuration()
    }
}
