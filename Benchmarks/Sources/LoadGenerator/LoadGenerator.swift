import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import WebSockets
import WebSocketsLaunch

/// The benchmarks of issue 5: our server side by side with Node `ws` and Nchan, in one run.
///
///     LoadGenerator run [--peers ws,socketio,nchan,ours,ours-none,floor] [--subscribers 10000] [--idle 19000]
///                       [--users 19000]
///                       [--storm 10000] [--sessions 1000] [--echo 100] [--pipeline-depth 8] [--message-bytes 28]
///                       [--idle-only yes] [--only broadcast,echo,targeted]
///                       [--broadcast-rates 5.9,10 [--publisher pipelined|concurrent]] [--compression yes]
///     LoadGenerator soak [--minutes 30] [--population 5000] [--churn 50]   (issue 23's soak: see Soak)
///     LoadGenerator measure-write-floor CONNECTIONS RATE SECONDS   (the kernel's cost of a bare write per delivery)
///
/// Run it pinned to core 1 (`taskset -c 1`); it pins every server to core 0.
/// Prints and flushes: a long run's progress shows as it goes, also when written to a file.
func say(_ text: String) {
    print(text)
    fflush(nil)
}

@main
struct LoadGenerator {
    static func main() async throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "serve-nio-floor":
            EventLoopSizing.sizeSharedGroup()
            try await NIOFloor.serve(port: Int(arguments[1]) ?? 0)
        case "write-floor":
            try WriteFloor.write(
                port: Int(arguments[1]) ?? 0, count: Int(arguments[2]) ?? 0, rate: Double(arguments[3]) ?? 1,
                seconds: Double(arguments[4]) ?? 1)
        case "measure-write-floor":
            let result = try await WriteFloor.measure(
                count: Int(arguments[1]) ?? 10_000, rate: Double(arguments[2]) ?? 5, seconds: Double(arguments[3]) ?? 5)
            say(WriteFloor.describe(result, count: Int(arguments[1]) ?? 10_000, rate: Double(arguments[2]) ?? 5))
        case "run":
            try await run(Options(Array(arguments.dropFirst())))
        case "soak":
            try await soak(Array(arguments.dropFirst()))
        default:
            say("usage: LoadGenerator run [options] | measure-write-floor CONNECTIONS RATE SECONDS")
            exit(2)
        }
    }

    struct Options {
        var peers: [Peer.Kind] = [.ws, .socketIO, .nchan, .ours]
        var subscribers = 10_000
        var idle = 19_000
        /// Distinct users the clients belong to: one connection each unless told.
        var users = 19_000
        var storm = 10_000
        var sessions = 1_000
        var echo = 100
        /// How many requests the pipelined publisher keeps in flight.
        var pipelineDepth = 8
        /// The broadcasts' and targeted sends' message length, padded (28, unpadded, unless told).
        var messageBytes = 0
        /// Only connections, idle memory and the storm: no sends.
        var idleOnly = false
        /// Broadcasts per second to measure for 10 s each instead of everything else (for profiling a rate).
        var broadcastRates: [Double] = []
        /// How `--broadcast-rates` publishes.
        var publisher = Bench.PublisherModel.concurrent
        /// Connections opened, used and closed by the churn scenario (in rounds of 10,000); 0 skips it.
        var churn = 100_000
        /// Only the churn scenario.
        var churnOnly = false
        /// Milliseconds the site's message endpoint takes to answer (a slow site: events wait at the server).
        var siteDelay = 0
        /// The scenarios to run after the idle figures (`broadcast`, `echo`, `targeted`); all when empty.
        var only: Set<String> = []
        /// Whether the clients offer permessage-deflate (as browsers do).
        var compression = false

        /// Whether `scenario` is measured in this run.
        func runs(_ scenario: String) -> Bool { only.isEmpty || only.contains(scenario) }

        init(_ arguments: [String]) {
            var index = 0
            while index + 1 < arguments.count {
                let value = arguments[index + 1]
                switch arguments[index] {
                case "--peers":
                    let names: [String: Peer.Kind] = [
                        "ours": .ours, "ours-none": .oursWithoutEvents, "ws": .ws, "nchan": .nchan, "floor": .nioFloor,
                        "socketio": .socketIO,
                    ]
                    peers = value.split(separator: ",").compactMap { names[String($0)] }
                case "--subscribers": subscribers = Int(value) ?? subscribers
                case "--idle": idle = Int(value) ?? idle
                case "--users": users = Int(value) ?? users
                case "--storm": storm = Int(value) ?? storm
                case "--sessions": sessions = Int(value) ?? sessions
                case "--echo": echo = Int(value) ?? echo
                case "--pipeline-depth": pipelineDepth = max(1, Int(value) ?? pipelineDepth)
                case "--message-bytes": messageBytes = Int(value) ?? messageBytes
                case "--idle-only": idleOnly = value == "yes"
                case "--broadcast-rates": broadcastRates = value.split(separator: ",").compactMap { Double($0) }
                case "--publisher": publisher = value == "pipelined" ? .pipelined : .concurrent
                case "--churn": churn = Int(value) ?? churn
                case "--churn-only": churnOnly = value == "yes"
                case "--site-delay-ms": siteDelay = Int(value) ?? 0
                case "--only": only = Set(value.split(separator: ",").map(String.init))
                case "--compression": compression = value == "yes"
                default: break
                }
                index += 2
            }
        }
    }

    static func soak(_ arguments: [String]) async throws {
        var options = Soak.Options()
        for index in stride(from: 0, to: arguments.count - 1, by: 2) {
            let value = Int(arguments[index + 1]) ?? 0
            switch arguments[index] {
            case "--minutes": options.minutes = value
            case "--population": options.population = value
            case "--churn": options.churnPerSecond = value
            case "--broadcasts": options.broadcastsPerSecond = value
            case "--targeted": options.targetedPerSecond = value
            case "--sample-seconds": options.sampleSeconds = max(1, value)
            case "--hostile":
                options.hostile = arguments[index + 1].split(separator: ",").compactMap {
                    HostileClient.Kind(name: String($0))
                }
            default: break
            }
        }
        let key = SecurityKey.generate()
        let siteEvents = NIOLockedValueBox(0)
        let site = try await testSite(requests: NIOLockedValueBox(0), events: siteEvents, delay: 0)
        let curl = CurlClient(maximumConcurrency: 32)
        say(machineDescription())
        let samples = try await Soak.run(
            options, siteURL: "http://127.0.0.1:\(site.port)", key: key, curl: curl,
            events: { siteEvents.withLockedValue { $0 } })
        say(Soak.describe(samples))
        await curl.shutdown()
        await site.shutdown()
        exit(0)
    }

    /// The site: a session endpoint answering for `sid=<user>-<tab>` cookies, and a message endpoint that counts the
    /// events posted to it and answers an `echo` with the same details to the sending connection, after `delay`
    /// milliseconds.
    static func testSite(
        requests: NIOLockedValueBox<Int>, events: NIOLockedValueBox<Int>, delay: Int
    ) async throws -> HTTPServer {
        try await HTTPServer(port: 0) { request in
            if request.path == "/api/WebSockets/message" {
                if delay > 0 { try? await Task.sleep(for: .milliseconds(delay)) }
                events.withLockedValue { $0 += 1 }
                guard let event = try? JSON(parsing: request.body), event["action"]?.stringValue == "echo",
                    let connection = event["connection"]
                else { return HTTPServerResponse() }
                let reply: JSON = [.array([.string("echo"), event["details"] ?? .null, .int(7), connection])]
                return .json(reply)
            }
            guard request.path == "/api/WebSockets/session", let sid = request.cookie("sid"),
                let user = Int64(sid.split(separator: "-").first ?? "")
            else { return HTTPServerResponse(status: .forbidden) }
            requests.withLockedValue { $0 += 1 }
            return .json(["user": .int(user), "session": .string(sid)])
        }
    }

    static func run(_ options: Options) async throws {
        let key = SecurityKey.generate()
        let siteRequests = NIOLockedValueBox(0)
        let siteEvents = NIOLockedValueBox(0)
        let site = try await testSite(requests: siteRequests, events: siteEvents, delay: options.siteDelay)
        let siteURL = "http://127.0.0.1:\(site.port)"
        let curl = CurlClient(maximumConcurrency: 32)
        var report = Report(options: options)
        say(machineDescription())

        if options.churnOnly {
            try await churn(options, siteURL: siteURL, key: key, curl: curl, events: siteEvents, report: &report)
            report.print()
            exit(0)
        }

        for kind in options.peers {
            say("\n## \(kind.rawValue)")
            let peer = try await Peer.start(kind, siteURL: siteURL, key: key, core: "0")
            defer { peer.stop() }
            let bench = Bench(
                peer: peer, key: key, curl: curl, pipelineDepth: options.pipelineDepth,
                messageBytes: options.messageBytes, compression: options.compression)
            do {
                try await measure(peer: peer, bench: bench, options: options, report: &report)
            } catch {
                say("\(kind.rawValue) failed: \(error)")
            }
            await bench.closeAll()
        }

        if options.peers.contains(.ours), !options.idleOnly, options.broadcastRates.isEmpty,
            let peers = report.bestPeerBroadcast
        {
            // What one write per delivery costs with no server code at all, at the rate of the CPU and p99 bars.
            let rate = peers * 0.5 / Double(options.subscribers)
            say("\n## Kernel floor: a bare write(2) per delivery")
            do {
                let result = try await WriteFloor.measure(count: options.subscribers, rate: rate, seconds: 5)
                say(WriteFloor.describe(result, count: options.subscribers, rate: rate))
                report.writeFloor = result
            } catch {
                say("write floor failed: \(error)")
            }
        }

        if options.peers.contains(.ours), options.storm > 0 {
            say("\n## Reconnect storm (ours)")
            let peer = try await Peer.start(.ours, siteURL: siteURL, key: key, core: "0")
            defer { peer.stop() }
            let bench = Bench(
                peer: peer, key: key, curl: curl, pipelineDepth: options.pipelineDepth,
                messageBytes: options.messageBytes)
            let before = siteRequests.withLockedValue { $0 }
            let started = ContinuousClock.now
            try await bench.connect(upTo: options.storm, users: options.sessions, sharedSessions: true, inFlight: 1000)
            let took = ContinuousClock.now - started
            let requests = siteRequests.withLockedValue { $0 } - before
            say(
                "\(options.storm) clients of \(options.sessions) sessions authenticated in \(took); site requests: \(requests)"
            )
            report.storm = (took, requests)
            await bench.closeAll()
        }

        if options.peers.contains(.ours) {
            try await churn(options, siteURL: siteURL, key: key, curl: curl, events: siteEvents, report: &report)
        }

        say("")
        report.print()
        await curl.shutdown()
        await site.shutdown()
        exit(0)
    }

    /// The churn scenario (ours only): RSS growth per 10,000 connections that came and went.
    static func churn(
        _ options: Options, siteURL: String, key: String, curl: CurlClient, events: NIOLockedValueBox<Int>,
        report: inout Report
    ) async throws {
        guard options.churn > 0 else { return }
        say("\n## Churn (ours): \(options.churn) connections in rounds of 10,000")
        let result = try await Churn.run(
            total: options.churn, perRound: 10_000, siteURL: siteURL, key: key, curl: curl,
            events: { events.withLockedValue { $0 } })
        say(
            String(
                format: "RSS growth per 10,000 connections after the first round: %.2f MiB (slope); last minus first "
                    + "per round: %.2f MiB; heap in use: %.2f MiB per round (slope)", result.growthPerRound,
                result.averageGrowthPerRound, result.heapGrowthPerRound))
        report.churn = result
    }

    /// One status page viewer's cost with `connections` open (``StatusProbe``).
    static func probeStatus(peer: Peer, bench: Bench, connections: Int) async throws {
        let result = try await StatusProbe.run(peer: peer, key: bench.key, curl: bench.curl)
        say(
            String(
                format: "Status page data with %d connections open: %.1f µs server CPU and %.2f ms per fetch, %d bytes "
                    + "(GET /WebSockets/health: %.1f µs)",
                connections, result.cpuMicroseconds, result.milliseconds, result.bytes, result.healthCPUMicroseconds))
    }

    static func measure(peer: Peer, bench: Bench, options: Options, report: inout Report) async throws {
        let kind = peer.kind
        if options.compression { say("Clients offer permessage-deflate.") }
        try await Task.sleep(for: .seconds(1))
        let rssBase = peer.rssKiB
        let probesStatus = kind == .ours || kind == .oursWithoutEvents
        if probesStatus { try await probeStatus(peer: peer, bench: bench, connections: 0) }
        let started = ContinuousClock.now
        try await bench.connect(upTo: options.subscribers, users: options.users)
        say("\(options.subscribers) clients ready in \(ContinuousClock.now - started)")
        // Idle memory first, before any send has grown the heap: 10,000 connections, then 19,000.
        try await Task.sleep(for: .seconds(2))
        report.set(kind, "idle10k", Double(peer.rssKiB - rssBase) / Double(options.subscribers))
        try await bench.connect(upTo: options.idle, users: options.users)
        // 20 s after the last authentication (issue 23): what the server keeps once the burst's work is done, not
        // what it holds while the site still receives the events.
        try await Task.sleep(for: .seconds(20))
        report.set(kind, "idle19k", Double(peer.rssKiB - rssBase) / Double(options.idle))
        if kind == .ours || kind == .oursWithoutEvents {
            say("Heap in use: \(await bench.heapInUseKiB()) KiB")
        }
        if probesStatus { try await probeStatus(peer: peer, bench: bench, connections: options.idle) }
        say(
            "Idle RSS per connection: \(report.value(kind, "idle10k")) KiB at \(options.subscribers), "
                + "\(report.value(kind, "idle19k")) KiB at \(options.idle) (RSS \(rssBase) KiB before)")
        if !options.broadcastRates.isEmpty {
            await bench.close(after: options.subscribers)
            for rate in options.broadcastRates {
                let step = await bench.measure(
                    rate: rate, seconds: 10, users: nil, deliveriesPerSend: options.subscribers,
                    model: options.publisher)
                say(
                    String(
                        format: "  %.1f broadcasts/s: %.0f delivered/s, p50/p99/p99.9 %.1f/%.1f/%.1f ms, %.2f µs CPU, "
                            + "%.2f write calls and %.1f bytes on the wire per delivery", rate, step.delivered,
                        step.p50, step.p99, step.p999, step.cpuPerDelivery, step.writesPerDelivery,
                        step.bytesPerDelivery)
                        + step.failedNote)
            }
            return
        }
        if options.idleOnly {
            // Under a heap profiler, killing the server here leaves its idle heap as the profile's "leaked" view.
            if ProcessInfo.processInfo.environment["BENCH_PROFILER"] != nil { kill(peer.pid, SIGKILL) }
            return
        }
        await bench.close(after: options.subscribers)
        if options.runs("broadcast") {
            try await measureBroadcast(peer: peer, bench: bench, options: options, report: &report)
        }
        if peer.echoes && options.runs("echo") {
            let step = await bench.echo(concurrency: options.echo, seconds: 5)
            // Ours runs as `websockets start`: each message goes to the site's message endpoint, which answers the
            // echo; ws-hub.js and Socket.IO answer in their own process.
            say(
                "Echo (\(kind == .ws || kind == .socketIO ? "answered in the server's process" : "answered by the site")), "
                    + "\(options.echo) in flight:")
            log(step)
            report.set(kind, "echo", step)
        }
        guard options.runs("targeted") else { return }
        try await bench.connect(upTo: options.idle, users: options.users)
        say("Sends to random single users (\(options.users) users, \(options.idle) tabs):")
        let perSend = options.idle / options.users
        let targetedPeak = await bench.ladder(start: 500, users: options.users, deliveriesPerSend: perSend, log: log)
        let targeted = targetedPeak.delivered
        report.set(kind, "targetedMax", targeted / Double(perSend))
        report.set(kind, "targetedPeak", targetedPeak)
        let half = await bench.measure(
            rate: targeted / Double(perSend) * 0.5, seconds: 5, users: options.users, deliveriesPerSend: perSend)
        say("  at 50% of its peak:")
        log(half)
        report.set(kind, "targeted50", half)
        say(
            "Sends to random single users, \(Bench.PublisherModel.pipelined.rawValue), \(options.pipelineDepth) in flight:"
        )
        let pipelined = await bench.ladder(
            start: 500, users: options.users, deliveriesPerSend: perSend, model: .pipelined, log: log)
        report.set(kind, "targetedPipelinedMax", pipelined.delivered / Double(perSend))
        report.set(kind, "targetedPipelinedPeak", pipelined)
    }

    /// Prints one step of a ladder: offered sends/s, delivered/s, latency, CPU, write calls and bytes on the wire per
    /// delivery.
    static func log(_ step: Bench.Step) {
        say(
            String(
                format: "  %8.1f  %10.0f  %8.1f %8.1f %8.1f  %6.2f  %5.2f  %7.1f%@", step.offered, step.delivered,
                step.p50, step.p99, step.p999, step.cpuPerDelivery, step.writesPerDelivery, step.bytesPerDelivery,
                step.failedNote))
    }

    /// The broadcast ladders with both publisher models, then 50% and 90% of the peak (and of the better peer's).
    static func measureBroadcast(peer: Peer, bench: Bench, options: Options, report: inout Report) async throws {
        let kind = peer.kind
        say(
            "Broadcast to \(options.subscribers) (3 s steps), \(Bench.PublisherModel.concurrent.rawValue): offered "
                + "sends/s, delivered/s, p50/p99/p99.9 ms, CPU µs, write calls and wire bytes per delivery")
        let peak = await bench.ladder(start: 2, users: nil, deliveriesPerSend: options.subscribers, log: log)
        let best = peak.delivered
        report.set(kind, "broadcastMax", best)
        report.set(kind, "broadcastPeak", peak)
        say(
            "Broadcast to \(options.subscribers), \(Bench.PublisherModel.pipelined.rawValue), \(options.pipelineDepth) "
                + "in flight:")
        let pipelinedPeak = await bench.ladder(
            start: 2, users: nil, deliveriesPerSend: options.subscribers, model: .pipelined, log: log)
        report.set(kind, "broadcastPipelinedMax", pipelinedPeak.delivered)
        report.set(kind, "broadcastPipelinedPeak", pipelinedPeak)
        for fraction in [0.5, 0.9] {
            let step = await bench.measure(
                rate: best * fraction / Double(options.subscribers), seconds: 5, users: nil,
                deliveriesPerSend: options.subscribers)
            say("  at \(Int(fraction * 100))% of its peak:")
            log(step)
            report.set(kind, "broadcast\(Int(fraction * 100))", step)
        }
        if kind == .ours, let peers = report.bestPeerBroadcast {
            let step = await bench.measure(
                rate: peers * 0.5 / Double(options.subscribers), seconds: 5, users: nil,
                deliveriesPerSend: options.subscribers)
            say("  at 50% of the better peer's peak:")
            log(step)
            report.set(kind, "broadcastPeerHalf", step)
        }
    }

    static func machineDescription() -> String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown"
        return "Machine: \(ProcessInfo.processInfo.processorCount) cores (\(model)); servers pinned to core 0, "
            + "this generator (clients, site, publisher) to core 1 when started with taskset -c 1."
    }
}
