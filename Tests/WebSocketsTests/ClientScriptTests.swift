import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

@Suite struct ClientScriptTests {
    private func publicFile(_ name: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent("public/\(name)"), encoding: .utf8)
    }

    @Test func theServerServesPublicWebSocketsJSWithValidators() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let served = try await harness.http("GET", "/WebSockets/client.js")
            #expect(served.status == 200)
            // scripts/embed-client.sh copies public/ into the binary; this fails when they drift apart.
            #expect(served.body == (try publicFile("WebSockets.js")))
            #expect(
                (try await harness.http("GET", "/WebSockets/client.mjs")).body == (try publicFile("WebSockets.mjs")))
            #expect(
                (try await harness.http("GET", "/WebSockets/client.d.ts")).body == (try publicFile("WebSockets.d.ts")))
            #expect(
                (try await harness.http("GET", "/WebSockets/client.d.mts")).body
                    == (try publicFile("WebSockets.d.mts")))
            let etag = StaticAsset.classicClient.etag
            let revalidated = try await harness.http("GET", "/WebSockets/client.js", headers: [("If-None-Match", etag)])
            #expect(revalidated.status == 304)
            #expect(revalidated.body.isEmpty)
        }
    }
}
