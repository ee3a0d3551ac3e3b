import NIOCore
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub

/// The time limits of an HTTP (non-WebSocket) connection, with no channel: between requests it may stay idle for
/// `idleTimeout`; from a request's first byte, its head and body must arrive within `requestTimeout` (a client
/// that sends a header byte a second is closed); while the server answers, no limit applies (site calls have their
/// own); an answer that waits for the client to read the ones before may wait `idleTimeout` (a client that
/// pipelined requests and never read held its connection, and the answer, for good).
struct HTTPRequestClock {
    /// Where the connection is.
    enum Phase: Equatable {
        /// Waiting for a request.
        case idle
        /// A request has begun and is not complete.
        case receiving
        /// The request is complete and its answer not yet written.
        case responding
        /// The answer waits for the client to read the answers before it.
        case unread
    }

    /// What to do with the connection's timer.
    enum Timer: Equatable {
        /// Close the connection if nothing changes within this time (replacing the timer running).
        case arm(TimeAmount)
        /// No limit now.
        case disarm
        /// Leave the timer running.
        case keep
    }

    let idleTimeout: TimeAmount
    let requestTimeout: TimeAmount
    private(set) var phase = Phase.idle

    /// The connection opened: it waits for its first request.
    mutating func opened() -> Timer {
        phase = .idle
        return .arm(idleTimeout)
    }

    /// Bytes arrived: the first of a request starts its time limit.
    mutating func bytesArrived() -> Timer {
        guard phase == .idle else { return .keep }
        phase = .receiving
        return .arm(requestTimeout)
    }

    /// The request is whole: the server answers.
    mutating func requestReceived() -> Timer {
        phase = .responding
        return .disarm
    }

    /// The answer waits for the client to read: it has `idleTimeout` to.
    mutating func answerWaiting() -> Timer {
        phase = .unread
        return .arm(idleTimeout)
    }

    /// The answer is written: the connection waits for its next request.
    mutating func responseSent() -> Timer {
        phase = .idle
        return .arm(idleTimeout)
    }
}
