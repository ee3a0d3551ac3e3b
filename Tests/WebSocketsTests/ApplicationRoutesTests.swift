import Testing

@testable import WebSockets

/// An embedding application's own routes (`additionalRoutes`).
@Suite struct ApplicationRoutesTests {
    /// The server writes its answers without SwiftNIO's header validation (issue 29: 6.2% of a targeted send's
    /// samples); an application's answer with a header that would split the response is refused instead of sent.
    @Test func anAnswerWhoseHeaderWouldSplitTheResponseIsRefused() async throws {
        let site = try await TestSite.start()
        let server = WebSocketsServer(
            settings: Harness.settings(for: site),
            additionalRoutes: { request in
                switch request.path {
                case "/good": HTTPServerResponse(headers: ["X-Kind": "good\tone"], body: Array("fine".utf8))
                case "/split":
                    HTTPServerResponse(headers: ["X-Kind": "bad\r\nSet-Cookie: stolen=1"], body: Array("no".utf8))
                case "/name": HTTPServerResponse(headers: ["X Kind": "bad"], body: Array("no".utf8))
                default: nil
                }
            })
        try await server.start()
        try await withTeardown({
            await server.shutdown()
            await site.shutdown()
        }) {
            func get(_ path: String) async throws -> String {
                let socket = try await RawSocket.connect(port: server.port)
                defer { Task { await socket.close() } }
                try await socket.write(Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
                try await eventually("an answer to \(path)") {
                    let text = String(decoding: socket.received, as: UTF8.self)
                    return text.contains("\r\n\r\n") && (text.hasSuffix("fine") || text.hasSuffix("}"))
                }
                return String(decoding: socket.received, as: UTF8.self)
            }
            let good = try await get("/good")
            #expect(good.hasPrefix("HTTP/1.1 200"))
            #expect(good.contains("X-Kind: good\tone\r\n"))
            for path in ["/split", "/name"] {
                let refused = try await get(path)
                #expect(refused.hasPrefix("HTTP/1.1 500"), "\(path)")
                #expect(!refused.lowercased().contains("set-cookie") && !refused.contains("X Kind"))
            }
            #expect(try await get("/WebSockets/health").hasPrefix("HTTP/1.1 200"), "the server keeps serving")
        }
    }
}
