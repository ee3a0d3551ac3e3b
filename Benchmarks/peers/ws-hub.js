// A minimal hub on Node's `ws`, for the benchmarks: the same [action, details] protocol and the same
// POST /WebSockets/send endpoint as the WebSockets server (send_to 1 = everyone, 3 = a user), an in-process echo
// handler, and authentication by the `sid` cookie without asking a site (the peer gets the cheaper path).
// Usage: NODE_PATH=/usr/share/nodejs node ws-hub.js PORT
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 8090);
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });
const everyone = new Set();
const byUser = new Map();

function userOf(request) {
  const match = /(?:^|;\s*)sid=([^;]+)/.exec(request.headers.cookie || '');
  return match ? match[1].split('-')[0] : null;
}

const server = http.createServer((request, response) => {
  if (request.method === 'POST' && request.url === '/WebSockets/send') {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      let send;
      try {
        send = JSON.parse(Buffer.concat(chunks).toString());
      } catch (error) {
        response.writeHead(400).end();
        return;
      }
      const [action, details, sendTo, target] = send;
      // Encoded once, as the WebSockets server does, and sent as a text frame to every recipient.
      const data = Buffer.from(JSON.stringify([action, details]));
      const recipients = sendTo === 3 ? byUser.get(String(target)) || new Set() : everyone;
      for (const ws of recipients) ws.send(data, { binary: false });
      response.writeHead(202, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ accepted: true, delivered: recipients.size }));
    });
  } else if (request.url === '/WebSockets/health') {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ connections: everyone.size }));
  } else {
    response.writeHead(404).end();
  }
});

server.on('upgrade', (request, socket, head) => {
  const user = userOf(request);
  if (!user) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(request, socket, head, (ws) => {
    let authenticated = false;
    ws.on('message', (raw, isBinary) => {
      let message;
      try {
        message = JSON.parse(raw.toString());
      } catch (error) {
        ws.close(1007, 'Malformed frame');
        return;
      }
      const [action, details] = message;
      if (action === 'Client/authentication') {
        if (!authenticated) {
          authenticated = true;
          everyone.add(ws);
          if (!byUser.has(user)) byUser.set(user, new Set());
          byUser.get(user).add(ws);
        }
        ws.send('["Client/authentication","ok"]');
      } else if (authenticated && action === 'echo') {
        ws.send(JSON.stringify(['echo', details]));
      }
    });
    ws.on('close', () => {
      everyone.delete(ws);
      const tabs = byUser.get(user);
      if (tabs) {
        tabs.delete(ws);
        if (tabs.size === 0) byUser.delete(user);
      }
    });
  });
});

server.listen(port, '127.0.0.1');
