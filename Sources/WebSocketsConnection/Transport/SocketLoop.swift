import WebSocketsCore
import WebSocketsProtocol

#if os(Linux)
    import CEpoll
    import Dispatch
    import Foundation
    import NIOConcurrencyHelpers
    import NIOCore
    import NIOPosix

    /// An event loop of our own, over epoll, for the WebSocket connections once upgraded: each is a
    /// ``SocketConnection`` in a table indexed by its descriptor instead of a SwiftNIO channel, and all of them read
    /// into one buffer of the loop. It is an `EventLoop`, so the hub's writers (``LoopShard``), the handling of
    /// messages (``LoopTaskExecutor``) and futures run on it as on SwiftNIO's.
    ///
    /// Why: a SwiftNIO channel (socket object, pipeline, its contexts, a pending-writes queue, a kept receive buffer)
    /// measured 3.40 KiB of RSS per idle connection built the usual way and 3.63 KiB ours, against the 2.0 KiB issue
    /// 15 asks (`LoadGenerator run --peers floor --idle-only yes`); what a connection needs is a descriptor, a handler
    /// and, only while bytes wait, a queue.
    ///
    /// A tick waits for sockets and the wake-up descriptor, handles what is ready, runs the timers due and then the
    /// tasks queued before the tick's end: a task queued by a task runs on the next tick, after the sockets were
    /// polled again (SwiftNIO's loop runs it in the same tick, before any read; see ``EventLoop/executeAfterPendingIO``).
    package final class SocketLoop: PollsBeforeQueuedTasks, @unchecked Sendable {
        // @unchecked: the state below that is not in a lock (`timers`, `sockets`, `readBuffer`, `later`) is touched only
        // on the loop's thread, which every entry point checks (`inEventLoop`) or reaches through `execute`; `thread` is
        // written once, before `init` returns (the semaphore orders it).

        private struct Queued {
            var tasks: [@Sendable () -> Void] = []
            /// Whether the loop has been woken for the tasks queued and not yet taken: one eventfd write per batch.
            var woken = false
            var stopping = false
            var stopped = false
            var nextTimer: UInt64 = 0
            var onStop: [@Sendable () -> Void] = []
        }

        private struct Timer: Sendable {
            var run: @Sendable () -> Void
            var cancel: @Sendable () -> Void
        }

        private let queued = NIOLockedValueBox(Queued())
        private let epoll: CInt
        private let wake: CInt
        private var thread = pthread_t()
        /// Runs what is given to the loop once it has stopped, one at a time, as if on the loop: a future bound to it
        /// still completes its callbacks (awaiting one after the stop would otherwise never return).
        private let afterlife: DispatchQueue
        /// The loop whose after-life task runs on this thread, for ``inEventLoop``.
        private static let afterlifeOf = ThreadSpecificVariable<SocketLoop>()
        private var timers = TimerQueue<Timer>()
        /// The connections, indexed by descriptor (descriptors are small numbers, reused lowest first).
        private var sockets: [SocketConnection?] = []
        /// Non-`Sendable` work for the end of this tick, queued on the loop (a closed connection's callbacks).
        private var later: [() -> Void] = []
        /// What every connection of the loop reads into: a connection keeps none of its own between reads (its
        /// handler copies out an incomplete frame, see ``InboundAssembler/detach()``).
        var readBuffer: ByteBuffer
        /// How much one read takes: SwiftNIO's largest receive buffer here (`recvAllocator` maximum). Asked for at
        /// every read, so that a buffer replaced by a copy (someone kept a slice of it) is as large again.
        static let readSize = 65536
        /// The bound of each connection's outbound queue (`max_outbound_buffer`), as SwiftNIO's write-buffer water marks.
        package let outbound: ChannelOptions.Types.WriteBufferWaterMark
        package let name: String

        /// A write to a socket the browser reset is an error (EPIPE) to close on, not a signal that ends the
        /// process: ignored for the whole process, once, as SwiftNIO also does for its sockets.
        private static let ignoringSIGPIPE: Void = { _ = Glibc.signal(SIGPIPE, SIG_IGN) }()

        /// How many connections the loop has open.
        private(set) var connectionCount = 0
        /// Bytes the kernel took from this loop's sockets since they were last added to ``bytesOut``: added once per
        /// turn of the loop rather than per write, so that counting costs a broadcast's thousands of writes nothing.
        var unpublishedBytes = 0
        /// Where the loop adds the bytes it wrote (the status page's bytes out).
        private let bytesOut: Tally?

        /// Starts the loop's thread; `outbound` bounds what one connection may have queued (see ``OutputQueue``);
        /// the bytes written are added to `bytesOut`.
        package init(name: String, outbound: ChannelOptions.Types.WriteBufferWaterMark, bytesOut: Tally? = nil) throws {
            self.name = name
            self.bytesOut = bytesOut
            self.outbound = outbound
            self.afterlife = DispatchQueue(label: name + "-stopped")
            _ = Self.ignoringSIGPIPE
            epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
            guard epoll >= 0 else { throw IOError(errnoCode: errno, reason: "epoll_create1") }
            wake = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
            guard wake >= 0 else {
                let code = errno
                Glibc.close(epoll)
                throw IOError(errnoCode: code, reason: "eventfd")
            }
            readBuffer = ByteBufferAllocator().buffer(capacity: Self.readSize)
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.fd = wake
            _ = epoll_ctl(epoll, EPOLL_CTL_ADD, wake, &event)
            let started = DispatchSemaphore(value: 0)
            let thread = Thread { [self] in
                self.thread = pthread_self()
                started.signal()
                run()
            }
            thread.name = name
            thread.start()
            started.wait()
        }

        // MARK: EventLoop

        package var inEventLoop: Bool {
            pthread_equal(pthread_self(), thread) != 0 || Self.afterlifeOf.currentValue === self
        }

        package func execute(_ task: @escaping @Sendable () -> Void) {
            let onLoop = inEventLoop
            let wakeUp = queued.withLockedValue { queued -> Bool in
                guard !queued.stopped else {
                    // In the lock: after-life tasks keep the order they were given in.
                    runAfterStop(task)
                    return false
                }
                queued.tasks.append(task)
                guard !onLoop, !queued.woken else { return false }
                queued.woken = true
                return true
            }
            if wakeUp { signal() }
        }

        package func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T>
        {
            let promise = makePromise(of: T.self)
            let id = queued.withLockedValue { queued -> UInt64? in
                if queued.stopping || queued.stopped { return nil }
                queued.nextTimer += 1
                return queued.nextTimer
            }
            guard let id else {
                promise.fail(EventLoopError.shutdown)
                return Scheduled(promise: promise) {}
            }
            let timer = Timer(
                run: {
                    // Timers run on the loop, the promise's own: its value does not cross threads here.
                    do { promise.assumeIsolatedUnsafeUnchecked().succeed(try task()) } catch { promise.fail(error) }
                },
                cancel: { promise.fail(EventLoopError.cancelled) })
            let at = deadline.uptimeNanoseconds
            if inEventLoop {
                timers.insert(id: id, deadline: at, entry: timer)
            } else {
                execute { self.timers.insert(id: id, deadline: at, entry: timer) }
            }
            return Scheduled(promise: promise) { [self] in
                if inEventLoop {
                    timers.remove(id: id)?.cancel()
                } else {
                    execute { self.timers.remove(id: id)?.cancel() }
                }
            }
        }

        package func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
            scheduleTask(deadline: .now() + delay, task)
        }

        package func preconditionInEventLoop(file: StaticString, line: UInt) {
            precondition(inEventLoop, "not on the socket loop \(name)", file: file, line: line)
        }

        package func preconditionNotInEventLoop(file: StaticString, line: UInt) {
            precondition(!inEventLoop, "on the socket loop \(name)", file: file, line: line)
        }

        package func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
            let wakeUp = queued.withLockedValue { queued -> Bool in
                if queued.stopped {
                    queue.async { callback(nil) }
                    return false
                }
                queued.onStop.append { queue.async { callback(nil) } }
                queued.stopping = true
                return true
            }
            if wakeUp { signal() }
        }

        /// Stops the loop: the connections still open are closed, the timers still armed fail as cancelled.
        package func shutdown() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                shutdownGracefully(queue: .global()) { _ in continuation.resume() }
            }
        }

        // MARK: Sockets

        /// Takes `descriptor` (a connected, non-blocking socket of its own) into the loop, read and written by
        /// `connection`; on the loop.
        package func register(_ connection: SocketConnection) throws {
            preconditionInEventLoop()
            let descriptor = Int(connection.descriptor)
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.fd = connection.descriptor
            guard epoll_ctl(epoll, EPOLL_CTL_ADD, connection.descriptor, &event) == 0 else {
                throw IOError(errnoCode: errno, reason: "epoll_ctl")
            }
            if descriptor >= sockets.count {
                sockets.append(contentsOf: repeatElement(nil, count: descriptor + 1 - sockets.count))
            }
            sockets[descriptor] = connection
            connectionCount += 1
        }

        /// What the loop reports of `connection`'s socket: readable unless its reading is paused, writable while it
        /// has bytes the kernel did not take.
        func watch(_ connection: SocketConnection, readable: Bool, writable: Bool) {
            var event = epoll_event()
            event.events = (readable ? EPOLLIN.rawValue : 0) | (writable ? EPOLLOUT.rawValue : 0)
            event.data.fd = connection.descriptor
            _ = epoll_ctl(epoll, EPOLL_CTL_MOD, connection.descriptor, &event)
        }

        /// Forgets `connection`, whose descriptor the caller closes next.
        package func unregister(_ connection: SocketConnection) {
            let descriptor = Int(connection.descriptor)
            var event = epoll_event()
            _ = epoll_ctl(epoll, EPOLL_CTL_DEL, connection.descriptor, &event)
            if descriptor < sockets.count, sockets[descriptor] === connection {
                sockets[descriptor] = nil
                connectionCount -= 1
            }
        }

        /// Runs `body` on the loop at the end of this tick; on the loop.
        func runLater(_ body: @escaping () -> Void) {
            preconditionInEventLoop()
            later.append(body)
        }

        // MARK: The loop

        private func runAfterStop(_ task: @escaping @Sendable () -> Void) {
            afterlife.async { [self] in
                Self.afterlifeOf.currentValue = self
                task()
                Self.afterlifeOf.currentValue = nil
            }
        }

        private func signal() {
            var one: UInt64 = 1
            _ = Glibc.write(wake, &one, 8)
        }

        private func run() {
            let capacity: Int32 = 256
            var events = [epoll_event](repeating: epoll_event(), count: Int(capacity))
            var running: [@Sendable () -> Void] = []
            while true {
                let (pending, stopping) = queued.withLockedValue { (!$0.tasks.isEmpty, $0.stopping) }
                var timeout: Int32 = -1
                if pending || stopping || !later.isEmpty {
                    timeout = 0
                } else if let next = timers.nextDeadline() {
                    let now = NIODeadline.now().uptimeNanoseconds
                    // Rounded up: a timer woken for a millisecond early would sleep again for 0 ms, spinning.
                    let milliseconds = next > now ? (next - now + 999_999) / 1_000_000 : 0
                    timeout = Int32(min(milliseconds, UInt64(Int32.max)))
                }
                let count = events.withUnsafeMutableBufferPointer { buffer in
                    epoll_wait(epoll, buffer.baseAddress, capacity, timeout)
                }
                if count > 0 {
                    for index in 0..<Int(count) {
                        let descriptor = events[index].data.fd
                        if descriptor == wake {
                            var value: UInt64 = 0
                            _ = Glibc.read(wake, &value, 8)
                            continue
                        }
                        // A connection closed earlier in this batch left its slot empty; a descriptor is only reused
                        // by a registration, which runs as a task, after the batch.
                        guard Int(descriptor) < sockets.count, let connection = sockets[Int(descriptor)] else {
                            continue
                        }
                        connection.handle(events: events[index].events)
                    }
                }
                let now = NIODeadline.now().uptimeNanoseconds
                while let timer = timers.popDue(now: now) { timer.run() }
                queued.withLockedValue { queued in
                    swap(&queued.tasks, &running)
                    queued.woken = false
                }
                for task in running { task() }
                running.removeAll(keepingCapacity: true)
                while !later.isEmpty {
                    let bodies = later
                    later = []
                    for body in bodies { body() }
                }
                if unpublishedBytes > 0 {
                    bytesOut?.add(unpublishedBytes)
                    unpublishedBytes = 0
                }
                if stopping {
                    finish()
                    return
                }
            }
        }

        private func finish() {
            for connection in sockets { connection?.close() }
            while !later.isEmpty {
                let bodies = later
                later = []
                for body in bodies { body() }
            }
            for timer in timers.removeAll() { timer.cancel() }
            let callbacks = queued.withLockedValue { queued in
                queued.stopped = true
                // Tasks queued before the stop still run, first, then those given after it (see `afterlife`).
                for task in queued.tasks { runAfterStop(task) }
                defer {
                    queued.tasks = []
                    queued.onStop = []
                }
                return queued.onStop
            }
            Glibc.close(wake)
            Glibc.close(epoll)
            for callback in callbacks { callback() }
        }
    }
#endif
