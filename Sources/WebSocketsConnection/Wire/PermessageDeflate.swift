import CZlib
import NIOCore

/// One message compressed or inflated as permessage-deflate carries it (RFC 7692 section 7.2), with no context kept
/// between messages: each call makes its zlib stream and ends it, so nothing is held while a connection is idle.
package enum PermessageDeflate {
    /// Why a compressed message was refused.
    package enum InflateError: Error, Equatable {
        /// It inflates to more than the limit (closed 1009): found after at most the limit plus one chunk of output.
        case tooLarge
        /// Its bytes are not deflate data (closed 1007).
        case malformed
    }

    /// The four bytes a sender removes from the end of each compressed message, and the receiver appends (an empty
    /// stored block: the end of a sync flush).
    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]
    /// How much output is made per step.
    private static let chunk = 16 * 1024

    /// The smallest window (9 to 15 bits) that a message of `length` bytes compresses in as well as in the
    /// largest: zlib reaches back at most the window less 262 bytes, and within one message no further than its
    /// length. A reader whose window is at least this many bits can inflate it.
    package static func windowBits(forLength length: Int) -> Int {
        var bits = 9
        while bits < 15 && (1 << bits) - 262 < length { bits += 1 }
        return bits
    }

    /// `payload` compressed at `level` (0 to 9) with a window of 2^`windowBits` bytes, the sync flush's tail removed.
    ///
    /// The hash table is sized to the window (zlib's `memLevel` 8 at 15 bits, 2 at 9): the stream is made per
    /// message, and zlib clears its hash table when it makes one, 64 KiB at `memLevel` 8, which a 100-byte message
    /// does not need.
    package static func compress(_ payload: ByteBuffer, level: Int = 6, windowBits: Int = 15) -> ByteBuffer {
        var stream = z_stream()
        let memory = Int32(min(8, max(1, windowBits - 7)))
        guard czlib_deflate_init(&stream, Int32(level), Int32(windowBits), memory) == Z_OK else {
            preconditionFailure("deflateInit2 failed: out of memory")
        }
        defer { deflateEnd(&stream) }
        var output = ByteBuffer()
        var input = payload
        input.withUnsafeMutableReadableBytes { source in
            stream.next_in = source.baseAddress?.assumingMemoryBound(to: Bytef.self)
            stream.avail_in = uInt(source.count)
            repeat {
                output.writeWithUnsafeMutableBytes(
                    minimumWritableBytes: max(64, Int(deflateBound(&stream, uLong(stream.avail_in))))
                ) {
                    target in
                    stream.next_out = target.baseAddress?.assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(target.count)
                    deflate(&stream, Z_SYNC_FLUSH)
                    return target.count - Int(stream.avail_out)
                }
            } while stream.avail_out == 0 || stream.avail_in > 0
        }
        // A sync flush ends with 00 00 FF FF; the message carries what comes before.
        if output.readableBytes >= 4, output.getBytes(at: output.writerIndex - 4, length: 4) == tail {
            output.moveWriterIndex(to: output.writerIndex - 4)
        }
        return output
    }

    /// `payload` (a compressed message's joined frames) inflated, refused once the output passes `limit` bytes.
    package static func decompress(_ payload: ByteBuffer, limit: Int) throws(InflateError) -> ByteBuffer {
        var stream = z_stream()
        guard czlib_inflate_init(&stream) == Z_OK else { preconditionFailure("inflateInit2 failed: out of memory") }
        defer { inflateEnd(&stream) }
        var input = payload
        input.writeBytes(tail)
        var output = ByteBuffer()
        var failure: InflateError?
        input.withUnsafeMutableReadableBytes { source in
            stream.next_in = source.baseAddress?.assumingMemoryBound(to: Bytef.self)
            stream.avail_in = uInt(source.count)
            while true {
                // At most one byte past the limit is asked for: enough to know the message is over it.
                let room = min(chunk, limit + 1 - output.readableBytes)
                var status: Int32 = Z_OK
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { target in
                    stream.next_out = target.baseAddress?.assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(room)
                    status = inflate(&stream, Z_SYNC_FLUSH)
                    return room - Int(stream.avail_out)
                }
                if output.readableBytes > limit {
                    failure = .tooLarge
                    return
                }
                switch status {
                case Z_STREAM_END:
                    // A final block ends the message (a sender may use one); what follows it is ignored.
                    return
                case Z_OK, Z_BUF_ERROR:
                    // Done once the input is taken and the output was not filled (nothing is left inside zlib);
                    // Z_BUF_ERROR with room left means the data cannot go on.
                    if stream.avail_out > 0 {
                        if stream.avail_in > 0, status == Z_BUF_ERROR { failure = .malformed }
                        if stream.avail_in == 0 || failure != nil { return }
                    }
                default:
                    failure = .malformed
                    return
                }
            }
        }
        if let failure { throw failure }
        return output
    }
}
