import NIOCore
import WebSockets

/// The request reader of publishers' connections (`HTTPRequestReader`), on a stranger's bytes: the same bytes in
/// one piece, in two at a point the input chooses, and byte by byte give the same steps (heads, bodies, ends, or
/// the same refusal); a body is never longer than its head framed, and nothing traps.
package enum HTTPReaderCheck {
    /// The first byte chooses the split; the rest is a connection's bytes.
    static func check(_ input: [UInt8]) throws(FuzzFinding) {
        guard let first = input.first else { return }
        let bytes = Array(input.dropFirst())
        let whole = steps([bytes])
        let cut = bytes.isEmpty ? 0 : Int(first) % bytes.count
        let split = steps([Array(bytes[..<cut]), Array(bytes[cut...])])
        guard whole == split else {
            throw FuzzFinding("split at \(cut): \(split) differs from \(whole)")
        }
        if bytes.count <= 4096 {
            let single = steps(bytes.map { [$0] })
            guard whole == single else { throw FuzzFinding("byte by byte: \(single) differs from \(whole)") }
        }
    }

    /// The steps reading `chunks` one after another made, one line each, a request's body parts joined.
    static func steps(_ chunks: [[UInt8]]) -> [String] {
        var reader = HTTPRequestReader()
        var buffer = ByteBuffer()
        var steps: [String] = []
        var body: [UInt8] = []
        var framed: Int?
        for chunk in chunks {
            buffer.writeBytes(chunk)
            while true {
                let step: HTTPRequestReader.Step
                do {
                    step = try reader.next(&buffer)
                } catch {
                    steps.append("refused \(error.status.code)")
                    return steps
                }
                switch step {
                case .needMore:
                    break
                case .head(let head, let bytes):
                    if case .length(let length) = head.framing { framed = length } else { framed = nil }
                    steps.append(
                        "\(head.method.rawValue) \(HTTPRequestReader.target(of: head, in: bytes)) \(head.version)"
                            + " send \(head.isSend) keep-alive \(head.keepAlive) \(head.framing)")
                    continue
                case .body(let part):
                    body += part.readableBytesView
                    continue
                case .end:
                    if let framed, framed != body.count { steps.append("body of \(body.count) framed as \(framed)") }
                    steps.append("body \(body)")
                    body = []
                    continue
                }
                break
            }
        }
        return steps
    }
}
