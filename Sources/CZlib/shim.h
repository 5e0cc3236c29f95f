#ifndef PLAYHEAD_CZLIB_SHIM_H
#define PLAYHEAD_CZLIB_SHIM_H
#include <zlib.h>

/// inflateInit2 is a macro (it passes the library's version and the stream's size): a function
/// Swift can call. 15 + 16: a 32 KiB window and a gzip header and trailer (RFC 1952), not zlib's.
static inline int playhead_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, 15 + 16);
}
#endif
