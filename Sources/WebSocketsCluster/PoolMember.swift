/// One server of the cluster's pool as its last heartbeat left it (`websockets_pool`), for the status page.
package struct PoolMember: Sendable, Equatable {
    /// How browsers and senders reach it.
    package var address: String
    /// Its id, new at each start.
    package var server: String
    /// Its connections at its last heartbeat.
    package var connections: Int
    /// The messages of the cluster it had not applied yet at its last heartbeat.
    package var behind: Int64
    /// Seconds since its last heartbeat, by the database's clock.
    package var heartbeatAge: Double

    /// A member with these figures.
    package init(address: String, server: String, connections: Int, behind: Int64, heartbeatAge: Double) {
        self.address = address
        self.server = server
        self.connections = connections
        self.behind = behind
        self.heartbeatAge = heartbeatAge
    }
}
