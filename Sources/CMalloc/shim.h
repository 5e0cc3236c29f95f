#ifndef PLAYHEAD_CMALLOC_SHIM_H
#define PLAYHEAD_CMALLOC_SHIM_H
// glibc's allocator tuning (mallopt), which Glibc's Swift module does not include.
#include <malloc.h>
#endif
