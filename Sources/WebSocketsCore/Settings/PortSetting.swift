import Foundation
import NIOCore
import WebSocketsProtocol

/// Binding a port that a setting names, so that a port that cannot be taken is reported in the operator's terms.
package enum PortSetting {
    /// Runs `bind`; a port in use or not allowed becomes a ``SettingsError`` naming the setting, the port and what
    /// to do (NIO's own words were "bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)").
    package static func binding<Result>(
        _ setting: String, port: Int, host: String, _ bind: () async throws -> Result
    ) async throws -> Result {
        do {
            return try await bind()
        } catch let error as IOError where error.errnoCode == EADDRINUSE || error.errnoCode == EACCES {
            let why = error.errnoCode == EADDRINUSE ? "is in use by another process" : "may not be used by this user"
            throw SettingsError(
                description:
                    "\(setting) \(port) on \(host) \(why): choose another with \(SettingsLoader.flagName(of: setting)) or stop what holds it"
            )
        }
    }
}
