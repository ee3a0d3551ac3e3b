import Foundation
import WebSockets

/// Issue 11's leak scenario: connections that come and go must leave no memory behind. Each round opens
/// `perRound` connections, authenticates them against the site, sends one message from each (posted to the site's
/// message endpoint), closes them, and waits until the server holds none and has posted every disconnection; the
/// server's RSS is read then. Growth per round after the first is the leak (the first round also grows the heap
/// and caches to their working size).
enum Churn {
    struct Result {
        /// The server's RSS after each round, KiB.
        var rounds: [Int]
        /// The server's heap in use after each round (glibc's `malloc_stats`), KiB: what it still holds, without
        /// the arenas' free space that RSS also counts.
        var heap: [Int]
        var perRound: Int

        /// The heap's growth per round after the first, in MiB (least-squares slope, as for RSS).
        var heapGrowthPerRound: Double {
            Self.slope(heap.dropFirst().map(Double.init)) / 1024
        }

        /// RSS growth per `perRound` connections after the first round, in MiB: the least-squares slope of RSS over
        /// the rounds after the first. A slope rather than last minus first: glibc's arenas make RSS step up and
        /// down by several MiB between rounds without a trend (measured: 115, 122, 122 MiB...), and one step at
        /// either end would otherwise decide the figure.
        var growthPerRound: Double {
            Self.slope(rounds.dropFirst().map(Double.init)) / 1024
        }

        /// The least-squares slope of `values` over their indexes.
        static func slope(_ values: [Double]) -> Double {
            guard values.count > 1 else { return .nan }
            let meanX = Double(values.count - 1) / 2
            let meanY = values.reduce(0, +) / Double(values.count)
            var numerator = 0.0
            var denominator = 0.0
            for (x, y) in values.enumerated() {
                numerator += (Double(x) - meanX) * (y - meanY)
                denominator += (Double(x) - meanX) * (Double(x) - meanX)
            }
            return numerator / denominator
        }

        /// RSS after the last round minus after the first, per round, in MiB (the plain reading).
        var averageGrowthPerRound: Double {
            guard rounds.count > 1 else { return .nan }
            return Double(rounds.last! - rounds.first!) / Double(rounds.count - 1) / 1024
        }
    }

    static func run(
        total: Int, perRound: Int, siteURL: String, key: String, curl: CurlClient, events: @escaping () -> Int
    ) async throws -> Result {
        let peer = try await Peer.start(.ours, siteURL: siteURL, key: key, core: "0")
        defer { peer.stop() }
        var rounds: [Int] = []
        var heap: [Int] = []
        let health = HTTPClientRequest(url: "http://127.0.0.1:\(peer.port)/WebSockets/health")
        for round in 0..<max(1, total / perRound) {
            let bench = Bench(peer: peer, key: key, curl: curl)
            let eventsBefore = events()
            try await bench.connect(upTo: perRound, users: perRound, inFlight: 500)
            for channel in bench.channels {
                try? await Subscriber.send(#"["note",{"round":\#(round)}]"#, on: channel)
            }
            await bench.closeAll()
            // Every connection gone, and its message and disconnection posted (2 events each).
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let connections =
                    (try? await curl.perform(health).get()).flatMap { try? JSON(parsing: $0.body) }?["connections"]?
                    .intValue ?? -1
                if connections == 0 && events() - eventsBefore >= 3 * perRound { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            // The server checks every second whether to return freed memory to the system.
            try await Task.sleep(for: .seconds(3))
            rounds.append(peer.rssKiB)
            heap.append(await bench.heapInUseKiB())
            say(
                "  round \(round + 1): \(perRound) connections opened, used and closed; server RSS \(rounds.last!) KiB, "
                    + "heap in use \(heap.last!) KiB")
        }
        return Result(rounds: rounds, heap: heap, perRound: perRound)
    }
}
