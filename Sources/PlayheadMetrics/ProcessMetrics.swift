import CoreMetrics
import Dispatch
import Metrics
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Figures about the running process, read from `/proc/self` (Linux; zero elsewhere).
public struct ProcessStats: Sendable, Equatable {
    /// Resident set size in bytes (`/proc/self/statm`, field 2, times the page size).
    public var residentMemoryBytes: Int64
    /// Open file descriptors (entries of `/proc/self/fd`).
    public var openFileDescriptors: Int
    /// User plus system CPU time in seconds (`/proc/self/stat`, fields 14 and 15).
    public var cpuSeconds: Double

    public init(residentMemoryBytes: Int64, openFileDescriptors: Int, cpuSeconds: Double) {
        self.residentMemoryBytes = residentMemoryBytes
        self.openFileDescriptors = openFileDescriptors
        self.cpuSeconds = cpuSeconds
    }

    /// Reads the current figures. Blocking file reads of procfs (fast, no disk): call it off the
    /// cooperative pool (``ProcessMetricsService`` does).
    public static func read() -> ProcessStats {
        var stats = ProcessStats(residentMemoryBytes: 0, openFileDescriptors: 0, cpuSeconds: 0)
        #if os(Linux)
        let pageSize = Int64(sysconf(Int32(_SC_PAGESIZE)))
        if let statm = readSmallFile("/proc/self/statm") {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = Int64(fields[1]) { stats.residentMemoryBytes = pages * pageSize }
        }
        if let stat = readSmallFile("/proc/self/stat"), let close = stat.lastIndex(of: ")") {
            // Fields after "(comm)": state is field 3, so utime (14) and stime (15) are at 11 and 12.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
            if fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]), ticks > 0 {
                stats.cpuSeconds = (user + system) / ticks
            }
        }
        if let directory = opendir("/proc/self/fd") {
            var count = 0
            while let entry = readdir(directory) {
                if entry.pointee.d_name.0 != 46 { count += 1 }  // skip "." and ".."
            }
            closedir(directory)
            stats.openFileDescriptors = max(0, count - 1)  // minus the descriptor opendir holds
        }
        #endif
        return stats
    }

    /// When the process started, in seconds since the Unix epoch: the boot time (`/proc/stat`,
    /// `btime`) plus the process's start in clock ticks after boot (`/proc/self/stat`, field 22).
    /// Nil where procfs cannot tell.
    public static func startTimeSeconds() -> Double? {
        #if os(Linux)
        guard let stat = readSmallFile("/proc/self/stat"), let close = stat.lastIndex(of: ")"),
            let system = readSmallFile("/proc/stat"),
            let bootLine = system.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let boot = Double(bootLine.dropFirst("btime ".count))
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard fields.count > 19, let start = Double(fields[19]), ticks > 0 else { return nil }
        return boot + start / ticks
        #else
        return nil
        #endif
    }

    /// The whole content of a small file (procfs reports size 0, so read until EOF).
    static func readSmallFile(_ path: String) -> String? {
        #if os(Linux)
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { _ = close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
        #else
        return nil
        #endif
    }
}

/// Publishes `playhead_process_resident_memory_bytes`, `playhead_process_open_fds` and
/// `playhead_process_cpu_seconds_total` every `interval`, and `playhead_process_start_time_seconds`
/// once (a restart shows as its change, where a counter that restarts above its last scraped value
/// hides the reset from `rate()`). The procfs reads run on a dispatch queue,
/// never on the Swift cooperative pool.
public struct ProcessMetricsService: Service {
    let interval: Duration
    let factory: (any MetricsFactory)?

    /// - Parameters:
    ///   - interval: how often to read `/proc/self`.
    ///   - factory: the metrics factory; `nil` uses the one bootstrapped in `MetricsSystem`.
    public init(interval: Duration = .seconds(5), factory: (any MetricsFactory)? = nil) {
        self.interval = interval
        self.factory = factory
    }

    private static let queue = DispatchQueue(label: "playhead.process-metrics")

    /// Reads `/proc/self` once, off the cooperative pool.
    public static func readStats() async -> ProcessStats {
        await offPool(ProcessStats.read)
    }

    /// `read` (blocking procfs reads) on the service's dispatch queue.
    static func offPool<T: Sendable>(_ read: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: read()) }
        }
    }

    public func run() async throws {
        let rss: Gauge
        let fds: Gauge
        let cpu: FloatingPointCounter
        let started: Gauge
        if let factory {
            started = Gauge(label: "playhead_process_start_time_seconds", dimensions: [], factory: factory)
            rss = Gauge(label: "playhead_process_resident_memory_bytes", dimensions: [], factory: factory)
            fds = Gauge(label: "playhead_process_open_fds", dimensions: [], factory: factory)
            cpu = FloatingPointCounter(label: "playhead_process_cpu_seconds_total", dimensions: [], factory: factory)
        } else {
            rss = Gauge(label: "playhead_process_resident_memory_bytes")
            fds = Gauge(label: "playhead_process_open_fds")
            cpu = FloatingPointCounter(label: "playhead_process_cpu_seconds_total")
            started = Gauge(label: "playhead_process_start_time_seconds")
        }
        if let start = await Self.offPool(ProcessStats.startTimeSeconds) {
            started.record(start)
        }
        let interval = self.interval
        // Stops at cancellation or graceful shutdown (which also interrupts the sleep).
        try? await cancelWhenGracefulShutdown {
            var lastCPU = 0.0
            while !Task.isCancelled {
                let stats = await Self.readStats()
                rss.record(stats.residentMemoryBytes)
                fds.record(stats.openFileDescriptors)
                if stats.cpuSeconds > lastCPU {
                    cpu.increment(by: stats.cpuSeconds - lastCPU)
                    lastCPU = stats.cpuSeconds
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}
