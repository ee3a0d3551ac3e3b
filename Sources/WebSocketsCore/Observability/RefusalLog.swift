import Logging
import NIOConcurrencyHelpers
import WebSocketsProtocol

/// The server's log of refusals (a wrong key, a refused upgrade, a connection over a limit): each reason at most
/// once every 10 s, with the count since its last line (``LogThrottle``). Whoever refuses counts the refusal in its
/// metric as well; this only keeps the log readable under a flood.
package final class RefusalLog: Sendable {
    /// How a reason's line reads: its message, level and logger, as last given.
    private struct Line {
        var message: Logger.Message
        var level: Logger.Level
        var logger: Logger
    }

    private struct State {
        var throttle: LogThrottle
        var lines: [String: Line] = [:]
    }

    private let state: NIOLockedValueBox<State>

    package init(interval: Duration = .seconds(10)) {
        state = NIOLockedValueBox(State(throttle: LogThrottle(interval: interval)))
    }

    /// Tells the refusals not yet told whose line is due (every one of them when `all`, at a stop), each reason in
    /// one line with its count; called every second, so that a flood's end is told within its interval.
    package func flush(all: Bool = false) {
        let due = state.withLockedValue { state in
            state.throttle.overdue(now: .now, all: all).compactMap { due in
                state.lines[due.reason].map { (line: $0, count: due.count) }
            }
        }
        for (line, count) in due {
            line.logger.log(level: line.level, line.message, metadata: ["count": "\(count)"])
        }
    }

    /// Logs `message` at `level` for `reason` when a line is due, with `count`: the refusals of that reason since the
    /// last line, this one included.
    package func refused(
        _ reason: String, _ message: @autoclosure () -> Logger.Message, level: Logger.Level = .info,
        logger: Logger, metadata: @autoclosure () -> Logger.Metadata = [:]
    ) {
        let due = state.withLockedValue { state -> (line: Line, count: Int)? in
            guard let count = state.throttle.admit(reason, now: .now) else { return nil }
            let line = Line(message: message(), level: level, logger: logger)
            state.lines[reason] = line
            return (line, count)
        }
        guard let due else { return }
        var metadata = metadata()
        metadata["count"] = "\(due.count)"
        logger.log(level: level, due.line.message, metadata: metadata)
    }
}
