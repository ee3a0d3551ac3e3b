import Testing

@testable import WebSocketsCluster
@testable import WebSocketsHub
@testable import WebSocketsProtocol

/// What presence's rows and announcements mean, on values (``PresenceSQL``).
@Suite struct PresenceSQLTests {
    @Test func anAnnouncementIsADecisionAndAnythingElseIsNot() {
        let change = PresenceSQL.change(announcement: #"{"online":true,"user":42,"groups":["b","a"]}"#)
        #expect(change == PresenceLedger.Change(online: true, user: 42, groups: ["a", "b"]))
        #expect(PresenceSQL.change(announcement: #"{"online":false,"user":"x"}"#) == .offline("x"))
        for text in ["server-1", #"{"user":1}"#, #"{"online":"yes","user":1}"#, #"{"online":true}"#, "{"] {
            #expect(PresenceSQL.change(announcement: text) == nil, "\(text)")
        }
    }

    @Test func aRowKeepsTheUserAsTheSiteGaveItAndItsGroupsAsASet() {
        let count = PresenceSQL.count(value: #"{"id":7}"#, groups: #"["g","g","h"]"#, tabs: 3)
        #expect(count == PresenceLedger.RemoteCount(user: ["id": 7], groups: ["g", "h"], tabs: 3))
        // Text that is not JSON is kept as a string; groups that are not an array are none.
        let odd = PresenceSQL.count(value: "plain", groups: "null", tabs: 1)
        #expect(odd == PresenceLedger.RemoteCount(user: "plain", groups: [], tabs: 1))
        #expect(PresenceSQL.change(online: true, user: "5", groups: #"["z","y"]"#).groups == ["y", "z"])
    }

    @Test func everyDecisionIsAnnouncedAsItCommits() {
        let statement = PresenceSQL.removeAfter(grace: 2.5)
        #expect(statement.contains("make_interval(secs => 2.5)"))
        #expect(statement.contains("pg_notify('websockets_presence'"))
        #expect(PresenceSQL.announced(online: true, filter: "inserted").contains("WHERE inserted"))
    }
}
