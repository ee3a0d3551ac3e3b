import NIOCore
import NIOHTTP1
import Testing

@testable import WebSockets

/// The publisher connections' request reader, on inputs: framing, what it finds in a head, and what it refuses.
@Suite struct HTTPRequestReaderTests {
    /// What reading some bytes made: one line per step, the body's parts joined.
    private static func read(_ chunks: [[UInt8]]) -> [String] {
        var reader = HTTPRequestReader()
        var buffer = ByteBuffer()
        var events: [String] = []
        var body: [UInt8] = []
        for chunk in chunks {
            buffer.writeBytes(chunk)
            loop: while true {
                let step: HTTPRequestReader.Step
                do {
                    step = try reader.next(&buffer)
                } catch {
                    events.append("error \(error.status.code)")
                    return events
                }
                switch step {
                case .needMore:
                    break loop
                case .head(let head, let bytes):
                    let target = HTTPRequestReader.target(of: head, in: bytes)
                    events.append(
                        "\(head.method.rawValue) \(target) send=\(head.isSend) keepAlive=\(head.keepAlive)"
                            + " continue=\(head.expectsContinue) framing=\(head.framing)"
                            + " key=\(head.key.map { bytes.getString(at: bytes.readerIndex + $0.lowerBound, length: $0.count) ?? "" } ?? "-")"
                    )
                case .body(let part):
                    body += part.readableBytesView
                case .end:
                    events.append("body \(String(decoding: body, as: UTF8.self))")
                    body = []
                }
            }
        }
        return events
    }

    private static let pipelined = Array(
        ("\r\nPOST /WebSockets/send HTTP/1.1\r\nHost: x\r\nX-WebSockets-Key:  k1 \r\nContent-Length: 11\r\n\r\n[\"a\", 1, 1]"
            + "POST /WebSockets/send?x=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\n\r\n"
            + "4;ext=1\r\n[\"b\"\r\n7\r\n, 1, 1]\r\n0\r\nTrailer: t\r\n\r\n"
            + "GET /WebSockets/health HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n"
            + "POST /WebSockets/sender HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").utf8)

    private static let expected = [
        "POST /WebSockets/send send=true keepAlive=true continue=false framing=length(11) key=k1",
        #"body ["a", 1, 1]"#,
        "POST /WebSockets/send?x=1 send=true keepAlive=true continue=true framing=chunked key=-",
        #"body ["b", 1, 1]"#,
        "GET /WebSockets/health send=false keepAlive=false continue=false framing=length(0) key=-",
        "body ",
        "POST /WebSockets/sender send=false keepAlive=true continue=false framing=length(0) key=-",
        "body ",
    ]

    @Test func pipelinedRequestsReadAtOnce() {
        #expect(Self.read([Self.pipelined]) == Self.expected)
    }

    /// The same requests, cut at every byte and two bytes at a time: the same steps.
    @Test func pipelinedRequestsReadByteByByte() {
        #expect(Self.read(Self.pipelined.map { [$0] }) == Self.expected)
        for cut in 1..<Self.pipelined.count {
            let chunks = [Array(Self.pipelined[..<cut]), Array(Self.pipelined[cut...])]
            #expect(Self.read(chunks) == Self.expected, "cut at \(cut)")
        }
    }

    @Test(arguments: [
        // Smuggling: two framings, or two lengths.
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: -3\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length : 3\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        // Folded lines, bare line feeds, control characters.
        ("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400),
        ("GET / HTTP/1.1\nA: b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nA: b\u{0}c\r\n\r\n", 400),
        ("GET /a b HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\n\r\n", 505),
        ("GET / HTTQ/1.1\r\n\r\n", 400),
        ("G(T / HTTP/1.1\r\n\r\n", 400),
        // Chunks.
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n", 413),
    ])
    func malformedRequestsAreRefusedWithTheirStatus(request: String, status: Int) {
        let events = Self.read([Array(request.utf8)])
        #expect(events.last == "error \(status)", "\(events)")
    }

    /// A head is bounded: past 32 KiB without its end, the reader refuses it rather than keep reading.
    @Test func anEndlessHeadIsRefused() {
        let head = Array("GET / HTTP/1.1\r\n".utf8) + Array(repeating: UInt8(ascii: "a"), count: 40_000)
        #expect(Self.read([head]) == ["error 431"])
        #expect(
            Self.read(stride(from: 0, to: head.count, by: 1000).map { Array(head[$0..<min($0 + 1000, head.count)]) })
                == ["error 431"])
    }

    /// Every header of a request other than a send is given to the responder as written.
    @Test func headersAreGivenToTheResponder() throws {
        var buffer = ByteBuffer(
            string: "GET /x?y=1 HTTP/1.1\r\nHost: a\r\nCookie: s=1 \r\nX-Forwarded-For:\t1.2.3.4\r\n\r\n")
        var reader = HTTPRequestReader()
        guard case .head(let head, let bytes) = try reader.next(&buffer) else {
            Issue.record("no head")
            return
        }
        let headers = HTTPRequestReader.headers(in: bytes)
        #expect(headers["host"] == ["a"])
        #expect(headers["cookie"] == ["s=1"])
        #expect(headers["x-forwarded-for"] == ["1.2.3.4"])
        #expect(HTTPRequestReader.target(of: head, in: bytes) == "/x?y=1")
    }

    /// What a connection's first bytes make of it.
    @Test func theSnifferDecidesFromAConnectionsFirstBytes() {
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "POST /WebSockets/send HTTP/1.1\r\n")) == .publisher)
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "POST /WebSockets/send?a")) == .publisher)
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "POST /WebSock")) == .undecided)
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "")) == .undecided)
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "GET /WebSockets HTTP/1.1")) == .other)
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "POST /WebSockets/")) == .undecided)
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "POST /WebSockets/x")) == .other)
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "post /WebSockets/send")) == .other)
        // A publisher's client that asks who is online, or checks the health, before it sends.
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "GET /WebSockets/presence?users=1 HTTP/1.1")) == .publisher)
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "GET /WebSockets/health HTTP/1.1")) == .publisher)
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "GET /WebSockets/")) == .undecided)
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "GET /WebSockets/status")) == .other)
        #expect(PublisherSniffer.verdict(ByteBuffer(string: "GET /WebSockets/client.js")) == .other)
    }
}
