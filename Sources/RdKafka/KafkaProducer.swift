import CRdKafka
import DequeModule
import Foundation
import Logging
import Synchronization

/// One message handed to ``KafkaProducer/produce(topic:count:message:completion:)``. The bytes are
/// copied by librdkafka before `produce` returns, so they only need to live until then.
public struct KafkaOutgoingMessage {
    /// The partitioning key; `nil` or empty for none (then librdkafka spreads messages).
    public var key: UnsafeRawBufferPointer?
    public var value: UnsafeRawBufferPointer

    public init(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer) {
        self.key = key
        self.value = value
    }
}

/// What a fully delivered batch reports.
public struct KafkaDeliveryReport: Sendable, Hashable {
    /// The number of messages the brokers acknowledged.
    public var count: Int
    /// The partition every message went to, or `nil` if they went to several.
    public var partition: Int32?
    /// The lowest offset assigned, when every message went to one partition and the broker told it.
    public var firstOffset: Int64?
}

/// A librdkafka producer.
///
/// - `produce` is non-blocking. Messages that find librdkafka's local queue full (`queue.buffering.
///   max.messages` / `.kbytes`) are copied into a backlog that the poll thread enqueues, in order,
///   as room comes; later batches wait behind them. One still waiting after `message.timeout.ms`
///   fails with ``RdKafkaError/queueFull``. (Until 2026-12-07 a full queue failed the rest of the
///   batch at once, while its first part, already enqueued, was delivered: a client told its
///   request failed had part of it written, again at each retry, an outside review.)
/// - Delivery reports are served by a dedicated thread that loops on `rd_kafka_poll`; the batch's
///   completion runs there once every message of the batch has a delivery report. It must not block.
/// - Call ``close(flushTimeout:)`` before dropping the producer: it flushes, fails what is left with
///   a purge error, and destroys the handle.
public final class KafkaProducer: @unchecked Sendable {
    private let handle: OpaquePointer
    let callbacks: ProducerCallbacks
    private(set) var pollThread: WorkerThread!  // internal: a test sees it end when the producer is dropped without close()
    private let topicHandles = Mutex<[String: SendablePointer]>([:])
    /// Produce calls in progress, and whether the handle is being closed.
    private let gate = Mutex<(active: Int, closing: Bool)>((0, false))
    private let closed = AtomicFlag()
    /// Messages waiting for room in librdkafka's queue (``ProduceBacklog``).
    private let backlog: ProduceBacklog
    public let logger: Logger

    /// Creates a producer. `configuration` holds librdkafka properties (`bootstrap.servers`,
    /// `acks`, `enable.idempotence`, `linger.ms`, `compression.type`, `message.timeout.ms`, ...).
    public init(configuration: [String: String], logger: Logger) throws(RdKafkaError) {
        self.logger = logger
        let timeout = configuration["message.timeout.ms"].flatMap(Int.init) ?? 300_000
        let queueKiB = configuration["queue.buffering.max.kbytes"].flatMap(Int.init) ?? 1_048_576
        backlog = ProduceBacklog(waitLimit: .milliseconds(timeout > 0 ? timeout : 300_000), queueBytes: max(1, queueKiB) * 1024)
        let callbacks = ProducerCallbacks(logger: logger)
        self.callbacks = callbacks
        let conf = try makeConfiguration(configuration)
        installCommonCallbacks(conf)
        installStatisticsCallback(conf)
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, _ in
            guard let message, let opaque = message.pointee._private else { return }
            let tracker = Unmanaged<DeliveryTracker>.fromOpaque(opaque)
            let error: RdKafkaError? =
                message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : RdKafkaError(message.pointee.err)
            if tracker.takeUnretainedValue().settle(
                count: 1, error: error, partition: message.pointee.partition, offset: message.pointee.offset
            ) {
                tracker.release()
            }
        }
        handle = try makeHandle(RD_KAFKA_PRODUCER, conf, callbacks: callbacks)
        callbacks.handle = handle
        nonisolated(unsafe) let handle = self.handle
        let closed = self.closed
        let callbacksRef = callbacks
        let backlog = self.backlog
        pollThread = WorkerThread(name: "rdkafka-producer-poll") {
            if closed.load(ordering: .acquiring) {
                // Nothing to poll any more; wait for the thread to be stopped.
                usleep(20_000)
                return
            }
            // Delivery reports make room in the queue: a backlog is tried again soon after.
            rd_kafka_poll(handle, backlog.isEmpty ? 100 : 5)
            backlog.enqueue()
            backlog.expire()
            callbacksRef.checkRecovery(handle)
        }
    }

    /// Why appends would fail now (all brokers down, a fatal error), or `nil`.
    public var unavailableReason: String? { callbacks.unavailableReason }

    /// Whether librdkafka raised a fatal error: the producer cannot produce any more and must be
    /// replaced (for example an idempotent producer whose id the broker forgot: `UNKNOWN_PRODUCER_ID`
    /// after a broker lost its state).
    public var hasFatalError: Bool { callbacks.hasFatalError }

    /// Enqueues `count` messages to `topic` in one `rd_kafka_produce_batch` call, keyed (and
    /// partitioned by librdkafka's partitioner) by each message's key.
    ///
    /// `message(i)` is called for `i` in `0..<count`, in order, before this method returns.
    /// `completion` is called exactly once: with success when the brokers acknowledged every
    /// message, or with the first error as soon as every message has either failed or been
    /// acknowledged. It may run on the calling thread (enqueue failures) or the poll thread.
    public func produce(
        topic: String,
        count: Int,
        message: (Int) -> KafkaOutgoingMessage,
        completion: @escaping @Sendable (Result<KafkaDeliveryReport, RdKafkaError>) -> Void
    ) {
        guard count > 0 else {
            completion(.success(KafkaDeliveryReport(count: 0, partition: nil, firstOffset: nil)))
            return
        }
        let admitted = gate.withLock { state -> Bool in
            if state.closing { return false }
            state.active += 1
            return true
        }
        guard admitted else {
            completion(.failure(RdKafkaError(code: RdKafkaError.destroyed, message: "the producer is closed")))
            return
        }
        defer { gate.withLock { $0.active -= 1 } }

        let topicHandle: OpaquePointer
        do {
            topicHandle = try self.topicHandle(topic)
        } catch {
            completion(.failure(error))
            return
        }
        let tracker = DeliveryTracker(count: count, completion: completion)
        let opaque = Unmanaged.passRetained(tracker).toOpaque()
        var messages = [rd_kafka_message_t](repeating: rd_kafka_message_t(), count: count)
        for index in 0..<count {
            let item = message(index)
            messages[index].payload = UnsafeMutableRawPointer(mutating: item.value.baseAddress)
            messages[index].len = item.value.count
            if let key = item.key, key.count > 0 {
                messages[index].key = UnsafeMutableRawPointer(mutating: key.baseAddress)
                messages[index].key_len = key.count
            }
            messages[index]._private = opaque
        }
        backlog.produce(&messages, topic: SendablePointer(topicHandle), tracker: opaque)
    }

    /// Waits (on the poll thread) until every queued message is delivered or `timeout` passes;
    /// returns whether the queue, the backlog's included, is empty.
    public func flush(timeout: Duration) async -> Bool {
        nonisolated(unsafe) let handle = self.handle
        let closed = self.closed
        let backlog = self.backlog
        let result = await pollThread.run { () -> Bool in
            if closed.load(ordering: .acquiring) { return true }
            // What waits for room goes in as room comes (rd_kafka_flush alone did not see it, and
            // held the thread that enqueues it, a review).
            let deadline = ContinuousClock.now + timeout
            backlog.drain(handle, until: deadline)
            let left = max(Duration.zero, deadline - ContinuousClock.now)
            return backlog.isEmpty && rd_kafka_flush(handle, milliseconds(left)) == RD_KAFKA_RESP_ERR_NO_ERROR
        }
        return result ?? true
    }

    /// Flushes for up to `flushTimeout`, fails what is left (completions get a purge error),
    /// destroys the handle and ends the poll thread. Idempotent.
    public func close(flushTimeout: Duration = .seconds(10)) async {
        let first = gate.withLock { state -> Bool in
            defer { state.closing = true }
            return !state.closing
        }
        guard first else {
            // Another close() is under way: wait until it has destroyed the handle (stopping the
            // thread before its job was queued left the handle alive and completions unrun).
            while !closed.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(5)) }
            await pollThread.stop()
            return
        }
        while gate.withLock({ $0.active }) > 0 { try? await Task.sleep(for: .milliseconds(1)) }
        _ = await pollThread.run(shutDownJob(flushTimeout: flushTimeout))
        await pollThread.stop()
    }

    /// Dropped without ``close()``: what is still queued is failed (its completions get a purge
    /// error; nothing waits for the brokers), the handle is destroyed on the poll thread, and the
    /// thread ends.
    deinit {
        guard gate.withLock({ !$0.closing }) else { return }
        pollThread.finish(with: shutDownJob(flushTimeout: .zero))
    }

    /// Flushes for up to `flushTimeout`, fails what is left, destroys the topic handles and the
    /// handle (blocking calls: run it on the poll thread).
    private func shutDownJob(flushTimeout: Duration) -> @Sendable () -> Void {
        nonisolated(unsafe) let handle = self.handle
        let closed = self.closed
        let topics = topicHandles.withLock { handles -> [SendablePointer] in
            defer { handles.removeAll() }
            return Array(handles.values)
        }
        let logger = self.logger
        let pending = TopicHandles(topics)
        let backlog = self.backlog
        return {
            // What waits for room in the queue goes in as room comes, within the flush's time.
            let deadline = ContinuousClock.now + flushTimeout
            backlog.drain(handle, until: deadline)
            backlog.fail(RdKafkaError(code: RdKafkaError.purgedQueue, message: "the producer closed before its queue had room for the message"))
            let left = max(Duration.zero, deadline - ContinuousClock.now)
            let result = rd_kafka_flush(handle, milliseconds(left))
            if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                logger.warning("Kafka producer closing with \(rd_kafka_outq_len(handle)) undelivered messages; failing them")
            }
            rd_kafka_purge(handle, 0x1 | 0x2)  // RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT
            // Serve the purge delivery reports so that every completion runs.
            var rounds = 0
            while rd_kafka_outq_len(handle) > 0 && rounds < 50 {
                rd_kafka_poll(handle, 100)
                rounds += 1
            }
            rd_kafka_poll(handle, 0)
            for topic in pending.handles { rd_kafka_topic_destroy(topic.pointer) }
            closed.store(true, ordering: .releasing)
            destroyHandle(handle)
            backlog.releaseWatched()
        }
    }

    private func topicHandle(_ topic: String) throws(RdKafkaError) -> OpaquePointer {
        nonisolated(unsafe) let handle = self.handle
        let result = topicHandles.withLock { handles -> SendablePointer? in
            if let existing = handles[topic] { return existing }
            guard let created = rd_kafka_topic_new(handle, topic, nil) else { return nil }
            handles[topic] = SendablePointer(created)
            return SendablePointer(created)
        }
        guard let result else {
            throw RdKafkaError(rd_kafka_last_error(), "cannot create a handle for topic \(topic)")
        }
        return result.pointer
    }
}

private struct TopicHandles: Sendable {
    var handles: [SendablePointer]
    init(_ handles: [SendablePointer]) { self.handles = handles }
}

/// The messages of ``KafkaProducer`` that found librdkafka's local queue full, copied, in the
/// order they were produced: the poll thread enqueues them as room comes (``enqueue()``), and
/// while any waits, later batches wait behind it, so that a key's messages keep their order.
///
/// A batch that waited is answered within `message.timeout.ms` of its produce, as one that never
/// waited is: once librdkafka takes a message it gives it a whole `message.timeout.ms` of its own,
/// so a batch that waited and then went in was answered after up to twice that, past a shutdown's
/// grace (an outside review). Such a batch is watched (``expire()``), and failed with
/// `_MSG_TIMED_OUT` at its deadline; delivery reports that come later only count it down (its
/// records may still be written: the at-least-once of any timeout).
final class ProduceBacklog: @unchecked Sendable {
    /// A batch's messages still to enqueue: their bytes in one buffer, each a key and a value in it.
    private struct Waiting: @unchecked Sendable {
        var topic: SendablePointer
        var tracker: UnsafeMutableRawPointer
        var bytes: [UInt8]
        var spans: [(keyStart: Int, keyCount: Int, valueStart: Int, valueCount: Int)]
        var since: ContinuousClock.Instant
        /// Whether the batch is among those ``expire()`` watches.
        var watched = false
    }

    /// A batch that waited, part of it in librdkafka's queue: its tracker (retained) and deadline.
    private struct Watched: @unchecked Sendable {
        var tracker: UnsafeMutableRawPointer
        var deadline: ContinuousClock.Instant
    }

    private let waiting = Mutex<Deque<Waiting>>([])
    private let watched = Mutex<[Watched]>([])
    private let count = Atomic<Int>(0)
    private let waitLimit: Duration
    /// librdkafka's bound on the queue's bytes (`queue.buffering.max.kbytes`): a message larger than
    /// it never finds room, and held every batch behind it for `message.timeout.ms` (a review).
    private let queueBytes: Int

    init(waitLimit: Duration, queueBytes: Int) {
        self.waitLimit = waitLimit
        self.queueBytes = queueBytes
    }

    var isEmpty: Bool { count.load(ordering: .acquiring) == 0 }

    /// Enqueues `messages` (of one batch, pointing to bytes alive during the call) at once, or
    /// behind the backlog: what the queue has no room for now is copied into it. Other errors fail
    /// their messages (the batch's first error).
    func produce(_ messages: inout [rd_kafka_message_t], topic: SendablePointer, tracker: UnsafeMutableRawPointer) {
        let failed = waiting.withLock { waiting -> Failure? in
            if !waiting.isEmpty {
                waiting.append(Self.copy(messages, topic: topic, tracker: tracker))
                count.add(1, ordering: .releasing)
                return nil
            }
            let (full, failed) = produceBatch(&messages, topic: topic, tracker: tracker)
            if !full.isEmpty {
                var rest = Self.copy(full.map { messages[$0] }, topic: topic, tracker: tracker)
                // Its first part went in: watched from now.
                watch(&rest, ifSome: full.count < messages.count - (failed?.count ?? 0))
                waiting.append(rest)
                count.add(1, ordering: .releasing)
            }
            return failed
        }
        // Completions run outside the lock (one may produce again).
        failed?.settle()
    }

    /// Messages of a batch that failed, to settle once the lock is released.
    private struct Failure: @unchecked Sendable {
        var tracker: UnsafeMutableRawPointer
        var count: Int
        var error: RdKafkaError

        func settle() {
            let unmanaged = Unmanaged<DeliveryTracker>.fromOpaque(tracker)
            if unmanaged.takeUnretainedValue().settle(count: count, error: error, partition: -1, offset: -1) {
                unmanaged.release()
            }
        }
    }

    /// Enqueues what waits, in order, until the queue is full again; fails what has waited past
    /// the limit, and the rest of a batch already answered (failed or timed out: written, it would
    /// be written again by the client's retry). Runs on the poll thread.
    func enqueue() {
        guard !isEmpty else { return }
        var failures: [Failure] = []
        defer { for failure in failures { failure.settle() } }
        waiting.withLock { waiting in
            while var first = waiting.first {
                let tracker = Unmanaged<DeliveryTracker>.fromOpaque(first.tracker).takeUnretainedValue()
                if ContinuousClock.now - first.since >= waitLimit || tracker.isAnswered {
                    failures.append(Failure(tracker: first.tracker, count: first.spans.count, error: Self.timedOut(waitLimit)))
                    waiting.removeFirst()
                    count.subtract(1, ordering: .releasing)
                    continue
                }
                let (full, failed): ([Int], Failure?) = first.bytes.withUnsafeBytes { bytes in
                    var messages = first.spans.map { span in
                        var message = rd_kafka_message_t()
                        message.payload = UnsafeMutableRawPointer(mutating: bytes.baseAddress! + span.valueStart)
                        message.len = span.valueCount
                        if span.keyCount > 0 {
                            message.key = UnsafeMutableRawPointer(mutating: bytes.baseAddress! + span.keyStart)
                            message.key_len = span.keyCount
                        }
                        message._private = first.tracker
                        return message
                    }
                    return produceBatch(&messages, topic: first.topic, tracker: first.tracker)
                }
                if let failed { failures.append(failed) }
                watch(&first, ifSome: full.count < first.spans.count - (failed?.count ?? 0))
                if full.isEmpty {
                    waiting.removeFirst()
                    count.subtract(1, ordering: .releasing)
                    continue
                }
                first.spans = full.map { first.spans[$0] }
                waiting[0] = first
                return
            }
        }
    }

    /// Answers the watched batches whose deadline has passed (``DeliveryTracker/expire(_:)``), and
    /// stops watching those answered. Runs on the poll thread.
    func expire() {
        let now = ContinuousClock.now
        let due = watched.withLock { watched -> [Watched] in
            guard !watched.isEmpty else { return [] }
            var due: [Watched] = []
            watched.removeAll { item in
                let tracker = Unmanaged<DeliveryTracker>.fromOpaque(item.tracker).takeUnretainedValue()
                guard tracker.isAnswered || now >= item.deadline else { return false }
                due.append(item)
                return true
            }
            return due
        }
        for item in due {
            let unmanaged = Unmanaged<DeliveryTracker>.fromOpaque(item.tracker)
            unmanaged.takeUnretainedValue().expire(Self.timedOut(waitLimit))
            unmanaged.release()
        }
    }

    /// Fails every message still waiting, and stops watching (the producer is closing).
    func fail(_ error: RdKafkaError) {
        let all = waiting.withLock { waiting -> Deque<Waiting> in
            defer { waiting.removeAll() }
            return waiting
        }
        count.store(0, ordering: .releasing)
        for batch in all { Failure(tracker: batch.tracker, count: batch.spans.count, error: error).settle() }
    }

    /// Stops watching every batch (after the handle's delivery reports are all served).
    func releaseWatched() {
        let all = watched.withLock { watched -> [Watched] in
            defer { watched.removeAll() }
            return watched
        }
        for item in all { Unmanaged<DeliveryTracker>.fromOpaque(item.tracker).release() }
    }

    /// Enqueues what waits as room comes, and answers what is due, until the backlog is empty or
    /// `deadline` passes (a flush, a close). Runs on the poll thread.
    func drain(_ handle: OpaquePointer, until deadline: ContinuousClock.Instant) {
        while !isEmpty && ContinuousClock.now < deadline {
            rd_kafka_poll(handle, 5)
            enqueue()
            expire()
        }
    }

    /// Watches `batch` from now on, once, when `sent`: some of its messages went into librdkafka.
    private func watch(_ batch: inout Waiting, ifSome sent: Bool) {
        guard sent, !batch.watched else { return }
        _ = Unmanaged<DeliveryTracker>.fromOpaque(batch.tracker).retain()
        let deadline = batch.since + waitLimit
        watched.withLock { $0.append(Watched(tracker: batch.tracker, deadline: deadline)) }
        batch.watched = true
    }

    private static func timedOut(_ limit: Duration) -> RdKafkaError {
        RdKafkaError(
            code: RdKafkaError.messageTimedOut,
            message: "Local: Message timed out: not delivered within the delivery timeout (delivery_timeout_ms, \(limit)); part of it waited for room in the producer's queue"
        )
    }

    /// `rd_kafka_produce_batch` (copying the bytes): the indexes of the messages that found the
    /// queue full, and those that failed for another reason (the first error), to settle. A message
    /// larger than the queue can ever hold fails at once.
    private func produceBatch(
        _ messages: inout [rd_kafka_message_t], topic: SendablePointer, tracker: UnsafeMutableRawPointer
    ) -> (full: [Int], failed: Failure?) {
        let total = messages.count
        let enqueued = messages.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_produce_batch(topic.pointer, -1 /* RD_KAFKA_PARTITION_UA */, 0x2 /* RD_KAFKA_MSG_F_COPY */,
                buffer.baseAddress, Int32(total))
        }
        guard Int(enqueued) < total else { return ([], nil) }
        var full: [Int] = []
        var failed = 0
        var firstError: RdKafkaError?
        for (index, item) in messages.enumerated() where item.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if item.err == RD_KAFKA_RESP_ERR__QUEUE_FULL && item.len + item.key_len <= queueBytes {
                full.append(index)
            } else {
                failed += 1
                if firstError == nil {
                    firstError = item.err == RD_KAFKA_RESP_ERR__QUEUE_FULL
                        ? RdKafkaError(
                            code: RdKafkaError.messageTooLarge,
                            message: "a record of \(item.len + item.key_len) bytes is larger than the producer's queue can hold (queue.buffering.max.kbytes, \(queueBytes / 1024) KiB)")
                        : RdKafkaError(item.err)
                }
            }
        }
        // Messages that were not enqueued get no delivery report: they are settled by the caller.
        let failure = failed > 0 ? Failure(tracker: tracker, count: failed, error: firstError ?? .local("produce_batch failed")) : nil
        return (full, failure)
    }

    private static func copy(_ messages: [rd_kafka_message_t], topic: SendablePointer, tracker: UnsafeMutableRawPointer) -> Waiting {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(messages.reduce(0) { $0 + $1.len + $1.key_len })
        var spans: [(keyStart: Int, keyCount: Int, valueStart: Int, valueCount: Int)] = []
        spans.reserveCapacity(messages.count)
        for message in messages {
            let keyStart = bytes.count
            if let key = message.key, message.key_len > 0 {
                bytes.append(contentsOf: UnsafeRawBufferPointer(start: key, count: message.key_len))
            }
            let valueStart = bytes.count
            if let payload = message.payload, message.len > 0 {
                bytes.append(contentsOf: UnsafeRawBufferPointer(start: payload, count: message.len))
            }
            spans.append((keyStart, message.key_len, valueStart, message.len))
        }
        return Waiting(topic: topic, tracker: tracker, bytes: bytes, spans: spans, since: .now)
    }
}

/// Counts a batch's delivery reports down and calls its completion once: when the last comes, or
/// earlier at a deadline (``expire(_:)``).
final class DeliveryTracker: @unchecked Sendable {
    private struct State {
        var remaining: Int
        var delivered = 0
        var error: RdKafkaError?
        var partition: Int32 = -2  // -2: none yet; -1: several
        var firstOffset: Int64 = Int64.max
        var answered = false
    }
    private let state: Mutex<State>
    private let completion: @Sendable (Result<KafkaDeliveryReport, RdKafkaError>) -> Void

    init(count: Int, completion: @escaping @Sendable (Result<KafkaDeliveryReport, RdKafkaError>) -> Void) {
        state = Mutex(State(remaining: count))
        self.completion = completion
    }

    /// Whether the completion has run, or a message of the batch has failed (it will fail).
    var isAnswered: Bool { state.withLock { $0.answered || $0.error != nil } }

    /// Records `count` outcomes; returns true when they were the last (the caller then releases
    /// the tracker), after calling the completion unless ``expire(_:)`` did.
    func settle(count: Int, error: RdKafkaError?, partition: Int32, offset: Int64) -> Bool {
        let (last, finished) = state.withLock { state -> (Bool, Result<KafkaDeliveryReport, RdKafkaError>?) in
            state.remaining -= count
            if let error {
                if state.error == nil { state.error = error }
            } else {
                state.delivered += count
                if state.partition == -2 {
                    state.partition = partition
                } else if state.partition != partition {
                    state.partition = -1
                }
                if offset >= 0 { state.firstOffset = min(state.firstOffset, offset) }
            }
            guard state.remaining <= 0 else { return (false, nil) }
            guard !state.answered else { return (true, nil) }
            state.answered = true
            if let error = state.error { return (true, .failure(error)) }
            let single = state.partition >= 0
            return (true, .success(
                KafkaDeliveryReport(
                    count: state.delivered,
                    partition: single ? state.partition : nil,
                    firstOffset: single && state.firstOffset != Int64.max ? state.firstOffset : nil
                )
            ))
        }
        if let finished { completion(finished) }
        return last
    }

    /// Calls the completion with `error` now, unless it has run; later outcomes only count down.
    func expire(_ error: RdKafkaError) {
        let fire = state.withLock { state -> Bool in
            guard !state.answered && state.remaining > 0 else { return false }
            state.answered = true
            return true
        }
        if fire { completion(.failure(error)) }
    }
}

/// The producer's callbacks: a fatal error, and broker reachability, for ``KafkaProducer/unavailableReason``.
final class ProducerCallbacks: ClientCallbacks, @unchecked Sendable {
    private let fatal = Mutex<String?>(nil)
    nonisolated(unsafe) var handle: OpaquePointer?

    var unavailableReason: String? { fatal.withLock { $0 } ?? brokersDown }
    var hasFatalError: Bool { fatal.withLock { $0 != nil } }

    override func clientError(_ error: RdKafkaError) {
        super.clientError(error)
        if error.isFatal {
            fatal.withLock { $0 = "fatal Kafka producer error: \(error)" }
        }
    }
}
