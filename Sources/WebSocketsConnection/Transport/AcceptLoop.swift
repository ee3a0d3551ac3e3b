#if os(Linux)
    import CEpoll
    import Foundation
    import Glibc
    import NIOConcurrencyHelpers
    import NIOCore

    /// A listening socket of ours and the thread that accepts on it. Each connection is handed to SwiftNIO through
    /// its public API for a socket already connected (`ClientBootstrap.withConnectedSocket`) with its descriptor
    /// known, so that once upgraded its socket can move to a ``SocketLoop`` without reading SwiftNIO's private state
    /// (the descriptor used to be found in `BaseSocketChannel` by reflection: a SwiftNIO release that moved it would
    /// have left every connection on SwiftNIO's path, 3.6 KiB instead of 1.5 per idle connection, silently).
    package final class AcceptLoop: Sendable {
        /// The listening socket.
        private let descriptor: CInt
        /// The port it listens on (the one given, or the kernel's choice for 0).
        package let port: Int
        /// Resumed when the accepting thread has ended.
        private let ended = NIOLockedValueBox<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

        /// Listens on `host` (an IPv4 address) and `port` with `backlog`; throws SwiftNIO's `IOError` with the
        /// failing call's errno (`EADDRINUSE` for a port in use).
        package init(host: String, port: Int, backlog: CInt) throws {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            var one: CInt = 1
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1,
                setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size)) == 0
            else {
                let code = errno
                Glibc.close(descriptor)
                throw IOError(errnoCode: code == 0 ? EINVAL : code, reason: "listen address \(host)")
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0, listen(descriptor, backlog) == 0 else {
                let code = errno
                Glibc.close(descriptor)
                throw IOError(errnoCode: code, reason: "bind")
            }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
            }
            self.descriptor = descriptor
            self.port = Int(UInt16(bigEndian: address.sin_port))
        }

        /// Starts accepting on a thread of its own: each connection's descriptor (non-blocking, close-on-exec) goes
        /// to `accepted`, which owns it from then on; a failed accept's errno to `failed` (out of descriptors: the
        /// connection waits in the backlog, and the thread tries again 10 ms later).
        package func start(
            accepted: @escaping @Sendable (CInt) -> Void, failed: @escaping @Sendable (CInt) -> Void
        ) {
            let thread = Thread { [self] in
                while true {
                    let connection = cepoll_accept(
                        descriptor, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
                    if connection >= 0 {
                        accepted(connection)
                        continue
                    }
                    let code = errno
                    switch code {
                    case EINTR, ECONNABORTED, EAGAIN:
                        continue
                    case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                        failed(code)
                        usleep(10_000)
                    default:
                        // EINVAL once `close()` shut the socket down: the loop ends.
                        finish()
                        return
                    }
                }
            }
            thread.name = "websockets-accept"
            thread.start()
        }

        private func finish() {
            let waiters = ended.withLockedValue { ended in
                ended.done = true
                defer { ended.waiters = [] }
                return ended.waiters
            }
            for waiter in waiters { waiter.resume() }
        }

        /// Stops accepting (a connection not accepted yet is refused by the kernel) and awaits the thread's end;
        /// `started`: whether ``start(accepted:failed:)`` was called (else only the socket is closed).
        package func close(started: Bool = true) async {
            shutdown(descriptor, Int32(SHUT_RDWR))
            if started {
                await withCheckedContinuation { continuation in
                    let done = ended.withLockedValue { ended in
                        if !ended.done { ended.waiters.append(continuation) }
                        return ended.done
                    }
                    if done { continuation.resume() }
                }
            }
            Glibc.close(descriptor)
        }
    }
#endif
