import NIOCore
import WebSocketsConnection
import WebSocketsProtocol

/// The invariants of what a browser's bytes amount to (``InboundAssembler``), of the UTF-8 check and of inflating.
enum FrameStreamCheck {
    /// The message size limits an input chooses from: the edges of the frame length encodings and a usual limit.
    static let limits = [0, 1, 125, 126, 1000, 65535, 65536]

    /// Input: a byte of settings (bit 0: permessage-deflate negotiated; the rest: the limit), a byte that sets
    /// the chunk sizes, then the bytes a browser sent. Read in one piece and in chunks (each read's leftover detached,
    /// as the server does), the events must be the same, and each must be one RFC 6455 allows.
    static func check(_ input: [UInt8]) throws(FuzzFinding) {
        guard input.count >= 2 else { return }
        let inflates = input[0] & 1 == 1
        let limit = limits[Int(input[0] >> 1) % limits.count]
        let stream = Array(input[2...])
        let whole = events(of: [stream], limit: limit, inflates: inflates)
        let chunked = events(of: chunks(of: stream, seed: input[1]), limit: limit, inflates: inflates)
        try expect(whole == chunked, "chunking changed the events: \(whole) in one piece, \(chunked) in chunks")
        let bytewise = events(of: stream.map { [$0] }, limit: limit, inflates: inflates)
        try expect(whole == bytewise, "byte by byte changed the events: \(whole) in one piece, \(bytewise)")
        for event in whole { try allowed(event, limit: limit, inflates: inflates) }
    }

    /// Throws unless `event` is one the server may act on.
    static func allowed(_ event: InboundEvent, limit: Int, inflates: Bool) throws(FuzzFinding) {
        switch event {
        case .message(let text):
            try expect(text.readableBytes <= limit, "a message of \(text.readableBytes) bytes over \(limit)")
            try expect(isUTF8(text), "a message that is not UTF-8 was accepted: \(text)")
        case .inflatedMessage(let text, let compressed):
            try expect(inflates, "a compressed message without permessage-deflate")
            try expect(text.readableBytes <= limit, "a message inflated to \(text.readableBytes) bytes over \(limit)")
            try expect(compressed <= limit, "a compressed message of \(compressed) bytes over \(limit)")
            try expect(isUTF8(text), "an inflated message that is not UTF-8 was accepted: \(text)")
        case .ping(let payload):
            try expect(payload.readableBytes <= 125, "a ping of \(payload.readableBytes) bytes")
        case .pong:
            break
        case .close(let code):
            try expect(WebSocketCloseCode.mayBeReceived(code), "a close with code \(code) accepted")
        case .refusal(let code, _, _):
            try expect(
                [.protocolError, .messageTooLarge, .invalidData, .unacceptableData].contains(code),
                "a refusal with \(code)")
        }
    }

    private static func isUTF8(_ buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { String(validating: $0, as: UTF8.self) != nil }
    }

    /// The events of `reads`, read in turn, up to the one that ends the connection.
    static func events(of reads: [[UInt8]], limit: Int, inflates: Bool) -> [InboundEvent] {
        var assembler = InboundAssembler(maximumMessageSize: limit, inflates: inflates)
        var events: [InboundEvent] = []
        for read in reads {
            assembler.append(ByteBuffer(bytes: read))
            while let event = assembler.next() {
                events.append(event)
                switch event {
                case .refusal, .close: return events
                default: continue
                }
            }
            assembler.detach()
        }
        return events
    }

    /// `bytes` cut into chunks of 1 to `seed % 32 + 1` bytes, the sizes drawn from a generator seeded with `seed`.
    static func chunks(of bytes: [UInt8], seed: UInt8) -> [[UInt8]] {
        var state = UInt32(seed) &* 2_654_435_761 | 1
        var chunks: [[UInt8]] = []
        var start = 0
        while start < bytes.count {
            state = state &* 1_103_515_245 &+ 12345
            let size = Int(state >> 16) % (Int(seed) % 32 + 1) + 1
            let end = min(bytes.count, start + size)
            chunks.append(Array(bytes[start..<end]))
            start = end
        }
        return chunks
    }

    /// Input: a byte that chooses a split, then bytes. Checked in one piece, in two at the split and a byte at a
    /// time, ``UTF8Validation`` must say what the standard library says.
    static func checkUTF8(_ input: [UInt8]) throws(FuzzFinding) {
        guard let first = input.first else { return }
        let text = Array(input.dropFirst())
        let expected = text.withUnsafeBufferPointer { String(validating: $0, as: UTF8.self) != nil }
        var whole = UTF8Validation()
        let wholeValid = whole.append(text) && whole.isComplete
        try expect(wholeValid == expected, "UTF8Validation says \(wholeValid), the standard library \(expected)")
        let split = text.isEmpty ? 0 : Int(first) % (text.count + 1)
        var halves = UTF8Validation()
        let halvesValid = halves.append(Array(text[..<split])) && halves.append(Array(text[split...]))
        try expect(
            (halvesValid && halves.isComplete) == expected, "split at \(split): \(halvesValid), expected \(expected)")
        var bytewise = UTF8Validation()
        var valid = true
        for byte in text where valid { valid = bytewise.append([byte]) }
        try expect((valid && bytewise.isComplete) == expected, "byte by byte: \(valid), expected \(expected)")
        // A prefix of valid text is never refused before its end.
        if expected {
            var prefix = UTF8Validation()
            try expect(prefix.append(Array(text[..<split])), "a prefix of valid text refused at \(split)")
        }
    }

    /// Input: a byte that chooses the limit, then a compressed message's bytes. Inflating stops past the limit;
    /// what inflates within it inflates the same with a larger one, and compresses and inflates back to itself.
    static func checkInflate(_ input: [UInt8]) throws(FuzzFinding) {
        guard let first = input.first else { return }
        let limit = limits[Int(first) % limits.count]
        let payload = ByteBuffer(bytes: input.dropFirst())
        let large = 1 << 20
        let bounded = Result { () throws(PermessageDeflate.InflateError) in
            try PermessageDeflate.decompress(payload, limit: limit)
        }
        let unbounded = Result { () throws(PermessageDeflate.InflateError) in
            try PermessageDeflate.decompress(payload, limit: large)
        }
        switch (bounded, unbounded) {
        case (.success(let output), _):
            try expect(output.readableBytes <= limit, "inflated \(output.readableBytes) bytes past \(limit)")
            try expect((try? unbounded.get()) == output, "a larger limit inflated otherwise: \(unbounded)")
            for windowBits in [9, 15] {
                let again = PermessageDeflate.compress(output, level: 6, windowBits: windowBits)
                let back = try? PermessageDeflate.decompress(again, limit: limit)
                try expect(
                    back == output,
                    "compressed (\(windowBits) bits) and inflated, \(output) came back as \(String(describing: back))")
            }
        case (.failure(.tooLarge), .success(let output)):
            try expect(output.readableBytes > limit, "refused as over \(limit), inflates to \(output.readableBytes)")
        case (.failure(.malformed), .success(let output)):
            throw FuzzFinding(
                "malformed under the limit \(limit), inflates to \(output.readableBytes) bytes with 1 MiB")
        case (.failure, .failure):
            break
        }
    }
}
