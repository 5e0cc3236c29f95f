#ifndef PLAYHEAD_CPLAYHEAD_SHIM_H
#define PLAYHEAD_CPLAYHEAD_SHIM_H
// What Swift does not expose of glibc and the compiler.

// glibc's allocator tuning (mallopt), which Glibc's Swift module does not include.
#include <malloc.h>

#if defined(__linux__)
#include <sys/prctl.h>
#endif

// Names the calling thread (at most 15 bytes are kept) for top -H, perf and /proc/<pid>/task/*/comm.
static inline void playhead_name_thread(const char *name) {
#if defined(__linux__)
    prctl(PR_SET_NAME, name, 0, 0, 0);
#else
    (void)name;
#endif
}

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

// JSON string scanning: the index of the first byte of p[0..<16] that is a quote, a backslash, a
// control character (< 0x20) or not ASCII (>= 0x80), or 16 when there is none. Reads exactly 16
// bytes. SSE2 is part of x86-64; elsewhere a byte loop.
#if defined(__SSE2__)
#include <emmintrin.h>
static inline int playhead_json_special16(const unsigned char *p) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
    __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    // Signed compare: bytes >= 0x80 are negative, so this flags them along with 0x00-0x1F.
    __m128i low = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
    int mask = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), low));
    return mask ? __builtin_ctz((unsigned)mask) : 16;
}
#else
static inline int playhead_json_special16(const unsigned char *p) {
    for (int i = 0; i < 16; i++) {
        unsigned char b = p[i];
        if (b == '"' || b == '\\' || b < 0x20 || b >= 0x80) return i;
    }
    return 16;
}
#endif

#endif
