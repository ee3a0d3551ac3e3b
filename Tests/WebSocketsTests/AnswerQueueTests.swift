import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import WebSockets

/// The order of a connection's answers (``AnswerQueue``), on inputs, and the handler that follows it.
@Suite struct AnswerQueueTests {
    @Test func answersLeaveInTheOrderOfTheirRequestsWhateverOrderTheyAreMadeIn() {
        var queue = AnswerQueue(limit: 3)
        #expect(queue.mayHandle(readsAhead: false))
        let first = queue.add(version: .http1_1, keepAlive: true, readsAhead: true)
        let second = queue.add(version: .http1_1, keepAlive: true, readsAhead: true)
        // Behind owed sends, another send may be handled; any other request waits.
        #expect(queue.mayHandle(readsAhead: true))
        #expect(!queue.mayHandle(readsAhead: false))
        let third = queue.add(version: .http1_1, keepAlive: true, readsAhead: true)
        #expect(!queue.mayHandle(readsAhead: true), "the limit")
        queue.answer(third, with: .text("3"))
        queue.answer(second, with: .text("2"))
        #expect(queue.next == nil, "the first is not made yet")
        queue.answer(first, with: .text("1"))
        var written: [String] = []
        while let slot = queue.next {
            written.append(String(decoding: slot.response?.body ?? [], as: UTF8.self))
            queue.removeNext()
        }
        #expect(written == ["1", "2", "3"])
        #expect(queue.isEmpty)
        // An answer made on a task lets nothing be handled ahead of it.
        let task = queue.add(version: .http1_1, keepAlive: true, readsAhead: false)
        #expect(!queue.mayHandle(readsAhead: true))
        queue.answer(task, with: .text("t"))
        queue.removeNext()
        #expect(queue.mayHandle(readsAhead: true) && queue.mayHandle(readsAhead: false))
    }

    @Test func theHandlerSplitsAURIAtItsFirstQuestionMark() {
        #expect(HTTPRequestHandler.split("/WebSockets/send") == ("/WebSockets/send", ""))
        #expect(HTTPRequestHandler.split("/é?x=ü?y") == ("/é", "x=ü?y"))
        #expect(HTTPRequestHandler.split("?") == ("", ""))
        #expect(
            WebSocketsServer.readsAhead(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/WebSockets/send?a")))
        #expect(
            !WebSocketsServer.readsAhead(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/WebSockets/sender")))
        #expect(!WebSocketsServer.readsAhead(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/WebSockets/send")))
    }

    /// Through the handler: sends answered later let the sends behind them be handled at once, a request of
    /// another kind waits for them, and the answers leave in order.
    @Test func laterAnswersLetSendsBehindThemBeHandledAndKeepTheirOrder() throws {
        let started = NIOLockedValueBox<[String]>([])
        let callbacks = NIOLockedValueBox<[String: @Sendable (HTTPServerResponse) -> Void]>([:])
        let handler = HTTPRequestHandler(
            readsAhead: { $0.uri.hasPrefix("/send") },
            immediate: { request in
                started.withLockedValue { $0.append(request.path) }
                guard request.path.hasPrefix("/send") else { return .response(.text(request.path)) }
                return .later { answer in callbacks.withLockedValue { $0[request.path] = answer } }
            },
            responder: { _ in .text("") })
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(HTTPRequestDecoder()), HTTPResponseEncoder(), handler,
        ])
        let requests = ["/send1", "/send2", "/page", "/send3"].map {
            "POST \($0) HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        }.joined()
        try channel.writeInbound(ByteBuffer(string: requests))
        #expect(started.withLockedValue { $0 } == ["/send1", "/send2"], "the page waits for the sends ahead")
        func written() throws -> String {
            var text = ""
            while let part = try channel.readOutbound(as: IOData.self) {
                if case .byteBuffer(let buffer) = part { text += String(buffer: buffer) }
            }
            return text
        }
        callbacks.withLockedValue { $0 }["/send2"]?(.text("two"))
        #expect(try written().isEmpty, "the first answer is owed")
        callbacks.withLockedValue { $0 }["/send1"]?(.text("one"))
        // In order, and the page, handled once the sends ahead were answered, right behind them.
        let answers = try written()
        let bodies = ["one", "two", "/page"].map { answers.range(of: $0)?.lowerBound }
        #expect(bodies.allSatisfy { $0 != nil } && bodies == bodies.sorted { $0! < $1! })
        #expect(started.withLockedValue { $0 } == ["/send1", "/send2", "/page", "/send3"])
        callbacks.withLockedValue { $0 }["/send3"]?(.text("three"))
        #expect(try written().hasSuffix("three"))
    }
}
