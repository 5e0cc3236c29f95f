import CoreMetrics
import Foundation
import Logging
import Metrics
import PlayheadMetrics
import PlayheadTestSupport
import Prometheus
import Testing

/// Tests against real components: Prometheus (apt) and headless Chromium (apt) driven by Selenium.
/// They run one at a time (each starts a heavy process on a 2-core machine).
@Suite("Real components", .serialized)
struct RealComponentTests {
    @Test("a real Prometheus scrapes our /metrics; PromQL returns the counters, rates and content gauges", .timeLimit(.minutes(2)))
    func prometheusScrape() async throws {
        let registry = PrometheusCollectorRegistry()
        let factory = PlayheadTelemetry.makeFactory(registry: registry)
        registerContractMetrics(factory)  // playhead_events_accepted_total … = 7

        // Content gauges from the consumer over a known set of events.
        let log = InMemoryLog()
        log.append(ContentMetricsConsumerTests.knownEvents(at: nowSeconds()))
        let consumer = ContentMetricsConsumer(
            log: log, decode: TestCodec.decode, aggregator: ContentAggregator(), logger: Logger(label: "test"),
            factory: factory, pollTimeout: .milliseconds(50)
        )
        let consumerTask = Task { try await consumer.run() }
        defer { consumerTask.cancel() }

        let server = try await TinyHTTPServer { _, path in
            path == "/metrics"
                ? .init(contentType: PlayheadTelemetry.contentType, body: PlayheadTelemetry.render(registry))
                : .init(status: .notFound, contentType: "text/plain", body: Array("not found\n".utf8))
        }
        let prometheus = try await PrometheusServer(targets: ["playhead": "127.0.0.1:\(server.port)"])
        do {
            try await prometheus.waitForTarget(job: "playhead")
            let accepted = try await prometheus.waitForValue("sum(playhead_events_accepted_total)") { $0 == 7 }
            #expect(accepted == 7)
            let viewers = try await prometheus.waitForValue("sum(playhead_concurrent_viewers)") { $0 == 4 }
            #expect(viewers == 4)
            #expect(try await prometheus.queryValue("playhead_concurrent_viewers{content_type=\"movie\"}") == 2)
            #expect(try await prometheus.queryValue("playhead_completions_total{content_type=\"movie\"}") == 1)
            #expect(try await prometheus.queryValue("playhead_watch_time_seconds_total{content_type=\"episode\"}") == 20)
            #expect(try await prometheus.queryValue("sum(playhead_content_events_total)") == 8)
            #expect(try await prometheus.queryValue("sum(playhead_plays_started_total) + sum(playhead_completions_total)") == 7)
            #expect(try await prometheus.queryValue("histogram_quantile(0.5, sum by (le) (playhead_http_server_request_duration_seconds_bucket))") != nil)

            // A steady 400 events/s for a while: rate() sees it. The counter follows the clock, not
            // the count of sleeps, which run long on a busy machine (CI once saw a rate under 250).
            let counter = CoreMetrics.Counter(label: "playhead_events_accepted_total", dimensions: [("event_type", "play"), ("content_type", "movie"), ("event_source", "web")], factory: factory)
            let feeding = Task {
                let start = ContinuousClock.now
                var fed = 0
                while !Task.isCancelled {
                    let due = Int((ContinuousClock.now - start) / .milliseconds(100)) * 40
                    counter.increment(by: Int64(due - fed))
                    fed = due
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            defer { feeding.cancel() }
            let rate = try await prometheus.waitForValue("sum(rate(playhead_events_accepted_total[5s]))", timeout: .seconds(30)) {
                $0 > 250 && $0 < 550
            }
            #expect(rate.map { $0 > 250 && $0 < 550 } == true, "rate was \(String(describing: rate))")
            feeding.cancel()
            let total = try await prometheus.waitForValue("sum(playhead_events_accepted_total)") { $0 > 7 + 400 }
            #expect((total ?? 0) > 407)
        } catch {
            await prometheus.stop()
            await server.stop()
            throw error
        }
        await prometheus.stop()
        await server.stop()
    }

    @Test("the live page in headless Chromium shows the figures of /live.json and follows their updates", .timeLimit(.minutes(2)))
    func livePageInChromium() async throws {
        let fixture = LiveFixture()
        fixture.phase1()
        let server = try await TinyHTTPServer { method, path in
            switch path {
            case "/": return .init(contentType: LivePage.contentType, body: LivePage.html)
            case "/live.json" where fixture.broken.withLock({ $0 }):
                return .init(status: .serviceUnavailable, contentType: "text/plain", body: Array("gone\n".utf8))
            case "/live.json": return .init(contentType: "application/json", body: fixture.stats.json())
            case "/break" where method == .POST:
                fixture.broken.withLock { $0 = true }
                return .init(contentType: "text/plain", body: Array("ok\n".utf8))
            case "/advance" where method == .POST:
                fixture.phase2()
                return .init(contentType: "text/plain", body: Array("ok\n".utf8))
            default: return .init(status: .notFound, contentType: "text/plain", body: Array("not found\n".utf8))
            }
        }
        let expected: [String: Any] = [
            "phase1": LiveFixture.phase1Figures,
            "phase2": LiveFixture.phase2Figures,
            "top_content_phase1": [["1", "Big Buck Bunny", "bbb", "movie", "3"]],
            "top_content_phase2": [["1", "Big Buck Bunny", "bbb", "movie", "3"], ["2", LiveFixture.phase2Title, "tos", "movie", "2"]],
        ]
        let expectedJSON = String(decoding: try JSONSerialization.data(withJSONObject: expected), as: UTF8.self)
        let screenshot = TestEnvironment.artifactsDirectory.appendingPathComponent("live-page.png").path
        try? FileManager.default.removeItem(atPath: screenshot)
        let script = TestEnvironment.repoRoot.appendingPathComponent("Tests/Scripts/live_page_check.py").path
        let result = try await runCommand(
            TestEnvironment.python, [script, "http://127.0.0.1:\(server.port)/", expectedJSON, screenshot],
            environment: ["SE_OFFLINE": "true"], timeout: .seconds(90)
        )
        await server.stop()
        #expect(result.status == 0, "live_page_check.py failed:\n\(result.stdout)\n\(result.stderr.suffix(3000))")
        #expect(FileManager.default.fileExists(atPath: screenshot))
    }
}
