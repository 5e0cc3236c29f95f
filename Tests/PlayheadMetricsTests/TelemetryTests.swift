import CoreMetrics
import Foundation
import Logging
import Metrics
import PlayheadLog
import PlayheadMetrics
import PlayheadTestSupport
import Prometheus
import Testing

/// Every metric of the contract (docs/metrics.md), created through swift-metrics with `factory`
/// and given a value, the way the other modules do.
func registerContractMetrics(_ factory: any MetricsFactory) {
    CoreMetrics.Timer(label: "playhead_http_server_request_duration_seconds", dimensions: [("route", "/v1/events"), ("method", "POST"), ("status", "202")], factory: factory)
        .recordMilliseconds(3)
    CoreMetrics.Counter(label: "playhead_events_accepted_total", dimensions: [("event_type", "play"), ("content_type", "movie"), ("event_source", "web")], factory: factory)
        .increment(by: 7)
    CoreMetrics.Counter(label: "playhead_events_rejected_total", dimensions: [("reason", "invalid_field")], factory: factory).increment()
    CoreMetrics.Counter(label: "playhead_ingest_requests_refused_total", dimensions: [("reason", "rate_limited")], factory: factory).increment()
    CoreMetrics.Gauge(label: "playhead_ingest_in_flight_bytes", dimensions: [], factory: factory).record(1024)
    CoreMetrics.Timer(label: "playhead_log_append_duration_seconds", dimensions: [("backend", "embedded"), ("topic", "events")], factory: factory)
        .recordMicroseconds(800)
    CoreMetrics.Recorder(label: "playhead_log_fsync_batch_records", dimensions: [], aggregate: true, factory: factory).record(37)
    CoreMetrics.Counter(label: "playhead_log_fsyncs_total", dimensions: [], factory: factory).increment()
    CoreMetrics.Counter(label: "playhead_log_append_failures_total", dimensions: [("code", "full")], factory: factory).increment()
    CoreMetrics.Gauge(label: "playhead_log_size_bytes", dimensions: [("topic", "events")], factory: factory).record(123_456)
    CoreMetrics.Gauge(label: "playhead_log_disk_free_bytes", dimensions: [], factory: factory).record(10_000_000)
    CoreMetrics.Gauge(label: "playhead_log_disk_capacity_bytes", dimensions: [], factory: factory).record(20_000_000)
    CoreMetrics.Gauge(label: "playhead_consumer_lag_events", dimensions: [("consumer", "lake")], factory: factory).record(12)
    CoreMetrics.Counter(label: "playhead_lake_files_written_total", dimensions: [("dataset", "events")], factory: factory).increment()
    CoreMetrics.Counter(label: "playhead_lake_bytes_written_total", dimensions: [("dataset", "events")], factory: factory).increment(by: 4096)
    CoreMetrics.Counter(label: "playhead_lake_rows_written_total", dimensions: [("dataset", "events")], factory: factory).increment(by: 100)
    CoreMetrics.Timer(label: "playhead_lake_flush_duration_seconds", dimensions: [], factory: factory).recordMilliseconds(120)
    CoreMetrics.Counter(label: "playhead_lake_flush_failures_total", dimensions: [], factory: factory).increment()
    CoreMetrics.Gauge(label: "playhead_lake_last_flush_timestamp_seconds", dimensions: [], factory: factory).record(1_764_590_000.5)
    CoreMetrics.Counter(label: "playhead_lake_duplicates_dropped_total", dimensions: [], factory: factory).increment()
    CoreMetrics.Counter(label: "playhead_s3_requests_total", dimensions: [("operation", "PutObject"), ("status", "200")], factory: factory).increment()
    CoreMetrics.Counter(label: "playhead_s3_retries_total", dimensions: [("operation", "PutObject")], factory: factory).increment()
    CoreMetrics.Gauge(label: "playhead_process_resident_memory_bytes", dimensions: [], factory: factory).record(50_000_000)
}

/// A consumer-friendly encoding of observations for tests: fields separated by `|`.
enum TestCodec {
    static func encode(_ o: ContentObservation) -> [UInt8] {
        Array([o.eventType, o.contentType, o.sessionKey.description, o.contentID, String(o.timestampMicros), String(o.receivedAtMicros),
               String(o.currentTimestamp), String(o.durationSeconds), o.title ?? "", o.eventSource, o.language, o.genre]
            .joined(separator: "|").utf8)
    }

    @Sendable static func decode(_ bytes: UnsafeRawBufferPointer) -> ContentObservation? {
        let fields = String(decoding: bytes, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false)
        guard fields.count == 12, let ts = Int64(fields[4]), let received = Int64(fields[5]),
            let position = Double(fields[6]), let duration = Int64(fields[7])
        else { return nil }
        return ContentObservation(
            eventType: String(fields[0]), contentType: String(fields[1]), sessionKey: SessionKey(String(fields[2])),
            contentID: String(fields[3]), timestampMicros: ts, receivedAtMicros: received,
            currentTimestamp: position, durationSeconds: duration, title: fields[8].isEmpty ? nil : String(fields[8]),
            eventSource: String(fields[9]), language: String(fields[10]), genre: String(fields[11])
        )
    }
}

func nowSeconds() -> Double { Date().timeIntervalSince1970 }

@Suite("Telemetry")
struct TelemetryTests {
    @Test("the rendered exposition has HELP for every family and passes promtool check metrics")
    func promtoolCheck() async throws {
        let registry = PrometheusCollectorRegistry()
        let factory = PlayheadTelemetry.makeFactory(registry: registry)
        registerContractMetrics(factory)
        let aggregator = ContentAggregator()
        let consumer = ContentMetricsConsumer(
            log: InMemoryLog(), decode: TestCodec.decode, aggregator: aggregator, logger: Logger(label: "test"), factory: factory
        )
        // Content counters appear once there is something to publish.
        aggregator.observe(event("play", at: nowSeconds()))
        consumer.publishMetrics()

        let text = String(decoding: PlayheadTelemetry.render(registry), as: UTF8.self)
        let families = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
        let helps = Set(text.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] })
        #expect(families.count >= 30)
        for family in families {
            #expect(helps.contains(family), "no HELP for \(family)")
            #expect(PlayheadTelemetry.helpTexts[String(family)] != nil, "\(family) is not in the contract")
        }
        #expect(text.contains("playhead_events_accepted_total{event_type=\"play\",content_type=\"movie\",event_source=\"web\"} 7"))
        #expect(text.contains("playhead_concurrent_viewers{content_type=\"movie\"} 1"))

        let result = try await runCommand("/usr/bin/promtool", ["check", "metrics"], stdin: Data(text.utf8))
        #expect(result.status == 0, "promtool: \(result.stdout)\(result.stderr)")
        #expect(result.stderr.isEmpty && result.stdout.isEmpty, "promtool lint: \(result.stdout)\(result.stderr)")

        // promtool does catch problems: a counter without _total and no help.
        let bad = "# TYPE playhead_bad counter\nplayhead_bad 1\n"
        let badResult = try await runCommand("/usr/bin/promtool", ["check", "metrics"], stdin: Data(bad.utf8))
        #expect(badResult.status != 0)
    }

    @Test("every metric family docs/metrics.md lists has its own HELP text, not the generic one")
    func everyDocumentedFamilyHasHelp() throws {
        let doc = try String(contentsOf: TestEnvironment.repoRoot.appendingPathComponent("docs/metrics.md"), encoding: .utf8)
        let families = doc.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("| `playhead_"), let end = line.dropFirst(3).firstIndex(of: "`") else { return nil }
            let name = String(line[line.index(line.startIndex, offsetBy: 3)..<end])
            // A row about one series of a family (`…{consumer="metrics"}`) is not a family of its own.
            return name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" } ? name : nil
        }
        #expect(families.count >= 40, "\(families)")
        for family in families {
            #expect(PlayheadTelemetry.helpTexts[family] != nil, "no HELP text for \(family)")
        }
    }

    @Test("bootstrap is idempotent and renders through the global MetricsSystem")
    func bootstrapOnce() {
        let first = PlayheadTelemetry.bootstrap()
        let second = PlayheadTelemetry.bootstrap()
        #expect(first === second)
        CoreMetrics.Counter(label: "playhead_log_fsyncs_total").increment(by: 3)
        let text = String(decoding: PlayheadTelemetry.render(first), as: UTF8.self)
        #expect(text.contains("# HELP playhead_log_fsyncs_total "))
        #expect(text.contains("playhead_log_fsyncs_total "))
    }

    @Test("process statistics come from /proc/self")
    func processStats() async throws {
        let stats = ProcessStats.read()
        #expect(stats.residentMemoryBytes > 1 << 20)
        #expect(stats.openFileDescriptors >= 3)
        #expect(stats.cpuSeconds > 0)

        let registry = PrometheusCollectorRegistry()
        let service = ProcessMetricsService(interval: .milliseconds(50), factory: PlayheadTelemetry.makeFactory(registry: registry))
        let task = Task { try await service.run() }
        let published = await eventually {
            let figures = ExpositionSamples(PlayheadTelemetry.render(registry))
            return (figures.max("playhead_process_resident_memory_bytes") ?? 0) > Double(1 << 20)
                && (figures.max("playhead_process_cpu_seconds_total") ?? 0) > 0
                && figures.max("playhead_process_start_time_seconds") != nil
        }
        // The test process started before now, and (a test run being short) within the last day.
        let started = ExpositionSamples(PlayheadTelemetry.render(registry)).max("playhead_process_start_time_seconds") ?? 0
        let now = Date().timeIntervalSince1970
        #expect(started <= now + 1 && started > now - 86_400, "\(started) against \(now)")
        task.cancel()
        _ = try? await task.value
        #expect(published)
    }
}
