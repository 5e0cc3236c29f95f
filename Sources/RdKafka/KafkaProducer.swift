import CRdKafka
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
/// - `produce` is non-blocking (it never waits for queue space: a full local queue fails the batch
///   with ``RdKafkaError/queueFull``).
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
    public let logger: Logger

    /// Creates a producer. `configuration` holds librdkafka properties (`bootstrap.servers`,
    /// `acks`, `enable.idempotence`, `linger.ms`, `compression.type`, `message.timeout.ms`, ...).
    public init(configuration: [String: String], logger: Logger) throws(RdKafkaError) {
        self.logger = logger
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
        pollThread = WorkerThread(name: "rdkafka-producer-poll") {
            if closed.load(ordering: .acquiring) {
                // Nothing to poll any more; wait for the thread to be stopped.
                usleep(20_000)
                return
            }
            rd_kafka_poll(handle, 100)
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
        let enqueued = messages.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_produce_batch(topicHandle, -1 /* RD_KAFKA_PARTITION_UA */, 0x2 /* RD_KAFKA_MSG_F_COPY */,
                buffer.baseAddress, Int32(count))
        }
        if Int(enqueued) < count {
            var failed = 0
            var firstError: RdKafkaError?
            for item in messages where item.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                failed += 1
                if firstError == nil { firstError = RdKafkaError(item.err) }
            }
            // Messages that were not enqueued get no delivery report: settle them here.
            if failed > 0 && tracker.settle(
                count: failed, error: firstError ?? .local("produce_batch failed"), partition: -1, offset: -1
            ) {
                Unmanaged<DeliveryTracker>.fromOpaque(opaque).release()
            }
        }
    }

    /// Waits (on the poll thread) until every queued message is delivered or `timeout` passes;
    /// returns whether the queue is empty.
    public func flush(timeout: Duration) async -> Bool {
        nonisolated(unsafe) let handle = self.handle
        let closed = self.closed
        let result = await pollThread.run { () -> Bool in
            if closed.load(ordering: .acquiring) { return true }
            return rd_kafka_flush(handle, milliseconds(timeout)) == RD_KAFKA_RESP_ERR_NO_ERROR
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
        return {
            let result = rd_kafka_flush(handle, milliseconds(flushTimeout))
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

/// Counts a batch's delivery reports down and calls its completion once.
final class DeliveryTracker: @unchecked Sendable {
    private struct State {
        var remaining: Int
        var delivered = 0
        var error: RdKafkaError?
        var partition: Int32 = -2  // -2: none yet; -1: several
        var firstOffset: Int64 = Int64.max
    }
    private let state: Mutex<State>
    private let completion: @Sendable (Result<KafkaDeliveryReport, RdKafkaError>) -> Void

    init(count: Int, completion: @escaping @Sendable (Result<KafkaDeliveryReport, RdKafkaError>) -> Void) {
        state = Mutex(State(remaining: count))
        self.completion = completion
    }

    /// Records `count` outcomes; returns true (after calling the completion) when it was the last.
    func settle(count: Int, error: RdKafkaError?, partition: Int32, offset: Int64) -> Bool {
        let finished = state.withLock { state -> Result<KafkaDeliveryReport, RdKafkaError>? in
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
            guard state.remaining <= 0 else { return nil }
            if let error = state.error { return .failure(error) }
            let single = state.partition >= 0
            return .success(
                KafkaDeliveryReport(
                    count: state.delivered,
                    partition: single ? state.partition : nil,
                    firstOffset: single && state.firstOffset != Int64.max ? state.firstOffset : nil
                )
            )
        }
        guard let finished else { return false }
        completion(finished)
        return true
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
