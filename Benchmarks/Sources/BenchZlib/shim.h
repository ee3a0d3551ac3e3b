#ifndef BENCH_ZLIB_SHIM_H
#define BENCH_ZLIB_SHIM_H
/* zlib for the load generator's clients that negotiate permessage-deflate: a raw inflate stream per message. */
#include <zlib.h>
#include <string.h>

/* Inflates `length` bytes of a permessage-deflate message (the 00 00 FF FF tail appended here) into `output`;
   returns the bytes written, or -1. */
static inline long bench_inflate(const unsigned char *input, long length, unsigned char *output, long capacity) {
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    if (inflateInit2(&stream, -15) != Z_OK) return -1;
    static const unsigned char tail[4] = {0x00, 0x00, 0xFF, 0xFF};
    stream.next_out = output;
    stream.avail_out = (uInt) capacity;
    stream.next_in = (Bytef *) input;
    stream.avail_in = (uInt) length;
    int status = inflate(&stream, Z_SYNC_FLUSH);
    if (status == Z_OK || status == Z_BUF_ERROR) {
        stream.next_in = (Bytef *) tail;
        stream.avail_in = 4;
        status = inflate(&stream, Z_SYNC_FLUSH);
    }
    long written = capacity - (long) stream.avail_out;
    inflateEnd(&stream);
    return (status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR) ? written : -1;
}
#endif
