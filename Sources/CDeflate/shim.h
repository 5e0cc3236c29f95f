#ifndef PLAYHEAD_CDEFLATE_SHIM_H
#define PLAYHEAD_CDEFLATE_SHIM_H
// libdeflate: whole-buffer DEFLATE, zlib and gzip; about 1.7 times zlib's speed at decoding the
// edge's gzip bodies (docs/performance.md, "An eleventh round").
#include <libdeflate.h>
#endif
