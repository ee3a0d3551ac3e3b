/*
 * TypeScript declarations for cs.WebSockets (/WebSockets/client.js), served at /WebSockets/client.d.ts.
 *
 *   /// <reference path="./WebSockets.d.ts" />
 *   cs.WebSockets.on('hello', (greeting: string) => ..., (code, message) => ...).send('hello', 'Ann');
 *
 * For the ES module (/WebSockets/client.mjs) see WebSockets.d.mts.
 */
declare namespace cs {
  /** What a message's details may be: any JSON value. */
  type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };

  /** Where the connection stands; told by `Client/state` and read from `state`. */
  type WebSocketsState = 'connecting' | 'authenticating' | 'online' | 'offline' | 'closed';

  /**
   * Called with a reply's details: an array of details is spread over the arguments (`['Ann', 3]` calls
   * `callback('Ann', 3)`), anything else is the one argument.
   */
  type WebSocketsSuccess = (...details: any[]) => void;

  /** Called with an error reply's details, `[code, message]` spread: `(403, 'Forbidden')`. */
  type WebSocketsError = (code: number, message: string, ...rest: any[]) => void;

  /** The connection's details after each authentication: the server's answer. */
  interface WebSocketsAuthentication {
    [key: string]: JSONValue;
  }

  /** The browser's side of the WebSockets server. Every method returns the client, for chaining. */
  interface WebSocketsClient {
    /** Called with the new state whenever it changes. */
    on(action: 'Client/state', success: (state: WebSocketsState) => void): WebSocketsClient;
    /** Called after every authentication (success) or when the server refuses it (error). */
    on(
      action: 'Client/authentication',
      success?: ((details: WebSocketsAuthentication) => void) | null,
      error?: WebSocketsError | null
    ): WebSocketsClient;
    /** Success and error callbacks for an action's replies; either may be omitted. */
    on(action: string, success?: WebSocketsSuccess | null, error?: WebSocketsError | null): WebSocketsClient;
    /** Removes the given callbacks, or all of the action's when none is given. */
    off(action: string, success?: WebSocketsSuccess | null, error?: WebSocketsError | null): WebSocketsClient;
    /** Like `on`, removed after the first reply, success or error. */
    once(action: 'Client/state', success: (state: WebSocketsState) => void): WebSocketsClient;
    once(action: string, success?: WebSocketsSuccess | null, error?: WebSocketsError | null): WebSocketsClient;
    /** Sends now, or after the next authentication when not online (counted by `queued`). */
    send(action: string, details?: JSONValue): WebSocketsClient;
    /** Connects to other addresses (one, or several separated by commas or spaces), closing the current one. */
    connect(address?: string): WebSocketsClient;
    /** connecting, authenticating, online, offline, or closed (after Server/close; no reconnect). */
    readonly state: WebSocketsState;
    /** The id of the last cluster message received (null on a single server). */
    readonly lastId: number | null;
    /** How many messages wait for the next authentication. */
    readonly queued: number;
  }

  /** The client, made when /WebSockets/client.js loads. */
  const WebSockets: WebSocketsClient;
}

/** The addresses to connect to, when the script tag has no `data-url` (set before the script loads). */
declare var csWebSocketsUrl: string | undefined;
