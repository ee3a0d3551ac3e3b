import Dispatch
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// Sends that arrive one after another on one keep-alive connection (a queue worker, a cron job) are answered on
/// the event loop as soon as they are routed, so the next ones are read and routed in the same turn, and each
/// connection gets all of their frames in one write.
@Suite struct CorkingTests {
    /// Eight sends pipelined in one segment: seven to everyone and one to bob alone in the middle. Every tab gets
    /// its frames in the order of the sends, and the writers flush each connection once, plus once more for bob,
    /// whose own send came between the broadcasts: 4 flushes. Measured without the cork (``DeliveryCork``): 8 to 10,
    /// the other event loop's writer starting on the first broadcasts while the rest were still being routed; on
    /// the old main a send to everyone was answered from a task and written in a loop turn of its own.
    @Test func pipelinedSendsLeaveInOneWritePerConnectionInOrder() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let alice = try await harness.connect("alice")
            let bob = try await harness.connect("bob")
            let carol = try await harness.connect("carol")
            let publisher = try await RawSocket.connect(port: harness.port)
            try await withTeardown({ await publisher.close() }) {
                // The first time, the connection's first read (128 bytes, as every connection's, to keep browsers' small)
                // splits the requests over loop turns; after its first request, a plain HTTP connection reads more at once.
                var flushed = 0
                for round in 1...2 {
                    let before = try await flushes(harness)
                    var requests = ""
                    for number in 0..<8 {
                        let body = number == 3 ? #"["t3", 3, 3, 2]"# : #"["b\#(number)", \#(number), 1]"#
                        requests +=
                            "POST /WebSockets/send HTTP/1.1\r\nHost: 127.0.0.1\r\nX-WebSockets-Key: \(harness.key)\r\n"
                            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
                    }
                    try await publisher.write(Array(requests.utf8))
                    try await eventually("eight answers") {
                        String(decoding: publisher.received, as: UTF8.self).components(separatedBy: "HTTP/1.1 202")
                            .count
                            == 1 + 8 * round
                    }
                    let everyone = [0, 1, 2, 4, 5, 6, 7].map { "b\($0)" }
                    for tab in [alice, carol] {
                        var actions: [String] = []
                        for _ in everyone { actions.append(try await tab.nextMessage().action) }
                        #expect(actions == everyone)
                    }
                    var actions: [String] = []
                    for _ in 0..<8 { actions.append(try await bob.nextMessage().action) }
                    #expect(actions == ["b0", "b1", "b2", "t3", "b4", "b5", "b6", "b7"])
                    flushed = try await flushes(harness) - before
                }
                #expect(flushed == 4)
                for tab in [alice, bob, carol] { try await tab.expectNoMessage() }
            }
        }
    }

    /// A send whose 202 the sender has, still held by the cork of the loop that read it (a busy loop that has not
    /// reached the task that wakes the writers), is written before a `Server/close_by_user` that another
    /// connection's request brings to the tab's loop: the close takes the queued sends first. Without that, a CI
    /// run of the README's PHP site saw bob's close without the news sent just before it. Here the cork is held on
    /// this thread, its waking task queued on an embedded loop that runs only when told.
    @Test func aSendStillHeldByACorkIsWrittenBeforeALaterClose() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let bob = try await harness.connect("bob")
            let hub = harness.server.hub
            let wakes = EmbeddedEventLoop()
            DeliveryCork.holding(on: wakes) {
                hub.deliver(Send(action: "news", details: "before", sendTo: .specificUsers, target: 2))
                // The close comes from another thread, with no cork of its own, as another request would (not
                // `sync`, which may run the block on this thread).
                let done = DispatchSemaphore(value: 0)
                Thread {
                    hub.deliver(Send(action: "Server/close_by_user", details: 2, sendTo: .all))
                    done.signal()
                }.start()
                done.wait()
            }
            let close = try await bob.nextClose()
            #expect(close.before == [Message(action: "news", details: "before"), Message(action: "Server/close")])
            wakes.run()
        }
    }

    /// The answers to requests pipelined in one read leave in one write: flushed once, when the read ends. Each
    /// was flushed on its own before (3 flushes here).
    @Test func answersToPipelinedRequestsAreFlushedOnceARead() throws {
        final class FlushCounter: ChannelOutboundHandler {
            typealias OutboundIn = NIOAny
            var flushes = 0
            func flush(context: ChannelHandlerContext) {
                flushes += 1
                context.flush()
            }
        }
        let counter = FlushCounter()
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        try channel.pipeline.syncOperations.addHandlers([
            counter, ByteToMessageHandler(HTTPRequestDecoder()), HTTPResponseEncoder(),
            HTTPRequestHandler(immediate: { request in .response(.text(request.path)) }, responder: { _ in .text("") }),
        ])
        let requests = (1...3).map { "POST /\($0) HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" }.joined()
        try channel.writeInbound(ByteBuffer(string: requests))
        var written = ""
        while let part = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = part { written += String(buffer: buffer) }
        }
        #expect(written.components(separatedBy: "HTTP/1.1 200 OK").count == 4)
        #expect(written.hasSuffix("/3"))
        #expect(counter.flushes == 1)
    }

    private func flushes(_ harness: Harness) async throws -> Int {
        let metrics = try await harness.http("GET", "/metrics").body
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("websockets_flushes_total ") }
        return Int(line?.split(separator: " ").last ?? "0") ?? 0
    }
}
