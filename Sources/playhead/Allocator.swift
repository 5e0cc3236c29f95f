import CPlayhead

/// glibc's allocator settings, applied first thing in a command (before its threads allocate).
enum Allocator {
    /// Long-running services: at most two malloc arenas. By default glibc gives threads their own
    /// arenas (up to eight per core); memory freed in one arena is not reused by a thread of
    /// another, so the event loops, the thread pools and the encoder's workers each keep their own
    /// high-water mark. Measured with `scripts/bench-lake` (the `serve` part): peak resident memory
    /// 1,020–1,058 MiB with the default, 752–787 MiB with two arenas, throughput unchanged.
    static func configureForService() {
        mallopt(M_ARENA_MAX, 2)
    }

    /// A batch job that allocates and frees buffers of megabytes all the time (`import`): one
    /// arena, so that a buffer freed by the thread that encoded it is reused by the one decoding
    /// next, and freed memory kept for reuse instead of going back to the kernel to be faulted in
    /// again (that was about a tenth of the import's CPU). The process ends when the import does.
    static func configureForBatch() {
        mallopt(M_ARENA_MAX, 1)
        mallopt(M_MMAP_THRESHOLD, 256 << 20)
        mallopt(M_TRIM_THRESHOLD, 1 << 30)
    }
}
