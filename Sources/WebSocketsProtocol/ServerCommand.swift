/// A send the server performs instead of delivering: the seed's logouts. Its details (a session id, a user id) are
/// for the server alone: they never reach a browser as a frame, live, replayed or forwarded; the tabs it closes get
/// `Server/close` alone.
public enum ServerCommand: String, Sendable, CaseIterable {
    /// Closes for good the connections of the session id (or array of them) in the details.
    case closeBySession = "Server/close_by_session"
    /// Closes for good the connections of the user id (or array of them) in the details.
    case closeByUser = "Server/close_by_user"

    /// Whom the details name: the connections the command closes are those a send with this `send_to` and the
    /// details as its target would select.
    public var closes: SendTo {
        switch self {
        case .closeBySession: return .sessions
        case .closeByUser: return .specificUsers
        }
    }
}

extension Send {
    /// The command this send is, if it is one rather than a message.
    public var command: ServerCommand? { ServerCommand(rawValue: action) }
}
