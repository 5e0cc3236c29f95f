/// The log interface: what the ingest edge writes to and what the lake writer and the metrics
/// consumer read from. Two backends implement it: the embedded segment log (``EmbeddedLog``, one
/// node, the default) and Kafka (module `PlayheadKafka`).
///
/// Records are opaque bytes here. Offsets count records, per partition, from 0; a committed offset
/// is the offset of the next record to read.

/// A named stream of records: one per kind of data Playhead keeps.
public struct LogTopic: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public init(_ name: String) { self.name = name }

    /// Accepted events, in Playhead's binary event encoding.
    public static let events = LogTopic("events")
    /// Rejected input, byte for byte, with the reason and `received_at` (the dead-letter stream).
    public static let rejected = LogTopic("rejected")

    public var description: String { name }
}

/// What a completed append reports.
public struct LogAppendResult: Sendable, Hashable {
    /// The partition the records went to; `nil` when they were spread over several (Kafka, by key).
    public var partition: Int32?
    /// The offset of the first record, when the backend knows it (the embedded log does).
    public var firstOffset: Int64?
    /// The number of records made durable.
    public var count: Int

    public init(partition: Int32?, firstOffset: Int64?, count: Int) {
        self.partition = partition
        self.firstOffset = firstOffset
        self.count = count
    }
}

/// Appends batches of records to one topic.
public protocol LogProducer: Sendable {
    /// Appends `batch` and calls `completion` once every record in it is durable: fsynced on the
    /// embedded log (group commit), acknowledged by every in-sync replica on Kafka (acks=all).
    ///
    /// `completion` may run on any thread; it must not block. A failure means that none of the
    /// records may be acknowledged to a client (some may still have been stored: consumers
    /// deduplicate by `event_id`).
    func append(_ batch: LogRecordBatch, completion: @escaping @Sendable (Result<LogAppendResult, LogError>) -> Void)

    /// The same, with `completion` run by `executor` (the caller's event loop). The embedded log
    /// hands all the completions of one group commit bound for the same executor over in one
    /// `execute`, instead of one hop per append; other backends call `completion` as
    /// ``append(_:completion:)`` does.
    func append(
        _ batch: LogRecordBatch, executor: some LogCompletionExecutor,
        completion: @escaping @Sendable (Result<LogAppendResult, LogError>) -> Void
    )

    /// `nil` when the producer can take appends; otherwise why not (for `GET /readyz`).
    var unavailableReason: String? { get }

    /// Whether the records' keys are used (Kafka partitions by them). When false, producers may
    /// leave keys out of their batches and save building them.
    var usesKeys: Bool { get }
}

/// Where a caller wants its append completions run: an event loop. Completions whose executors
/// have the same `key` may be handed over together, in append order.
public protocol LogCompletionExecutor: Sendable {
    /// The same for every executor that runs work on the same thread (the event loop's identity).
    var key: ObjectIdentifier { get }
    func execute(_ work: @escaping @Sendable () -> Void)
}

extension LogProducer {
    public var usesKeys: Bool { true }

    public func append(
        _ batch: LogRecordBatch, executor: some LogCompletionExecutor,
        completion: @escaping @Sendable (Result<LogAppendResult, LogError>) -> Void
    ) {
        append(batch, completion: completion)
    }

    /// Appends `batch` and returns once every record is durable.
    public func append(_ batch: LogRecordBatch) async throws(LogError) -> LogAppendResult {
        let result: Result<LogAppendResult, LogError> = await withCheckedContinuation { continuation in
            append(batch) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }
}

/// Consecutive records of one partition, as a consumer receives them.
public struct ConsumedBatch: Sendable {
    public var partition: Int32
    /// The offset of the first record.
    public var firstOffset: Int64
    /// The number of records.
    public var count: Int
    /// The framed values (`[UInt32 LE length][bytes]` repeated ``count`` times).
    public var values: [UInt8]

    public init(partition: Int32, firstOffset: Int64, count: Int, values: [UInt8]) {
        self.partition = partition
        self.firstOffset = firstOffset
        self.count = count
        self.values = values
    }

    /// The offset after the last record: what to commit once the batch is processed.
    public var nextOffset: Int64 { firstOffset + Int64(count) }

    /// Calls `body` with each record's offset and value.
    public func forEachRecord(_ body: (_ offset: Int64, _ value: UnsafeRawBufferPointer) throws -> Void) throws {
        var offset = firstOffset
        try values.withUnsafeBytes { bytes in
            try LogFraming.forEachValue(in: bytes) { value in
                try body(offset, value)
                offset += 1
            }
        }
    }
}

/// What one poll of a consumer returns.
public struct LogPoll: Sendable {
    /// Records, in offset order within each partition.
    public var batches: [ConsumedBatch]
    /// Partitions newly assigned to this consumer, with the committed offset each starts from.
    /// The consumer reads from there unless it is told to ``LogConsumer/seek(partition:to:)``.
    public var assigned: [Int32: Int64]
    /// Partitions taken away from this consumer (a Kafka rebalance). Work in progress for them must
    /// be dropped without committing; their new owner restarts from the committed offset.
    public var revoked: [Int32]

    /// Whether the log holds more records now than the poll brought (it stopped at a segment's end
    /// or at its bound): a consumer polls again at once instead of pausing (``pauseIfFew(fewer:pause:)``).
    public var moreAvailable: Bool

    public init(batches: [ConsumedBatch] = [], assigned: [Int32: Int64] = [:], revoked: [Int32] = [], moreAvailable: Bool = false) {
        self.batches = batches
        self.assigned = assigned
        self.revoked = revoked
        self.moreAvailable = moreAvailable
    }

    public var isEmpty: Bool { batches.isEmpty && assigned.isEmpty && revoked.isEmpty }

    /// Records in the poll's batches.
    public var recordCount: Int { batches.reduce(0) { $0 + $1.count } }

    /// Lets records gather before the next poll when this one brought only a few (`1..<fewer`):
    /// a consumer that keeps up with a slow trickle would otherwise wake for every group commit
    /// and pay a poll (a thread hop, a read, a decode) per handful of records, on the same cores
    /// as the edge. Cancellation ends the pause early.
    public func pauseIfFew(fewer: Int = 1_000, pause: Duration) async {
        let count = recordCount
        if count > 0 && count < fewer && !moreAvailable { try? await Task.sleep(for: pause) }
    }
}

/// Reads one topic as a member of a consumer group, and commits its progress.
public protocol LogConsumer: Sendable {
    /// The group this consumer belongs to, or `nil` for a reader that commits nothing.
    var group: String? { get }

    /// Why the log cannot be read now though polls do not fail, for readiness: nil when it can, or
    /// when the log cannot tell. (On Kafka, polls come back empty while no broker answers.)
    var unavailableReason: String? { get }

    /// Waits until there are records (or an assignment change) or `timeout` passes, and returns at
    /// most about `maxRecords` records.
    func poll(maxRecords: Int, timeout: Duration) async throws(LogError) -> LogPoll

    /// Makes the next poll of `partition` start at `offset` (for replays and recovery).
    func seek(partition: Int32, to offset: Int64) async throws(LogError)

    /// Durably records that the group has processed everything before these offsets.
    func commit(_ offsets: [Int32: Int64]) async throws(LogError)

    /// The group's committed offsets for the partitions this consumer holds.
    func committed() async throws(LogError) -> [Int32: Int64]

    /// The group's committed offsets for `partitions`, held or not (asked before the consumer
    /// joins its group); partitions without one are left out.
    func committed(partitions: [Int32]) async throws(LogError) -> [Int32: Int64]

    /// Records in the log that the group has not committed yet, summed over its partitions, when known.
    func lag() async -> Int64?

    /// The offset the next record appended to `partition` will get (the log's end), when known.
    func endOffset(partition: Int32) async -> Int64?

    /// The log's end as this consumer's last read of `partition` found it, when known: for a
    /// reader that ``caughtUp()`` just now, the end of the partition then. (Kafka: the high
    /// watermark of the last fetch response, which ``endOffset(partition:)`` cannot use.)
    func endOffsetAsLastRead(partition: Int32) async -> Int64?

    /// Whether the group still counts this consumer as the owner of `partition`, asked of the group's
    /// coordinator by committing `offset` again (the offset the group already has, or one it may
    /// have): false when the group has given the partition to another member, which a consumer
    /// paused past its session timeout learns only at its next poll, after it could have written
    /// a batch that is no longer its own. True where the log cannot tell (the coordinator cannot be
    /// reached, or does not answer within the commit's time limit) and for a log without groups of
    /// processes (the embedded log).
    func stillOwns(_ partition: Int32, committing offset: Int64) async -> Bool

    /// Steps past the damaged record the consumer is stopped at, when the offsets after it are
    /// certain (its frame is whole, or its segment is followed by another), and returns its bytes;
    /// nil when the consumer is not at such a record, or the log cannot tell (Kafka, where the
    /// client checks batches itself). See ``DamagedLogRecord``.
    func skipDamagedRecord() async throws(LogError) -> DamagedLogRecord?

    /// Whether this consumer has returned every record up to the end of every partition it reads,
    /// as far as the log has told it: where `playhead log dump` stops. `false` until it knows. (An
    /// embedded reader that reads once also stops at an unreadable record of the last segment.)
    func caughtUp() async -> Bool

    /// Leaves the group and releases resources.
    func close() async
}

extension LogConsumer {
    /// A log whose consumer holds every partition of its group (the embedded log).
    public func committed(partitions: [Int32]) async throws(LogError) -> [Int32: Int64] {
        try await committed().filter { partitions.contains($0.key) }
    }

    public var unavailableReason: String? { nil }
    public func endOffsetAsLastRead(partition: Int32) async -> Int64? { await endOffset(partition: partition) }
    public func stillOwns(_ partition: Int32, committing offset: Int64) async -> Bool { true }
    public func skipDamagedRecord() async throws(LogError) -> DamagedLogRecord? { nil }
}

/// Damaged bytes of the embedded log that a consumer stepped past, so that it can keep them for
/// inspection and read on. Two cases, both certain about the offsets of the records after them:
///
/// - One record whose checksum fails while the records around it are whole (a flipped bit on the
///   disk): its frame is certain (its length fits the segment and the next record there is valid,
///   or the segment ends right after it). `records` is 1 and `bytes` is the record as stored.
/// - A record whose frame cannot be trusted (a damaged length) in a segment that another follows:
///   where the records after it start is unknown, but the next segment's name gives the offset of
///   its first record. `bytes` is the rest of the segment, from the damaged record to its end, and
///   `records` the number of records it held (`playhead log salvage` reads them back).
public struct DamagedLogRecord: Sendable {
    public var partition: Int32
    /// The offset of the damaged record: where `bytes` start.
    public var offset: Int64
    /// The records `bytes` hold, the damaged one first; the consumer reads on at `offset + records`.
    /// 0 for bytes after the last record of a closed segment: `offset` is then the next segment's first.
    public var records: Int64
    /// Of `records`, those at or past the consumer's position (a seek's target can lie beyond the
    /// damaged record in its segment): the records this consumer did not read.
    public var missed: Int64
    public var bytes: [UInt8]

    /// What the damaged-records counters add for it: the records missed, or 1 for bytes that hold
    /// no record's offset (`records` 0: found after the last record of a closed segment, which
    /// holds more than its name says), so that alert `LogRecordDamaged` fires for those too.
    public var counted: Int64 { records == 0 && !bytes.isEmpty ? 1 : missed }

    public init(partition: Int32, offset: Int64, records: Int64 = 1, missed: Int64? = nil, bytes: [UInt8]) {
        self.partition = partition
        self.offset = offset
        self.records = records
        self.missed = missed ?? records
        self.bytes = bytes
    }
}

/// A log backend: a set of topics with producers and consumer groups.
public protocol LogBackend: Sendable {
    /// A human-readable name, for logs (`file:/var/lib/playhead/log`, `kafka://host:9092/events`).
    var displayName: String { get }
    /// `topic` as this log names it where it is kept, for messages: the Kafka topic that holds it
    /// (`playhead.events`); the embedded log's own name (`events`).
    func storedName(of topic: LogTopic) -> String
    /// What tells this log from every other, where the lake must know which log it was written
    /// from: the embedded log's random id (`<dir>/id`). `nil` for Kafka, whose partitions the
    /// consumer group hands to one writer each.
    var identity: String? { get }
    /// What the lake must know of a log whose partitions several writers share, so that one lake
    /// location is written from one log (Kafka: `kafka:<events topic>`). Nil for the embedded log,
    /// which has ``identity``.
    var sharedIdentity: String? { get }
    /// True while ``identity`` is nil but will come: a reader of an embedded log that no writer has
    /// made yet. Reads the log's folder: call it off the cooperative pool.
    var awaitsIdentity: Bool { get }
    func producer(for topic: LogTopic) throws(LogError) -> any LogProducer
    /// A consumer of `topic` in `group`; `nil` gives a reader from the earliest record that commits nothing.
    func consumer(for topic: LogTopic, group: String?) throws(LogError) -> any LogConsumer
    /// A small file that other stages keep beside the log, in its folder (the lake writer's record
    /// of its claims), read whole; nil when there is none, or the log keeps none (Kafka). Blocking:
    /// call it off the cooperative pool.
    func readNote(_ name: String) throws(LogError) -> [UInt8]?
    /// Replaces a note durably (written aside, fsynced, renamed). Blocking, as ``readNote(_:)``.
    func writeNote(_ name: String, _ contents: [UInt8]) throws(LogError)
    /// Keeps `topic`'s records from `offsets` on (by partition) from the log's retention, for
    /// `holder`: records a consumer has committed past but will read again after a restart (the
    /// lake writer's open hours, whose rollups it rebuilds from them). The embedded log keeps them as
    /// it keeps what a group has not committed past, whatever its age and size limits (and the
    /// clock) say; a later call moves the hold. Kafka's retention is the broker's: nothing there.
    /// Blocking, as ``readNote(_:)``.
    func holdRetention(of topic: LogTopic, from offsets: [Int32: Int64], holder: String) throws(LogError)
}

extension LogBackend {
    public func storedName(of topic: LogTopic) -> String { topic.name }
    public var identity: String? { nil }
    public var sharedIdentity: String? { nil }
    public var awaitsIdentity: Bool { false }
    public func readNote(_ name: String) throws(LogError) -> [UInt8]? { nil }
    public func writeNote(_ name: String, _ contents: [UInt8]) throws(LogError) {}
    public func holdRetention(of topic: LogTopic, from offsets: [Int32: Int64], holder: String) throws(LogError) {}
}
