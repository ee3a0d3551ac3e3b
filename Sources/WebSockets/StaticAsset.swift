import NIOHTTP1
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol
import WebSocketsSite

/// A file served from memory with validators: browsers revalidate with `If-None-Match` and get `304` until a
/// release changes the file.
struct StaticAsset: Sendable {
    let body: [UInt8]
    let contentType: String
    let etag: String

    init(_ text: String, contentType: String) {
        self.body = Array((text + "\n").utf8)
        self.contentType = contentType
        // FNV-1a: a content hash for the validator, not for security.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in body {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        self.etag = "\"" + String(hash, radix: 16) + "\""
    }

    func response(to request: HTTPServerRequest) -> HTTPServerResponse {
        var headers: HTTPHeaders = [
            "Content-Type": contentType, "Cache-Control": "public, max-age=3600", "ETag": etag,
            // A page on another origin may import the module version.
            "Access-Control-Allow-Origin": "*",
        ]
        if request.headers[canonicalForm: "if-none-match"].contains(where: { $0 == etag || $0 == "*" }) {
            headers.remove(name: "Content-Type")
            return HTTPServerResponse(status: .notModified, headers: headers)
        }
        return HTTPServerResponse(headers: headers, body: body)
    }

    static let classicClient = StaticAsset(ClientScript.classic, contentType: "text/javascript; charset=utf-8")
    static let moduleClient = StaticAsset(ClientScript.module, contentType: "text/javascript; charset=utf-8")
    static let typeDeclarations = StaticAsset(
        ClientScript.declarations, contentType: "application/typescript; charset=utf-8")
    static let moduleTypeDeclarations = StaticAsset(
        ClientScript.moduleDeclarations, contentType: "application/typescript; charset=utf-8")
}
