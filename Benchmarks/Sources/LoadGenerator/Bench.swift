import Dispatch
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import WebSockets

/// One peer under test with its clients, and the scenarios run against it.
final class Bench {
    struct Step {
        var offered: Double
        var delivered: Double
        var p50: Double
        var p99: Double
        var p999: Double
        var cpuPerDelivery: Double
        var failed: Int
        /// The server's write system calls per delivery: below 1 when frames leave in batches.
        var writesPerDelivery: Double = .nan
        /// The bytes on the wire per delivery, frame header included.
        var bytesPerDelivery: Double = .nan

        /// ` (N failed)` when some sends failed, for the printed lines.
        var failedNote: String { failed > 0 ? " (\(failed) failed)" : "" }
    }

    let peer: Peer
    let key: String
    let recorder = Recorder()
    let publisher: Publisher
    let curl: CurlClient
    let pipelined: PipelinedPublisher
    private(set) var channels: [any Channel] = []

    /// How sends reach the server: as from many pages at once, or one after another on one connection.
    enum PublisherModel: String {
        /// Up to 8 requests in flight, each on a connection of its own (libcurl's pool).
        case concurrent = "8 concurrent connections"
        /// Up to `--pipeline-depth` requests (8 unless told) pipelined on one keep-alive connection.
        case pipelined = "one pipelined connection"
    }

    /// Appended to every broadcast's details (`,"pad":"…"`) to make its frame about `--message-bytes` long.
    private let padding: String
    /// Whether the clients offer permessage-deflate.
    let compression: Bool

    init(
        peer: Peer, key: String, curl: CurlClient, pipelineDepth: Int = 8, messageBytes: Int = 0,
        compression: Bool = false
    ) {
        // `["b",{"ts":<16 to 19 digits>}]` is about 28 bytes; `,"pad":""` adds 9, then the padding itself.
        let pad = messageBytes - 28 - 9
        self.padding = pad > 0 ? ",\"pad\":\"" + Self.prose(count: pad) + "\"" : ""
        self.compression = compression
        self.peer = peer
        self.key = key
        // A client of its own: its connections begin with a send, as a publisher's do. Sharing the probes' client
        // (3,000 status fetches, the heap metric) sent sends over connections that began with a GET, which the
        // server keeps on SwiftNIO's path (`PublisherSniffer` decides on a connection's first request): in the
        // session of 2026-12-08 about 40% of the server's samples at 5,695 sends/s were on that path.
        self.publisher = Publisher(curl: CurlClient(maximumConcurrency: 8), inFlightLimit: 8)
        self.curl = curl
        self.pipelined = PipelinedPublisher(port: peer.port, depth: pipelineDepth)
    }

    /// `count` characters of words as a chat line or a notification has them, the same every run: what a message
    /// holds decides what compression saves (a run of one letter shrinks 100-fold, a chat line 2 to 3 times).
    static func prose(count: Int) -> String {
        let words = [
            "the", "order", "was", "shipped", "to", "your", "address", "and", "will", "arrive", "on", "Monday",
            "Anna", "replied", "in", "thread", "about", "invoice", "#4821", "please", "check", "new", "comment",
            "from", "Ben", "status", "changed", "pending", "approved", "user", "joined", "channel", "general",
            "meeting", "at", "3pm", "room", "B", "price", "updated", "EUR", "12.50", "item", "stock", "low",
        ]
        var state: UInt64 = 42
        var text = ""
        while text.count < count {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            text += (text.isEmpty ? "" : " ") + words[Int((state >> 33) % UInt64(words.count))]
        }
        return String(text.prefix(count))
    }

    /// The server's heap in use (its `websockets_heap_in_use_bytes` metric) in KiB, or -1 where it has none.
    func heapInUseKiB() async -> Int {
        await peer.metric("websockets_heap_in_use_bytes", curl: curl).map { Int($0 / 1024) } ?? -1
    }

    /// Connection `index` belongs to user `index % users + 1` (so the first `users` connections are one tab of
    /// each user, the next ones second tabs), from 127.0.0.1 for the first 25,000 and then from
    /// 127.0.0.x, one address per 25,000. Each
    /// tab has its own session, unless `sharedSessions` (then a user's tabs share one, as in one browser).
    func connect(upTo count: Int, users: Int, sharedSessions: Bool = false, inFlight: Int = 200) async throws {
        let start = channels.count
        guard count > start else { return }
        let readyBefore = recorder.ready
        var made: [any Channel] = []
        try await withThrowingTaskGroup(of: (any Channel).self) { group in
            var next = start
            func add() {
                let index = next
                next += 1
                let user = index % users + 1
                let tab = index / users + 1
                group.addTask { [peer, recorder, compression] in
                    try await Subscriber.connect(
                        port: peer.port, path: peer.path(user: user),
                        cookie: sharedSessions ? "sid=\(user)-shared" : "sid=\(user)-\(tab)",
                        dialect: peer.dialect, recorder: recorder,
                        localAddress: index < 25_000 ? nil : "127.0.0.\(2 + index / 25_000)", compression: compression)
                }
            }
            while next < min(count, start + inFlight) { add() }
            while let channel = try await group.next() {
                made.append(channel)
                if next < count { add() }
            }
        }
        channels += made
        let deadline = ContinuousClock.now + .seconds(60)
        while recorder.ready - readyBefore < count - start {
            guard ContinuousClock.now < deadline else {
                throw BenchmarkError("only \(recorder.ready - readyBefore) of \(count - start) clients became ready")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Publishes `rate` sends a second for `seconds` (to everyone, or to random users among `users`), waits for the
    /// deliveries (at most 5 s more), and measures.
    func measure(
        rate: Double, seconds: Double, users: Int?, deliveriesPerSend: Int, model: PublisherModel = .concurrent
    ) async -> Step {
        await settle()
        recorder.reset()
        let cpuBefore = peer.cpuSeconds
        let writesBefore = peer.writeCalls
        let start = DispatchTime.now().uptimeNanoseconds
        let peer = self.peer
        let key = self.key
        let padding = self.padding
        let request: @Sendable (Int) -> HTTPClientRequest = { _ in
            let message = #"["b",{"ts":\#(DispatchTime.now().uptimeNanoseconds)\#(padding)}]"#
            return peer.publish(message, user: users.map { Int.random(in: 1...$0) }, key: key)
        }
        let (sent, failed) =
            switch model {
            case .concurrent: await publisher.run(rate: rate, seconds: seconds, request: request)
            case .pipelined: await pipelined.run(rate: rate, seconds: seconds, request: request)
            }
        let expected = (sent - failed) * deliveriesPerSend
        let deadline = ContinuousClock.now + .seconds(5)
        while recorder.received < expected && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let received = recorder.received
        let bytes = recorder.bytes
        // Over the publishing window at least: the last send leaves 1/rate before the window's end.
        let elapsed = max(seconds, Double(recorder.lastReceipt &- start) / 1e9)
        let cpu = peer.cpuSeconds - cpuBefore
        let writes = peer.writeCalls - writesBefore
        let (p50, p99, p999) = recorder.percentiles()
        return Step(
            offered: rate, delivered: elapsed > 0 ? Double(received) / elapsed : 0, p50: p50, p99: p99, p999: p999,
            cpuPerDelivery: received > 0 ? cpu * 1e6 / Double(received) : .nan, failed: failed,
            writesPerDelivery: received > 0 ? Double(writes) / Double(received) : .nan,
            bytesPerDelivery: received > 0 ? Double(bytes) / Double(received) : .nan)
    }

    /// Waits until nothing has arrived for half a second (at most 30 s): an overloaded step's backlog must not
    /// count in the next one.
    func settle() async {
        let deadline = ContinuousClock.now + .seconds(30)
        var last = recorder.received
        while ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(500))
            let now = recorder.received
            if now == last { return }
            last = now
        }
    }

    /// Raises the rate by half each step until what is delivered stops rising (two steps without 5% more); the
    /// step that delivered most.
    func ladder(
        start: Double, users: Int?, deliveriesPerSend: Int, model: PublisherModel = .concurrent, log: (Step) -> Void
    ) async -> Step {
        var rate = start
        var best: Step?
        var misses = 0
        while misses < 2 {
            let step = await measure(
                rate: rate, seconds: 3, users: users, deliveriesPerSend: deliveriesPerSend, model: model)
            log(step)
            if step.delivered > (best?.delivered ?? 0) * 1.05 {
                misses = 0
            } else {
                misses += 1
            }
            if step.delivered > best?.delivered ?? 0 { best = step }
            if step.p99 > 5000 || step.failed > 0 { break }
            rate *= 1.5
        }
        return best ?? Step(offered: 0, delivered: 0, p50: .nan, p99: .nan, p999: .nan, cpuPerDelivery: .nan, failed: 0)
    }

    /// `concurrency` clients each keep one echo in flight for `seconds`.
    func echo(concurrency: Int, seconds: Double) async -> Step {
        let echoing = Array(channels.prefix(concurrency))
        await settle()
        recorder.reset()
        let cpuBefore = peer.cpuSeconds
        for channel in echoing { Subscriber.startEchoing(on: channel) }
        try? await Task.sleep(for: .seconds(seconds))
        for channel in echoing { Subscriber.stopEchoing(on: channel) }
        let received = recorder.received
        let cpu = peer.cpuSeconds - cpuBefore
        let (p50, p99, p999) = recorder.percentiles()
        try? await Task.sleep(for: .milliseconds(500))
        return Step(
            offered: Double(concurrency), delivered: Double(received) / seconds, p50: p50, p99: p99, p999: p999,
            cpuPerDelivery: received > 0 ? cpu * 1e6 / Double(received) : .nan, failed: 0)
    }

    /// Closes the connections past the first `count`, and waits until the peer has seen them go.
    func close(after count: Int) async {
        for channel in channels.dropFirst(count) { channel.close(promise: nil) }
        channels = Array(channels.prefix(count))
        try? await Task.sleep(for: .seconds(2))
    }

    func closeAll() async {
        await publisher.curl.shutdown()
        for channel in channels { channel.close(promise: nil) }
        channels = []
        try? await Task.sleep(for: .milliseconds(500))
    }
}
