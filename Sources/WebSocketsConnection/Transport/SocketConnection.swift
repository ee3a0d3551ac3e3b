import WebSocketsCore
import WebSocketsProtocol

#if os(Linux)
    import CEpoll
    import Glibc
    import NIOCore

    /// What a ``SocketConnection`` tells of its socket, on its loop (``WebSocketConnectionHandler``; tests record it).
    package protocol SocketConnectionHandler: AnyObject {
        /// Bytes read: a slice of the loop's shared buffer, valid until the call returns (copy what is kept).
        func received(_ bytes: ByteBuffer)
        /// The outbound queue went over its bound (`false`) or back to half of it (`true`).
        func writabilityChanged(_ writable: Bool)
        /// The socket closed (by either side); told once, after the call that closed it returned.
        func transportClosed()
    }

    /// One upgraded WebSocket connection on a ``SocketLoop``: its descriptor, its handler, and the frames the kernel
    /// has not taken yet. Reads go to the loop's shared buffer and straight to the handler; writes are queued and
    /// written with one `writev` per flush; everything happens on the loop.
    ///
    /// What SwiftNIO's channel did for the handler and this keeps: writability at `max_outbound_buffer` (half of it to
    /// become writable again), a close after the close frame is written or after a deadline, and the handler told of
    /// the close after the call that closed returns.
    package final class SocketConnection {
        package let descriptor: CInt
        package let loop: SocketLoop
        /// Until the close has been told to it: the handler holds this connection too, and the close breaks the cycle.
        private(set) var handler: (any SocketConnectionHandler)?
        private var output: OutputQueue
        /// Whether the loop watches the socket for writability (the kernel refused bytes).
        private var watchingWritable = false
        /// Whether the loop has stopped reading the socket (``pauseReading(_:)``).
        private var readingPaused = false
        /// Set by ``write(_:thenCloseWithin:)``: close once the queue drains.
        private var closeWhenWritten = false
        private var closeDeadline: Scheduled<Void>?
        private(set) var isOpen = true

        /// A connection over `descriptor`, which it now owns (it closes it), for `handler`.
        package init(descriptor: CInt, loop: SocketLoop, handler: any SocketConnectionHandler) {
            self.descriptor = descriptor
            self.loop = loop
            self.handler = handler
            self.output = OutputQueue(high: loop.outbound.high, low: loop.outbound.low)
        }

        // MARK: Events

        package func handle(events: UInt32) {
            if events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { readable() }
            if isOpen, events & EPOLLOUT.rawValue != 0 { writeQueued() }
        }

        /// One read per wake-up, as the NIO channels were configured (`maxMessagesPerRead` 1): epoll is
        /// level-triggered, so what is left is read on the next tick, after the other connections had theirs.
        private func readable() {
            var failure: CInt = 0
            loop.readBuffer.clear()
            let count = loop.readBuffer.writeWithUnsafeMutableBytes(minimumWritableBytes: SocketLoop.readSize) {
                buffer -> Int in
                let result = read(descriptor, buffer.baseAddress, buffer.count)
                if result < 0 {
                    failure = errno
                    return 0
                }
                return result
            }
            if failure == EAGAIN || failure == EWOULDBLOCK || failure == EINTR { return }
            guard failure == 0, count > 0 else {
                // 0: the browser closed its end; otherwise an error (a reset).
                close()
                return
            }
            handler?.received(loop.readBuffer)
        }

        /// Stops reading the socket (`true`) or reads it again: a handler that cannot take more requests now leaves
        /// them in the kernel, so that what a client sends ahead is bounded by the socket's buffers, not the server's.
        /// A reset or hang-up is still reported and read.
        package func pauseReading(_ paused: Bool) {
            guard isOpen, paused != readingPaused else { return }
            readingPaused = paused
            loop.watch(self, readable: !paused, writable: watchingWritable)
        }

        // MARK: Writes

        /// Whether bytes wait for the socket to become writable (the kernel refused them).
        var isBacklogged: Bool { watchingWritable }

        /// Queues `frame` for the next ``flush()``; dropped when the connection is closed or closing.
        package func write(_ frame: ByteBuffer) {
            guard isOpen, !closeWhenWritten else { return }
            if output.append(frame) { handler?.writabilityChanged(false) }
        }

        /// Writes what is queued, at once, as far as the kernel takes it; the rest when the socket is writable.
        package func flush() {
            guard isOpen, !watchingWritable, !output.isEmpty else { return }
            writeQueued()
        }

        /// Writes `frame` last and closes once it is written, or after `timeout` if the browser does not read it.
        package func write(_ frame: ByteBuffer, thenCloseWithin timeout: TimeAmount) {
            guard isOpen, !closeWhenWritten else { return }
            _ = output.append(frame)
            closeWhenWritten = true
            let bound = NIOLoopBound(self, eventLoop: loop)
            closeDeadline = loop.scheduleTask(in: timeout) { bound.value.close() }
            if !watchingWritable { writeQueued() }
        }

        /// Closes the socket now; what is queued is dropped. The handler is told after the current call returns, as
        /// SwiftNIO tells a channel's handlers.
        package func close() {
            guard isOpen else { return }
            isOpen = false
            closeDeadline?.cancel()
            closeDeadline = nil
            loop.unregister(self)
            _ = Glibc.close(descriptor)
            output.removeAll()
            loop.runLater { [self] in
                handler?.transportClosed()
                handler = nil
            }
        }

        private func writeQueued() {
            while isOpen, !output.isEmpty {
                let written = Self.write(output.frames, to: descriptor)
                if written < 0 {
                    let code = -written
                    if code == EAGAIN || code == EWOULDBLOCK {
                        if !watchingWritable {
                            watchingWritable = true
                            loop.watch(self, readable: !readingPaused, writable: true)
                        }
                        return
                    }
                    if code == EINTR { continue }
                    close()
                    return
                }
                loop.unpublishedBytes += written
                if output.consume(written) { handler?.writabilityChanged(true) }
            }
            guard isOpen else { return }
            if watchingWritable {
                watchingWritable = false
                loop.watch(self, readable: !readingPaused, writable: false)
            }
            if closeWhenWritten { close() }
        }

        /// The largest number of frames one `writev` carries (Linux's `IOV_MAX` is 1,024; each frame is a level of
        /// recursion below, so this also bounds the stack).
        private static let framesPerWrite = 64

        /// Writes the front of `frames` with one system call (`write`, or `writev` gathering several); the bytes
        /// written, or minus `errno`.
        private static func write(_ frames: [ByteBuffer], to descriptor: CInt) -> Int {
            let count = min(frames.count, framesPerWrite)
            if count == 1 {
                return frames[0].withUnsafeReadableBytes { bytes in
                    // write, not send: the kernel counts write calls (`syscw` in /proc/PID/io), which the benchmarks
                    // compare with every peer's. A browser gone is EPIPE, not a signal (SocketLoop ignores SIGPIPE).
                    let result = Glibc.write(descriptor, bytes.baseAddress, bytes.count)
                    return result < 0 ? -Int(errno) : result
                }
            }
            return withUnsafeTemporaryAllocation(of: iovec.self, capacity: count) { vectors in
                gather(frames, index: 0, count: count, into: vectors, descriptor: descriptor)
            }
        }

        /// Fills `vectors` with the frames' bytes, each inside its own `withUnsafeReadableBytes` (a pointer is valid only
        /// there), and writes them from the innermost.
        private static func gather(
            _ frames: [ByteBuffer], index: Int, count: Int, into vectors: UnsafeMutableBufferPointer<iovec>,
            descriptor: CInt
        ) -> Int {
            guard index < count else {
                let result = writev(descriptor, vectors.baseAddress, CInt(count))
                return result < 0 ? -Int(errno) : result
            }
            return frames[index].withUnsafeReadableBytes { bytes in
                vectors[index] = iovec(
                    iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                return gather(frames, index: index + 1, count: count, into: vectors, descriptor: descriptor)
            }
        }
    }
#endif
