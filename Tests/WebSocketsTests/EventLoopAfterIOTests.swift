import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// A task queued with `executeAfterPendingIO` runs after the loop has read what is ready, where a chain of
/// `execute`d tasks runs to its end before any read: the parts of a broadcast pass must let the loop read between
/// them.
@Suite struct EventLoopAfterIOTests {
    /// Bytes are written to a socket of the loop, then four parts run, each queueing the next. The read comes right
    /// after the first part (asserted: before the last, since a thread preempted for longer than the yield between
    /// queueing a part and the loop's next look at its tasks runs that part without polling). With `execute` for
    /// the next part, all four parts ran before the read.
    @Test func aChainOfPartsLetsTheLoopReadBetweenThem() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let log = NIOLockedValueBox<[String]>([])
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ReadRecorder(log: log))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = try await ClientBootstrap(group: group).connect(to: try #require(server.localAddress)).get()
        let loop = group.next()
        // Wait until the server side's child is registered and reading, so that the bytes are its next read.
        try await client.writeAndFlush(ByteBuffer(string: "hello")).get()
        try await eventually("the first read") { log.withLockedValue { $0 } == ["read"] }
        log.withLockedValue { $0 = [] }
        // Written on the loop: the bytes are in the server socket's buffer before the first part ends.
        try await runParts(4, on: loop, log: log) { client.writeAndFlush(ByteBuffer(string: "again"), promise: nil) }
        let events = log.withLockedValue { $0 }
        #expect(events.filter { $0 != "read" } == ["part 0", "part 1", "part 2", "part 3"])
        #expect((events.firstIndex(of: "read") ?? .max) < events.firstIndex(of: "part 3") ?? -1)
        try await client.close()
        try await server.close()
        try await group.shutdownGracefully()
    }
}

private final class ReadRecorder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let log: NIOLockedValueBox<[String]>

    init(log: NIOLockedValueBox<[String]>) {
        self.log = log
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        log.withLockedValue { $0.append("read") }
    }
}

/// Runs `count` parts on `loop`, each queueing the next with `executeAfterPendingIO` and logging "part N" to `log`;
/// `first` runs on the loop just before the first part (it makes bytes ready to read).
func runParts(
    _ count: Int, on loop: any EventLoop, log: NIOLockedValueBox<[String]>, first: @escaping @Sendable () -> Void
) async throws {
    let done = loop.makePromise(of: Void.self)
    @Sendable func part(_ number: Int) {
        log.withLockedValue { $0.append("part \(number)") }
        if number + 1 < count {
            loop.executeAfterPendingIO { part(number + 1) }
        } else {
            done.succeed()
        }
    }
    loop.execute {
        first()
        part(0)
    }
    try await done.futureResult.get()
}
