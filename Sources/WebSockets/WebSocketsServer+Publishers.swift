import NIOCore
import WebSocketsConnection
import WebSocketsCore

#if os(Linux)
    import Glibc

    /// Publishers' connections on the socket loops: a connection that begins with a send moves there from
    /// SwiftNIO (``PublisherSniffer``) and is read by ``PublisherConnection``.
    extension WebSocketsServer {
        /// The sniffer for a new connection whose socket is `descriptor`, or `nil` when there are no socket loops
        /// (the connection stays SwiftNIO's, whatever it is).
        func publisherSniffer(of descriptor: CInt, connectionGuard: HTTPConnectionGuard) -> PublisherSniffer? {
            guard runtime.withLockedValue({ !$0.socketLoops.isEmpty }) else { return nil }
            return PublisherSniffer(
                descriptor: descriptor, connectionGuard: connectionGuard,
                move: { [self] descriptor, received, peer in
                    // The loop is chosen now, for publishers only: the next in turn, as an upgraded connection's.
                    guard let loop = nextSocketLoop() else {
                        httpConnections.release()
                        _ = Glibc.close(descriptor)
                        return
                    }
                    loop.execute { self.adoptPublisher(descriptor, on: loop, received: received, peer: peer) }
                },
                failed: { [self] code in
                    logger.warning(
                        "publisher connection stays on SwiftNIO: its descriptor could not be duplicated",
                        metadata: ["errno": "\(code)"])
                })
        }

        /// Starts the publisher connection of socket `descriptor` on `loop`, counted among the HTTP connections
        /// (the count moved with it); on the loop.
        private func adoptPublisher(_ descriptor: CInt, on loop: SocketLoop, received: ByteBuffer, peer: String) {
            let handler = PublisherConnection(server: self, loop: loop, peer: peer, settings: settings)
            let connection = SocketConnection(descriptor: descriptor, loop: loop, handler: handler)
            do {
                try loop.register(connection)
            } catch {
                logger.warning(
                    "publisher connection closed: its socket could not be registered", metadata: ["error": "\(error)"])
                metrics.closed(reason: .descriptors)
                httpConnections.release()
                _ = Glibc.close(descriptor)
                return
            }
            metrics.publisherConnections.increment()
            handler.attach(connection, received: received)
        }
    }
#endif
