import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

@Suite struct SendingTests {
    @Test func sendEndpointAcceptsRefusesAndValidates() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let bob = try await harness.connect("bob")
            let key = [("X-WebSockets-Key", harness.key)]
            let one = try await harness.http(
                "POST", "/WebSockets/send", headers: key, body: #"["news", {"n": 1}, 3, 2]"#)
            #expect(one.status == 202)
            #expect(try JSON(parsing: one.body) == ["accepted": 1, "delivered": 1])
            #expect(try await bob.nextMessage() == Message(action: "news", details: ["n": 1]))
            let many = try await harness.http(
                "POST", "/WebSockets/send", headers: key, body: #"[["a", 1, 1], ["b", 2, 4, [2]]]"#)
            #expect(many.status == 202)
            #expect(try await bob.nextMessage().action == "a")
            #expect(try await bob.nextMessage().action == "b")

            let wrong = try await harness.http(
                "POST", "/WebSockets/send", headers: [("X-WebSockets-Key", "nope")], body: #"["x", 1, 1]"#)
            #expect(wrong.status == 403)
            let missing = try await harness.http("POST", "/WebSockets/send", body: #"["x", 1, 1]"#)
            #expect(missing.status == 403)
            for body in ["not json", #"{"a": 1}"#, #"["x", 1, 99]"#, #"["x", 1, 3]"#] {
                let bad = try await harness.http("POST", "/WebSockets/send", headers: key, body: body)
                #expect(bad.status == 400, "\(body)")
                #expect(try JSON(parsing: bad.body)["error"]?["message"]?.stringValue?.isEmpty == false)
            }
            // A body over 64 KiB is parsed off the event loop, answered the same way.
            let long = String(repeating: "x", count: 100_000)
            let big = try await harness.http(
                "POST", "/WebSockets/send", headers: key, body: #"["long", ""# + long + #"", 3, 2]"#)
            #expect(big.status == 202)
            #expect(try JSON(parsing: big.body) == ["accepted": 1, "delivered": 1])
            #expect(try await bob.nextMessage() == Message(action: "long", details: .string(long)))
            try await bob.expectNoMessage()
        }
    }

    @Test func internalMessageSendsAndCloses() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let carol = try await harness.connect("carol")
            let sender = try await TestWebSocket.connect(port: harness.port)
            try await sender.send("Application/Internal:\(harness.key)", .string(#"["memo", "from cron", 3, 3]"#))
            #expect(try await sender.nextClose().code == 1000)
            #expect(try await carol.nextMessage() == Message(action: "memo", details: "from cron"))

            let intruder = try await TestWebSocket.connect(port: harness.port)
            try await intruder.send("Application/Internal:wrong", .string(#"["memo", "x", 1]"#))
            let close = try await intruder.nextClose()
            #expect(close.before == [Message(action: "Application/Internal:error", details: [403, "Forbidden"])])
            #expect(close.code == 1008)
            try await carol.expectNoMessage()
        }
    }
}
