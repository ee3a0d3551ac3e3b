import Foundation
import NIOCore
import NIOHTTP1

/// Collects a request's head and body, hands the whole request to a responder, and writes its answer.
/// Requests on one connection are answered in order (NIO's pipelining assistance holds the next one back).
///
/// A request the `immediate` responder answers is answered on the event loop at once; the others go to the async
/// responder on a task. Answering a send on the loop saves two thread hops and a task per request.
typealias ImmediateResponder = (HTTPServerRequest) -> HTTPServerResponse?

final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let responder: HTTPResponder
    private let immediate: ImmediateResponder?
    private let maximumBodySize: Int
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(
        immediate: ImmediateResponder? = nil, responder: @escaping HTTPResponder, maximumBodySize: Int = 4 << 20
    ) {
        self.immediate = immediate
        self.responder = responder
        self.maximumBodySize = maximumBodySize
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            tooLarge = false
        case .body(var buffer):
            if body.count + buffer.readableBytes > maximumBodySize {
                tooLarge = true
            } else if !tooLarge {
                body.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let keepAlive = head.isKeepAlive
            if tooLarge {
                write(.error(.payloadTooLarge), version: head.version, keepAlive: false, context: context)
                return
            }
            let (path, query) = Self.split(head.uri)
            let request = HTTPServerRequest(
                method: head.method, path: path, query: query, headers: head.headers, body: body,
                remoteAddress: context.channel.remoteAddress?.ipAddress ?? "")
            body = []
            if let response = immediate?(request) {
                write(response, version: head.version, keepAlive: keepAlive, context: context)
                return
            }
            let responder = self.responder
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let version = head.version
            Task {
                let response = await responder(request)
                loopBound.eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.write(response, version: version, keepAlive: keepAlive, context: context)
                }
            }
        }
    }

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
