import Foundation
import NIOCore
import Testing

@testable import WebSockets
@testable import WebSocketsConnection
@testable import WebSocketsCore

/// permessage-deflate against the real server (issue 25), with the clients people use: Node's `ws` and Python's
/// `websockets` (Debian's node-ws and python3-websockets) negotiate it and exchange compressed messages while a
/// client without it gets the same sends plain; a bomb and bad deflate data close their own connection only.
/// One test at a time: each starts a server, and the first starts two interpreters; on 2 cores, beside the rest of
/// the suite, all at once made other tests' site calls time out.
@Suite(.serialized) struct CompressionTests {
    /// The value of the counter `name` (with its labels) in `server`'s metrics, 0 when absent.
    static func counter(_ server: WebSocketsServer, _ name: String) -> Int {
        let text = String(decoding: server.metrics.render(), as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Int(Double(line.dropFirst(name.count + 1)) ?? 0)
        }
        return 0
    }

    static let outUncompressed = #"websockets_compression_bytes_total{direction="out",form="uncompressed"}"#
    static let outCompressed = #"websockets_compression_bytes_total{direction="out",form="compressed"}"#
    static let inUncompressed = #"websockets_compression_bytes_total{direction="in",form="uncompressed"}"#
    static let inCompressed = #"websockets_compression_bytes_total{direction="in",form="compressed"}"#

    /// A server whose in-process handler echoes `echo` and sends `broadcast` to everyone as `news`.
    private func echoingServer(_ adjust: @escaping (inout Settings) -> Void = { _ in }) async throws -> Harness {
        let harness = try await Harness.start {
            $0.messageEndpoint = "none"
            adjust(&$0)
        }
        harness.site.addSession("python", user: 50)
        harness.site.addSession("node", user: 51)
        harness.server.on("WebSockets/message") { event in
            switch event.action {
            case "echo": event.reply("echo", event.details)
            case "broadcast": _ = event.sendToClients("news", event.details, .all)
            default: break
            }
        }
        return harness
    }

    /// Runs `script` with `interpreter`, the server's port as its argument; its last line of output, as JSON.
    private func run(_ interpreter: String, _ script: String, port: Int) async throws -> JSON {
        let path = NSTemporaryDirectory() + "websockets-client-\(UUID().uuidString)"
        try Data(script.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let output = try await PostgresServer.shell("\(interpreter) \(path) \(port)")
        let last = output.split(separator: "\n").last.map(String.init) ?? ""
        guard let json = try? JSON(parsing: Array(last.utf8)) else {
            throw TestWebSocket.Failure(description: "\(interpreter): \(output)")
        }
        return json
    }

    /// Python's `websockets` (10.4 on Debian 12): connects with its default offer, authenticates, gets a long echo
    /// and its own broadcast back.
    static let pythonClient = """
        import asyncio, json, sys, websockets
        async def main(port):
            text = "python compresses this line. " * 40
            async with websockets.connect(
                f"ws://127.0.0.1:{port}/WebSockets", extra_headers={"Cookie": "sid=python"}
            ) as ws:
                async def expect(action):
                    # Other clients' broadcasts may come between a request and its answer.
                    while True:
                        message = json.loads(await ws.recv())
                        if message[0] == action:
                            return message
                result = {"extensions": ws.response_headers.get("Sec-WebSocket-Extensions"),
                          "negotiated": [e.name for e in ws.extensions]}
                await ws.send(json.dumps(["Client/authentication", None]))
                result["auth"] = await expect("Client/authentication")
                await ws.send(json.dumps(["echo", text]))
                result["echo"] = (await expect("echo")) == ["echo", text]
                await ws.send(json.dumps(["broadcast", "python " + text]))
                while (await expect("news")) != ["news", "python " + text]:
                    pass
                result["broadcast"] = True
            print(json.dumps(result))
        asyncio.run(main(int(sys.argv[1])))
        """

    /// Node's `ws` (8.11 on Debian 12), the library under Socket.IO: the same steps with its default offer.
    static let nodeClient = """
        const WebSocket = require('ws');
        const port = process.argv[2];
        const text = 'node compresses this line. '.repeat(40);
        const ws = new WebSocket(`ws://127.0.0.1:${port}/WebSockets`, { headers: { Cookie: 'sid=node' } });
        const result = {};
        let step = 0;
        ws.on('upgrade', (response) => { result.extensions = response.headers['sec-websocket-extensions']; });
        ws.on('open', () => {
          result.negotiated = ws.extensions;
          ws.send(JSON.stringify(['Client/authentication', null]));
        });
        ws.on('message', (data) => {
          const message = JSON.parse(data.toString());
          // Other clients' broadcasts may come between a request and its answer.
          if (message[0] === 'news' && message[1] !== 'node ' + text) return;
          if (step === 0) {
            result.auth = message; step = 1;
            ws.send(JSON.stringify(['echo', text]));
          } else if (step === 1) {
            result.echo = message[0] === 'echo' && message[1] === text; step = 2;
            ws.send(JSON.stringify(['broadcast', 'node ' + text]));
          } else if (message[0] === 'news' && message[1] === 'node ' + text) {
            result.broadcast = true;
            console.log(JSON.stringify(result));
            ws.close();
          }
        });
        ws.on('error', (error) => { console.log(JSON.stringify({ error: String(error) })); process.exit(1); });
        """

    @Test func nodeAndPythonClientsNegotiateItAndAPlainClientGetsTheSameSends() async throws {
        let harness = try await echoingServer()
        try await withTeardown({ await harness.stop() }) {
            let plain = try await harness.connect("alice")
            async let python = run("/usr/bin/python3", Self.pythonClient, port: harness.port)
            async let node = run("NODE_PATH=/usr/share/nodejs node", Self.nodeClient, port: harness.port)
            let results = try await [python, node]
            for result in results {
                #expect(
                    result["extensions"]
                        == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
                        || result["extensions"]?.stringValue?.hasPrefix(
                            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits="
                        ) == true, "\(result)")
                #expect(result["auth"] == ["Client/authentication", "ok"], "\(result)")
                #expect(result["echo"] == true && result["broadcast"] == true, "\(result)")
            }
            #expect(results[0]["negotiated"] == ["permessage-deflate"])
            #expect(results[1]["negotiated"] == "permessage-deflate")
            // Both clients compressed what they sent (the inflated side is the larger), and the server compressed
            // its echoes and broadcasts.
            #expect(Self.counter(harness.server, Self.inUncompressed) > Self.counter(harness.server, Self.inCompressed))
            #expect(Self.counter(harness.server, Self.inCompressed) > 0)
            #expect(
                Self.counter(harness.server, Self.outUncompressed) > 4
                    * Self.counter(harness.server, Self.outCompressed))
            // The client without the extension got both broadcasts, plain.
            var news: [String] = []
            while news.count < 2 {
                let message = try await plain.nextMessage()
                if message.action == "news" { news.append(message.details.stringValue ?? "") }
            }
            #expect(Set(news.map { String($0.prefix(5)) }) == ["pytho", "node "])
        }
    }

    /// A send is compressed once, whatever the number of recipients that take it compressed: the counter of bytes
    /// compressed grows by the message once.
    @Test func aBroadcastIsCompressedOnceForAllItsRecipients() async throws {
        let harness = try await echoingServer()
        try await withTeardown({ await harness.stop() }) {
            var tabs: [RawDeflateClient] = []
            for _ in 0..<5 { tabs.append(try await RawDeflateClient.connect(port: harness.port, sid: "alice")) }
            defer { for tab in tabs { tab.close() } }
            for tab in tabs { #expect(try await tab.nextText() == #"["Client/authentication","ok"]"#) }
            let before = Self.counter(harness.server, Self.outUncompressed)
            let details = JSON.string(String(repeating: "the same words again ", count: 20))
            #expect(harness.server.sendToClients("news", details, .all) == 5)
            let encoded = Message(action: "news", details: details).encoded()
            for tab in tabs {
                let (text, compressed) = try await tab.nextFrame()
                #expect(compressed && text == String(decoding: encoded, as: UTF8.self))
            }
            #expect(Self.counter(harness.server, Self.outUncompressed) - before == encoded.count)
        }
    }

    /// A 1 KB frame that inflates to 1 MB closes its connection with 1009, bad deflate data with 1007, RSV1 on a
    /// control frame with 1002; the other tabs keep working, and the closes are counted.
    @Test func bombsAndBadDataCloseOnlyTheirConnection() async throws {
        let harness = try await echoingServer()
        try await withTeardown({ await harness.stop() }) {
            let bystander = try await RawDeflateClient.connect(port: harness.port, sid: "bob")
            defer { bystander.close() }
            #expect(try await bystander.nextText() == #"["Client/authentication","ok"]"#)
            let bomb = Array(
                PermessageDeflate.compress(ByteBuffer(repeating: UInt8(ascii: " "), count: 1 << 20), level: 9)
                    .readableBytesView)
            #expect(bomb.count < 2_000)
            for (frame, code) in [
                (HardeningTests.frame(0x41, bomb), UInt16(1009)), (HardeningTests.frame(0x41, [0xFF, 0xFF]), 1007),
                (HardeningTests.frame(0x49, [1]), 1002),
            ] {
                let attacker = try await RawDeflateClient.connect(port: harness.port, sid: "alice")
                defer { attacker.close() }
                #expect(try await attacker.nextText() == #"["Client/authentication","ok"]"#)
                try attacker.send(frame)
                #expect(try await attacker.closeCode() == code)
            }
            try bystander.send(RawDeflateClient.compressedText(#"["echo","still here, still here"]"#))
            #expect(try await bystander.nextText() == #"["echo","still here, still here"]"#)
            #expect(Self.counter(harness.server, #"websockets_closed_total{reason="too_large"}"#) == 1)
            #expect(Self.counter(harness.server, #"websockets_closed_total{reason="malformed"}"#) == 1)
            #expect(Self.counter(harness.server, #"websockets_closed_total{reason="protocol"}"#) == 1)
        }
    }

    /// With `compression` off, the offer is declined (no header), and RSV1 is a protocol error.
    @Test func turnedOffTheOfferIsDeclined() async throws {
        let harness = try await echoingServer { $0.compression = false }
        try await withTeardown({ await harness.stop() }) {
            let tab = try await RawDeflateClient.connect(port: harness.port, sid: "alice", expectExtension: false)
            defer { tab.close() }
            #expect(try await tab.nextText() == #"["Client/authentication","ok"]"#)
            try tab.send(RawDeflateClient.compressedText(#"["echo",1]"#))
            #expect(try await tab.closeCode() == 1002)
        }
    }
}
