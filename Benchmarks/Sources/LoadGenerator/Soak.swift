import Foundation
import NIOConcurrencyHelpers
import NIOCore
import WebSockets

/// Issue 23's soak: `websockets start` against the generator's site for `minutes`, with a population of idle tabs
/// (one user each), tabs coming and going every second (each authenticates and sends one message the site
/// receives), broadcasts and sends to single users, and the hostile clients of ``HostileClient`` attacking all
/// along. Every minute it samples the server's RSS, heap in use and open descriptors: they must be flat after the
/// first 5 minutes.
enum Soak {
    struct Sample {
        var minute: Int
        /// KiB.
        var rss: Int
        /// KiB, from the server's `websockets_heap_in_use_bytes`.
        var heap: Int
        var descriptors: Int
        var connections: Int
        var events: Int
    }

    struct Options {
        var minutes = 30
        /// Tabs open throughout.
        var population = 5_000
        /// Tabs closed and as many opened each second.
        var churnPerSecond = 50
        var broadcastsPerSecond = 2
        var targetedPerSecond = 20
        /// Seconds between samples (a minute unless told, for short trials).
        var sampleSeconds = 60
        /// The hostile clients that run (all unless told).
        var hostile = HostileClient.Kind.allCases
    }

    static func run(
        _ options: Options, siteURL: String, key: String, curl: CurlClient, events: @escaping @Sendable () -> Int
    ) async throws -> [Sample] {
        let peer = try await Peer.start(.ours, siteURL: siteURL, key: key, core: "0")
        defer { peer.stop() }
        let recorder = Recorder()
        var nextUser = 1
        var open = CircularBuffer<(user: Int, channel: any Channel)>()

        func connect(_ count: Int) async {
            let users = nextUser..<(nextUser + count)
            nextUser += count
            await withTaskGroup(of: (Int, (any Channel)?).self) { group in
                for user in users {
                    group.addTask {
                        let channel = try? await Subscriber.connect(
                            port: peer.port, path: "/WebSockets", cookie: "sid=\(user)-1", dialect: .webSockets,
                            recorder: recorder, localAddress: nil)
                        if let channel { try? await Subscriber.send(#"["note",{"user":\#(user)}]"#, on: channel) }
                        return (user, channel)
                    }
                }
                for await (user, channel) in group {
                    if let channel { open.append((user, channel)) }
                }
            }
        }

        say(
            "Soak: \(options.population) tabs, \(options.churnPerSecond) closed and opened a second, "
                + "\(options.broadcastsPerSecond) broadcasts and \(options.targetedPerSecond) targeted sends a second, "
                + "hostile: \(options.hostile.map(\.rawValue).joined(separator: ", "))")
        for start in stride(from: 0, to: options.population, by: 500) {
            await connect(min(500, options.population - start))
        }
        let hostile = options.hostile.map { HostileClient(kind: $0, port: peer.port) }
        for client in hostile { client.start() }
        defer { for client in hostile { client.stop() } }

        let publisher = Publisher(curl: curl, inFlightLimit: 8)
        let began = ContinuousClock.now
        var samples: [Sample] = []
        let interval = Duration.seconds(options.sampleSeconds)
        var nextSample = began + interval
        while samples.count < options.minutes * 60 / options.sampleSeconds {
            let second = ContinuousClock.now
            for _ in 0..<min(options.churnPerSecond, open.count) { open.removeFirst().channel.close(promise: nil) }
            await connect(options.churnPerSecond)
            let live = open.map(\.user)
            _ = await publisher.run(rate: Double(options.broadcastsPerSecond + options.targetedPerSecond), seconds: 0.5)
            {
                index in
                let stamp = DispatchTime.now().uptimeNanoseconds
                let send =
                    index < options.broadcastsPerSecond
                    ? #"["b",{"ts":\#(stamp)},1]"# : #"["t",{"ts":\#(stamp)},3,\#(live.randomElement() ?? 1)]"#
                return HTTPClientRequest(
                    method: "POST", url: "http://127.0.0.1:\(peer.port)/WebSockets/send",
                    headers: [("X-WebSockets-Key", key)], body: Array(send.utf8))
            }
            if ContinuousClock.now >= nextSample {
                nextSample += interval
                let sample = Sample(
                    minute: samples.count + 1, rss: peer.rssKiB,
                    heap: Int((await peer.metric("websockets_heap_in_use_bytes", curl: curl) ?? -1024) / 1024),
                    descriptors: Int(await peer.metric("process_open_fds", curl: curl) ?? -1),
                    connections: Int(await peer.metric("websockets_connections", curl: curl) ?? -1),
                    events: events())
                samples.append(sample)
                say(
                    "  sample \(sample.minute): RSS \(sample.rss) KiB, heap in use \(sample.heap) KiB, "
                        + "\(sample.descriptors) descriptors, \(sample.connections) connections, \(sample.events) "
                        + "events at the site; hostile rounds: "
                        + hostile.map { "\($0.rounds)" }.joined(separator: "/"))
            }
            let left = .seconds(1) - (ContinuousClock.now - second)
            if left > .zero { try await Task.sleep(for: left) }
        }
        for (_, channel) in open { channel.close(promise: nil) }
        return samples
    }

    /// Growth of `values` from `start` (a minute, 1-based) to the last, in percent of the value at `start`.
    static func growth(_ values: [Int], from start: Int) -> Double {
        guard values.count >= start, let first = values.dropFirst(start - 1).first, first > 0, let last = values.last
        else { return .nan }
        return Double(last - first) / Double(first) * 100
    }

    /// The summary lines: growth over the last 20 samples (or all after the fifth when fewer), as last minus first
    /// and as the least-squares trend over those samples (one sample's step up or down, as glibc's arenas make,
    /// does not decide the trend), in percent of the first.
    static func describe(_ samples: [Sample]) -> String {
        let start = max(6, samples.count - 19)
        func line(_ name: String, _ values: [Int]) -> String {
            let tail = Array(values.dropFirst(start - 1))
            let trend = Churn.Result.slope(tail.map(Double.init)) * Double(max(0, tail.count - 1))
            return String(
                format: "  %@: sample %d %d, last %d, min %d, max %d: %+.2f%% last minus first, %+.2f%% trend", name,
                start, tail.first ?? -1, tail.last ?? -1, tail.min() ?? -1, tail.max() ?? -1,
                growth(values, from: start), trend / Double(max(1, tail.first ?? 1)) * 100)
        }
        return [
            "Growth from sample \(start) to sample \(samples.count):",
            line("RSS KiB", samples.map(\.rss)), line("heap in use KiB", samples.map(\.heap)),
            line("descriptors", samples.map(\.descriptors)),
        ].joined(separator: "\n")
    }
}
