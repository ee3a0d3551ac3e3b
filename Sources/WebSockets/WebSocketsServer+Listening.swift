import NIOCore
import NIOPosix
import WebSocketsConnection
import WebSocketsCore

/// Where the server accepts connections: SwiftNIO's server channel, or, on Linux with socket loops of ours, a
/// listening socket of ours (``AcceptLoop``) whose connections are handed to SwiftNIO with their descriptors known.
enum Listener: Sendable {
    case channel(any Channel)
    #if os(Linux)
        case acceptor(AcceptLoop)
    #endif

    /// Stops accepting.
    func close() async {
        switch self {
        case .channel(let channel): try? await channel.close()
        #if os(Linux)
            case .acceptor(let acceptor): await acceptor.close()
        #endif
        }
    }
}

extension WebSocketsServer {
    /// Listens on `host` and `listen_port`: the port it got, and the listener. With socket loops (Linux), on a socket
    /// of ours, so that an upgraded connection's descriptor is known without reading SwiftNIO's private state; else
    /// on SwiftNIO's server channel, where connections stay SwiftNIO's.
    func listen(host: String) async throws -> (Listener, port: Int) {
        #if os(Linux)
            if runtime.withLockedValue({ !$0.socketLoops.isEmpty }) {
                let acceptor = try AcceptLoop(host: host, port: settings.listenPort, backlog: Self.backlog)
                acceptor.start(
                    accepted: { [self] descriptor in accepted(descriptor) },
                    failed: { [self] code in
                        metrics.acceptFailures.increment()
                        refusals.refused(
                            "accept", "connections wait in the backlog: the process is out of descriptors",
                            level: .warning, logger: logger, metadata: ["errno": "\(code)"])
                    })
                return (.acceptor(acceptor), acceptor.port)
            }
        #endif
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Self.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try applyConnectionOptions(channel)
                    try configure(channel, descriptor: nil)
                }
            }
            .bind(host: host, port: settings.listenPort).get()
        return (.channel(channel), channel.localAddress?.port ?? settings.listenPort)
    }

    /// How many connections may wait to be accepted: a reconnect storm's worth.
    private static let backlog: CInt = 4096

    #if os(Linux)
        /// A connection accepted on our socket: handed to SwiftNIO's next loop, its descriptor kept for the handoff.
        /// The channel is made on that loop, not on the accepting thread: glibc gives each thread an arena of its
        /// own, and channels made on the accepting thread would all live in its arena.
        private func accepted(_ descriptor: CInt) {
            let loop = group.next()
            loop.execute { [self] in
                ClientBootstrap(group: loop)
                    .channelInitializer { [self] channel in
                        channel.eventLoop.makeCompletedFuture {
                            try applyConnectionOptions(channel)
                            try configure(channel, descriptor: descriptor)
                        }
                    }
                    .withConnectedSocket(descriptor)
                    .whenFailure { [self] error in
                        // SwiftNIO closed the socket with the channel it could not set up.
                        logger.warning("accepted connection not set up", metadata: ["error": "\(error)"])
                        metrics.acceptFailures.increment()
                    }
            }
        }
    #endif

    /// The options of every connection's channel, however it was accepted.
    private func applyConnectionOptions(_ channel: any Channel) throws {
        guard let options = channel.syncOptions else { return }
        try options.setOption(.tcpOption(.tcp_nodelay), value: 1)
        try options.setOption(.writeBufferWaterMark, value: outboundWaterMark)
        // Each connection keeps its receive buffer between reads: start it small (browsers' messages are small) and
        // let it grow for a connection that reads more.
        try options.setOption(
            .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 128, maximum: 65536))
        // One read per wake-up (epoll is level-triggered, so what is left is read on the next): with several, a read
        // that lands while the previous buffer is still held makes NIO keep two buffers per connection for good.
        try options.setOption(.maxMessagesPerRead, value: 1)
    }
}
