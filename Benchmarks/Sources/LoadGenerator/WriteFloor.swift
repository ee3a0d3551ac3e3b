import Foundation
import NIOCore
import NIOPosix
import WebSockets
import WebSocketsLaunch

/// The least any server can spend on a broadcast that makes one write per delivery: a process (pinned to core 0,
/// like the servers) that holds `count` accepted loopback TCP connections and, `rate` times a second, writes one
/// small message to each with a bare `write(2)` — no framework, no protocol, no bookkeeping. The reading end is
/// the generator on core 1, on SwiftNIO as its WebSocket clients are. What it spends per write is the kernel's loopback TCP work (send,
/// the receive half that runs in the sender's context, waking the reader), the part no server's code can avoid.
enum WriteFloor {
    /// The size of every message: about a broadcast frame of ours (`["b",{"ts":…},1]` with its header).
    static let messageSize = 48

    /// Runs the writer in a child process on core 0 and reads here; `count` connections, `rate` rounds a second.
    /// The step's figures are per delivery, as for a server: one delivery is one message written to one socket.
    static func measure(count: Int, rate: Double, seconds: Double) async throws -> Bench.Step {
        // Below the ephemeral range: a port a previous run left in TIME_WAIT cannot be listened on.
        let port = Int.random(in: 20000...29000)
        let directory = NSTemporaryDirectory() + "websockets-writefloor-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let me = ChildProcess.currentExecutable() ?? CommandLine.arguments[0]
        var options = ChildProcess.Options(
            executable: "/usr/bin/taskset",
            arguments: ["taskset", "-c", "0", me, "write-floor", "\(port)", "\(count)", "\(rate)", "\(seconds)"],
            environment: ProcessInfo.processInfo.environment)
        options.outputPath = directory + "/writer.log"
        let writer = try ChildProcess.spawn(options)
        var status: Int32 = 0
        let expected = count * Int(rate * seconds)
        let recorder: Recorder
        do {
            recorder = try await read(port: port, count: count, expected: expected)
        } catch {
            // The writer would wait for connections for ever.
            kill(writer, SIGKILL)
            waitpid(writer, &status, 0)
            throw error
        }
        waitpid(writer, &status, 0)
        let log = (try? String(contentsOfFile: directory + "/writer.log", encoding: .utf8)) ?? ""
        let fields = log.split(whereSeparator: \.isWhitespace)
        guard fields.count >= 4, fields[0] == "cpu_ns", let cpu = Double(fields[1]), let writes = Int(fields[3]),
            writes > 0
        else { throw BenchmarkError("write floor: the writer said \(log.debugDescription)") }
        let (p50, p99, p999) = recorder.percentiles()
        let delivered = recorder.received
        return Bench.Step(
            offered: rate * Double(count), delivered: Double(delivered) / seconds, p50: p50, p99: p99, p999: p999,
            cpuPerDelivery: cpu / 1000 / Double(writes), failed: expected - delivered,
            writesPerDelivery: Double(writes) / Double(max(delivered, 1)))
    }

    /// One line for the log.
    static func describe(_ step: Bench.Step, count: Int, rate: Double) -> String {
        String(
            format: "%d sockets, %.1f rounds/s: %.2f µs CPU and %.2f writes per delivery, %.0f delivered/s "
                + "(%d missing), p50/p99/p99.9 %.1f/%.1f/%.1f ms", count, rate, step.cpuPerDelivery,
            step.writesPerDelivery, step.delivered, step.failed, step.p50, step.p99, step.p999)
    }

    /// The writer: accepts `count` connections on `port`, then writes one message to each `rate` times a second
    /// for `seconds`, and prints its CPU time.
    static func write(port: Int, count: Int, rate: Double, seconds: Double) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(listener, 4096) == 0 else { throw BenchmarkError("write floor: cannot listen") }
        var connections: [Int32] = []
        while connections.count < count {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { throw BenchmarkError("write floor: accept failed, errno \(errno)") }
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
            connections.append(fd)
        }
        // Let the reader finish registering before the clock starts.
        usleep(1_000_000)
        let rounds = Int(rate * seconds)
        let interval = UInt64(1e9 / rate)
        var message = [UInt8](repeating: 0x20, count: messageSize)
        let start = monotonicNow()
        let before = cpuNanoseconds()
        var writes = 0
        for round in 0..<rounds {
            let due = start + UInt64(round) * interval
            while monotonicNow() < due { usleep(200) }
            var stamp = monotonicNow()
            stamp = stamp.littleEndian
            withUnsafeBytes(of: &stamp) { message.replaceSubrange(0..<8, with: $0) }
            message.withUnsafeBytes { bytes in
                for fd in connections where Glibc.write(fd, bytes.baseAddress, bytes.count) == bytes.count {
                    writes += 1
                }
            }
        }
        let spent = cpuNanoseconds() - before
        print("cpu_ns \(spent) writes \(writes)")
        fflush(nil)
        // The reader closes its ends when it has everything; wait for that before closing ours.
        usleep(2_000_000)
    }

    /// The reading end: `count` SwiftNIO connections on this process's event loop (as the benchmark's clients are),
    /// waiting until `expected` messages arrived or 10 s passed without one; each message's latency is recorded from
    /// the stamp the writer put in it.
    private static func read(port: Int, count: Int, expected: Int) async throws -> Recorder {
        let recorder = Recorder()
        var channels: [any Channel] = []
        defer { for channel in channels { channel.close(promise: nil) } }
        let deadline = ContinuousClock.now + .seconds(30)
        while channels.count < count {
            let batch = min(500, count - channels.count)
            let connected = await withTaskGroup(of: (any Channel)?.self) { group in
                for _ in 0..<batch {
                    group.addTask {
                        try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                            .channelInitializer { channel in
                                channel.eventLoop.makeCompletedFuture {
                                    try channel.pipeline.syncOperations.addHandler(Reader(recorder: recorder))
                                }
                            }
                            .connect(host: "127.0.0.1", port: port).get()
                    }
                }
                return await group.reduce(into: [any Channel]()) { if let channel = $1 { $0.append(channel) } }
            }
            channels += connected
            if connected.count < batch {
                // The writer is not listening yet.
                guard ContinuousClock.now < deadline else { throw BenchmarkError("write floor: cannot connect") }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        var last = (count: 0, at: ContinuousClock.now)
        while recorder.received < expected && ContinuousClock.now - last.at < .seconds(10) {
            try await Task.sleep(for: .milliseconds(100))
            if recorder.received != last.count { last = (recorder.received, .now) }
        }
        return recorder
    }

    /// Cuts a connection's bytes into messages and records each one's stamp.
    private final class Reader: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private let recorder: Recorder
        private var partial = ByteBuffer()

        init(recorder: Recorder) {
            self.recorder = recorder
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            partial.writeBuffer(&bytes)
            while partial.readableBytes >= messageSize, var message = partial.readSlice(length: messageSize) {
                if let stamp = message.readInteger(endianness: .little, as: UInt64.self) {
                    recorder.record(sent: stamp)
                }
            }
            partial.discardReadBytes()
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    /// The clock the ``Recorder`` reads, which every process of the machine shares.
    private static func monotonicNow() -> UInt64 {
        DispatchTime.now().uptimeNanoseconds
    }

    /// This process's user and system time.
    private static func cpuNanoseconds() -> UInt64 {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func ns(_ time: timeval) -> UInt64 { UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_usec) * 1000 }
        return ns(usage.ru_utime) + ns(usage.ru_stime)
    }
}
