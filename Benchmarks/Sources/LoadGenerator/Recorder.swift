import Dispatch
import Histogram
import NIOConcurrencyHelpers

/// What the clients saw: how many are ready (authenticated, or subscribed for Nchan), and the latency of every
/// timestamped message they read, in an HdrHistogram (nanoseconds).
final class Recorder: Sendable {
    private struct State {
        var ready = 0
        var received = 0
        /// The bytes on the wire of the timestamped frames, headers included.
        var bytes = 0
        var last: UInt64 = 0
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    }

    private let state = NIOLockedValueBox(State())

    func markReady() {
        state.withLockedValue { $0.ready += 1 }
    }

    var ready: Int { state.withLockedValue { $0.ready } }
    var received: Int { state.withLockedValue { $0.received } }
    /// The bytes on the wire of the messages received since the last reset.
    var bytes: Int { state.withLockedValue { $0.bytes } }
    /// When the last timestamped message was read.
    var lastReceipt: UInt64 { state.withLockedValue { $0.last } }

    /// Records a message stamped `sent` (monotonic nanoseconds, the same clock in every process of the machine).
    func record(sent: UInt64) {
        let now = DispatchTime.now().uptimeNanoseconds
        state.withLockedValue { state in
            state.received += 1
            state.last = now
            _ = state.histogram.record(now > sent ? now - sent : 0)
        }
    }

    /// Records the messages of one read, stamped `sent`, `bytes` on the wire in all, under one lock.
    func record(sent: [UInt64], bytes: Int = 0) {
        let now = DispatchTime.now().uptimeNanoseconds
        state.withLockedValue { state in
            state.received += sent.count
            state.bytes += bytes
            state.last = now
            for stamp in sent { _ = state.histogram.record(now > stamp ? now - stamp : 0) }
        }
    }

    /// Clears the counts and the histogram (not the ready count).
    func reset() {
        state.withLockedValue { state in
            state.received = 0
            state.bytes = 0
            state.histogram.reset()
        }
    }

    /// p50, p99 and p99.9 in milliseconds.
    func percentiles() -> (p50: Double, p99: Double, p999: Double) {
        state.withLockedValue { state in
            guard state.histogram.totalCount > 0 else { return (.nan, .nan, .nan) }
            func ms(_ p: Double) -> Double { Double(state.histogram.valueAtPercentile(p)) / 1e6 }
            return (ms(50), ms(99), ms(99.9))
        }
    }
}

/// Finds `"ts":<digits>` in a frame's bytes without parsing the JSON: the generator's work per message must stay
/// small next to the server's.
func timestamp(in bytes: UnsafeRawBufferPointer) -> UInt64? {
    let key: [UInt8] = Array(#""ts":"#.utf8)
    guard bytes.count > key.count else { return nil }
    var index = 0
    while index + key.count <= bytes.count {
        if bytes[index] == key[0] && bytes[index + 1] == key[1] && bytes[index + 2] == key[2]
            && bytes[index + 3] == key[3] && bytes[index + 4] == key[4]
        {
            var value: UInt64 = 0
            var position = index + key.count
            var digits = 0
            while position < bytes.count, bytes[position] >= 48, bytes[position] <= 57 {
                value = value * 10 + UInt64(bytes[position] - 48)
                position += 1
                digits += 1
            }
            return digits > 0 ? value : nil
        }
        index += 1
    }
    return nil
}
