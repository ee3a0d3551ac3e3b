import Logging
import NIOConcurrencyHelpers
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// The router's decision and the mode's choices, on inputs: a bus that records what reaches it stands for the
/// cluster.
@Suite struct SendRouterTests {
    final class RecordingBus: MessageBus, Sendable {
        let sent = NIOLockedValueBox<[Send]>([])
        var head: Int64 { 0 }
        func enqueue(_ sends: [Send]) { sent.withLockedValue { $0 += sends } }
        func publish(_ sends: [Send], then done: @escaping @Sendable () -> Void) {
            enqueue(sends)
            done()
        }
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
        let single = RecordingBus()
        #expect(await ClusterMode(settings: settings).router(hub: hub, bus: single).perform(sends) == 0)
        #expect(single.sent.withLockedValue { $0 }.isEmpty)
        let cluster = RecordingBus()
        var clustered = settings
        clustered.postgres = "postgres://127.0.0.1:1/db"
        let router = ClusterMode(settings: clustered).router(hub: hub, bus: cluster)
        #expect(await router.perform(sends) == nil)
        #expect(cluster.sent.withLockedValue { $0.map(\.action) } == ["a", "b", "c"])
        #expect(router.staysHere(Send(action: "d", sendTo: .connections, target: [])))
    }

    @Test func theModeIsChosenOnceFromPostgresAndSuppliesWhatDiffers() {
        var settings = Settings(site: "http://127.0.0.1:1", securityKey: "k")
        let single = ClusterMode(settings: settings)
        #expect(!single.holdsLiveMessagesUntilReplay && !single.replaysMissedMessages)
        #expect(single.answersSendsOnTheLoop && single.presenceAuthority == .ledger)
        #expect(!single.sharesPresenceCounts && !single.findsServersInThePool)
        settings.postgres = ""
        #expect(ClusterMode(settings: settings) == single)
        settings.postgres = "postgres://127.0.0.1:1/db"
        let cluster = ClusterMode(settings: settings)
        #expect(cluster.holdsLiveMessagesUntilReplay && cluster.replaysMissedMessages)
        #expect(!cluster.answersSendsOnTheLoop && cluster.presenceAuthority == .database)
        #expect(cluster.sharesPresenceCounts && cluster.findsServersInThePool)
        let hub = Hub(metrics: ServerMetrics(), logger: Logger(label: "test"), settings: settings)
        func bus(_ mode: ClusterMode) -> any MessageBus {
            mode.makeBus(
                settings: settings, hub: hub, metrics: ServerMetrics(), logger: Logger(label: "test"), serverID: "s",
                address: NIOLockedValueBox(""), presence: NIOLockedValueBox(PresenceLedger(grace: .seconds(1))))
        }
        #expect(bus(single) is LocalBus)
        #expect(bus(cluster) is PostgresBus)
    }
}
