import Dispatch
import Prometheus
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The figures behind the live page (`GET /` and `GET /live.json`): a time series sampled from the
/// metrics registry once a second, plus the content KPIs. See docs/live-page.md.
public final class LiveStats: Sendable {
    /// One sample. `nil` means "not known" (no such metric in this process, or no data yet).
    public struct Point: Sendable, Equatable {
        public var time: Double
        public var eventsPerSecond: Double?
        public var rejectedPerSecond: Double?
        public var requestsPerSecond: Double?
        public var p50LatencyMs: Double?
        public var p99LatencyMs: Double?
        public var logAppendP99Ms: Double?
        public var consumerLag: Double?
        public var lakeRowsPerSecond: Double?
        public var lakeLastFlushAgeSeconds: Double?
        public var rssBytes: Double?
        public var concurrentViewers: Double?
        public var activeSessions: Double?

        public init(time: Double) { self.time = time }

        static let fields: [(name: String, value: @Sendable (Point) -> Double?)] = [
            ("events_per_second", { $0.eventsPerSecond }),
            ("rejected_per_second", { $0.rejectedPerSecond }),
            ("requests_per_second", { $0.requestsPerSecond }),
            ("p50_latency_ms", { $0.p50LatencyMs }),
            ("p99_latency_ms", { $0.p99LatencyMs }),
            ("log_append_p99_ms", { $0.logAppendP99Ms }),
            ("consumer_lag", { $0.consumerLag }),
            ("lake_rows_per_second", { $0.lakeRowsPerSecond }),
            ("lake_last_flush_age_seconds", { $0.lakeLastFlushAgeSeconds }),
            ("rss_bytes", { $0.rssBytes }),
            ("concurrent_viewers", { $0.concurrentViewers }),
            ("active_sessions", { $0.activeSessions }),
        ]
    }

    typealias Buckets = [(upperBound: Double, count: Double)]

    struct Counters {
        var time: Double
        var accepted: Double?
        var rejected: Double?
        var requests: Double?
        var lakeRows: Double?
        var requestBuckets: Buckets
        var appendBuckets: Buckets
    }

    struct State {
        var points: [Point] = []
        /// The registry's cumulative figures at the last few samples (for rates and quantiles).
        var history: [Counters] = []
        var lagByConsumer: [String: Double] = [:]
        var content: ContentSnapshot?
    }

    let registry: PrometheusCollectorRegistry
    let aggregator: ContentAggregator?
    public let capacity: Int
    /// Latency quantiles are over the last `quantileWindow` samples (5 s at one sample a second).
    let quantileWindow = 5
    private let state = Mutex(State())

    public init(registry: PrometheusCollectorRegistry, aggregator: ContentAggregator?, capacity: Int = 600) {
        self.registry = registry
        self.aggregator = aggregator
        self.capacity = Swift.max(2, capacity)
    }

    static func wallClockSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// The series a sample reads (histograms by their `_bucket` samples).
    public static let sampledNames: Set<String> = [
        "playhead_events_accepted_total", "playhead_events_rejected_total",
        "playhead_http_server_request_duration_seconds_count", "playhead_http_server_request_duration_seconds_bucket",
        "playhead_lake_rows_written_total", "playhead_log_append_duration_seconds_bucket", "playhead_consumer_lag_events",
        "playhead_lake_last_flush_timestamp_seconds", "playhead_process_resident_memory_bytes",
        "playhead_concurrent_viewers", "playhead_active_sessions",
    ]

    /// Takes a sample now (call it about once a second; ``LiveStatsSampler`` does).
    public func sample() {
        sample(at: Self.wallClockSeconds())
    }

    /// Takes a sample as of `time` (Unix seconds).
    public func sample(at time: Double) {
        let figures = ExpositionSamples(PlayheadTelemetry.render(registry), names: Self.sampledNames)
        let content = aggregator?.snapshot(top: 10)
        let counters = Counters(
            time: time,
            accepted: figures.sum("playhead_events_accepted_total"),
            rejected: figures.sum("playhead_events_rejected_total"),
            requests: figures.sum("playhead_http_server_request_duration_seconds_count"),
            // Events' rows: rollup files are rewritten with every batch, their rows are no throughput.
            lakeRows: figures.sum("playhead_lake_rows_written_total", matching: ["dataset": "events"]),
            requestBuckets: figures.histogram("playhead_http_server_request_duration_seconds", matching: ["route": "/v1/events"]),
            appendBuckets: figures.histogram("playhead_log_append_duration_seconds")
        )
        var lagByConsumer: [String: Double] = [:]
        for sample in figures.samples["playhead_consumer_lag_events"] ?? [] {
            lagByConsumer[sample.labels["consumer"] ?? "", default: 0] += sample.value
        }

        var point = Point(time: time)
        point.consumerLag = lagByConsumer.values.max()
        if let flushed = figures.max("playhead_lake_last_flush_timestamp_seconds"), flushed > 0 {
            point.lakeLastFlushAgeSeconds = Swift.max(0, time - flushed)
        }
        point.rssBytes = figures.max("playhead_process_resident_memory_bytes")
        if let content {
            point.concurrentViewers = Double(content.totalConcurrentViewers)
            point.activeSessions = Double(content.activeSessions)
        } else {
            point.concurrentViewers = figures.sum("playhead_concurrent_viewers")
            point.activeSessions = figures.sum("playhead_active_sessions")
        }

        state.withLock { state in
            if let previous = state.history.last, time > previous.time {
                let elapsed = time - previous.time
                point.eventsPerSecond = Self.rate(counters.accepted, previous.accepted, elapsed)
                point.rejectedPerSecond = Self.rate(counters.rejected, previous.rejected, elapsed)
                point.requestsPerSecond = Self.rate(counters.requests, previous.requests, elapsed)
                point.lakeRowsPerSecond = Self.rate(counters.lakeRows, previous.lakeRows, elapsed)
                let base = state.history[Swift.max(0, state.history.count - quantileWindow)]
                point.p50LatencyMs = ExpositionSamples.quantile(0.5, from: base.requestBuckets, to: counters.requestBuckets).map { $0 * 1000 }
                point.p99LatencyMs = ExpositionSamples.quantile(0.99, from: base.requestBuckets, to: counters.requestBuckets).map { $0 * 1000 }
                point.logAppendP99Ms = ExpositionSamples.quantile(0.99, from: base.appendBuckets, to: counters.appendBuckets).map { $0 * 1000 }
            }
            state.history.append(counters)
            if state.history.count > quantileWindow + 1 { state.history.removeFirst(state.history.count - quantileWindow - 1) }
            state.points.append(point)
            if state.points.count > capacity { state.points.removeFirst(state.points.count - capacity) }
            state.lagByConsumer = lagByConsumer
            state.content = content
        }
    }

    /// A counter's rate per second; after a reset (the value went down), the value itself.
    static func rate(_ current: Double?, _ previous: Double?, _ elapsed: Double) -> Double? {
        guard let current else { return nil }
        let previous = previous ?? 0
        let delta = current >= previous ? current - previous : current
        return delta / elapsed
    }

    /// The samples so far, oldest first.
    public var points: [Point] { state.withLock { $0.points } }

    /// `GET /live.json`: the latest figures, the series (one array per figure, oldest first) and the
    /// content KPIs. Format in docs/live-page.md.
    public func json() -> [UInt8] {
        let (points, lagByConsumer, content) = state.withLock { ($0.points, $0.lagByConsumer, $0.content) }
        var out = JSONWriter()
        out.raw("{")
        out.key("time")
        out.number(points.last?.time ?? Self.wallClockSeconds())
        out.raw(",")
        out.key("latest")
        out.raw("{")
        let latest = points.last ?? Point(time: 0)
        for (index, field) in Point.fields.enumerated() {
            if index > 0 { out.raw(",") }
            out.key(field.name)
            out.number(field.value(latest))
        }
        out.raw("},")
        out.key("consumer_lag_by_consumer")
        out.object(lagByConsumer.mapValues { Optional($0) })
        out.raw(",")
        out.key("series")
        out.raw("{")
        out.key("time")
        out.array(points.map { Optional($0.time) })
        for field in Point.fields {
            out.raw(",")
            out.key(field.name)
            out.array(points.map(field.value))
        }
        out.raw("},")
        out.key("content")
        if let content {
            out.raw("{")
            out.key("concurrent_viewers")
            out.number(Double(content.totalConcurrentViewers))
            out.raw(",")
            out.key("concurrent_viewers_by_content_type")
            out.object(content.concurrentViewers.mapValues { Optional(Double($0)) })
            out.raw(",")
            out.key("active_sessions")
            out.number(Double(content.activeSessions))
            out.raw(",")
            out.key("plays_started")
            out.object(content.playsStarted.mapValues { Optional(Double($0)) })
            out.raw(",")
            out.key("watch_time_seconds")
            out.object(content.watchTimeSeconds.mapValues { Optional($0) })
            out.raw(",")
            out.key("completions")
            out.object(content.completions.mapValues { Optional(Double($0)) })
            out.raw(",")
            out.key("ad_plays")
            out.number(Double(content.adPlays))
            out.raw(",")
            out.key("events_by_type")
            out.object(content.eventsByType.mapValues { Optional(Double($0)) })
            out.raw(",")
            out.key("top_content")
            out.raw("[")
            for (index, row) in content.topContent.enumerated() {
                if index > 0 { out.raw(",") }
                out.raw("{")
                out.key("content_id")
                out.string(row.contentID)
                out.raw(",")
                out.key("title")
                if let title = row.title { out.string(title) } else { out.raw("null") }
                out.raw(",")
                out.key("content_type")
                out.string(row.contentType)
                out.raw(",")
                out.key("viewers")
                out.number(Double(row.viewers))
                out.raw("}")
            }
            out.raw("]}")
        } else {
            out.raw("null")
        }
        out.raw("}")
        return out.bytes
    }
}

/// A small JSON writer (numbers rounded to 3 decimals; non-finite numbers become `null`).
struct JSONWriter {
    var bytes: [UInt8] = []

    mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

    mutating func key(_ name: String) {
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func number(_ value: Double?) {
        guard let value, value.isFinite else { return raw("null") }
        let rounded = (value * 1000).rounded() / 1000
        if rounded == rounded.rounded(), abs(rounded) < 1e15 {
            raw(String(Int64(rounded)))
        } else {
            raw(String(rounded))
        }
    }

    mutating func array(_ values: [Double?]) {
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            number(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    mutating func object(_ values: [String: Double?]) {
        bytes.append(UInt8(ascii: "{"))
        for (index, entry) in values.sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            key(entry.key)
            number(entry.value)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": raw("\\\"")
            case "\\": raw("\\\\")
            case "\n": raw("\\n")
            case "\r": raw("\\r")
            case "\t": raw("\\t")
            case "<": raw("\\u003c")  // safe to embed in HTML
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    raw("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                } else {
                    bytes.append(contentsOf: String(scalar).utf8)
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// Calls ``LiveStats/sample()`` every `interval` (off the cooperative pool: rendering the registry is
/// cheap, but it is done on a dispatch queue so that a large registry never delays other tasks).
public struct LiveStatsSampler: Service {
    let stats: LiveStats
    let interval: Duration
    private static let queue = DispatchQueue(label: "playhead.live-stats")

    public init(stats: LiveStats, interval: Duration = .seconds(1)) {
        self.stats = stats
        self.interval = interval
    }

    public func run() async throws {
        let stats = self.stats
        let interval = self.interval
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    Self.queue.async {
                        stats.sample()
                        continuation.resume()
                    }
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}
