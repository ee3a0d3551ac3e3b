import Logging
import WebSocketsCore

/// What every connection's handler of a server shares: the limits it applies, where it counts and where it logs its
/// refusals. One object for all connections, so that a handler keeps one reference rather than the settings.
package final class ConnectionEnvironment: Sendable {
    /// `max_message_size`.
    let maximumMessageSize: Int
    /// `message_rate`.
    package let messageRate: Double
    /// `message_burst`.
    package let messageBurst: Int
    /// `max_outbound_buffer`, which also bounds the bytes held for a replay.
    let maximumOutboundBytes: Int
    /// Whether live messages wait for the replay after authentication (a cluster: ``ClusterMode``).
    package let holdsForReplay: Bool
    package let metrics: ServerMetrics
    package let refusals: RefusalLog
    /// How a connection's own messages (replies, replays, refusals) are compressed, when it negotiated it.
    package let compression: OutboundCompression
    /// The limits named in a refusal's log line.
    let refusalMetadata: Logger.Metadata

    package init(settings: Settings, holdsForReplay: Bool, metrics: ServerMetrics, refusals: RefusalLog) {
        maximumMessageSize = settings.maxMessageSize
        messageRate = settings.messageRate
        messageBurst = settings.messageBurst
        maximumOutboundBytes = settings.maxOutboundBuffer
        self.holdsForReplay = holdsForReplay
        self.metrics = metrics
        self.refusals = refusals
        compression = OutboundCompression(settings: settings, metrics: metrics)
        refusalMetadata = [
            "rate": "\(settings.messageRate)", "burst": "\(settings.messageBurst)",
            "pending": "\(settings.maxPendingMessages)", "pending_bytes": "\(settings.maxPendingBytes)",
        ]
    }
}
