import class Foundation.Thread
import Logging
import Metrics
import PlayheadLog
import RdKafka
import ServiceLifecycle
import Synchronization

/// The Kafka log backend: Playhead's topics as Kafka topics, appends through one idempotent
/// librdkafka producer, consumers as Kafka consumer groups. See docs/kafka.md.
///
/// - Topics: `<prefix>events` and `<prefix>rejected`, created at start with the admin API
///   (`rd_kafka_CreateTopics`) with the configured partitions, unless they exist.
/// - Producer: `acks=all`, `enable.idempotence=true`, `linger.ms=5`, zstd. An append's completion
///   runs once the brokers acknowledged every record of the batch; any failure fails the batch.
/// - Blocking librdkafka calls run on dedicated threads (one for producer polling, one for admin
///   requests, one per consumer); nothing here blocks the cooperative pool.
///
/// Polling of delivery reports starts in `init`; ``run()`` ties the log's lifetime to a
/// `ServiceGroup`: it refreshes `consumer_lag_events` and, at graceful shutdown, closes consumers
/// and flushes the producer. Call ``shutdown()`` yourself when not running it as a service.
public final class KafkaLog: LogBackend, Service, Sendable {
    public let configuration: KafkaLogConfiguration
    public let displayName: String
    /// The events topic by name: a lake written from it is refused to the embedded log and to
    /// another topic, whose offsets are other records (docs/lake.md, "One log per lake").
    public var sharedIdentity: String? { "kafka:" + configuration.topicName(.events) }
    public func storedName(of topic: LogTopic) -> String { configuration.topicName(topic) }
    let logger: Logger
    private let currentProducer: Mutex<KafkaProducer>
    /// Batches of the current producer in a row that failed with a delivery timeout. An idempotent
    /// producer can stay stuck after a broker lost its state (it reuses a producer id the broker
    /// hands out again); after ``timeoutStreakLimit`` of them, over at least ``timeoutStreakSpan``,
    /// while brokers answer, the producer is replaced.
    private let timeoutStreak = Mutex<TimeoutStreak>(TimeoutStreak())
    static let timeoutStreakLimit = 3
    /// How long the timeouts of a streak must span before it counts as a stuck producer: longer
    /// than a broker can stall unseen. The producer's silence detector (RdKafka's BrokerSilence)
    /// sees a broker that answers nothing after 15 s, read from statistics every 5 s, so timeouts
    /// that came within 20 s of one another may all be a short stall's. Until 2026-12-08 three
    /// timeouts in a row were enough, counted for any producer: a broker frozen for 2.5 s
    /// (delivery_timeout_ms=2000) replaced a healthy producer twice in a second, and its purged
    /// queue failed requests 503 (an outside review).
    static let timeoutStreakSpan: Duration = .seconds(20)

    struct TimeoutStreak {
        var count = 0
        var first: ContinuousClock.Instant?
        var last: ContinuousClock.Instant?

        var isStuck: Bool {
            guard count >= KafkaLog.timeoutStreakLimit, let first, let last else { return false }
            return first.duration(to: last) >= KafkaLog.timeoutStreakSpan
        }

        /// From the first timeout to the last, in whole seconds (for the log).
        var seconds: Int64 {
            guard let first, let last else { return 0 }
            return first.duration(to: last).components.seconds
        }
    }

    /// An append failed because the brokers do not know its topic or partition (deleted, or made
    /// again with fewer partitions, under this process): answered 503, so the edge logs nothing;
    /// said here, at most once per 30 s (an outside review: every request with an invalid event
    /// was retried for good, with nothing in the log).
    func noteUnknownTopic(_ error: LogError) {
        let now = ContinuousClock.now
        let due = lastUnknownTopicWarning.withLock { last -> Bool in
            if let last, last.duration(to: now) < .seconds(30) { return false }
            last = now
            return true
        }
        if due { logger.warning("Kafka append failed: \(error.message)") }
    }
    private let lastUnknownTopicWarning = Mutex<ContinuousClock.Instant?>(nil)

    /// A batch of `producer` was delivered, or failed with a delivery timeout. Only the current
    /// producer's count, as for ``noteFenced(_:)``: the timeouts of a producer already replaced
    /// (its backlog expiring) counted toward replacing its replacement (an outside review). A
    /// timeout while the producer reports its brokers down or silent is theirs, not a stuck
    /// producer's, and ends the streak.
    func noteDelivery(timedOut: Bool, by producer: KafkaProducer, at now: ContinuousClock.Instant = .now) {
        currentProducer.withLock { current in
            guard current === producer else { return }
            // The brokers' state only for a timeout: a delivery (every batch) needs none of it.
            let counts = timedOut && producer.unavailableReason == nil
            timeoutStreak.withLock { streak in
                guard counts else {
                    streak = TimeoutStreak()
                    return
                }
                streak.count += 1
                if streak.first == nil { streak.first = now }
                streak.last = now
            }
        }
    }

    /// A batch of the current producer was refused as fenced (PRODUCER_FENCED): the broker has a
    /// newer epoch for its producer id, and every later batch of it is refused the same way, so it
    /// is replaced at the next append. It was kept: an `ingest` answered every request 503 after a
    /// broker paused for 40 s, with `/readyz` ready, until restarted (a probe, 4 of 6 times).
    /// A batch of an already replaced producer changes nothing.
    func noteFenced(_ producer: KafkaProducer) {
        currentProducer.withLock { current in
            if current === producer { fenced.withLock { $0 = true } }
        }
    }
    private let fenced = Mutex<Bool>(false)
    let admin: KafkaAdmin
    let metrics: KafkaLogMetrics
    private let state = Mutex<State>(State())
    private let setupTask = Mutex<Task<Void, Never>?>(nil)

    struct State {
        var topicsReady = false
        var topicsError: String? = "looking up the Kafka topics (making them, where this process makes them)"
        var closed = false
        /// Set by ``shutdown(flushTimeout:)`` when it takes the producer to close it: a replacement
        /// made after that is closed, not put in place.
        var producerClosed = false
        var consumers: [ObjectIdentifier: KafkaLogConsumer] = [:]
    }

    /// Creates the log from a `kafka://` URL (see ``KafkaLogConfiguration``) and starts creating
    /// its topics in the background (``waitUntilReady(timeout:)``).
    public convenience init(url: String, logger: Logger, metricsFactory: (any MetricsFactory)? = nil) throws(LogError) {
        try self.init(configuration: KafkaLogConfiguration(url: url), logger: logger, metricsFactory: metricsFactory)
    }

    public init(
        configuration: KafkaLogConfiguration, logger: Logger, metricsFactory: (any MetricsFactory)? = nil
    ) throws(LogError) {
        self.configuration = configuration
        self.logger = logger
        // A prefix is shown as `?prefix=`: `kafka://host/<prefix>` names a topic now (a probe copied
        // the logged URL of a prefix and got the topic).
        self.displayName = configuration.eventsTopic.map { "kafka://\(configuration.bootstrapServers)/\($0)" }
            ?? "kafka://\(configuration.bootstrapServers)/?prefix=\(configuration.topicPrefix)"
        self.metrics = KafkaLogMetrics(factory: metricsFactory ?? MetricsSystem.factory)
        let producer: KafkaProducer
        do {
            producer = try KafkaProducer(configuration: configuration.producerConfiguration, logger: logger)
        } catch {
            throw LogError(kafka: error, context: "Kafka producer")
        }
        currentProducer = Mutex(producer)
        do {
            admin = try KafkaAdmin(configuration: configuration.adminConfiguration, logger: logger)
        } catch {
            Task { await producer.close(flushTimeout: .zero) }
            throw LogError(kafka: error, context: "Kafka admin client")
        }
        logger.info("Kafka log \(displayName) using librdkafka \(RdKafka.versionString)")
        if let warning = Self.libraryWarning(version: RdKafka.version, versionString: RdKafka.versionString) { logger.warning("\(warning)") }
        let task = Task { [self] in await self.prepareTopics() }
        setupTask.withLock { $0 = task }
    }

    /// Releases before 2026-12-03 read the path of `kafka://host/<path>` as a prefix: the same URL
    /// wrote `<path>events` and `<path>rejected`. When those exist beside the topic the path names
    /// now, the URL most likely comes from such a release, and their records not yet in the lake
    /// are read by nothing (a probe: 1,000 acknowledged events left there, without a word).
    private func warnOfPrefixTopics(_ admin: KafkaAdmin) async {
        guard let topic = configuration.eventsTopic else { return }
        let old = topic + LogTopic.events.name
        guard let count = try? await admin.partitionCount(topic: old, timeout: .seconds(5)), count > 0 else { return }
        logger.error("Kafka topic \(old) exists beside \(topic): releases before 2026-12-03 read the path of this URL (/\(topic)) as a prefix of the topics (\(old), \(topic)\(LogTopic.rejected.name)); if it was written by one, its records are read by nothing now: give ?prefix=\(topic) instead of the path to keep using those topics (docs/kafka.md, \"Upgrading\")")
    }

    /// What to say about the librdkafka loaded at run time, or nil. Debian 12's 2.0.2 fails the
    /// handshake with some brokers (Tansu: `ApiVersionRequest failed: Local: Read underflow`),
    /// which shows only as a broker that cannot be reached (an outside review: `log dump` said
    /// "is the broker reachable?", `ingest` "Failed while waiting for controller").
    static func libraryWarning(version: Int, versionString: String) -> String? {
        guard version < 0x0201_0000 else { return nil }
        return "librdkafka \(versionString) is loaded: releases before 2.1 fail the handshake with some brokers (Tansu: ApiVersionRequest failed: Local: Read underflow), which looks like a broker that cannot be reached; run with a newer librdkafka.so.1 (`scripts/setup --kafka --no-build` links the one of the confluent-kafka wheel, and `. scripts/env` puts it on LD_LIBRARY_PATH; docs/kafka.md, \"The librdkafka-version trap\")"
    }

    /// The topics every Playhead deployment uses.
    public static let standardTopics: [LogTopic] = [.events, .rejected]

    private func prepareTopics() async {
        guard configuration.createTopics else {
            if configuration.waitForTopics {
                await waitForStandardTopics()
            } else {
                state.withLock {
                    $0.topicsReady = true
                    $0.topicsError = nil
                }
            }
            return
        }
        let topics = Self.standardTopics.map {
            KafkaAdmin.NewTopic(
                name: configuration.topicName($0), partitions: configuration.partitions,
                replicationFactor: configuration.replicationFactor,
                configs: ["max.message.bytes": String(configuration.maxMessageBytes)]
            )
        }
        var attempt = 0
        while !Task.isCancelled {
            do {
                let created = try await admin.createTopics(topics, timeout: .seconds(10))
                if !created.isEmpty {
                    logger.info("Kafka topics created: \(created.joined(separator: ", ")) (\(configuration.partitions) partitions)")
                }
                // Existing topics are used as they are; a partition count other than the URL's
                // was not mentioned at all (a probe, 2026-12-04).
                for topic in topics where !created.contains(topic.name) {
                    // Said as a notice only to a URL that gave partitions= (`log dump` was told of
                    // "the 12 of partitions=" that it never gave, a probe).
                    if let count = try? await admin.partitionCount(topic: topic.name, timeout: .seconds(5)),
                        count > 0, count != configuration.partitions
                    {
                        if configuration.partitionsGiven {
                            logger.notice("Kafka topic \(topic.name) exists with \(count) partitions, not the \(configuration.partitions) of partitions=: existing topics are used as they are (docs/kafka.md)")
                        } else {
                            logger.info("Kafka topic \(topic.name) exists with \(count) partitions (existing topics are used as they are)")
                        }
                    }
                    // Compaction keeps one record per key, and records are keyed by session: a
                    // compacted events topic loses the events `store` has not read yet.
                    if let described = try? await admin.topicConfiguration(topic.name, timeout: .seconds(5)),
                        let policy = described["cleanup.policy"], policy.contains("compact")
                    {
                        logger.error("Kafka topic \(topic.name) has cleanup.policy=\(policy): compaction keeps only the last record of each key (a session), so events not yet in the lake can be deleted before store reads them; set cleanup.policy=delete (docs/kafka.md)")
                    }
                }
                await warnOfPrefixTopics(admin)
                state.withLock {
                    $0.topicsReady = true
                    $0.topicsError = nil
                }
                return
            } catch {
                attempt += 1
                let message = "cannot create Kafka topics on \(configuration.bootstrapServers): \(error)\(brokerErrorNote)"
                state.withLock { $0.topicsError = message }
                if attempt == 1 || attempt % 30 == 0 { logger.warning("\(message); retrying") }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// For a log that creates no topics and waits for them (`store` and `observe`, which leave
    /// the topics to `ingest`; `log dump --follow`; `create_topics=false`): ready once both topics
    /// exist (an `ingest` with only the events topic made by hand failed every request with an
    /// invalid event, on the rejected append). Until then `/readyz` and appends say why. Until
    /// 2026-12-05 `store` and `observe` made the topics of the URL they were given, so a typo in it
    /// made two topics of 12 partitions and a reader that said it was ready (an outside review);
    /// with `create_topics=false`, `ingest` was ready and produced into a topic the broker made
    /// with its own defaults.
    private func waitForStandardTopics() async {
        var said = false
        wait: while !Task.isCancelled {
            var reason: String?
            for topic in Self.standardTopics {
                let name = configuration.topicName(topic)
                do {
                    if try await admin.partitionCount(topic: name, timeout: .seconds(5)) > 0 { continue }
                    reason = "Kafka topic \(name) does not exist (yet): waiting for it to be made, by `playhead ingest` (which makes both topics, \(configuration.topicName(.events)) and \(configuration.topicName(.rejected)), unless its URL says create_topics=false) or by hand; check the topic in --log"
                } catch {
                    reason = "cannot look for Kafka topic \(name) on \(configuration.bootstrapServers): \(error)\(brokerErrorNote)"
                }
                break
            }
            guard let reason else {
                state.withLock {
                    $0.topicsReady = true
                    $0.topicsError = nil
                }
                if said { logger.notice("Kafka topics \(configuration.topicName(.events)) and \(configuration.topicName(.rejected)) exist now") }
                break wait
            }
            state.withLock { $0.topicsError = reason }
            if !said {
                logger.warning("\(reason)")
                said = true
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// What librdkafka last said about the connections, for a message about a request that timed
    /// out: " (the last broker error: …)", or "".
    private var brokerErrorNote: String {
        admin.recentClientError.map { " (the last broker error: \($0))" } ?? ""
    }

    /// Waits until the topics exist (or were found to exist). Throws `unavailable` after `timeout`.
    public func waitUntilReady(timeout: Duration = .seconds(30)) async throws(LogError) {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let (ready, error, closed) = state.withLock { ($0.topicsReady, $0.topicsError, $0.closed) }
            if ready { return }
            if closed { throw LogError(code: .closed, message: "the Kafka log is closed") }
            if ContinuousClock.now >= deadline {
                throw LogError(code: .unavailable, message: error ?? "Kafka topics not ready", retryAfterSeconds: 5)
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    var topicsReady: Bool { state.withLock { $0.topicsReady } }

    /// Why the topics are not ready (not yet created or found), or nil once they are.
    var topicsUnavailableReason: String? {
        let (ready, error) = state.withLock { ($0.topicsReady, $0.topicsError) }
        return ready ? nil : error ?? "waiting for the Kafka topics"
    }

    /// `nil` when appends can go through, else why not (for `/readyz`).
    public var unavailableReason: String? {
        let (ready, error, closed) = state.withLock { ($0.topicsReady, $0.topicsError, $0.closed) }
        if closed { return "the Kafka log is closed" }
        if !ready { return error ?? "looking up the Kafka topics" }
        switch producerForAppend() {
        case .success(let producer): return producer.unavailableReason
        case .failure(let error): return error.message
        }
    }

    /// The producer appends go through now (a replacement, once made, takes its place).
    var producer: KafkaProducer { currentProducer.withLock { $0 } }

    /// The producer for an append, or why there is none now. A producer with a fatal error (the
    /// idempotent producer's id was lost, e.g. after a broker lost its state), fenced, or stuck
    /// (``TimeoutStreak``) is replaced by a new one, made on a thread of its own; meanwhile
    /// appends fail as unavailable (503 with `Retry-After` at the edge), as the old producer's
    /// would. The old one is closed in the background, failing what it still held. Until
    /// 2026-12-08 the new producer was made here, under the producer's lock, on the event loop of
    /// the append that found the old one failed: `rd_kafka_new`, a blocking C call (it starts
    /// librdkafka's threads), held that loop and every append of the others behind the lock.
    func producerForAppend() -> Result<KafkaProducer, LogError> {
        // A closed log starts no replacement (each append after shutdown made and destroyed one).
        if state_isClosed { return .failure(LogError(code: .closed, message: "the Kafka log is closed")) }
        let now = ContinuousClock.now
        var reason: String?
        let outcome = currentProducer.withLock { current -> Result<KafkaProducer, LogError> in
            if let underway = replacement.withLock({ $0.underway }) {
                return .failure(Self.replacingError(underway))
            }
            let wasFenced = fenced.withLock { $0 }
            // Read under the producer's lock, and cleared when the replacement is in place: an
            // append that read the streak before another replaced the producer replaced the
            // replacement too (an outside review). Not when it starts: the old producer's fenced
            // answers and timeouts that come while the new one is made (they come in bursts) then
            // counted against the new one, which was replaced at its first append (a review).
            let streak = timeoutStreak.withLock { $0 }
            guard current.hasFatalError || wasFenced || (streak.isStuck && current.unavailableReason == nil) else {
                return .success(current)
            }
            // After a failed attempt, the next one a second later (each append would try again).
            if let failed = replacement.withLock({ $0.lastFailure }), failed.duration(to: now) < .seconds(1) {
                return .success(current)
            }
            let why =
                current.hasFatalError
                ? "had a fatal error (\(current.unavailableReason ?? ""))"
                : wasFenced
                    ? "was fenced (PRODUCER_FENCED: the broker has a newer producer with its id)"
                    : "timed out \(streak.count) batches in a row over \(streak.seconds) s while brokers answered"
            replacement.withLock { $0.underway = why }
            reason = why
            return .failure(Self.replacingError(why))
        }
        if let reason { startReplacement(because: reason) }
        return outcome
    }

    private static func replacingError(_ reason: String) -> LogError {
        LogError(code: .unavailable, message: "the Kafka producer \(reason) and is being replaced by a new one", retryAfterSeconds: 1)
    }

    /// A replacement under way, when the last attempt failed, and when a failure was last logged.
    struct Replacement {
        var underway: String?
        var lastFailure: ContinuousClock.Instant?
        var lastFailureLogged: ContinuousClock.Instant?
        var failuresNotLogged = 0
    }
    private let replacement = Mutex<Replacement>(Replacement())
    /// The closes of replaced producers, awaited by ``shutdown(flushTimeout:)``.
    private let retiring = Mutex<[Task<Void, Never>]>([])

    /// Makes a producer with the log's configuration. A test may make it slower or fail
    /// (`PlayheadKafkaTests`: appends fail at once while a replacement is being made).
    let makeProducer = Mutex<@Sendable (_ configuration: [String: String], _ logger: Logger) throws -> KafkaProducer>({
        try KafkaProducer(configuration: $0, logger: $1)
    })

    /// Makes the replacement producer on a new thread and puts it in place, unless the log's
    /// shutdown has already closed the producer (then the new one is closed). What made it due
    /// (the fenced flag, the timeout streak) is cleared with the swap, so that a failed attempt is
    /// tried again a second later whatever made it due.
    private func startReplacement(because reason: String) {
        logger.warning("Kafka producer \(reason); replacing it")
        let thread = Thread { [self] in
            let make = makeProducer.withLock { $0 }
            let made = Result { try make(configuration.producerConfiguration, logger) }
            let now = ContinuousClock.now
            var failureToLog: (error: any Error, notLogged: Int)?
            let (retired, unused) = currentProducer.withLock { current -> (KafkaProducer?, KafkaProducer?) in
                defer { replacement.withLock { $0.underway = nil } }
                switch made {
                case .success(let new):
                    if state.withLock({ $0.producerClosed }) { return (nil, new) }
                    timeoutStreak.withLock { $0 = TimeoutStreak() }
                    fenced.withLock { $0 = false }
                    replacement.withLock { $0.lastFailure = nil }
                    let old = current
                    current = new
                    return (old, nil)
                case .failure(let error):
                    replacement.withLock { replacement in
                        replacement.lastFailure = now
                        // Once per 30 s: a fatal producer is tried again each second.
                        if let last = replacement.lastFailureLogged, last.duration(to: now) < .seconds(30) {
                            replacement.failuresNotLogged += 1
                        } else {
                            failureToLog = (error, replacement.failuresNotLogged)
                            replacement.lastFailureLogged = now
                            replacement.failuresNotLogged = 0
                        }
                    }
                    return (nil, nil)
                }
            }
            if let (error, notLogged) = failureToLog {
                logger.error("cannot replace the failed Kafka producer: \(error); trying again a second later, at the next append\(notLogged > 0 ? " (\(notLogged) more attempts failed since the last such line)" : "")")
            }
            if retired != nil { logger.notice("Kafka producer replaced") }
            if let old = retired ?? unused {
                let task = Task { await old.close(flushTimeout: .zero) }
                retiring.withLock { $0.append(task) }
            }
        }
        thread.name = "kafka-producer-replace"
        thread.start()
    }

    public func producer(for topic: LogTopic) throws(LogError) -> any LogProducer {
        if state.withLock({ $0.closed }) { throw LogError(code: .closed, message: "the Kafka log is closed") }
        metrics.appendFailuresAtZero()
        return KafkaLogProducer(log: self, topic: topic, kafkaTopic: configuration.topicName(topic))
    }

    public func consumer(for topic: LogTopic, group: String?) throws(LogError) -> any LogConsumer {
        try makeConsumer(for: topic, group: group)
    }

    /// Like ``consumer(for:group:)``, with the concrete type.
    public func makeConsumer(for topic: LogTopic, group: String?) throws(LogError) -> KafkaLogConsumer {
        if state.withLock({ $0.closed }) { throw LogError(code: .closed, message: "the Kafka log is closed") }
        let kafkaConsumer: KafkaConsumer
        do {
            // librdkafka needs a group.id even to assign partitions by hand: a reader gets a unique
            // one that never subscribes and never commits.
            kafkaConsumer = try KafkaConsumer(
                configuration: configuration.consumerConfiguration(
                    group: group ?? "playhead-reader-\(UInt64.random(in: 0...UInt64.max))",
                    partitionEnds: group == nil
                ),
                uncommittedStart: group == nil ? nil : 0,
                logger: logger
            )
        } catch {
            throw LogError(kafka: error, context: "Kafka consumer")
        }
        let consumer = KafkaLogConsumer(
            log: self, topic: topic, kafkaTopic: configuration.topicName(topic), group: group, consumer: kafkaConsumer
        )
        state.withLock { $0.consumers[ObjectIdentifier(consumer)] = consumer }
        return consumer
    }

    func forget(_ consumer: KafkaLogConsumer) {
        _ = state.withLock { $0.consumers.removeValue(forKey: ObjectIdentifier(consumer)) }
    }

    /// The number of partitions of `topic` in the cluster.
    public func partitionCount(of topic: LogTopic) async throws(LogError) -> Int {
        do {
            return try await admin.partitionCount(topic: configuration.topicName(topic))
        } catch {
            throw LogError(kafka: error, context: "metadata of \(configuration.topicName(topic))")
        }
    }

    /// Waits for graceful shutdown, then ``shutdown()``. (`consumer_lag_events` is refreshed by the
    /// consumers' owners, every second. Refreshed here too, every 5 s, until 2026-12-04, the metrics
    /// consumer's lag read the committed offsets for up to a second in five instead of what it had
    /// processed: two writers of one series.)
    public func run() async throws {
        try? await gracefulShutdown()  // returns at graceful shutdown, throws at cancellation
        await shutdown()
    }

    /// Closes every consumer, flushes the producer (up to `flushTimeout`; what is left fails with
    /// `closed`) and releases the clients. Idempotent.
    public func shutdown(flushTimeout: Duration = .seconds(10)) async {
        let consumers = state.withLock { state -> [KafkaLogConsumer]? in
            if state.closed { return nil }
            state.closed = true
            return Array(state.consumers.values)
        }
        guard let consumers else { return }
        setupTask.withLock { $0?.cancel() }
        // At once and for at most `consumerCloseLimit` in all: a close waits on its consumer's
        // thread behind the call running there, and leaving the group waits on the coordinator.
        // Until 2026-12-08 each close was awaited in turn with no limit, and a `store` stopped
        // while the broker was frozen stayed up until it thawed (an outside review). A consumer
        // left closing keeps its librdkafka handle, its threads and its group membership (dropped
        // by the coordinator at the session timeout) until the process exits, which ends them.
        let closed = await BoundedWait.finish(within: Self.consumerCloseLimit) {
            await withTaskGroup(of: Void.self) { group in
                for consumer in consumers { group.addTask { await consumer.close() } }
            }
        }
        if !closed {
            logger.warning("Kafka consumers of \(displayName) did not close within \(Self.consumerCloseLimit) (a broker that does not answer?); left as they are: the group drops them at the session timeout")
        }
        // A replacement being made (milliseconds, normally) is put in place first, and closed
        // with the rest: it outlived the shutdown, its librdkafka threads too (a review).
        for _ in 0..<1000 where replacement.withLock({ $0.underway != nil }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let producer = currentProducer.withLock { current in
            state.withLock { $0.producerClosed = true }
            return current
        }
        await producer.close(flushTimeout: flushTimeout)
        let retired = retiring.withLock { $0 }
        _ = await BoundedWait.finish(within: .seconds(10)) {
            for task in retired { await task.value }
        }
        await admin.close()
        logger.info("Kafka log \(displayName) closed")
    }
}

extension KafkaLog {
    /// How long ``shutdown(flushTimeout:)`` waits for its consumers to close.
    static let consumerCloseLimit: Duration = .seconds(10)
}

/// Appends to one topic of a ``KafkaLog``.
struct KafkaLogProducer: LogProducer {
    let log: KafkaLog
    let topic: LogTopic
    let kafkaTopic: String

    var unavailableReason: String? { log.unavailableReason }

    func append(_ batch: LogRecordBatch, completion: @escaping @Sendable (Result<LogAppendResult, LogError>) -> Void) {
        let metrics = log.metrics
        guard log.topicsReady else {
            let error = LogError(
                code: log.state_isClosed ? .closed : .unavailable,
                message: log.unavailableReason ?? "Kafka topics are not ready", retryAfterSeconds: 2
            )
            metrics.failure(error.code)
            completion(.failure(error))
            return
        }
        let producer: KafkaProducer
        switch log.producerForAppend() {
        case .success(let current): producer = current
        case .failure(let error):
            metrics.failure(error.code)
            completion(.failure(error))
            return
        }
        // While librdkafka reports every broker down, fail at once (503 + Retry-After at the edge)
        // rather than holding the request for the whole delivery timeout.
        if let reason = producer.unavailableReason {
            let error = LogError(code: .unavailable, message: reason, retryAfterSeconds: 5)
            metrics.failure(error.code)
            completion(.failure(error))
            return
        }
        let started = ContinuousClock.now
        let topic = self.topic
        let kafkaTopic = self.kafkaTopic
        batch.values.withUnsafeBytes { values in
            batch.keys.withUnsafeBytes { keys in
                var position = 0
                var keyStart = 0
                let keyEnds = batch.keyEnds
                producer.produce(
                    topic: kafkaTopic,
                    count: batch.count,
                    message: { index in
                        let length = Int(LogFraming.readUInt32(values, at: position))
                        let value = UnsafeRawBufferPointer(rebasing: values[(position + 4)..<(position + 4 + length)])
                        position += 4 + length
                        var key: UnsafeRawBufferPointer?
                        if !keyEnds.isEmpty {
                            let keyEnd = Int(keyEnds[index])
                            key = UnsafeRawBufferPointer(rebasing: keys[keyStart..<keyEnd])
                            keyStart = keyEnd
                        }
                        return KafkaOutgoingMessage(key: key, value: value)
                    },
                    completion: { result in
                        switch result {
                        case .success(let report):
                            log.noteDelivery(timedOut: false, by: producer)
                            metrics.appended(topic: topic, duration: started.duration(to: .now))
                            completion(
                                .success(
                                    LogAppendResult(partition: report.partition, firstOffset: report.firstOffset, count: report.count)
                                )
                            )
                        case .failure(let error):
                            if error.code == RdKafkaError.messageTimedOut { log.noteDelivery(timedOut: true, by: producer) }
                            if error.code == RdKafkaError.producerFenced || error.code == RdKafkaError.fenced { log.noteFenced(producer) }
                            var logError = LogError(kafka: error, context: "append to \(kafkaTopic)")
                            if logError.code == .closed && !log.state_isClosed {
                                // Purged by a producer replaced (failed, fenced or stuck), not
                                // by a shutdown: the client should retry later (it was counted and
                                // answered as `closed`, which the runbook reads as a stopping instance).
                                logError = LogError(
                                    code: .unavailable,
                                    message: "\(logError.message) (the Kafka producer was replaced: failed, fenced or stuck, said in the server's log)",
                                    retryAfterSeconds: 5
                                )
                            }
                            if LogError.unknownTopicCodes.contains(error.code) {
                                log.noteUnknownTopic(logError)
                            }
                            metrics.failure(logError.code)
                            completion(.failure(logError))
                        }
                    }
                )
            }
        }
    }
}

extension KafkaLog {
    var state_isClosed: Bool { state.withLock { $0.closed } }
}

/// The log's instruments (names from METRICS.md).
final class KafkaLogMetrics: Sendable {
    let factory: any MetricsFactory
    private let timers = Mutex<[String: Metrics.Timer]>([:])
    private let failures = Mutex<[String: Counter]>([:])
    private let lags = Mutex<[String: Gauge]>([:])
    /// Per group: the events partitions each of this process's consumers of it holds, and the gauge
    /// of their sum (a consumer closed and made again beside a live one counts once).
    private let held = Mutex<[String: (gauge: Gauge, byConsumer: [ObjectIdentifier: Int])]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    /// The append failure counters start at 0, once a producer is made, for the codes a Kafka append
    /// fails with, as the embedded log's writer's do: a counter that appears at its first failure,
    /// already above 0, is a step `rate()` and `increase()` do not see (a review: 2,267 failures
    /// while the broker froze, and the panel showed none). Only in a process that appends: `store`
    /// and `observe` exported them at 0 until 2026-12-07 (an outside review).
    func appendFailuresAtZero() {
        // `full`: librdkafka's queue full (a broker that stalls under load), the first to come.
        for code in [LogError.Code.full, .unavailable, .io, .tooLarge] { failure(code, count: 0) }
    }

    func appended(topic: LogTopic, duration: Duration) {
        let timer = timers.withLock { timers in
            if let timer = timers[topic.name] { return timer }
            let timer = Metrics.Timer(
                label: "playhead_log_append_duration_seconds",
                dimensions: [("backend", "kafka"), ("topic", topic.name)], factory: factory
            )
            timers[topic.name] = timer
            return timer
        }
        timer.recordNanoseconds(Int64(duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    func failure(_ code: LogError.Code, count: Int64 = 1) {
        let counter = failures.withLock { counters in
            if let counter = counters[code.description] { return counter }
            let counter = Counter(
                label: "playhead_log_append_failures_total", dimensions: [("code", code.description)], factory: factory
            )
            counters[code.description] = counter
            return counter
        }
        counter.increment(by: count)
    }

    func lag(consumer: String, value: Int64) {
        let gauge = lags.withLock { gauges in
            if let gauge = gauges[consumer] { return gauge }
            let gauge = Gauge(label: "playhead_consumer_lag_events", dimensions: [("consumer", consumer)], factory: factory)
            gauges[consumer] = gauge
            return gauge
        }
        gauge.record(value)
    }
}

extension KafkaLogMetrics {
    /// Sets `playhead_consumer_partitions_assigned{consumer=<group>}` to what the group's consumers
    /// in this process hold, after `consumer` now holds `count` partitions of the events topic
    /// (0 when it starts, and when it closes).
    func partitionsHeld(consumer label: String, by consumer: ObjectIdentifier, count: Int) {
        held.withLock { held in
            var entry = held[label] ?? (
                gauge: Gauge(label: "playhead_consumer_partitions_assigned", dimensions: [("consumer", label)], factory: factory),
                byConsumer: [:]
            )
            entry.byConsumer[consumer] = count
            entry.gauge.record(entry.byConsumer.values.reduce(0, +))
            if count == 0 { entry.byConsumer.removeValue(forKey: consumer) }
            held[label] = entry
        }
    }
}

extension LogError {
    /// Maps a librdkafka error to the log's error codes: queue full → `full`; broker unreachable,
    /// timeouts, not enough replicas, a fenced or failed idempotent producer → `unavailable`; too large → `tooLarge`; purged or destroyed
    /// (shutdown) → `closed`; unknown topic or bad argument → `invalidArgument`; else `io`.
    /// librdkafka's codes for a topic or partition the brokers do not know.
    static let unknownTopicCodes: Set<Int32> = [RdKafkaError.unknownTopic, RdKafkaError.unknownPartition, RdKafkaError.unknownTopicOrPartition]

    init(kafka error: RdKafkaError, context: String) {
        let code: LogError.Code
        var retryAfter: Int? = nil
        switch error.code {
        case RdKafkaError.queueFull:
            code = .full
            retryAfter = 1
        case RdKafkaError.messageTooLarge, RdKafkaError.recordListTooLarge:
            code = .tooLarge
        case RdKafkaError.purgedQueue, RdKafkaError.purgedInFlight, RdKafkaError.destroyed:
            code = .closed
            retryAfter = 1
        case RdKafkaError.unknownTopic, RdKafkaError.unknownPartition, RdKafkaError.unknownTopicOrPartition:
            // A topic deleted, or made again with fewer partitions, under a running producer (an
            // in-memory broker restarted): librdkafka catches up at its next metadata refresh, or
            // the operator makes the topic. Until 2026-12-05 this was `invalidArgument`, a 500 "a
            // retry does not mend it", which a client may drop (an outside review).
            code = .unavailable
            retryAfter = 5
        case RdKafkaError.invalidArgument:
            code = .invalidArgument
        case RdKafkaError.messageTimedOut, RdKafkaError.timedOut, RdKafkaError.transport, RdKafkaError.allBrokersDown,
            RdKafkaError.producerFenced, RdKafkaError.fenced, RdKafkaError.fatal,
            RdKafkaError.unknownProducerId, RdKafkaError.outOfOrderSequence, RdKafkaError.invalidProducerEpoch:
            // Fenced: the records of a producer replaced after a broker stall (docs/kafka.md); a new
            // attempt goes through the new producer, so the client should retry (503, not 500).
            // The producer's sequence errors (a broker that lost its producer state: an in-memory
            // Tansu restarted) make the producer fail for good, and it is replaced at the next
            // append: they were answered 500 "a retry does not mend it", which a client may drop
            // (a probe).
            code = .unavailable
            retryAfter = 5
        default:
            if error.isRetriable || error.isFatal {
                code = .unavailable
                retryAfter = 5
            } else {
                code = .io
            }
        }
        var message = "\(context): \(error)"
        if error.code == RdKafkaError.messageTimedOut {
            message += " (no broker acknowledged the records within the delivery timeout; is the broker down?)"
        } else if LogError.unknownTopicCodes.contains(error.code) {
            message += " (the topic or the partition is not in the brokers' metadata: deleted, or made again with fewer partitions; appends go on once the topic exists and the producer has refreshed its metadata)"
        }
        self.init(code: code, message: message, retryAfterSeconds: retryAfter)
    }
}
