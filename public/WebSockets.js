/*
 * cs.WebSockets: the browser side of the WebSockets server.
 *
 *   <script src="/WebSockets/client.js"></script>                                  connects to ws(s)://<page host>/WebSockets
 *   <script src="https://rt.example.com/WebSockets/client.js" data-url="wss://rt.example.com/WebSockets"></script>
 *   import WebSockets from '/WebSockets/client.mjs'                                the same object, as an ES module
 *
 *   cs.WebSockets.on('hello', (greeting) => ..., (code, message) => ...)
 *              .send('hello', 'Ann')
 *
 * Plain JavaScript, no build step, no dependency.
 */
(function (global) {
  'use strict';
  var cs = (global.cs = global.cs || {});
  if (cs.WebSockets) return;

  var script = typeof document !== 'undefined' ? document.currentScript : null;
  /* One address, or several separated by commas or spaces (servers of a cluster): on reconnection the next one. */
  var urls = parseUrls((script && script.getAttribute('data-url')) || global.csWebSocketsUrl || defaultUrl());
  var urlIndex = 0;
  /* The id of the last cluster message seen: sent with Client/authentication so that missed ones are replayed. */
  var lastId = null;
  // The ids of the last 1000 messages, to drop a second copy of one.
  var seenIds = new Set();
  var seenOrder = [];
  var backoffBase = 500;
  var backoffCap = 30000;

  var socket = null;
  var state = 'connecting';
  var attempt = 0;
  var timer = null;
  var queue = [];
  var handlers = {};

  function parseUrls(text) {
    return String(text).split(/[\s,]+/).filter(function (part) { return part; });
  }

  function defaultUrl() {
    if (typeof location === 'undefined') return '';
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/WebSockets';
  }

  function setState(next) {
    if (state === next) return;
    state = next;
    emit('Client/state', next, false);
  }

  function list(action) {
    return handlers[action] || (handlers[action] = []);
  }

  function call(callback, details) {
    try {
      if (Array.isArray(details)) callback.apply(null, details);
      else callback(details);
    } catch (error) {
      setTimeout(function () { throw error; });
    }
  }

  /* Runs the success (or error) callbacks of an action; `once` entries leave before any callback runs. */
  function emit(action, details, isError) {
    var entries = handlers[action];
    if (!entries || !entries.length) return;
    var current = entries.slice();
    handlers[action] = entries.filter(function (entry) {
      return !(entry.once && (isError ? entry.error : entry.success));
    });
    current.forEach(function (entry) {
      var callback = isError ? entry.error : entry.success;
      if (callback) call(callback, details);
    });
  }

  function connect() {
    clearTimeout(timer);
    timer = null;
    if (state === 'closed' || !urls.length) return;
    if (socket && (socket.readyState === 0 || socket.readyState === 1)) return;
    setState('connecting');
    var ws;
    try {
      ws = new WebSocket(urls[urlIndex % urls.length]);
    } catch (error) {
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.onopen = function () {
      if (socket !== ws) return;
      setState('authenticating');
      ws.send(JSON.stringify(['Client/authentication', lastId === null ? null : { last_id: lastId }]));
    };
    ws.onmessage = function (event) {
      if (socket !== ws) return;
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (!Array.isArray(frame) || typeof frame[0] !== 'string') return;
      if (typeof frame[2] === 'number') {
        // A message id seen before (a failover's replay meeting a live copy) is not handed out twice.
        if (seenIds.has(frame[2])) return;
        seenIds.add(frame[2]);
        seenOrder.push(frame[2]);
        if (seenOrder.length > 1000) seenIds.delete(seenOrder.shift());
        if (lastId === null || frame[2] > lastId) lastId = frame[2];
      }
      receive(frame[0], frame.length > 1 ? frame[1] : null);
    };
    ws.onclose = function () {
      if (socket !== ws) return;
      socket = null;
      if (state === 'closed') return;
      urlIndex += 1;
      scheduleReconnect();
    };
    ws.onerror = function () {};
  }

  function receive(action, details) {
    if (action === 'Client/authentication') {
      attempt = 0;
      setState('online');
      emit(action, details, false);
      flush();
      return;
    }
    if (action === 'Client/recovery') {
      if (details && typeof details.last_id === 'number' && (lastId === null || details.last_id > lastId)) {
        lastId = details.last_id;
      }
      emit(action, details, false);
      return;
    }
    if (action === 'Server/close') {
      setState('closed');
      if (socket) socket.close();
      socket = null;
      emit(action, details, false);
      return;
    }
    var isError = action.slice(-6) === ':error';
    emit(isError ? action.slice(0, -6) : action, details, isError);
  }

  /* Queued messages go out in order, once, right after authentication. */
  function flush() {
    while (queue.length && state === 'online' && socket && socket.readyState === 1) {
      socket.send(queue.shift());
    }
  }

  /* Exponential backoff with full jitter, capped: a server restart does not meet every tab at the same moment. */
  function scheduleReconnect() {
    if (state === 'closed') return;
    setState('offline');
    var ceiling = Math.min(backoffCap, backoffBase * Math.pow(2, attempt));
    attempt += 1;
    clearTimeout(timer);
    timer = setTimeout(connect, Math.random() * ceiling);
  }

  function reconnectNow() {
    if (state === 'offline') {
      attempt = 0;
      connect();
    }
  }

  var api = {
    /** Success and error callbacks for an action's replies; either may be omitted. */
    on: function (action, success, error) {
      if (success || error) list(action).push({ success: success, error: error, once: false });
      return api;
    },
    /** Removes the given callbacks, or all of the action's when none is given. */
    off: function (action, success, error) {
      if (!success && !error) {
        delete handlers[action];
        return api;
      }
      handlers[action] = list(action).filter(function (entry) {
        var matches = (!success || entry.success === success) && (!error || entry.error === error);
        return !matches;
      });
      return api;
    },
    /** Like `on`, removed after the first reply, success or error. */
    once: function (action, success, error) {
      if (success || error) list(action).push({ success: success, error: error, once: true });
      return api;
    },
    /** Sends now, or after the next authentication when not online. */
    send: function (action, details) {
      queue.push(JSON.stringify([action, details === undefined ? null : details]));
      flush();
      return api;
    },
    /** Connects to other addresses (closing the current connection). */
    connect: function (address) {
      if (address) {
        urls = parseUrls(address);
        urlIndex = 0;
      }
      if (socket) {
        var old = socket;
        socket = null;
        old.close();
      }
      if (state !== 'closed') connect();
      return api;
    }
  };
  /** connecting, authenticating, online, offline, or closed (after Server/close; no reconnect). */
  Object.defineProperty(api, 'state', { get: function () { return state; }, enumerable: true });
  /** The id of the last cluster message received (null on a single server). */
  Object.defineProperty(api, 'lastId', { get: function () { return lastId; }, enumerable: true });
  /** How many messages wait for the next authentication. */
  Object.defineProperty(api, 'queued', { get: function () { return queue.length; }, enumerable: true });
  cs.WebSockets = api;

  if (typeof window !== 'undefined') {
    window.addEventListener('online', reconnectNow);
    if (typeof document !== 'undefined') {
      document.addEventListener('visibilitychange', function () {
        if (document.visibilityState === 'visible') reconnectNow();
      });
    }
  }
  setTimeout(connect, 0);
})(typeof globalThis !== 'undefined' ? globalThis : window);
