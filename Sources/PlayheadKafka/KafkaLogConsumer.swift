import Logging
import PlayheadLog
import RdKafka
import Synchronization

/// Reads one topic of a ``KafkaLog``: a member of a Kafka consumer group (subscribe, rebalances
/// reported in ``LogPoll/assigned`` / ``LogPoll/revoked``, manual commits), or, with no group, a
/// reader assigned every partition from the earliest record that commits nothing.
///
/// It joins the group (or assigns partitions) on its first ``poll(maxRecords:timeout:)``, once the
/// log's topics exist.
public final class KafkaLogConsumer: LogConsumer, Sendable {
    public let group: String?
    let log: KafkaLog
    let topic: LogTopic
    let kafkaTopic: String
    let consumer: KafkaConsumer
    private let state = Mutex<State>(State())

    struct State {
        var started = false
        var closed = false
        /// Committed offsets (or where reading started) of the partitions this consumer holds.
        var committed: [Int32: Int64] = [:]
        /// A reader's starting offsets asked for with `seek` before its first poll assigned it
        /// its partitions (`playhead log dump --offset`).
        var startAt: [Int32: Int64] = [:]
        /// Whether a reader waiting for its topic to be made has said so.
        var waitingSaid = false
        /// A reader's partitions, once assigned.
        var assigned: [Int32] = []
        /// Whether the group has ever assigned this consumer a partition.
        var heldPartitions = false
        /// The partitions the group assigns this consumer now (a group member's).
        var held: Set<Int32> = []
        /// A reader's next offset to return, per partition, from the records it returned.
        var next: [Int32: Int64] = [:]
        /// Where each partition ended when the reader last reached its end (end-of-partition events).
        var ends: [Int32: Int64] = [:]
    }

    init(log: KafkaLog, topic: LogTopic, kafkaTopic: String, group: String?, consumer: KafkaConsumer) {
        self.log = log
        self.topic = topic
        self.kafkaTopic = kafkaTopic
        self.group = group
        self.consumer = consumer
        // From the start, so that a member the group never gives a partition shows as holding none
        // (a group stuck at the broker left a `store` ready, with no lag series and no alert, a probe).
        reportHeld(0)
    }

    /// `playhead_consumer_partitions_assigned`, for a group member of the events topic.
    private func reportHeld(_ count: Int) {
        guard group != nil, topic == .events else { return }
        log.metrics.partitionsHeld(consumer: metricLabel, by: ObjectIdentifier(self), count: count)
    }

    private var metricLabel: String { group ?? "reader-\(topic.name)" }

    private func start(timeout: Duration) async throws(LogError) -> Bool {
        if state.withLock({ $0.started }) { return true }
        if !log.topicsReady {
            do {
                try await log.waitUntilReady(timeout: timeout)
            } catch {
                if error.code == .closed { throw error }
                return false
            }
        }
        do {
            if group != nil {
                try await consumer.subscribe([kafkaTopic])
            } else {
                let count: Int
                do {
                    count = try await log.partitionCount(of: topic)
                } catch {
                    // No broker answers yet: not started, as while the topics are being made
                    // (a reader of a log that creates no topics, `log dump`, is ready at once).
                    if error.code == .unavailable { return false }
                    throw error
                }
                guard count > 0 else {
                    if log.configuration.waitForTopics {
                        if state.withLock({ state in defer { state.waitingSaid = true }; return !state.waitingSaid }) {
                            log.logger.notice("Kafka topic \(kafkaTopic) does not exist yet; waiting for it to be made (by the first ingest or serve on this log)")
                        }
                        return false
                    }
                    throw LogError(code: .invalidArgument, message: "Kafka topic \(kafkaTopic) does not exist")
                }
                let startAt = state.withLock { $0.startAt }
                if let partition = startAt.keys.first(where: { $0 < 0 || Int($0) >= count }) {
                    throw LogError(code: .invalidArgument, message: "Kafka topic \(kafkaTopic) has \(count) partition(s), 0 to \(count - 1), not \(partition)")
                }
                // Only the partitions sought before the first poll, when some were: the lake
                // writer's warm-up reads one partition, and a reader of every partition from the
                // beginning fetched all of them to keep one (12 partitions of 61,000 records: 20 s
                // a partition, past max.poll.interval.ms at a restart of `store`, a probe).
                let partitions = startAt.isEmpty ? (0..<Int32(count)).map { $0 } : startAt.keys.sorted()
                try await consumer.assign(
                    partitions.map { KafkaTopicPartition(topic: kafkaTopic, partition: $0, offset: startAt[$0] ?? KafkaOffset.beginning) }
                )
                state.withLock { $0.assigned = partitions }
            }
        } catch let error as RdKafkaError {
            throw LogError(kafka: error, context: "start consumer of \(kafkaTopic)")
        } catch let error as LogError {
            throw error
        } catch {
            throw LogError(code: .io, message: "start consumer of \(kafkaTopic): \(error)")
        }
        state.withLock { $0.started = true }
        return true
    }

    public func poll(maxRecords: Int, timeout: Duration) async throws(LogError) -> LogPoll {
        if state.withLock({ $0.closed }) { throw LogError(code: .closed, message: "the consumer is closed") }
        let started = ContinuousClock.now
        guard try await start(timeout: timeout) else { return LogPoll() }
        let left = max(.zero, timeout - started.duration(to: .now))
        let result: KafkaConsumerPoll
        do {
            result = try await consumer.poll(maxMessages: max(1, maxRecords), timeout: left)
        } catch {
            throw LogError(kafka: error, context: "poll \(kafkaTopic)")
        }
        var poll = LogPoll()
        for item in result.revoked where item.topic == kafkaTopic {
            poll.revoked.append(item.partition)
        }
        // Assigned partitions whose committed offset the group did not tell (``KafkaOffset/stored``).
        var unknown: Set<Int32> = []
        for item in result.assigned where item.topic == kafkaTopic {
            // No committed offset: the group starts from the earliest record.
            poll.assigned[item.partition] = item.offset >= 0 ? item.offset : 0
            if item.offset == KafkaOffset.stored { unknown.insert(item.partition) }
        }
        for batch in result.batches where batch.topic == kafkaTopic {
            poll.batches.append(
                ConsumedBatch(partition: batch.partition, firstOffset: batch.firstOffset, count: batch.count, values: batch.values)
            )
        }
        for error in result.errors {
            log.logger.warning("Kafka consumer \(metricLabel) of \(kafkaTopic): \(error)")
        }
        if group == nil {
            state.withLock { state in
                for batch in poll.batches { state.next[batch.partition] = batch.nextOffset }
                for end in result.ends where end.topic == kafkaTopic { state.ends[end.partition] = end.offset }
            }
        }
        if !poll.revoked.isEmpty || !poll.assigned.isEmpty {
            let held = state.withLock { state in
                for partition in poll.revoked { state.committed.removeValue(forKey: partition) }
                // A committed offset not known is left out of the lag (0 counted the whole
                // partition, an outside review) until a commit or ``committed(partitions:)`` tells it.
                for (partition, offset) in poll.assigned where !unknown.contains(partition) { state.committed[partition] = offset }
                if !poll.assigned.isEmpty { state.heldPartitions = true }
                state.held.subtract(poll.revoked)
                state.held.formUnion(poll.assigned.keys)
                return state.held.count
            }
            reportHeld(held)
        }
        return poll
    }

    public func seek(partition: Int32, to offset: Int64) async throws(LogError) {
        let pending = state.withLock { state in
            // A reader not yet assigned its partitions starts this one at `offset` when it is.
            guard group == nil, !state.started else { return false }
            state.startAt[partition] = offset
            return true
        }
        if pending { return }
        do {
            try await consumer.seek([KafkaTopicPartition(topic: kafkaTopic, partition: partition, offset: offset)])
        } catch {
            throw LogError(kafka: error, context: "seek \(kafkaTopic)[\(partition)] to \(offset)")
        }
    }

    /// Commits exactly `offsets` (each the offset of the next record to read) for the group,
    /// synchronously. A group-less reader commits nothing.
    public func commit(_ offsets: [Int32: Int64]) async throws(LogError) {
        guard group != nil, !offsets.isEmpty else { return }
        do {
            try await consumer.commit(
                offsets.sorted { $0.key < $1.key }.map { KafkaTopicPartition(topic: kafkaTopic, partition: $0.key, offset: $0.value) }
            )
        } catch {
            throw LogError(kafka: error, context: "commit \(kafkaTopic) \(offsets.sorted { $0.key < $1.key })")
        }
        state.withLock { state in
            for (partition, offset) in offsets { state.committed[partition] = offset }
        }
    }

    public func stillOwns(_ partition: Int32, committing offset: Int64) async -> Bool {
        guard group != nil else { return true }
        // Never moves the group's offset back past one this consumer committed.
        let offset = max(offset, state.withLock { $0.committed[partition] } ?? offset)
        do {
            try await consumer.commit([KafkaTopicPartition(topic: kafkaTopic, partition: partition, offset: offset)])
            return true
        } catch {
            // No answer within the commit's time limit (a frozen or slow broker): the log cannot
            // tell, as when the coordinator cannot be reached. The lake's state write, conditional
            // on the state this writer read, still fences a writer that lost the partition. Taken
            // as lost ownership, a coordinator always slower than the limit made every batch be
            // dropped and the group joined again, with no progress (a review of that change; the
            // commit waited with no limit until 2026-12-08, and a stop hung with it).
            if error.code == RdKafkaError.timedOut {
                log.logger.warning("Kafka consumer \(metricLabel) of \(kafkaTopic): cannot confirm that it still holds partition \(partition); going on (the lake's state write is conditional): \(error)")
                return true
            }
            return !error.isMembershipLost
        }
    }

    /// The group's committed offsets (asked from the group coordinator) for the partitions this
    /// consumer holds; partitions without a committed offset are left out. Empty for a reader.
    public func committed() async throws(LogError) -> [Int32: Int64] {
        guard group != nil else { return [:] }
        let held: [KafkaTopicPartition]
        do {
            held = try await consumer.assignment().filter { $0.topic == kafkaTopic }
        } catch {
            throw LogError(kafka: error, context: "committed offsets of \(kafkaTopic)")
        }
        return try await committed(partitions: held.map(\.partition))
    }

    /// The group's committed offsets for `partitions` of this topic, whether this consumer holds
    /// them or not (an OffsetFetch to the group's coordinator: it need not have joined the group).
    public func committed(partitions: [Int32]) async throws(LogError) -> [Int32: Int64] {
        guard group != nil, !partitions.isEmpty else { return [:] }
        do {
            let offsets = try await consumer.committed(partitions.map { KafkaTopicPartition(topic: kafkaTopic, partition: $0) })
            var result: [Int32: Int64] = [:]
            for item in offsets where item.offset >= 0 { result[item.partition] = item.offset }
            // Held partitions whose committed offset the assignment could not tell (the lake
            // writer asks right after it): known now, for the lag.
            state.withLock { state in
                for (partition, offset) in result where state.held.contains(partition) && state.committed[partition] == nil {
                    state.committed[partition] = offset
                }
            }
            return result
        } catch {
            throw LogError(kafka: error, context: "committed offsets of \(kafkaTopic)")
        }
    }

    /// The sum over held partitions of (high watermark − committed offset), also published as
    /// `playhead_consumer_lag_events{consumer=<group>}`.
    ///
    /// High watermarks come from the last fetch response (cached, no request) and only when none
    /// is known yet from a ListOffsets request — Tansu's ListOffsets answers the last batch's base
    /// offset + 1, not the log end, so the cached value is the trustworthy one.
    public func lag() async -> Int64? {
        guard group != nil else { return nil }
        let (committed, held) = state.withLock { ($0.committed, $0.held) }
        // A partition held whose committed offset is not known yet (the group's answer timed out at
        // assignment): no lag known, not the other partitions' alone (which read 0 while that one
        // had a backlog, a review).
        if held.contains(where: { committed[$0] == nil }) { return nil }
        guard !committed.isEmpty else {
            // No partitions (all revoked, or more members than partitions): none to lag. Left
            // unrecorded, a process that lost its partitions kept its last lag for good, counted
            // twice in the group's sum and firing LakeFlushFailing on an idle `store`.
            // Only once it has held some: before its first assignment (a restart catching up)
            // 0 read as caught up while the backlog waited (a probe); the series is left as it is.
            // Nil then, so that a caller that records the lag itself (the metrics consumer) does
            // not publish that 0 either (it did, a probe).
            guard state.withLock({ $0.heldPartitions }) else { return nil }
            if topic == .events { log.metrics.lag(consumer: metricLabel, value: 0) }
            return 0
        }
        var total: Int64 = 0
        for (partition, offset) in committed {
            var high: Int64 = -1
            if let cached = try? await consumer.watermarks(topic: kafkaTopic, partition: partition, cached: true), cached.high >= 0 {
                high = cached.high
            } else if let queried = try? await consumer.watermarks(
                topic: kafkaTopic, partition: partition, cached: false, timeout: .seconds(2)
            ) {
                high = queried.high
            }
            guard high >= 0 else { return nil }
            total += max(0, high - offset)
        }
        // The gauge is the group's lag on the events topic (the lake writer's group reads `rejected` too).
        if topic == .events { log.metrics.lag(consumer: metricLabel, value: total) }
        return total
    }

    /// Not known here: a ListOffsets query is what would tell, and Tansu answers it with the last
    /// batch's base offset + 1 (docs/kafka.md), lower than the true end, which would make a caught-up
    /// lake look ahead of its log. The cached high watermark is no better at assignment: it may be
    /// older than what another member of the group has written since.
    public func endOffset(partition: Int32) async -> Int64? { nil }

    /// The high watermark of the last fetch response for `partition` (reliable on Tansu too,
    /// docs/kafka.md), nil before one.
    public func endOffsetAsLastRead(partition: Int32) async -> Int64? {
        guard let cached = try? await consumer.watermarks(topic: kafkaTopic, partition: partition, cached: true), cached.high >= 0 else {
            return nil
        }
        return cached.high
    }

    /// For a reader: every partition has reported its end (an end-of-partition event) at or after
    /// the next offset to return, or was started (`seek`) at or past the high watermark of the last
    /// fetch response (a broker may answer such a fetch with no records and no error, and then no
    /// end event comes). A group member: `false` (nothing uses it).
    public var unavailableReason: String? {
        // Before its first poll could start it (the topics not found: no broker answers at start),
        // the client has reached no broker, so it has reported nothing: `store` and `observe` said
        // ready for good with the broker down, or a wrong address (a probe).
        if !state.withLock({ $0.started }), let reason = log.topicsUnavailableReason {
            return "the Kafka consumer of \(kafkaTopic) has not started: \(reason)"
        }
        return consumer.unavailableReason.map { "the Kafka consumer of \(kafkaTopic) cannot reach a broker (\($0))" }
    }

    public func caughtUp() async -> Bool {
        guard group == nil else { return false }
        let (assigned, next, ends) = state.withLock { state in
            (state.assigned, state.next.merging(state.startAt) { delivered, _ in delivered }, state.ends)
        }
        guard !assigned.isEmpty else { return false }
        for partition in assigned {
            if let end = ends[partition], end >= next[partition] ?? 0 { continue }
            guard let position = next[partition],
                let cached = try? await consumer.watermarks(topic: kafkaTopic, partition: partition, cached: true),
                cached.high >= 0, position >= cached.high
            else { return false }
        }
        return true
    }

    public func close() async {
        let first = state.withLock { state -> Bool in
            defer { state.closed = true }
            return !state.closed
        }
        guard first else { return }
        await consumer.close()
        reportHeld(0)
        log.forget(self)
    }
}
