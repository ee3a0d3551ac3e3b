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
/// Requests on one connection are answered in order (NIO's pipelining assistance holds the next one back).
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
    /// Run this on a task and write what it returns.
    case task(@Sendable () async -> HTTPServerResponse)
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

final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let responder: HTTPResponder
    private let immediate: ImmediateResponder?
    private let admit: RequestAdmitter
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyLimit = 0
    /// A request refused from its head or for its size: the rest of it is not read, the connection closes.
    private var refused = false
    /// Whether the connection's reads were made larger.
    private var grownReads = false
    /// Whether answers written during this read wait for its end to be flushed.
    private var unflushed = false
    /// An answer held while the connection is unwritable, written once it is writable again. Until its end is
    /// written NIO's pipelining handler holds the next request and stops reading: a client that sends requests and
    /// never reads the answers makes the server hold one answer beyond the channel's water mark, not one per request
    /// (3 connections with 40,000 pipelined requests for client.js each, never read, held 1,468 MiB).
    private var parked: (response: HTTPServerResponse, version: HTTPVersion, keepAlive: Bool)?

    init(
        admit: @escaping RequestAdmitter = { _, _ in .accepted(bodyLimit: 4 << 20) },
        immediate: ImmediateResponder? = nil,
        responder: @escaping HTTPResponder
    ) {
        self.admit = admit
        self.immediate = immediate
        self.responder = responder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        // The sends of all the requests of this read (pipelined ones are handled as the answer to the one before
        // is written, within this call) reach the loops' writers together.
        DeliveryCork.holding(on: context.eventLoop) { read(unwrapInboundIn(data), context: context) }
    }

    private func read(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            body = []
            switch admit(head, context.channel.remoteAddress?.ipAddress ?? "") {
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
        case .body(var buffer):
            guard let head else { return }
            guard body.count + buffer.readableBytes <= bodyLimit else {
                refuse(.error(.payloadTooLarge), version: head.version, context: context)
                return
            }
            body.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
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
            context.triggerUserOutboundEvent(HTTPConnectionEvent.requestReceived, promise: nil)
            let keepAlive = head.isKeepAlive
            let (path, query) = Self.split(head.uri)
            let request = HTTPServerRequest(
                method: head.method, path: path, query: query, headers: head.headers, body: body,
                remoteAddress: context.channel.remoteAddress?.ipAddress ?? "")
            body = []
            let work: @Sendable () async -> HTTPServerResponse
            switch immediate?(request) {
            case .response(let response):
                // Flushed when the read ends (channelReadComplete, which NIO's pipelining handler also fires after
                // the requests it held): the answers to a publisher's pipelined requests leave in one write. Each
                // answer flushed alone was 20% of the server's samples with 8 targeted sends in flight.
                write(response, version: head.version, keepAlive: keepAlive, context: context, flush: false)
                return
            case .task(let task):
                work = task
            case nil:
                let responder = self.responder
                work = { await responder(request) }
            }
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let version = head.version
            Task {
                let response = await work()
                loopBound.eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.write(response, version: version, keepAlive: keepAlive, context: context)
                }
            }
        }
    }

    /// Answers at once and closes: the rest of the request is not read.
    private func refuse(_ response: HTTPServerResponse, version: HTTPVersion, context: ChannelHandlerContext) {
        refused = true
        head = nil
        body = []
        context.triggerUserOutboundEvent(HTTPConnectionEvent.requestReceived, promise: nil)
        write(response, version: version, keepAlive: false, context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let parked {
            self.parked = nil
            write(parked.response, version: parked.version, keepAlive: parked.keepAlive, context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if unflushed {
            unflushed = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    /// Writes `response`; flushed at once unless `flush` is false (then at the end of the read). A response that
    /// closes the connection is always flushed at once: the close waits for it.
    private func write(
        _ response: HTTPServerResponse, version: HTTPVersion, keepAlive: Bool, context: ChannelHandlerContext,
        flush: Bool = true
    ) {
        // A closing answer goes out anyway: nothing is read after it.
        guard context.channel.isWritable || !keepAlive else {
            parked = (response, version, keepAlive)
            context.triggerUserOutboundEvent(HTTPConnectionEvent.answerWaiting, promise: nil)
            if unflushed {
                // What the read wrote so far may be what the browser waits for to read again.
                unflushed = false
                context.flush()
            }
            return
        }
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
        context.triggerUserOutboundEvent(HTTPConnectionEvent.responseSent, promise: nil)
        guard flush || !keepAlive else {
            context.write(wrapOutboundOut(.end(nil)), promise: nil)
            unflushed = true
            return
        }
        unflushed = false
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    static func split(_ uri: String) -> (String, String) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<mark]), String(uri[uri.index(after: mark)...]))
    }
}
