/* cs.WebSockets as an ES module: import WebSockets from '/WebSockets/client.mjs' */
import './WebSockets.js';

const WebSockets = globalThis.cs.WebSockets;
export default WebSockets;
export { WebSockets };
