#!/usr/bin/env python3
"""Writes the first inputs of each fuzz target into Fuzz/corpus/<target>/ (the fuzzers grow them; run.sh --keep
merges what they found back). Each input is in the format its check reads (Sources/WebSocketsFuzzChecks)."""
import hashlib
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
JSON_SUITE = os.path.join(HERE, "..", "..", "shared", "JSONTestSuite", "test_parsing")
KEY = b"fuzz-key-3f9c1b7e5a2d4c8f9e0b1a2c3d4e5f60"  # HTTPHeadCheck.key


def write(target, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + hashlib.sha1(data).hexdigest()), "wb") as file:
        file.write(data)


def deflate(data):
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


def frame(opcode, payload, fin=True, rsv1=False, mask=b"\x37\xfa\x21\x3d"):
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    masked = 0x80 if mask is not None else 0
    if length < 126:
        head = bytes([first, masked | length])
    elif length < 65536:
        head = bytes([first, masked | 126]) + struct.pack(">H", length)
    else:
        head = bytes([first, masked | 127]) + struct.pack(">Q", length)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def frames():
    text = b'["Client/authentication",null]'
    streams = [
        frame(1, text),
        frame(1, b'["a",'.ljust(0), fin=False) + frame(9, b"ping") + frame(0, b'1]'),
        frame(1, "h\u00e9llo \u20ac \U0001d11e".encode()),
        frame(1, b"\xe2\x82", fin=False) + frame(0, b"\xac"),
        frame(1, b"ok\xc0\x80", fin=False) + frame(0, b"rest"),
        frame(1, b"x" * 200),
        frame(1, b"y" * 70000)[:40],  # a 64-bit length: refused from its header
        frame(8, struct.pack(">H", 1000) + b"bye"),
        frame(8, b"\x03"),
        frame(8, struct.pack(">H", 1005)),
        frame(10, b"pong"),
        frame(2, b"\x00\x01"),
        frame(1, text, mask=None),
        frame(0, b"orphan"),
        frame(9, b"p" * 126),
        frame(1, deflate(b'["echo","hello hello hello hello"]'), rsv1=True),
        frame(1, deflate(b'["a",')[:3], fin=False, rsv1=True) + frame(0, deflate(b'["a",')[3:] + b""),
        frame(9, b"", rsv1=True),
        frame(1, deflate(b" " * 5000), rsv1=True),
        frame(1, b"\xff\xfe", rsv1=True),
    ]
    for index, stream in enumerate(streams):
        for settings in (0x09, 0x08):  # limit 1000, with and without permessage-deflate
            write("frames", bytes([settings, index * 7 % 256]) + stream)


def utf8():
    for sample in [b"plain ascii text", "\u00e9\u20ac\U0001d11e".encode(), b"\xc0\x80", b"\xed\xa0\x80",
                   b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xef\xbb\xbfbom", b"\xf0\x9f\x98", b"a" * 17 + b"\x80"]:
        write("utf8", bytes([len(sample) // 2]) + sample)


def json_and_sends():
    if os.path.isdir(JSON_SUITE):
        for name in sorted(os.listdir(JSON_SUITE)):
            with open(os.path.join(JSON_SUITE, name), "rb") as file:
                data = file.read()
            if len(data) <= 4096:
                write("json", data)
    for text in [b'["Client/authentication",null]', b'["a",{"t":"1","s":"2"},7]', b'["x",1e9999]',
                 b'["x",12345678901234567890]', b'["x","\\ud83d\\ude00"]', b'  ["x" , [1,2,{"a":null}] ] ']:
        write("json", text)
    for text in [b'["a",1,0]', b'[["a",{"x":1},2,5],["b",null,4,[1,2]]]', b'["a","text",3,"sid"]', b"[]",
                 b'["Chat/message",{"text":"hi"},1,[1,2,3]]', b'[["a",1]]', b'["a",1,9]', b'{"a":1}']:
        write("send", text)


def sessions():
    for text in [b'{"user":1,"session":"abc","expire":123,"groups":[1,2],"presence":{"users":[2],"groups":[3]},'
                 b'"properties":{"a":1},"language":"en","guest":false}',
                 b'{"user":"u","session":7,"presence":[1,2]}', b'{"user":null,"session":"s"}',
                 b'{"user":1,"session":"s","expire":1.5}', b'{"user":1,"session":"s","presence":{"x":[]}}']:
        write("session", text)


def http():
    upgrade = (b"GET /WebSockets HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
               b"Cookie: PHPSESSID=abc; other=1\r\nX-Forwarded-For: 10.0.0.1, 1.2.3.4\r\n\r\n")
    body = b'["Chat/message",{"text":"hi"},1]'
    requests = [
        b"GET /WebSockets/health HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /WebSockets/client.js HTTP/1.1\r\nHost: x\r\n\r\n",
        upgrade,
        upgrade + frame(1, b'["Client/authentication",null]') + frame(9, b"x") + frame(8, struct.pack(">H", 1000)),
        upgrade + frame(1, deflate(b'["Application/Internal:' + KEY + b'","[\\"a\\",1,0]"]'), rsv1=True),
        b"POST /WebSockets/send HTTP/1.1\r\nHost: x\r\nX-WebSockets-Key: " + KEY +
        b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
        b"POST /WebSockets/send HTTP/1.1\r\nHost: x\r\nX-WebSockets-Key: wrong\r\nContent-Length: 2\r\n\r\n[]",
        b"POST /WebSockets/send HTTP/1.1\r\nHost: x\r\nX-WebSockets-Key: " + KEY +
        b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[\"a\",\r\n4\r\n1,0]\r\n0\r\n\r\n",
        b"GET /WebSockets/presence?users=1,2 HTTP/1.1\r\nHost: x\r\nX-WebSockets-Key: " + KEY + b"\r\n\r\n",
        b"GET /WebSockets HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\nUpgrade: websocket\r\n\r\n",
        b"GET /nothing?a=%zz&b HTTP/1.0\r\n\r\n",
        b"BREW /coffee HTCPCP/1.0\r\n\r\n",
    ]
    for request in requests:
        write("http", request)
    # The publishers' reader: a split byte, then a connection's requests (pipelined, chunked, refused).
    pipelined = b"".join(r for r in requests if r.startswith(b"POST") or r.startswith(b"GET /WebSockets/"))
    for index, request in enumerate(requests + [
        pipelined,
        b"POST /WebSockets/send HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /WebSockets/send?x HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n[]",
        b"\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\r\nx\r\n0\r\nT: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
    ]):
        write("http-reader", bytes([index * 37 % 256]) + request)


def texts():
    for text in [b"127.0.0.1\n127.0.0.1\n1.2.3.4", b"10.0.0.0/8, ::1\n10.1.2.3\n1.2.3.4, 10.0.0.7\n10.9.9.9",
                 b"::ffff:127.0.0.1/128\n127.0.0.1\n[2001:db8::1], 127.0.0.1", b"0.0.0.0/0\n8.8.8.8\nnot-an-ip, 1.1.1.1"]:
        write("forwarded", text)
    for text in [b"postgres://u:p@127.0.0.1:5432/db?sslmode=require", b"postgresql://[::1]/x?sslrootcert=/tmp/ca.pem",
                 b"postgres://host", b"postgres://h:0/d", b"postgres://h:99999/d", b"postgres://u@h/d?sslmode=bogus",
                 b"postgres://h/d?sslcert=x"]:
        write("postgres-url", text)
    for text in [b'\x00\x00{"site":"http://127.0.0.1:8000","listen_port":8080,"trusted_proxies":["10.0.0.0/8"]}',
                 b'\x00\x00{"max_message_size":-1}', b'\x00\x00[1]', b'\x01\x00http://127.0.0.1',
                 b'\x01\x01yes', b'\x01\x02 65536 ', b'\x01\x03' + b"a" * 40]:
        write("settings", text)
    for data in [b'["a","hello hello hello"]', b" " * 3000, "\u00e9\u20ac".encode() * 50, b""]:
        write("inflate", b"\x04" + deflate(data))
    write("inflate", b"\x04\xff\xff\xff")
    for text in [b"permessage-deflate; client_max_window_bits", b"permessage-deflate; server_max_window_bits=10",
                 b"x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover",
                 b"permessage-deflate; server_max_window_bits=\"9\"\npermessage-deflate",
                 b"permessage-deflate; client_max_window_bits=08", b"permessage-deflate;server_max_window_bits=8"]:
        write("deflate-offer", text)


if __name__ == "__main__":
    frames()
    utf8()
    json_and_sends()
    sessions()
    http()
    texts()
    print("seeds written to", CORPUS, file=sys.stderr)
