import NIOCore

@testable import WebSocketsConnection

extension InboundAssembler {
    /// What `bytes` amount to, read at once by an assembler with `maximumMessageSize` (that `inflates` when the
    /// connection negotiated permessage-deflate), up to the first refusal.
    static func events(of bytes: [UInt8], maximumMessageSize: Int = 1000, inflates: Bool = false) -> [InboundEvent] {
        var assembler = InboundAssembler(maximumMessageSize: maximumMessageSize, inflates: inflates)
        assembler.append(ByteBuffer(bytes: bytes))
        var events: [InboundEvent] = []
        while let event = assembler.next() {
            events.append(event)
            if case .refusal = event { break }
        }
        return events
    }
}

extension [InboundEvent] {
    /// The close code of the refusal the events end with, if they do.
    var refusalCode: UInt16? {
        guard case .refusal(let code, _, _) = last else { return nil }
        return code.rawValue
    }
}
