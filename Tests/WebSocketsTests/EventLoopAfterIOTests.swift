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

/// A task queued with `executeAfterPendingIO` on SwiftNIO's loop lets the loop read before it, where a chain of
/// `execute`d tasks runs to its end before any read: the parts of a broadcast pass must let the loop read between
/// them. (On the loop of our own, which connections use on Linux, the order is exact and tested step by step:
/// `SocketLoopTests.aTaskQueuedByATaskRunsAfterTheSocketsArePolled`.)
@Suite struct EventLoopAfterIOTests {
    /// Bytes are made ready to read on the loop, then a chain of parts runs, each queueing the next, until a part
    /// finds that the loop has read them. SwiftNIO's loop runs every task already due before it polls, so where the
    /// read comes depends on speed (under ThreadSanitizer a part took longer than the 50 µs yield, and the next one
    /// was due before the loop polled; asserting "before the fourth part" failed there): what holds at any speed is
    /// that the chain is not run to its end before the read. A chain of `execute`d parts never sees the read and is
    /// cut at its bound.
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

        let bound = 100_000
        let write = { @Sendable in client.writeAndFlush(ByteBuffer(string: "again"), promise: nil) }
        let reads = log.withLockedValue { $0.count }
        let chained = try await partsUntilRead(bound, on: loop, log: log, queue: { loop.execute($0) }, first: write)
        #expect(chained == bound, "execute: the chain ran to its bound before the loop read")
        try await eventually("the read after the execute chain") { log.withLockedValue { $0.count } > reads }

        let yielded = try await partsUntilRead(
            bound, on: loop, log: log, queue: { loop.executeAfterPendingIO($0) }, first: write)
        #expect(yielded < bound)
        try await client.close()
        try await server.close()
        try await group.shutdownGracefully()
    }

    /// Runs parts on `loop`, each queueing the next with `queue`, until a part finds a read logged after `first`
    /// (which runs on the loop just before the first part and makes bytes ready to read) or `bound` parts have run;
    /// how many ran.
    private func partsUntilRead(
        _ bound: Int, on loop: any EventLoop, log: NIOLockedValueBox<[String]>,
        queue: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void, first: @escaping @Sendable () -> Void
    ) async throws -> Int {
        let done = loop.makePromise(of: Int.self)
        let reads = log.withLockedValue { $0.count }
        @Sendable func part(_ number: Int) {
            if number == bound || log.withLockedValue({ $0.count }) > reads {
                done.succeed(number)
            } else {
                queue { part(number + 1) }
            }
        }
        loop.execute {
            first()
            part(0)
        }
        return try await done.futureResult.get()
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
