import BenchZlib
import Dispatch
import Foundation
import NIOCore
import NIOPosix

/// A benchmark client: upgrades to a WebSocket at `path` with a cookie, authenticates when the peer wants it,
/// answers pings, records timestamped messages, and in echo mode sends the next echo when one comes back.
enum Subscriber {
    /// How a client becomes ready and speaks.
    enum Dialect: Sendable {
        /// `["Client/authentication", null]`, ready at the answer (ours, the `ws` hub).
        case webSockets
        /// Ready at the upgrade (Nchan).
        case plain
        /// Engine.IO 4: the server opens with `0{...}`, the client joins the namespace with `40` and is ready at
        /// the server's `40{...}`; events are `42[...]`; the server's ping `2` is answered with `3`.
        case socketIO
    }

    /// One event loop for all clients: the generator is pinned to one core.
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// Connects from `localAddress`, or from the kernel's choice when `nil`. A connect without a bind takes a port
    /// free for this one destination (about 28,000 of them); an explicit bind to port 0 must find a port free for
    /// every destination, a search that grows slow with thousands of sockets, so it is kept for connections past
    /// what one address holds.
    ///
    /// The client speaks the protocol on the bytes (``Reader``): with NIO's HTTP and WebSocket codecs, the one
    /// generator core saturated at about 600,000 frames/s and measured its own limit instead of the servers'.
    ///
    /// With `compression`, the client offers permessage-deflate as Chromium does (`permessage-deflate;
    /// client_max_window_bits`) and reads compressed frames (``StampCache``).
    static func connect(
        port: Int, path: String, cookie: String, dialect: Dialect, recorder: Recorder, localAddress: String?,
        compression: Bool = false
    ) async throws -> any Channel {
        let upgraded = group.next().makePromise(of: Void.self)
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let request =
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nCookie: \(cookie)\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
            + (compression ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "") + "\r\n"
        // Reusable addresses: a previous run's closed connections linger in TIME_WAIT on the same source ports.
        var bootstrap = ClientBootstrap(group: group).channelOption(.socketOption(.so_reuseaddr), value: 1)
        if let localAddress { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: localAddress, port: 0)) }
        let channel =
            try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        Reader(recorder: recorder, dialect: dialect, request: request, upgraded: upgraded))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        // A peer that never answers the upgrade must fail the run, not hang it.
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(20)) {
            upgraded.fail(BenchmarkError("no upgrade within 20 s"))
            channel.close(promise: nil)
        }
        defer { timeout.cancel() }
        try await upgraded.futureResult.get()
        if dialect == .webSockets {
            try await send(#"["Client/authentication",null]"#, on: channel)
        }
        return channel
    }

    /// Sends a text frame, masked as a browser's.
    static func send(_ text: String, on channel: any Channel) async throws {
        try await channel.writeAndFlush(maskedFrame(opcode: 0x1, Array(text.utf8))).get()
    }

    /// A client's frame: final, masked.
    static func maskedFrame(opcode: UInt8, _ payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(0x80 | opcode)
        if payload.count < 126 {
            buffer.writeInteger(UInt8(0x80 | payload.count))
        } else {
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(payload.count))
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        buffer.writeBytes(mask)
        buffer.writeBytes(payload.enumerated().map { $0.element ^ mask[$0.offset % 4] })
        return buffer
    }

    /// Puts the client in echo mode: each echo it reads is recorded and answered with the next one.
    static func startEchoing(on channel: any Channel) {
        channel.eventLoop.execute {
            guard let reader = try? channel.pipeline.syncOperations.handler(type: Reader.self) else { return }
            reader.echoing = true
            reader.sendEcho(channel: channel)
        }
    }

    static func stopEchoing(on channel: any Channel) {
        channel.eventLoop.execute {
            (try? channel.pipeline.syncOperations.handler(type: Reader.self))?.echoing = false
        }
    }

    /// Sends the upgrade request, reads the 101 answer, then reads frames straight from the bytes: records the
    /// timestamped ones (the latencies of one read are recorded together), answers pings.
    final class Reader: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let recorder: Recorder
        let dialect: Dialect
        let request: String
        let upgraded: EventLoopPromise<Void>
        var isUpgraded = false
        var ready = false
        var echoing = false
        /// Bytes of a frame (or of the answer's head) that the last read ended in the middle of.
        private var pending = ByteBuffer()
        private var stamps: [UInt64] = []
        /// The bytes on the wire (headers included) of the timestamped frames of the current read.
        private var stampedBytes = 0

        init(recorder: Recorder, dialect: Dialect, request: String, upgraded: EventLoopPromise<Void>) {
            self.recorder = recorder
            self.dialect = dialect
            self.request = request
            self.upgraded = upgraded
            ready = dialect == .plain
        }

        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: request)), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            if pending.readableBytes > 0 {
                pending.writeBuffer(&buffer)
                buffer = pending
                pending = ByteBuffer()
            }
            if !isUpgraded {
                guard let end = buffer.readableBytesView.firstRange(of: [13, 10, 13, 10]) else {
                    pending = buffer
                    return
                }
                let head = buffer.readString(length: end.upperBound - buffer.readerIndex) ?? ""
                guard head.hasPrefix("HTTP/1.1 101") else {
                    upgraded.fail(BenchmarkError("upgrade refused: \(head.prefix(40))"))
                    context.close(promise: nil)
                    return
                }
                isUpgraded = true
                if dialect == .plain { recorder.markReady() }
                upgraded.succeed()
            }
            while let (first, payload, size) = Self.nextFrame(&buffer) {
                switch first & 0x0F {
                case 0x1 where first & 0x40 != 0:
                    // Compressed (RSV1): every subscriber of a broadcast gets the same bytes, inflated once.
                    guard let (text, stamp) = StampCache.shared.lookup(payload) else { break }
                    if let stamp {
                        stamps.append(stamp)
                        stampedBytes += size
                        if echoing { sendEcho(channel: context.channel) }
                    } else {
                        control(text, context: context)
                    }
                case 0x1:
                    if let stamp = payload.withUnsafeReadableBytes({ timestamp(in: $0) }) {
                        stamps.append(stamp)
                        stampedBytes += size
                        if echoing { sendEcho(channel: context.channel) }
                    } else {
                        control(String(buffer: payload), context: context)
                    }
                case 0x9:
                    context.writeAndFlush(
                        wrapOutboundOut(Subscriber.maskedFrame(opcode: 0xA, Array(payload.readableBytesView))),
                        promise: nil)
                default:
                    break
                }
            }
            if buffer.readableBytes > 0 { pending = buffer }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            if !stamps.isEmpty {
                recorder.record(sent: stamps, bytes: stampedBytes)
                stamps.removeAll(keepingCapacity: true)
                stampedBytes = 0
            }
        }

        /// The next whole frame of `buffer` (a server's: unmasked), consumed: its first byte, its payload and its
        /// size on the wire; `nil` when it is not all there.
        private static func nextFrame(_ buffer: inout ByteBuffer) -> (UInt8, ByteBuffer, Int)? {
            let start = buffer.readerIndex
            guard let first = buffer.getInteger(at: start, as: UInt8.self),
                let second = buffer.getInteger(at: start + 1, as: UInt8.self)
            else { return nil }
            var length = Int(second & 0x7F)
            var header = 2
            if length == 126 {
                guard let extended = buffer.getInteger(at: start + 2, as: UInt16.self) else { return nil }
                length = Int(extended)
                header = 4
            } else if length == 127 {
                guard let extended = buffer.getInteger(at: start + 2, as: UInt64.self) else { return nil }
                length = Int(extended)
                header = 10
            }
            guard buffer.readableBytes >= header + length else { return nil }
            buffer.moveReaderIndex(forwardBy: header)
            let payload = buffer.readSlice(length: length)!
            return (first, payload, header + length)
        }

        /// The messages that are not timestamped: authentication, Engine.IO's open, connect and ping.
        private func control(_ text: String, context: ChannelHandlerContext) {
            switch dialect {
            case .webSockets where !ready && text.hasPrefix(#"["Client/authentication""#):
                ready = true
                recorder.markReady()
            case .socketIO where text == "2":
                write("3", channel: context.channel)
            case .socketIO where text.hasPrefix("0{"):
                write("40", channel: context.channel)
            case .socketIO where !ready && text.hasPrefix("40"):
                ready = true
                recorder.markReady()
            default:
                break
            }
        }

        private func write(_ text: String, channel: any Channel) {
            channel.writeAndFlush(Subscriber.maskedFrame(opcode: 0x1, Array(text.utf8)), promise: nil)
        }

        func sendEcho(channel: any Channel) {
            let stamp = DispatchTime.now().uptimeNanoseconds
            write((dialect == .socketIO ? "42" : "") + #"["echo",{"ts":\#(stamp)}]"#, channel: channel)
        }
    }
}

/// The compressed payloads the clients read lately, with their text and timestamp: a broadcast reaches every
/// subscriber as the same bytes, so the generator inflates it once, not once per subscriber (which would measure
/// the generator's zlib rather than the server).
final class StampCache: @unchecked Sendable {
    // @unchecked: used only by the clients' readers, which all run on `Subscriber.group`'s one thread.
    static let shared = StampCache()
    /// Enough for every broadcast of several seconds at the highest rates measured: a smaller cache (32) let readers
    /// that lagged behind miss it, inflate once per subscriber, lag further, and saturated the generator.
    private static let capacity = 16_384
    private var entries: [ByteBuffer: (text: String, stamp: UInt64?)] = [:]
    private var order: [ByteBuffer] = []
    private var evicted = 0
    /// Reused for every inflation (the messages measured are at most a few KiB).
    private var output = [UInt8](repeating: 0, count: 256 << 10)
    /// The last payload found: most frames read one after another are the same broadcast, and comparing bytes costs
    /// less than hashing them (hashing each 1 KB frame made the generator the limit at 2.3 M deliveries/s).
    private var last: (payload: ByteBuffer, text: String, stamp: UInt64?)?

    /// Whether two payloads hold the same bytes, compared with `memcmp` (ByteBuffer's `==` walks them one by one).
    private static func same(_ a: ByteBuffer, _ b: ByteBuffer) -> Bool {
        guard a.readableBytes == b.readableBytes else { return false }
        return a.withUnsafeReadableBytes { x in
            b.withUnsafeReadableBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
        }
    }

    /// The text and timestamp of a compressed payload; `nil` when it does not inflate.
    func lookup(_ payload: ByteBuffer) -> (String, UInt64?)? {
        if let last, Self.same(last.payload, payload) { return (last.text, last.stamp) }
        if let entry = entries[payload] {
            last = (payload, entry.text, entry.stamp)
            return (entry.text, entry.stamp)
        }
        let capacity = output.count
        let written = payload.withUnsafeReadableBytes { input in
            output.withUnsafeMutableBufferPointer { output in
                bench_inflate(
                    input.baseAddress?.assumingMemoryBound(to: UInt8.self), input.count, output.baseAddress, capacity)
            }
        }
        guard written >= 0 else { return nil }
        let bytes = output[..<written]
        let stamp = bytes.withUnsafeBytes { timestamp(in: $0) }
        let text = String(decoding: bytes, as: UTF8.self)
        let key = ByteBuffer(bytes: payload.readableBytesView)
        if order.count - evicted >= Self.capacity {
            entries[order[evicted]] = nil
            evicted += 1
            if evicted > Self.capacity {
                order.removeFirst(evicted)
                evicted = 0
            }
        }
        entries[key] = (text, stamp)
        order.append(key)
        last = (key, text, stamp)
        return (text, stamp)
    }
}
