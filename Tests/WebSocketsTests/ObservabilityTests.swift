import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

@Suite struct ObservabilityTests {
    /// Every label the server counts under `closed`, `dropped` and `refused` is explained in the metrics page
    /// (docs/health-and-metrics.md): the labels are one list each (``ClosedReason``, ``DroppedReason``,
    /// ``RefusedReason``).
    @Test func theReadmeNamesEveryReasonLabel() throws {
        let section = try String(
            contentsOfFile: DeployTests.root.appendingPathComponent("docs/health-and-metrics.md").path,
            encoding: .utf8)
        let labels =
            ClosedReason.allCases.map(\.rawValue) + DroppedReason.allCases.map(\.rawValue)
            + RefusedReason.allCases.map(\.rawValue)
        for label in labels {
            #expect(section.contains("`\(label)`"), "docs/health-and-metrics.md does not name `\(label)`")
        }
    }

    @Test func healthReportsConnections() async throws {
        let before = ContinuousClock.now
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let alice = try await harness.connect("alice")
            let anonymous = try await TestWebSocket.connect(port: harness.port)
            try await eventually("both connections are counted") {
                harness.server.hub.counts == (connections: 2, authenticated: 1)
            }
            let response = try await harness.http("GET", "/WebSockets/health")
            #expect(response.status == 200)
            let health = try JSON(parsing: response.body)
            #expect(health["status"] == "ok")
            #expect(health["connections"] == 2)
            #expect(health["authenticated"] == 1)
            let uptime = try #require(
                health["uptime"].flatMap { value -> Double? in
                    if case .double(let number) = value { return number }
                    return value.intValue.map(Double.init)
                })
            // Seconds since the server started: no more than the test has run.
            let elapsed = (ContinuousClock.now - before) / .milliseconds(1) / 1000
            #expect(uptime > 0 && uptime <= elapsed, "uptime in seconds: \(uptime), test: \(elapsed)")
            await alice.close()
            await anonymous.close()
        }
    }

    @Test func metricsCountWhatHappened() async throws {
        let harness = try await Harness.start()
        try await withTeardown({ await harness.stop() }) {
            let alice = try await harness.connect("alice")
            try await alice.send("hello", "m")
            _ = try await alice.nextMessage()
            let rejected = try await TestWebSocket.connect(port: harness.port, headers: [("Cookie", "sid=reject")])
            try await rejected.send("Client/authentication", nil)
            _ = try await rejected.nextClose()
            harness.server.sendToClients("x", nil, .usersGroup, 1)
            _ = try await alice.nextMessage()
            let response = try await harness.http("GET", "/metrics")
            #expect(response.status == 200)
            let text = response.body
            for line in [
                "websockets_connections_authenticated 1",
                #"websockets_auth_total{outcome="ok"} 1"#, #"websockets_auth_total{outcome="rejected"} 1"#,
                "websockets_messages_in_total 3", #"websockets_sends_total{send_to="4"} 1"#,
                #"websockets_sends_total{send_to="7"} 1"#, "websockets_site_request_duration_seconds_count",
            ] {
                #expect(text.contains(line), "\(line)")
            }
            #expect(text.contains("websockets_messages_out_total 4"))
            await alice.close()
        }
    }
}
