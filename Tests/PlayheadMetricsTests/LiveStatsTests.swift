import CoreMetrics
import Foundation
import Metrics
import PlayheadMetrics
import PlayheadTestSupport
import Prometheus
import Synchronization
import Testing

/// A registry with instruments and an aggregator whose figures a test sets step by step, and the
/// ``LiveStats`` sampling them at chosen times.
final class LiveFixture: Sendable {
    let registry = PrometheusCollectorRegistry()
    let aggregator = ContentAggregator()
    let stats: LiveStats
    let accepted: CoreMetrics.Counter
    let rejected: CoreMetrics.Counter
    let requests: CoreMetrics.Timer
    let append: CoreMetrics.Timer
    let lag: CoreMetrics.Gauge
    let lastFlush: CoreMetrics.Gauge
    let rss: CoreMetrics.Gauge
    let lakeRows: CoreMetrics.Counter
    let start: Double
    private let step = Mutex(0)
    /// Whether the test server answers `/live.json` with 503 (the server gone).
    let broken = Mutex(false)

    init() {
        let factory = PlayheadTelemetry.makeFactory(registry: registry)
        stats = LiveStats(registry: registry, aggregator: aggregator, capacity: 600)
        accepted = CoreMetrics.Counter(label: "playhead_events_accepted_total", dimensions: [("event_type", "play"), ("content_type", "movie"), ("event_source", "web")], factory: factory)
        rejected = CoreMetrics.Counter(label: "playhead_events_rejected_total", dimensions: [("reason", "invalid_field")], factory: factory)
        requests = CoreMetrics.Timer(label: "playhead_http_server_request_duration_seconds", dimensions: [("route", "/v1/events"), ("method", "POST"), ("status", "202")], factory: factory)
        append = CoreMetrics.Timer(label: "playhead_log_append_duration_seconds", dimensions: [("backend", "embedded"), ("topic", "events")], factory: factory)
        lag = CoreMetrics.Gauge(label: "playhead_consumer_lag_events", dimensions: [("consumer", "metrics")], factory: factory)
        lastFlush = CoreMetrics.Gauge(label: "playhead_lake_last_flush_timestamp_seconds", dimensions: [], factory: factory)
        rss = CoreMetrics.Gauge(label: "playhead_process_resident_memory_bytes", dimensions: [], factory: factory)
        lakeRows = CoreMetrics.Counter(label: "playhead_lake_rows_written_total", dimensions: [("dataset", "events")], factory: factory)
        start = nowSeconds().rounded()
        stats.sample(at: start - 1)  // all zero
    }

    /// Phase 1 at `start`: 1500 events/s, 25 rejected/s, 30 requests of 1.5 ms, lag 42, last flush
    /// 12 s ago, 200 MiB, 3 viewers of "Big Buck Bunny" and one paused session.
    func phase1() {
        accepted.increment(by: 1500)
        rejected.increment(by: 25)
        for _ in 0..<30 { requests.recordMicroseconds(1500) }
        for _ in 0..<10 { append.recordMicroseconds(400) }
        lakeRows.increment(by: 750)
        lag.record(42)
        lastFlush.record(start - 12)
        rss.record(200 * 1_048_576)
        for index in 0..<3 {
            aggregator.observe(event("play", at: start, session: "v\(index)", content: "bbb", title: "Big Buck Bunny"))
        }
        aggregator.observe(event("play", at: start, session: "p0", content: "sintel", contentType: "episode", title: "Sintel"))
        aggregator.observe(event("pause", at: start + 1, session: "p0", content: "sintel", contentType: "episode", title: "Sintel"))
        stats.sample(at: start)
        step.withLock { $0 = 1 }
    }

    /// Phase 2 at `start + 1`: 3000 events/s, no rejects, no requests, lag 7, 256 MiB, 2 more viewers.
    func phase2() {
        let already = step.withLock { step -> Bool in
            defer { step = 2 }
            return step >= 2
        }
        guard !already else { return }
        accepted.increment(by: 3000)
        lag.record(7)
        rss.record(256 * 1_048_576)
        aggregator.observe(event("play", at: start + 1, session: "t0", content: "tos", title: Self.phase2Title))
        aggregator.observe(event("play", at: start + 1, session: "t1", content: "tos", title: Self.phase2Title))
        // 37 s of one movie viewer's watch time: 0.01 h of movie, where 5 movie viewers watch now.
        aggregator.observe(event("heartbeat", at: start + 37, session: "v0", content: "bbb", title: "Big Buck Bunny"))
        stats.sample(at: start + 1)
    }

    /// Markup to show as text, and a run of 170 letters without a space (titles are kept to 200 bytes), which the table must wrap
    /// (it made the page three times wider than the window: a probe).
    static let phase2Title = "Tears of <Steel> & \"more\" " + String(repeating: "x", count: 170)

    static let phase1Figures: [String: String] = [
        "fig-events-per-second": "1,500",
        "fig-rejected-per-second": "25",
        "fig-requests-per-second": "30",
        "fig-p99-latency-ms": "1.99",
        "fig-p50-latency-ms": "1.5",
        "fig-consumer-lag": "42",
        "fig-concurrent-viewers": "3",
        "fig-active-sessions": "4",
        "fig-lake-last-flush": "12",
        "fig-rss-mb": "200",
        "fig-lake-rows-per-second": "750",
        // Viewers now by content type, with the viewers; watch time by content type, in hours, with
        // the watch time (until 2026-12-07 the watch-time card showed the viewers by type, an outside review).
        "fig-viewers-by-type": "episode 0 · movie 3",
        "fig-watch-time-hours": "0",
        "fig-watch-time-by-type": "episode 0",
    ]

    static let phase2Figures: [String: String] = [
        "fig-events-per-second": "3,000",
        "fig-rejected-per-second": "0",
        "fig-requests-per-second": "0",
        "fig-p99-latency-ms": "1.99",
        "fig-consumer-lag": "7",
        "fig-concurrent-viewers": "5",
        "fig-active-sessions": "6",
        "fig-lake-last-flush": "13",
        "fig-rss-mb": "256",
        "fig-viewers-by-type": "episode 0 · movie 5",
        "fig-watch-time-hours": "0.01",
        "fig-watch-time-by-type": "episode 0 · movie 0.01",
    ]
}

@Suite("LiveStats")
struct LiveStatsTests {
    @Test("samples give rates, quantiles from histogram buckets, gauges and the content snapshot")
    func figures() throws {
        let fixture = LiveFixture()
        fixture.phase1()
        let point = try #require(fixture.stats.points.last)
        #expect(point.eventsPerSecond == 1500)
        #expect(point.rejectedPerSecond == 25)
        #expect(point.requestsPerSecond == 30)
        #expect(abs((point.p99LatencyMs ?? 0) - 1.99) < 1e-9)
        #expect(abs((point.p50LatencyMs ?? 0) - 1.5) < 1e-9)
        // 10 appends of 400 µs, in the (250 µs, 500 µs] bucket: p99 = 0.25 + 0.25 × 9.9/10 ms.
        #expect(abs((point.logAppendP99Ms ?? 0) - 0.4975) < 1e-9)
        #expect(point.consumerLag == 42)
        #expect(point.lakeRowsPerSecond == 750)
        #expect(point.lakeLastFlushAgeSeconds == 12)
        #expect(point.rssBytes == Double(200 * 1_048_576))
        #expect(point.concurrentViewers == 3)
        #expect(point.activeSessions == 4)

        fixture.phase2()
        let json = try #require(try JSONSerialization.jsonObject(with: Data(fixture.stats.json())) as? [String: Any])
        let latest = try #require(json["latest"] as? [String: Any])
        #expect(latest["events_per_second"] as? Double == 3000)
        #expect(latest["requests_per_second"] as? Double == 0)
        #expect(latest["consumer_lag"] as? Double == 7)
        let series = try #require(json["series"] as? [String: Any])
        #expect((series["events_per_second"] as? [Any])?.count == 3)
        #expect((series["events_per_second"] as? [Any])?.first is NSNull)
        #expect((series["time"] as? [Double])?.count == 3)
        let content = try #require(json["content"] as? [String: Any])
        #expect(content["concurrent_viewers"] as? Double == 5)
        let top = try #require(content["top_content"] as? [[String: Any]])
        #expect(top.first?["content_id"] as? String == "bbb")
        #expect(top.first?["viewers"] as? Double == 3)
        #expect(top.dropFirst().first?["title"] as? String == LiveFixture.phase2Title)
        #expect(!String(decoding: fixture.stats.json(), as: UTF8.self).contains("<Steel>"))  // escaped for HTML
    }

    @Test("a sample reads only its own series, and reads them as a full parse does")
    func namedSeriesOnly() throws {
        let fixture = LiveFixture()
        fixture.phase1()
        // Series the live page does not read, as the breakdown's thousands are in `serve`.
        let factory = PlayheadTelemetry.makeFactory(registry: fixture.registry)
        for index in 0..<50 {
            CoreMetrics.Gauge(label: "playhead_breakdown_concurrent_viewers", dimensions: [("language", "l\(index)")], factory: factory).record(index)
        }
        let text = PlayheadTelemetry.render(fixture.registry)
        let all = ExpositionSamples(text)
        let named = ExpositionSamples(text, names: LiveStats.sampledNames)
        #expect(all.samples["playhead_breakdown_concurrent_viewers"]?.count == 50)
        #expect(Set(named.samples.keys) == LiveStats.sampledNames.intersection(all.samples.keys))
        for name in named.samples.keys {
            #expect(named.samples[name] == all.samples[name], "\(name)")
        }
        // Every series a sample reads is in the fixture's registry, and read, but the two content
        // gauges: the fixture's figures for those come from its aggregator.
        #expect(named.samples.keys.count == LiveStats.sampledNames.count - 2, "\(named.samples.keys.sorted())")
    }

    @Test("the series keeps at most `capacity` samples; a counter reset does not give a negative rate")
    func capacityAndReset() {
        let registry = PrometheusCollectorRegistry()
        let factory = PlayheadTelemetry.makeFactory(registry: registry)
        let stats = LiveStats(registry: registry, aggregator: nil, capacity: 5)
        let counter = CoreMetrics.Counter(label: "playhead_events_accepted_total", dimensions: [("event_type", "play"), ("content_type", "ad"), ("event_source", "tv")], factory: factory)
        for second in 0..<10 {
            counter.increment(by: 10)
            stats.sample(at: Double(second))
        }
        #expect(stats.points.count == 5)
        #expect(stats.points.map(\.time) == [5, 6, 7, 8, 9])
        #expect(stats.points.last?.eventsPerSecond == 10)
        #expect(stats.points.last?.concurrentViewers == nil)
        counter.reset()
        counter.increment(by: 4)
        stats.sample(at: 10)
        #expect(stats.points.last?.eventsPerSecond == 4)
        let json = String(decoding: stats.json(), as: UTF8.self)
        #expect(json.contains("\"content\":null"))
    }

    @Test("the live page is self-contained and has every figure the brief names")
    func pageStructure() {
        let html = String(decoding: LivePage.html, as: UTF8.self)
        for id in ["fig-events-per-second", "fig-rejected-per-second", "fig-requests-per-second", "fig-p99-latency-ms",
                   "fig-consumer-lag", "fig-concurrent-viewers", "fig-active-sessions", "fig-lake-last-flush", "fig-rss-mb",
                   "top-content"] {
            #expect(html.contains("id=\"\(id)\""), "missing \(id)")
        }
        // Each "by type" line sits in the card of the figure it breaks down.
        let cards = html.split(separator: "\n").filter { $0.contains("<div class=\"card\">") }
        let viewersCard = cards.first { $0.contains("id=\"fig-concurrent-viewers\"") } ?? ""
        #expect(viewersCard.contains("id=\"fig-viewers-by-type\""), "viewers by type are not with the viewers: \(viewersCard)")
        let watchCard = cards.first { $0.contains("id=\"fig-watch-time-hours\"") } ?? ""
        #expect(watchCard.contains("id=\"fig-watch-time-by-type\"") && !watchCard.contains("viewers"), "the watch-time card: \(watchCard)")
        #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("src="), "external asset")
        #expect(html.contains("live.json"))
    }
}
