import CRdKafka
import Logging
import Synchronization

/// Administrative requests (create topics, metadata) on a client of their own, run on a dedicated
/// thread: every method is `async` and never blocks the caller's thread.
public final class KafkaAdmin: @unchecked Sendable {
    private let handle: OpaquePointer
    let callbacks: ClientCallbacks
    let thread: WorkerThread  // internal: a test sees it end when the client is dropped without close()
    private let closed = AtomicFlag()

    /// `configuration` needs at least `bootstrap.servers`.
    public init(configuration: [String: String], logger: Logger) throws(RdKafkaError) {
        callbacks = ClientCallbacks(logger: logger)
        let conf = try makeConfiguration(configuration)
        installCommonCallbacks(conf)
        handle = try makeHandle(RD_KAFKA_PRODUCER, conf, callbacks: callbacks)
        thread = WorkerThread(name: "rdkafka-admin")
    }

    /// One topic to create.
    public struct NewTopic: Sendable {
        public var name: String
        public var partitions: Int
        public var replicationFactor: Int
        public var configs: [String: String]
        public init(name: String, partitions: Int, replicationFactor: Int = 1, configs: [String: String] = [:]) {
            self.name = name
            self.partitions = partitions
            self.replicationFactor = replicationFactor
            self.configs = configs
        }
    }

    /// Creates `topics` with `rd_kafka_CreateTopics`. Topics that already exist are not an error.
    /// Returns the names of the topics this call created.
    @discardableResult
    public func createTopics(_ topics: [NewTopic], timeout: Duration = .seconds(15)) async throws(RdKafkaError) -> [String] {
        try await perform { Self.createTopicsBlocking($0, topics, timeout: timeout) }
    }

    private static func createTopicsBlocking(
        _ handle: OpaquePointer, _ topics: [NewTopic], timeout: Duration
    ) -> Result<[String], RdKafkaError> {
        var errorText = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { for topic in newTopics { rd_kafka_NewTopic_destroy(topic) } }
        for topic in topics {
            guard let newTopic = rd_kafka_NewTopic_new(
                topic.name, Int32(topic.partitions), Int32(topic.replicationFactor), &errorText, errorText.count
            ) else {
                return .failure(.init(code: RdKafkaError.invalidArgument, message: "topic \(topic.name): \(cString(errorText))"))
            }
            newTopics.append(newTopic)
            for (key, value) in topic.configs {
                let err = rd_kafka_NewTopic_set_config(newTopic, key, value)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(RdKafkaError(err)) }
            }
        }
        return adminRequest(handle, RD_KAFKA_ADMIN_OP_CREATETOPICS, "CreateTopics", timeout: timeout) { options, queue in
            newTopics.withUnsafeMutableBufferPointer { buffer in
                rd_kafka_CreateTopics(handle, buffer.baseAddress, buffer.count, options, queue)
            }
        } read: { event in
            createdTopics(event)
        }
    }

    /// The topics a CreateTopics answer says were created; an error for any other than "exists".
    private static func createdTopics(_ event: OpaquePointer) -> Result<[String], RdKafkaError> {
        guard let result = rd_kafka_event_CreateTopics_result(event) else {
            return .failure(.local("CreateTopics: unexpected event \(String(cString: rd_kafka_event_name(event)))"))
        }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return .success([]) }
        var created: [String] = []
        for index in 0..<count {
            let topicResult = results[index]
            let name = String(cString: rd_kafka_topic_result_name(topicResult))
            let err = rd_kafka_topic_result_error(topicResult)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                created.append(name)
            } else if err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                let text = rd_kafka_topic_result_error_string(topicResult).map { String(cString: $0) }
                return .failure(RdKafkaError(err, "create topic \(name): \(text ?? "")"))
            }
        }
        return .success(created)
    }

    /// The configuration of `topic` as the broker describes it (`rd_kafka_DescribeConfigs`): every
    /// entry with a value, by name (`cleanup.policy`, `retention.ms`, ...).
    public func topicConfiguration(_ topic: String, timeout: Duration = .seconds(10)) async throws(RdKafkaError) -> [String: String] {
        try await perform { Self.describeTopicBlocking($0, topic, timeout: timeout) }
    }

    private static func describeTopicBlocking(
        _ handle: OpaquePointer, _ topic: String, timeout: Duration
    ) -> Result<[String: String], RdKafkaError> {
        guard let resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic) else {
            return .failure(.local("rd_kafka_ConfigResource_new failed"))
        }
        defer { rd_kafka_ConfigResource_destroy(resource) }
        var resources: [OpaquePointer?] = [resource]
        return adminRequest(handle, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, "DescribeConfigs", timeout: timeout) { options, queue in
            resources.withUnsafeMutableBufferPointer { buffer in
                rd_kafka_DescribeConfigs(handle, buffer.baseAddress, buffer.count, options, queue)
            }
        } read: { event in
            describedConfiguration(event, topic: topic)
        }
    }

    /// Every entry with a value of the one resource a DescribeConfigs answer holds.
    private static func describedConfiguration(_ event: OpaquePointer, topic: String) -> Result<[String: String], RdKafkaError> {
        guard let result = rd_kafka_event_DescribeConfigs_result(event) else {
            return .failure(.local("DescribeConfigs: unexpected event \(String(cString: rd_kafka_event_name(event)))"))
        }
        var count = 0
        guard let items = rd_kafka_DescribeConfigs_result_resources(result, &count), count > 0, let item = items[0] else {
            return .success([:])
        }
        let err = rd_kafka_ConfigResource_error(item)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let text = rd_kafka_ConfigResource_error_string(item).map { String(cString: $0) }
            return .failure(RdKafkaError(err, "describe topic \(topic): \(text ?? "")"))
        }
        var entries = 0
        var configuration: [String: String] = [:]
        guard let configs = rd_kafka_ConfigResource_configs(item, &entries) else { return .success([:]) }
        for index in 0..<entries {
            guard let entry = configs[index], let name = rd_kafka_ConfigEntry_name(entry), let value = rd_kafka_ConfigEntry_value(entry) else {
                continue
            }
            configuration[String(cString: name)] = String(cString: value)
        }
        return .success(configuration)
    }

    /// Runs one admin request: `send` is given its options and the queue its answer comes to, and
    /// `read` the answer's event when it holds no error (the event and the queue are destroyed after).
    private static func adminRequest<T>(
        _ handle: OpaquePointer, _ operation: rd_kafka_admin_op_t, _ name: String, timeout: Duration,
        send: (OpaquePointer?, OpaquePointer) -> Void, read: (OpaquePointer) -> Result<T, RdKafkaError>
    ) -> Result<T, RdKafkaError> {
        var errorText = [CChar](repeating: 0, count: 512)
        guard let queue = rd_kafka_queue_new(handle) else { return .failure(.local("rd_kafka_queue_new failed")) }
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(handle, operation)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_request_timeout(options, milliseconds(timeout), &errorText, errorText.count)
        if operation == RD_KAFKA_ADMIN_OP_CREATETOPICS {
            _ = rd_kafka_AdminOptions_set_operation_timeout(options, milliseconds(timeout), &errorText, errorText.count)
        }
        send(options, queue)
        guard let event = rd_kafka_queue_poll(queue, milliseconds(timeout) + 2000) else {
            return .failure(.init(code: RdKafkaError.timedOut, message: "\(name) timed out after \(timeout)"))
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        if eventError != RD_KAFKA_RESP_ERR_NO_ERROR {
            return .failure(RdKafkaError(eventError, rd_kafka_event_error_string(event).map { String(cString: $0) }))
        }
        return read(event)
    }

    /// The number of partitions of `topic` from the cluster's metadata (0 if it does not exist).
    public func partitionCount(topic: String, timeout: Duration = .seconds(10)) async throws(RdKafkaError) -> Int {
        try await perform { partitionCountBlocking($0, topic: topic, timeout: timeout) }
    }

    /// Runs `body` with the handle on the client's thread, then serves the handle's queued
    /// callbacks (error_cb: what the connections failed with, ``recentClientError``), which
    /// librdkafka calls only from `rd_kafka_poll`.
    private func perform<T: Sendable>(
        _ body: @escaping @Sendable (OpaquePointer) -> Result<T, RdKafkaError>
    ) async throws(RdKafkaError) -> T {
        nonisolated(unsafe) let handle = self.handle
        let closed = self.closed
        let callbacks = self.callbacks
        let result = await thread.run { () -> Result<T, RdKafkaError> in
            if closed.load(ordering: .acquiring) { return .failure(.init(code: RdKafkaError.destroyed, message: "admin client closed")) }
            // Errors queued while the client was idle are handed over (and logged) first, and
            // forgotten: the one kept is then one that came during this request.
            rd_kafka_poll(handle, 0)
            callbacks.forgetRecentError()
            let result = body(handle)
            rd_kafka_poll(handle, 0)
            return result
        }
        guard let result else { throw RdKafkaError(code: RdKafkaError.destroyed, message: "admin client closed") }
        return try result.get()
    }

    /// The last error librdkafka reported for this client's connections in the last minute, or
    /// nil (``ClientCallbacks/recentError``).
    public var recentClientError: String? { callbacks.recentError }

    /// Destroys the client and ends its thread.
    public func close() async {
        _ = await thread.run(destroyJob)
        await thread.stop()
    }

    /// Dropped without ``close()``: the handle is destroyed on the client's thread, which then ends.
    deinit {
        thread.finish(with: destroyJob)
    }

    /// Destroys the handle, once (`rd_kafka_destroy` blocks: run it on the client's thread).
    private var destroyJob: @Sendable () -> Void {
        nonisolated(unsafe) let handle = self.handle
        let closed = self.closed
        return {
            if !closed.exchange(true, ordering: .acquiringAndReleasing) { destroyHandle(handle) }
        }
    }
}

/// Reads a topic's partition count with `rd_kafka_metadata` (blocking; call on a dedicated thread).
func partitionCountBlocking(_ handle: OpaquePointer, topic: String, timeout: Duration) -> Result<Int, RdKafkaError> {
    // All topics rather than this one: asking for one topic's metadata makes brokers that
    // auto-create topics (Tansu, Kafka's default) create it.
    var metadata: UnsafePointer<rd_kafka_metadata>?
    let err = rd_kafka_metadata(handle, 1, nil, &metadata, milliseconds(timeout))
    guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { return .failure(RdKafkaError(err)) }
    defer { rd_kafka_metadata_destroy(metadata) }
    for index in 0..<Int(metadata.pointee.topic_cnt) {
        let item = metadata.pointee.topics[index]
        if String(cString: item.topic) == topic {
            if item.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART { return .success(0) }
            if item.err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(RdKafkaError(item.err)) }
            return .success(Int(item.partition_cnt))
        }
    }
    return .success(0)
}

func cString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
