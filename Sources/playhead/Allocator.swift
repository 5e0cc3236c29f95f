import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
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

/// The process's limit on open files, raised first thing in a long-running service.
enum OpenFiles {
    /// Raises the soft limit on open files to the hard one (as Go's runtime and nginx's
    /// `worker_rlimit_nofile` do): every connection is a file, and the usual soft limit of 1,024
    /// is reached by about a thousand clients, where the hard limit is often 524,288. The soft
    /// limit stays as it is if the hard one is lower or cannot be read. Returns the limit in force.
    @discardableResult
    static func raiseSoftLimit() -> UInt64? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { return UInt64(raised.rlim_cur) }
        }
        return UInt64(limit.rlim_cur)
    }

    /// Raises the limit (``raiseSoftLimit()``) and refuses one too low for `threads` event loops
    /// (three descriptors each, which SwiftNIO cannot do without: it stopped the process with
    /// SIGILL and "eventfd/timerfd_create: Too many open files", a probe at 12-20 descriptors),
    /// the log and the lake, and a few connections.
    static func require(threads: Int, command: String) throws {
        guard let limit = raiseSoftLimit() else { return }
        let needed = UInt64(48 + 3 * threads)
        if limit < needed {
            throw StartFailure(
                "the open-files limit is \(limit) (ulimit -n, systemd LimitNOFILE, or the container's); playhead \(command) needs at least \(needed) for its \(threads) event-loop threads (3 each), its files (the log's, and the lake's where it writes one) and a few connections: raise it, or lower --threads"
            )
        }
    }
}
