// The wire types live in their own module (no NIO); `import WebSockets` keeps bringing them, as it did before they
// moved, so that code embedding the server needs one import. `@_exported` is the only way to re-export a module.
@_exported import WebSocketsProtocol
