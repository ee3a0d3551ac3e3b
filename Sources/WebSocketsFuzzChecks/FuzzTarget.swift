/// The parsers that a stranger's bytes reach, each with the invariant its fuzz target asserts. One input is one
/// call of ``check(_:)``: it returns when the invariant held (the input may well have been refused: refusing is
/// right for most inputs) and throws a ``FuzzFinding`` when it did not; a trap is a finding too.
package enum FuzzTarget: String, CaseIterable, Sendable {
    /// Frames from a browser: the same bytes in any chunking give the same events; nothing accepted that RFC 6455
    /// or RFC 7692 refuses (``FrameStreamCheck``).
    case frames
    /// UTF-8 checked fragment by fragment agrees with the standard library on any bytes in any split.
    case utf8
    /// JSON: parse, serialise and parse again gives the same value; `RawJSON` passes valid text through byte for
    /// byte and refuses what the parser refuses; a message's details are its bytes as written (``JSONCheck``).
    case json
    /// `POST /WebSockets/send` bodies and internal messages: the list parsed from bytes equals the one read from
    /// their parsed value.
    case send
    /// The site's session answer (`SessionInfo`).
    case session
    /// Raw bytes through SwiftNIO's HTTP decoder to the server's decisions on each request: admission, the send
    /// key, the upgrade's refusal, compression's agreement, cookies and the form (``HTTPHeadCheck``).
    case http
    /// A publisher connection's bytes through the server's own request reader: the same steps in any chunking
    /// (``HTTPReaderCheck``).
    case httpReader = "http-reader"
    /// `X-Forwarded-For` with `trusted_proxies`.
    case forwarded
    /// `cluster_url` / `POSTGRES_URL`.
    case postgresURL = "postgres-url"
    /// The settings file, and a setting's value given as a flag or variable.
    case settings
    /// A permessage-deflate message: inflating stops at the limit; what inflates compresses and inflates back.
    case inflate
    /// `Sec-WebSocket-Extensions` offers.
    case deflateOffer = "deflate-offer"

    /// Runs the target's invariant on `bytes`.
    package func check(_ bytes: [UInt8]) throws(FuzzFinding) {
        switch self {
        case .frames: try FrameStreamCheck.check(bytes)
        case .utf8: try FrameStreamCheck.checkUTF8(bytes)
        case .json: try JSONCheck.check(bytes)
        case .send: try JSONCheck.checkSends(bytes)
        case .session: try JSONCheck.checkSession(bytes)
        case .http: try HTTPHeadCheck.check(bytes)
        case .httpReader: try HTTPReaderCheck.check(bytes)
        case .forwarded: try SettingInputCheck.checkForwarded(bytes)
        case .postgresURL: try SettingInputCheck.checkPostgresURL(bytes)
        case .settings: try SettingInputCheck.checkSettings(bytes)
        case .inflate: try FrameStreamCheck.checkInflate(bytes)
        case .deflateOffer: try SettingInputCheck.checkDeflateOffer(bytes)
        }
    }
}
