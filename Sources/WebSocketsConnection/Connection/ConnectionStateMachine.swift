import NIOCore
import WebSocketsCore
import WebSocketsProtocol

/// The decisions of one WebSocket connection, with no channel: where it is in its life (awaiting authentication,
/// live, closing, closed), whether a frame may be written, held for a replay or skipped as a duplicate, when it is
/// silent too long, when its session has expired, and how it closes. Each call returns what to do; the handler
/// (``WebSocketConnectionHandler``) does it, and counts and logs it in one place.
///
/// Kept inside the handler, so every field counts per idle connection: the replay's frames and ids live in objects
/// of their own (``HeldFrames``, ``DeliveredIDs``) that only a recovering connection of a cluster has.
package struct ConnectionStateMachine {
    /// Where the connection is in its life.
    package enum State {
        /// Open; the site has not accepted the session yet. In a cluster, live messages are held (`held`) until the
        /// replay of what the browser missed.
        case awaitingAuthentication(held: HeldFrames?)
        /// The site accepted the session, which ends at `expiry` (Unix seconds, `Int64.max` for none).
        case live(expiry: Int64, recovery: Recovery)
        /// A close frame was sent (or the socket is being closed): nothing more is written or read.
        case closing
        /// The socket is gone.
        case closed
    }

    /// What a live connection of a cluster still does about its replay.
    package enum Recovery {
        /// Nothing: every frame is written.
        case none
        /// Authenticated, its replay not written yet: live messages are still held.
        case holding(HeldFrames)
        /// Replayed: messages the browser already has are skipped.
        case skipping(DeliveredIDs)
    }

    /// What to do with a frame offered for writing.
    package enum Offer: Equatable {
        /// Write it; `firstSinceFlush`: the connection needs a flush afterwards.
        case write(firstSinceFlush: Bool)
        /// Kept until the replay (``release(through:replayed:)`` gives it back).
        case held
        /// Not written: the browser has it already (counted as `duplicate`).
        case duplicate
        /// Not written: close the connection for `reason`.
        case close(CloseReason)
        /// Not written: the connection is closing or closed.
        case ignore
    }

    /// What to do with a message the browser sent.
    package enum MessageDecision: Equatable {
        /// Hand it on.
        case deliver
        /// Answer `<action>:error [429, ...]`: over `message_rate`.
        case refuse
        /// Close for `reason` instead.
        case close(CloseReason)
        /// Ignore it: the connection is closing.
        case ignore
    }

    /// What the liveness check asks for.
    package enum Liveness: Equatable {
        /// Nothing: the connection is closing or closed.
        case none
        /// Ping it, after a pong to the browser's unanswered ping, if any.
        case ping(pong: ByteBuffer?)
        /// Close it.
        case close(CloseReason)
    }

    /// The connection's state.
    private(set) var state: State
    /// The socket's writability, as last reported: a frame offered while it is `false` closes a slow reader.
    private var writable = true
    /// Whether frames were written since the last flush.
    private var awaitingFlush = false
    /// When the browser was last heard (monotonic).
    private var lastHeard: NIODeadline
    private var rate: MessageRateLimiter
    /// The browser's ping still to answer (``PingAnswer``).
    private var pings = PingAnswer()

    /// A new connection at `now`; `holdingForReplay` in a cluster, where live messages wait for the replay.
    package init(holdingForReplay: Bool, burst: Int, now: NIODeadline) {
        state = .awaitingAuthentication(held: holdingForReplay ? HeldFrames() : nil)
        lastHeard = now
        rate = MessageRateLimiter(burst: burst)
    }

    /// Whether the connection is open (not closing or closed).
    var isOpen: Bool {
        switch state {
        case .awaitingAuthentication, .live: true
        case .closing, .closed: false
        }
    }

    /// Whether the site accepted the session.
    package var isAuthenticated: Bool {
        if case .live = state { return true }
        return false
    }

    /// Whether frames must be offered one by one with their ids: held or skipped by id during a replay.
    package var tracksMessageIDs: Bool {
        switch state {
        case .awaitingAuthentication(let held): held != nil
        case .live(_, .none), .closing, .closed: false
        case .live(_, .holding), .live(_, .skipping): true
        }
    }

    // MARK: Authentication and replay

    /// The site accepted the session, which ends at `expiry`: the authentication deadline no longer applies; held
    /// messages stay held until ``release(through:replayed:)``.
    package mutating func authenticated(expiry: Int64) {
        switch state {
        case .awaitingAuthentication(let held):
            state = .live(expiry: expiry, recovery: held.map { .holding($0) } ?? .none)
        case .live(_, let recovery):
            state = .live(expiry: expiry, recovery: recovery)
        case .closing, .closed:
            break
        }
    }

    /// The replay was written: returns the live messages held meanwhile, to write after it; from now on a message
    /// whose id is at or below `through` (what the browser had) or among `replayed` is skipped.
    package mutating func release(through: Int64?, replayed: Set<Int64>) -> [HeldFrames.Frame] {
        let skip: Recovery =
            through != nil || !replayed.isEmpty
            ? .skipping(DeliveredIDs(through: through ?? 0, replayed: replayed)) : .none
        switch state {
        case .awaitingAuthentication(let held):
            // Not authenticated (the replay is written after authentication): only the hold ends.
            state = .awaitingAuthentication(held: nil)
            return held?.frames ?? []
        case .live(let expiry, .holding(let held)):
            state = .live(expiry: expiry, recovery: skip)
            return held.frames
        case .live(let expiry, _):
            state = .live(expiry: expiry, recovery: skip)
            return []
        case .closing, .closed:
            return []
        }
    }

    // MARK: Writing

    /// Decides about a frame of `bytes` with message `id`, offered at `now` (Unix seconds; `Int64.min` for the
    /// server's own frames, which do not check the expiry); `bypassingHold` for frames that go out during a hold
    /// (replies, the replay itself). A held frame is kept here, `frame` being its bytes.
    package mutating func offer(
        _ frame: ByteBuffer, id: Int64?, bypassingHold: Bool = false, now: Int64 = .min, maximumHeldBytes: Int
    ) -> Offer {
        switch state {
        case .closing, .closed:
            return .ignore
        case .awaitingAuthentication(let held):
            if let held, !bypassingHold { return hold(frame, id: id, in: held, maximumBytes: maximumHeldBytes) }
        case .live(let expiry, let recovery):
            if now >= expiry { return .close(.sessionExpired(dropping: "send")) }
            switch recovery {
            case .none:
                break
            case .holding(let held):
                if !bypassingHold { return hold(frame, id: id, in: held, maximumBytes: maximumHeldBytes) }
            case .skipping(let delivered):
                if let id, delivered.contains(id) { return .duplicate }
            }
        }
        return admit()
    }

    private mutating func hold(_ frame: ByteBuffer, id: Int64?, in held: HeldFrames, maximumBytes: Int) -> Offer {
        held.append(frame, id: id)
        guard held.count > HeldFrames.maximumCount || held.bytes > maximumBytes else { return .held }
        return .close(.replayOverflow(count: held.count, bytes: held.bytes))
    }

    /// Decides about a frame the connection writes whatever its state of replay (a ping, a pong).
    mutating func offerControl() -> Offer {
        isOpen ? admit() : .ignore
    }

    private mutating func admit() -> Offer {
        guard writable else { return .close(.slowReader) }
        defer { awaitingFlush = true }
        return .write(firstSinceFlush: !awaitingFlush)
    }

    /// Whether a flush is due; the frames written so far are then taken as flushed.
    mutating func takeFlush() -> Bool {
        defer { awaitingFlush = false }
        return awaitingFlush
    }

    /// The socket went over its outbound bound (`false`) or back under half of it (`true`).
    mutating func writabilityChanged(_ writable: Bool) {
        self.writable = writable
    }

    // MARK: Reading

    /// Bytes arrived at `now`: whether to read them (not while closing).
    package mutating func bytesArrived(now: NIODeadline) -> Bool {
        guard isOpen else { return false }
        lastHeard = now
        return true
    }

    /// Decides about a message that arrived at `now` (Unix seconds; `monotonic` nanoseconds for the rate), within
    /// `rate` messages a second and bursts of `burst`. The wall clock is read only for a session that expires.
    mutating func messageArrived(now: @autoclosure () -> Int64, monotonic: UInt64, rate: Double, burst: Int)
        -> MessageDecision
    {
        switch state {
        case .closing, .closed:
            return .ignore
        case .live(let expiry, _) where expiry != .max && now() >= expiry:
            return .close(.sessionExpired(dropping: "message"))
        case .awaitingAuthentication, .live:
            return self.rate.admit(now: monotonic, rate: rate, burst: burst) ? .deliver : .refuse
        }
    }

    /// The browser pinged with `payload` (the latest ping of a read): the pong's payload to write now, or `nil`
    /// while bytes wait for the kernel (it is answered by a later liveness check).
    mutating func pinged(_ payload: ByteBuffer, backlogged: Bool) -> ByteBuffer? {
        isOpen ? pings.received(payload, backlogged: backlogged) : nil
    }

    // MARK: Time

    /// The loop's sweep at `now`: a connection silent longer than `idleTimeout` closes, others are pinged.
    package mutating func checkLiveness(now: NIODeadline, idleTimeout: TimeAmount, backlogged: Bool) -> Liveness {
        guard isOpen else { return .none }
        if now - lastHeard > idleTimeout { return .close(.idle) }
        return .ping(pong: pings.due(backlogged: backlogged))
    }

    /// The authentication deadline passed: close unless authenticated.
    func authenticationDeadlinePassed() -> CloseReason? {
        if case .awaitingAuthentication = state { return .authenticationTimeout }
        return nil
    }

    // MARK: Closing

    /// Begins the close (after ``CloseReason/catchesUp`` broadcasts were written): whether the close goes ahead, a
    /// close frame being sent once.
    mutating func beginClose() -> Bool {
        guard isOpen else { return false }
        state = .closing
        return true
    }

    /// The socket is gone.
    package mutating func closed() {
        state = .closed
    }
}
