import NIOSSL
import PostgresNIO
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol

/// Words for a failure to reach PostgreSQL that an operator can act on: postgres-nio's own description hides
/// everything ("Generic description to prevent accidental leakage"), and its reflection is a page of internals.
/// Never the password: only the host, the port and the TLS settings are named.
package enum PostgresFailure {
    static func describe(_ error: any Error, target: PostgresURL?) -> String {
        let place = target.map { "PostgreSQL at \($0.endpoint)" } ?? "PostgreSQL"
        let mode = target.map { "sslmode=\($0.sslMode.rawValue)" } ?? "sslmode"
        var underlying: any Error = error
        if let error = error as? PSQLError {
            if error.code == .sslUnsupported {
                return "\(place) does not offer TLS, and \(mode) requires it"
            }
            if let serverInfo = error.serverInfo, let message = serverInfo[.message] {
                return "\(place): \(message)"
            }
            if let inner = error.underlying { underlying = inner }
        }
        if let error = underlying as? NIOSSLExtraError, error == .failedToValidateHostname {
            return "\(place): its TLS certificate does not name host \"\(target?.host ?? "")\" (\(mode))"
        }
        if let error = underlying as? NIOSSLError {
            let text = String(describing: error)
            if text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate verify failed") {
                let root = target?.sslRootCert.map { "sslrootcert \($0)" } ?? "the root certificates"
                return "\(place): its TLS certificate is not signed by \(root) (\(mode))"
            }
            return "\(place): TLS failed: \(text)"
        }
        return "\(place): \(String(describing: underlying))"
    }

    /// Whether `error` is PostgreSQL's `statement_timeout` (57014): the statement ran too long, rather than waited
    /// for a lock (`lock_timeout`, 55P03, comes first), for a connection (the bus's own deadline) or found PostgreSQL
    /// away. Only such a read is split, and a row skipped: a table locked by someone else must be waited for, never
    /// skipped through.
    static func isStatementTimeout(_ error: any Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "57014"
    }
}
