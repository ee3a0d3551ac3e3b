import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The decisions of issue 11 on their inputs alone, and the connection handler in an `EmbeddedChannel`, as
/// swift-nio tests its own handlers.
@Suite struct LimitsTests {
    private func assembler(_ bytes: [UInt8], maximum: Int = 1000) -> [InboundEvent] {
        InboundAssembler.events(of: bytes, maximumMessageSize: maximum)
    }

    private func refusalCode(_ events: [InboundEvent]) -> UInt16? {
        events.refusalCode
    }

    @Test func assemblesFragmentsAndAnswersControlFrames() {
        let frame = { (opcode: UInt8, payload: [UInt8], fin: Bool) in HardeningTests.frame(opcode, payload, fin: fin) }
        let events = assembler(
            frame(0x1, Array("[\"a\",".utf8), false) + frame(0x9, [1, 2], true)
                + frame(0x0, Array("1]".utf8), true) + frame(0xA, [], true) + frame(0x8, [], true))
        #expect(
            events == [
                .ping(ByteBuffer(bytes: [1, 2])), .message(ByteBuffer(string: "[\"a\",1]")), .pong,
                .close(code: 1000),
            ])
        #expect(assembler(HardeningTests.close(4000, Array("bye".utf8))) == [.close(code: 4000)])
    }

    @Test func refusesWhatRFC6455Refuses() {
        let frame = { (opcode: UInt8, payload: [UInt8], fin: Bool) in HardeningTests.frame(opcode, payload, fin: fin) }
        #expect(refusalCode(assembler(frame(0x8, [3], true))) == 1002)
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            #expect(refusalCode(assembler(HardeningTests.close(code))) == 1002, "\(code)")
        }
        #expect(refusalCode(assembler(HardeningTests.close(1000, [0xFF]))) == 1007)
        #expect(refusalCode(assembler(frame(0x0, [1], true))) == 1002)
        #expect(refusalCode(assembler(frame(0x1, [1], false) + frame(0x1, [1], true))) == 1002)
        #expect(refusalCode(assembler(frame(0x1, [1], false) + frame(0x2, [1], true))) == 1002)
        #expect(refusalCode(assembler(frame(0x2, [1], true))) == 1003)
        #expect(refusalCode(assembler(frame(0x1, [UInt8](repeating: 0x20, count: 200), true), maximum: 100)) == 1009)
        #expect(
            refusalCode(
                assembler(
                    frame(0x1, [UInt8](repeating: 0x20, count: 60), false)
                        + frame(0x0, [UInt8](repeating: 0x20, count: 60), true), maximum: 100)) == 1009)
    }

    @Test func theServerNeverSendsReservedCodes() {
        for code: UInt16 in [1005, 1006, 1015] {
            #expect(!WebSocketCloseCode.mayBeReceived(code))
        }
        // A reason cut to fit a control frame stays UTF-8.
        var frame = ServerFrame.close(code: 1000, reason: String(repeating: "é", count: 100))
        frame.moveReaderIndex(forwardBy: 4)
        #expect(frame.readableBytes == 122)
        #expect(String(validating: frame.readableBytesView, as: UTF8.self) != nil)
    }

    @Test func theRateLimiterRefillsAtItsRate() {
        var limiter = MessageRateLimiter(burst: 3)
        let second: UInt64 = 1_000_000_000
        var now: UInt64 = 5 * second
        #expect((0..<5).map { _ in limiter.admit(now: now, rate: 2, burst: 3) } == [true, true, true, false, false])
        now += second / 2
        let refilled = (0..<2).map { _ in limiter.admit(now: now, rate: 2, burst: 3) }
        #expect(refilled == [true, false])
        now += 10 * second
        #expect((0..<4).map { _ in limiter.admit(now: now, rate: 2, burst: 3) } == [true, true, true, false])
    }

    @Test func theHTTPClockTimesIdleAndSlowRequests() {
        var clock = HTTPRequestClock(idleTimeout: .seconds(15), requestTimeout: .seconds(10))
        let timers = [
            clock.opened(), clock.bytesArrived(), clock.bytesArrived(), clock.requestReceived(), clock.bytesArrived(),
            clock.responseSent(), clock.bytesArrived(), clock.requestReceived(), clock.answerWaiting(),
            clock.bytesArrived(), clock.responseSent(),
        ]
        // An answer waiting for the client to read has the idle time to be read (issue 23).
        #expect(
            timers == [
                .arm(.seconds(15)), .arm(.seconds(10)), .keep, .disarm, .keep, .arm(.seconds(15)), .arm(.seconds(10)),
                .disarm, .arm(.seconds(15)), .keep, .arm(.seconds(15)),
            ])
    }

    @Test func refusedHTTPConnectionsAreLoggedAtMostEveryTenSeconds() {
        let count = HTTPConnectionCount()
        let start = ContinuousClock.now
        let reports = [1, 2, 3, 11, 12, 25].map { count.noteRefusal(now: start + .seconds($0)) }
        #expect(reports == [1, nil, nil, 3, nil, 2])
    }

    @Test func memoryIsTrimmedOnceTheAllocatorKeepsMuchFreeAndTheWorkIsDone() {
        let mib = 1 << 20
        var policy = MemoryTrimPolicy(minimumGain: 8 * mib, patience: 2, rest: 1)
        func check(_ resident: Int, _ heap: Int, busy: Bool = false) -> Bool {
            policy.shouldTrim(resident: resident * mib, heapInUse: heap * mib, busy: busy)
        }
        // The first check sets the floor: 40 MiB resident besides the heap. 7 MiB more kept free is not worth a
        // trim; neither is 10 MiB beside a 100 MiB heap (an eighth of it is 12.5).
        let small = [check(60, 20), check(67, 20), check(150, 100)]
        #expect(small == [false, false, false])
        // A burst's memory freed while its work goes on: trimmed once it ends, or after two checks of waiting.
        let burst = [check(200, 20, busy: true), check(200, 20, busy: true), check(200, 20, busy: true)]
        #expect(burst == [false, false, true])
        let ended = [check(200, 20, busy: true), check(200, 20)]
        // No second trim while one is under way.
        #expect(ended == [false, false])
        // What a trim could not give back is the new floor; the check after a trim rests whatever the figures.
        policy.trimmed(resident: 70 * mib, heapInUse: 20 * mib)
        let after = [check(200, 20), check(77, 20), check(79, 20)]
        #expect(after == [false, false, true])
        policy.trimmed(resident: 60 * mib, heapInUse: 20 * mib)
        // Memory the allocator gave back on its own lowers the floor.
        let lowered = [check(45, 20), check(45, 20), check(54, 20)]
        #expect(lowered == [false, false, true])
    }

    @Test func settingsAreDeclaredOnceAndChecked() throws {
        let flags = try SettingsFlags(splitting: [
            "start", "--ping-interval", "2", "x", "--message-rate=5", "--", "--idle-timeout",
        ])
        #expect(flags.values == ["ping_interval": "2", "message_rate": "5"])
        #expect(flags.rest == ["start", "x", "--", "--idle-timeout"])
        #expect(throws: SettingsError.self) { try SettingsFlags(splitting: ["--ping-interval"]) }
        let names = Settings.definitions.map(\.name)
        #expect(Set(names).count == names.count)
        // Every setting round-trips through its variable.
        var settings = Settings(site: "https://example.com", securityKey: "k")
        settings.messageRate = 7.5
        settings.allowedOrigins = ["https://a.example", "https://b.example"]
        let loaded = try SettingsLoader(path: "/nonexistent/x.json", environment: settings.variables).load(
            generateKey: false
        ).settings
        #expect(loaded.variables == settings.variables)
        for (name, value) in [("ping_interval", "0"), ("listen_port", "-1"), ("max_outbound_buffer", "1.5")] {
            #expect(throws: SettingsError.self, "\(name)") {
                try SettingsLoader(path: "/nonexistent/x.json", environment: [:], flags: [name: value]).load(
                    generateKey: false)
            }
        }
        var bad = Settings()
        bad.pingInterval = 30
        bad.idleTimeout = 20
        #expect(throws: SettingsError.self) { try bad.validate() }
        // The README's table is the one the definitions make.
        #expect(Settings.markdownTable.contains("| `message_rate` | `100` |"))
    }
}
