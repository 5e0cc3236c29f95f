import CoreMetrics
import Logging
import Metrics
import PlayheadEvents
import PlayheadLog
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The content KPIs' instruments (names in docs/metrics.md). Counters are published as the
/// difference between the aggregator's totals and what was published before.
final class ContentInstruments: Sendable {
    private let factory: (any MetricsFactory)?
    private struct Published {
        var viewers: [String: Gauge] = [:]
        var plays: [String: (Counter, Int)] = [:]
        var watch: [String: (FloatingPointCounter, Double)] = [:]
        var completions: [String: (Counter, Int)] = [:]
        var events: [String: (Counter, Int)] = [:]
        var adPlays = 0
        var breakdown: [ContentDimensions: BreakdownInstruments] = [:]
    }

    /// The `playhead_breakdown_*` instruments of one combination, with the figures published so far.
    struct BreakdownInstruments {
        let viewers: Gauge
        let plays: Counter
        let watch: FloatingPointCounter
        let completions: Counter
        var published = ContentFigures()
    }
    private let published = Mutex(Published())
    private let activeSessions: Gauge
    private let adPlays: Counter
    /// Made at the first lag known: on Kafka, a consumer that has held no partition yet (starting,
    /// or a topic that does not exist) exports no lag, as docs/metrics.md says; it exported 0, which
    /// read as caught up, until 2026-12-07 (an outside review).
    private let lagGauge = Mutex<Gauge?>(nil)
    private let consumerLabel: String
    /// Damaged records of the log this consumer stepped past, `playhead_log_damaged_records_total{consumer}`.
    let damaged: Counter

    init(factory: (any MetricsFactory)?, consumer: String) {
        self.factory = factory
        consumerLabel = consumer
        if let factory {
            activeSessions = Gauge(label: "playhead_active_sessions", dimensions: [], factory: factory)
            adPlays = Counter(label: "playhead_ad_plays_total", dimensions: [], factory: factory)
            damaged = Counter(label: "playhead_log_damaged_records_total", dimensions: [("consumer", consumer)], factory: factory)
        } else {
            activeSessions = Gauge(label: "playhead_active_sessions")
            adPlays = Counter(label: "playhead_ad_plays_total")
            damaged = Counter(label: "playhead_log_damaged_records_total", dimensions: [("consumer", consumer)])
        }
        // The schema's content types exist from the start, at zero.
        for contentType in EventDimensions.contentTypes {
            published.withLock { published in
                published.viewers[contentType] = gauge("playhead_concurrent_viewers", ("content_type", contentType))
                published.viewers[contentType]?.record(0)
                published.plays[contentType] = (counter("playhead_plays_started_total", ("content_type", contentType)), 0)
                published.watch[contentType] = (floatCounter("playhead_watch_time_seconds_total", [("content_type", contentType)]), 0)
                published.completions[contentType] = (counter("playhead_completions_total", ("content_type", contentType)), 0)
            }
        }
        // So do the schema's event types: a series born at its first increment hides it from
        // `rate()` (the alert LiveEventsOutsideWindow compared late events with no events read at all).
        published.withLock { published in
            for eventType in EventDimensions.eventTypes {
                published.events[eventType] = (counter("playhead_content_events_total", ("event_type", eventType)), 0)
            }
        }
        activeSessions.record(0)
    }

    /// `playhead_consumer_lag_events{consumer}`, made at its first value.
    func recordLag(_ value: Int64) {
        let gauge = lagGauge.withLock { made in
            if let made { return made }
            let gauge = self.gauge("playhead_consumer_lag_events", ("consumer", consumerLabel))
            made = gauge
            return gauge
        }
        gauge.record(value)
    }

    private func gauge(_ label: String, _ dimensions: (String, String)...) -> Gauge {
        gauge(label, dimensions)
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)]) -> Gauge {
        if let factory { return Gauge(label: label, dimensions: dimensions, factory: factory) }
        return Gauge(label: label, dimensions: dimensions)
    }

    private func counter(_ label: String, _ dimensions: (String, String)...) -> Counter {
        counter(label, dimensions)
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        if let factory { return Counter(label: label, dimensions: dimensions, factory: factory) }
        return Counter(label: label, dimensions: dimensions)
    }

    private func floatCounter(_ label: String, _ dimensions: [(String, String)]) -> FloatingPointCounter {
        if let factory { return FloatingPointCounter(label: label, dimensions: dimensions, factory: factory) }
        return FloatingPointCounter(label: label, dimensions: dimensions)
    }

    private func breakdownInstruments(_ d: ContentDimensions) -> BreakdownInstruments {
        let labels = [
            ("content_type", d.contentType), ("event_source", d.eventSource), ("language", d.language), ("genre", d.genre),
        ]
        return BreakdownInstruments(
            viewers: gauge("playhead_breakdown_concurrent_viewers", labels),
            plays: counter("playhead_breakdown_plays_started_total", labels),
            watch: floatCounter("playhead_breakdown_watch_time_seconds_total", labels),
            completions: counter("playhead_breakdown_completions_total", labels)
        )
    }

    /// Brings every instrument up to `snapshot`.
    func publish(_ snapshot: ContentSnapshot) {
        activeSessions.record(snapshot.activeSessions)
        published.withLock { published in
            for (contentType, gauge) in published.viewers where snapshot.concurrentViewers[contentType] == nil {
                gauge.record(0)
            }
            for (contentType, viewers) in snapshot.concurrentViewers {
                if published.viewers[contentType] == nil {
                    published.viewers[contentType] = gauge("playhead_concurrent_viewers", ("content_type", contentType))
                }
                published.viewers[contentType]?.record(viewers)
            }
            advance(&published.plays, to: snapshot.playsStarted, label: "playhead_plays_started_total", dimension: "content_type")
            advance(&published.completions, to: snapshot.completions, label: "playhead_completions_total", dimension: "content_type")
            advance(&published.events, to: snapshot.eventsByType, label: "playhead_content_events_total", dimension: "event_type")
            for (contentType, seconds) in snapshot.watchTimeSeconds {
                var entry = published.watch[contentType]
                    ?? (floatCounter("playhead_watch_time_seconds_total", [("content_type", contentType)]), 0)
                if seconds > entry.1 {
                    entry.0.increment(by: seconds - entry.1)
                    entry.1 = seconds
                }
                published.watch[contentType] = entry
            }
            for (dimensions, figures) in snapshot.breakdown {
                let existing = published.breakdown[dimensions]
                var entry = existing ?? breakdownInstruments(dimensions)
                if existing == nil || entry.published.concurrentViewers != figures.concurrentViewers {
                    entry.viewers.record(figures.concurrentViewers)
                }
                if figures.playsStarted > entry.published.playsStarted {
                    entry.plays.increment(by: figures.playsStarted - entry.published.playsStarted)
                }
                if figures.watchTimeSeconds > entry.published.watchTimeSeconds {
                    entry.watch.increment(by: figures.watchTimeSeconds - entry.published.watchTimeSeconds)
                }
                if figures.completions > entry.published.completions {
                    entry.completions.increment(by: figures.completions - entry.published.completions)
                }
                entry.published = figures
                published.breakdown[dimensions] = entry
            }
            if snapshot.adPlays > published.adPlays {
                adPlays.increment(by: snapshot.adPlays - published.adPlays)
                published.adPlays = snapshot.adPlays
            }
        }
    }

    private func advance(_ published: inout [String: (Counter, Int)], to totals: [String: Int], label: String, dimension: String) {
        for (value, total) in totals {
            var entry = published[value] ?? (counter(label, (dimension, value)), 0)
            if total > entry.1 {
                entry.0.increment(by: total - entry.1)
                entry.1 = total
            }
            published[value] = entry
        }
    }
}

/// The `metrics` consumer group: reads the events topic, feeds a ``ContentAggregator`` and keeps the
/// content instruments (`playhead_concurrent_viewers`, …) current.
///
/// - It updates the gauges and counters at most every `publishInterval` (250 ms) while records flow,
///   and every second otherwise, so that `/metrics` lags the log by at most about half a second.
/// - Every second it expires sessions that went quiet: by the newest `received_at` it has read while
///   records flow (so that a backlog being read does not expire sessions it is still reading), and by
///   the wall clock when the log is idle.
/// - It commits its offsets every `commitInterval` and when it stops. On start it resumes from the
///   group's committed offset. After a crash, the events read since the last commit are read and
///   counted again (at most `commitInterval` worth), and sessions in progress start afresh. So on
///   Kafka are a moved partition's events read since the last commit, by its new owner, after every
///   rebalance: 1 s, not 5 s as until 2026-12-07 (a review counted 265 of 5,380 events twice when a
///   second `observe` joined).
public final class ContentMetricsConsumer: Service, Sendable {
    let log: any LogBackend
    let topic: LogTopic
    let group: String
    let decode: @Sendable (UnsafeRawBufferPointer) -> ContentObservation?
    public let aggregator: ContentAggregator
    let logger: Logger
    let instruments: ContentInstruments
    let commitInterval: Duration
    let maxRecordsPerPoll: Int
    let pollTimeout: Duration
    let publishInterval: Duration
    private let problem = Mutex<String?>(nil)
    /// The log's consumer, once made: asked at each readiness check too, since a call that blocks
    /// the loop (a commit waiting on a broker that answers nothing) leaves ``problem`` as the last
    /// poll set it (an outside review: ready through 80 s of a frozen broker under load).
    private let reading = Mutex<(any LogConsumer)?>(nil)

    /// `nil` while the consumer reads the log; else why it cannot (for `GET /readyz` of
    /// `playhead observe`).
    public var unavailableReason: String? {
        if let problem = problem.withLock({ $0 }) { return problem }
        return reading.withLock { $0 }?.unavailableReason.map { "the metrics consumer cannot read the log: \($0)" }
    }

    /// - Parameters:
    ///   - log: the log backend to read.
    ///   - topic: the events topic.
    ///   - group: the consumer group (committed offsets and the `consumer` label of the lag gauge).
    ///   - decode: turns one record's value into an observation; `nil` skips the record.
    ///   - factory: the metrics factory; `nil` uses the one bootstrapped in `MetricsSystem`.
    public init(
        log: any LogBackend,
        topic: LogTopic = .events,
        group: String = "metrics",
        decode: @escaping @Sendable (UnsafeRawBufferPointer) -> ContentObservation?,
        aggregator: ContentAggregator,
        logger: Logger,
        factory: (any MetricsFactory)? = nil,
        commitInterval: Duration = .seconds(1),
        maxRecordsPerPoll: Int = 10_000,
        pollTimeout: Duration = .milliseconds(250),
        publishInterval: Duration = .milliseconds(250)
    ) {
        self.log = log
        self.topic = topic
        self.group = group
        self.decode = decode
        self.aggregator = aggregator
        self.logger = logger
        self.instruments = ContentInstruments(factory: factory, consumer: group)
        self.commitInterval = commitInterval
        self.maxRecordsPerPoll = maxRecordsPerPoll
        self.pollTimeout = pollTimeout
        self.publishInterval = publishInterval
    }

    /// Brings the content instruments up to the aggregator's figures now (``run()`` does it after each poll).
    public func publishMetrics() {
        instruments.publish(aggregator.snapshot(top: 0))
    }


    public func run() async throws {
        let consumer = try log.consumer(for: topic, group: group)
        reading.withLock { $0 = consumer }
        defer { reading.withLock { $0 = nil } }
        logger.info("content metrics consumer started", metadata: ["topic": "\(topic)", "group": "\(group)", "log": "\(log.displayName)"])
        var committed: [Int32: Int64] = [:]
        var processed: [Int32: Int64] = [:]
        var newestReceivedMicros: Int64 = 0
        let clock = ContinuousClock()
        var lastCommit = clock.now
        var lastExpire = clock.now
        var undecodable = 0
        var lastPollHadRecords = false
        var lastPublish = clock.now
        var unpublished = false

        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let poll: LogPoll
            do {
                poll = try await consumer.poll(maxRecords: maxRecordsPerPoll, timeout: pollTimeout)
                // Polls that do not fail may still read nothing the log holds (no Kafka broker answers).
                let unreachable = consumer.unavailableReason.map { "the metrics consumer cannot read the log: \($0)" }
                problem.withLock { $0 = unreachable }
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { break }
                if error.code == .corrupt, let damaged = try? await consumer.skipDamagedRecord() {
                    // Damage whose end is certain (the lake writer keeps its bytes): read on after it.
                    logger.error("skipped damaged records of the log", metadata: [
                        "log.partition": .stringConvertible(damaged.partition), "log.offset": .stringConvertible(damaged.offset),
                        "log.records": .stringConvertible(damaged.missed), "error": "\(error)",
                    ])
                    instruments.damaged.increment(by: damaged.counted)
                    // Committed with the next commit even when no record follows: a restart stepped
                    // past them, and counted them, again (an outside review).
                    let after = damaged.offset + damaged.records
                    processed[damaged.partition] = max(processed[damaged.partition] ?? 0, after)
                    continue
                }
                logger.error("poll failed; retrying in 1 s", metadata: ["error": "\(error)"])
                problem.withLock { $0 = "the metrics consumer cannot read the log: \(error)" }
                // The lag keeps growing while the log cannot be read (a damaged record): it must show.
                await recordLag(consumer, processed: processed, committed: committed)
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            // Revoked before assigned, and forgotten before this poll's records are observed: a
            // poll can revoke a partition and assign it again (its records then come from the new
            // assignment). Until 2026-12-08 the assignment came first and the sessions were
            // forgotten after the records: such a poll wiped the offsets and the sessions of a
            // partition this member still held (an outside review).
            for partition in poll.revoked {
                committed[partition] = nil
                processed[partition] = nil
            }
            // Partitions another member now reads: their sessions are its to count.
            aggregator.forget(partitions: poll.revoked)
            for (partition, offset) in poll.assigned {
                committed[partition] = offset
                processed[partition] = offset
            }
            var observations: [ContentObservation] = []
            var records = 0
            for batch in poll.batches {
                records += batch.count
                observations.reserveCapacity(observations.count + batch.count)
                do {
                    try batch.forEachRecord { _, value in
                        if var observation = decode(value) {
                            observation.partition = batch.partition
                            observations.append(observation)
                        } else {
                            undecodable += 1
                        }
                    }
                } catch {
                    logger.error("skipping a corrupt batch", metadata: ["partition": .stringConvertible(batch.partition), "offset": .stringConvertible(batch.firstOffset), "error": "\(error)"])
                }
                processed[batch.partition] = batch.nextOffset
            }
            for observation in observations where observation.receivedAtMicros > newestReceivedMicros {
                newestReceivedMicros = observation.receivedAtMicros
            }
            lastPollHadRecords = records > 0
            aggregator.observe(observations)

            let now = clock.now
            if now - lastExpire >= .seconds(1) {
                lastExpire = now
                let wall = WallClock.micros()
                // While records flow, the stream's own clock (newest received_at read); when idle, the wall clock.
                aggregator.expire(now: lastPollHadRecords ? min(wall, newestReceivedMicros) : wall)
                if undecodable > 0 {
                    // On Kafka, messages another producer wrote to the topic (the lake writer keeps their bytes).
                    logger.error("skipped records of the log that are not events records", metadata: ["log.records": .stringConvertible(undecodable)])
                    instruments.damaged.increment(by: undecodable)
                    undecodable = 0
                }
                await recordLag(consumer, processed: processed, committed: committed)
            }
            // Publishing walks every series (up to a few thousand with the breakdowns): at most every
            // `publishInterval`, not after each poll, which under single-event load returns a few
            // records at a time.
            if records > 0 { unpublished = true }
            if (unpublished && now - lastPublish >= publishInterval) || now == lastExpire {
                instruments.publish(aggregator.snapshot(top: 0))
                lastPublish = now
                unpublished = false
            }
            await poll.pauseIfFew(pause: publishInterval / 4)
            if now - lastCommit >= commitInterval {
                lastCommit = now
                await commit(consumer, processed: processed, committed: &committed)
            }
        }
        await commit(consumer, processed: processed, committed: &committed)
        await consumer.close()
        logger.info("content metrics consumer stopped", metadata: ["group": "\(group)"])
    }

    private func recordLag(_ consumer: any LogConsumer, processed: [Int32: Int64], committed: [Int32: Int64]) async {
        guard let lag = await consumer.lag() else { return }
        // The backend counts from the committed offsets; subtract what is read but not committed yet.
        let uncommitted = processed.reduce(Int64(0)) { sum, entry in
            sum + max(0, entry.value - (committed[entry.key] ?? entry.value))
        }
        instruments.recordLag(max(0, lag - uncommitted))
    }

    private func commit(_ consumer: any LogConsumer, processed: [Int32: Int64], committed: inout [Int32: Int64]) async {
        let changed = processed.filter { committed[$0.key] != $0.value }
        guard !changed.isEmpty else { return }
        do {
            try await consumer.commit(changed)
            for (partition, offset) in changed { committed[partition] = offset }
        } catch {
            logger.warning("offset commit failed; will retry", metadata: ["error": "\(error)"])
        }
    }
}
