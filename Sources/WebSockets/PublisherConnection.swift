import Logging
import NIOCore
import NIOHTTP1
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub

#if os(Linux)
    /// A publisher's keep-alive HTTP connection on a socket loop of ours: a connection whose first request was a send
    /// (``PublisherSniffer``) is read by ``HTTPRequestReader`` and answered here, on a loop that also writes to tabs,
    /// instead of through SwiftNIO's decoder and pipeline on another thread.
    ///
    /// Why: with one publisher connection and 10,000 tabs, SwiftNIO's HTTP decoding and pipeline were about 15% of
    /// the server's samples per targeted send, its strings 7 of the 32 allocations per send, and every batch of
    /// sends crossed from SwiftNIO's thread to the socket loop's (a wake-up and a task switch).
    ///
    /// Its rules are those of ``HTTPRequestHandler``: answers in request order (``AnswerQueue``), sends handled
    /// while the sends ahead of them wait for PostgreSQL, anything else only once the answers ahead are written; the
    /// time limits of ``HTTPRequestClock``; a body limit known from the head (4 MiB for a send whose key is right,
    /// 64 KiB otherwise); no more reading while a request waits or the answers are not read. A malformed or refused
    /// request is answered and the connection closed. It stays an HTTP connection: an upgrade asked on it is answered
    /// as a plain request.
    final class PublisherConnection: SocketConnectionHandler {
        private let server: WebSocketsServer
        private let loop: SocketLoop
        private let peer: String
        /// Set by ``attach(_:)`` right after the connection is made.
        private var connection: SocketConnection?
        private var reader = HTTPRequestReader()
        private var answers = AnswerQueue()
        /// Set by ``attach(_:received:)``, on the loop.
        private var timeLimit: HTTPTimeLimit?
        private let settings: Settings
        /// Bytes read and not used yet: an unfinished head, or what waits behind a request held back. Bounded by
        /// the head limit plus one read, since the socket is not read while a request is held.
        private var pending: ByteBuffer?
        /// The request being received.
        private var head: HTTPRequestReader.Head?
        /// Its head's bytes, copied, for a request other than a send (its headers are made from them).
        private var headBytes: ByteBuffer?
        private var body: [UInt8] = []
        private var bodyLimit = 0
        /// A head read whose request may not be handled until the answers ahead are written.
        private var held: (head: HTTPRequestReader.Head, bytes: ByteBuffer)?
        /// Nothing more is read or handled: the connection closes after the answers owed.
        private var closing = false
        private var closed = false
        /// Whether the socket's outbound queue is over its bound: the next answer waits.
        private var unwritable = false
        /// Answers written and not flushed (flushed once the read that made them is handled).
        private var outgoing: ByteBuffer?
        /// Whether bytes are being handled: answers made meanwhile are flushed at the end, and nothing re-enters.
        private var handling = false

        init(server: WebSocketsServer, loop: SocketLoop, peer: String, settings: Settings) {
            self.server = server
            self.loop = loop
            self.peer = peer
            self.settings = settings
        }

        /// Starts with `connection`, whose first bytes (`received`) SwiftNIO read before the move.
        func attach(_ connection: SocketConnection, received: ByteBuffer?) {
            self.connection = connection
            timeLimit = HTTPTimeLimit(settings: settings, eventLoop: loop) { [weak self] phase in
                guard let self, !self.closed else { return }
                self.server.logger.debug(
                    "HTTP connection closed: \(HTTPTimeLimit.describe(phase))", metadata: ["ip": "\(self.peer)"])
                self.server.metrics.closed(reason: .httpTimeout)
                self.connection?.close()
            }
            timeLimit?.change { $0.opened() }
            if let received, received.readableBytes > 0 { self.received(received) }
        }

        // MARK: SocketConnectionHandler

        func received(_ bytes: ByteBuffer) {
            guard !closing else { return }
            timeLimit?.change { $0.bytesArrived() }
            var bytes = bytes
            if var pending {
                self.pending = nil
                pending.writeBuffer(&bytes)
                handle(&pending, owned: true)
            } else {
                handle(&bytes, owned: false)
            }
        }

        func writabilityChanged(_ writable: Bool) {
            unwritable = !writable
            if writable && !closing { writeReady() }
        }

        func transportClosed() {
            closed = true
            closing = true
            timeLimit?.stop()
            timeLimit = nil
            pending = nil
            held = nil
            body = []
            answers.removeAll()
            server.httpConnections.release()
            connection = nil
        }

        // MARK: Requests

        /// Handles the requests in `buffer` as far as they may be; keeps the rest (`owned`: the buffer is this
        /// connection's own, not the loop's shared one, and may be kept as it is).
        private func handle(_ buffer: inout ByteBuffer, owned: Bool) {
            handling = true
            DeliveryCork.holding(on: loop) { step(&buffer) }
            handling = false
            if buffer.readableBytes > 0 && !closing {
                if owned {
                    if buffer.readerIndex > 16384 { buffer.discardReadBytes() }
                    pending = buffer
                } else {
                    var copy = ByteBufferAllocator().buffer(capacity: max(buffer.readableBytes, 1024))
                    copy.writeBuffer(&buffer)
                    pending = copy
                }
            }
            flush()
            connection?.pauseReading(closing || held != nil || (unwritable && !answers.isEmpty))
        }

        private func step(_ buffer: inout ByteBuffer) {
            while !closing {
                if let waiting = held {
                    guard answers.mayHandle(readsAhead: waiting.head.isSend) else { return }
                    held = nil
                    begin(waiting.head, bytes: waiting.bytes)
                    continue
                }
                let next: HTTPRequestReader.Step
                do {
                    next = try reader.next(&buffer)
                } catch {
                    refuse(.error(error.status, error.reason), version: head?.version ?? .http1_1)
                    return
                }
                switch next {
                case .needMore:
                    return
                case .head(let head, let bytes):
                    guard answers.mayHandle(readsAhead: head.isSend), !unwritable || answers.isEmpty else {
                        held = (head, Self.copy(bytes))
                        return
                    }
                    begin(head, bytes: bytes)
                case .body(let part):
                    guard let head else { continue }
                    guard body.count + part.readableBytes <= bodyLimit else {
                        refuse(.error(.payloadTooLarge), version: head.version)
                        return
                    }
                    body.append(contentsOf: part.readableBytesView)
                case .end:
                    end()
                }
            }
        }

        private static func copy(_ bytes: ByteBuffer) -> ByteBuffer {
            var copy = ByteBufferAllocator().buffer(capacity: bytes.readableBytes)
            copy.writeImmutableBuffer(bytes)
            return copy
        }

        /// A request's head may be handled: decides from it how much body it may bring, or refuses it.
        private func begin(_ head: HTTPRequestReader.Head, bytes: ByteBuffer) {
            body = []
            if head.isSend {
                let matches =
                    head.key.map { key in
                        bytes.withUnsafeReadableBytes {
                            SecurityKey.matches(
                                bytes: UnsafeRawBufferPointer(rebasing: $0[key]), server.settings.securityKey)
                        }
                    } ?? false
                if let refusal = server.sendKeyRefusal(
                    matches: matches,
                    address: self.server.clientAddress(HTTPRequestReader.headers(in: bytes), peer: self.peer))
                {
                    refuse(refusal, version: head.version)
                    return
                }
                bodyLimit = WebSocketsServer.sendBodyLimit
                headBytes = nil
            } else {
                bodyLimit = WebSocketsServer.otherBodyLimit
                headBytes = Self.copy(bytes)
            }
            if case .length(let length) = head.framing {
                guard length <= bodyLimit else {
                    refuse(.error(.payloadTooLarge), version: head.version)
                    return
                }
                body.reserveCapacity(length)
            }
            if head.expectsContinue && answers.isEmpty && head.framing != .length(0) {
                // Only when no answer is owed: a 100 written ahead of them would be taken for the earlier request's
                // answer. A client that waits for it (curl 7.88 for bodies over 1 MiB: 1.0 s for a 1.5 MB send before, 13–18 ms with it) sends the body after its own
                // timeout otherwise.
                append(Self.continueAnswer)
            }
            self.head = head
        }

        private static let continueAnswer = ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")

        /// The request is whole: it is answered now, later, or on a task.
        private func end() {
            guard let head else { return }
            self.head = nil
            timeLimit?.change { $0.requestReceived() }
            let keepAlive = head.keepAlive
            if !keepAlive { closing = true }
            let body = self.body
            self.body = []
            let answer: ImmediateAnswer
            if head.isSend {
                answer = server.answerSend(body: body)
            } else {
                let bytes = headBytes ?? ByteBuffer()
                headBytes = nil
                let (path, query) = HTTPRequestHandler.split(HTTPRequestReader.target(of: head, in: bytes))
                let request = HTTPServerRequest(
                    method: head.method, path: path, query: query, headers: HTTPRequestReader.headers(in: bytes),
                    body: body, remoteAddress: peer)
                if let immediate = server.respondImmediately(to: request) {
                    answer = immediate
                } else {
                    answer = .task { [server] in await server.respond(to: request) }
                }
            }
            switch answer {
            case .response(let response):
                _ = answers.add(version: head.version, keepAlive: keepAlive, readsAhead: true, response: response)
                writeReady()
            case .later(let start):
                let number = answers.add(version: head.version, keepAlive: keepAlive, readsAhead: true)
                let bound = NIOLoopBound(self, eventLoop: loop)
                start { response in
                    if bound.eventLoop.inEventLoop {
                        bound.value.answered(number, with: response)
                    } else {
                        bound.eventLoop.execute { bound.value.answered(number, with: response) }
                    }
                }
            case .task(let work):
                let number = answers.add(version: head.version, keepAlive: keepAlive, readsAhead: false)
                let bound = NIOLoopBound(self, eventLoop: loop)
                Task {
                    let response = await work()
                    bound.eventLoop.execute { bound.value.answered(number, with: response) }
                }
            }
        }

        private func answered(_ number: Int, with response: HTTPServerResponse) {
            guard !closed else { return }
            answers.answer(number, with: response)
            writeReady()
        }

        /// Answers at once, after the answers owed, and closes: nothing more is read.
        private func refuse(_ response: HTTPServerResponse, version: HTTPVersion) {
            closing = true
            head = nil
            held = nil
            body = []
            pending = nil
            timeLimit?.change { $0.requestReceived() }
            _ = answers.add(version: version, keepAlive: false, readsAhead: false, response: response)
            writeReady()
        }

        // MARK: Answers

        /// Writes the answers that are made, in order, then handles the requests they held back.
        private func writeReady() {
            guard !closed else { return }
            var wrote = false
            while let slot = answers.next, let response = slot.response {
                // A closing answer goes out anyway: nothing is read after it.
                guard !unwritable || !slot.keepAlive else {
                    timeLimit?.change { $0.answerWaiting() }
                    flush()
                    connection?.pauseReading(true)
                    return
                }
                answers.removeNext()
                wrote = true
                var bytes = outgoing ?? ByteBufferAllocator().buffer(capacity: 256 + response.body.count)
                outgoing = nil
                Self.write(response, version: slot.version, keepAlive: slot.keepAlive, into: &bytes)
                guard slot.keepAlive else {
                    answers.removeAll()
                    held = nil
                    pending = nil
                    closing = true
                    let within = timeLimit?.idleTimeout ?? .seconds(15)
                    timeLimit?.stop()
                    connection?.write(bytes, thenCloseWithin: within)
                    return
                }
                outgoing = bytes
            }
            if wrote && answers.isEmpty { timeLimit?.change { $0.responseSent() } }
            guard !handling else { return }
            // Outside a read: what was written leaves now, and the requests held behind it are handled.
            var buffer = pending ?? ByteBuffer()
            pending = nil
            handle(&buffer, owned: true)
        }

        private func append(_ bytes: ByteBuffer) {
            if outgoing == nil {
                outgoing = bytes
            } else {
                outgoing!.writeImmutableBuffer(bytes)
            }
        }

        private func flush() {
            guard let bytes = outgoing, let connection else { return }
            outgoing = nil
            connection.write(bytes)
            connection.flush()
        }

        /// `response` as HTTP/1.x bytes: status line, its headers, `Content-Length`, `Connection` where the
        /// version's default is not what happens, and the body.
        static func write(
            _ response: HTTPServerResponse, version: HTTPVersion, keepAlive: Bool, into bytes: inout ByteBuffer
        ) {
            bytes.writeStaticString(version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
            bytes.writeString(String(response.status.code))
            bytes.writeStaticString(" ")
            bytes.writeString(response.status.reasonPhrase)
            bytes.writeStaticString("\r\n")
            for (name, value) in response.headers {
                // Set here, from what is written.
                if name.utf8.count == 14 && name.lowercased() == "content-length" { continue }
                if name.utf8.count == 10 && name.lowercased() == "connection" { continue }
                bytes.writeString(name)
                bytes.writeStaticString(": ")
                bytes.writeString(value)
                bytes.writeStaticString("\r\n")
            }
            bytes.writeStaticString("Content-Length: ")
            bytes.writeString(String(response.body.count))
            if !keepAlive {
                bytes.writeStaticString("\r\nConnection: close")
            } else if version.minor == 0 {
                bytes.writeStaticString("\r\nConnection: keep-alive")
            }
            bytes.writeStaticString("\r\n\r\n")
            bytes.writeBytes(response.body)
        }
    }
#endif
