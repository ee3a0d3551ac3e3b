import Foundation
import Logging
import NIOCore
import WebSocketsCore
import WebSocketsProtocol

/// The handler's reading side: frames in, messages handed to the delegate or refused, pings answered.
extension WebSocketConnectionHandler {
    /// Handles bytes read from the browser.
    package func received(_ bytes: ByteBuffer) {
        // The bytes may be a loop's shared read buffer (``SocketLoop``), or SwiftNIO's receive buffer: an incomplete
        // frame is copied out, or the connection would keep that buffer (up to 64 KiB) and the loop allocate another.
        defer { inbound.detach() }
        guard machine.bytesArrived(now: .now()) else { return }
        inbound.append(bytes)
        // Only the latest ping of a read is answered, once, after it (``PingAnswer``): 4 tabs that pinged 2,000,000
        // times each without reading grew the server by 261 MiB when every ping got a pong of its own.
        var ping: ByteBuffer?
        while machine.isOpen, let event = inbound.next() {
            switch event {
            case .message(let buffer): handle(text: buffer)
            case .inflatedMessage(let buffer, let compressedBytes):
                environment.metrics.compressed(
                    outbound: false, uncompressed: buffer.readableBytes, compressed: compressedBytes)
                handle(text: buffer)
            case .ping(let payload): ping = payload
            case .pong: break
            case .close(let code): perform(.browserClosed(code: code))
            case .refusal(let code, let reason, let metric):
                perform(.refusedFrame(code: code, reason: reason, metric: metric))
            }
        }
        if let ping, let wire, let payload = machine.pinged(ping, backlogged: wire.isBacklogged) {
            writeControl(ServerFrame.final(.pong, payload))
        }
        flushQueued()
    }

    private func handle(text buffer: ByteBuffer) {
        environment.metrics.messageIn()
        let message: Message
        do {
            message = try buffer.withUnsafeReadableBytes { raw in
                try Message(frame: raw.assumingMemoryBound(to: UInt8.self))
            }
        } catch {
            return perform(.malformed("\(error)"))
        }
        let decision = machine.messageArrived(
            now: Int64(Date().timeIntervalSince1970), monotonic: NIODeadline.now().uptimeNanoseconds,
            rate: environment.messageRate, burst: environment.messageBurst)
        switch decision {
        case .deliver:
            switch delegate?.connectionReceived(message) ?? .closing {
            case .accepted, .closing: break
            case .refused(let reason): refuse(message, reason: reason, "messages over the waiting limit refused")
            }
        case .refuse: refuse(message, reason: .rate, "messages over the rate limit refused")
        case .close(let reason): perform(reason)
        case .ignore: break
        }
    }

    /// Answers a message the connection may not send now with `<action>:error [429, ...]`; counted per message,
    /// logged once per connection and reason. Flushed after the read, as pongs are: a flood of refused messages
    /// costs one write call per read.
    private func refuse(_ message: Message, reason: RefusedReason, _ text: String) {
        environment.metrics.refused(reason: reason)
        environment.refusals.refused(
            reason.rawValue, "\(text)", level: .warning, logger: delegate?.userLogger ?? Logger(label: "websockets"),
            metadata: environment.refusalMetadata)
        let reply = ByteBuffer(bytes: message.errorReply(code: 429).encoded())
        write(frame: textFrame(reply), bypassingHold: true, flush: false)
    }
}
