import NIOCore
import NIOWebSocket
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// Every transition of ``ConnectionStateMachine``, on values: awaiting authentication (with the replay hold) →
/// live (with the hold, then the skipping of what the replay carried) → closing → closed, and what each call
/// decides on the way.
@Suite struct ConnectionStateMachineTests {
    private static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    private static let frame = ByteBuffer(string: "frame")

    private func machine(holding: Bool = false, burst: Int = 10) -> ConnectionStateMachine {
        ConnectionStateMachine(holdingForReplay: holding, burst: burst, now: Self.start)
    }

    private func offer(
        _ machine: inout ConnectionStateMachine, id: Int64? = nil, bypassing: Bool = false, now: Int64 = .min,
        bytes: Int = 1_000
    ) -> ConnectionStateMachine.Offer {
        machine.offer(Self.frame, id: id, bypassingHold: bypassing, now: now, maximumHeldBytes: bytes)
    }

    @Test func aNewConnectionWritesAndFlushesOncePerBatch() {
        var machine = machine()
        #expect(machine.isOpen && !machine.isAuthenticated && !machine.tracksMessageIDs)
        #expect(offer(&machine) == .write(firstSinceFlush: true))
        #expect(offer(&machine) == .write(firstSinceFlush: false))
        #expect(machine.offerControl() == .write(firstSinceFlush: false))
        let flushes = [machine.takeFlush(), machine.takeFlush()]
        #expect(flushes == [true, false])
        #expect(machine.offerControl() == .write(firstSinceFlush: true))
    }

    @Test func authenticationGoesLiveAndEndsTheDeadline() {
        var machine = machine()
        #expect(machine.authenticationDeadlinePassed() == .authenticationTimeout)
        machine.authenticated(expiry: 100)
        #expect(machine.isAuthenticated)
        #expect(machine.authenticationDeadlinePassed() == nil)
        guard case .live(100, .none) = machine.state else {
            Issue.record("not live: \(machine.state)")
            return
        }
        // A second authentication (the session was checked again) moves the expiry.
        machine.authenticated(expiry: 200)
        guard case .live(200, .none) = machine.state else {
            Issue.record("expiry not moved: \(machine.state)")
            return
        }
    }

    @Test func anExpiredSessionClosesOnASendOrAMessageNotOnServerFrames() {
        var machine = machine()
        machine.authenticated(expiry: 100)
        #expect(offer(&machine, now: 99) == .write(firstSinceFlush: true))
        // The server's own frames (replies, the close) carry no time and are not checked.
        #expect(offer(&machine) == .write(firstSinceFlush: false))
        #expect(offer(&machine, now: 100) == .close(.sessionExpired(dropping: "send")))
        let message = machine.messageArrived(now: 100, monotonic: 1, rate: 1, burst: 10)
        #expect(message == .close(.sessionExpired(dropping: "message")))
        #expect(ConnectionStateMachine.CloseReason.sessionExpired(dropping: "send").dropped! == (.sessionExpired, 1))
    }

    @Test func messagesOverTheRateAreRefused() {
        var machine = machine(burst: 2)
        let decisions = (0..<3).map { _ in machine.messageArrived(now: 0, monotonic: 5, rate: 1, burst: 2) }
        #expect(decisions == [.deliver, .deliver, .refuse])
        // A second later one token is back.
        #expect(machine.messageArrived(now: 0, monotonic: 1_000_000_005, rate: 1, burst: 2) == .deliver)
    }

    @Test func aSlowReaderClosesWithoutACloseFrameAndOnlyOnce() {
        var machine = machine()
        machine.writabilityChanged(false)
        #expect(offer(&machine) == .close(.slowReader))
        #expect(machine.offerControl() == .close(.slowReader))
        #expect(ConnectionStateMachine.CloseReason.slowReader.code == nil)
        let closes = [machine.beginClose(), machine.beginClose()]
        #expect(closes == [true, false])
        #expect(offer(&machine) == .ignore)
        // Writable again before the close: writes go on.
        var other = self.machine()
        other.writabilityChanged(false)
        other.writabilityChanged(true)
        #expect(offer(&other) == .write(firstSinceFlush: true))
    }

    @Test func aClusterConnectionHoldsLiveMessagesUntilItsReplay() {
        var machine = machine(holding: true)
        #expect(machine.tracksMessageIDs)
        #expect(offer(&machine, id: 1) == .held)
        // Replies to the browser go out during the hold.
        #expect(offer(&machine, bypassing: true) == .write(firstSinceFlush: true))
        machine.authenticated(expiry: .max)
        #expect(offer(&machine, id: 2) == .held)
        guard case .live(_, .holding(let held)) = machine.state else {
            Issue.record("not holding: \(machine.state)")
            return
        }
        #expect(held.count == 2 && held.bytes == 2 * Self.frame.readableBytes)
        // The replay carried 2 and the browser had up to 1: the held frames come back, then those ids are skipped.
        let released = machine.release(through: 1, replayed: [2])
        #expect(released.map(\.id) == [1, 2])
        #expect(machine.tracksMessageIDs)
        #expect(offer(&machine, id: 1) == .duplicate)
        #expect(offer(&machine, id: 2) == .duplicate)
        #expect(offer(&machine, id: 3) == .write(firstSinceFlush: false))
        #expect(offer(&machine) == .write(firstSinceFlush: false))
    }

    @Test func aReplayThatRecoveredNothingGoesLiveWithoutTrackingIDs() {
        var machine = machine(holding: true)
        machine.authenticated(expiry: .max)
        #expect(offer(&machine, id: 7) == .held)
        #expect(machine.release(through: nil, replayed: []).map(\.id) == [7])
        #expect(!machine.tracksMessageIDs)
        #expect(offer(&machine, id: 7) == .write(firstSinceFlush: true))
    }

    @Test func aReleaseBeforeAuthenticationOnlyEndsTheHold() {
        var machine = machine(holding: true)
        #expect(offer(&machine, id: 1) == .held)
        #expect(machine.release(through: 5, replayed: []).map(\.id) == [1])
        #expect(!machine.isAuthenticated && !machine.tracksMessageIDs)
        #expect(offer(&machine, id: 1) == .write(firstSinceFlush: true))
    }

    @Test func aHoldOverItsBoundClosesTheConnection() {
        var machine = machine(holding: true)
        let bytes = Self.frame.readableBytes
        #expect(offer(&machine, id: 1, bytes: bytes) == .held)
        #expect(offer(&machine, id: 2, bytes: bytes) == .close(.replayOverflow(count: 2, bytes: 2 * bytes)))
        let reason = ConnectionStateMachine.CloseReason.replayOverflow(count: 2, bytes: 10)
        #expect(reason.code == WebSocketCloseCode.tryAgainLater.rawValue && reason.dropped! == (.replayOverflow, 2))
        // By count, whatever the bytes.
        var counted = self.machine(holding: true)
        for id in 0..<HeldFrames.maximumCount { _ = offer(&counted, id: Int64(id), bytes: .max) }
        let over = offer(&counted, id: -1, bytes: .max)
        #expect(
            over
                == .close(.replayOverflow(count: HeldFrames.maximumCount + 1, bytes: 5 * (HeldFrames.maximumCount + 1)))
        )
    }

    @Test func silenceClosesAndLifePings() {
        var machine = machine()
        let timeout = TimeAmount.seconds(60)
        #expect(
            machine.checkLiveness(now: Self.start + .seconds(30), idleTimeout: timeout, backlogged: false)
                == .ping(pong: nil))
        // Bytes reset the clock.
        let read = machine.bytesArrived(now: Self.start + .seconds(50))
        #expect(read)
        #expect(
            machine.checkLiveness(now: Self.start + .seconds(100), idleTimeout: timeout, backlogged: false)
                == .ping(pong: nil))
        #expect(
            machine.checkLiveness(now: Self.start + .seconds(111), idleTimeout: timeout, backlogged: false)
                == .close(.idle))
    }

    @Test func theLatestPingIsAnsweredOnceAndNotWhileBacklogged() {
        var machine = machine()
        let first = ByteBuffer(bytes: [1])
        let second = ByteBuffer(bytes: [2])
        #expect(machine.pinged(first, backlogged: true) == nil)
        #expect(machine.pinged(second, backlogged: true) == nil)
        // The sweep answers the latest once the bytes move again.
        #expect(machine.checkLiveness(now: Self.start, idleTimeout: .seconds(60), backlogged: true) == .ping(pong: nil))
        #expect(
            machine.checkLiveness(now: Self.start, idleTimeout: .seconds(60), backlogged: false) == .ping(pong: second))
        #expect(
            machine.checkLiveness(now: Self.start, idleTimeout: .seconds(60), backlogged: false) == .ping(pong: nil))
        #expect(machine.pinged(first, backlogged: false) == first)
    }

    @Test func closingEndsEverythingAndClosedIsFinal() {
        var machine = machine(holding: true)
        let began = machine.beginClose()
        #expect(began)
        guard case .closing = machine.state else {
            Issue.record("not closing: \(machine.state)")
            return
        }
        #expect(!machine.isOpen)
        #expect(offer(&machine, id: 1) == .ignore)
        #expect(machine.offerControl() == .ignore)
        let read = machine.bytesArrived(now: Self.start)
        #expect(!read)
        #expect(machine.messageArrived(now: 0, monotonic: 1, rate: 1, burst: 1) == .ignore)
        #expect(machine.pinged(ByteBuffer(bytes: [1]), backlogged: false) == nil)
        #expect(
            machine.checkLiveness(now: Self.start + .seconds(1_000), idleTimeout: .seconds(1), backlogged: false)
                == .none)
        #expect(machine.release(through: 1, replayed: []).isEmpty)
        machine.authenticated(expiry: 1)
        #expect(!machine.isAuthenticated)
        machine.closed()
        guard case .closed = machine.state else {
            Issue.record("not closed: \(machine.state)")
            return
        }
        let again = machine.beginClose()
        #expect(!again)
        // A socket that closes without a close frame goes straight to closed.
        var dropped = self.machine()
        dropped.closed()
        let reopened = dropped.beginClose()
        #expect(!dropped.isOpen && !reopened)
    }

    @Test func eachCloseReasonHasItsCodeMetricAndCatchUp() {
        typealias Reason = ConnectionStateMachine.CloseReason
        let reasons: [(Reason, UInt16?, String?, Bool)] = [
            (.idle, 1001, "idle", true),
            (.authenticationTimeout, 1008, "authentication_timeout", true),
            (.slowReader, nil, "slow_reader", false),
            (.sessionExpired(dropping: "send"), 1008, "session_expired", false),
            (.replayOverflow(count: 1, bytes: 1), 1013, nil, false),
            (.refusedFrame(code: .protocolError, reason: "r", metric: .protocol), 1002, "protocol", true),
            (.malformed("e"), 1007, "malformed", true),
            (.perIPCap, 1008, "per_ip_cap", true),
            (.browserClosed(code: 4000), 4000, nil, false),
            (.requested(code: .normal, reason: "Sent"), 1000, nil, true),
        ]
        for (reason, code, metric, catchesUp) in reasons {
            #expect(reason.code == code, "\(reason)")
            #expect(reason.metric?.rawValue == metric, "\(reason)")
            #expect(reason.catchesUp == catchesUp, "\(reason)")
        }
        #expect(Reason.malformed("bad").text == "Malformed frame: bad")
        #expect(Reason.requested(code: .normal, reason: "Sent").text == "Sent")
    }
}
