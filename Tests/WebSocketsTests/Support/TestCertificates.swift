import Foundation

/// A root certificate and a server certificate it signs, made by the openssl command line for one test (P-256
/// keys: quick to make). A second, unrelated root is made too, for "wrong root" cases.
struct TestCertificates: Sendable {
    let root: String
    let otherRoot: String
    let serverCertificate: String
    let serverKey: String

    /// Certificates in `directory` for a server named `names` (DNS names; none is an IP address).
    static func make(directory: String, names: [String]) async throws -> TestCertificates {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(
            root: directory + "/root.crt", otherRoot: directory + "/other-root.crt",
            serverCertificate: directory + "/server.crt", serverKey: directory + "/server.key")
        let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        let rootExtensions =
            "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
        let alternativeNames = names.map { "DNS:\($0)" }.joined(separator: ",")
        try await PostgresServer.shell(
            """
            cd \(directory) && \
            openssl req -x509 \(key) -keyout root.key -out root.crt -days 2 -subj /CN=websockets-test-root \(rootExtensions) && \
            openssl req -x509 \(key) -keyout other-root.key -out other-root.crt -days 2 -subj /CN=another-root \(rootExtensions) && \
            openssl req \(key) -keyout server.key -out server.csr -subj /CN=\(names.first ?? "server") && \
            printf 'subjectAltName=\(alternativeNames)\\nbasicConstraints=CA:FALSE\\nkeyUsage=digitalSignature,keyEncipherment\\nextendedKeyUsage=serverAuth\\n' > server.ext && \
            openssl x509 -req -in server.csr -CA root.crt -CAkey root.key -CAcreateserial -out server.crt -days 2 -extfile server.ext && \
            chmod 600 server.key
            """)
        return certificates
    }
}
