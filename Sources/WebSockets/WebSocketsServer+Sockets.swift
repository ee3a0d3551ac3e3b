import WebSocketsCluster
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol
import WebSocketsSite

#if os(Linux)
    import Glibc
    import NIOCore

    /// The WebSocket connections' own transport (``SocketLoop``): started with the server, one loop per SwiftNIO loop,
    /// and each upgraded connection handed to the next.
    extension WebSocketsServer {
        /// Starts the socket loops unless they are not wanted (tests of SwiftNIO's path); on failure the connections
        /// stay SwiftNIO channels: logged once, and `websockets_socket_loops` is 0.
        func startSocketLoops() {
            guard runtime.withLockedValue({ $0.socketLoopsWanted }) else {
                metrics.socketLoops.record(0)
                return
            }
            var count = 0
            for _ in group.makeIterator() { count += 1 }
            var loops: [SocketLoop] = []
            do {
                for index in 0..<max(1, count) {
                    loops.append(
                        try SocketLoop(
                            name: "websockets-socket-\(index)", outbound: outboundWaterMark,
                            bytesOut: metrics.status.bytesOut))
                }
            } catch {
                logger.warning(
                    "socket loops unavailable: connections stay SwiftNIO channels", metadata: ["error": "\(error)"])
                for loop in loops { loop.shutdownGracefully { _ in } }
                loops = []
            }
            runtime.withLockedValue { $0.socketLoops = loops }
            metrics.socketLoops.record(loops.count)
        }

        /// Stops the socket loops (after the connections were closed).
        func stopSocketLoops() async {
            let loops = runtime.withLockedValue { runtime -> [SocketLoop] in
                defer { runtime.socketLoops = [] }
                return runtime.socketLoops
            }
            for loop in loops { await loop.shutdown() }
        }

        /// The handler of a connection just upgraded whose socket is `descriptor`: a handoff of its socket to the next
        /// socket loop, or `nil` when it stays a SwiftNIO channel (no loops).
        func socketHandoff(of descriptor: CInt, credentials: BrowserCredentials, deflate: DeflateNegotiation?)
            -> SocketHandoff?
        {
            guard let loop = nextSocketLoop() else { return nil }
            return SocketHandoff(
                descriptor: descriptor,
                move: { [self] descriptor, received in
                    loop.execute {
                        self.adopt(descriptor, on: loop, credentials: credentials, deflate: deflate, received: received)
                    }
                },
                failed: { [self] code in
                    notMoved("its descriptor could not be duplicated", error: IOError(errnoCode: code, reason: "fcntl"))
                })
        }

        /// The socket loop next in turn for a connection moving to one, or `nil` when there are none.
        func nextSocketLoop() -> SocketLoop? {
            runtime.withLockedValue { runtime -> SocketLoop? in
                guard !runtime.socketLoops.isEmpty else { return nil }
                runtime.nextSocketLoop = (runtime.nextSocketLoop + 1) % runtime.socketLoops.count
                return runtime.socketLoops[runtime.nextSocketLoop]
            }
        }

        /// An upgraded connection closed because its socket could not be moved to a loop of ours (the process is out
        /// of descriptors): logged and counted, in one place for both steps that can fail.
        private func notMoved(_ why: String, error: any Error) {
            logger.warning("upgraded connection closed: \(why)", metadata: ["error": "\(error)"])
            metrics.closed(reason: .descriptors)
        }

        /// Starts the connection of socket `descriptor` on `loop`; on the loop.
        private func adopt(
            _ descriptor: CInt, on loop: SocketLoop, credentials: BrowserCredentials, deflate: DeflateNegotiation?,
            received: ByteBuffer?
        ) {
            let handler = makeConnectionHandler(credentials: credentials, deflate: deflate, shard: hub.shard(for: loop))
            let connection = SocketConnection(descriptor: descriptor, loop: loop, handler: handler)
            do {
                try loop.register(connection)
            } catch {
                notMoved("its socket could not be registered", error: error)
                _ = Glibc.close(descriptor)
                return
            }
            handler.attach(.socket(connection))
            if let received, received.readableBytes > 0 { handler.received(received) }
        }
    }
#endif
