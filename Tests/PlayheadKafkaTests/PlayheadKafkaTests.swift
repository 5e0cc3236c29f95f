import Foundation
import Logging
import Metrics
import MetricsTestKit
@testable import PlayheadKafka
import PlayheadLog
import PlayheadTestSupport
import RdKafka
import Synchronization
import Testing

let testLogger: Logger = {
    var logger = Logger(label: "playhead-kafka-tests")
    logger.logLevel = ProcessInfo.processInfo.environment["PLAYHEAD_TEST_LOG"] == "1" ? .debug : .critical
    return logger
}()

func requireModernLibrdkafka() throws {
    guard RdKafka.version >= 0x0201_0000 else {
        throw TestSupportError(
            "librdkafka \(RdKafka.versionString) is loaded; Tansu needs a newer one. Run with "
                + "LD_LIBRARY_PATH=/work/main/.local/lib (or `. scripts/env`): see docs/kafka.md"
        )
    }
}

/// A batch of `count` records "event-<i>" keyed "session-<i % sessions>".
func makeBatch(_ range: Range<Int>, sessions: Int = 5, tag: String = "event") -> LogRecordBatch {
    var batch = LogRecordBatch()
    for index in range {
        batch.appendRecord(key: Array("session-\(index % sessions)".utf8), value: Array("\(tag)-\(index)".utf8))
    }
    return batch
}

/// Every record's value as a string.
func strings(_ batches: [ConsumedBatch]) throws -> [String] {
    var result: [String] = []
    for batch in batches {
        try batch.forEachRecord { _, value in result.append(String(decoding: value, as: UTF8.self)) }
    }
    return result
}

/// Starts replacing `log`'s producer, which must be due for it (`first`, fenced or stuck), and
/// waits (10 s at most) for the new one to be in place; returns it.
func replaced(_ log: KafkaLog, _ first: KafkaProducer) async throws -> KafkaProducer {
    #expect(throws: LogError.self) { _ = try log.producerForAppend().get() }
    let deadline = ContinuousClock.now.advanced(by: .seconds(10))
    while log.producer === first, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
    #expect(log.producer !== first)
    return log.producer
}

/// Makes `log`'s replacement producers take `seconds` longer to make.
func makeProducersSlowly(_ log: KafkaLog, seconds: Double) {
    log.makeProducer.withLock { make in
        make = { configuration, logger in
            Thread.sleep(forTimeInterval: seconds)
            return try KafkaProducer(configuration: configuration, logger: logger)
        }
    }
}

/// Reads the events topic of `log` from the start and expects exactly the events of `range`
/// (`makeBatch`'s values), in any order.
func expectEvents(_ range: Range<Int>, in log: KafkaLog) async throws {
    let reader = try log.consumer(for: .events, group: nil)
    let all = try await drain(reader, count: range.count)
    #expect(try strings(all.batches).sorted() == range.map { "event-\($0)" }.sorted())
    await reader.close()
}

/// Starts a Kafka log on `tansu` with short group timeouts, and waits for its topics.
func makeLog(
    _ tansu: Tansu, prefix: String, partitions: Int = 4, extra: String = "", metrics: (any MetricsFactory)? = nil
) async throws -> KafkaLog {
    let log = try KafkaLog(
        url: "kafka://\(tansu.bootstrap)/?prefix=\(prefix)&partitions=\(partitions)&session_timeout_ms=3000\(extra)",
        logger: testLogger, metricsFactory: metrics
    )
    // Up to 60 s: at the suite's start, with hundreds of tests starting at once, Tansu took more
    // than 20 s to create the topics (CI, 2026-12-05); the wait ends as soon as they exist.
    do {
        try await log.waitUntilReady(timeout: .seconds(60))
    } catch {
        await log.shutdown()  // its clients, and the task that goes on creating the topics
        throw error
    }
    return log
}

/// Waits until `condition` holds (checked every 100 ms); throws after `timeout`.
func waitFor(_ what: String, timeout: Duration = .seconds(45), _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while await !condition() {
        if ContinuousClock.now > deadline { throw TestSupportError("timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(100))
    }
}

/// Polls `consumer` until `count` records arrived (or `timeout`), collecting everything it reports.
func drain(_ consumer: any LogConsumer, count: Int, timeout: Duration = .seconds(40)) async throws -> LogPoll {
    var total = LogPoll()
    var received = 0
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while received < count && ContinuousClock.now < deadline {
        let poll = try await consumer.poll(maxRecords: 5000, timeout: .milliseconds(500))
        total.batches += poll.batches
        total.revoked += poll.revoked
        total.assigned.merge(poll.assigned) { _, new in new }
        received += poll.batches.reduce(0) { $0 + $1.count }
    }
    return total
}

@Suite("Kafka log URL")
struct KafkaLogURLTests {
    @Test("defaults and every parameter")
    func parse() throws {
        let plain = try KafkaLogConfiguration(url: "kafka://127.0.0.1:9092")
        #expect(plain.bootstrapServers == "127.0.0.1:9092")
        #expect(plain.topicPrefix == "playhead.")
        #expect(plain.partitions == 12)
        #expect(plain.topicName(.events) == "playhead.events")
        #expect(plain.producerConfiguration["acks"] == "all")
        #expect(plain.producerConfiguration["enable.idempotence"] == "true")
        #expect(plain.consumerConfiguration(group: "lake")["enable.auto.commit"] == "false")
        #expect(plain.consumerConfiguration(group: "lake")["group.id"] == "lake")
        let prefixed = try KafkaLogConfiguration(url: "kafka://127.0.0.1:9092/?group_prefix=staging.")
        #expect(prefixed.consumerConfiguration(group: "lake")["group.id"] == "staging.lake")
        #expect(prefixed.consumerConfiguration(group: "metrics")["group.id"] == "staging.metrics")

        let full = try KafkaLogConfiguration(
            url: "kafka://a:1,b:2/?prefix=x.&partitions=6&replication=3&compression=lz4&linger_ms=2"
                + "&delivery_timeout_ms=5000&assignor=range&rdkafka.socket.timeout.ms=999&producer.batch.size=1000"
        )
        #expect(full.bootstrapServers == "a:1,b:2")
        #expect(full.topicName(.rejected) == "x.rejected")
        #expect(full.partitions == 6)
        #expect(full.replicationFactor == 3)
        #expect(full.producerConfiguration["compression.type"] == "lz4")
        #expect(full.producerConfiguration["message.timeout.ms"] == "5000")
        #expect(full.producerConfiguration["socket.timeout.ms"] == "999")
        #expect(full.producerConfiguration["batch.size"] == "1000")
        #expect(full.consumerConfiguration(group: nil)["batch.size"] == nil)
        #expect(full.consumerConfiguration(group: nil)["partition.assignment.strategy"] == "range")

        #expect(try KafkaLogConfiguration(url: "kafka://h:9092/staging.").topicPrefix == "staging.")
        #expect(try KafkaLogConfiguration(url: "kafka://h:9092/staging.").topicName(.rejected) == "staging.rejected")
        #expect(try KafkaLogConfiguration(url: "kafka://h:9092/playhead-").topicName(.events) == "playhead-events")

        // kafka://host:port/topic (DESIGN.md): the path is the events topic, the dead letters go beside it.
        let named = try KafkaLogConfiguration(url: "kafka://h:9092/playhead-events?partitions=3")
        #expect(named.topicName(.events) == "playhead-events")
        #expect(named.topicName(.rejected) == "playhead-events.rejected")
        #expect(named.partitions == 3)
        #expect(try KafkaLogConfiguration(url: "kafka://h:9092/clicks").topicName(.events) == "clicks")

        // prefix= is held to a topic name's rule as the path is (it was not checked: an outside review).
        let longest = String(repeating: "p", count: 241)
        #expect(try KafkaLogConfiguration(url: "kafka://h:9092/?prefix=\(longest)").topicName(.rejected).utf8.count == 249)
        for bad in ["a$b/c", "a%20b", String(repeating: "p", count: 242)] {
            #expect {
                try KafkaLogConfiguration(url: "kafka://h:9092/?prefix=\(bad)")
            } throws: { error in
                (error as? LogError)?.message.contains("must be at most 241 of the characters") == true
            }
        }
    }

    @Test("a librdkafka older than 2.1 is warned of at start, naming the handshake failure it causes and the fix")
    func oldLibraryWarning() throws {
        let warning = try #require(KafkaLog.libraryWarning(version: 0x0200_02ff, versionString: "2.0.2"))
        #expect(warning.contains("librdkafka 2.0.2 is loaded") && warning.contains("Read underflow") && warning.contains(". scripts/env"), "\(warning)")
        #expect(KafkaLog.libraryWarning(version: 0x0210_00ff, versionString: "2.16.0") == nil)
    }

    @Test("librdkafka errors map to the log's codes: the idempotent producer's sequence errors, a fatal error and an unknown topic or partition are retriable 503s, a record too large is not")
    func kafkaErrorCodes() {
        for code in [RdKafkaError.unknownProducerId, RdKafkaError.outOfOrderSequence, RdKafkaError.invalidProducerEpoch, RdKafkaError.fatal,
                     RdKafkaError.producerFenced, RdKafkaError.allBrokersDown,
                     RdKafkaError.unknownTopic, RdKafkaError.unknownPartition, RdKafkaError.unknownTopicOrPartition] {
            let error = LogError(kafka: RdKafkaError(code: code, message: "m", isRetriable: false), context: "append to t")
            #expect(error.code == .unavailable && error.retryAfterSeconds == 5, "\(code): \(error)")
        }
        #expect(LogError(kafka: RdKafkaError(code: RdKafkaError.messageTooLarge, message: "m", isRetriable: false), context: "c").code == .tooLarge)
        #expect(LogError(kafka: RdKafkaError(code: RdKafkaError.queueFull, message: "m"), context: "c").code == .full)
        #expect(LogError(kafka: RdKafkaError(code: RdKafkaError.unknownPartition, message: "m"), context: "c").message.contains("made again with fewer partitions"))
        #expect(LogError(kafka: RdKafkaError(code: RdKafkaError.invalidArgument, message: "m"), context: "c").code == .invalidArgument)
    }

    @Test("properties_file: librdkafka properties from a file for every client, below the URL's own; errors name the file and line and never show a secret")
    func propertiesFile() throws {
        let directory = try TemporaryDirectory(prefix: "kafka-properties")
        let file = directory.appending("client.properties").path
        try "# credentials\r\nsecurity.protocol = SASL_PLAINTEXT\r\n! also a comment\n\n\tsasl.password=p=w#rd \nsocket.timeout.ms=111\n"
            .write(toFile: file, atomically: false, encoding: .utf8)
        let configuration = try KafkaLogConfiguration(url: "kafka://h:9092/?properties_file=\(file)&rdkafka.socket.timeout.ms=999")
        #expect(configuration.producerConfiguration["security.protocol"] == "SASL_PLAINTEXT")
        #expect(configuration.producerConfiguration["sasl.password"] == "p=w#rd")
        #expect(configuration.consumerConfiguration(group: "lake")["sasl.password"] == "p=w#rd")
        #expect(configuration.producerConfiguration["socket.timeout.ms"] == "999")

        func message(_ url: String) -> String {
            do {
                _ = try KafkaLogConfiguration(url: url)
                return "accepted"
            } catch {
                return error.code == .invalidArgument ? error.message : "\(error.code): \(error.message)"
            }
        }
        #expect(message("kafka://h:9092/?properties_file=\(file).missing") == "Kafka properties_file \(file).missing: no such file")
        try "security.protocol=SASL_SSL\nsasl.password hunter2\n".write(toFile: file, atomically: false, encoding: .utf8)
        #expect(message("kafka://h:9092/?properties_file=\(file)") == "Kafka properties_file \(file): line 2 is not name=value")
        #expect(message("kafka://h:9092/?properties_file=") == "bad Kafka URL kafka://h:9092/?properties_file=: properties_file needs a path")
        // A URL's secrets are hidden in its errors.
        let shown = message("kafka://h:9092/?rdkafka.sasl.password=hunter2&bogus=1")
        #expect(shown == "bad Kafka URL kafka://h:9092/?rdkafka.sasl.password=(hidden)&bogus=1: unknown parameter 'bogus'", "\(shown)")
        // A user name and password before the brokers are refused, not echoed (they were taken
        // as part of the broker's host name, and logged with it).
        let userinfo = message("kafka://alice:S3cretPW@127.0.0.1:9092/t?rdkafka.sasl.password=x")
        #expect(userinfo.hasPrefix("bad Kafka URL kafka://(hidden)@127.0.0.1:9092/t?rdkafka.sasl.password=(hidden): a user name or password in the URL") && !userinfo.contains("S3cretPW"), "\(userinfo)")
        #expect(!message("kafka://bob:pw@h1:9092,h2:9092").contains("pw@"))
        // A password with `/` or `?` (base64) is hidden whole; an `@` in a query value is not userinfo.
        for url in ["kafka://alice:pa/ss@10.0.0.1:9092/events", "kafka://alice:123?x@h:9092/t", "kafka://alice:a/b?c@h:9092"] {
            let shown = message(url)
            #expect(shown.contains("a user name or password in the URL") && !shown.contains("alice") && !shown.contains("pa/ss") && !shown.contains("123"), "\(shown)")
        }
        #expect(KafkaLogConfiguration.redacted("kafka://h:9092/t?rdkafka.sasl.username=a@b") == "kafka://h:9092/t?rdkafka.sasl.username=(hidden)")
        #expect((try? KafkaLogConfiguration(url: "kafka://h:9092/t?partitions=3&rdkafka.sasl.username=a@b")) != nil)
        // So are a mistyped secret's and every other librdkafka property's: a name cannot tell.
        let mistyped = message("kafka://h:9092/?rdkafka.sasl.pasword=hunter2&consumer.x=y&partitions=3&bogus=1")
        #expect(mistyped == "bad Kafka URL kafka://h:9092/?rdkafka.sasl.pasword=(hidden)&consumer.x=(hidden)&partitions=3&bogus=1: unknown parameter 'bogus'", "\(mistyped)")
        // Properties Playhead's guarantees rest on are refused, from the file or the URL (a Java
        // client's file with group.id put the lake writer and the metrics consumer in one group).
        try "group.id=reporting-app\n".write(toFile: file, atomically: false, encoding: .utf8)
        #expect(message("kafka://h:9092/?properties_file=\(file)").hasPrefix("Kafka properties_file \(file): group.id is Playhead's to set: the lake writer reads as group 'lake'"))
        // Their other names too: metadata.broker.list won over the URL's brokers (an outside review).
        for parameter in [
            "rdkafka.acks=1", "consumer.enable.auto.commit=true", "producer.enable.idempotence=false", "rdkafka.bootstrap.servers=x:1", "consumer.auto.offset.reset=latest",
            "rdkafka.metadata.broker.list=127.0.0.1:26398", "producer.request.required.acks=1", "producer.topic.request.required.acks=1",
            "consumer.topic.auto.offset.reset=latest", "consumer.auto.commit.enable=true",
            // With only failures reported no append completed; a timeout of 0 never ends one.
            "producer.delivery.report.only.error=true", "producer.message.timeout.ms=0", "rdkafka.delivery.timeout.ms=0",
        ] {
            #expect(message("kafka://h:9092/?\(parameter)").contains("is Playhead's to set"), "\(parameter)")
        }
        // librdkafka's own check of the two named its properties, not the URL's parameters.
        #expect(message("kafka://h:9092/t?linger_ms=60000") == "bad Kafka URL kafka://h:9092/t?linger_ms=60000: linger_ms (60000) must be less than delivery_timeout_ms (30000): a record waits linger_ms for its batch before it is sent")
        try "metadata.broker.list=10.0.0.9:9092\n".write(toFile: file, atomically: false, encoding: .utf8)
        #expect(message("kafka://h:9092/?properties_file=\(file)").contains("metadata.broker.list is Playhead's to set: the brokers are the URL's host:port list"))
        // A `+` in a parameter is a plus, as in any URL's query (it was read as a space: a
        // password or a path with one changed); %2B is one too, %20 a space.
        let plus = try KafkaLogConfiguration(url: "kafka://h:9092/t?rdkafka.sasl.password=a+b%2Bc%20d&rdkafka.security.protocol=sasl+ssl")
        #expect(plus.commonProperties["sasl.password"] == "a+b+c d" && plus.commonProperties["security.protocol"] == "sasl+ssl", "\(plus.commonProperties)")
        let plusFile = file + "+b.properties"
        try "client.id=x\n".write(toFile: plusFile, atomically: false, encoding: .utf8)
        #expect((try? KafkaLogConfiguration(url: "kafka://h:9092/t?properties_file=\(plusFile)")) != nil, "\(message("kafka://h:9092/t?properties_file=\(plusFile)"))")
        try? FileManager.default.removeItem(atPath: plusFile)
        // Properties librdkafka refuses: the error names the property; a secret's value is hidden.
        func startError(properties: String) throws -> String {
            try properties.write(toFile: file, atomically: false, encoding: .utf8)
            do {
                _ = try KafkaLog(url: "kafka://127.0.0.1:1/?properties_file=\(file)", logger: testLogger)
                Issue.record("\(properties) must fail")
                return ""
            } catch {
                return error.message
            }
        }
        let secret = try startError(properties: "sasl.passwordd=hunter2\n")
        #expect(secret.contains("sasl.passwordd=(hidden)") && !secret.contains("hunter2"), "\(secret)")
        // A name librdkafka does not know, though it does not look secret: its value is hidden too.
        let unknown = try startError(properties: "sasl.pasword=hunter2\n")
        #expect(unknown.contains("sasl.pasword=(hidden)") && !unknown.contains("hunter2"), "\(unknown)")
        // A known property's refused value is still shown: it is what the operator must mend.
        let refused = try startError(properties: "linger.ms=soon\n")
        #expect(refused.contains("linger.ms=soon"), "\(refused)")
    }

    @Test("bad URLs are rejected with invalidArgument", arguments: [
        "http://h:9092", "kafka://", "kafka://host", "kafka://h:0", "kafka://h:9092/?partitions=0",
        "kafka://h:9092/events?prefix=x.", "kafka://h:9092/a%20b", "kafka://h:9092/caf%C3%A9", "kafka://h:9092/a/b",
        "kafka://h:9092/?compression=brotli", "kafka://h:9092/?bogus=1", "kafka://h:9092/?assignor=sticky",
        "kafka://h:9092/?group_prefix=", "kafka://h:9092/?group_prefix=a%20b", "kafka://h:9092/?group_prefix=a/b",
        "kafka://h:9092/?partitions=3&partitions=5",
    ])
    func bad(url: String) {
        do {
            _ = try KafkaLogConfiguration(url: url)
            Issue.record("\(url) must be rejected")
        } catch {
            #expect(error.code == .invalidArgument)
        }
    }
}

@Suite("Kafka log against a real Tansu broker", .serialized)
struct KafkaLogTansuTests {
    @Test("topics are created with the configured partitions; append then consume round trip")
    func roundTrip() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let metrics = TestMetrics()
        let log = try await makeLog(tansu, prefix: "rt.", partitions: 6, metrics: metrics)
        #expect(try await log.partitionCount(of: .events) == 6)
        #expect(try await log.partitionCount(of: .rejected) == 6)
        #expect(log.unavailableReason == nil)

        let producer = try log.producer(for: .events)
        var appended = 0
        for chunk in 0..<10 {
            let result = try await producer.append(makeBatch((chunk * 100)..<((chunk + 1) * 100)))
            #expect(result.count == 100)
            appended += result.count
        }
        // A batch with one key lands on one partition; the result says which, and the first offset.
        var single = LogRecordBatch()
        for index in 0..<10 { single.appendRecord(key: Array("one".utf8), value: Array("single-\(index)".utf8)) }
        let singleResult = try await producer.append(single)
        #expect(singleResult.count == 10)
        #expect(singleResult.partition != nil)
        #expect(singleResult.firstOffset != nil)

        let consumer = try log.consumer(for: .events, group: "rt-lake")
        #expect(consumer.group == "rt-lake")
        let poll = try await drain(consumer, count: 1010)
        let values = try strings(poll.batches)
        #expect(values.count == 1010)
        #expect(Set(values) == Set((0..<1000).map { "event-\($0)" } + (0..<10).map { "single-\($0)" }))
        #expect(Set(poll.assigned.keys) == Set(0..<6))
        // Each session's records arrive in append order (same key → same partition).
        var lastOfSession: [Int: Int] = [:]
        for value in values where value.hasPrefix("event-") {
            let index = Int(value.dropFirst("event-".count))!
            if let last = lastOfSession[index % 5] { #expect(last < index) }
            lastOfSession[index % 5] = index
        }
        // lag: everything fetched, nothing committed → 1010; after committing all → 0.
        #expect(await consumer.lag() == 1010)
        var next: [Int32: Int64] = [:]
        for batch in poll.batches { next[batch.partition] = max(next[batch.partition] ?? 0, batch.nextOffset) }
        try await consumer.commit(next)
        #expect(try await consumer.committed() == next)
        #expect(await consumer.lag() == 0)
        // Metrics: one append duration per acknowledged batch, the lag gauge per group.
        let timer = try metrics.expectTimer("playhead_log_append_duration_seconds", [("backend", "kafka"), ("topic", "events")])
        #expect(timer.values.count == 11)
        #expect(timer.values.allSatisfy { $0 > 0 })
        let lagGauge = try metrics.expectGauge("playhead_consumer_lag_events", [("consumer", "rt-lake")])
        #expect(lagGauge.lastValue == 0)
        #expect(lagGauge.values.contains(1010))
        // Partitions held: 0 from the consumer's start (before the group answered), then the 6.
        let heldGauge = try metrics.expectGauge("playhead_consumer_partitions_assigned", [("consumer", "rt-lake")])
        #expect(heldGauge.values.first == 0 && heldGauge.lastValue == 6, "\(heldGauge.values)")

        // seek back: partition of the single-key batch, from its first offset.
        let partition = singleResult.partition!
        try await consumer.seek(partition: partition, to: singleResult.firstOffset!)
        let again = try await drain(consumer, count: 10, timeout: .seconds(20))
        let replayed = try strings(again.batches.filter { $0.partition == partition })
        #expect(replayed == (0..<10).map { "single-\($0)" })

        // A reader (no group) told where to start before its first poll assigned it its partitions
        // reads that partition from there, and no other (`log dump --offset`, the lake writer's
        // warm-up; it read the others from their beginning until 2026-12-04).
        let reader = try log.consumer(for: .events, group: nil)
        try await reader.seek(partition: partition, to: singleResult.firstOffset! + 5)
        // That partition's records from the seek's offset on.
        let inPartition = poll.batches.filter { $0.partition == partition }.reduce(0) { $0 + $1.count }
        let expected = inPartition - Int(singleResult.firstOffset! + 5)
        // What it reads until it has them (40 s at most: a new reader's metadata, assignment and
        // fetch can take seconds on a loaded machine), and 2 s more (a reader of every partition
        // would bring the others too).
        var fromSeek = try await drain(reader, count: expected, timeout: .seconds(40))
        fromSeek.batches += try await drain(reader, count: Int.max, timeout: .seconds(2)).batches
        #expect(fromSeek.batches.allSatisfy { $0.partition == partition })
        #expect(try strings(fromSeek.batches.filter { $0.partition == partition }).filter { $0.hasPrefix("single-") } == (5..<10).map { "single-\($0)" })
        #expect(fromSeek.batches.filter { $0.partition == partition }.allSatisfy { $0.firstOffset >= singleResult.firstOffset! + 5 })
        #expect(fromSeek.batches.reduce(0) { $0 + $1.count } == expected)
        await reader.close()
        // One told a partition the topic does not have says so on its first poll.
        let lost = try log.consumer(for: .events, group: nil)
        try await lost.seek(partition: 6, to: 0)
        await #expect(throws: LogError.self) { _ = try await lost.poll(maxRecords: 10, timeout: .seconds(10)) }
        await lost.close()

        await consumer.close()
        // The topics exist: a log that asks for another partition count uses them as they are, and says so.
        let captured = CapturedLogs()
        let second = try KafkaLog(
            url: "kafka://\(tansu.bootstrap)/?prefix=rt.&partitions=2", logger: Logger(label: "test") { _ in CapturingLogHandler(captured: captured) }
        )
        try await second.waitUntilReady(timeout: .seconds(60))
        #expect(try await second.partitionCount(of: .events) == 6)
        #expect(captured.count(containing: "exists with 6 partitions, not the 2 of partitions=") == 2, "\(captured.all)")
        #expect(captured.count(containing: "cleanup.policy") == 0)
        await second.shutdown()
        // A URL without partitions= (`log dump`, a store) is not told of a count it did not give.
        let unasked = CapturedLogs()
        let fourth = try KafkaLog(
            url: "kafka://\(tansu.bootstrap)/?prefix=rt.", logger: Logger(label: "test") { _ in CapturingLogHandler(captured: unasked) }
        )
        try await fourth.waitUntilReady(timeout: .seconds(60))
        #expect(unasked.count(containing: "of partitions=") == 0 && unasked.count(containing: "exists with 6 partitions") == 2, "\(unasked.all)")
        // A prefix is shown as one (`kafka://host/rt.` would name a topic now).
        #expect(fourth.displayName == "kafka://\(tansu.bootstrap)/?prefix=rt.", "\(fourth.displayName)")
        await fourth.shutdown()
        // The topics a release before 2026-12-03 made of the same URL (its path was a prefix) are
        // named at start, at error level, with the ?prefix= that keeps them.
        let oldAdmin = try KafkaAdmin(configuration: ["bootstrap.servers": tansu.bootstrap], logger: testLogger)
        _ = try await oldAdmin.createTopics([KafkaAdmin.NewTopic(name: "upgradedevents", partitions: 1)])
        await oldAdmin.close()
        let upgraded = CapturedLogs()
        let fifth = try KafkaLog(
            url: "kafka://\(tansu.bootstrap)/upgraded?partitions=1", logger: Logger(label: "test") { _ in CapturingLogHandler(captured: upgraded) }
        )
        try await fifth.waitUntilReady(timeout: .seconds(60))
        #expect(upgraded.count(containing: "Kafka topic upgradedevents exists beside upgraded") == 1
            && upgraded.count(containing: "give ?prefix=upgraded instead of the path") == 1, "\(upgraded.all)")
        await fifth.shutdown()
        // An events topic made beforehand with compaction is named at start, at error level.
        let admin = try KafkaAdmin(configuration: ["bootstrap.servers": tansu.bootstrap], logger: testLogger)
        try await admin.createTopics([KafkaAdmin.NewTopic(name: "compacted.events", partitions: 1, configs: ["cleanup.policy": "compact"])])
        #expect(try await admin.topicConfiguration("compacted.events")["cleanup.policy"] == "compact")
        await admin.close()
        let compacted = CapturedLogs()
        let third = try KafkaLog(
            url: "kafka://\(tansu.bootstrap)/?prefix=compacted.&partitions=1", logger: Logger(label: "test") { _ in CapturingLogHandler(captured: compacted) }
        )
        try await third.waitUntilReady(timeout: .seconds(60))
        #expect(compacted.count(containing: "Kafka topic compacted.events has cleanup.policy=compact") == 1, "\(compacted.all)")
        #expect(compacted.count(containing: "compacted.rejected has cleanup.policy") == 0)
        await third.shutdown()
        await log.shutdown()
        // After shutdown, appends fail as closed.
        #expect(throws: LogError.self) { _ = try log.producer(for: .events) }
    }

    @Test("the completion runs only after the broker acknowledged: a frozen broker holds it back")
    func completionAfterAck() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let log = try await makeLog(tansu, prefix: "ack.", partitions: 2)
        let producer = try log.producer(for: .events)
        _ = try await producer.append(makeBatch(0..<10))  // connections and metadata are warm

        tansu.pause()
        let done = Atomic<Int>(0)
        let outcome = Mutex<Result<LogAppendResult, LogError>?>(nil)
        producer.append(makeBatch(10..<60)) { result in
            outcome.withLock { $0 = result }
            done.store(1, ordering: .releasing)
        }
        try await Task.sleep(for: .seconds(2))
        #expect(done.load(ordering: .acquiring) == 0, "completed while the broker could not acknowledge")
        tansu.resume()
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while done.load(ordering: .acquiring) == 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let result = try #require(outcome.withLock { $0 })
        #expect(try result.get().count == 50)
        await log.shutdown()
    }

    @Test("a frozen broker (connections open, nothing answered) makes the producer and a consumer unavailable within about 15 s, not librdkafka's 70, and available again once it answers")
    func frozenBroker() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        // Statistics every second rather than every 5 s: the same rule, found sooner.
        let log = try await makeLog(tansu, prefix: "frozen.", partitions: 2, extra: "&rdkafka.statistics.interval.ms=1000")
        let producer = try log.producer(for: .events)
        _ = try await producer.append(makeBatch(0..<20))
        let consumer = try log.consumer(for: .events, group: "frozen")
        #expect(try await drain(consumer, count: 20).batches.reduce(0) { $0 + $1.count } == 20)
        #expect(log.unavailableReason == nil)
        #expect(consumer.unavailableReason == nil)

        tansu.pause()
        let frozenAt = ContinuousClock.now
        // A produce request waits on the producer's connection, fetches on the consumer's.
        let delivered = Mutex<Result<LogAppendResult, LogError>?>(nil)
        producer.append(makeBatch(20..<30)) { result in delivered.withLock { $0 = result } }
        var consumerReason: String?
        var logReason: String?
        while ContinuousClock.now < frozenAt.advanced(by: .seconds(55)) && (consumerReason == nil || logReason == nil) {
            _ = try await consumer.poll(maxRecords: 100, timeout: .milliseconds(500))  // serves its statistics
            consumerReason = consumer.unavailableReason
            logReason = log.unavailableReason
        }
        let detectedAfter = frozenAt.duration(to: .now)
        #expect(consumerReason?.contains("has answered nothing for") == true, "\(consumerReason ?? "nil")")
        #expect(logReason?.hasPrefix("Kafka broker \(tansu.bootstrap)/") == true, "\(logReason ?? "nil")")
        #expect(logReason?.contains("has answered nothing for") == true, "\(logReason ?? "nil")")
        // librdkafka's own "all brokers are down" comes after socket.timeout.ms (60 s) + 10 s.
        #expect(detectedAfter < .seconds(55), "\(detectedAfter)")
        // Meanwhile appends are refused at once (a 503 at the edge), not held for the delivery timeout.
        let refusedAt = ContinuousClock.now
        do {
            _ = try await producer.append(makeBatch(30..<31))
            Issue.record("an append to a silent broker must be refused")
        } catch {
            #expect(error.code == .unavailable && error.message.contains("has answered nothing"), "\(error)")
        }
        #expect(refusedAt.duration(to: .now) < .seconds(5))

        tansu.resume()
        let thawedAt = ContinuousClock.now
        while ContinuousClock.now < thawedAt.advanced(by: .seconds(60)) && (consumer.unavailableReason != nil || log.unavailableReason != nil) {
            _ = try await consumer.poll(maxRecords: 100, timeout: .milliseconds(500))
        }
        #expect(consumer.unavailableReason == nil, "\(consumer.unavailableReason ?? "")")
        #expect(log.unavailableReason == nil, "\(log.unavailableReason ?? "")")
        // The append that waited through the freeze is delivered.
        while ContinuousClock.now < thawedAt.advanced(by: .seconds(60)) && delivered.withLock({ $0 }) == nil {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect((try? delivered.withLock { $0 }?.get())?.count == 10)
        await consumer.close()
        await log.shutdown()
    }

    @Test(
        "two consumers in a group split the partitions; a third joining makes a rebalance they report",
        arguments: ["cooperative-sticky", "range"]
    )
    func groupRebalance(assignor: String) async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let log = try await makeLog(tansu, prefix: "grp.", partitions: 6, extra: "&assignor=\(assignor)")
        let producer = try log.producer(for: .events)
        _ = try await producer.append(makeBatch(0..<600, sessions: 50))

        final class Member: @unchecked Sendable {
            let consumer: any LogConsumer
            let held = Mutex<Set<Int32>>([])
            let revokedSeen = Mutex<[Int32]>([])
            let assignedSeen = Mutex<[Int32]>([])
            let records = Atomic<Int>(0)
            init(_ consumer: any LogConsumer) { self.consumer = consumer }
            func run() async {
                while !Task.isCancelled {
                    guard let poll = try? await consumer.poll(maxRecords: 1000, timeout: .milliseconds(200)) else { return }
                    held.withLock { held in
                        held.subtract(poll.revoked)
                        held.formUnion(poll.assigned.keys)
                    }
                    revokedSeen.withLock { $0 += poll.revoked }
                    assignedSeen.withLock { $0 += poll.assigned.keys }
                    records.add(poll.batches.reduce(0) { $0 + $1.count }, ordering: .relaxed)
                }
            }
        }

        let members = try (0..<3).map { _ in Member(try log.consumer(for: .events, group: "grp")) }
        let first = Task { await members[0].run() }
        let second = Task { await members[1].run() }
        try await waitFor("two members to share 6 partitions") {
            let a = members[0].held.withLock { $0 }
            let b = members[1].held.withLock { $0 }
            return !a.isEmpty && !b.isEmpty && a.isDisjoint(with: b) && a.union(b) == Set(0..<6)
        }
        try await waitFor("all 600 records") { members[0].records.load(ordering: .relaxed) + members[1].records.load(ordering: .relaxed) >= 600 }

        let third = Task { await members[2].run() }
        try await waitFor("the third member to get partitions, and the others to report revocations") {
            let held = members.map { member in member.held.withLock { $0 } }
            let revoked = members[0].revokedSeen.withLock { $0 } + members[1].revokedSeen.withLock { $0 }
            return held.allSatisfy { !$0.isEmpty } && held[0].union(held[1]).union(held[2]) == Set(0..<6)
                && held[0].isDisjoint(with: held[1]) && held[1].isDisjoint(with: held[2]) && held[0].isDisjoint(with: held[2])
                && !revoked.isEmpty
        }
        #expect(!members[2].assignedSeen.withLock { $0 }.isEmpty)
        for task in [first, second, third] { task.cancel() }
        for task in [first, second, third] { await task.value }
        for member in members { await member.consumer.close() }
        await log.shutdown()
    }

    @Test("a process whose consumer holds no partition (it lost the only one to a new member) reports a lag of 0, not its last one")
    func lagOfAMemberWithoutPartitions() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        // Two processes, each with its own log and metrics, in one group on a topic of one partition.
        let metrics = [TestMetrics(), TestMetrics()]
        let logs = [
            try await makeLog(tansu, prefix: "lag0.", partitions: 1, extra: "&assignor=range", metrics: metrics[0]),
            try await makeLog(tansu, prefix: "lag0.", partitions: 1, extra: "&assignor=range", metrics: metrics[1]),
        ]
        _ = try await logs[0].producer(for: .events).append(makeBatch(0..<100))
        let consumers = try logs.map { try $0.consumer(for: .events, group: "lag0") }
        // Before any assignment the lag is unknown, not 0 (the metrics consumer published that 0
        // as caught up while it had not joined yet, a probe).
        #expect(await consumers[1].lag() == nil)
        final class Held: Sendable {
            let partitions = Mutex<Set<Int32>>([])
            func withLock<T>(_ body: (inout Set<Int32>) -> T) -> T { partitions.withLock { body(&$0) } }
        }
        let held = [Held(), Held()]
        @Sendable func run(_ index: Int) async {
            while !Task.isCancelled {
                guard let poll = try? await consumers[index].poll(maxRecords: 1000, timeout: .milliseconds(200)) else { return }
                held[index].withLock { $0.subtract(poll.revoked); $0.formUnion(poll.assigned.keys) }
            }
        }
        // The first alone: it holds the partition and lags by the 100 records it did not commit.
        let first = Task { await run(0) }
        try await waitFor("the first member to hold the partition and lag by 100") {
            let lag = await consumers[0].lag()
            return held[0].withLock { $0 } == [0] && lag == 100
        }
        let second = Task { await run(1) }
        // Then one of the two holds it: the other, whichever it is, holds nothing and reports 0.
        try await waitFor("the partition held by exactly one member after the second joined") {
            let a = held[0].withLock { $0 }, b = held[1].withLock { $0 }
            return a.union(b) == [0] && a.isDisjoint(with: b)
        }
        // (Just after an assignment, before its first fetch, the new holder may read 0 for a moment,
        // and the holder may change once more as the group settles.)
        var holder = 0
        try await waitFor("the holder to lag by 100 and the other by 0") {
            holder = held[0].withLock { $0 } == [0] ? 0 : 1
            let lags = [await consumers[0].lag(), await consumers[1].lag()]
            // The other: 0 once it has held the partition, unknown (nil) if it never has.
            let other = lags[1 - holder]
            return lags[holder] == 100 && (other == 0 || (holder == 0 && other == nil)) && held[holder].withLock { $0 } == [0]
        }
        let gauges = (0..<2).map { try? metrics[$0].expectGauge("playhead_consumer_lag_events", [("consumer", "lag0")]) }
        let values = gauges.map { $0?.values ?? [] }
        #expect(gauges[holder]?.lastValue == 100, "holder \(holder): \(values)")
        if holder == 1 {
            // The first lost the partition it lagged on: 0 now, not its last 100.
            #expect(gauges[0]?.lastValue == 0, "holder \(holder): \(values)")
        } else {
            // The second never held one: no lag of its own yet (0 read as caught up before a
            // first assignment, a probe), nor a stale one.
            #expect(gauges[1] == nil || gauges[1]?.lastValue == 0, "holder \(holder): \(values)")
        }
        // Partitions held: the holder 1, the other 0 (the group's sum, 1, is what alert
        // ConsumerHoldsNoPartitions reads); after the members close, 0 on both.
        let heldGauges = (0..<2).map { try? metrics[$0].expectGauge("playhead_consumer_partitions_assigned", [("consumer", "lag0")]) }
        let heldValues = heldGauges.map { $0?.values ?? [] }
        #expect(heldGauges[holder]?.lastValue == 1, "holder \(holder): \(heldValues)")
        #expect(heldGauges[1 - holder]?.lastValue == 0, "holder \(holder): \(heldValues)")
        for task in [first, second] { task.cancel() }
        for task in [first, second] { await task.value }
        for consumer in consumers { await consumer.close() }
        #expect(heldGauges.allSatisfy { $0?.lastValue == 0 }, "\(heldGauges.map { $0?.values ?? [] })")
        for log in logs { await log.shutdown() }
    }

    @Test("a producer refused as fenced (PRODUCER_FENCED) is replaced at the next append, which goes through; a fenced answer for a producer already replaced replaces nothing")
    func fencedProducerIsReplaced() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let log = try await makeLog(tansu, prefix: "fenced.", partitions: 1)
        _ = try await log.producer(for: .events).append(makeBatch(0..<10))
        let first = log.producer
        #expect(try log.producerForAppend().get() === first)
        log.noteFenced(first)
        let second = try await replaced(log, first)
        log.noteFenced(first)  // a late answer of the replaced producer
        #expect(try log.producerForAppend().get() === second)
        _ = try await log.producer(for: .events).append(makeBatch(10..<20))
        try await expectEvents(0..<20, in: log)
        await log.shutdown()
    }

    @Test("a producer is replaced as stuck only after delivery timeouts of its own, 3 in a row over at least 20 s, and once: timeouts within a short stall, or of a producer already replaced, replace nothing (a broker frozen for 2.5 s replaced healthy producers twice in a second: an outside review)")
    func stuckProducerIsReplacedOnce() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let log = try await makeLog(tansu, prefix: "stuck.", partitions: 1)
        _ = try await log.producer(for: .events).append(makeBatch(0..<10))
        let first = log.producer
        let start = ContinuousClock.now
        // Many timeouts within 2 s: a short stall's, not a stuck producer's.
        for index in 0..<8 { log.noteDelivery(timedOut: true, by: first, at: start.advanced(by: .milliseconds(250 * index))) }
        #expect(try log.producerForAppend().get() === first)
        // A success ends the streak: timeouts before it do not count toward the span.
        log.noteDelivery(timedOut: false, by: first)
        for seconds in [3, 21, 22] { log.noteDelivery(timedOut: true, by: first, at: start.advanced(by: .seconds(seconds))) }
        #expect(try log.producerForAppend().get() === first)
        // Timing out on over 20 s while the broker answers: replaced, once (the next append, which
        // read nothing older, keeps the replacement).
        log.noteDelivery(timedOut: true, by: first, at: start.advanced(by: .seconds(24)))
        let second = try await replaced(log, first)
        #expect(try log.producerForAppend().get() === second)
        // The replaced producer's backlog timing out counts for nothing.
        for seconds in [30, 40, 50, 60] { log.noteDelivery(timedOut: true, by: first, at: start.advanced(by: .seconds(seconds))) }
        #expect(try log.producerForAppend().get() === second)
        _ = try await log.producer(for: .events).append(makeBatch(10..<20))
        await log.shutdown()
    }

    @Test("a failed producer is replaced on a thread of its own: while the new one is being made, appends fail at once as unavailable (503, Retry-After 1) instead of waiting for it on their event loop, and go through once it is in place")
    func producerReplacedOffTheCaller() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let log = try await makeLog(tansu, prefix: "replace.", partitions: 1)
        _ = try await log.producer(for: .events).append(makeBatch(0..<10))
        let first = log.producer
        // Making the new producer takes 2 s here (it took milliseconds, under the producer's lock,
        // on the appending thread until 2026-12-08).
        makeProducersSlowly(log, seconds: 2)
        log.noteFenced(first)
        let appender = try log.producer(for: .events)
        let clock = ContinuousClock()
        var failure: LogError?
        let took = try await clock.measure {
            do {
                _ = try await appender.append(makeBatch(10..<20))
            } catch {
                failure = error as? LogError
            }
        }
        #expect(took < .milliseconds(500), "the append waited \(took) for the replacement")
        #expect(failure?.code == .unavailable, "\(String(describing: failure))")
        #expect(failure?.retryAfterSeconds == 1)
        #expect(failure?.message.contains("being replaced") == true, "\(failure?.message ?? "")")
        #expect(log.unavailableReason?.contains("being replaced") == true, "\(log.unavailableReason ?? "nil")")
        // A second append meanwhile starts no second replacement, and the old producer's fenced
        // answers that come meanwhile (they come in bursts) count for nothing against the new one.
        await #expect(throws: LogError.self) { _ = try await appender.append(makeBatch(10..<20)) }
        log.noteFenced(first)
        let second = try await replaced(log, first)
        _ = try await appender.append(makeBatch(10..<20))
        #expect(log.producer === second)
        #expect(log.unavailableReason == nil)
        try await expectEvents(0..<20, in: log)
        // A shutdown while a replacement is being made waits for it, and a closed log starts none.
        makeProducersSlowly(log, seconds: 1)
        log.noteFenced(second)
        #expect(throws: LogError.self) { _ = try log.producerForAppend().get() }
        await log.shutdown()
        #expect(log.producer !== second, "the shutdown did not wait for the replacement")
        log.noteFenced(log.producer)
        #expect(throws: LogError.self) { _ = try log.producerForAppend().get() }
        if case .failure(let error) = log.producerForAppend() { #expect(error.code == .closed, "\(error)") }
    }

    @Test("a replacement that cannot be made is tried again a second later, whatever made the producer due (a stuck one waited for a new streak of 20 s)")
    func failedReplacementIsTriedAgain() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let log = try await makeLog(tansu, prefix: "retry.", partitions: 1)
        _ = try await log.producer(for: .events).append(makeBatch(0..<10))
        let first = log.producer
        let attempts = Mutex(0)
        log.makeProducer.withLock { make in
            make = { configuration, logger in
                let attempt = attempts.withLock { count in
                    count += 1
                    return count
                }
                if attempt < 3 { throw RdKafkaError(code: RdKafkaError.fatal, message: "made to fail (attempt \(attempt))") }
                return try KafkaProducer(configuration: configuration, logger: logger)
            }
        }
        let start = ContinuousClock.now
        for seconds in [0, 10, 21] { log.noteDelivery(timedOut: true, by: first, at: start.advanced(by: .seconds(seconds))) }
        // Each attempt fails until the third; the producer stays due, and stuck, between them.
        let deadline = ContinuousClock.now.advanced(by: .seconds(15))
        while log.producer === first, ContinuousClock.now < deadline {
            _ = log.producerForAppend()
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(log.producer !== first, "attempts: \(attempts.withLock { $0 })")
        #expect(attempts.withLock { $0 } == 3)
        #expect(try log.producerForAppend().get() === log.producer)
        _ = try await log.producer(for: .events).append(makeBatch(10..<20))
        await log.shutdown()
    }

    @Test("a partition assigned while the group's committed offsets cannot be looked up: its lag is unknown (nil, no gauge value), not the whole partition, until a commit tells it; the records start where the group committed")
    func lagUnknownWhenCommittedLookupFails() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let metrics = TestMetrics()
        let log = try await makeLog(tansu, prefix: "unknown-lag.", partitions: 1, metrics: metrics)
        _ = try await log.producer(for: .events).append(makeBatch(0..<100))
        let first = try log.makeConsumer(for: .events, group: "unknown-lag")
        _ = try await drain(first, count: 100)
        try await first.commit([0: 40])
        await first.close()
        let second = try log.makeConsumer(for: .events, group: "unknown-lag")
        second.consumer.failNextCommittedLookups(1)
        let poll = try await drain(second, count: 60)
        #expect(poll.batches.first?.firstOffset == 40, "librdkafka looks the offset up itself: \(poll.batches.map(\.firstOffset))")
        #expect(try strings(poll.batches) == (40..<100).map { "event-\($0)" })
        // Not 100 (the partition from offset 0, as until 2026-12-08), nor 0.
        #expect(await second.lag() == nil)
        let gauge = try? metrics.expectGauge("playhead_consumer_lag_events", [("consumer", "unknown-lag")])
        #expect(gauge?.values.contains(100) != true, "\(gauge?.values ?? [])")
        try await second.commit([0: 100])
        #expect(await second.lag() == 0)
        await second.close()
        await log.shutdown()
    }

    @Test("a reader sought to one partition before its first poll reads only that partition")
    func readerOfOnePartition() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let log = try await makeLog(tansu, prefix: "one.", partitions: 4)
        _ = try await log.producer(for: .events).append(makeBatch(0..<400, sessions: 40))
        let everything = try log.consumer(for: .events, group: nil)
        let all = try await drain(everything, count: 400)
        let perPartition = Dictionary(grouping: all.batches, by: \.partition).mapValues { $0.reduce(0) { $0 + $1.count } }
        #expect(perPartition.count > 1, "\(perPartition)")
        let partition = try #require(perPartition.keys.max())
        let reader = try log.consumer(for: .events, group: nil)
        try await reader.seek(partition: partition, to: 1)
        // Everything it reads until it has that partition's records (40 s at most) and 2 s more (a
        // reader of every partition would bring the others too).
        var one = try await drain(reader, count: perPartition[partition]! - 1, timeout: .seconds(40))
        one.batches += try await drain(reader, count: Int.max, timeout: .seconds(2)).batches
        #expect(one.batches.allSatisfy { $0.partition == partition }, "\(Set(one.batches.map(\.partition)))")
        #expect(one.batches.reduce(0) { $0 + $1.count } == perPartition[partition]! - 1)
        #expect(one.batches.first?.firstOffset == 1)
        await everything.close()
        await reader.close()
        await log.shutdown()
    }

    @Test("committed offsets survive a consumer restart: the group resumes exactly there")
    func resumeFromCommitted() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let log = try await makeLog(tansu, prefix: "resume.", partitions: 3)
        let producer = try log.producer(for: .events)
        _ = try await producer.append(makeBatch(0..<300, sessions: 30))

        let firstConsumer = try log.consumer(for: .events, group: "resume")
        var seen: [String] = []
        var commitAt: [Int32: Int64] = [:]
        // Take roughly half: per batch, process (and commit) the first half of its records.
        let poll = try await drain(firstConsumer, count: 300)
        for batch in poll.batches {
            let half = batch.count / 2
            var index = 0
            try batch.forEachRecord { _, value in
                if index < half { seen.append(String(decoding: value, as: UTF8.self)) }
                index += 1
            }
            commitAt[batch.partition] = batch.firstOffset + Int64(half)
        }
        try await firstConsumer.commit(commitAt)
        #expect(try await firstConsumer.committed() == commitAt)
        await firstConsumer.close()

        let secondConsumer = try log.consumer(for: .events, group: "resume")
        let rest = try await drain(secondConsumer, count: 300 - seen.count)
        #expect(rest.assigned == commitAt)
        let restValues = try strings(rest.batches)
        #expect(restValues.count == 300 - seen.count)
        #expect(Set(restValues).isDisjoint(with: Set(seen)))
        #expect(Set(restValues + seen) == Set((0..<300).map { "event-\($0)" }))
        #expect(try await secondConsumer.committed() == commitAt)
        await secondConsumer.close()
        // The same group name under group_prefix is another group on the cluster: it has no
        // offsets, so it reads every record from the start, and its commits leave "resume"'s alone.
        let other = try await makeLog(tansu, prefix: "resume.", partitions: 3, extra: "&group_prefix=other.")
        let prefixedConsumer = try other.consumer(for: .events, group: "resume")
        let all = try await drain(prefixedConsumer, count: 300)
        #expect(Set(try strings(all.batches)) == Set((0..<300).map { "event-\($0)" }))
        #expect(Set(all.assigned.keys) == [0, 1, 2], "\(all.assigned)")
        try await prefixedConsumer.commit(Dictionary(uniqueKeysWithValues: all.assigned.keys.map { ($0, Int64(1)) }))
        await prefixedConsumer.close()
        await other.shutdown()
        let third = try log.consumer(for: .events, group: "resume")
        let again = try await drain(third, count: 300 - seen.count)
        #expect(again.assigned == commitAt)
        await third.close()
        await log.shutdown()
    }

    @Test("broker down: appends fail with a clear retriable error within the delivery timeout, and recover after restart")
    func brokerDown() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let metrics = TestMetrics()
        let log = try await makeLog(tansu, prefix: "down.", partitions: 2, extra: "&delivery_timeout_ms=3000", metrics: metrics)
        let producer = try log.producer(for: .events)
        _ = try await producer.append(makeBatch(0..<10))
        // The failure counters exist at 0 from the start, so that the first failures are a rise.
        for code in ["full", "unavailable", "io", LogError.Code.tooLarge.description] {
            #expect(try metrics.expectCounter("playhead_log_append_failures_total", [("code", code)]).totalValue == 0, "\(code)")
        }

        await tansu.stop()
        let started = ContinuousClock.now
        do {
            _ = try await producer.append(makeBatch(10..<20))
            Issue.record("an append must fail while the broker is down")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.isRetriable)
            #expect(error.retryAfterSeconds != nil)
            // Either the delivery timeout, or at once when librdkafka already reports the broker down.
            #expect(error.message.contains("timed out") || error.message.contains("down"))
        }
        #expect(started.duration(to: .now) < .seconds(15))
        #expect(try metrics.expectCounter("playhead_log_append_failures_total", [("code", "unavailable")]).totalValue >= 1)
        // The producer notices that every broker is down (for /readyz).
        let downDeadline = ContinuousClock.now.advanced(by: .seconds(15))
        while producer.unavailableReason == nil && ContinuousClock.now < downDeadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(producer.unavailableReason != nil)
        // Known down: appends fail at once instead of waiting for the delivery timeout.
        let fastStart = ContinuousClock.now
        do {
            _ = try await producer.append(makeBatch(30..<40))
            Issue.record("an append must fail while every broker is down")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("down") && !error.message.contains("within the delivery timeout"), "\(error)")
        }
        // (Under the 3 s delivery timeout; CI's load can hold this task off the CPU for a while.)
        #expect(fastStart.duration(to: .now) < .seconds(2))

        try await tansu.restart()
        // The in-memory broker restarted empty: recreate the topic as a persistent broker would have it.
        try await tansu.createTopic("down.events", partitions: 2)
        let recoverDeadline = ContinuousClock.now.advanced(by: .seconds(40))
        var recovered = false
        var lastError: LogError?
        while !recovered && ContinuousClock.now < recoverDeadline {
            do {
                recovered = try await producer.append(makeBatch(20..<30)).count == 10
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        #expect(recovered, "last error: \(String(describing: lastError))")
        let upDeadline = ContinuousClock.now.advanced(by: .seconds(30))
        while producer.unavailableReason != nil && ContinuousClock.now < upDeadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(producer.unavailableReason == nil)
        await log.shutdown()
    }

    @Test("a client that cannot authenticate says why it is not ready (the SASL handshake's failure), in the log's and its consumer's reasons")
    func authenticationFailureNamed() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        // The broker speaks plaintext: a SASL client's handshake fails at every connection, and
        // librdkafka then reports "1/1 brokers are down", which says nothing of why.
        let log = try KafkaLog(
            url: "kafka://\(tansu.bootstrap)/?prefix=auth.&rdkafka.security.protocol=sasl_plaintext"
                + "&rdkafka.sasl.mechanism=PLAIN&rdkafka.sasl.username=playhead&rdkafka.sasl.password=hunter2",
            logger: testLogger
        )
        let consumer = try log.consumer(for: .events, group: "lake")
        // The topics cannot be made: the admin request times out after 10 s, and says why.
        var logReason = log.unavailableReason
        let deadline = ContinuousClock.now.advanced(by: .seconds(40))
        while ContinuousClock.now < deadline && logReason?.hasPrefix("cannot create") != true {
            _ = try? await consumer.poll(maxRecords: 10, timeout: .milliseconds(200))
            logReason = log.unavailableReason
        }
        #expect(logReason?.contains("(the last broker error: _AUTHENTICATION: ") == true, "\(logReason ?? "nil")")
        #expect(logReason?.contains("SASL PLAIN mechanism handshake failed") == true, "\(logReason ?? "nil")")
        #expect(logReason?.contains("hunter2") == false)
        let consumerReason = consumer.unavailableReason
        #expect(consumerReason?.contains("SASL PLAIN mechanism handshake failed") == true, "\(consumerReason ?? "nil")")
        await consumer.close()
        await log.shutdown()
    }

    @Test("a port that takes connections but is not a Kafka listener: the reasons say so (no answer to ApiVersion), not only that all brokers are down")
    func notAKafkaListenerNamed() async throws {
        try requireModernLibrdkafka()
        // A socket that listens and never answers: the kernel completes the connections.
        let (listener, port) = try TestNetwork.silentListener()
        defer { close(listener) }
        let log = try KafkaLog(url: "kafka://127.0.0.1:\(port)/?prefix=notkafka.", logger: testLogger)
        let consumer = try log.consumer(for: .events, group: "lake")
        var reasons: [String] = []
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while ContinuousClock.now < deadline {
            _ = try? await consumer.poll(maxRecords: 10, timeout: .milliseconds(200))
            reasons = [log.unavailableReason, consumer.unavailableReason].compactMap { $0 }
            if reasons.count == 2 && reasons.allSatisfy({ $0.contains("no answer to Kafka's first request (ApiVersion)") }) { break }
        }
        #expect(reasons.count == 2 && reasons.allSatisfy { $0.contains("no answer to Kafka's first request (ApiVersion): a broker that takes connections but hangs, or a port that is not a Kafka listener") }, "\(reasons)")
        #expect(!reasons.contains { $0.contains("brokers are down:") }, "\(reasons)")
        await consumer.close()
        await log.shutdown()
    }

    @Test("interop: confluent-kafka (python) reads what we produce, and we read what it produces")
    func interop() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let log = try await makeLog(tansu, prefix: "interop.", partitions: 4)
        let producer = try log.producer(for: .events)
        _ = try await producer.append(makeBatch(0..<500, sessions: 10, tag: "swift"))

        let readScript = """
            import sys, json
            from confluent_kafka import Consumer
            c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "py-reader", "auto.offset.reset": "earliest",
                          "enable.auto.commit": False, "session.timeout.ms": 3000})
            c.subscribe([sys.argv[2]])
            out = {}
            import time
            deadline = time.time() + 40
            while len(out) < int(sys.argv[3]) and time.time() < deadline:
                m = c.poll(0.5)
                if m is None or m.error():
                    continue
                out[m.value().decode()] = [m.key().decode(), m.partition()]
            c.close()
            print(json.dumps(out))
            """
        let output = try await runPython(readScript, arguments: [tansu.bootstrap, "interop.events", "500"], timeout: .seconds(90))
        let decoded = try JSONDecoder().decode([String: [JSONValue]].self, from: Data(output.utf8))
        #expect(decoded.count == 500)
        #expect(Set(decoded.keys) == Set((0..<500).map { "swift-\($0)" }))
        #expect(decoded["swift-13"]?.first == .string("session-3"))
        // Keys map to one partition each, as with any Kafka client using the same partitioner.
        var partitionOfKey: [JSONValue: JSONValue] = [:]
        for (_, pair) in decoded {
            if let known = partitionOfKey[pair[0]] { #expect(known == pair[1]) }
            partitionOfKey[pair[0]] = pair[1]
        }

        let writeScript = """
            import sys
            from confluent_kafka import Producer
            p = Producer({"bootstrap.servers": sys.argv[1], "acks": "all", "enable.idempotence": True})
            for i in range(400):
                p.produce(sys.argv[2], key=("py-key-%d" % (i % 9)).encode(), value=("python-%d" % i).encode())
            assert p.flush(30) == 0
            """
        try await runPython(writeScript, arguments: [tansu.bootstrap, "interop.events"], timeout: .seconds(60))
        let reader = try log.consumer(for: .events, group: nil)
        #expect(reader.group == nil)
        let all = try await drain(reader, count: 900)
        let values = try strings(all.batches)
        #expect(values.count == 900)
        #expect(Set(values.filter { $0.hasPrefix("python-") }) == Set((0..<400).map { "python-\($0)" }))
        #expect(Set(all.assigned.keys) == Set(0..<4))
        #expect(all.assigned.values.allSatisfy { $0 == 0 })
        await reader.close()
        await log.shutdown()
    }

    @Test("offsets that hold no message (transaction markers) are read again, then passed; every record arrives once, in order")
    func offsetsWithoutMessages() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let log = try await makeLog(tansu, prefix: "gaps.", partitions: 1)
        // Three transactions of four records: each commit marker takes an offset that no consumer
        // is given (4 and 9), so the consumer sees its offsets skip.
        let writeScript = """
            import sys
            from confluent_kafka import Producer
            p = Producer({"bootstrap.servers": sys.argv[1], "transactional.id": "gaps-test"})
            p.init_transactions(30)
            for t in range(3):
                p.begin_transaction()
                for i in range(4):
                    p.produce(sys.argv[2], value=("%d-%d" % (t, i)).encode())
                p.commit_transaction(30)
            """
        try await runPython(writeScript, arguments: [tansu.bootstrap, "gaps.events"], timeout: .seconds(60))
        let expected = (0..<3).flatMap { t in (0..<4).map { "\(t)-\($0)" } }
        // A group member (explicit start at 0) and a group-less reader (librdkafka's logical start).
        for group in ["gap-readers", nil] as [String?] {
            let consumer = try log.consumer(for: .events, group: group)
            let all = try await drain(consumer, count: expected.count, timeout: .seconds(30))
            var offsets: [Int64] = []
            var values: [String] = []
            for batch in all.batches {
                try batch.forEachRecord { offset, value in
                    offsets.append(offset)
                    values.append(String(decoding: value, as: UTF8.self))
                }
            }
            #expect(values == expected, "group \(group ?? "none")")
            #expect(offsets == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13], "group \(group ?? "none")")
            await consumer.close()
        }
        await log.shutdown()
    }
}

/// A JSON scalar, for reading the Python helper's output.
enum JSONValue: Decodable, Hashable {
    case string(String)
    case number(Double)
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .string(text)
        } else {
            self = .number(try container.decode(Double.self))
        }
    }
}
