import Foundation

/// The figures of every peer, printed as one Markdown table with the ratio ours / better peer.
struct Report {
    let options: LoadGenerator.Options
    private var numbers: [String: Double] = [:]
    private var steps: [String: Bench.Step] = [:]
    var storm: (Duration, Int)?
    /// The churn scenario's RSS after each round.
    var churn: Churn.Result?
    /// The bare-write floor at 50% of the better peer's peak.
    var writeFloor: Bench.Step?

    init(options: LoadGenerator.Options) {
        self.options = options
    }

    mutating func set(_ kind: Peer.Kind, _ name: String, _ value: Double) {
        numbers["\(kind)/\(name)"] = value
    }

    mutating func set(_ kind: Peer.Kind, _ name: String, _ step: Bench.Step) {
        steps["\(kind)/\(name)"] = step
    }

    func value(_ kind: Peer.Kind, _ name: String) -> String {
        numbers["\(kind)/\(name)"].map { String(format: "%.2f", $0) } ?? "-"
    }

    /// The better peer's peak broadcast deliveries/s.
    var bestPeerBroadcast: Double? {
        [Peer.Kind.ws, .socketIO, .nchan].compactMap { numbers["\($0)/broadcastMax"] }.max()
    }

    private typealias Row = (label: String, higherIsBetter: Bool, value: (Peer.Kind) -> Double?)

    func print() {
        let peers = options.peers
        let rows: [Row] = [
            (
                "Broadcast to \(options.subscribers), one pipelined publisher connection (\(options.pipelineDepth) in flight): max deliveries/s",
                true, { numbers["\($0)/broadcastPipelinedMax"] }
            ),
            ("  CPU µs per delivery at that peak", false, { steps["\($0)/broadcastPipelinedPeak"]?.cpuPerDelivery }),
            (
                "  write syscalls per delivery at that peak", false,
                { steps["\($0)/broadcastPipelinedPeak"]?.writesPerDelivery }
            ),
            (
                "Broadcast to \(options.subscribers), 8 concurrent publisher connections: max deliveries/s", true,
                { numbers["\($0)/broadcastMax"] }
            ),
            ("  CPU µs per delivery at that peak", false, { steps["\($0)/broadcastPeak"]?.cpuPerDelivery }),
            ("  CPU µs per delivery at 50% of its peak", false, { steps["\($0)/broadcast50"]?.cpuPerDelivery }),
            (
                "  write syscalls per delivery at 50% of its peak", false,
                { steps["\($0)/broadcast50"]?.writesPerDelivery }
            ),
            ("  p50 ms at 50% of its peak", false, { steps["\($0)/broadcast50"]?.p50 }),
            ("  p99 ms at 50% of its peak", false, { steps["\($0)/broadcast50"]?.p99 }),
            ("  p99.9 ms at 50% of its peak", false, { steps["\($0)/broadcast50"]?.p999 }),
            ("  p50 ms at 90% of its peak", false, { steps["\($0)/broadcast90"]?.p50 }),
            ("  p99 ms at 90% of its peak", false, { steps["\($0)/broadcast90"]?.p99 }),
            ("  p99.9 ms at 90% of its peak", false, { steps["\($0)/broadcast90"]?.p999 }),
            (
                "  CPU µs per delivery at 50% of the better peer's peak", false,
                { steps["\($0)/broadcastPeerHalf"]?.cpuPerDelivery ?? steps["\($0)/broadcast50"]?.cpuPerDelivery }
            ),
            (
                "  write syscalls per delivery at 50% of the better peer's peak", false,
                { steps["\($0)/broadcastPeerHalf"]?.writesPerDelivery ?? steps["\($0)/broadcast50"]?.writesPerDelivery }
            ),
            (
                "  p99 ms at 50% of the better peer's peak", false,
                { steps["\($0)/broadcastPeerHalf"]?.p99 ?? steps["\($0)/broadcast50"]?.p99 }
            ),
            (
                "Targeted sends (\(options.users) users, \(options.idle) tabs): max sends/s", true,
                { numbers["\($0)/targetedMax"] }
            ),
            ("  p50 ms at 50% of its peak", false, { steps["\($0)/targeted50"]?.p50 }),
            ("  p99 ms at 50% of its peak", false, { steps["\($0)/targeted50"]?.p99 }),
            (
                "  CPU µs per send at that peak", false,
                { steps["\($0)/targetedPeak"].map { $0.cpuPerDelivery * Double(options.idle / options.users) } }
            ),
            (
                "Targeted sends, one pipelined publisher connection (\(options.pipelineDepth) in flight): max sends/s",
                true,
                { numbers["\($0)/targetedPipelinedMax"] }
            ),
            (
                "  CPU µs per send at that peak", false,
                {
                    steps["\($0)/targetedPipelinedPeak"].map {
                        $0.cpuPerDelivery * Double(options.idle / options.users)
                    }
                }
            ),
            ("Idle RSS KiB per connection at \(options.subscribers)", false, { numbers["\($0)/idle10k"] }),
            (
                "Idle RSS KiB per connection at \(options.idle), 20 s after the last authentication", false,
                { numbers["\($0)/idle19k"] }
            ),
            ("Echo, \(options.echo) in flight: messages/s", true, { steps["\($0)/echo"]?.delivered }),
            ("  p50 ms", false, { steps["\($0)/echo"]?.p50 }),
            ("  p99 ms", false, { steps["\($0)/echo"]?.p99 }),
            ("  CPU µs per message", false, { steps["\($0)/echo"]?.cpuPerDelivery }),
        ]
        Swift.print("| measure | " + peers.map(\.rawValue).joined(separator: " | ") + " | ours / better peer |")
        Swift.print("| --- | " + peers.map { _ in "---:" }.joined(separator: " | ") + " | ---: |")
        for row in rows {
            let cells = peers.map { kind in row.value(kind).map(Self.format) ?? "-" }
            var ratio = "-"
            let others = peers.filter { $0 != .ours && $0 != .oursWithoutEvents && $0 != .nioFloor }.compactMap {
                row.value($0)
            }.filter {
                $0.isFinite
            }
            if let ours = row.value(.ours), ours.isFinite, !others.isEmpty {
                let better = row.higherIsBetter ? others.max()! : others.min()!
                if better > 0 { ratio = String(format: "%.2f", ours / better) }
            }
            Swift.print("| \(row.label) | " + cells.joined(separator: " | ") + " | \(ratio) |")
        }
        if let floor = writeFloor {
            Swift.print(
                String(
                    format: "\nKernel floor at 50%% of the better peer's peak (a bare write(2) per delivery, no server "
                        + "code): %.2f µs CPU per delivery, p50 %.2f ms, p99 %.2f ms", floor.cpuPerDelivery, floor.p50,
                    floor.p99))
        }
        if let (took, requests) = storm {
            Swift.print(
                "\nReconnect storm (ours): \(options.storm) clients of \(options.sessions) sessions authenticated in "
                    + "\(took.formatted(.units(allowed: [.seconds, .milliseconds]))); site requests: \(requests)")
        }
        if let churn {
            Swift.print(
                String(
                    format:
                        "\nChurn (ours): %d connections opened, authenticated, messaged and closed in rounds of %d; "
                        + "RSS growth per %d after the first round: %.2f MiB (slope; last minus first per round %.2f MiB; "
                        + "heap in use %.2f MiB per round; RSS after each round, KiB: %@; heap in use, KiB: %@)",
                    churn.rounds.count * churn.perRound, churn.perRound, churn.perRound, churn.growthPerRound,
                    churn.averageGrowthPerRound, churn.heapGrowthPerRound,
                    churn.rounds.map(String.init).joined(separator: ", "),
                    churn.heap.map(String.init).joined(separator: ", ")))
        }
    }

    private static func format(_ value: Double) -> String {
        guard value.isFinite else { return "-" }
        if value >= 1000 { return String(format: "%.0f", value) }
        return String(format: "%.2f", value)
    }
}
