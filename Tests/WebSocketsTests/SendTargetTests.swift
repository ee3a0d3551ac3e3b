import NIOCore
import NIOHTTP1
import Testing

@testable import WebSockets

/// The one rule of what a send's request is (``SendTarget``), on inputs, as SwiftNIO's head and as bytes.
@Suite struct SendTargetTests {
    @Test(arguments: [
        ("POST", "/WebSockets/send", true), ("POST", "/WebSockets/send?to=1", true),
        ("POST", "/WebSockets/send?", true),
        ("POST", "/WebSockets/sender", false), ("POST", "/WebSockets/sen", false), ("POST", "/WebSockets/Send", false),
        ("POST", "/websockets/send", false), ("GET", "/WebSockets/send", false), ("PUT", "/WebSockets/send", false),
        ("POST", "/WebSockets/send/", false), ("POST", "", false),
    ])
    func aSendIsAPostToItsPathWithOrWithoutAQuery(method: String, target: String, isSend: Bool) {
        let method = HTTPMethod(rawValue: method)
        #expect(SendTarget.matches(HTTPRequestHead(version: .http1_1, method: method, uri: target)) == isSend)
        #expect(
            Array(target.utf8).withUnsafeBytes { SendTarget.matches(method: method, target: $0) } == isSend)
        if !target.isEmpty {
            var reader = HTTPRequestReader()
            var buffer = ByteBuffer(string: "\(method.rawValue) \(target) HTTP/1.1\r\nHost: x\r\n\r\n")
            guard case .head(let head, _) = try? reader.next(&buffer) else {
                Issue.record("no head read")
                return
            }
            #expect(head.isSend == isSend)
        }
    }

    @Test func aPublishersConnectionBeginsWithTheMethodAndThePath() {
        #expect(String(decoding: SendTarget.requestLinePrefix, as: UTF8.self) == "POST /WebSockets/send")
        #expect(PublisherSniffer.prefixes.contains(SendTarget.requestLinePrefix))
    }
}
