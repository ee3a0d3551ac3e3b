import Foundation
import NIOCore
import NIOHTTP1
import WebSocketsCluster
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol
import WebSocketsSite

/// Collects a request's head and body, hands the whole request to a responder, and writes its answer.
/// Requests on one connection are answered in order (``AnswerQueue``): a request waits until the answers ahead of
/// it are written, but a send (`readsAhead`) may be handled while the sends ahead of it wait for theirs.
///
/// A request's head is first given to `admit`, which says how much body it may bring or refuses it at once (the
/// body is then not read, and the connection is closed after the answer). A request the `immediate` responder
/// answers is answered on the event loop at once; the others go to the async responder on a task. Answering a send
/// on the loop saves two thread hops and a task per request.
typealias ImmediateResponder = (HTTPServerRequest) -> ImmediateAnswer?

/// What the event loop made of a request: its answer, or the work that makes the answer on a task (with what the
/// loop already parsed, so that nothing is parsed twice).
enum ImmediateAnswer {
    /// Write this now.
    case response(HTTPServerResponse)
    /// Run this on a task and write what it returns; the requests behind it wait.
    case task(@Sendable () async -> HTTPServerResponse)
    /// Started on the loop now; it gives its answer to the callback later, from any thread. The requests behind it
    /// may be handled meanwhile (a send in a cluster, answered once PostgreSQL has it).
    case later(@Sendable (_ answer: @escaping @Sendable (HTTPServerResponse) -> Void) -> Void)
}

/// What may become of a request, decided from its head.
enum RequestAdmission {
    /// Read its body, up to `limit` bytes.
    case accepted(bodyLimit: Int)
    /// Answer this at once, without reading the body.
    case refused(HTTPServerResponse)
}

/// Decides on a request from its head and the client's address.
typealias RequestAdmitter = (HTTPRequestHead, String) -> RequestAdmission

final class HTTPRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let responder: HTTPResponder
    private let immediate: ImmediateResponder?
    private let admit: RequestAdmitter
    private let readsAhead: (HTTPRequestHead) -> Bool
    /// The time limits' handler in front of it, told of each request and answer; `nil`: no limits.
    private let connectionGuard: HTTPConnectionGuard?
    /// The request being received: its head, once handled, until its end.
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyLimit = 0
    /// The answers owed, in order.
    private var answers = AnswerQueue()
    /// Parts of requests that wait for the answers ahead of them: at most what one read brought, since the
    /// connection is not read while any wait.
    private var held = CircularBuffer<HTTPServerRequestPart>()
    /// Whether the channel asked to read while parts were held: it reads once they are handled.
    private var readWanted = false
    /// Whether held parts are being handled (handling one may write answers, which handle the next).
    private var handlingHeld = false
    /// A request was refused, or asked for the connection to close: nothing more is handled, and the connection
    /// closes after the answers owed.
    private var closing = false
    /// The peer's address, read once: formatting it was a part of every request.
    private var peerAddress: String?
    /// Whether the connection's reads were made larger.
    private var grownReads = false
    /// Whether a read is under way: answers written meanwhile are flushed at its end.
    private var reading = false
    /// Whether answers were written and not flushed.
    private var unflushed = false
    /// Whether the next answer waits for the connection to be writable again. Until it is written the requests
    /// behind it are held and the connection is not read: a client that sends requests and never reads the answers
    /// makes the server hold one answer beyond the channel's water mark, not one per request (3 connections with
    /// 40,000 pipelined requests for client.js each, never read, held 1,468 MiB).
    private var waitingToWrite = false

    init(
        admit: @escaping RequestAdmitter = { _, _ in .accepted(bodyLimit: 4 << 20) },
        readsAhead: @escaping (HTTPRequestHead) -> Bool = { _ in false },
        connectionGuard: HTTPConnectionGuard? = nil,
        immediate: ImmediateResponder? = nil,
        responder: @escaping HTTPResponder
    ) {
        self.admit = admit
        self.connectionGuard = connectionGuard
        self.readsAhead = readsAhead
        self.immediate = immediate
        self.responder = responder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let part = unwrapInboundIn(data)
        reading = true
        // The sends of all the requests of this read (pipelined ones are handled in this call, or as the answers
        // ahead of them are written) reach the loops' writers together.
        DeliveryCork.holding(on: context.eventLoop) {
            if held.isEmpty && mayHandle(part) {
                handle(part, context: context)
            } else {
                held.append(part)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        if unflushed {
            unflushed = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        // While requests wait, the connection is not read: what it may make the server hold is one read's worth.
        guard held.isEmpty && !waitingToWrite else {
            readWanted = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && waitingToWrite {
            waitingToWrite = false
            writeReady(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    /// Whether `part` may be handled now: a request's head when the answers ahead allow it; its body and end then
    /// follow it.
    private func mayHandle(_ part: HTTPServerRequestPart) -> Bool {
        guard case .head(let head) = part else { return true }
        return answers.mayHandle(readsAhead: readsAhead(head))
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            body = []
            switch admit(head, peer(context)) {
            case .refused(let refusal):
                refuse(refusal, version: head.version, context: context)
                return
            case .accepted(let limit):
                bodyLimit = limit
            }
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > bodyLimit {
                refuse(.error(.payloadTooLarge), version: head.version, context: context)
                return
            }
            self.head = head
        case .body(let buffer):
            guard let head else { return }
            guard body.count + buffer.readableBytes <= bodyLimit else {
                refuse(.error(.payloadTooLarge), version: head.version, context: context)
                return
            }
            // Copied once, from the buffer into the body (`readBytes` made an array to copy from first).
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            self.head = nil
            if !grownReads {
                // Not a WebSocket (an upgrade never gets here): a publisher, most likely, whose pipelined requests
                // should be read at once rather than 128 bytes at a time (the start a browser's connection gets, to
                // stay small), so that their sends leave together. Plain HTTP connections are few (capped).
                grownReads = true
                try? context.channel.syncOptions?.setOption(
                    .recvAllocator,
                    value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16384, maximum: 65536))
            }
            connectionGuard?.note(.requestReceived)
            let keepAlive = head.isKeepAlive
            if !keepAlive { closing = true }
            let (path, query) = Self.split(head.uri)
            let request = HTTPServerRequest(
                method: head.method, path: path, query: query, headers: head.headers, body: body,
                remoteAddress: peer(context))
            body = []
            let work: @Sendable () async -> HTTPServerResponse
            switch immediate?(request) {
            case .response(let response):
                // Flushed when the read ends (channelReadComplete): the answers to a publisher's pipelined requests
                // leave in one write. Each answer flushed alone was 20% of the server's samples with 8 targeted
                // sends in flight.
                _ = answers.add(version: head.version, keepAlive: keepAlive, readsAhead: true, response: response)
                writeReady(context: context)
                return
            case .later(let start):
                let number = answers.add(version: head.version, keepAlive: keepAlive, readsAhead: true)
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                start { response in
                    if loopBound.eventLoop.inEventLoop {
                        let (handler, context) = loopBound.value
                        handler.answered(number, with: response, context: context)
                    } else {
                        loopBound.eventLoop.execute {
                            let (handler, context) = loopBound.value
                            handler.answered(number, with: response, context: context)
                        }
                    }
                }
                return
            case .task(let task):
                work = task
            case nil:
                let responder = self.responder
                work = { await responder(request) }
            }
            let number = answers.add(version: head.version, keepAlive: keepAlive, readsAhead: false)
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            Task {
                let response = await work()
                loopBound.eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.answered(number, with: response, context: context)
                }
            }
        }
    }

    private func peer(_ context: ChannelHandlerContext) -> String {
        if let peerAddress { return peerAddress }
        let address = context.channel.remoteAddress?.ipAddress ?? ""
        peerAddress = address
        return address
    }

    /// Answers at once, after the answers owed, and closes: the rest of the request is not read.
    private func refuse(_ response: HTTPServerResponse, version: HTTPVersion, context: ChannelHandlerContext) {
        closing = true
        head = nil
        body = []
        held.removeAll()
        connectionGuard?.note(.requestReceived)
        _ = answers.add(version: version, keepAlive: false, readsAhead: false, response: response)
        writeReady(context: context)
    }

    private func answered(_ number: Int, with response: HTTPServerResponse, context: ChannelHandlerContext) {
        answers.answer(number, with: response)
        writeReady(context: context)
    }

    /// Writes the answers that are made, in order, then handles the requests they held back.
    private func writeReady(context: ChannelHandlerContext) {
        var wrote = false
        while let slot = answers.next, let response = slot.response {
            // A closing answer goes out anyway: nothing is read after it.
            guard context.channel.isWritable || !slot.keepAlive else {
                if !waitingToWrite {
                    waitingToWrite = true
                    connectionGuard?.note(.answerWaiting)
                }
                if unflushed {
                    // What was written so far may be what the client waits for to read again.
                    unflushed = false
                    context.flush()
                }
                return
            }
            answers.removeNext()
            wrote = true
            write(response, version: slot.version, keepAlive: slot.keepAlive, context: context)
            if !slot.keepAlive {
                answers.removeAll()
                held.removeAll()
                return
            }
        }
        if wrote && answers.isEmpty {
            connectionGuard?.note(.responseSent)
        }
        if unflushed && !reading {
            unflushed = false
            context.flush()
        }
        handleHeld(context: context)
    }

    /// Handles the held parts that may be handled now, then reads again if the channel asked to.
    private func handleHeld(context: ChannelHandlerContext) {
        guard !handlingHeld else { return }
        handlingHeld = true
        defer { handlingHeld = false }
        while !closing, let part = held.first, mayHandle(part) {
            held.removeFirst()
            DeliveryCork.holding(on: context.eventLoop) { handle(part, context: context) }
        }
        if closing { held.removeAll() }
        if held.isEmpty && !waitingToWrite && readWanted && !closing {
            readWanted = false
            context.read()
        }
    }

    /// Writes `response`, flushed at the end of the read (or of ``writeReady(context:)``). A response that closes the
    /// connection is flushed at once, and the connection closed once it is written.
    private func write(
        _ response: HTTPServerResponse, version: HTTPVersion, keepAlive: Bool, context: ChannelHandlerContext
    ) {
        var headers = response.headers
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !response.body.isEmpty {
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))),
                promise: nil)
        }
        guard !keepAlive else {
            context.write(wrapOutboundOut(.end(nil)), promise: nil)
            unflushed = true
            return
        }
        unflushed = false
        connectionGuard?.note(.responseSent)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    /// The path and the query of `uri`, found in its bytes: walking it by `Character` (grapheme breaking) was
    /// 1.3% of a targeted send's samples, for three calls a request.
    static func split(_ uri: String) -> (String, String) {
        guard let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (uri, "") }
        return (String(uri[..<mark]), String(uri[uri.utf8.index(after: mark)...]))
    }
}
