import Logging
import NIOConcurrencyHelpers
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The router's decision, on inputs: a bus that records what reaches it stands for the cluster.
@Suite struct SendRouterTests {
    final class RecordingBus: MessageBus, Sendable {
        let cluster: Bool
        let sent = NIOLockedValueBox<[Send]>([])
        init(cluster: Bool) { self.cluster = cluster }
        var isCluster: Bool { cluster }
        var head: Int64 { 0 }
        func enqueue(_ sends: [Send]) { sent.withLockedValue { $0 += sends } }
        func publish(_ sends: [Send]) async { enqueue(sends) }
        func messages(
            after: Int64, through: Int64, for recipient: ReplayRecipient, budget: Int
        ) async throws -> (rows: [(id: Int64, send: Send)], complete: Bool) {
            ([], true)
        }
        func start() async throws {}
        func shutdown() async {}
    }

    @Test func aSingleServerKeepsEverySendAndAClusterSharesAllButItsOwnConnections() async {
        let settings = Settings(site: "http://127.0.0.1:1", securityKey: "k")
        let hub = Hub(metrics: ServerMetrics(), logger: Logger(label: "test"), settings: settings)
        let sends = [
            Send(action: "a", sendTo: .all), Send(action: "b", sendTo: .connections, target: "elsewhere-1"),
            Send(action: "c", sendTo: .specificUsers, target: 1),
        ]
        let single = RecordingBus(cluster: false)
        #expect(await SendRouter(hub: hub, bus: single).perform(sends) == 0)
        #expect(single.sent.withLockedValue { $0 }.isEmpty)
        let cluster = RecordingBus(cluster: true)
        let router = SendRouter(hub: hub, bus: cluster)
        #expect(router.isCluster)
        #expect(await router.perform(sends) == nil)
        #expect(cluster.sent.withLockedValue { $0.map(\.action) } == ["a", "b", "c"])
        #expect(router.staysHere(Send(action: "d", sendTo: .connections, target: [])))
    }
}
