// `import WebSockets` brings everything code embedding the server names: the wire types (no NIO), the settings and
// metrics (core), the hub's connections, the site client (libcurl, which tools use to call a site or a server).
// They live in targets of their own (ARCHITECTURE.md); `@_exported` is the only way to re-export a module.
@_exported import WebSocketsCore
@_exported import WebSocketsHub
@_exported import WebSocketsProtocol
@_exported import WebSocketsSite
