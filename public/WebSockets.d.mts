/*
 * TypeScript declarations for the ES module (/WebSockets/client.mjs), served at /WebSockets/client.d.mts.
 *
 *   import WebSockets from './WebSockets.mjs';
 */
/// <reference path="./WebSockets.d.ts" />

declare const WebSockets: cs.WebSocketsClient;
export default WebSockets;
export { WebSockets };
