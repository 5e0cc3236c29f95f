#ifndef PLAYHEAD_CPLAYHEAD_SHIM_H
#define PLAYHEAD_CPLAYHEAD_SHIM_H
// What Swift does not expose of glibc and the compiler.

// glibc's allocator tuning (mallopt), which Glibc's Swift module does not include.
#include <malloc.h>

// Asks the CPU to start loading the cache line at `address` (a hint: never faults).
static inline void playhead_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}
#endif
