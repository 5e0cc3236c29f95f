#ifndef PLAYHEAD_CPLAYHEAD_SHIM_H
#define PLAYHEAD_CPLAYHEAD_SHIM_H
// What Swift does not expose of glibc and the compiler.

// glibc's allocator tuning (mallopt), which Glibc's Swift module does not include.
#include <malloc.h>

// Asks the CPU to start loading the cache line at `address` (a hint: never faults).
static inline void playhead_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#include <stddef.h>
#include <stdint.h>
#include <string.h>

// CRC-32C (Castagnoli) with the CPU's instruction where there is one (x86-64 SSE4.2), on the
// inverted register: `crc` in and out as in the usual table loop (~previous ... ~result).
#if defined(__x86_64__)
static inline int playhead_crc32c_hardware(void) {
    return __builtin_cpu_supports("sse4.2");
}

__attribute__((target("sse4.2")))
static inline uint32_t playhead_crc32c_update(uint32_t crc, const void *data, size_t count) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t c = crc;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        count -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (count > 0) {
        c32 = __builtin_ia32_crc32qi(c32, *p);
        p += 1;
        count -= 1;
    }
    return c32;
}
#else
static inline int playhead_crc32c_hardware(void) { return 0; }
static inline uint32_t playhead_crc32c_update(uint32_t crc, const void *data, size_t count) {
    (void)data; (void)count; return crc;
}
#endif

#endif
