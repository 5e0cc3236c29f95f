/// How the ingest edge behaves. Every default is the documented contract (README, docs/ingest.md).
public struct IngestConfiguration: Sendable {
    /// The address to listen on. Default: `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// The TCP port. `0` picks a free port (the bound port is logged). Default: `8080`.
    public var port: Int = 8080
    /// The largest request body accepted, measured on the wire and again after gzip decoding.
    /// Default: 5 MiB.
    public var maxBodyBytes: Int = 5 * 1024 * 1024
    /// The largest single event, in bytes of JSON. Default: 32 KiB.
    public var maxEventBytes: Int = 32 * 1024
    /// The most events one request may carry. Default: 1,000.
    public var maxEventsPerRequest: Int = 1000
    /// Write keys. When not empty, `POST /v1/events` needs one of them, either as
    /// `Authorization: Bearer <key>` or as the query parameter `write_key=<key>` (for
    /// `navigator.sendBeacon`, which cannot set headers). Default: empty (no key needed).
    public var writeKeys: Set<String> = []
    /// Origins allowed by CORS. `["*"]` allows every origin. Default: `["*"]`.
    public var corsAllowedOrigins: [String] = ["*"]
    /// A request must arrive whole (head and body) within this time after its first byte, or the
    /// connection is closed: slow clients cannot hold connections open. Default: 30 s.
    public var requestTimeout: Duration = .seconds(30)
    /// An idle keep-alive connection is closed after this time. Default: 75 s.
    public var idleTimeout: Duration = .seconds(75)
    /// The most events per second over all clients, accepted and rejected alike; excess requests get 429 with
    /// `Retry-After`. `nil` means no limit. Default: `nil`.
    public var rateLimitEventsPerSecond: Double? = nil
    /// The most request bytes being decoded or waiting for the log at once; past it requests get
    /// 503 with `Retry-After` (back-pressure). Default: 256 MiB.
    public var maxInFlightBytes: Int = 256 * 1024 * 1024
    /// The `Retry-After` value sent with 429 and 503 answers, in seconds. Default: 1.
    public var retryAfterSeconds: Int = 1
    /// Event-loop threads. Default: the number of cores.
    public var eventLoopThreads: Int = System.coreCount
    /// The most connections open at once; past it the server stops accepting until one closes (new
    /// clients wait in the listen queue). `nil`: three quarters of the file descriptors left under
    /// the open-files limit when the server binds, which keeps a quarter (at least 128, or half
    /// when fewer than 256 are left) for the log, the lake and the runtime:
    /// a process out of descriptors fails its log and lake I/O, and libdispatch stops it with
    /// SIGILL when it cannot read `/proc` (a probe with 20,000 idle connections). Default: `nil`.
    public var maxConnections: Int? = nil
    /// How long a graceful shutdown waits for requests in flight. Default: 30 s.
    public var shutdownGracePeriod: Duration = .seconds(30)
    /// The `event_source` values counted under their own label in
    /// `playhead_events_accepted_total` (`--event-source`). Default: the built-in ones.
    public var eventSources = EventSourceLabels.standard

    public init() {}

    /// ``maxConnections``, or its default for an open-files limit of `openFiles` (nil: unknown or
    /// unlimited, which leaves the count unlimited too).
    /// `inUse`: the descriptors the process holds already when the server binds (each event loop
    /// holds three, the log its segments). They are not the connections' to take: counted from the
    /// limit alone, 64 event loops under a limit of 256 left 44 descriptors where 128 connections
    /// were allowed, and the log could not start a segment (a probe, 2026-12-04).
    public func connectionLimit(openFiles: UInt64?, inUse: Int = 0) -> Int? {
        if let maxConnections { return maxConnections }
        guard let openFiles, openFiles < UInt64(Int.max / 2) else { return nil }
        let available = max(0, Int(openFiles) - inUse)
        // A quarter kept back for the log, the lake and the runtime: at least 128, or half of what
        // is left when that is less.
        let reserve = max(available / 4, min(128, available / 2))
        return max(1, available - reserve)
    }

    /// How many file descriptors the process has open (nil if `/proc/self/fd` cannot be read).
    public static func openFilesInUse() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = -1  // the descriptor of the listing itself
        while let entry = readdir(directory) {
            let name = entry.pointee.d_name.0
            if name != UInt8(ascii: ".") { count += 1 }
        }
        return max(0, count)
    }

    /// The process's soft limit on open files (nil if it cannot be read or is unlimited).
    public static func openFilesLimit() -> UInt64? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        return UInt64(limit.rlim_cur)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import PlayheadEvents
