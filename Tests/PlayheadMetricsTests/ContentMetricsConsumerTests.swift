import Logging
import PlayheadLog
import PlayheadMetrics
import PlayheadTestSupport
import Prometheus
import ServiceLifecycle
import Testing

@Suite("ContentMetricsConsumer")
struct ContentMetricsConsumerTests {
    /// A known set of events: 3 sessions on movie m1 (one completes), 1 episode session paused,
    /// 2 ad plays, and one record that does not decode, among them (the events after it in the same
    /// batch still count).
    static func knownEvents(at t: Double) -> [[UInt8]] {
        var events: [ContentObservation] = []
        for index in 0..<3 {
            events.append(event("play", at: t, session: "m\(index)", content: "m1", duration: 100, title: "Movie One",
                                source: index == 0 ? "ios" : "web"))
        }
        events.append(event("play", at: t, session: "e0", content: "e1", contentType: "episode", duration: 1800))
        events.append(event("pause", at: t + 20, session: "e0", content: "e1", contentType: "episode", duration: 1800))
        events.append(event("stop", at: t + 30, session: "m0", content: "m1", position: 96, duration: 100))
        events.append(event("play", at: t, session: "a0", content: "ad1", contentType: "ad", duration: 15))
        events.append(event("play", at: t, session: "a1", content: "ad1", contentType: "ad", duration: 15))
        var records = events.map(TestCodec.encode)
        records.insert(Array("garbage".utf8), at: 4)
        return records
    }

    @Test("after a known set of events, the content counters and gauges equal the expected values; offsets are committed and a restart resumes from them")
    func knownEventsAndRestart() async throws {
        let log = InMemoryLog()
        let t = nowSeconds()
        log.append(Self.knownEvents(at: t))

        let registry = PrometheusCollectorRegistry()
        let factory = PlayheadTelemetry.makeFactory(registry: registry)
        let aggregator = ContentAggregator()
        let consumer = ContentMetricsConsumer(
            log: log, decode: TestCodec.decode, aggregator: aggregator, logger: Logger(label: "test"),
            factory: factory, commitInterval: .milliseconds(100), pollTimeout: .milliseconds(20)
        )
        let task = Task { try await consumer.run() }
        // Until the last family a publish updates (ad plays) is there too: a render in the middle
        // of a publish has the first families and not yet the later ones.
        let reached = await eventually {
            let f = ExpositionSamples(PlayheadTelemetry.render(registry))
            return f.sum("playhead_content_events_total") == 8 && f.sum("playhead_ad_plays_total") == 2
        }
        #expect(reached)
        let f = ExpositionSamples(PlayheadTelemetry.render(registry))
        #expect(f.sum("playhead_concurrent_viewers", matching: ["content_type": "movie"]) == 2)
        #expect(f.sum("playhead_concurrent_viewers", matching: ["content_type": "episode"]) == 0)
        #expect(f.sum("playhead_concurrent_viewers", matching: ["content_type": "ad"]) == 2)
        #expect(f.sum("playhead_active_sessions") == 5)
        #expect(f.sum("playhead_plays_started_total", matching: ["content_type": "movie"]) == 3)
        #expect(f.sum("playhead_plays_started_total", matching: ["content_type": "episode"]) == 1)
        #expect(f.sum("playhead_plays_started_total", matching: ["content_type": "ad"]) == 2)
        #expect(f.sum("playhead_ad_plays_total") == 2)
        #expect(f.sum("playhead_completions_total", matching: ["content_type": "movie"]) == 1)
        #expect(f.sum("playhead_completions_total") == 1)
        #expect(f.sum("playhead_watch_time_seconds_total", matching: ["content_type": "movie"]) == 30)
        #expect(f.sum("playhead_watch_time_seconds_total", matching: ["content_type": "episode"]) == 20)
        #expect(f.sum("playhead_content_events_total", matching: ["event_type": "play"]) == 6)
        #expect(f.sum("playhead_content_events_total", matching: ["event_type": "pause"]) == 1)
        #expect(f.sum("playhead_content_events_total", matching: ["event_type": "stop"]) == 1)
        // The breakdown series add up to the totals, family by family.
        for (breakdown, total) in [
            ("playhead_breakdown_concurrent_viewers", "playhead_concurrent_viewers"),
            ("playhead_breakdown_plays_started_total", "playhead_plays_started_total"),
            ("playhead_breakdown_watch_time_seconds_total", "playhead_watch_time_seconds_total"),
            ("playhead_breakdown_completions_total", "playhead_completions_total"),
        ] {
            for contentType in ["movie", "episode", "ad"] {
                #expect(f.sum(breakdown, matching: ["content_type": contentType]) == f.sum(total, matching: ["content_type": contentType]), "\(breakdown) \(contentType)")
            }
        }
        #expect(f.sum("playhead_breakdown_plays_started_total", matching: ["content_type": "movie", "event_source": "ios", "language": "en", "genre": "drama"]) == 1)
        #expect(f.sum("playhead_breakdown_plays_started_total", matching: ["content_type": "movie", "event_source": "web"]) == 2)
        #expect(f.sum("playhead_breakdown_completions_total", matching: ["event_source": "ios"]) == 1)
        #expect(f.sum("playhead_breakdown_concurrent_viewers", matching: ["event_source": "ios"]) == 0)
        // Every record read (the undecodable one too) is committed.
        #expect(await eventually { log.committedOffset(group: "metrics") == 9 })
        #expect(await eventually {
            ExpositionSamples(PlayheadTelemetry.render(registry)).sum("playhead_consumer_lag_events", matching: ["consumer": "metrics"]) == 0
        })
        task.cancel()
        try await task.value

        // A second process: resumes at offset 9, so it counts only the new events.
        log.append([TestCodec.encode(event("play", at: t + 40, session: "n0", content: "m2"))])
        let registry2 = PrometheusCollectorRegistry()
        let consumer2 = ContentMetricsConsumer(
            log: log, decode: TestCodec.decode, aggregator: ContentAggregator(), logger: Logger(label: "test"),
            factory: PlayheadTelemetry.makeFactory(registry: registry2), commitInterval: .milliseconds(100), pollTimeout: .milliseconds(20)
        )
        let task2 = Task { try await consumer2.run() }
        #expect(await eventually { log.committedOffset(group: "metrics") == 10 })
        // Figures are published at most every 250 ms.
        #expect(await eventually { ExpositionSamples(PlayheadTelemetry.render(registry2)).sum("playhead_content_events_total") == 1 })
        let f2 = ExpositionSamples(PlayheadTelemetry.render(registry2))
        #expect(f2.sum("playhead_content_events_total") == 1)
        #expect(f2.sum("playhead_plays_started_total", matching: ["content_type": "movie"]) == 1)
        #expect(f2.sum("playhead_concurrent_viewers") == 1)
        task2.cancel()
        try await task2.value
    }

    @Test("a poll that revokes a partition and assigns it again keeps the sessions of its records and commits their offsets (the revoke was applied after the assignment, and the sessions forgotten after the records were counted: an outside review)")
    func revokedAndAssignedInOnePoll() async throws {
        let log = InMemoryLog(firstPollRevokesToo: true)
        let t = nowSeconds()
        log.append([
            TestCodec.encode(event("play", at: t, session: "r0", content: "m1", duration: 100)),
            TestCodec.encode(event("play", at: t, session: "r1", content: "m1", duration: 100)),
        ])
        let registry = PrometheusCollectorRegistry()
        let consumer = ContentMetricsConsumer(
            log: log, decode: TestCodec.decode, aggregator: ContentAggregator(), logger: Logger(label: "test"),
            factory: PlayheadTelemetry.makeFactory(registry: registry), commitInterval: .milliseconds(100), pollTimeout: .milliseconds(20)
        )
        let task = Task { try await consumer.run() }
        #expect(await eventually { ExpositionSamples(PlayheadTelemetry.render(registry)).sum("playhead_content_events_total") == 2 })
        #expect(await eventually { log.committedOffset(group: "metrics") == 2 })
        let f = ExpositionSamples(PlayheadTelemetry.render(registry))
        #expect(f.sum("playhead_active_sessions") == 2)
        #expect(f.sum("playhead_concurrent_viewers", matching: ["content_type": "movie"]) == 2)
        task.cancel()
        try await task.value
    }

    @Test("sessions that go quiet are expired by wall clock while the consumer runs; one received ahead of the clock (a step back) ends one timeout after the pass that sees it")
    func quietSessionsExpire() async throws {
        let log = InMemoryLog()
        let t = nowSeconds()
        // Received 30 s ago with a 10 s timeout: expired at the consumer's first expiry pass. (With a
        // 3 s timeout, the state in between lasted 3 s, and a loaded CI machine once did not look
        // within it.)
        log.append([TestCodec.encode(event("play", at: t - 30, session: "q", content: "m1", received: t - 30))])
        log.append([TestCodec.encode(event("play", at: t + 600, session: "r", content: "m1", received: t + 600))])
        let registry = PrometheusCollectorRegistry()
        let consumer = ContentMetricsConsumer(
            log: log, decode: TestCodec.decode, aggregator: ContentAggregator(sessionTimeout: .seconds(10)),
            logger: Logger(label: "test"), factory: PlayheadTelemetry.makeFactory(registry: registry),
            pollTimeout: .milliseconds(20)
        )
        let task = Task { try await consumer.run() }
        #expect(await eventually {
            ExpositionSamples(PlayheadTelemetry.render(registry)).sum("playhead_plays_started_total") == 2
        })
        // After an expiry pass only the session received "in the future" is left...
        #expect(await eventually(timeout: .seconds(10)) {
            let f = ExpositionSamples(PlayheadTelemetry.render(registry))
            return f.sum("playhead_active_sessions") == 1 && f.sum("playhead_concurrent_viewers") == 1
        })
        // ...and it counts as heard from at that pass, so it ends a timeout later, not in 10 minutes.
        #expect(await eventually(timeout: .seconds(40)) {
            let f = ExpositionSamples(PlayheadTelemetry.render(registry))
            return f.sum("playhead_active_sessions") == 0 && f.sum("playhead_concurrent_viewers") == 0
        })
        task.cancel()
        try await task.value
    }

    @Test("in a ServiceGroup, a graceful shutdown stops the consumer and commits what it read")
    func gracefulShutdownCommits() async throws {
        let log = InMemoryLog()
        log.append(Self.knownEvents(at: nowSeconds()))
        let registry = PrometheusCollectorRegistry()
        let factory = PlayheadTelemetry.makeFactory(registry: registry)
        let consumer = ContentMetricsConsumer(
            log: log, decode: TestCodec.decode, aggregator: ContentAggregator(), logger: Logger(label: "test"),
            factory: factory, commitInterval: .seconds(3600), pollTimeout: .milliseconds(20)
        )
        let stats = LiveStats(registry: registry, aggregator: consumer.aggregator)
        let group = ServiceGroup(
            services: [ProcessMetricsService(interval: .milliseconds(50), factory: factory), LiveStatsSampler(stats: stats, interval: .milliseconds(50)), consumer],
            logger: Logger(label: "test")
        )
        let running = Task { try await group.run() }
        #expect(await eventually { ExpositionSamples(PlayheadTelemetry.render(registry)).sum("playhead_content_events_total") == 8 })
        #expect(await eventually { stats.points.count >= 3 && stats.points.last?.concurrentViewers == 4 })
        #expect(log.committedOffset(group: "metrics") == nil)  // the commit interval has not passed
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(log.committedOffset(group: "metrics") == 9)
        #expect(stats.points.last?.rssBytes ?? 0 > 0)
    }
}
