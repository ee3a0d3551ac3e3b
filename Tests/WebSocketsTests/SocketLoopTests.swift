#if os(Linux)
    import Glibc
    import NIOConcurrencyHelpers
    import NIOCore
    import Testing

    @testable import WebSockets
    @testable import WebSocketsCluster
    @testable import WebSocketsConnection
    @testable import WebSocketsCore
    @testable import WebSocketsHub
    @testable import WebSocketsSite

    /// The loop of our own that upgraded connections live on (``SocketLoop``) and one socket on it
    /// (``SocketConnection``), over a socket pair: tasks, timers, reads, writes held back by a peer that does not read,
    /// closes and shutdown.
    @Suite struct SocketLoopTests {
        /// Connects a plain blocking socket to `port` on loopback; whether the kernel took the connection.
        private static func connects(to port: Int) -> Bool {
            let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { Glibc.close(socket) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
        }

        @Test func theAcceptLoopHandsOverEachConnectionAndStopsWhenClosed() async throws {
            let acceptor = try AcceptLoop(host: "127.0.0.1", port: 0, backlog: 16)
            #expect(acceptor.port > 0)
            let accepted = NIOLockedValueBox<[CInt]>([])
            acceptor.start(
                accepted: { descriptor in accepted.withLockedValue { $0.append(descriptor) } }, failed: { _ in })
            for _ in 0..<3 { #expect(Self.connects(to: acceptor.port)) }
            try await eventually("three connections accepted") { accepted.withLockedValue { $0.count } == 3 }
            for descriptor in accepted.withLockedValue({ $0 }) {
                // Ready for SwiftNIO and for a loop of ours: non-blocking, and not inherited by a spawned process.
                #expect(fcntl(descriptor, F_GETFL) & O_NONBLOCK != 0)
                #expect(fcntl(descriptor, F_GETFD) & FD_CLOEXEC != 0)
                Glibc.close(descriptor)
            }
            // Closing wakes the accepting thread and awaits its end; the port refuses connections after.
            await acceptor.close()
            #expect(!Self.connects(to: acceptor.port))
            // The same port can be listened on again at once (SO_REUSEADDR).
            let again = try AcceptLoop(host: "127.0.0.1", port: acceptor.port, backlog: 16)
            await again.close(started: false)
        }

        @Test func aPortInUseIsReportedWithItsErrno() async throws {
            let first = try AcceptLoop(host: "127.0.0.1", port: 0, backlog: 16)
            #expect(throws: IOError.self) { try AcceptLoop(host: "127.0.0.1", port: first.port, backlog: 16) }
            do {
                _ = try AcceptLoop(host: "127.0.0.1", port: first.port, backlog: 16)
            } catch let error as IOError {
                #expect(error.errnoCode == EADDRINUSE)
            }
            await first.close(started: false)
        }

        @Test func tasksFromAnyThreadRunOnTheLoopInOrder() async throws {
            let loop = try SocketLoop(name: "test", outbound: .init(low: 512, high: 1024))
            let seen = NIOLockedValueBox<[Int]>([])
            let offLoop = NIOLockedValueBox(0)
            #expect(!loop.inEventLoop)
            for number in 0..<1000 {
                loop.execute {
                    if !loop.inEventLoop { offLoop.withLockedValue { $0 += 1 } }
                    seen.withLockedValue { $0.append(number) }
                }
            }
            try await loop.submit { () }.get()
            #expect(seen.withLockedValue { $0 } == Array(0..<1000))
            #expect(offLoop.withLockedValue { $0 } == 0)
            await loop.shutdown()
        }

        @Test func timersFireInOrderAndACancelledOneFailsAsCancelled() async throws {
            let loop = try SocketLoop(name: "test", outbound: .init(low: 512, high: 1024))
            let fired = NIOLockedValueBox<[String]>([])
            let late = loop.scheduleTask(in: .milliseconds(60)) { fired.withLockedValue { $0.append("60") } }
            let early = loop.scheduleTask(in: .milliseconds(20)) { fired.withLockedValue { $0.append("20") } }
            let cancelled = loop.scheduleTask(in: .milliseconds(40)) { fired.withLockedValue { $0.append("40") } }
            cancelled.cancel()
            try await early.futureResult.get()
            try await late.futureResult.get()
            await #expect(throws: EventLoopError.cancelled) { try await cancelled.futureResult.get() }
            #expect(fired.withLockedValue { $0 } == ["20", "60"])
            // A value computed by a timer reaches whoever awaits it.
            #expect(try await loop.scheduleTask(in: .milliseconds(1)) { 42 }.futureResult.get() == 42)
            await loop.shutdown()
        }

        /// A task queued by a task runs after the loop has polled its sockets again, so a chain of parts (a broadcast
        /// pass) lets the loop read between them.
        @Test func aTaskQueuedByATaskRunsAfterTheSocketsArePolled() async throws {
            let (loop, theirs, recorder) = try await Self.connected(outbound: .init(low: 512, high: 1024))
            let log = recorder.log
            try await runParts(4, on: loop, log: log) { _ = "ping".withCString { send(theirs, $0, 4, 0) } }
            #expect(log.withLockedValue { $0 } == ["part 0", "read ping", "part 1", "part 2", "part 3"])
            close(theirs)
            await loop.shutdown()
        }

        /// Bytes a peer does not read stay queued; past the bound the socket is unwritable, and once the peer reads,
        /// the rest is written and it is writable again. A frame written with a close goes out before the close.
        @Test func aPeerThatDoesNotReadHoldsTheQueueUntilItReads() async throws {
            let (loop, theirs, recorder) = try await Self.connected(outbound: .init(low: 32 * 1024, high: 64 * 1024))
            let frame = ByteBuffer(repeating: 7, count: 16 * 1024)
            let total = 64
            try await loop.submit {
                let connection = recorder.connection!
                for _ in 0..<total {
                    connection.write(frame)
                    connection.flush()
                }
                connection.write(ByteBuffer(string: "last"), thenCloseWithin: .seconds(10))
            }.get()
            // 1 MiB offered; a socket pair's buffers take a few hundred KiB: the queue went over its 64 KiB bound.
            #expect(recorder.log.withLockedValue { $0 }.contains("unwritable"))
            var received = 0
            var tail: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = recv(theirs, &buffer, buffer.count, 0)
                guard count > 0 else { break }
                received += count
                tail = Array((tail + buffer[..<count]).suffix(4))
            }
            #expect(received == total * 16 * 1024 + 4)
            #expect(String(decoding: tail, as: UTF8.self) == "last")
            try await eventually("the close is told") { recorder.log.withLockedValue { $0.last } == "closed" }
            let log = recorder.log.withLockedValue { $0 }
            #expect(log.firstIndex(of: "unwritable")! < log.firstIndex(of: "writable")!)
            #expect(log.filter { $0 == "closed" }.count == 1)
            try await loop.submit { #expect(loop.connectionCount == 0) }.get()
            close(theirs)
            await loop.shutdown()
        }

        @Test func aPeerThatClosesIsToldOnceAndItsDescriptorClosed() async throws {
            let (loop, theirs, recorder) = try await Self.connected(outbound: .init(low: 512, high: 1024))
            close(theirs)
            try await eventually("the close is told") { recorder.log.withLockedValue { $0 } == ["closed"] }
            try await loop.submit { #expect(loop.connectionCount == 0) }.get()
            await loop.shutdown()
        }

        @Test func shutdownClosesTheSocketsAndCancelsTheTimers() async throws {
            let (loop, theirs, recorder) = try await Self.connected(outbound: .init(low: 512, high: 1024))
            let timer = loop.scheduleTask(in: .seconds(60)) { () }
            await loop.shutdown()
            await #expect(throws: EventLoopError.cancelled) { try await timer.futureResult.get() }
            #expect(recorder.log.withLockedValue { $0 } == ["closed"])
            var byte: UInt8 = 0
            #expect(recv(theirs, &byte, 1, 0) == 0)  // the peer sees the end
            close(theirs)
            // What is given to a stopped loop still runs, in order and as on the loop (a future bound to it completes),
            // and a timer fails at once.
            let order = NIOLockedValueBox<[Int]>([])
            for number in 0..<3 {
                loop.execute {
                    #expect(loop.inEventLoop)
                    order.withLockedValue { $0.append(number) }
                }
            }
            #expect(try await loop.submit { 7 }.get() == 7)
            #expect(order.withLockedValue { $0 } == [0, 1, 2])
            await #expect(throws: EventLoopError.shutdown) {
                try await loop.scheduleTask(in: .milliseconds(1)) { () }.futureResult.get()
            }
        }

        /// A loop with one connection over a socket pair: the loop, the peer's end (blocking) and what the
        /// connection tells.
        static func connected(outbound: ChannelOptions.Types.WriteBufferWaterMark) async throws -> (
            SocketLoop, CInt, SocketRecorder
        ) {
            let loop = try SocketLoop(name: "test", outbound: outbound)
            let (ours, theirs) = try socketPair()
            let recorder = SocketRecorder()
            try await loop.submit {
                let connection = SocketConnection(descriptor: ours, loop: loop, handler: recorder)
                recorder.connection = connection
                try loop.register(connection)
            }.get()
            return (loop, theirs, recorder)
        }

        static func socketPair() throws -> (CInt, CInt) {
            var descriptors: [CInt] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &descriptors) == 0 else {
                throw IOError(errnoCode: errno, reason: "socketpair")
            }
            _ = fcntl(descriptors[0], F_SETFL, O_NONBLOCK)
            return (descriptors[0], descriptors[1])
        }
    }

    /// Records what a socket tells, on its loop; read by the test through the lock.
    final class SocketRecorder: SocketConnectionHandler, @unchecked Sendable {
        // @unchecked: `connection` is set and used on the loop only; the log is locked.
        let log = NIOLockedValueBox<[String]>([])
        var connection: SocketConnection?

        func received(_ bytes: ByteBuffer) {
            log.withLockedValue { $0.append("read " + String(buffer: bytes)) }
        }

        func writabilityChanged(_ writable: Bool) {
            log.withLockedValue { $0.append(writable ? "writable" : "unwritable") }
        }

        func transportClosed() {
            log.withLockedValue { $0.append("closed") }
            connection = nil
        }
    }
#endif
