import CRdKafka
import Logging
import Synchronization

/// Consecutive messages of one partition, values framed as `[UInt32 LE length][bytes]`.
public struct KafkaMessageBatch: Sendable {
    public var topic: String
    public var partition: Int32
    public var firstOffset: Int64
    public var count: Int
    /// `[UInt32 little-endian length][value]` repeated ``count`` times.
    public var values: [UInt8]

    public var nextOffset: Int64 { firstOffset + Int64(count) }

    /// Each message's value as bytes (copies; for tests and tools).
    public var valueArrays: [[UInt8]] {
        var result: [[UInt8]] = []
        result.reserveCapacity(count)
        var position = 0
        while position + 4 <= values.count {
            let length = Int(values[position]) | Int(values[position + 1]) << 8 | Int(values[position + 2]) << 16
                | Int(values[position + 3]) << 24
            result.append(Array(values[(position + 4)..<(position + 4 + length)]))
            position += 4 + length
        }
        return result
    }
}

/// What one ``KafkaConsumer/poll(maxMessages:timeout:)`` returns.
public struct KafkaConsumerPoll: Sendable {
    /// Messages, in offset order within each partition.
    public var batches: [KafkaMessageBatch] = []
    /// Partitions assigned during this poll, each with the group's committed offset
    /// (``KafkaOffset/invalid`` when the group has none, ``KafkaOffset/stored`` when it could not
    /// be asked: not known).
    public var assigned: [KafkaTopicPartition] = []
    /// Partitions revoked (or lost) during this poll. Messages of these partitions fetched in the
    /// same poll were dropped: their next owner reads them from the committed offset.
    public var revoked: [KafkaTopicPartition] = []
    /// Non-fatal errors reported by the consumer meanwhile (an unknown topic, a broker down).
    public var errors: [RdKafkaError] = []
    /// Partitions whose end the consumer reached during this poll, each with the offset of that end
    /// (the next message's), when `enable.partition.eof` is on.
    public var ends: [KafkaTopicPartition] = []

    public var messageCount: Int { batches.reduce(0) { $0 + $1.count } }
}

/// A librdkafka high-level consumer, driven from one dedicated thread.
///
/// Every call (poll, commit, seek, committed offsets, watermarks, close) runs as a job on the
/// consumer's own thread, one at a time, so no blocking librdkafka call ever runs on the
/// cooperative pool, and the rebalance callback (which librdkafka runs inside `consumer_poll`)
/// never races with the caller.
///
/// Rebalancing: the callback uses incremental assign/unassign when the group's protocol is
/// COOPERATIVE (`partition.assignment.strategy=cooperative-sticky`) and full assign/unassign
/// otherwise (eager: `range`, `roundrobin`).
public final class KafkaConsumer: @unchecked Sendable {
    private let handle: OpaquePointer
    let callbacks: ConsumerCallbacks
    let thread: WorkerThread  // internal: a test sees it end when the consumer is dropped without close()
    private let closed = AtomicFlag()
    public let logger: Logger

    /// Makes the committed-offset lookups of the next `count` assignments fail as if the group
    /// coordinator had not answered in time (the case that a live broker cannot be made to give
    /// on demand), so that a test sees what the consumer reports then (``KafkaOffset/stored``).
    package func failNextCommittedLookups(_ count: Int) {
        callbacks.committedLookupsToFail.store(count, ordering: .relaxed)
    }

    /// `configuration` holds librdkafka properties: `bootstrap.servers`, `group.id` (needed for
    /// subscribe and commits), `enable.auto.commit`, `auto.offset.reset`, `session.timeout.ms`, ...
    ///
    /// `uncommittedStart`: where a partition assigned by the group starts when the group has no
    /// committed offset for it. `nil` leaves it to `auto.offset.reset` (a ListOffsets request);
    /// an offset (such as 0) is assigned explicitly, and `auto.offset.reset` applies only if that
    /// offset is out of range (deleted by retention). Tansu can answer the reset's ListOffsets with
    /// an offset past records that are being produced at that moment (docs/kafka.md), which made a
    /// new group skip the first records; an explicit 0 avoids the request.
    public init(configuration: [String: String], uncommittedStart: Int64? = nil, logger: Logger) throws(RdKafkaError) {
        self.logger = logger
        let callbacks = ConsumerCallbacks(logger: logger)
        callbacks.uncommittedStart = uncommittedStart
        // The protocol follows from the assignor, known now: asked of librdkafka inside each
        // rebalance callback (`rd_kafka_rebalance_protocol`, a request to the group's thread with no
        // timeout), it is reported to hang or answer NONE when the callback runs inside
        // `rd_kafka_consumer_close` (librdkafka#4041; a review).
        callbacks.cooperative = (configuration["partition.assignment.strategy"] ?? "")
            .split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces) == "cooperative-sticky" }
        self.callbacks = callbacks
        let conf = try makeConfiguration(configuration)
        installCommonCallbacks(conf)
        installStatisticsCallback(conf)
        rd_kafka_conf_set_rebalance_cb(conf) { handle, err, partitions, opaque in
            guard let handle, let opaque else { return }
            let callbacks = Unmanaged<ClientCallbacks>.fromOpaque(opaque).takeUnretainedValue() as! ConsumerCallbacks
            callbacks.rebalance(handle, err, partitions)
        }
        handle = try makeHandle(RD_KAFKA_CONSUMER, conf, callbacks: callbacks)
        rd_kafka_poll_set_consumer(handle)
        thread = WorkerThread(name: "rdkafka-consumer")
    }

    private func perform<T: Sendable>(
        _ what: String = "call",
        _ body: @escaping @Sendable (OpaquePointer, ConsumerCallbacks) -> Result<T, RdKafkaError>
    ) async throws(RdKafkaError) -> T {
        nonisolated(unsafe) let handle = self.handle
        let callbacks = self.callbacks
        let closed = self.closed
        let result = await thread.run { () -> Result<T, RdKafkaError> in
            if closed.load(ordering: .acquiring) {
                return .failure(RdKafkaError(code: RdKafkaError.destroyed, message: "the consumer is closed"))
            }
            callbacks.running.withLock { $0 = (what, .now) }
            defer { callbacks.running.withLock { $0 = nil } }
            return body(handle, callbacks)
        }
        guard let result else { throw RdKafkaError(code: RdKafkaError.destroyed, message: "the consumer is closed") }
        return try result.get()
    }

    /// Why no broker can be reached, or one answers nothing, or nil: a consumer's polls then come
    /// back empty, not failed. Also a call that has waited ``BrokerSilence/limit`` or more on the
    /// consumer's thread (a commit to a broker that answers nothing): it holds up the polls that
    /// deliver librdkafka's statistics, so the broker's silence was never seen, and `observe` said
    /// ready through 80 s of a frozen broker under load (an outside review).
    public var unavailableReason: String? {
        if let reason = callbacks.brokersDown { return reason }
        guard let call = callbacks.running.withLock({ $0 }) else { return nil }
        let waited = call.since.duration(to: .now)
        guard waited >= BrokerSilence.limit else { return nil }
        return "a Kafka \(call.what) has waited \(waited.components.seconds) s for a broker's answer: frozen or overloaded"
    }

    /// Joins the group (`group.id`) and subscribes to `topics`; assignments arrive in later polls.
    public func subscribe(_ topics: [String]) async throws(RdKafkaError) {
        try await perform { (handle, _) -> Result<Void, RdKafkaError> in
            let list = makePartitionList(topics.map { KafkaTopicPartition(topic: $0, partition: -1) })
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_subscribe(handle, list)
            return err == RD_KAFKA_RESP_ERR_NO_ERROR ? .success(()) : .failure(RdKafkaError(err))
        }
    }

    /// Reads `partitions` from their offsets without a group (no rebalancing, no commits). The
    /// next poll reports them in ``KafkaConsumerPoll/assigned``.
    public func assign(_ partitions: [KafkaTopicPartition]) async throws(RdKafkaError) {
        try await perform { (handle, callbacks) -> Result<Void, RdKafkaError> in
            let list = makePartitionList(partitions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_assign(handle, list)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { return .failure(RdKafkaError(err)) }
            callbacks.pending.assigned.append(contentsOf: partitions)
            callbacks.expect(partitions)
            callbacks.assignment.formUnion(partitions.map { TopicPartitionKey(topic: $0.topic, partition: $0.partition) })
            return .success(())
        }
    }

    /// Waits up to `timeout` for messages and returns at most about `maxMessages`, plus the
    /// assignment changes that happened meanwhile. Returns early when other calls are waiting.
    public func poll(maxMessages: Int, timeout: Duration) async throws(RdKafkaError) -> KafkaConsumerPoll {
        let thread = self.thread
        return try await perform { handle, callbacks in
            callbacks.pollLoop(handle, thread: thread, maxMessages: maxMessages, timeout: timeout)
        }
    }

    /// Makes the next fetch of each partition start at its offset. The partitions must be assigned.
    public func seek(_ partitions: [KafkaTopicPartition], timeout: Duration = .seconds(10)) async throws(RdKafkaError) {
        try await perform { (handle, callbacks) -> Result<Void, RdKafkaError> in
            callbacks.dropPending(partitions)
            let list = makePartitionList(partitions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            if let error = rd_kafka_seek_partitions(handle, list, milliseconds(timeout)) {
                return .failure(RdKafkaError(consuming: error))
            }
            for (item, error) in readPartitionList(list) {
                if let error { return .failure(RdKafkaError(code: error.code, message: "seek \(item): \(error.message)")) }
            }
            callbacks.expect(partitions)
            return .success(())
        }
    }

    /// Commits exactly these offsets (the offset of the next message to read), waiting at most
    /// `timeout` for the group coordinator's answer; past it the commit fails with `_TIMED_OUT`
    /// (its answer, should it come, is dropped), and the offsets may or may not have been committed.
    ///
    /// Until 2026-12-08 this was `rd_kafka_commit`, which waits for the coordinator with no limit:
    /// with the broker frozen (SIGSTOP), a commit held the consumer's thread, and with it every later
    /// call including the close, until the broker thawed, so a `store` told to stop stayed up for
    /// minutes past its 20 s shutdown limit (an outside review). Now the commit's result comes to a
    /// queue of its own, polled with a timeout.
    public func commit(_ offsets: [KafkaTopicPartition], timeout: Duration = KafkaConsumer.commitTimeout) async throws(RdKafkaError) {
        guard !offsets.isEmpty else { return }
        try await perform("commit") { (handle, _) -> Result<Void, RdKafkaError> in
            let list = makePartitionList(offsets)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            guard let queue = rd_kafka_queue_new(handle) else { return .failure(.local("rd_kafka_queue_new failed")) }
            // Destroyed with the commit maybe still under way: librdkafka then drops its answer.
            defer { rd_kafka_queue_destroy(queue) }
            let err = rd_kafka_commit_queue(handle, list, queue, nil, nil)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(RdKafkaError(err, "commit: \(String(cString: rd_kafka_err2str(err)))")) }
            let deadline = ContinuousClock.now.advanced(by: timeout)
            while true {
                let left = ContinuousClock.now.duration(to: deadline)
                guard left > .zero, let event = rd_kafka_queue_poll(queue, max(1, milliseconds(left))) else {
                    if ContinuousClock.now < deadline { continue }
                    return .failure(RdKafkaError(
                        code: RdKafkaError.timedOut,
                        message: "commit: the group coordinator did not answer within \(timeout) (a frozen or overloaded broker); the offsets may or may not be committed"
                    ))
                }
                defer { rd_kafka_event_destroy(event) }
                guard rd_kafka_event_type(event) == RD_KAFKA_EVENT_OFFSET_COMMIT else { continue }
                let eventError = rd_kafka_event_error(event)
                if eventError != RD_KAFKA_RESP_ERR_NO_ERROR {
                    return .failure(RdKafkaError(eventError, "commit: \(String(cString: rd_kafka_err2str(eventError)))"))
                }
                for (item, error) in readPartitionList(rd_kafka_event_topic_partition_list(event)) {
                    if let error { return .failure(RdKafkaError(code: error.code, message: "commit \(item): \(error.message)")) }
                }
                return .success(())
            }
        }
    }

    /// How long ``commit(_:timeout:)`` waits for the group coordinator by default: a coordinator
    /// that answers does so in milliseconds, or at once with an error (a rebalance under way).
    public static let commitTimeout: Duration = .seconds(10)

    /// The group's committed offsets for `partitions` (``KafkaOffset/invalid`` where none).
    public func committed(_ partitions: [KafkaTopicPartition], timeout: Duration = .seconds(10)) async throws(RdKafkaError) -> [KafkaTopicPartition] {
        guard !partitions.isEmpty else { return [] }
        return try await perform("request for committed offsets") { handle, _ in committedBlocking(handle, partitions, timeout: timeout) }
    }

    /// The partitions currently assigned to this consumer.
    public func assignment() async throws(RdKafkaError) -> [KafkaTopicPartition] {
        try await perform { _, callbacks in
            .success(callbacks.assignment.map { KafkaTopicPartition(topic: $0.topic, partition: $0.partition) })
        }
    }

    /// A partition's low and high watermarks. `cached: true` reads what the last fetch response
    /// said (no request; ``KafkaOffset/invalid`` when unknown); `false` asks the leader (ListOffsets).
    public func watermarks(
        topic: String, partition: Int32, cached: Bool, timeout: Duration = .seconds(5)
    ) async throws(RdKafkaError) -> (low: Int64, high: Int64) {
        let pair: WatermarkPair = try await perform { handle, _ in
            var low: Int64 = KafkaOffset.invalid
            var high: Int64 = KafkaOffset.invalid
            let err =
                cached
                ? rd_kafka_get_watermark_offsets(handle, topic, partition, &low, &high)
                : rd_kafka_query_watermark_offsets(handle, topic, partition, &low, &high, milliseconds(timeout))
            return err == RD_KAFKA_RESP_ERR_NO_ERROR ? .success(WatermarkPair(low: low, high: high)) : .failure(RdKafkaError(err))
        }
        return (pair.low, pair.high)
    }

    /// Leaves the group (`rd_kafka_consumer_close`, which runs the last revoke), destroys the
    /// handle and ends the thread. Idempotent.
    public func close() async {
        _ = await thread.run(closeJob)
        await thread.stop()
    }

    /// Dropped without ``close()``: the consumer leaves its group and its handle is destroyed on
    /// its thread, which then ends.
    deinit {
        thread.finish(with: closeJob)
    }

    /// Leaves the group and destroys the handle, once (both block: run it on the consumer's thread).
    private var closeJob: @Sendable () -> Void {
        nonisolated(unsafe) let handle = self.handle
        let closed = self.closed
        let callbacks = self.callbacks
        return {
            if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
            callbacks.closing = true
            rd_kafka_consumer_close(handle)
            destroyHandle(handle)
        }
    }
}

struct WatermarkPair: Sendable {
    var low: Int64
    var high: Int64
}

struct TopicPartitionKey: Hashable, Sendable {
    var topic: String
    var partition: Int32
}

func committedBlocking(
    _ handle: OpaquePointer, _ partitions: [KafkaTopicPartition], timeout: Duration
) -> Result<[KafkaTopicPartition], RdKafkaError> {
    let list = makePartitionList(partitions.map { KafkaTopicPartition(topic: $0.topic, partition: $0.partition) })
    defer { rd_kafka_topic_partition_list_destroy(list) }
    let err = rd_kafka_committed(handle, list, milliseconds(timeout))
    guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { return .failure(RdKafkaError(err)) }
    var result: [KafkaTopicPartition] = []
    for (item, error) in readPartitionList(list) {
        if let error { return .failure(error) }
        result.append(item)
    }
    return .success(result)
}

/// The consumer's state touched by the rebalance callback. Only the consumer's thread uses it.
final class ConsumerCallbacks: ClientCallbacks, @unchecked Sendable {
    /// The call running on the consumer's thread (what, and since when), or nil between calls.
    let running = Mutex<(what: String, since: ContinuousClock.Instant)?>(nil)
    var pending = KafkaConsumerPoll()
    /// See ``KafkaConsumer/init(configuration:uncommittedStart:logger:)``; set once before use.
    var uncommittedStart: Int64?
    /// Whether the assignor is cooperative (incremental assign and unassign); set once before use.
    var cooperative = false
    var assignment: Set<TopicPartitionKey> = []
    /// How many of the next assignments' committed-offset lookups fail as timed out without
    /// asking the group (``KafkaConsumer/failNextCommittedLookups(_:)``, for tests).
    let committedLookupsToFail = Atomic<Int>(0)
    /// Set just before `rd_kafka_consumer_close`, on the consumer's thread, which then runs the
    /// callbacks the close serves.
    var closing = false
    private var positions: [TopicPartitionKey: Int] = [:]  // index of the open batch in pending.batches
    /// The offset each partition's next message should have (where it was assigned or sought to,
    /// then the last one delivered + 1), across polls; forgotten on a revoke.
    private var expectedNext: [TopicPartitionKey: Int64] = [:]
    /// A skip being read again: the first offset missing and how many times it was skipped.
    private var skips: [TopicPartitionKey: (offset: Int64, times: Int)] = [:]
    /// How many times the same offsets may be skipped, each followed by a seek back to read them,
    /// before the consumer takes the skip as the partition's content (offsets that hold no
    /// message: a compacted topic, transaction markers).
    static let readAgainLimit = 3

    /// Runs inside `rd_kafka_consumer_poll` on the consumer thread.
    func rebalance(
        _ handle: OpaquePointer, _ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
    ) {
        let cooperative = self.cooperative
        let items = readPartitionList(partitions).map { $0.0 }
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS where closing:
            // Served inside rd_kafka_consumer_close: the group gave this member more partitions
            // while it was leaving (a rebalance the application did not poll for). Taken as they
            // are, to be revoked by the close at once. Asking the group for their offsets here
            // always timed out, since the closing group no longer answers: the close was held
            // for that whole 10 s (docs/kafka.md).
            if cooperative {
                if let error = rd_kafka_incremental_assign(handle, partitions) {
                    logger.warning("Kafka incremental assign while closing failed: \(RdKafkaError(consuming: error))")
                }
            } else {
                _ = rd_kafka_assign(handle, partitions)
            }
            assignment.formUnion(items.map { TopicPartitionKey(topic: $0.topic, partition: $0.partition) })
            // (A cooperative rebalance may assign nothing: said only when it assigns some, a review
            // saw the line with an empty list.)
            if !items.isEmpty {
                logger.info("Kafka partitions assigned while this consumer closes, left at once: \(items.map { "\($0.topic)[\($0.partition)]" }.joined(separator: ", "))")
            }
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            // Where each partition starts: the group's committed offsets, asked before assigning so
            // that partitions without one can be given `uncommittedStart` explicitly.
            var assigned = items.map { KafkaTopicPartition(topic: $0.topic, partition: $0.partition) }
            let lookup: Result<[KafkaTopicPartition], RdKafkaError>
            if committedLookupsToFail.load(ordering: .relaxed) > 0 {
                committedLookupsToFail.subtract(1, ordering: .relaxed)
                lookup = .failure(RdKafkaError(code: RdKafkaError.timedOut, message: "the committed offsets' lookup was made to fail (a test)"))
            } else {
                lookup = committedBlocking(handle, assigned, timeout: .seconds(10))
            }
            switch lookup {
            case .success(let committed):
                assigned = committed
                var byKey: [TopicPartitionKey: Int64] = [:]
                for item in committed { byKey[TopicPartitionKey(topic: item.topic, partition: item.partition)] = item.offset }
                if let partitions, let elements = partitions.pointee.elems {
                    for index in 0..<Int(partitions.pointee.cnt) {
                        let key = TopicPartitionKey(topic: String(cString: elements[index].topic), partition: elements[index].partition)
                        let offset = byKey[key] ?? KafkaOffset.invalid
                        if offset >= 0 {
                            elements[index].offset = offset
                        } else if let start = uncommittedStart {
                            elements[index].offset = start
                        }
                    }
                }
            case .failure(let error):
                // Assigned as they are: librdkafka looks the committed offsets up itself, and a
                // partition without one starts at `auto.offset.reset`, not at `uncommittedStart`.
                // Reported as ``KafkaOffset/stored`` (not known here): until 2026-12-08 they were
                // reported as having none, taken as 0, and the lag counted the whole partition
                // until its next commit (an outside review).
                assigned = assigned.map { KafkaTopicPartition(topic: $0.topic, partition: $0.partition, offset: KafkaOffset.stored) }
                logger.warning("Kafka committed offsets of newly assigned partitions unavailable: \(error); librdkafka looks them up itself (partitions without one start at auto.offset.reset)")
            }
            if cooperative {
                if let error = rd_kafka_incremental_assign(handle, partitions) {
                    let failure = RdKafkaError(consuming: error)
                    logger.error("Kafka incremental assign failed: \(failure)")
                    pending.errors.append(failure)
                }
            } else {
                let result = rd_kafka_assign(handle, partitions)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR { pending.errors.append(RdKafkaError(result)) }
            }
            pending.assigned.append(contentsOf: assigned)
            brokerAnswered()  // the group's coordinator assigned them
            if let partitions { expect(readPartitionList(partitions).map { $0.0 }) }
            assignment.formUnion(items.map { TopicPartitionKey(topic: $0.topic, partition: $0.partition) })
            // An empty assignment (a rebalance that gave this member nothing new) said nothing but
            // "assigned: " (an outside review).
            if !assigned.isEmpty { logger.info("Kafka partitions assigned: \(assigned.map(\.description).joined(separator: ", "))") }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(handle) != 0
            if cooperative {
                if let error = rd_kafka_incremental_unassign(handle, partitions) {
                    pending.errors.append(RdKafkaError(consuming: error))
                }
            } else {
                let result = rd_kafka_assign(handle, nil)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                    // (Its result was dropped: a revoke that failed said nothing, a review.)
                    logger.warning("Kafka unassign of revoked partitions failed: \(RdKafkaError(result))")
                    pending.errors.append(RdKafkaError(result))
                }
            }
            let revokedItems = cooperative ? items : assignment.map { KafkaTopicPartition(topic: $0.topic, partition: $0.partition) }
            dropPending(revokedItems)
            // A partition assigned and revoked in the same poll: drop the stale assignment news too.
            let revokedKeys = Set(revokedItems.map { TopicPartitionKey(topic: $0.topic, partition: $0.partition) })
            pending.assigned.removeAll { revokedKeys.contains(TopicPartitionKey(topic: $0.topic, partition: $0.partition)) }
            pending.revoked.append(contentsOf: revokedItems)
            assignment.subtract(revokedKeys)
            logger.info("Kafka partitions \(lost ? "lost" : "revoked"): \(revokedItems.map { "\($0.topic)[\($0.partition)]" }.joined(separator: ", "))")
        default:
            let error = RdKafkaError(err)
            logger.error("Kafka rebalance error: \(error)")
            pending.errors.append(error)
            _ = rd_kafka_assign(handle, nil)
            let revokedItems = assignment.map { KafkaTopicPartition(topic: $0.topic, partition: $0.partition) }
            dropPending(revokedItems)
            pending.revoked.append(contentsOf: revokedItems)
            assignment.removeAll()
        }
    }

    /// Forgets fetched messages of `partitions` (after a revoke or a seek).
    func dropPending(_ partitions: [KafkaTopicPartition]) {
        let keys = Set(partitions.map { TopicPartitionKey(topic: $0.topic, partition: $0.partition) })
        for key in keys {
            expectedNext[key] = nil
            skips[key] = nil
        }
        guard !keys.isEmpty, !pending.batches.isEmpty else { return }
        pending.batches.removeAll { keys.contains(TopicPartitionKey(topic: $0.topic, partition: $0.partition)) }
        positions.removeAll()
    }

    /// Where the next messages of `partitions` start, for those given as an offset (not a logical
    /// start such as the group's committed offset, which librdkafka looks up itself).
    func expect(_ partitions: [KafkaTopicPartition]) {
        for item in partitions {
            let key = TopicPartitionKey(topic: item.topic, partition: item.partition)
            expectedNext[key] = item.offset >= 0 ? item.offset : nil
            skips[key] = nil
        }
    }

    /// What ``add(_:)`` did with a message.
    enum Added {
        case added
        /// The message comes after offsets of its partition `key` that were never delivered (from
        /// `missing` on): it is not added, and the partition must be read again from `missing`.
        case skipped(key: TopicPartitionKey, missing: Int64)
    }

    /// Adds a message to its partition's open batch, unless offsets before it were skipped.
    ///
    /// A broker can answer a fetch with records past the offset asked for while an earlier batch of
    /// the partition is not readable yet (Tansu did, under concurrent producers: the test of the
    /// multi-process pipeline counted 13-35 events fewer in `observe` than the lake held, and
    /// librdkafka delivered offset 14758 right after 14715). librdkafka takes such an answer as it
    /// is, so the consumer checks that each partition's offsets follow on; after a skip it reads the
    /// partition again from the first missing offset, and only a skip seen ``readAgainLimit`` + 1
    /// times is taken as offsets that hold no message.
    private func add(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> Added {
        let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        let key = TopicPartitionKey(topic: topic, partition: message.pointee.partition)
        let offset = message.pointee.offset
        if let expected = expectedNext[key], offset > expected {
            let times = (skips[key].map { $0.offset == expected ? $0.times : 0 } ?? 0) + 1
            if times <= Self.readAgainLimit {
                skips[key] = (expected, times)
                logger.warning(
                    "Kafka consumer: \(topic)[\(key.partition)] delivered offset \(offset) after \(expected - 1); reading from \(expected) again (\(times) of \(Self.readAgainLimit))"
                )
                return .skipped(key: key, missing: expected)
            }
            logger.warning(
                "Kafka consumer: \(topic)[\(key.partition)] offsets \(expected)-\(offset - 1) hold no message (skipped \(times) times); going on from \(offset)"
            )
        }
        if !skips.isEmpty, let skip = skips[key], skip.offset <= offset { skips[key] = nil }
        expectedNext[key] = offset + 1
        let length = message.pointee.len
        var index: Int
        if let open = positions[key], pending.batches[open].nextOffset == offset {
            index = open
        } else {
            pending.batches.append(
                KafkaMessageBatch(topic: topic, partition: key.partition, firstOffset: offset, count: 0, values: [])
            )
            index = pending.batches.count - 1
            positions[key] = index
        }
        pending.batches[index].values.append(UInt8(truncatingIfNeeded: length))
        pending.batches[index].values.append(UInt8(truncatingIfNeeded: length >> 8))
        pending.batches[index].values.append(UInt8(truncatingIfNeeded: length >> 16))
        pending.batches[index].values.append(UInt8(truncatingIfNeeded: length >> 24))
        if length > 0, let payload = message.pointee.payload {
            pending.batches[index].values.append(
                contentsOf: UnsafeRawBufferPointer(start: payload, count: length)
            )
        }
        pending.batches[index].count += 1
        return .added
    }

    /// Makes librdkafka fetch `key` again from `offset`. The seek is asynchronous, and messages of
    /// the partition fetched before it are not delivered after it (librdkafka's version barrier).
    /// False when the seek could not be made: the partition then goes on after the skip.
    private func readAgain(_ handle: OpaquePointer, _ key: TopicPartitionKey, from offset: Int64) -> Bool {
        let list = makePartitionList([KafkaTopicPartition(topic: key.topic, partition: key.partition, offset: offset)])
        defer { rd_kafka_topic_partition_list_destroy(list) }
        var failure: String?
        if let error = rd_kafka_seek_partitions(handle, list, 0) {
            failure = RdKafkaError(consuming: error).message
        } else if let (_, error) = readPartitionList(list).first, let error,
            error.code != RD_KAFKA_RESP_ERR__IN_PROGRESS.rawValue  // an asynchronous seek under way
        {
            failure = error.message
        }
        if let failure {
            // Nothing more can be done here: go on after the skip rather than stall the partition.
            logger.error("Kafka consumer: cannot read \(key.topic)[\(key.partition)] again from \(offset): \(failure)")
            expectedNext[key] = nil
            skips[key] = nil
            return false
        }
        return true
    }

    /// The body of a poll job.
    func pollLoop(
        _ handle: OpaquePointer, thread: WorkerThread, maxMessages: Int, timeout: Duration
    ) -> Result<KafkaConsumerPoll, RdKafkaError> {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        checkRecovery(handle)
        var count = pending.messageCount
        var fatal: RdKafkaError?
        while count < maxMessages {
            let hasNews = count > 0 || !pending.assigned.isEmpty || !pending.revoked.isEmpty || !pending.ends.isEmpty
            let left = ContinuousClock.now.duration(to: deadline)
            let wait: Int32 = hasNews ? 0 : min(100, milliseconds(left))
            guard let message = rd_kafka_consumer_poll(handle, wait) else {
                if hasNews || ContinuousClock.now >= deadline || thread.hasQueuedJobs { break }
                continue
            }
            defer { rd_kafka_message_destroy(message) }
            let err = message.pointee.err
            if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                switch add(message) {
                case .added:
                    count += 1
                case .skipped(let key, let missing):
                    if !readAgain(handle, key, from: missing) {
                        // No expectation left for the partition: the message is taken as it is.
                        _ = add(message)
                        count += 1
                    }
                }
            } else if err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
                pending.ends.append(KafkaTopicPartition(topic: topic, partition: message.pointee.partition, offset: message.pointee.offset))
            } else {
                var text = String(cString: rd_kafka_err2str(err))
                if let payload = message.pointee.payload, message.pointee.len > 0 {
                    text = String(
                        decoding: UnsafeRawBufferPointer(start: payload, count: message.pointee.len), as: UTF8.self
                    )
                }
                let error = RdKafkaError(err, text)
                if err == RD_KAFKA_RESP_ERR__FATAL {
                    fatal = RdKafkaError(code: error.code, message: error.message, isRetriable: false, isFatal: true)
                    break
                }
                logger.debug("Kafka consumer: \(error)")
                if pending.errors.count < 16 { pending.errors.append(error) }
            }
        }
        if let fatal { return .failure(fatal) }
        let result = pending
        if count > 0 || !result.ends.isEmpty { brokerAnswered() }
        pending = KafkaConsumerPoll()
        positions.removeAll()
        return .success(result)
    }
}
