extension WebSocketsServer {
    /// The release this build is: what `websockets --version` prints, `/WebSockets/health` reports and the Debian
    /// package carries as its version (`deploy/debian/build-package.sh` reads it from the binary).
    public static let version = "0.9.0"
}
