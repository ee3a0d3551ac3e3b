import NIOCore
import NIOWebSocket
import WebSocketsCore
import WebSocketsProtocol

/// What a browser's bytes amount to, one step at a time: the decisions of RFC 6455 on the receiving side, with no
/// channel, so that they can be tested on byte sequences alone.
package enum InboundEvent: Equatable {
    /// A whole text message (fragments joined).
    case message(ByteBuffer)
    /// A whole text message that arrived compressed in `compressedBytes` bytes, inflated.
    case inflatedMessage(ByteBuffer, compressedBytes: Int)
    /// A ping: answer with a pong carrying `payload`.
    case ping(ByteBuffer)
    /// A pong (the connection is alive).
    case pong
    /// The browser closes: answer with a close frame carrying `code` (its own, or 1000 when it gave none), then
    /// end the connection.
    case close(code: UInt16)
    /// Bytes the server does not accept: close with `code` and `reason`; `metric` is the reason counted in
    /// `websockets_closed_total`.
    case refusal(code: WebSocketCloseCode, reason: String, metric: ClosedReason)
}

/// Reassembles a connection's messages from its frames and applies the rules on what a browser may send: frame
/// framing (``ClientFrameReader``), fragments (a continuation needs an open message, a data frame may not begin
/// inside one), the message size limit, text only, and the close frame's payload (RFC 6455 sections 5.4, 5.5.1
/// and 7.4); with permessage-deflate, compressed messages are inflated, the limit applying to what they inflate to
/// (RFC 7692).
package struct InboundAssembler {
    private var reader: ClientFrameReader
    /// The fragments of an unfinished message; `nil` between messages.
    private var fragments: ByteBuffer?
    /// Whether the unfinished message is compressed (its first frame had RSV1).
    private var fragmentsCompressed = false
    /// The UTF-8 check of the uncompressed message being received, fragment by fragment.
    private var text = UTF8Validation()
    private let maximumMessageSize: Int

    /// `inflates`: the connection negotiated permessage-deflate.
    package init(maximumMessageSize: Int, inflates: Bool = false) {
        // A frame may be as large as a message (fragments are checked against the limit as they add up); a
        // compressed message's frames too, so that what it holds before inflating is bounded as a plain one's.
        self.reader = ClientFrameReader(maximumPayload: maximumMessageSize, allowsCompression: inflates)
        self.maximumMessageSize = maximumMessageSize
    }

    /// Adds bytes read from the socket.
    package mutating func append(_ bytes: ByteBuffer) {
        reader.append(bytes)
    }

    /// Gives the bytes kept between reads (an incomplete frame) storage of their own:
    /// what was appended may be a slice of a buffer the caller reuses (``SocketLoop/readBuffer``).
    package mutating func detach() {
        // Fragments are unmasked copies already (``ClientFrameReader`` unmasks each payload into storage of its own).
        reader.detach()
    }

    /// The next event, or `nil` when more bytes are needed. After a ``InboundEvent/refusal(code:reason:metric:)``
    /// or a ``InboundEvent/close(code:)`` the connection ends: nothing more is read.
    package mutating func next() -> InboundEvent? {
        while true {
            let frame: ClientFrame
            do {
                guard let next = try reader.next() else { return nil }
                frame = next
            } catch {
                switch error {
                case .tooLarge:
                    return .refusal(
                        code: .messageTooLarge, reason: "Frame larger than \(maximumMessageSize) bytes",
                        metric: .tooLarge)
                case .protocolViolation(let reason):
                    return .refusal(code: .protocolError, reason: reason, metric: .protocol)
                }
            }
            if let event = handle(frame) { return event }
        }
    }

    private mutating func handle(_ frame: ClientFrame) -> InboundEvent? {
        switch frame.opcode {
        case .text:
            guard fragments == nil else {
                return .refusal(
                    code: .protocolError, reason: "A new message began inside a fragmented one", metric: .protocol)
            }
            if !frame.compressed {
                text = UTF8Validation()
                if let refusal = checkText(frame.payload, last: frame.fin) { return refusal }
            }
            if frame.fin { return finish(frame.payload, compressed: frame.compressed) }
            fragments = frame.payload
            fragmentsCompressed = frame.compressed
            return nil
        case .continuation:
            guard var buffer = fragments else {
                return .refusal(code: .protocolError, reason: "Continuation without a message", metric: .protocol)
            }
            // Taken out while it grows: with `fragments` still holding it, every append copied the whole message
            // so far (a message of 1-byte fragments: 64 KiB copied 65,536 times).
            fragments = nil
            var data = frame.payload
            guard buffer.readableBytes + data.readableBytes <= maximumMessageSize else {
                fragments = nil
                return .refusal(
                    code: .messageTooLarge, reason: "Message larger than \(maximumMessageSize) bytes",
                    metric: .tooLarge)
            }
            if !fragmentsCompressed, let refusal = checkText(data, last: frame.fin) { return refusal }
            buffer.writeBuffer(&data)
            if frame.fin {
                fragments = nil
                return finish(buffer, compressed: fragmentsCompressed)
            }
            fragments = buffer
            return nil
        case .binary:
            if fragments != nil {
                return .refusal(
                    code: .protocolError, reason: "A new message began inside a fragmented one", metric: .protocol)
            }
            return .refusal(code: .unacceptableData, reason: "Binary frames are not accepted", metric: .binary)
        case .ping:
            return .ping(frame.payload)
        case .pong:
            return .pong
        case .connectionClose:
            return Self.close(frame.payload)
        default:
            return .refusal(code: .protocolError, reason: "Unknown opcode", metric: .protocol)
        }
    }

    /// The event of a whole message: a compressed one inflated, refused once it inflates past the limit (the output
    /// stops there: a 1 KB frame that would inflate to 1 GB costs at most `max_message_size` bytes) or when its bytes
    /// are not deflate data.
    private func finish(_ payload: ByteBuffer, compressed: Bool) -> InboundEvent {
        guard compressed else { return .message(payload) }
        do {
            let inflated = try PermessageDeflate.decompress(payload, limit: maximumMessageSize)
            // Checked whole: its fragments are deflate data, and it is inflated only once it has all arrived.
            var check = UTF8Validation()
            guard inflated.withUnsafeReadableBytes({ check.append($0) }) && check.isComplete else {
                return Self.notUTF8
            }
            return .inflatedMessage(inflated, compressedBytes: payload.readableBytes)
        } catch {
            switch error {
            case .tooLarge:
                return .refusal(
                    code: .messageTooLarge, reason: "Message inflates to more than \(maximumMessageSize) bytes",
                    metric: .tooLarge)
            case .malformed:
                return .refusal(code: .invalidData, reason: "Invalid compressed data", metric: .malformed)
            }
        }
    }

    /// The refusal of a text message that is not UTF-8 (RFC 6455 section 8.1).
    private static let notUTF8 = InboundEvent.refusal(
        code: .invalidData, reason: "Text message is not UTF-8", metric: .malformed)

    /// Checks the next piece of the uncompressed text message being received (`last`: its final fragment); the
    /// refusal when the piece holds a byte no UTF-8 text can hold there, or when the message ends inside a character.
    private mutating func checkText(_ piece: ByteBuffer, last: Bool) -> InboundEvent? {
        guard piece.withUnsafeReadableBytes({ text.append($0) }), !last || text.isComplete else {
            return Self.notUTF8
        }
        return nil
    }

    /// The answer to a close frame's payload: empty (no code: answered 1000), or a valid code (echoed) with a
    /// UTF-8 reason; anything else breaks RFC 6455.
    package static func close(_ payload: ByteBuffer) -> InboundEvent {
        var payload = payload
        guard payload.readableBytes > 0 else { return .close(code: WebSocketCloseCode.normal.rawValue) }
        guard let code = payload.readInteger(as: UInt16.self) else {
            return .refusal(code: .protocolError, reason: "Close frame with a 1-byte payload", metric: .protocol)
        }
        guard WebSocketCloseCode.mayBeReceived(code) else {
            return .refusal(code: .protocolError, reason: "Invalid close code \(code)", metric: .protocol)
        }
        let reason = payload.readableBytesView
        guard String(validating: reason, as: UTF8.self) != nil else {
            return .refusal(code: .invalidData, reason: "Close reason is not UTF-8", metric: .malformed)
        }
        return .close(code: code)
    }
}
