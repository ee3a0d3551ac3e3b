"""A minimal Socket.IO hub for the benchmarks (python-socketio on aiohttp, from Debian's packages: Debian 12 has no
Node Socket.IO server). Events carry the same [action, details] as the WebSockets protocol: a Socket.IO event named
`action` with `details` as its argument. POST /WebSockets/send takes the same [action, details, send_to, target]
body (send_to 1 = everyone, 3 = a user's room); an `echo` event is answered in-process. A client is placed in its
user's room at connect, from the `sid` cookie, without asking a site.

Usage: /usr/bin/python3 socketio-hub.py PORT
"""
import json
import re
import sys

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*", ping_interval=25, ping_timeout=60)
app = web.Application()
sio.attach(app)
connections = 0


@sio.event
async def connect(sid, environ, auth=None):
    global connections
    match = re.search(r"(?:^|;\s*)sid=([^;]+)", environ.get("HTTP_COOKIE", ""))
    if not match:
        return False
    sio.enter_room(sid, "u" + match.group(1).split("-")[0])
    connections += 1


@sio.event
async def disconnect(sid):
    global connections
    connections -= 1


@sio.on("echo")
async def echo(sid, details):
    await sio.emit("echo", details, to=sid)


async def send(request):
    try:
        action, details, send_to, target = ((await request.json()) + [None, None])[:4]
    except Exception:
        return web.Response(status=400)
    await sio.emit(action, details, to=("u" + str(target)) if send_to == 3 else None)
    return web.json_response({"accepted": True}, status=202)


async def health(request):
    return web.json_response({"connections": connections})


app.router.add_post("/WebSockets/send", send)
app.router.add_get("/WebSockets/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
