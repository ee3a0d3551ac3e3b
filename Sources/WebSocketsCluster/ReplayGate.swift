import NIOConcurrencyHelpers
import WebSocketsConnection
import WebSocketsHub

/// How many replays run at once on one server. A replay reads rows and holds their payloads until they are written:
/// a reconnect storm (40 tabs × 10 rounds asking for everything) once held 455 MiB more and delayed live sends by a
/// median of 2.1 s. The rest wait their turn, at most ``maximumWaiting`` of them and for at most the time they ask;
/// beyond either they are refused at once and the browser hears that its recovery is incomplete.
package final class ReplayGate: Sendable {
    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var running = 0
        var waiting: [Waiter] = []
        var nextID: UInt64 = 0
    }

    /// The replays that run at once.
    let slots: Int
    /// The replays that may wait for a slot.
    let maximumWaiting: Int
    private let state = NIOLockedValueBox(State())

    package init(slots: Int, maximumWaiting: Int) {
        self.slots = max(1, slots)
        self.maximumWaiting = maximumWaiting
    }

    /// Takes a slot, waiting at most `limit` for one; `false`: none came in time, or too many already wait. A
    /// `true` must be followed by ``leave()``.
    package func enter(within limit: Duration) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let decision = state.withLockedValue { state -> (answer: Bool?, id: UInt64) in
                if state.running < slots {
                    state.running += 1
                    return (true, 0)
                }
                guard state.waiting.count < maximumWaiting else { return (false, 0) }
                state.nextID += 1
                state.waiting.append(Waiter(id: state.nextID, continuation: continuation))
                return (nil, state.nextID)
            }
            if let answer = decision.answer {
                continuation.resume(returning: answer)
                return
            }
            Task {
                try? await Task.sleep(for: limit)
                let expired = state.withLockedValue { state -> Waiter? in
                    guard let index = state.waiting.firstIndex(where: { $0.id == decision.id }) else { return nil }
                    return state.waiting.remove(at: index)
                }
                expired?.continuation.resume(returning: false)
            }
        }
    }

    /// Gives a slot back: the longest waiting replay takes it.
    package func leave() {
        let next = state.withLockedValue { state -> Waiter? in
            guard !state.waiting.isEmpty else {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.continuation.resume(returning: true)
    }

    /// How many replays run and wait now.
    package var counts: (running: Int, waiting: Int) {
        state.withLockedValue { ($0.running, $0.waiting.count) }
    }
}
