#ifndef PLAYHEAD_CZSTD_SHIM_H
#define PLAYHEAD_CZSTD_SHIM_H
#include <zstd.h>
#endif
