import Logging
import NIOConcurrencyHelpers

/// The server's log of refusals (a wrong key, a refused upgrade, a connection over a limit): each reason at most
/// once every 10 s, with the count since its last line (``LogThrottle``). Whoever refuses counts the refusal in its
/// metric as well; this only keeps the log readable under a flood.
final class RefusalLog: Sendable {
    private let throttle: NIOLockedValueBox<LogThrottle>

    init(interval: Duration = .seconds(10)) {
        throttle = NIOLockedValueBox(LogThrottle(interval: interval))
    }

    /// Logs `message` at `level` for `reason` when a line is due, with `count`: the refusals of that reason since the
    /// last line, this one included.
    func refused(
        _ reason: String, _ message: @autoclosure () -> Logger.Message, level: Logger.Level = .info,
        logger: Logger, metadata: @autoclosure () -> Logger.Metadata = [:]
    ) {
        guard let count = throttle.withLockedValue({ $0.admit(reason, now: .now) }) else { return }
        var metadata = metadata()
        metadata["count"] = "\(count)"
        logger.log(level: level, message(), metadata: metadata)
    }
}
