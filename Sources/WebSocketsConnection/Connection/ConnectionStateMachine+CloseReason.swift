import Logging
import NIOWebSocket
import WebSocketsCore
import WebSocketsProtocol

extension ConnectionStateMachine {
    /// Why the connection closes: each reason has its log line and its `websockets_closed_total` label
    /// (``metric``), and decides whether a close frame is sent.
    package enum CloseReason: Equatable {
        /// Silent longer than `idle_timeout`.
        case idle
        /// Not authenticated within `authentication_timeout`.
        case authenticationTimeout
        /// Its outbound buffer passed `max_outbound_buffer`: closed at once, no close frame.
        case slowReader
        /// A send or a message arrived after the session's expiry; `dropping` names what was not delivered.
        case sessionExpired(dropping: String)
        /// More than ``HeldFrames/maximumCount`` frames or `max_outbound_buffer` bytes waited for the replay.
        case replayOverflow(count: Int, bytes: Int)
        /// Bytes the server does not accept (``InboundEvent/refusal(code:reason:metric:)``).
        case refusedFrame(code: WebSocketCloseCode, reason: String, metric: ClosedReason)
        /// A text message that is not a message of the protocol.
        case malformed(String)
        /// Over `max_connections_per_ip` (another connection from the address won the race after the upgrade).
        case perIPCap
        /// The browser sent a close frame with `code`: answered with the same code.
        case browserClosed(code: UInt16)
        /// The server closes it (after a failed authentication, a send with `Server/close`, a stop).
        case requested(code: WebSocketCloseCode, reason: String)

        /// The close frame's code, or `nil` when the socket is closed without one.
        package var code: UInt16? {
            switch self {
            case .idle: WebSocketCloseCode.goingAway.rawValue
            case .authenticationTimeout, .sessionExpired, .perIPCap: WebSocketCloseCode.policyViolation.rawValue
            case .slowReader: nil
            case .replayOverflow: WebSocketCloseCode.tryAgainLater.rawValue
            case .refusedFrame(let code, _, _), .requested(let code, _): code.rawValue
            case .malformed: WebSocketCloseCode.invalidData.rawValue
            case .browserClosed(let code): code
            }
        }

        /// The close frame's reason.
        package var text: String {
            switch self {
            case .idle: "Idle timeout"
            case .authenticationTimeout: "Authentication timeout"
            case .slowReader: ""
            case .sessionExpired: "Session expired"
            case .replayOverflow: "Try again"
            case .refusedFrame(_, let reason, _), .requested(_, let reason): reason
            case .malformed(let error): "Malformed frame: \(error)"
            case .perIPCap: "Too many connections"
            case .browserClosed: ""
            }
        }

        /// The label counted in `websockets_closed_total`, or `nil` for closes that are not the server's decision
        /// about the connection (the browser's, the server's own requests, a replay overflow, counted as drops).
        var metric: ClosedReason? {
            switch self {
            case .idle: .idle
            case .authenticationTimeout: .authenticationTimeout
            case .slowReader: .slowReader
            case .sessionExpired: .sessionExpired
            case .refusedFrame(_, _, let metric): metric
            case .malformed: .malformed
            case .perIPCap: .perIPCap
            case .replayOverflow, .browserClosed, .requested: nil
            }
        }

        /// What the close drops, counted in `websockets_dropped_total`: the frame that found the session expired, the
        /// held frames of an overflowing replay, the frame a slow reader could not take.
        package var dropped: (reason: DroppedReason, count: Int)? {
            switch self {
            case .slowReader: (.slowReader, 1)
            case .sessionExpired: (.sessionExpired, 1)
            case .replayOverflow(let count, _): (.replayOverflow, count)
            default: nil
            }
        }

        /// Whether the broadcasts sent before the close are written before its frame: not when the close is the
        /// browser's answer, nor when a frame's own delivery decided it (the frames it would catch up are refused
        /// for the same reason).
        var catchesUp: Bool {
            switch self {
            case .browserClosed, .slowReader, .sessionExpired, .replayOverflow: false
            default: true
            }
        }
    }
}

extension ConnectionStateMachine.CloseReason {
    /// Logs the close: the server's decisions at the level their cause deserves, refusals through `refusals` (at
    /// most a line per reason every 10 s); the browser's closes and the server's requests are not logged here.
    package func log(logger: Logger, userLogger: @autoclosure () -> Logger, refusals: RefusalLog) {
        switch self {
        case .idle:
            logger.debug("closing a silent connection")
        case .authenticationTimeout:
            refusals.refused(
                "authentication_timeout", "closing a connection that did not authenticate in time", logger: logger)
        case .slowReader:
            userLogger().warning("slow reader: outbound buffer full, closing")
        case .sessionExpired(let what):
            userLogger().info("session expired: closing instead of delivering the \(what)")
        case .replayOverflow(let count, let bytes):
            userLogger().warning(
                "too many messages held before the replay, closing",
                metadata: ["count": "\(count)", "bytes": "\(bytes)"])
        case .refusedFrame(_, let reason, _):
            logger.debug("frame refused", metadata: ["reason": "\(reason)"])
        case .malformed(let error):
            // Logged at debug level once: the connection is closed right after.
            logger.debug("malformed frame", metadata: ["error": "\(error)"])
        case .perIPCap, .browserClosed, .requested:
            // The cap is logged by whoever knows the address; the others are not the server's decision.
            break
        }
    }
}
