#ifndef WEBSOCKETS_CZLIB_SHIM_H
#define WEBSOCKETS_CZLIB_SHIM_H
/* zlib for permessage-deflate (RFC 7692): raw deflate streams (no zlib header), made with the init macros Swift
   cannot call. */
#include <zlib.h>

/* A raw deflate stream at `level` with a window of 2^`bits` bytes (9 to 15) and `memory` (1 to 9) for its hash. */
static inline int czlib_deflate_init(z_stream *stream, int level, int bits, int memory) {
    return deflateInit2(stream, level, Z_DEFLATED, -bits, memory, Z_DEFAULT_STRATEGY);
}

/* A raw inflate stream that accepts any window up to 2^15 bytes. */
static inline int czlib_inflate_init(z_stream *stream) {
    return inflateInit2(stream, -15);
}
#endif
