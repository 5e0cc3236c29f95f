import Foundation
import Logging
import PlayheadTestSupport
@testable import RdKafka
import Synchronization
import Testing

let testLogger: Logger = {
    var logger = Logger(label: "rdkafka-tests")
    logger.logLevel = ProcessInfo.processInfo.environment["PLAYHEAD_TEST_LOG"] == "1" ? .debug : .critical
    return logger
}()

/// Fails with the known trap's explanation when Debian's librdkafka 2.0.2 is loaded.
func requireModernLibrdkafka() throws {
    guard RdKafka.version >= 0x0201_0000 else {
        throw TestSupportError(
            "librdkafka \(RdKafka.versionString) is loaded; Tansu needs a newer one. Run with "
                + "LD_LIBRARY_PATH=/work/main/.local/lib (or `. scripts/env`): see docs/kafka.md"
        )
    }
}

/// Produces `values` (keyed by `keys`) and waits for the delivery report.
func produce(
    _ producer: KafkaProducer, topic: String, values: [[UInt8]], keys: [[UInt8]]? = nil
) async -> Result<KafkaDeliveryReport, RdKafkaError> {
    await withCheckedContinuation { continuation in
        producer.produce(
            topic: topic, count: values.count,
            message: { index in
                let value = values[index].withUnsafeBytes { UnsafeRawBufferPointer($0) }
                let key = keys.map { $0[index].withUnsafeBytes { UnsafeRawBufferPointer($0) } }
                return KafkaOutgoingMessage(key: key, value: value)
            },
            completion: { continuation.resume(returning: $0) }
        )
    }
}

/// Polls until `count` messages arrived or `timeout` passes.
func consume(_ consumer: KafkaConsumer, count: Int, timeout: Duration = .seconds(40)) async throws -> [KafkaMessageBatch] {
    var batches: [KafkaMessageBatch] = []
    var received = 0
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while received < count && ContinuousClock.now < deadline {
        let poll = try await consumer.poll(maxMessages: 10_000, timeout: .milliseconds(500))
        batches.append(contentsOf: poll.batches)
        received += poll.messageCount
    }
    return batches
}

@Suite("RdKafka against librdkafka's mock cluster", .serialized)
struct RdKafkaMockTests {
    @Test("produce then consume through the mock cluster (test.mock.num.brokers)")
    func mockRoundTrip() async throws {
        // The mock cluster lives inside the producer's handle (it auto-creates the topic).
        let producer = try KafkaProducer(
            configuration: ["test.mock.num.brokers": "1", "acks": "all", "enable.idempotence": "true", "linger.ms": "1"],
            logger: testLogger
        )
        let values = (0..<200).map { Array("mock-\($0)".utf8) }
        // Every record with one key: one partition, consecutive offsets from the first.
        let keys = Array(repeating: Array("k".utf8), count: 200)
        let report = try await produce(producer, topic: "mock-topic", values: values, keys: keys).get()
        #expect(report.count == 200)
        #expect(report.partition != nil)
        #expect(report.firstOffset == 0)
        let second = try await produce(producer, topic: "mock-topic", values: values, keys: keys).get()
        #expect(second.partition == report.partition)
        #expect(second.firstOffset == 200)
        // An empty batch completes at once.
        #expect(try await produce(producer, topic: "mock-topic", values: []).get().count == 0)
        await producer.close()
        // After close, produce fails (it does not crash on the destroyed handle).
        let afterClose = await produce(producer, topic: "mock-topic", values: values)
        #expect((try? afterClose.get()) == nil)
    }

    @Test("a full local queue that never empties (no broker) fails the batch within message.timeout.ms, and produce does not block; closing fails what still waits for room")
    func queueFull() async throws {
        // Nothing listens on this port: messages stay queued, so the 11th does not fit.
        let port = try TestNetwork.freePort()
        let producer = try KafkaProducer(
            configuration: [
                "bootstrap.servers": "127.0.0.1:\(port)", "queue.buffering.max.messages": "10",
                "message.timeout.ms": "2000",
            ],
            logger: testLogger
        )
        let started = ContinuousClock.now
        let result = await produce(producer, topic: "t", values: (0..<50).map { _ in [1, 2, 3] })
        switch result {
        case .success: Issue.record("a batch larger than a queue no broker empties must fail")
        case .failure(let error):
            #expect(error.code == RdKafkaError.queueFull || error.code == RdKafkaError.messageTimedOut, "\(error)")
        }
        #expect(started.duration(to: .now) < .seconds(10))
        // A batch waiting for room when the producer closes gets the purge error at once.
        let producing = Mutex<Result<KafkaDeliveryReport, RdKafkaError>?>(nil)
        let value: [UInt8] = [1, 2, 3]
        for _ in 0..<2 {
            producer.produce(
                topic: "t", count: 20, message: { _ in value.withUnsafeBytes { KafkaOutgoingMessage(key: nil, value: UnsafeRawBufferPointer($0)) } },
                completion: { result in producing.withLock { $0 = $0 ?? result } }
            )
        }
        let closing = ContinuousClock.now
        await producer.close(flushTimeout: .milliseconds(100))
        #expect(closing.duration(to: .now) < .seconds(5))
        let closed = producing.withLock { $0 }
        #expect(closed != nil && (try? closed?.get()) == nil, "\(String(describing: closed))")
    }

    @Test("a batch that waited for room is answered within message.timeout.ms of its produce, not that much again once librdkafka takes it (up to twice, past a shutdown's grace); a record larger than the queue can ever hold fails at once and holds nothing behind it")
    func backlogDeadlines() async throws {
        // No broker: the first batch fills the queue of 10 and times out in librdkafka at 4 s;
        // the second, produced 0.5 s later, waits in the backlog: answered 4 s after its produce,
        // where it was answered at 7.5 s (4 s more once librdkafka took it). Margins of 2 s each
        // way: a whole test run's load stretched a tighter version past its bound.
        let port = try TestNetwork.freePort()
        let producer = try KafkaProducer(
            configuration: [
                "bootstrap.servers": "127.0.0.1:\(port)", "queue.buffering.max.messages": "10", "message.timeout.ms": "4000",
            ],
            logger: testLogger
        )
        let value: [UInt8] = [1, 2, 3]
        async let first = produce(producer, topic: "t", values: Array(repeating: value, count: 10))
        try await Task.sleep(for: .milliseconds(500))
        let sent = ContinuousClock.now
        let second = await produce(producer, topic: "t", values: Array(repeating: value, count: 10))
        let waited = sent.duration(to: .now)
        _ = await first
        #expect(waited < .seconds(6), "answered \(waited) after its produce, with message.timeout.ms 4000")
        guard case .failure(let error) = second else {
            Issue.record("a batch no broker took succeeded")
            return
        }
        #expect(error.code == RdKafkaError.messageTimedOut && error.message.contains("delivery_timeout_ms"), "\(error)")
        await producer.close(flushTimeout: .milliseconds(100))

        // A record over queue.buffering.max.kbytes (1 KiB here) never fits: it fails at once,
        // and a batch produced after it is not held behind it.
        let small = try KafkaProducer(
            configuration: ["test.mock.num.brokers": "1", "linger.ms": "1", "queue.buffering.max.kbytes": "1"],
            logger: testLogger
        )
        let started = ContinuousClock.now
        let big = await produce(small, topic: "big-topic", values: [[UInt8](repeating: 7, count: 2000)])
        #expect(started.duration(to: .now) < .seconds(1))
        guard case .failure(let tooLarge) = big else {
            Issue.record("a record larger than the queue was taken")
            return
        }
        #expect(tooLarge.code == RdKafkaError.messageTooLarge && tooLarge.message.contains("queue.buffering.max.kbytes"), "\(tooLarge)")
        #expect(try await produce(small, topic: "big-topic", values: [value]).get().count == 1)
        await small.close()
    }

    @Test("a batch larger than the local queue goes in as room comes: every message delivered, in order, and a batch produced meanwhile waits behind it (until 2026-12-07 the rest failed with _QUEUE_FULL while its first part was delivered)")
    func batchLargerThanTheQueue() async throws {
        let producer = try KafkaProducer(
            configuration: [
                "test.mock.num.brokers": "1", "acks": "all", "enable.idempotence": "true", "linger.ms": "1",
                "queue.buffering.max.messages": "10",
            ],
            logger: testLogger
        )
        let keys = Array(repeating: Array("k".utf8), count: 50)
        async let first = produce(producer, topic: "queue-topic", values: (0..<50).map { Array("a-\($0)".utf8) }, keys: keys)
        try await Task.sleep(for: .milliseconds(1))
        let second = await produce(producer, topic: "queue-topic", values: (0..<30).map { Array("b-\($0)".utf8) }, keys: Array(keys.prefix(30)))
        let firstReport = try await first.get()
        let secondReport = try second.get()
        #expect(firstReport.count == 50 && secondReport.count == 30)
        #expect(firstReport.partition == secondReport.partition)
        #expect(firstReport.firstOffset == 0 && secondReport.firstOffset == 50, "\(firstReport) \(secondReport)")
        await producer.close()
    }

    @Test("bad configuration is reported with the property's name")
    func badConfiguration() throws {
        #expect(throws: RdKafkaError.self) {
            _ = try KafkaProducer(configuration: ["no.such.property": "1"], logger: testLogger)
        }
        do {
            _ = try KafkaProducer(configuration: ["acks": "banana"], logger: testLogger)
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("acks"))
        }
    }
}

@Suite("RdKafka clients' callbacks")
struct RdKafkaCallbackLifetimeTests {
    @Test("a client's callbacks live as long as its librdkafka handle, which close() destroys; a client dropped without close() has its handle destroyed and its thread ended all the same")
    func callbacksLiveAsLongAsTheHandle() async throws {
        // Nothing listens on this port: librdkafka's threads report the refused connections
        // through the callbacks (log_cb, error_cb) for as long as the handle lives.
        let configuration = ["bootstrap.servers": "127.0.0.1:\(try TestNetwork.freePort())"]
        weak var producerCallbacks: ClientCallbacks?
        weak var consumerCallbacks: ClientCallbacks?
        weak var adminCallbacks: ClientCallbacks?
        do {
            let producer = try KafkaProducer(configuration: configuration, logger: testLogger)
            let consumer = try KafkaConsumer(configuration: configuration.merging(["group.id": "g"]) { $1 }, logger: testLogger)
            let admin = try KafkaAdmin(configuration: configuration, logger: testLogger)
            producerCallbacks = producer.callbacks
            consumerCallbacks = consumer.callbacks
            adminCallbacks = admin.callbacks
            await producer.close(flushTimeout: .zero)
            await consumer.close()
            await admin.close()
        }
        // Closed and dropped: nothing holds the callbacks (the worker threads may take a moment to end).
        let closedDeadline = ContinuousClock.now.advanced(by: .seconds(30))
        while producerCallbacks != nil || consumerCallbacks != nil || adminCallbacks != nil, ContinuousClock.now < closedDeadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(producerCallbacks == nil)
        #expect(consumerCallbacks == nil)
        #expect(adminCallbacks == nil)

        // Dropped without close() (a test that throws, a caller that forgets): the handles are
        // destroyed on the clients' own threads, which then end; their callbacks go with the
        // handles, which librdkafka's threads call until then. Until 2026-12-05 the handle, its
        // threads and the worker thread stayed for the life of the process; before that, the
        // callbacks were freed while librdkafka still called them.
        weak var droppedProducer: ClientCallbacks?
        weak var droppedConsumer: ClientCallbacks?
        weak var droppedAdmin: ClientCallbacks?
        weak var producerThread: WorkerThread?
        weak var consumerThread: WorkerThread?
        weak var adminThread: WorkerThread?
        let delivery = Mutex<Result<KafkaDeliveryReport, RdKafkaError>?>(nil)
        do {
            let producer = try KafkaProducer(configuration: configuration, logger: testLogger)
            let consumer = try KafkaConsumer(configuration: configuration.merging(["group.id": "g"]) { $1 }, logger: testLogger)
            let admin = try KafkaAdmin(configuration: configuration, logger: testLogger)
            droppedProducer = producer.callbacks
            droppedConsumer = consumer.callbacks
            droppedAdmin = admin.callbacks
            producerThread = producer.pollThread
            consumerThread = consumer.thread
            adminThread = admin.thread
            // A message no broker takes: dropping the producer fails it; it does not vanish.
            Array("dropped".utf8).withUnsafeBytes { bytes in
                producer.produce(topic: "t", count: 1, message: { _ in KafkaOutgoingMessage(key: nil, value: bytes) }) { result in
                    delivery.withLock { $0 = result }
                }
            }
        }
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while ContinuousClock.now < deadline {
            let ended = droppedProducer == nil && droppedConsumer == nil && droppedAdmin == nil
                && producerThread == nil && consumerThread == nil && adminThread == nil
            if ended { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(droppedProducer == nil && droppedConsumer == nil && droppedAdmin == nil, "a dropped client's handle was not destroyed")
        #expect(producerThread == nil && consumerThread == nil && adminThread == nil, "a dropped client's thread did not end")
        let outcome = delivery.withLock { $0 }
        guard case .failure(let error) = outcome else {
            Issue.record("the undelivered message's completion got \(String(describing: outcome)), not a failure")
            return
        }
        #expect(error.code == RdKafkaError.purgedQueue || error.code == RdKafkaError.purgedInFlight, "\(error)")
    }
}

@Suite("Brokers that answer nothing, from librdkafka's statistics")
struct BrokerSilenceTests {
    func broker(
        _ name: String, state: String = "UP", rxidle: Int64, waitresp: Int = 1, outbuf: Int = 0,
        nodeid: Int = 1, source: String = "configured"
    ) -> [String: Any] {
        ["name": name, "nodeid": nodeid, "source": source, "state": state, "rxidle": rxidle,
         "waitresp_cnt": waitresp, "outbuf_cnt": outbuf]
    }

    @Test("a broker with requests waiting that sent nothing for 15 s is silent through reconnections, until it answers or nothing waits for it")
    func silence() {
        let start = ContinuousClock.now
        let name = "10.0.0.1:9092/1"
        let coordinator = broker("GroupCoordinator", rxidle: 50_000_000, waitresp: 3, nodeid: -1, source: "logical")
        var silence = BrokerSilence()
        // Fetches answered within fetch.wait.max.ms; an idle connection (nothing waiting); the group
        // coordinator holding a join for the whole rebalance: none is silent.
        #expect(silence.update(brokers: ["a": broker(name, rxidle: 400_000), "c": coordinator], at: start) == .init())
        #expect(silence.update(brokers: ["a": broker(name, rxidle: 40_000_000, waitresp: 0), "c": coordinator], at: start) == .init())
        #expect(silence.update(brokers: ["a": broker(name, rxidle: 14_900_000, waitresp: 6)], at: start) == .init())
        #expect(silence.reason(at: start) == nil)

        // 20 s without a byte, 6 requests waiting.
        var change = silence.update(brokers: ["a": broker(name, rxidle: 20_000_000, waitresp: 6), "c": coordinator], at: start)
        #expect(change.nowSilent == [name])
        #expect(silence.reason(at: start) == "Kafka broker \(name) has answered nothing for 20 s with 6 requests waiting: frozen or overloaded")
        #expect(silence.reason(at: start.advanced(by: .seconds(5)))?.contains("for 25 s") == true)
        // librdkafka times the requests out and reconnects: nothing received on the new connection
        // yet, the ApiVersion request waiting. Still silent, with the time counted from the first report.
        change = silence.update(brokers: ["a": broker(name, state: "APIVERSION_QUERY", rxidle: -1, waitresp: 1, outbuf: 5)], at: start.advanced(by: .seconds(45)))
        #expect(change == .init())
        #expect(silence.reason(at: start.advanced(by: .seconds(45)))?.hasPrefix("Kafka broker \(name) has answered nothing for 65 s with 6 requests waiting") == true)
        change = silence.update(brokers: ["a": broker(name, state: "DOWN", rxidle: -1, waitresp: 1)], at: start.advanced(by: .seconds(50)))
        #expect(change == .init() && silence.reason(at: start) != nil)
        // Up again and answering: no longer silent.
        change = silence.update(brokers: ["a": broker(name, rxidle: 300_000, waitresp: 1)], at: start.advanced(by: .seconds(60)))
        #expect(change.answeringAgain == [name])
        #expect(silence.reason(at: start.advanced(by: .seconds(60))) == nil)

        // Silent, then nothing waits for it (its partitions moved to another broker): not silent.
        let other = "10.0.0.2:9092/2"
        _ = silence.update(brokers: ["a": broker(name, rxidle: 30_000_000, waitresp: 2), "b": broker(other, rxidle: 100, nodeid: 2)], at: start)
        #expect(silence.silent.keys.sorted() == [name])
        change = silence.update(brokers: ["a": broker(name, state: "DOWN", rxidle: -1, waitresp: 0), "b": broker(other, rxidle: 100, nodeid: 2)], at: start)
        #expect(change.answeringAgain == [name] && silence.reason(at: start) == nil)
        // Two silent brokers: the one silent longer is named, the other counted. One that leaves the
        // statistics (removed from the cluster) is forgotten.
        _ = silence.update(brokers: ["a": broker(name, rxidle: 30_000_000), "b": broker(other, rxidle: 16_000_000, nodeid: 2)], at: start)
        #expect(silence.reason(at: start) == "Kafka broker \(name) has answered nothing for 30 s with 1 request waiting (and 1 more): frozen or overloaded")
        change = silence.update(brokers: ["b": broker(other, rxidle: 17_000_000, nodeid: 2)], at: start)
        #expect(change.answeringAgain == [name])
        #expect(silence.reason(at: start)?.hasPrefix("Kafka broker \(other) has answered nothing for 16 s") == true)
    }

    @Test("the brokers of a statistics document are read from librdkafka's JSON; anything else is nil")
    func parse() {
        let json = #"{"name":"rdkafka#consumer-1","type":"consumer","brokers":{"127.0.0.1:9092/1":{"name":"127.0.0.1:9092/1","nodeid":1,"source":"learned","state":"UP","stateage":5000000,"outbuf_cnt":0,"waitresp_cnt":1,"rxidle":16000000}},"topics":{}}"#
        let brokers = Array(json.utf8).withUnsafeBytes { BrokerSilence.brokers(inStatistics: $0) }
        #expect(brokers?.count == 1)
        var silence = BrokerSilence()
        #expect(silence.update(brokers: brokers ?? [:], at: .now).nowSilent == ["127.0.0.1:9092/1"])
        #expect(Array("not json".utf8).withUnsafeBytes { BrokerSilence.brokers(inStatistics: $0) } == nil)
        #expect(Array(#"{"brokers":[1]}"#.utf8).withUnsafeBytes { BrokerSilence.brokers(inStatistics: $0) } == nil)
    }
}

@Suite("RdKafka against a real Tansu broker", .serialized)
struct RdKafkaTansuTests {
    @Test("librdkafka at run time is new enough for Tansu")
    func version() throws {
        try requireModernLibrdkafka()
    }

    @Test("admin creates a topic with N partitions; a keyed batch round-trips through a consumer group")
    func roundTrip() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let admin = try KafkaAdmin(configuration: ["bootstrap.servers": tansu.bootstrap], logger: testLogger)
        let created = try await admin.createTopics([.init(name: "rt", partitions: 3)])
        #expect(created == ["rt"])
        // Creating it again is not an error.
        #expect(try await admin.createTopics([.init(name: "rt", partitions: 3)]).isEmpty)
        #expect(try await admin.partitionCount(topic: "rt") == 3)
        #expect(try await admin.partitionCount(topic: "absent-topic") == 0)

        let producer = try KafkaProducer(
            configuration: [
                "bootstrap.servers": tansu.bootstrap, "acks": "all", "enable.idempotence": "true", "linger.ms": "5",
                "compression.type": "zstd",
            ],
            logger: testLogger
        )
        let values = (0..<300).map { Array("value-\($0)".utf8) }
        let keys = (0..<300).map { Array("key-\($0 % 7)".utf8) }
        let report = try await produce(producer, topic: "rt", values: values, keys: keys).get()
        #expect(report.count == 300)

        let consumer = try KafkaConsumer(
            configuration: [
                "bootstrap.servers": tansu.bootstrap, "group.id": "rt-group", "enable.auto.commit": "false",
                "auto.offset.reset": "earliest", "session.timeout.ms": "3000", "heartbeat.interval.ms": "500",
            ],
            logger: testLogger
        )
        try await consumer.subscribe(["rt"])
        let batches = try await consume(consumer, count: 300)
        let received = batches.flatMap(\.valueArrays)
        #expect(received.count == 300)
        #expect(Set(received) == Set(values))
        // Offsets within a partition are consecutive from 0.
        var perPartition: [Int32: [Int64]] = [:]
        for batch in batches { perPartition[batch.partition, default: []].append(contentsOf: (0..<batch.count).map { batch.firstOffset + Int64($0) }) }
        for (_, offsets) in perPartition { #expect(offsets == Array(0..<Int64(offsets.count))) }
        // Records with the same key share a partition (so a session stays in order).
        var partitionOfKey: [String: Int32] = [:]
        for batch in batches {
            for value in batch.valueArrays {
                let index = Int(String(decoding: value, as: UTF8.self).dropFirst("value-".count))!
                let key = "key-\(index % 7)"
                if let known = partitionOfKey[key] { #expect(known == batch.partition) }
                partitionOfKey[key] = batch.partition
            }
        }
        // Commit and read back.
        let offsets = perPartition.map { KafkaTopicPartition(topic: "rt", partition: $0.key, offset: Int64($0.value.count)) }
        try await consumer.commit(offsets)
        let committed = try await consumer.committed(offsets.map { KafkaTopicPartition(topic: "rt", partition: $0.partition) })
        #expect(Set(committed) == Set(offsets))
        // The high watermark seen by the fetches.
        for item in offsets {
            let marks = try await consumer.watermarks(topic: "rt", partition: item.partition, cached: true)
            #expect(marks.high == item.offset)
        }
        await consumer.close()
        await producer.close()
        await admin.close()
    }

    @Test("a consumer closed while the group is giving it more partitions closes at once: the assignment served inside close is taken without asking the group for its offsets (asked there, the request timed out and held the close for 10 s)")
    func closeDuringAnAssignment() async throws {
        try requireModernLibrdkafka()
        let tansu = try await Tansu.start()
        defer { tansu.kill() }
        let admin = try KafkaAdmin(configuration: ["bootstrap.servers": tansu.bootstrap], logger: testLogger)
        _ = try await admin.createTopics([.init(name: "closing", partitions: 4)])
        let configuration = [
            "bootstrap.servers": tansu.bootstrap, "group.id": "closing-group", "enable.auto.commit": "false",
            "auto.offset.reset": "earliest", "session.timeout.ms": "6000", "heartbeat.interval.ms": "300",
            "partition.assignment.strategy": "cooperative-sticky",
        ]
        let first = try KafkaConsumer(configuration: configuration, logger: testLogger)
        let second = try KafkaConsumer(configuration: configuration, logger: testLogger)
        // The rebalance protocol is the assignor's, known at construction: librdkafka was asked in
        // each callback, a request reported to hang inside rd_kafka_consumer_close (a review).
        #expect(first.callbacks.cooperative)
        var eager = configuration
        eager["partition.assignment.strategy"] = "range,roundrobin"
        let ranged = try KafkaConsumer(configuration: eager, logger: testLogger)
        #expect(!ranged.callbacks.cooperative)
        await ranged.close()
        try await first.subscribe(["closing"])
        try await second.subscribe(["closing"])
        // Both members hold partitions.
        var held: [Int] = [0, 0]
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while !(held[0] > 0 && held[1] > 0 && held[0] + held[1] == 4) && ContinuousClock.now < deadline {
            _ = try await first.poll(maxMessages: 100, timeout: .milliseconds(200))
            _ = try await second.poll(maxMessages: 100, timeout: .milliseconds(200))
            held = [try await first.assignment().count, try await second.assignment().count]
        }
        try #require(held[0] > 0 && held[1] > 0 && held[0] + held[1] == 4, "the two members hold \(held)")
        // The second leaves; the group gives its partitions to the first, which does not poll, so
        // the assignment waits in its queue until the close serves it.
        await second.close()
        try await Task.sleep(for: .seconds(4))
        let started = ContinuousClock.now
        await first.close()
        let took = started.duration(to: .now)
        #expect(took < .seconds(5), "close took \(took)")
        // The group is usable afterwards: a new member gets every partition.
        let third = try KafkaConsumer(configuration: configuration, logger: testLogger)
        try await third.subscribe(["closing"])
        var count = 0
        let thirdDeadline = ContinuousClock.now.advanced(by: .seconds(60))
        while count < 4 && ContinuousClock.now < thirdDeadline {
            _ = try await third.poll(maxMessages: 100, timeout: .milliseconds(200))
            count = try await third.assignment().count
        }
        #expect(count == 4)
        await third.close()
        await admin.close()
    }
}

@Suite("librdkafka's repeated messages")
struct RepeatedMessagesTests {
    @Test("a text is logged once per interval, then says how many repeats were left out; durations and repeat counts do not make a text new, other numbers do")
    func repeats() {
        let repeated = RepeatedMessages(interval: .seconds(30), capacity: 4)
        let start = ContinuousClock.now
        let refused = "Connect to ipv4#127.0.0.1:19999 failed: Connection refused (after 0ms in state CONNECT)"
        #expect(repeated.admit(refused, now: start) == 0)
        #expect(repeated.admit(refused.replacingOccurrences(of: "0ms", with: "12ms"), now: start + .seconds(1)) == nil)
        #expect(repeated.admit(refused, now: start + .seconds(29)) == nil)
        #expect(repeated.admit(refused.replacingOccurrences(of: "19999", with: "19998"), now: start + .seconds(2)) == 0)
        #expect(repeated.admit(refused, now: start + .seconds(30)) == 2)
        #expect(repeated.admit(refused, now: start + .seconds(31)) == nil)
        let suppressed = "1/1 brokers are down (after 3ms in state CONNECT, 4 identical error(s) suppressed)"
        #expect(repeated.admit(suppressed, now: start) == 0)
        #expect(repeated.admit(suppressed.replacingOccurrences(of: "4 identical", with: "17 identical"), now: start) == nil)
        #expect(repeated.admit("1/1 brokers are down (after 3ms in state CONNECT)", now: start) == nil)
        // Past its capacity the memory of texts is cleared, not grown.
        for index in 0..<8 { #expect(repeated.admit("text \(index)", now: start) == 0) }
        #expect(repeated.admit(refused, now: start + .seconds(32)) == 0)
    }

    @Test("all brokers down after 'reachable again' is said even within the 30 s that leave a repeat out: the last line follows the brokers")
    func brokersDownAgainIsSaid() {
        let captured = CapturedLogs()
        let callbacks = ClientCallbacks(logger: Logger(label: "test") { _ in CapturingLogHandler(captured: captured) })
        let down = RdKafkaError(code: RdKafkaError.allBrokersDown, message: "1/1 brokers are down (\(UUID()))")
        callbacks.clientError(down)
        callbacks.brokerAnswered()
        callbacks.clientError(down)
        let lines = captured.all.filter { $0.contains("brokers are down") || $0.contains("reachable again") }
        #expect(lines.count == 3 && lines.last?.contains("brokers are down") == true, "\(captured.all)")
        // A repeat while still down is left out as before.
        callbacks.clientError(down)
        #expect(captured.all.filter { $0.contains("brokers are down") }.count == 2, "\(captured.all)")
    }

    @Test("a refused connection is logged once: librdkafka's FAIL line (error), not again as the client error _TRANSPORT (warning) that repeats its text")
    func refusedConnectionLoggedOnce() async throws {
        let captured = CapturedLogs()
        // A real producer: nothing listens on the port, so librdkafka logs FAIL and reports _TRANSPORT.
        let port = try TestNetwork.freePort()
        let producer = try KafkaProducer(
            configuration: ["bootstrap.servers": "127.0.0.1:\(port)"],
            logger: Logger(label: "test") { _ in CapturingLogHandler(captured: captured) })
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while !captured.all.contains(where: { $0.contains("brokers are down") }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        await producer.close(flushTimeout: .zero)
        let refused = captured.all.filter { $0.contains("Connect to ipv4#127.0.0.1:\(port) failed") }
        #expect(refused.count == 1 && refused.first?.contains("FAIL") == true, "\(captured.all)")
        // The unit: a client error whose text a FAIL line gave is left out; another one is not.
        let unit = CapturedLogs()
        let callbacks = ClientCallbacks(logger: Logger(label: "test") { _ in CapturingLogHandler(captured: unit) })
        let text = "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after \(UUID().uuidString.count)ms in state CONNECT)"
        callbacks.brokerFailureLogged("[thrd:127.0.0.1:1/bootstrap]: " + text)
        callbacks.clientError(RdKafkaError(code: RdKafkaError.transport, message: text))
        let other = "127.0.0.1:2/bootstrap: Connect to ipv4#127.0.0.1:2 failed: Connection refused (\(UUID()))"
        callbacks.clientError(RdKafkaError(code: RdKafkaError.transport, message: other))
        #expect(unit.all.count == 1 && unit.all.first?.contains(other) == true, "\(unit.all)")
        // It is still the cause that /readyz names.
        #expect(callbacks.recentError == "_TRANSPORT: \(other)")
    }

    @Test("all brokers down says why: the last other client error (a SASL handshake's failure), which librdkafka reports just before")
    func brokersDownNamesItsCause() {
        let callbacks = ClientCallbacks(logger: testLogger)
        #expect(callbacks.brokersDown == nil)
        let handshake = "sasl_plaintext://127.0.0.1:9092/bootstrap: SASL PLAIN mechanism handshake failed: Broker: Unsupported SASL mechanism"
        // The order librdkafka reports them in (a probe against Tansu with security.protocol=sasl_plaintext);
        // -169 is RD_KAFKA_RESP_ERR__AUTHENTICATION.
        callbacks.clientError(RdKafkaError(code: -169, message: handshake))
        callbacks.clientError(RdKafkaError(code: RdKafkaError.allBrokersDown, message: "1/1 brokers are down"))
        let reason = callbacks.brokersDown ?? "nil"
        #expect(reason.hasPrefix("all Kafka brokers are down (the last connection error"), "\(reason)")
        #expect(reason.contains("(the last connection error: _AUTHENTICATION: \(handshake))"), "\(reason)")
        // What a timed-out admin request says: the cause, not the count of brokers down.
        #expect(callbacks.recentError == "_AUTHENTICATION: \(handshake)")
        callbacks.forgetRecentError()
        #expect(callbacks.recentError == nil)
        // librdkafka's count of brokers down is not repeated: it can be stale ("0/2 brokers are down").
        #expect(callbacks.brokersDown == "all Kafka brokers are down")
        // Only "all brokers down": said as it is.
        callbacks.clientError(RdKafkaError(code: RdKafkaError.allBrokersDown, message: "2/2 brokers are down"))
        #expect(callbacks.recentError == "_ALL_BROKERS_DOWN: 2/2 brokers are down")
        // A cause only librdkafka's log tells: a port that is not a Kafka listener.
        callbacks.forgetRecentError()
        callbacks.librdkafkaLogged(.warning, "librdkafka FAIL: 127.0.0.1:24916/bootstrap: ApiVersionRequest failed: Local: Timed out: probably due to broker version < 0.10 (see api.version.request configuration)")
        #expect(callbacks.brokersDown?.hasPrefix("all Kafka brokers are down (the last connection error: no answer to Kafka's first request (ApiVersion)") == true, "\(callbacks.brokersDown ?? "nil")")
        // The later of a client error and a cause from the log is named (librdkafka may report one
        // failure both ways).
        callbacks.clientError(RdKafkaError(code: -195, message: "127.0.0.1:24916/bootstrap: Connect to ipv4#127.0.0.1:24916 failed: Connection refused"))
        #expect(callbacks.brokersDown?.contains("(the last connection error: _TRANSPORT: ") == true, "\(callbacks.brokersDown ?? "nil")")
        callbacks.librdkafkaLogged(.warning, "librdkafka FAIL: 127.0.0.1:24916/bootstrap: ApiVersionRequest failed: Local: Timed out")
        #expect(callbacks.brokersDown?.contains("(the last connection error: no answer to Kafka's first request") == true, "\(callbacks.brokersDown ?? "nil")")
        // It outlives the forgetting of a request's errors: it comes from librdkafka's threads at any time.
        callbacks.forgetRecentError()
        #expect(callbacks.recentError?.hasPrefix("no answer to Kafka's first request (ApiVersion)") == true, "\(callbacks.recentError ?? "nil")")
        callbacks.forgetRecentError(all: true)
        callbacks.librdkafkaLogged(.warning, "librdkafka FAIL: ssl://127.0.0.1:9092/bootstrap: Connection setup timed out in state SSL_HANDSHAKE (after 30029ms in state SSL_HANDSHAKE)")
        #expect(callbacks.brokersDown?.contains("the TLS handshake timed out: is the listener plaintext?") == true, "\(callbacks.brokersDown ?? "nil")")
        callbacks.forgetRecentError(all: true)
        callbacks.librdkafkaLogged(.warning, "librdkafka REQTMOUT: 127.0.0.1:9092/1: Timed out 1 in-flight request")
        #expect(callbacks.brokersDown == "all Kafka brokers are down")
    }
}
