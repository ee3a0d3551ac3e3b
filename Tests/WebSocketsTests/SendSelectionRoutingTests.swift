import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

/// A replay selects stored sends in SQL by routing keys: the keys must select exactly the connections that the
/// selection itself selects, for every send_to they decide.
struct SendSelectionRoutingTests {
    static let sessions: [SessionInfo?] = [
        nil,
        SessionInfo(user: 1, session: "s1", groups: [1, 10]),
        SessionInfo(user: "2", session: "s2", groups: ["10", 20.0]),
        SessionInfo(user: 3, session: "42", groups: []),
    ]

    static let targets: [JSON] = [
        1, "1", 1.0, [1, 2], ["2", 3], 10, [20], "s1", ["s2", "42"], 42, "c-1", ["c-2", "c-9"],
    ]

    @Test func routingKeysSelectWhatTheSelectionSelects() {
        for sendTo in [SendTo.specificUsers, .usersGroup, .sessions, .connections] {
            for target in Self.targets {
                let selection = SendSelection(sendTo, target: target)
                let keys = Set(selection.routingKeys ?? [])
                for (index, session) in Self.sessions.enumerated() {
                    let id = "c-\(index)"
                    let selected = selection.selects(id: id, session: session, address: "", userAgent: "")
                    let routed = !keys.isDisjoint(with: SendSelection.routingKeys(id: id, session: session))
                    #expect(routed == selected, "send_to \(sendTo) target \(target) connection \(index)")
                }
            }
        }
    }

    @Test func everyoneRegisteredUsersAndFiltersAreNotDecidedByKeys() {
        for sendTo in [SendTo.all, .registeredUsers, .filter] {
            #expect(SendSelection(sendTo, target: ["user", 1]).routingKeys == nil)
        }
    }
}
