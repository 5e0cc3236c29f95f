import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// The process's metrics system: swift-metrics backed by swift-prometheus, and the text exposition
/// served at `GET /metrics`. Names and meanings are in docs/metrics.md.
public enum PlayheadTelemetry {
    /// The `Content-Type` of ``render(_:)``'s output (text exposition format 0.0.4).
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private static let bootstrapped = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Bootstraps swift-metrics with a ``PrometheusMetricsFactory`` over a new registry, once per
    /// process, and returns that registry. Later calls (tests, a second command in one process) return
    /// the same registry instead of bootstrapping again (swift-metrics allows one bootstrap per process).
    public static func bootstrap() -> PrometheusCollectorRegistry {
        bootstrapped.withLock { existing in
            if let existing { return existing }
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(makeFactory(registry: registry))
            existing = registry
            return registry
        }
    }

    /// The registry made by ``bootstrap()``, if it ran.
    public static var registry: PrometheusCollectorRegistry? { bootstrapped.withLock { $0 } }

    /// A metrics factory over `registry` with Playhead's histogram buckets: fine-grained latency
    /// buckets (100 µs … 300 s) for every timer, and power-of-two buckets for record counts.
    /// Tests use it with a private registry instead of the global ``bootstrap()``.
    public static func makeFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = durationBuckets
        factory.valueHistogramBuckets["playhead_log_fsync_batch_records"] = recordCountBuckets
        factory.defaultValueHistogramBuckets = recordCountBuckets
        return factory
    }

    /// Buckets of every duration histogram (`*_duration_seconds`).
    public static let durationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
        // A lake flush that waits out a store's outage takes minutes (S3 retries a request for up to
        // about 150 s): with 10 s the last bucket, its p99 read "10" for any of them (a review).
        .seconds(30), .seconds(60), .seconds(120), .seconds(300),
    ]

    /// Buckets of value histograms (records per fsync batch).
    public static let recordCountBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]

    /// The registry's metrics in the Prometheus text exposition format 0.0.4, with a `# HELP` line for
    /// every family (swift-metrics has no help texts; ``helpTexts`` supplies them, so that
    /// `promtool check metrics` finds nothing to lint).
    public static func render(_ registry: PrometheusCollectorRegistry) -> [UInt8] {
        var raw: [UInt8] = []
        raw.reserveCapacity(32 * 1024)
        registry.emit(into: &raw)
        var out: [UInt8] = []
        out.reserveCapacity(raw.count + 4096)
        let typePrefix: [UInt8] = Array("# TYPE ".utf8)
        let helpPrefix: [UInt8] = Array("# HELP ".utf8)
        var lineStart = 0
        var previousWasHelp = false
        while lineStart < raw.count {
            var lineEnd = lineStart
            while lineEnd < raw.count && raw[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            let line = raw[lineStart..<lineEnd]
            if !previousWasHelp && line.starts(with: typePrefix) {
                let rest = line.dropFirst(typePrefix.count)
                if let space = rest.firstIndex(of: UInt8(ascii: " ")) {
                    let name = String(decoding: rest[rest.startIndex..<space], as: UTF8.self)
                    out.append(contentsOf: helpPrefix)
                    out.append(contentsOf: name.utf8)
                    out.append(UInt8(ascii: " "))
                    out.append(contentsOf: help(for: name).utf8)
                    out.append(UInt8(ascii: "\n"))
                }
            }
            previousWasHelp = line.starts(with: helpPrefix)
            out.append(contentsOf: line)
            out.append(UInt8(ascii: "\n"))
            lineStart = lineEnd + 1
        }
        return out
    }

    /// The help text of a metric family (docs/metrics.md); a generic one for names Playhead does not know.
    public static func help(for name: String) -> String {
        if let text = helpTexts[name] { return text }
        return "Playhead metric \(name) (see docs/metrics.md)."
    }

    /// Help texts of every metric Playhead defines (the contract in docs/metrics.md).
    public static let helpTexts: [String: String] = [
        "playhead_content_events_outside_live_window_total": "Events the metrics consumer left out of the live figures because their timestamp was more than 5 minutes before (late) or after (ahead) their received_at.",
        "playhead_content_sessions_forgotten_total": "Sessions the metrics consumer stopped following or remembering because its session tables were full (the half silent longest goes).",
        "playhead_lake_rollup_sessions_forgotten_total": "Sessions the lake's rollups stopped remembering for watch time because their table was full; their next event counts no watch time for the gap before it.",
        "playhead_lake_rollup_events_uncounted_total": "Events left out of the rollups because the open hours held the most content rows kept, or because their hour was already final (a clock step back); they are in events/.",
        "playhead_http_server_request_duration_seconds": "Duration of HTTP requests served, by route, method and status.",
        "playhead_http_connections_open": "Connections open now on this process's HTTP server.",
        "playhead_http_connections_max": "The HTTP server's connection limit (--max-connections or its default from the descriptors left at start); 0 when there is none.",
        "playhead_http_accept_waits_total": "Times the HTTP server stopped accepting connections, by reason: connection_limit (at --max-connections) or out_of_descriptors (accept failed; retried a second later).",
        "playhead_events_accepted_total": "Events accepted and made durable, by event type, content type and source.",
        "playhead_events_rejected_total": "Events rejected by validation or decoding, by reason.",
        "playhead_events_rejected_unkept_total": "Rejected events answered to their client (202 with their errors) but not kept in the log's rejected topic: the log refused them after it stored the same request's accepted events (a full disk, a failing broker).",
        "playhead_ingest_requests_refused_total": "Requests refused before their events were read (rate limit, back-pressure, size), by reason.",
        "playhead_ingest_in_flight_bytes": "Bytes of request bodies the ingest edge holds: still arriving (stage=receiving), or being decoded or waiting for the log (stage=processing).",
        "playhead_log_append_duration_seconds": "Time from append to durability of a log batch, by backend and topic.",
        "playhead_log_fsync_batch_records": "Records made durable per fsync of the embedded log (group commit size).",
        "playhead_log_fsyncs_total": "Group commits of the embedded log made durable (one fdatasync each; the fsyncs of a new segment, its folder and group offsets are not counted).",
        "playhead_log_append_failures_total": "Failed log appends, by error code.",
        "playhead_log_size_bytes": "Bytes the log keeps on disk, by topic.",
        "playhead_log_disk_free_bytes": "Free bytes on the file system holding the log.",
        "playhead_log_disk_capacity_bytes": "Size in bytes of the file system holding the log.",
        "playhead_ready": "1 when the process is ready (GET /readyz answers 200), else 0 (shutting down, or a part of it cannot work: a log or broker it cannot reach, a lake it cannot write; /readyz says why). Set at each scrape.",
        "playhead_consumer_partitions_assigned": "Partitions of the events topic this process's consumer of the group holds, by consumer (the embedded log has one; on Kafka the group's assignment decides, and 0 on every member means no one reads the log for that group: stuck at the broker's coordinator).",
        "playhead_consumer_lag_events": "Records of the events topic a consumer group has not processed yet, by consumer (lake: not yet committed to the lake; metrics: not yet counted).",
        "playhead_lake_files_written_total": "Files committed to the lake, by dataset.",
        "playhead_lake_bytes_written_total": "Bytes committed to the lake, by dataset.",
        "playhead_lake_rows_written_total": "Rows committed to the lake, by dataset.",
        "playhead_lake_flush_duration_seconds": "Duration of lake flushes (encode, upload, commit), retries of a failing store included.",
        "playhead_lake_flush_failures_total": "Failed attempts of the lake writer (a write, a read of the log or of the lake), each retried.",
        "playhead_lake_group_offset_missing_total": "Partitions the lake writer took up (Kafka) whose consumer group had no committed offset although the lake had written records of them: a new group name on an existing lake (harmless), or a topic recreated or a broker that lost its data, whose records below the lake's offset are not written.",
        "playhead_log_damaged_records_total": "Records of the log that a consumer stepped past because they could not be read (a failed checksum, the rest of a segment after a damaged length, or a value that is not a Playhead record); the lake writer keeps their bytes under _playhead/damaged/.",
        "playhead_lake_last_flush_timestamp_seconds": "Unix time of the last successful lake flush.",
        "playhead_lake_flush_interval_seconds": "The lake writer's --flush-interval: a batch closes after this long, whatever its size.",
        "playhead_lake_duplicates_dropped_total": "Events dropped by the lake writer as duplicates of an earlier event_id.",
        "playhead_s3_requests_total": "S3 requests, by operation and HTTP status (error: no answer; <code>-error: an error in a 200 answer).",
        "playhead_s3_retries_total": "S3 requests retried, by operation.",
        "playhead_s3_requests_unanswered": "S3 requests in flight that have moved no byte for 15 s or more: the store takes none of their body and sends none of their answer (frozen or overloaded); kept across the retries and the waits between them until the store answers something.",
        "playhead_process_resident_memory_bytes": "Resident memory of the process, in bytes.",
        "playhead_process_open_fds": "File descriptors open in the process.",
        "playhead_process_start_time_seconds": "When the process started, in seconds since the Unix epoch (a restart changes it).",
        "playhead_process_cpu_seconds_total": "CPU time (user and system) used by the process, in seconds.",
        "playhead_concurrent_viewers": "Sessions currently playing (last play-state event was play, not timed out), by content type.",
        "playhead_active_sessions": "Sessions seen in the last 90 s and not stopped.",
        "playhead_plays_started_total": "Plays started (a play that is not a resume after pause), by content type.",
        "playhead_watch_time_seconds_total": "Seconds watched: the gap before each event of a session while it plays (heartbeats and seeks included), each capped at 60 s, by content type.",
        "playhead_completions_total": "Stops at or beyond 95 % of duration_seconds, by content type.",
        "playhead_breakdown_concurrent_viewers": "Sessions currently playing, by content type, event source, language and primary genre (bounded; adds up to playhead_concurrent_viewers).",
        "playhead_breakdown_plays_started_total": "Plays started, by content type, event source, language and primary genre (bounded).",
        "playhead_breakdown_watch_time_seconds_total": "Seconds watched, by content type, event source, language and primary genre (bounded).",
        "playhead_breakdown_completions_total": "Completions, by content type, event source, language and primary genre (bounded).",
        "playhead_ad_plays_total": "Plays started of content_type ad.",
        "playhead_content_events_total": "Events read by the metrics consumer, by event type.",
    ]
}
