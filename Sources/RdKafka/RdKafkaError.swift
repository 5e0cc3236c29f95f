import CRdKafka

/// An error reported by librdkafka: its numeric code (`rd_kafka_resp_err_t`), name and message.
public struct RdKafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The raw `rd_kafka_resp_err_t` value. Negative codes are local to the client (`__QUEUE_FULL`),
    /// positive ones come from the broker (`NOT_ENOUGH_REPLICAS`).
    public var code: Int32
    /// A human-readable explanation.
    public var message: String
    /// Whether retrying the same operation later may succeed.
    public var isRetriable: Bool
    /// Whether the client instance is unusable (for example a fatal idempotent-producer error).
    public var isFatal: Bool

    public init(code: Int32, message: String, isRetriable: Bool? = nil, isFatal: Bool = false) {
        self.code = code
        self.message = message
        self.isRetriable = isRetriable ?? Self.defaultRetriable(code)
        self.isFatal = isFatal
    }

    init(_ err: rd_kafka_resp_err_t, _ message: String? = nil) {
        let text = message ?? String(cString: rd_kafka_err2str(err))
        self.init(code: err.rawValue, message: text)
    }

    /// Takes ownership of (and destroys) an `rd_kafka_error_t`.
    init(consuming error: OpaquePointer) {
        self.init(
            code: rd_kafka_error_code(error).rawValue,
            message: String(cString: rd_kafka_error_string(error)),
            isRetriable: rd_kafka_error_is_retriable(error) != 0,
            isFatal: rd_kafka_error_is_fatal(error) != 0
        )
        rd_kafka_error_destroy(error)
    }

    /// The symbolic name librdkafka gives the code, such as `_QUEUE_FULL` or `NOT_ENOUGH_REPLICAS`.
    public var name: String { String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: code))) }

    public var description: String { "\(name): \(message)" }

    /// An error raised by this wrapper rather than by librdkafka.
    public static func local(_ message: String, code: Int32 = RD_KAFKA_RESP_ERR__FAIL.rawValue) -> RdKafkaError {
        RdKafkaError(code: code, message: message)
    }

    // Codes the wrappers and the log backend look at.
    public static let noError: Int32 = RD_KAFKA_RESP_ERR_NO_ERROR.rawValue
    public static let queueFull: Int32 = RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue
    public static let messageTimedOut: Int32 = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT.rawValue
    public static let timedOut: Int32 = RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue
    public static let transport: Int32 = RD_KAFKA_RESP_ERR__TRANSPORT.rawValue
    public static let allBrokersDown: Int32 = RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue
    public static let fatal: Int32 = RD_KAFKA_RESP_ERR__FATAL.rawValue
    public static let destroyed: Int32 = RD_KAFKA_RESP_ERR__DESTROY.rawValue
    public static let purgedQueue: Int32 = RD_KAFKA_RESP_ERR__PURGE_QUEUE.rawValue
    public static let purgedInFlight: Int32 = RD_KAFKA_RESP_ERR__PURGE_INFLIGHT.rawValue
    public static let messageTooLarge: Int32 = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue
    public static let recordListTooLarge: Int32 = RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE.rawValue
    public static let unknownTopic: Int32 = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC.rawValue
    public static let unknownPartition: Int32 = RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION.rawValue
    public static let unknownTopicOrPartition: Int32 = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue
    public static let invalidArgument: Int32 = RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue
    public static let topicAlreadyExists: Int32 = RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS.rawValue
    public static let notEnoughReplicas: Int32 = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS.rawValue
    public static let notEnoughReplicasAfterAppend: Int32 = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND.rawValue
    public static let leaderNotAvailable: Int32 = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE.rawValue
    public static let notLeader: Int32 = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION.rawValue
    public static let requestTimedOut: Int32 = RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT.rawValue
    public static let networkException: Int32 = RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION.rawValue
    public static let rebalanceInProgress: Int32 = RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS.rawValue
    public static let illegalGeneration: Int32 = RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION.rawValue
    public static let unknownMemberId: Int32 = RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID.rawValue
    public static let fencedInstanceId: Int32 = RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID.rawValue
    public static let assignmentLost: Int32 = RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST.rawValue

    /// Whether the group no longer counts this consumer as the member it was (expelled after its
    /// session timed out, or a newer generation): what it held belongs to others now.
    public var isMembershipLost: Bool {
        [Self.unknownMemberId, Self.illegalGeneration, Self.fencedInstanceId, Self.assignmentLost].contains(code)
    }
    public static let state: Int32 = RD_KAFKA_RESP_ERR__STATE.rawValue
    public static let noOffset: Int32 = RD_KAFKA_RESP_ERR__NO_OFFSET.rawValue
    public static let producerFenced: Int32 = RD_KAFKA_RESP_ERR_PRODUCER_FENCED.rawValue
    public static let fenced: Int32 = RD_KAFKA_RESP_ERR__FENCED.rawValue
    /// The idempotent producer's state lost or out of step at the broker (a broker that lost its
    /// data, an in-memory one restarted): librdkafka fails the batch and the producer for good.
    public static let unknownProducerId: Int32 = RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID.rawValue
    public static let outOfOrderSequence: Int32 = RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER.rawValue
    public static let invalidProducerEpoch: Int32 = RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH.rawValue

    static func defaultRetriable(_ code: Int32) -> Bool {
        switch code {
        case queueFull, messageTimedOut, timedOut, transport, allBrokersDown, notEnoughReplicas,
            notEnoughReplicasAfterAppend, leaderNotAvailable, notLeader, requestTimedOut, networkException,
            rebalanceInProgress:
            return true
        default:
            return false
        }
    }
}

/// The librdkafka library loaded at run time.
public enum RdKafka {
    /// The version string of the loaded librdkafka, such as `2.16.0`.
    ///
    /// Debian's librdkafka 2.0.2 cannot talk to Tansu (`ApiVersionRequest failed: Local: Read
    /// underflow`); run with a newer, ABI-compatible `librdkafka.so.1` on `LD_LIBRARY_PATH`
    /// (docs/kafka.md).
    public static var versionString: String { String(cString: rd_kafka_version_str()) }
    /// The version as a number: `0xMMmmrrxx` (major, minor, revision, pre-release).
    public static var version: Int { Int(rd_kafka_version()) }
}

/// Offsets with a meaning to librdkafka rather than a position in a partition.
public enum KafkaOffset {
    /// The first offset still in the partition.
    public static let beginning: Int64 = -2
    /// The offset after the last record.
    public static let end: Int64 = -1
    /// The committed offset (where the group left off).
    public static let stored: Int64 = -1000
    /// No offset.
    public static let invalid: Int64 = -1001
}
