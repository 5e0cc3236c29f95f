import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import PlayheadEvents
import PlayheadLog
import S3
import ServiceLifecycle
import Synchronization

/// How the lake writer batches and what it writes.
public struct LakeWriterConfiguration: Sendable {
    /// The log consumer group. Default: `lake`.
    public var group = "lake"
    /// A batch closes after this many records. Default: 1,000,000.
    public var flushEvents = 1_000_000
    /// A batch closes this long after its first record arrived. Default: 10 s.
    public var flushInterval: Duration = .seconds(10)
    /// A batch closes after this many bytes of records (bounds memory). Default: 64 MiB (with 512,
    /// `serve` peaked at 1.6 GB under 30 KB events, a probe; 756 MB with 128; with 8 KB events
    /// that were each a new session and content, 976–1,074 MB with 128 and 819 MB with 64).
    public var flushBytes = 64 * 1024 * 1024
    /// An event is dropped when its `event_id` appeared in the previous N records of its partition.
    /// 0 turns deduplication off. Default: 2,000,000 (about 48 MB per partition).
    public var dedupWindow = 2_000_000
    /// Rows per Parquet row group. Default: 65,536 (smaller files on our event data than 131,072, the
    /// dictionaries of a row group being smaller, and half the encoder's memory; docs/lake.md).
    /// Until 2026-12-03 this said 125,000, but rows reached the writer 16,384 at a time, so a group
    /// closed at 131,072 rows and was written as two of 65,536: the size every measurement had.
    public var rowGroupRows = 65_536
    /// zstd level of the Parquet files. Default: 1 (on event data level 1 is both faster and smaller
    /// than 3: see docs/parquet.md).
    public var zstdLevel: Int32 = 1
    /// Write `rollups/`. Default: true.
    public var rollups = true
    /// The longest wait between retries of a failed flush (the lake is unreachable). Default: 30 s.
    public var maxRetryDelay: Duration = .seconds(30)
    /// How long a graceful shutdown may spend writing what is left (a stalled or unreachable lake,
    /// a large backlog in the log). Then the writer stops where it is: what it did not write stays
    /// in the log and is written at the next start (a batch cut off in the middle is redone from its
    /// intent, as after a crash). Default: 20 s. (A SIGTERM during an S3 stall once waited for every
    /// retry: about 12 minutes, longer than any orchestrator's grace period.)
    public var shutdownTimeout: Duration = .seconds(20)

    public init() {}
}

/// The lake writer: consumes the log's `events` and `rejected` topics as group `lake` and writes
/// them to the lake exactly once (see docs/lake.md).
public final class LakeWriter: Service, Sendable {
    private let log: any LogBackend
    private let store: any LakeStore
    private let configuration: LakeWriterConfiguration
    private let threadPool: NIOThreadPool
    private let logger: Logger
    private let health = LakeWriterHealth()

    /// `nil` while the writer reads the log and writes the lake; else what fails now (its writes
    /// to the lake being retried, the log unreadable, a request the store leaves unanswered). For
    /// `GET /readyz` of `playhead store`.
    public var unavailableReason: String? {
        let reasons = [health.reason, store.unansweredRequest.map { "lake writer: \($0)" }].compactMap { $0 }
        return reasons.isEmpty ? nil : reasons.joined(separator: "; ")
    }

    /// - Parameter threadPool: runs encoding and compression off the cooperative pool. Started by
    ///   the caller.
    public init(
        log: any LogBackend, store: any LakeStore, configuration: LakeWriterConfiguration,
        threadPool: NIOThreadPool, logger: Logger
    ) {
        self.log = log
        self.store = store
        self.configuration = configuration
        self.threadPool = threadPool
        self.logger = logger
    }

    public func run() async throws {
        logger.info("lake writer: writing to \(store.displayName)", metadata: [
            "lake.flush_events": .stringConvertible(configuration.flushEvents), "lake.flush_interval": "\(configuration.flushInterval)",
        ])
        // This process's claim on the lake (docs/lake.md, "One log per lake"): both datasets' writers share it.
        let run = UUID().uuidString.lowercased()
        let writers = [DatasetKind.events, .rejected].map { kind in
            DatasetWriter(
                kind: kind, log: log, store: store, configuration: configuration, threadPool: threadPool, logger: logger, health: health,
                run: run)
        }
        let sharedIdentity = log.sharedIdentity
        let shutdownTimeout = configuration.shutdownTimeout
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // A `store` started before any `ingest` made its log: the log's id, which the lake
                // must know, comes with the writer. (Until 2026-12-04 such a store claimed nothing,
                // so it wrote a lake that another log had written, skipping the records below the
                // lake's offsets: a probe.)
                guard let identity = try await writers[0].logIdentity() else { return }
                try await self.claim(writers: writers, identity: identity, sharedIdentity: sharedIdentity)
                try await withThrowingTaskGroup(of: Void.self) { writing in
                    for writer in writers {
                        writing.addTask { try await writer.run() }
                    }
                    // The first error stops the other writer and is reported now, not when the
                    // other one ends (which, for a writer that keeps up, is at shutdown).
                    do {
                        while try await writing.next() != nil {}
                    } catch {
                        writing.cancelAll()
                        throw error
                    }
                }
            }
            // Bounds a graceful stop, the claim at start included (a stop during an S3 stall).
            group.addTask {
                try await gracefulShutdown()
                try await Task.sleep(for: shutdownTimeout)
                throw ShutdownTimedOut()
            }
            do {
                _ = try await group.next()  // the writers (or the timer, which only ends by throwing)
                group.cancelAll()  // the timer
            } catch is ShutdownTimedOut {
                logger.warning("lake writer: shutdown took longer than \(shutdownTimeout): stopping where it is", metadata: [
                    "hint": Self.stillInLog,
                ])
                group.cancelAll()
                while !group.isEmpty { _ = try? await group.next() }
            } catch where Task.isShuttingDownGracefully && !LakeError.isPermanent(error) {
                // A write that failed during a graceful stop (the lake refuses connections): the
                // events stay in the log, and the next start writes them. Not a failed stop.
                logger.warning("lake writer: stopping with events not written to the lake", metadata: [
                    "error": "\(error)",
                    "hint": Self.stillInLog,
                ])
                group.cancelAll()
            } catch {
                reportStop(error)
                group.cancelAll()
                throw error
            }
        }
        logger.info("lake writer: stopped")
    }

    /// The claim on the lake, made before either dataset's writer starts (``run()``).
    private func claim(writers: [DatasetWriter], identity: String?, sharedIdentity: String?) async throws {
        // On the embedded log, the lake's lag from the start: the claim is read (and retried, for
        // as long as the store cannot be reached) before the writers open their consumers, which
        // make the lag's series. A lake that could not be reached at start showed no lag at all
        // while events piled up in the log, so neither ConsumerLagGrowing nor LakeFlushFailing's
        // lag leg could fire (a review of storage failures). On Kafka a consumer joins the group:
        // none is opened early.
        let early = identity == nil ? nil : try? log.consumer(for: .events, group: configuration.group)
        try await DatasetWriter.withEarlyLag(of: early) {
            try await claimLake(writers: writers, identity: identity, sharedIdentity: sharedIdentity)
        }
    }

    private func claimLake(writers: [DatasetWriter], identity: String?, sharedIdentity: String?) async throws {
        if let identity {
            // One claim per process, made before either dataset's writer starts. (Each
            // writer once claimed on its own: of two processes started together, one's
            // `rejected` writer could refuse while its `events` writer wrote its claim over
            // the other's, and both stopped.) The claim is written only while it is as read,
            // so of processes started together the first to write it stands.
            // The other refusals at start come before the claim is written: a writer
            // refused after it claimed the lake left its claim, which then refused the
            // lake's own log (an outside review).
            try await writers[0].checkClaim(for: identity, claiming: true) {
                for writer in writers { try await writer.refuseLogEndingBeforeLake() }
            }
        } else if let sharedIdentity {
            try await writers[0].checkSharedClaim(for: sharedIdentity)
        }
    }

    private struct ShutdownTimedOut: Error {}

    private static let stillInLog: Logger.MetadataValue =
        "the events not yet in the lake stay in the log; they are written when a lake writer runs again"

    private func reportStop(_ error: any Error) {
        logger.error("lake writer: stopped on an error", metadata: [
            "error": "\(error)",
            // A refusal (an unreadable state, another log's lake) repeats at every start until it is
            // mended: the events wait in the log until then, not just until the next start.
            "hint": LakeError.isPermanent(error)
                ? "the events not yet in the lake stay in the log; nothing more is written until this is mended (the error says how; docs/runbook.md: \"An unreadable lake state\", \"The log ends before the lake\", \"Another log writes this lake\")"
                : Self.stillInLog,
        ])
    }
}

/// What each dataset's writer cannot do now, if anything (``LakeWriter/unavailableReason``).
final class LakeWriterHealth: Sendable {
    private let problems = Mutex<[String: String]>([:])
    /// Each dataset's consumer of the log, asked at every readiness check: a call that blocks the
    /// dataset's loop (a Kafka commit waiting on a broker that answers nothing) leaves what its
    /// last poll set, as it did for `observe` (an outside review: ready through 80 s of a frozen
    /// broker under load).
    private let consumers = Mutex<[String: any LogConsumer]>([:])

    func set(_ dataset: String, _ problem: String?) {
        problems.withLock { $0[dataset] = problem }
    }

    /// The consumer that reads `dataset`'s topic now, or nil once it is closed.
    func reading(_ dataset: String, _ consumer: (any LogConsumer)?) {
        consumers.withLock { $0[dataset] = consumer }
    }

    var reason: String? {
        var problems = problems.withLock { $0 }
        for (dataset, consumer) in consumers.withLock({ $0 }) {
            if let live = consumer.unavailableReason { problems["\(dataset) log"] = live }
        }
        guard !problems.isEmpty else { return nil }
        return problems.sorted { $0.key < $1.key }.map { "lake writer (\($0.key)): \($0.value)" }.joined(separator: "; ")
    }
}

/// The two datasets that come from the log.
enum DatasetKind: Sendable {
    case events, rejected

    var topic: LogTopic { self == .events ? .events : .rejected }
    var name: String { self == .events ? "events" : "rejected" }

    /// Why `bytes` cannot be read as a record of this dataset (for the log line of a damaged one).
    func unreadableReason(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { value in
            if value.isEmpty { return "no bytes (an empty message or a tombstone)" }
            do throws(RecordFormatError) {
                if self == .events { _ = try EventRecordView(value) } else { _ = try RejectedRecordView(value) }
                return "readable"
            } catch {
                return error.message
            }
        }
    }
}

/// What the writer holds for one log partition.
final class PartitionWriter: @unchecked Sendable {
    let partition: Int32
    /// Everything before this offset is in the lake.
    var next: Int64
    /// After a crash, the batch in the intent must end exactly here.
    var forcedEnd: Int64?
    /// The log's damage or missing records were stepped past up to here: the lake's state moves
    /// there with the next batch, or alone when no record follows (a restart then stepped past
    /// them, and reported them, again, and the lag counted them until an event came: an outside
    /// review).
    var steppedTo: Int64?
    var records = RecordBuffer()
    var openedAt: ContinuousClock.Instant?
    /// In a redo (`forcedEnd` set), the files the unfinished attempt's intent lists.
    var redoFiles: [String] = []
    var dedup: DedupWindow
    let rollups: RollupAggregator?
    /// Where the log's retention is held for this partition (the open hours' first record), and
    /// when that was last worked out.
    var heldFrom: Int64?
    var holdCheckedAt = ContinuousClock.now
    /// The group offset a failed commit left to commit (the lake holds everything before it), and
    /// when that was last tried: retried each second while no batch commits past it.
    var commitPending: Int64?
    var commitTriedAt = ContinuousClock.now
    /// The wait before the next try, doubled after each failure up to 30 s.
    var commitRetryDelay: Duration = .seconds(1)
    /// The lake's state of this partition as this writer last read or wrote it (its bytes): the
    /// next commit replaces exactly these, or none (``LakeCommits/commit(_:partition:replacing:)``).
    var stateBytes: [UInt8]?

    /// Whether the record at `offset` is new to this writer (polls may repeat records after a seek).
    func accepts(_ offset: Int64) -> Bool {
        offset >= next && offset > (records.lastOffset ?? next - 1)
    }

    func append(_ offset: Int64, _ value: UnsafeRawBufferPointer) {
        if records.isEmpty { openedAt = .now }
        records.append(offset: offset, value)
    }

    init(partition: Int32, next: Int64, dedupWindow: Int, rollups: Bool) {
        self.partition = partition
        self.next = next
        dedup = DedupWindow(capacity: dedupWindow)
        self.rollups = rollups ? RollupAggregator() : nil
    }
}

/// Writes one dataset (`events` or `rejected`) from its topic.
final class DatasetWriter: @unchecked Sendable {
    let kind: DatasetKind
    let log: any LogBackend
    let store: any LakeStore
    let commits: LakeCommits
    let configuration: LakeWriterConfiguration
    let threadPool: NIOThreadPool
    let logger: Logger
    let metrics: LakeMetrics
    let health: LakeWriterHealth
    /// This process's claim on the lake location (a random id per start).
    let run: String
    private var partitions: [Int32: PartitionWriter] = [:]

    init(
        kind: DatasetKind, log: any LogBackend, store: any LakeStore, configuration: LakeWriterConfiguration,
        threadPool: NIOThreadPool, logger: Logger, health: LakeWriterHealth, run: String
    ) {
        self.run = run
        self.kind = kind
        self.log = log
        self.store = store
        commits = LakeCommits(store: store, dataset: kind.name)
        self.configuration = configuration
        self.threadPool = threadPool
        var logger = logger
        logger[metadataKey: "lake.dataset"] = "\(kind.name)"
        self.logger = logger
        metrics = LakeMetrics(dataset: kind.name, flushInterval: configuration.flushInterval)
        self.health = health
    }

    /// Refreshes `playhead_consumer_lag_events{consumer="lake"}` (the events writer's) every second,
    /// beside the writer: the backend sets it when asked (events not yet committed to the lake,
    /// buffered ones included). Whatever the writer waits for (an S3 request that hangs for its
    /// whole timeout, a retry), the lag shows the data piling up in the log. (It was refreshed
    /// between the writer's steps: an S3 stall froze it for minutes, a probe.)
    static func refreshingLag(of consumer: any LogConsumer) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                _ = await consumer.lag()
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Runs `body` with `consumer` (the lake group's, of the events topic, opened before the
    /// writers open theirs) making the lag's series (``refreshingLag(of:)``), and closes it after.
    static func withEarlyLag<T>(of consumer: (any LogConsumer)?, _ body: () async throws -> T) async throws -> T {
        let lag = consumer.map { refreshingLag(of: $0) }
        let result: Result<T, any Error>
        do {
            result = .success(try await body())
        } catch {
            result = .failure(error)
        }
        lag?.cancel()
        await consumer?.close()
        return try result.get()
    }

    /// The group gave this process's partitions to other members (``LogConsumer/stillOwns(_:committing:)``).
    struct PartitionsLost: Error {
        var partition: Int32
    }

    func run() async throws {
        var consumer = try log.consumer(for: kind.topic, group: configuration.group)
        health.reading(kind.name, consumer)
        defer { health.reading(kind.name, nil) }
        var lagTask = kind.topic == .events ? Self.refreshingLag(of: consumer) : nil
        do {
            var readFailures = 0
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                do {
                    // After a failed poll, what was read before still flushes when due.
                    let poll = try await nextPoll(consumer, failures: &readFailures)
                    if let poll { try await handle(poll, consumer: consumer) }
                    for partition in partitions.values where isDue(partition) {
                        try await flush(partition, consumer: consumer)
                    }
                    // An idle pipeline flushes nothing, and its hold would stay on its last open
                    // hour for as long as it is idle (a regression review): looked at each minute.
                    for partition in partitions.values where partition.records.isEmpty && partition.holdCheckedAt.duration(to: .now) >= .seconds(60) {
                        await holdRetention(partition)
                    }
                    // A group commit that failed (the log's disk full) is retried while no batch
                    // comes (an open batch commits with its flush): it waited for the next batch, so
                    // an idle pipeline kept a lag of what the lake held, retention kept those
                    // segments, and LakeFlushFailing paged after 10 minutes (a review of the alerts).
                    for partition in partitions.values where partition.records.isEmpty && partition.commitPending != nil
                        && partition.commitTriedAt.duration(to: .now) >= partition.commitRetryDelay
                    {
                        await retryCommit(partition, consumer: consumer)
                    }
                    // Batches close after seconds: 100 ms more to gather a trickle costs nothing.
                    await poll?.pauseIfFew(pause: .milliseconds(100))
                } catch let lost as PartitionsLost {
                    // Start over as a new member: every partition is taken afresh from the lake's
                    // state, and what this process buffered is its new owners' to write.
                    if log.identity == nil {
                        logger.warning("lake writer: group lake moved on without this process (a rebalance: a member joined or left, or this one was paused past the session timeout; docs/kafka.md); dropping the unwritten batches, which the partitions' owners write, and joining again", metadata: [
                            "log.partition": .stringConvertible(lost.partition), "lake.partitions_dropped": .stringConvertible(partitions.count),
                        ])
                    } else {
                        // The embedded log has no group of processes: the lake's state moved or went
                        // under this writer (it blamed a Kafka rebalance, an outside review).
                        logger.warning("lake writer: the lake's state changed under this writer (see the line before); taking the log's partition again from the lake's state as it is now", metadata: [
                            "log.partition": .stringConvertible(lost.partition),
                        ])
                    }
                    partitions.removeAll()
                    lagTask?.cancel()
                    await close(consumer)
                    consumer = try log.consumer(for: kind.topic, group: configuration.group)
                    health.reading(kind.name, consumer)
                    lagTask = kind.topic == .events ? Self.refreshingLag(of: consumer) : nil
                }
            }
            // Graceful shutdown: take what is left in the log (the edge has stopped), write it, commit.
            // For at most 5 s of reading: on Kafka other processes go on producing, so the log never
            // goes idle (every stop of a `store` ran into the shutdown timeout, a review); what is
            // left is the next owner's, from the lake's state.
            var idle = 0
            let drainEnd = ContinuousClock.now + .seconds(5)
            while idle < 2 && !Task.isCancelled && ContinuousClock.now < drainEnd {
                let poll: LogPoll
                do {
                    poll = try await consumer.poll(maxRecords: 100_000, timeout: .milliseconds(100))
                } catch {
                    // A log that cannot be read further (reported while running): write what was read.
                    logger.error("lake writer: stopping with events of the log unread", metadata: ["error": "\(error)"])
                    break
                }
                idle = poll.batches.isEmpty ? idle + 1 : 0
                try await handle(poll, consumer: consumer)
                // A backlog is written in batches of the usual size, not gathered whole in memory.
                for partition in partitions.values where isDue(partition) {
                    try await flush(partition, consumer: consumer)
                }
            }
            for partition in partitions.values.sorted(by: { $0.partition < $1.partition }) where !partition.records.isEmpty {
                try await flush(partition, consumer: consumer)
            }
        } catch let lost as PartitionsLost {
            // At a stop: what is left is the new owners'.
            logger.warning("lake writer: stopping; the group gave this process's partitions to other members, so their unwritten batches are left to them", metadata: [
                "log.partition": .stringConvertible(lost.partition),
            ])
        } catch {
            lagTask?.cancel()
            await close(consumer)
            throw error
        }
        lagTask?.cancel()
        await close(consumer)
    }

    /// Closes `consumer`, waiting for it at most ``closeWait``; past that it goes on closing in
    /// the background. A Kafka consumer closed during a rebalance (which is when the writer
    /// joins again) sometimes stayed in librdkafka's close for minutes: the writer took no
    /// partition meanwhile, and a stop never ended (`KafkaPipelineTests`, 2026-12-06, twice).
    private func close(_ consumer: any LogConsumer) async {
        let closed = await BoundedWait.finish(within: Self.closeWait) { await consumer.close() }
        if !closed {
            logger.warning("lake writer: the log's consumer did not close within \(Self.closeWait) (a Kafka rebalance in progress?); going on without waiting for it: the group drops a member that does not leave when its session times out", metadata: [
                "lake.dataset": "\(kind.name)",
            ])
        }
    }

    static let closeWait: Duration = .seconds(15)

    /// A poll of the log, or nil after a failed one: the log cannot be read past a record (a damaged
    /// segment: docs/runbook.md) or is unreachable. Said at once, counted as a failed flush (the lake
    /// falls behind: `LakeFlushFailing`), the lag kept fresh, and retried after a pause that doubles
    /// up to `maxRetryDelay`: the edge stays up and keeps the events in the log.
    private func nextPoll(_ consumer: any LogConsumer, failures: inout Int) async throws -> LogPoll? {
        let error: LogError
        do {
            let poll = try await consumer.poll(maxRecords: 100_000, timeout: .milliseconds(200))
            if failures > 0 { health.set(kind.name, nil) }
            failures = 0
            // Polls that do not fail may still read nothing the log holds (no Kafka broker answers).
            health.set("\(kind.name) log", consumer.unavailableReason)
            return poll
        } catch let caught {
            if Task.isCancelled || Task.isShuttingDownGracefully { throw caught }
            error = caught
        }
        if error.code == .corrupt, let damaged = try? await consumer.skipDamagedRecord() {
            // Damage whose end is certain (one record, or the rest of a segment): kept in the lake,
            // and reading goes on after it.
            try await keep(damaged)
            if let writer = partitions[damaged.partition] {
                writer.steppedTo = max(writer.steppedTo ?? 0, damaged.offset + damaged.records)
            }
            return LogPoll()
        }
        failures += 1
        health.set(kind.name, "cannot read the log (\(failures) times in a row): \(error)")
        let delay = min(Duration.seconds(1 << min(failures - 1, 5)), configuration.maxRetryDelay)
        logger.error("lake writer: cannot read the log; retrying", metadata: [
            "error": "\(error)", "retry_in": "\(delay)", "failures": .stringConvertible(failures),
        ])
        metrics.flushFailed()
        await Self.wait(delay)
        return nil
    }

    /// Waits `delay` before a retry, or less when a graceful shutdown or a cancellation comes
    /// (a stop during a 30 s wait took that long, a probe).
    private static func wait(_ delay: Duration) async {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }
    }

    /// One embedded log per lake location (`_playhead/log.json`): two `serve` processes pointed at
    /// one S3 prefix would write files of the same names with different records, each replacing the
    /// other's. The claim names the log (its id) and the process that claimed it last (`run`, a
    /// random id per start). At start (`claiming`, once per process: ``LakeWriter/run()``), refuses
    /// a location another log has claimed, or one that a process of this log's id claimed without
    /// this data folder knowing it (a copy of the folder ran on it since); then notes its run in the
    /// log's folder (`lake-runs.json`) and claims the location. When a partition is taken and before
    /// each batch, stops unless the claim is still this process's. The claim is written only while
    /// it is as read: of two processes started together, the first to write it stands, and the
    /// other reads it again and is refused. `beforeClaiming`: the start's other refusals, run once
    /// the claim is found no other log's and before this process notes its run and claims the
    /// location. `pass`: how many times the claim changed under this check (``claimPasses``).
    func checkClaim(for identity: String, claiming: Bool, pass: Int = 0, beforeClaiming: () async throws -> Void = {}) async throws {
        let (claim, claimBytes) = claiming
            ? try await atStart("read the lake's claim") { try await self.commits.claimAndBytes() }
            : try await retrying("read the lake's claim") { try await self.commits.claimAndBytes() }
        let hint = " Point --lake at a folder or prefix of its own for each log (docs/lake.md, \"One log per lake\"); the events the lake lacks of the log that wrote it stay in that log until a lake writer on that log writes them (docs/runbook.md, \"Moving to another log\")"
        if let claim, claim.logID != identity {
            let what = claiming
                ? "\(store.displayName) is written from \(Self.otherLog(claim)); this log (\(log.displayName)) is \(identity). One lake location takes one log: nothing was written."
                : "another process writes \(store.displayName): the lake is now claimed by log \(claim.logID), not by this one (\(log.displayName), \(identity)); this writer stops before writing a file, and its events stay in its log."
            throw LakeError(.otherWriter, what + hint)
        }
        guard claiming else {
            if claim == nil {
                // The claim went with the lake's folder or bucket: written again, or another log
                // could claim the lake (an outside review: a bucket made again stayed unclaimed).
                guard try await claimAgain(identity, replacing: nil) else {
                    try await claimChanged(pass: pass)
                    return try await checkClaim(for: identity, claiming: false, pass: pass + 1)
                }
                logger.warning("lake writer: the lake's claim (_playhead/log.json) was gone; written again for this log", metadata: ["lake.log_id": "\(identity)"])
                return
            }
            if let other = claim?.run, other != run {
                // A run this folder made before this one: a backup of the lake, taken during that
                // run, restored under this writer; it stopped the whole server as "a copy of this
                // data folder" (a review of restores). (In a copy made while the original ran, the
                // original's run too: the original then stops at its next batch, as whenever a
                // copy claims the lake; a code review traced that both never go on writing.)
                // Claimed again; the state's check that follows takes the lake as it now is.
                if try await runsNoted().contains(other) {
                    guard try await claimAgain(identity, replacing: claimBytes) else {
                        try await claimChanged(pass: pass)
                        return try await checkClaim(for: identity, claiming: false, pass: pass + 1)
                    }
                    logger.warning("lake writer: the lake's claim names an earlier run of this data folder, not this one: a backup of the lake restored under this writer? Claimed again for this run; the writer goes on from the lake's state as it now is", metadata: [
                        "lake.claim_run": "\(other)", "lake.run": "\(run)",
                    ])
                    return
                }
                throw LakeError(.otherWriter, "another process writes \(store.displayName) from a log with this log's id (\(identity)): a copy of this data folder (its claim is run \(other), this process's is \(run)). This writer stops before writing a file, and its events stay in its log (\(log.displayName)). Never run two copies of one data folder (docs/lake.md, \"One log per lake\").")
            }
            return
        }
        let known = try await runsNoted()
        if let other = claim?.run, !known.contains(other) {
            throw LakeError(.otherWriter, "\(store.displayName) was last written by a process of a log with this log's id (\(identity)) that this data folder (\(log.displayName)) does not know: a copy of this data folder has written it since this folder last did (its claim is run \(other)). Nothing was written: the two logs hold different events under the same offsets. Give one of the two folders a new id (delete its log/id and log/lake-runs.json while it is stopped) and its own --lake (docs/lake.md, \"One log per lake\"); if no copy exists (this folder's lake-runs.json was lost), delete \(Self.objectLocation(store, "_playhead/log.json")) and start again.")
        }
        try await beforeClaiming()
        // The run is noted in the log's folder before the lake names it: a crash between the two
        // leaves a run the folder knows, so this folder's next start is not taken for a copy.
        // Retried like the lake's writes: on a full disk at start it stopped the whole server, so
        // clients got no 503 but a refused connection (a probe, 2026-12-05).
        try await retrying("note this run in \(log.displayName)/\(Self.runsNote)", retryIf: { ($0 as? LogError)?.code == .full }) {
            try await self.noteRun(known)
        }
        do {
            try await atStart("claim the lake") { try await self.commits.writeClaim(.init(logID: identity, run: self.run), replacing: claimBytes) }
        } catch let error as LakeError where error.code == .otherWriter {
            // Another process claimed the lake since this one read the claim (this one waited in
            // between: its folder's disk full, the store unreachable): checked again from the
            // start, so that a claim of another log refuses this writer before it writes anything.
            logger.warning("lake writer: another process claimed the lake while this one was starting; checking its claim again", metadata: ["lake.log_id": "\(identity)"])
            try await claimChanged(pass: pass)
            try await checkClaim(for: identity, claiming: true, pass: pass + 1, beforeClaiming: beforeClaiming)
        }
    }

    /// How many times a check reads the claim again after finding it changed under its write.
    static let claimPasses = 5

    /// Before the claim is read again after it changed under this writer's write: a pause, and an
    /// end to it. A store whose conditional writes fail while its reads still show the old claim (a
    /// gateway that answers 412 to `If-None-Match: *` for an absent key, a cache in front of the
    /// store) looped for ever, at full speed, past a stop (an outside review of the diff).
    private func claimChanged(pass: Int) async throws {
        guard pass + 1 < Self.claimPasses, !Task.isShuttingDownGracefully, !Task.isCancelled else {
            throw LakeError(.io, "\(store.displayName)/_playhead/log.json changed under each of this writer's \(pass + 1) conditional writes of its claim, yet reads showed it unchanged: a store or a proxy in front of it that does not keep conditional writes (If-Match, If-None-Match) consistent with its reads? Nothing was written.")
        }
        await Self.wait(.milliseconds(200 << min(pass, 4)))
    }

    /// Writes this process's claim while the stored one is still `previous`; false when another
    /// process has written it since (the caller reads it again).
    private func claimAgain(_ identity: String, replacing previous: [UInt8]?) async throws -> Bool {
        do {
            try await retrying("claim the lake again") { try await self.commits.writeClaim(.init(logID: identity, run: self.run), replacing: previous) }
            return true
        } catch let error as LakeError where error.code == .otherWriter {
            return false
        }
    }

    /// The claim's read and write, at start: the process's first read and first write of the lake.
    /// Credentials that may list but not write (a reader's key), or not read (a writer's), passed
    /// the start-up listing, and the writer retried for ever while the events piled up in the log
    /// (reviews). A refusal no retry mends stops the writer at start, saying what to do; later
    /// (a policy changed under a running writer) it is retried, and LakeFlushFailing fires.
    private func atStart<T>(_ what: String, _ operation: () async throws -> T) async throws -> T {
        do {
            return try await retrying(what, retryIf: { !(($0 as? S3Error)?.isCredentialRefusal ?? false) }, operation)
        } catch let error as S3Error where error.isCredentialRefusal {
            throw LakeError(.io, "\(store.displayName) refused to \(what) at start: \(error). \(Self.refusalAdvice(error)) Nothing was written.")
        }
    }

    /// What to do about a refusal of a request whose listing the store took.
    static func refusalAdvice(_ error: S3Error) -> String {
        switch error.code {
        case .accessDenied:
            "The credentials may not do this: check the policy (docs/s3.md lists the actions the writer needs: s3:GetObject, s3:PutObject, s3:DeleteObject, s3:ListBucket, s3:AbortMultipartUpload)."
        case .signatureDoesNotMatch:
            "The store took the listing's signature and not this one's: a proxy between that changes requests, or a secret that differs for this bucket?"
        case .invalidAccessKeyId:
            "The store does not take this key for this request: check AWS_ACCESS_KEY_ID."
        default:
            "The session token was refused (expired?): get new temporary credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and start again (docs/s3.md)."
        }
    }

    /// The log's id (nil for Kafka), once a writer has made it; `.none` when a graceful shutdown
    /// comes first.
    func logIdentity() async throws -> String?? {
        let log = self.log
        guard try await threadPool.runIfActive({ log.awaitsIdentity }) else { return .some(log.identity) }
        // While it waits, the group's consumer makes the lag's series (0: nothing written yet), as
        // `observe`'s does: a `store` waiting for a writer exported none, so a dashboard or an
        // alert on the lake's lag found no series at all (an outside review of the split).
        let early = kind.topic == .events ? try? log.consumer(for: kind.topic, group: configuration.group) : nil
        return try await Self.withEarlyLag(of: early) { () async throws -> String?? in
            repeat {
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
                if Task.isShuttingDownGracefully || Task.isCancelled { return String??.none }
            } while try await threadPool.runIfActive({ log.awaitsIdentity })
            return .some(log.identity)
        }
    }

    /// The same for a log whose partitions several processes write (Kafka), at start: a location
    /// claimed by another log is refused, and an unclaimed one claimed. Every writer of the topic
    /// writes the same claim, so there is no run to check. Without it, a lake that the embedded log
    /// (or another topic) had written up to offset N took the topic's records below N for written
    /// and never wrote them: the writer waited for offset N in silence (a probe, 2026-12-04).
    func checkSharedClaim(for identity: String, pass: Int = 0) async throws {
        let (claim, claimBytes) = try await retrying("read the lake's claim") { try await self.commits.claimAndBytes() }
        if let claim {
            guard claim.logID == identity else {
                throw LakeError(.otherWriter, "\(store.displayName) is written from \(Self.otherLog(claim)), whose offsets are other records than this log's (\(log.displayName)). One lake location takes one log: nothing was written. Point --lake at a folder or prefix of its own for each log (docs/lake.md, \"One log per lake\"); the events the lake lacks of the log that wrote it stay in that log until a lake writer on that log writes them (docs/runbook.md, \"Moving to another log\")")
            }
            return
        }
        try await checkUnclaimedState(for: identity)
        do {
            try await retrying("claim the lake") { try await self.commits.writeClaim(.init(logID: identity, run: nil), replacing: claimBytes) }
        } catch let error as LakeError where error.code == .otherWriter {
            // Claimed by another writer since it was read: by another process of this topic, which
            // writes the same claim, or by another log, refused as at the top.
            try await claimChanged(pass: pass)
            try await checkSharedClaim(for: identity, pass: pass + 1)
        }
    }

    /// A lake with no claim but with state (written before claims existed, releases before
    /// 2026-12-03), about to be claimed by this topic: refused when the group has no offset on this
    /// topic for any partition the lake has written. The lake was then most likely written from
    /// other topics: releases before 2026-12-03 read the path of `kafka://host/<path>` as a prefix
    /// (`<path>events`), later ones as the topic. The writer moved the group's offsets up to the
    /// lake's, so the new topic's records below them were never written (a probe: 17,734 of 18,000
    /// events after an upgrade, with lag 0 and `/readyz` ready).
    private func checkUnclaimedState(for identity: String) async throws {
        let partitions = try await retrying("list _playhead/state/\(kind.name)/") { try await self.commits.partitionsWithState() }
        var written: [Int32: Int64] = [:]
        for partition in partitions {
            let state = try await retrying("read state") { try await self.commits.state(partition) }
            if let next = state?.nextOffset, next > 0 {
                written[partition] = next
            }
        }
        guard !written.isEmpty else { return }
        let consumer = try log.consumer(for: kind.topic, group: configuration.group)
        let committed: [Int32: Int64]
        do {
            committed = try await retrying("read the group's offsets") { try await consumer.committed(partitions: Array(written.keys)) }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
        guard committed.isEmpty else { return }
        let topic = identity.hasPrefix("kafka:") ? String(identity.dropFirst("kafka:".count)) : identity
        let shown = written.sorted { $0.key < $1.key }.prefix(3).map { "partition \($0.key) up to offset \($0.value)" }.joined(separator: ", ")
        let claimPath = Self.objectLocation(store, "_playhead/log.json")
        throw LakeError(.otherWriter, """
            \(store.displayName) names no log (a lake written by a release before 2026-12-03) and has been written \
            (\(shown)\(written.count > 3 ? ", …" : "")), but consumer group '\(configuration.group)' (after the URL's \
            group_prefix, if it gives one) has no offset for any of those partitions of topic \(topic): the lake was \
            most likely written from other topics, and treating this topic's records below those offsets as \
            written would lose them; nothing was written. Releases before \
            2026-12-03 read the path of kafka://host/<path> as a prefix of the topics (<path>events, \
            <path>rejected): to go on with those topics, give ?prefix=<path> instead of the path. If topic \
            \(topic) is the one this lake was written from (the group's offsets expired), claim the lake for it \
            by writing {"log_id":"\(identity)"} to \(claimPath), and start again (docs/kafka.md, "Upgrading")
            """)
    }

    /// The log a claim names, for a message.
    static func otherLog(_ claim: LakeCommits.Claim) -> String {
        let id = claim.logID
        return id.hasPrefix("kafka:") ? "another log (the Kafka topic \(id.dropFirst("kafka:".count)), id \(id))" : "another log (id \(id))"
    }

    /// Where an object of the lake is, as an operator names it: a path for a folder (`rm` takes
    /// it, not `file:…`), an `s3://` URL for a bucket.
    static func objectLocation(_ store: any LakeStore, _ path: String) -> String {
        let name = store.displayName
        return (name.hasPrefix("file:") ? String(name.dropFirst("file:".count)) : name) + "/" + path
    }

    /// The runs of this data folder's processes that claimed a lake, newest last (`lake-runs.json`).
    private struct NotedRuns: Codable {
        var runs: [String]
    }

    private static let runsNote = "lake-runs.json"

    private func runsNoted() async throws -> [String] {
        let log = self.log
        let bytes = try await threadPool.runIfActive { try log.readNote(Self.runsNote) }
        guard let bytes else { return [] }
        do {
            return try JSONDecoder().decode(NotedRuns.self, from: Data(bytes)).runs
        } catch {
            throw LakeError(.otherWriter, "\(log.displayName)/\(Self.runsNote) cannot be read (\(error)); delete it, and \(store.displayName)/_playhead/log.json, and start again")
        }
    }

    static let runsKept = 4_096

    private func noteRun(_ known: [String]) async throws {
        let log = self.log
        // The last 4,096 runs (150 KB): with 32, a folder started 32 times since a backup of its lake
        // was taken (a crash-looping pod) took the restored backup for a copy's, and stopped (a
        // code review).
        // Once: a check that reads the claim again notes its run again (it was listed once more each
        // time, and enough passes pushed the earlier runs out; an outside review).
        guard !known.contains(run) else { return }
        let bytes = [UInt8](try JSONEncoder().encode(NotedRuns(runs: Array((known + [run]).suffix(Self.runsKept)))))
        try await threadPool.runIfActive { try log.writeNote(Self.runsNote, bytes) }
    }

    /// Keeps damaged bytes of the log in the lake, says so at error level, and counts the records
    /// missed: one record at `_playhead/damaged/<dataset>/p<partition>-<offset>.record`; the rest of a
    /// segment whose damaged record's length cannot be trusted at
    /// `…/p<partition>-<offset>-<last offset>.records` (`playhead log salvage` reads its records back).
    /// The same names on a redo. The lake's files go on after them.
    private func keep(_ damaged: DamagedLogRecord) async throws {
        if damaged.bytes.isEmpty {
            // Missing records (a segment deleted or cut short), not damaged bytes: nothing to keep
            // (an empty file was written, which salvage read as 0 records).
            logger.error("lake writer: records of the log are missing; their events are not in the lake", metadata: [
                "log.partition": .stringConvertible(damaged.partition), "log.offset": .stringConvertible(damaged.offset), "log.records": .stringConvertible(damaged.records),
                "log.missed": .stringConvertible(damaged.missed),
            ])
            metrics.damaged.increment(by: Int64(damaged.missed))
            return
        }
        let path = switch damaged.records {
        case 1: LakePaths.damagedRecord(dataset: kind.name, partition: damaged.partition, offset: damaged.offset)
        // Bytes after a closed segment's last record, which hold no offset of their own.
        case 0: "_playhead/damaged/\(kind.name)/p\(damaged.partition)-after-\(damaged.offset - 1).records"
        default: "_playhead/damaged/\(kind.name)/p\(damaged.partition)-\(damaged.offset)-\(damaged.offset + damaged.records - 1).records"
        }
        try await retrying("keep a damaged record") { try await self.store.put(path, damaged.bytes) }
        if damaged.records == 0 {
            logger.error("lake writer: skipped bytes after the last record of a closed log segment (it holds more than its name says); they are kept in the lake (playhead log salvage reads them), and every record of the log is written", metadata: [
                "log.partition": .stringConvertible(damaged.partition), "log.next_offset": .stringConvertible(damaged.offset), "lake.path": "\(path)",
                "bytes": .stringConvertible(damaged.bytes.count),
            ])
        } else if damaged.records == 1 {
            logger.error("lake writer: skipped a damaged record of the log; its bytes are kept in the lake", metadata: [
                "log.partition": .stringConvertible(damaged.partition), "log.offset": .stringConvertible(damaged.offset), "lake.path": "\(path)",
                "bytes": .stringConvertible(damaged.bytes.count),
            ])
        } else {
            logger.error("lake writer: skipped the rest of a damaged log segment; its bytes are kept in the lake (playhead log salvage reads them)", metadata: [
                "log.partition": .stringConvertible(damaged.partition), "log.offset": .stringConvertible(damaged.offset), "log.records": .stringConvertible(damaged.records),
                "log.missed": .stringConvertible(damaged.missed), "lake.path": "\(path)", "bytes": .stringConvertible(damaged.bytes.count),
            ])
        }
        metrics.damaged.increment(by: damaged.counted)
    }

    private func handle(_ poll: LogPoll, consumer: any LogConsumer) async throws {
        for partition in poll.revoked {
            // Another writer takes over from the lake's state; what was not flushed is redone there.
            partitions.removeValue(forKey: partition)
            logger.info("lake writer: partition revoked", metadata: ["log.partition": .stringConvertible(partition)])
        }
        for partition in poll.assigned.keys.sorted() {
            try await assign(partition, consumer: consumer)
        }
        for batch in poll.batches {
            guard let writer = partitions[batch.partition] else { continue }
            // Kafka hands over a partition and records fetched from the group's committed offset in
            // one poll, before `assign` sought the partition to the lake's next offset. With the
            // group ahead of the lake (another consumer in the group, or offsets reset by hand),
            // those records came after a gap; taken, the records of the gap that the seek fetches
            // next were below them and dropped as seen, and their events were never written (a
            // probe, 2026-12-04: 3,000 acknowledged events). A batch of a partition assigned in
            // this poll is taken only where it follows on; the seek fetches the rest again.
            if poll.assigned[batch.partition] != nil, batch.firstOffset > (writer.records.lastOffset ?? writer.next - 1) + 1 {
                logger.debug("lake writer: records fetched before the seek to the lake's next offset are read again from there", metadata: [
                    "log.partition": .stringConvertible(batch.partition), "log.offset": .stringConvertible(batch.firstOffset), "lake.next_offset": .stringConvertible(writer.next),
                ])
                continue
            }
            // A batch closes where it must even inside a poll's records: a redo after a crash ends
            // exactly where the intent says, and a batch at --flush-events or --flush-bytes is
            // written before more is taken (catching up, a poll of 100,000 records took batches
            // 26-30 % past --flush-bytes, a probe). Then the rest of the poll's records go on.
            while true {
                var blocked = false
                var pastRedo = false
                try batch.forEachRecord { offset, value in
                    guard !blocked, writer.accepts(offset) else { return }
                    if let end = writer.forcedEnd, offset >= end {
                        blocked = true
                        pastRedo = true
                        return
                    }
                    // Not in a redo: its batch must end exactly at the intent's end, whatever the
                    // flags (the files' names say so; cut early, its last records were lost).
                    if writer.forcedEnd == nil
                        && (writer.records.count >= configuration.flushEvents || writer.records.byteCount >= configuration.flushBytes) {
                        blocked = true
                        return
                    }
                    writer.append(offset, value)
                }
                guard blocked else { break }
                // A record at or past the redo's end: the log holds nothing more of its range
                // (offsets that hold no record, as Kafka's transaction markers), so it is whole.
                try await flush(writer, consumer: consumer, redoRead: pastRedo)
            }
        }
    }

    private func isDue(_ writer: PartitionWriter) -> Bool {
        guard !writer.records.isEmpty else { return (writer.steppedTo ?? 0) > writer.next && writer.forcedEnd == nil }
        if let end = writer.forcedEnd { return max((writer.records.lastOffset ?? 0) + 1, writer.steppedTo ?? 0) >= end }
        if writer.records.count >= configuration.flushEvents || writer.records.byteCount >= configuration.flushBytes { return true }
        if let opened = writer.openedAt, ContinuousClock.now - opened >= configuration.flushInterval { return true }
        return false
    }

    /// Whether `path` is a batch file of the writer's (`…/p<partition>-<from>-<to>[-k].parquet`),
    /// not an import's.
    static func isBatchFile(_ path: String, partition: Int32) -> Bool {
        let name = path.split(separator: "/").last ?? ""
        return name.hasPrefix("p\(partition)-") && name.hasSuffix(".parquet")
    }

    /// Takes a partition: reads the lake's state, seeks there, and rebuilds the dedup window and
    /// the rollups of the open hours from the log.
    private func assign(_ partition: Int32, consumer: any LogConsumer) async throws {
        let state = try await retrying("read state") { try await self.commits.state(partition) }
        if let identity = log.identity {
            try await checkClaim(for: identity, claiming: false)
        }
        let intent = try await retrying("read intent") { try await self.commits.intent(partition) }
        if state == nil, intent.map({ $0.from != 0 }) ?? true {
            // No state, but files of this partition (and no intent from offset 0: a first batch cut
            // short has files and an intent from 0): the state was deleted (by hand, or a restore
            // that left it out). Starting from offset 0 wrote every event again under other names
            // (a probe: each of 15,160 events twice); refuse, and say how to write it again.
            // An intent from further on is no first batch: it was written over a state that is
            // gone, and it skipped this check until 2026-12-08, so that every event of the lake
            // was written again (an outside review: 4,000 rows for 2,000 events).
            // One listing of the whole dataset: seconds on a lake of hundreds of thousands of files
            // (a probe: 19.5 s for 204,002 files, in silence). Said, so that the wait has a reason.
            logger.info("lake writer: no state for this partition yet; looking for its files in the lake (one listing of the dataset)", metadata: [
                "log.partition": .stringConvertible(partition), "lake.dataset": "\(kind.name)",
            ])
            let files = try await retrying("list \(kind.name)/") { try await self.store.list(prefix: "\(kind.name)/") }
            if let file = files.first(where: { Self.isBatchFile($0, partition: partition) }) {
                // Read again: a writer that held the partition before this one (a rebalance under
                // way, a paused owner) may have written its first state since the read above, and
                // then the files are its own. Refused, that ended this process as if the lake were
                // damaged (a review): the partition is left to the group to settle, as when the
                // state moves under a batch.
                if try await retrying("read state", { try await self.commits.state(partition) }) != nil {
                    throw PartitionsLost(partition: partition)
                }
                let statePath = Self.objectLocation(store, "_playhead/state/\(kind.name)/p\(partition).json")
                throw LakeError(
                    .corruptState,
                    "the lake holds files of partition \(partition) (\(file), …) but no state (\(statePath)): writing from offset 0 would write their events again; nothing was written. Write the state again from the file names (docs/runbook.md, \"An unreadable lake state\")."
                )
            }
        }
        if let written = state?.nextOffset, let end = await consumer.endOffset(partition: partition), end < written {
            // The log ends before what the lake has written: it was replaced (a new volume, another
            // --log) or cut back (a damaged segment, docs/runbook.md). Skipping its records up to
            // `written` as written would lose them, and writing them from its end could reuse the
            // names of files already in the lake and replace them: refuse, loudly.
            throw Self.logEndsBeforeLake(end: end, partition: partition, next: written)
        }
        let next = state?.nextOffset ?? 0
        let writer = PartitionWriter(
            partition: partition, next: next, dedupWindow: kind == .events ? configuration.dedupWindow : 0,
            rollups: kind == .events && configuration.rollups
        )
        if let intent {
            if intent.from == next && intent.to > next {
                writer.forcedEnd = intent.to
                writer.redoFiles = intent.files
                logger.notice("lake writer: redoing an unfinished batch", metadata: [
                    "log.partition": .stringConvertible(partition), "lake.from": .stringConvertible(intent.from), "lake.to": .stringConvertible(intent.to),
                ])
            } else if intent.from > next {
                try await clearIntentAboveState(intent, partition: partition, state: state)
            } else {
                try await retrying("clear intent") { try await self.commits.clearIntent(partition: partition) }
            }
        }
        // Before the warm-up (it may read 2 million records): a group ahead of the lake is moved
        // back before retention can delete what the lake lacks.
        await alignGroupOffset(partition, to: next, consumer: consumer)
        // The hold an earlier run left keeps what the warm-up reads; it is moved once the warm-up
        // knows the open hours.
        try await warmUp(writer, rollupFrom: state?.rollupFrom, primeFrom: state?.rollupPrimeFrom)
        await holdRetention(writer)
        do {
            try await consumer.seek(partition: partition, to: next)
        } catch {
            // The partition went away again (a Kafka rebalance while we read the lake's state): its
            // new owner starts from the lake's state; we take it up if it is assigned to us again.
            logger.notice("lake writer: partition lost while being assigned", metadata: [
                "log.partition": .stringConvertible(partition), "error": "\(error)",
            ])
            return
        }
        partitions[partition] = writer
        logger.info("lake writer: partition assigned", metadata: ["log.partition": .stringConvertible(partition), "lake.next_offset": .stringConvertible(next)])
    }

    /// Clears an intent that starts above the lake's state (read as `state`), deleting its batch
    /// files first. No state covers them (a batch's intent is written over the state at its
    /// `from`, so the state went back or away since: a lake emptied or restored under a running
    /// writer), and the writer goes on from the state's offset, where its batches end elsewhere:
    /// the files stayed beside the new ones under other names, every row of them twice for good
    /// (an outside review, 2026-12-08: 2,500 rows for 2,000 events). Its rollup files are not
    /// deleted: the batches that write the range again write them again.
    ///
    /// The state is read again first: an intent written by another writer that committed since
    /// the read (a Kafka rebalance still under way) is that writer's, and is left to it.
    private func clearIntentAboveState(_ intent: LakeCommits.Intent, partition: Int32, state: LakeCommits.State?) async throws {
        let now = try await retrying("read state") { try await self.commits.state(partition) }
        guard now == state else {
            logger.notice("lake writer: the lake's state moved while this writer took the partition; another writer's intent left to it", metadata: [
                "log.partition": .stringConvertible(partition), "lake.from": .stringConvertible(intent.from), "lake.next_offset": .stringConvertible(now?.nextOffset ?? 0),
            ])
            return
        }
        let files = intent.files.filter { $0.hasPrefix("\(kind.name)/") && Self.isBatchFile($0, partition: partition) }
        for path in files {
            try await retrying("delete \(path)") { try await self.store.delete(path) }
        }
        try await retrying("clear intent") { try await self.commits.clearIntent(partition: partition) }
        logger.warning("lake writer: an unfinished batch above the lake's state (the state went back or away since it was written); its files are deleted and the partition is written from the state", metadata: [
            "log.partition": .stringConvertible(partition), "lake.from": .stringConvertible(intent.from), "lake.to": .stringConvertible(intent.to),
            "lake.next_offset": .stringConvertible(state?.nextOffset ?? 0), "lake.files": .stringConvertible(files.count),
        ])
    }

    /// Sets the group's committed offset to the lake's state when they differ. A batch is
    /// committed to the lake first and to the log's group second; a writer that stopped (or lost the
    /// partition) between the two left the group behind the lake, and while the partition had
    /// nothing new its new owner never committed: Kafka's tools and the lag showed events already in
    /// the lake (a probe, 2026-12-03). A group ahead of the lake (this log pointed at a new lake, or
    /// a lake whose state was rebuilt lower) is moved back: retention deletes what the group has
    /// passed, and the lag counted from it showed 0 while the new lake had none of the events (a
    /// probe, 2026-12-03). Best effort: the next batch commits anyway.
    private func alignGroupOffset(_ partition: Int32, to next: Int64, consumer: any LogConsumer) async {
        do {
            let committed = try await consumer.committed()[partition] ?? -1
            guard committed != next, next > 0 || committed > 0 else { return }
            try await consumer.commit([partition: next])
            if committed > next {
                logger.warning("lake writer: the group's offset was ahead of the lake (a new lake for this log, a restored or rebuilt state, or offsets committed by another consumer in the group); moved back to the lake's next_offset, so that retention keeps the records this lake lacks", metadata: [
                    "log.partition": .stringConvertible(partition), "log.committed": .stringConvertible(committed), "lake.next_offset": .stringConvertible(next),
                ])
                return
            }
            if committed < 0 && log.identity == nil {
                // A lake that has written this far, and a group with no offset at all: a new group
                // name on an old lake, or (worse) a topic recreated, or a broker that lost its data
                // (memory storage restarted), whose new records below the lake's offset are never
                // written (a probe: 45,000 acknowledged events, nothing in the lake, no other sign).
                logger.error("lake writer: the group has no offset for a partition the lake has written up to its next_offset; if the topic was recreated or the broker lost its data, the records it holds below that offset will not be written (docs/kafka.md, recreated topics)", metadata: [
                    "log.partition": .stringConvertible(partition), "lake.next_offset": .stringConvertible(next),
                ])
                // An alert, not only a log line: the lag reads 0 and /readyz says ready all the
                // while (an outside review, 2026-12-05: 19,960 acknowledged events after an
                // in-memory broker restarted, nothing else showing it).
                metrics.groupOffsetMissing.increment()
            } else {
                logger.info("lake writer: the group's offset was behind the lake; moved up", metadata: [
                    "log.partition": .stringConvertible(partition), "log.committed": .stringConvertible(committed), "lake.next_offset": .stringConvertible(next),
                ])
            }
        } catch {
            logger.debug("lake writer: could not move the group's offset up to the lake", metadata: [
                "log.partition": .stringConvertible(partition), "error": "\(error)",
            ])
        }
    }

    /// Holds the log's retention at the first record the open hours' rollups are rebuilt from
    /// after a restart (`rollup_prime_from`, else `rollup_from`), before the group's commit moves
    /// past it. A segment group `lake` had read was deleted by age or size (or after a clock step
    /// forward) although the rebuild needed it, and the next restart replaced the open hours'
    /// rollup files, which counted every event, with ones that counted the few records left (an
    /// outside review, 2026-12-06: 103 of 4,003 events). The deduplication window is not held: at
    /// low traffic its 2,000,000 records are days of log, which an age limit set for privacy must
    /// not keep; a restart's deduplication reaches back as far as the log does (docs/lake.md).
    ///
    /// Only for an oldest open hour that started within ``holdHours`` before the wall clock and
    /// not after it: an hour opened while the clock ran ahead, then corrected, stays open until
    /// the clock gets there, and an idle pipeline keeps its last hour open; holding for those
    /// pinned the log past its limits for as long (a regression review: 3.3 MB against a 300 KB
    /// limit, for the 8 days of a clock step). Their rebuild may then be partial, as it was.
    /// Best effort, as the commit: a failure is said and retried at the next batch.
    private func holdRetention(_ writer: PartitionWriter) async {
        guard let rollups = writer.rollups else { return }
        writer.holdCheckedAt = .now
        let held = Self.retentionHold(rollups: rollups, next: writer.next, now: WallClock.micros())
        // Written at every start, so that a hold an earlier run left is moved too.
        guard held != writer.heldFrom else { return }
        let log = self.log
        let topic = kind.topic
        let holder = "\(configuration.group).rollups"
        do {
            try await threadPool.runIfActive { try log.holdRetention(of: topic, from: [writer.partition: held], holder: holder) }
            writer.heldFrom = held
        } catch {
            logger.warning("lake writer: cannot hold the log's retention at the open hours' first records; retried with the next batch", metadata: [
                "log.partition": .stringConvertible(writer.partition), "log.offset": .stringConvertible(held), "error": "\(error)",
            ])
        }
    }

    /// How long after an open hour's start the log's retention is held for it: an hour stays open
    /// until 5 minutes after its end while events flow, and its rebuild reads 11 minutes before it.
    static let holdHours: Int64 = 2

    /// Where ``holdRetention(_:)`` holds the log at `now` (microseconds since 1970): the open hours'
    /// first record while the oldest started within ``holdHours`` before `now` (and not more than
    /// 5 minutes after it), else `next`, which holds nothing the group has not.
    static func retentionHold(rollups: RollupAggregator, next: Int64, now: Int64) -> Int64 {
        guard let hour = rollups.oldestOpenHour, let rollupFrom = rollups.rebuildFrom,
            hour <= now + RollupAggregator.hourMicros / 12, now - hour <= holdHours * RollupAggregator.hourMicros
        else { return next }
        return min(rollups.primeFrom ?? rollupFrom, rollupFrom)
    }

    /// Refuses an embedded log (one partition) that ends before the lake's next offset of this
    /// dataset, before the process claims the lake; ``assign(_:consumer:)`` checks it again, for
    /// every log.
    func refuseLogEndingBeforeLake() async throws {
        guard let written = try await retrying("read state", { try await self.commits.state(0) })?.nextOffset else { return }
        let reader = try log.consumer(for: kind.topic, group: nil)
        let end = await reader.endOffset(partition: 0)
        await reader.close()
        if let end, end < written { throw Self.logEndsBeforeLake(end: end, partition: 0, next: written) }
    }

    /// The refusal of a log that ends before the lake's next offset.
    static func logEndsBeforeLake(end: Int64, partition: Int32, next: Int64) -> LakeError {
        LakeError(.corruptState, """
            the log ends at offset \(end) of partition \(partition), before the lake's next offset \(next): \
            the log was replaced or cut back under this lake (on Kafka: the topic was deleted and made \
            again, or the broker lost its data); nothing was written. Point --lake at a new folder or \
            prefix for this log (docs/runbook.md, "The log ends before the lake")
            """)
    }

    private func warmUp(_ writer: PartitionWriter, rollupFrom: Int64?, primeFrom: Int64?) async throws {
        let window = Int64(writer.dedup.capacity)
        let rollupStart = writer.rollups == nil ? nil : rollupFrom
        // The open hours' sessions are primed from `primeFrom` on (their events before the hours'
        // first record); a state without it (before 2026-12-05) primes what the warm-up reads.
        let primeStart = rollupStart.map { min(primeFrom ?? $0, $0) }
        var start = writer.next - window
        if let primeStart { start = min(start, primeStart - window) }
        start = max(start, 0)
        guard start < writer.next else { return }
        let reader = try log.consumer(for: kind.topic, group: nil)
        defer { Task { await reader.close() } }
        // A log that cannot be read now (a broker down, or stalled) is waited for, saying so every
        // 30 s: the warm-up gave up after 10 s of empty polls, or stopped the writer (and `store`)
        // on a metadata timeout, and a warm-up cut short lets client retries be written twice (a
        // probe: 150 of 1,200 resent events, after a broker paused for 14 s).
        var lastSaid = ContinuousClock.now
        func waitForLog(_ why: String) async throws {
            if ContinuousClock.now - lastSaid >= .seconds(30) {
                lastSaid = ContinuousClock.now
                logger.warning("lake writer: the warm-up waits for the log (\(why)); the partition is written once it is read", metadata: [
                    "log.partition": .stringConvertible(writer.partition),
                ])
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        // A new Kafka reader knows its partitions only after its first poll: retry the seek until then.
        var positioned = false
        var answered = 0
        while answered < 100 {
            try Task.checkCancellation()
            do {
                try await reader.seek(partition: writer.partition, to: start)
                positioned = true
                break
            } catch {
                do {
                    _ = try await reader.poll(maxRecords: 1, timeout: .milliseconds(100))
                    answered += 1
                } catch where error.code == .unavailable {
                    try await waitForLog("\(error)")
                } catch {
                    answered += 1
                }
            }
        }
        guard positioned else {
            logger.warning("lake writer: cannot read the log to warm up; deduplication starts empty", metadata: [
                "log.partition": .stringConvertible(writer.partition),
            ])
            return
        }
        var position = start
        var idle = 0
        var firstRead: Int64?
        while position < writer.next {
            try Task.checkCancellation()
            let poll: LogPoll
            do {
                poll = try await reader.poll(maxRecords: 100_000, timeout: .milliseconds(200))
            } catch where error.code == .unavailable {
                try await waitForLog("\(error)")
                continue
            } catch {
                guard error.code == .corrupt else { throw error }
                // A damaged record among those already written: step past it. Its events are in the
                // lake (written before it, or stepped past and kept when first met, and counted
                // then), so it is neither kept nor counted again; but a disk that damaged records
                // after they were written is news, and what the warm-up feeds on misses them: said
                // at warning level (it was silent, a probe). One that cannot be stepped past ends the
                // warm-up with what it has.
                if let damaged = try await reader.skipDamagedRecord() {
                    position = damaged.offset + damaged.records
                    // Below the lake's next offset, but not necessarily in the lake: records cut or
                    // deleted before the writer read them were stepped past then, and said missing
                    // (this said "that the lake already holds" of those too, a review of the runbook).
                    let what = damaged.bytes.isEmpty
                        ? "records missing from the log (a segment deleted, or records cut by a recovery), below the lake's next_offset: the lake holds those the writer had written before they went; any it had not were said missing when it went past them (`records of the log are missing; their events are not in the lake`, at error level)"
                        : "damaged records of the log, below the lake's next_offset: the lake holds their events if the writer had written them before the damage; any met damaged then were kept under _playhead/damaged/ and counted"
                    logger.warning("lake writer: the warm-up stepped past \(what); deduplication across this restart and the open hours' rollups do not see them", metadata: [
                        "log.partition": .stringConvertible(writer.partition), "log.offset": .stringConvertible(damaged.offset), "log.records": .stringConvertible(damaged.records),
                        "lake.next_offset": .stringConvertible(writer.next),
                    ])
                    continue
                }
                logger.warning("lake writer: the warm-up cannot read the log past a damaged record; deduplication and the open hours' rollups start from what was read", metadata: [
                    "log.partition": .stringConvertible(writer.partition), "error": "\(error)",
                ])
                break
            }
            if poll.batches.isEmpty {
                // Nothing more below the lake's offset only when the log says it is at its end
                // (a log cut back under the lake); otherwise it is slow, and is waited for.
                if await reader.caughtUp() {
                    // At the log's end below the lake's offset: on Kafka, a topic made again or a
                    // broker that lost its data (the start's check cannot ask Kafka for the end;
                    // this read just learnt it). Going on from the lake's offset skipped every new
                    // record below it: a review restarted an in-memory broker under load, and
                    // 155,389 acknowledged events never reached the lake, with the lag at 0 and
                    // /readyz ready. (Offsets that hold no record, below a high watermark at the
                    // lake's offset or past it, are not this: the end is what counts.)
                    if let end = await reader.endOffsetAsLastRead(partition: writer.partition), end < writer.next {
                        throw Self.logEndsBeforeLake(end: end, partition: writer.partition, next: writer.next)
                    }
                    break
                }
                idle += 1
                if idle % 25 == 0 { try await waitForLog("no record for \(idle / 5) s, and the log is not at its end") }
                continue
            }
            idle = 0
            writer.rollups?.replaying = true
            defer { writer.rollups?.replaying = false }
            for batch in poll.batches where batch.partition == writer.partition {
                try batch.forEachRecord { offset, value in
                    guard offset >= position else { return }
                    if firstRead == nil { firstRead = offset }
                    // The log holds nothing more below the lake's offset (the lake is older than
                    // what retention kept): done. The warm-up waited for 50 empty polls (10 s)
                    // before, and its first record counted as the lake's offset (a probe).
                    guard offset < writer.next else {
                        position = writer.next
                        return
                    }
                    position = offset + 1
                    guard let record = try? EventRecordView(value) else { return }
                    let isNew = writer.dedup.observe(hash64(record.eventIDBytes))
                    if isNew, let rollupStart {
                        if offset >= rollupStart {
                            writer.rollups?.add(record, offset: offset)
                        } else if primeFrom == nil || offset >= primeStart! {
                            writer.rollups?.prime(record, offset: offset)
                        }
                    }
                }
            }
        }
        _ = writer.rollups?.takeChanges()
        // Retention (a small --log-retention-bytes) may have deleted records the warm-up needs. Not
        // silently: the open hours' rollup files will count only what the log still holds, and
        // deduplication across this restart reaches back only as far (docs/lake.md).
        let kept = firstRead ?? writer.next
        if let rollupStart, kept > rollupStart {
            // Error, not warning: the rollup files of the open hours, right until this restart, are
            // replaced by smaller ones (a probe: 2.9 M events where events/ held 11.7 M, after
            // restarts with a log retention of less than an hour of traffic).
            logger.error("lake writer: the log no longer holds the open hours' first records; their rollups are rebuilt from what it holds and may count less than events/ (use the SQL over events/ for those hours, docs/lake.md; on Kafka, keep the topic's retention above two hours of traffic)", metadata: [
                "log.partition": .stringConvertible(writer.partition), "lake.rollup_from": .stringConvertible(rollupStart), "log.first_kept": .stringConvertible(kept),
            ])
        }
        if let rollupStart, let primeStart, primeFrom != nil, kept > primeStart, kept <= rollupStart {
            // The open hours' counts are whole, but sessions whose events before the hour are gone
            // measure their first interval in it from nothing.
            logger.warning("lake writer: the log no longer holds the sessions' events of the minutes before the open hours; their rollups' watch time may miss each such session's first interval (use the SQL over events/ for those hours, docs/lake.md)", metadata: [
                "log.partition": .stringConvertible(writer.partition), "lake.rollup_prime_from": .stringConvertible(primeStart), "log.first_kept": .stringConvertible(kept),
            ])
        }
        if kept > max(writer.next - window, 0) && writer.dedup.capacity > 0 {
            logger.notice("lake writer: the log holds fewer records than the deduplication window; after this restart it reaches back \(max(writer.next - kept, 0)) records", metadata: [
                "log.partition": .stringConvertible(writer.partition), "log.first_kept": .stringConvertible(kept),
            ])
        }
        logger.debug("lake writer: warmed up", metadata: ["log.partition": .stringConvertible(writer.partition), "lake.from": .stringConvertible(start)])
    }

    /// Writes the partition's open batch: files, then the state, then the log commit.
    /// `redoRead`: a record at or past a redo's end was read, so its range is whole even where
    /// the records read end before it.
    private func flush(_ writer: PartitionWriter, consumer: any LogConsumer, redoRead: Bool = false) async throws {
        guard let last = writer.records.lastOffset else {
            if writer.forcedEnd != nil {
                // The intent's records are gone from the log (retention): nothing to redo.
                writer.forcedEnd = nil
                try await retrying("clear intent") { try await self.commits.clearIntent(partition: writer.partition) }
            } else if let to = writer.steppedTo, to > writer.next {
                // Only damage or missing records since the last batch: the state moves past them.
                try await ensureStillWriting(writer, from: writer.next, consumer: consumer)
                try await moveState(writer, to: to, consumer: consumer, written: [], from: writer.next)
            }
            return
        }
        // A redo of an unfinished batch writes the intent's whole range or nothing: its name and
        // the state cover the range to the intent's end. A graceful stop whose last reads ended
        // before it (a slow log, a read error, the 5 s of reading at a stop) wrote the part read
        // under the whole range's name and moved the state to its end: the rest of the range was
        // in no file, and never written (an outside review of the code: 602,500 of 1,200,000
        // acknowledged events). Left to the next start, which redoes it from the log.
        // (Not when a record past the range was read: that range is whole, and returning here
        // would read that record again, and again, for ever; a review.)
        if let end = writer.forcedEnd, !redoRead, max(last + 1, writer.steppedTo ?? 0) < end {
            logger.warning("lake writer: stopping in the middle of redoing an unfinished batch; the next start redoes it from the log", metadata: [
                "log.partition": .stringConvertible(writer.partition), "lake.from": .stringConvertible(writer.next), "lake.to": .stringConvertible(end), "log.read_up_to": .stringConvertible(last + 1),
            ])
            return
        }
        let from = writer.next
        // A batch before damage stepped past ends after it (its name's range covers the offsets the
        // damage held), so that the state does not stop in front of it.
        let to = max(last + 1, writer.forcedEnd ?? 0, writer.forcedEnd == nil ? writer.steppedTo ?? 0 : 0)
        let started = ContinuousClock.now
        let records = writer.records
        let kind = self.kind
        let configuration = self.configuration
        let encoded = try await threadPool.runIfActive {
            try LakeBatchEncoder.encode(
                kind: kind, records: records, dedup: &writer.dedup, rollups: writer.rollups, configuration: configuration,
                parts: 2,
                dataPath: { LakePaths.dataFile(dataset: kind.name, hourStart: $0, partition: writer.partition, from: from, to: to) },
                rollupPath: { LakePaths.rollupFile(hourStart: $0, partition: writer.partition) },
                damagedPath: { LakePaths.damagedRecord(dataset: kind.name, partition: writer.partition, offset: $0) }
            )
        }
        try await ensureStillWriting(writer, from: from, consumer: consumer)
        // A redo writes the unfinished attempt's names again, unless the batch is split otherwise
        // (an hour of 200,000 rows or more, counted after deduplication, is written as two files:
        // a restart with another --dedup-window, or a warm-up that reaches less far back, changes
        // that). The attempt's batch files that the redo does not write are deleted before the
        // state moves on, and stay in the new intent until then; they were left, and every row of
        // their hour was in the lake twice (a probe, 2026-12-04: 400,000 rows for 199,990 events).
        let written = Set(encoded.files.map(\.path))
        let stale = writer.forcedEnd == nil ? [] : writer.redoFiles.filter {
            !written.contains($0) && $0.hasPrefix("\(kind.name)/") && Self.isBatchFile($0, partition: writer.partition)
        }
        let intent = LakeCommits.Intent(from: from, to: to, files: encoded.files.map(\.path) + stale)
        try await retrying("write intent") { try await self.commits.writeIntent(intent, partition: writer.partition) }
        // The hours' rollup files after the check below, the batch's other files before it. A
        // rollup file has one name per hour and partition, and no later check can undo it: written
        // before the check, the rollups of a writer whose writes the store held up (S3 retrying)
        // while the partition's new owner went on replaced that owner's counts of the hour with its
        // own older, smaller ones, for good once the hour had closed (an outside review,
        // 2026-12-08). They are in the intent all the same: a crash before the state redoes them.
        let rollupFiles = encoded.files.filter { $0.path.hasPrefix("rollups/") }
        for file in encoded.files where !file.path.hasPrefix("rollups/") {
            try await retrying("write \(file.path)") { try await self.store.put(file.path, file.bytes) }
        }
        for path in stale {
            try await retrying("delete \(path)") { try await self.store.delete(path) }
            logger.notice("lake writer: deleted a file of the unfinished batch that the redo wrote under other names", metadata: [
                "log.partition": .stringConvertible(writer.partition), "lake.path": "\(path)",
            ])
        }
        // Once more before the state: a pause during the writes (the files a new owner redoing this
        // batch from its intent writes too, under the same names) must not move the state back.
        guard await consumer.stillOwns(writer.partition, committing: from), try await stateUnmoved(writer) else {
            try await removeOverlapped(encoded.files.map(\.path), partition: writer.partition, from: from, to: to)
            throw PartitionsLost(partition: writer.partition)
        }
        for file in rollupFiles {
            try await retrying("write \(file.path)") { try await self.store.put(file.path, file.bytes) }
        }
        try await moveState(writer, to: to, consumer: consumer, written: encoded.files.map(\.path), from: from)
        try await retrying("clear intent") { try await self.commits.clearIntent(partition: writer.partition) }
        writer.forcedEnd = nil
        writer.redoFiles = []
        writer.records = RecordBuffer(reservingCapacity: records.byteCount, records: records.count)
        writer.openedAt = nil
        metrics.flushed(encoded, duration: ContinuousClock.now - started)
        let unreadable = encoded.unreadable
        if let first = unreadable.first {
            // Written with the batch, under its intent: the bytes are in the lake before the offset moves on.
            logger.error("lake writer: skipped records of the log that are not \(kind.name) records (on Kafka: messages another producer wrote to the topic); their bytes are kept in the lake", metadata: [
                "log.partition": .stringConvertible(writer.partition), "log.records": .stringConvertible(unreadable.count), "lake.path": "\(first.path)",
                "reason": "\(kind.unreadableReason(first.bytes))",
            ])
            metrics.damaged.increment(by: unreadable.count)
        }
        logger.debug("lake writer: batch written", metadata: [
            "log.partition": .stringConvertible(writer.partition), "lake.from": .stringConvertible(from), "lake.to": .stringConvertible(to),
            "lake.rows": .stringConvertible(encoded.rows), "lake.files": .stringConvertible(encoded.files.count), "lake.duplicates": .stringConvertible(encoded.duplicates),
        ])
    }

    /// Before the lake's state of the writer's partition moves: the lake is still this process's
    /// log's, and the partition still this writer's. On Kafka, a process paused past the session
    /// timeout has lost its partitions without having polled the news: its batch is the new owner's
    /// now, and writing it put duplicate rows in the lake and moved the state back (a probe: 2,146
    /// rows after a 25 s SIGSTOP).
    private func ensureStillWriting(_ writer: PartitionWriter, from: Int64, consumer: any LogConsumer) async throws {
        if let identity = log.identity {
            try await checkClaim(for: identity, claiming: false)
        }
        guard await consumer.stillOwns(writer.partition, committing: from), try await stateUnmoved(writer) else {
            throw PartitionsLost(partition: writer.partition)
        }
    }

    /// Commits the lake's state of the writer's partition at `to` (after a batch's files, `written`,
    /// are in the lake), then holds the log's retention and commits the group's offset there.
    private func moveState(_ writer: PartitionWriter, to: Int64, consumer: any LogConsumer, written: [String], from: Int64) async throws {
        let state = LakeCommits.State(nextOffset: to, rollupFrom: writer.rollups?.rebuildFrom, rollupPrimeFrom: writer.rollups?.primeFrom)
        do {
            // Only over the state the check just read: a pause since then (past the session, while
            // the new owner committed) must not move the state back.
            writer.stateBytes = try await retrying("commit state") {
                try await self.commits.commit(state, partition: writer.partition, replacing: writer.stateBytes)
            }
        } catch let error as LakeError where error.code == .otherWriter {
            _ = try await stateUnmoved(writer)
            try await removeOverlapped(written, partition: writer.partition, from: from, to: to)
            throw PartitionsLost(partition: writer.partition)
        }
        writer.next = to
        if let stepped = writer.steppedTo, stepped <= to { writer.steppedTo = nil }
        await holdRetention(writer)
        do {
            try await consumer.commit([writer.partition: to])
            writer.commitPending = nil
        } catch {
            // The lake's state is the truth; the group offset only drives retention and lag.
            writer.commitPending = to
            writer.commitTriedAt = .now
            writer.commitRetryDelay = .seconds(1)
            logger.warning("lake writer: log commit failed; it is retried while no batch comes (after 1 s, then less often, up to every 30 s), and with the next batch", metadata: ["error": "\(error)"])
        }
    }

    /// Commits the group offset a failed commit left (``PartitionWriter/commitPending``), once.
    private func retryCommit(_ writer: PartitionWriter, consumer: any LogConsumer) async {
        guard let pending = writer.commitPending else { return }
        writer.commitTriedAt = .now
        do {
            try await consumer.commit([writer.partition: pending])
            writer.commitPending = nil
            logger.notice("lake writer: log commit succeeded again", metadata: ["log.partition": .stringConvertible(writer.partition), "log.offset": .stringConvertible(pending)])
        } catch {
            // Said when it failed; tried again later, less often each time (a broker's coordinator
            // that cannot be reached answers a commit slowly).
            writer.commitRetryDelay = min(writer.commitRetryDelay * 2, .seconds(30))
        }
    }

    /// Whether the lake's state of the writer's partition is still where this writer left it (its
    /// `next`): no other writer has committed a batch of the partition since. The group's answer
    /// to a commit is not enough on every broker: Tansu took the commit of a `store` resumed after
    /// a pause past the session timeout, whose partition another `store` had written on meanwhile,
    /// and the resumed one moved the lake's state back over that writer's batches (duplicate rows
    /// once the state was redone; `KafkaPipelineTests`, on a loaded machine).
    private func stateUnmoved(_ writer: PartitionWriter) async throws -> Bool {
        let (state, bytes) = try await retrying("read state") { try await self.commits.stateAndBytes(writer.partition) }
        writer.stateBytes = bytes
        let unmoved = (state?.nextOffset ?? 0) == writer.next
        if !unmoved, state == nil {
            logger.warning("lake writer: the lake's state of this partition is gone (the lake's folder or bucket emptied, or made again): this writer starts over from the lake as it is, from offset 0 (or the log's earliest record) when it holds no file of the partition", metadata: [
                "log.partition": .stringConvertible(writer.partition), "lake.expected": .stringConvertible(writer.next),
            ])
        } else if !unmoved {
            logger.warning("lake writer: another writer has committed batches of this partition since this one took it", metadata: [
                "log.partition": .stringConvertible(writer.partition), "lake.next_offset": .stringConvertible(state?.nextOffset ?? 0), "lake.expected": .stringConvertible(writer.next),
            ])
        }
        return unmoved
    }

    /// Deletes the files just written of a batch `[from, to)` that another writer has committed
    /// under other names meanwhile. A batch's writes held up by the store (S3 retrying through an
    /// outage) or by a pause, while a rebalance gave the partition to another process, ended after
    /// that process had written the same records from the same `from`: the check before the state
    /// kept the state, but the files stayed, every row of them a second time in the lake (probe CH,
    /// 2026-12-04: 14 events in `p0-…697-…711` and `p0-…697-…749`).
    ///
    /// Only on evidence, since a file of the same name may be the other writer's (a redo of this
    /// batch's intent writes the same names): the state has moved past `from`, so the other writer
    /// wrote a batch from `from`; and a file of this partition from `from` to another offset sits
    /// beside one of ours, so that batch ended elsewhere and none of its names is one of ours. The
    /// batch's first records are in both batches, so their hour's folder holds both names (unless
    /// the other dropped every record of that hour, as duplicates; then the files stay, as before).
    ///
    /// Also when the state is gone and the batch starts past offset 0 (its `from` came from a state
    /// that was there): the lake was emptied or its state deleted under this writer, no state
    /// covers the files, and the writer starts over from the lake as it is. Kept, they stayed
    /// beside the batches written again from offset 0, every row of them twice (an outside
    /// review, 2026-12-08: 2,500 rows for 2,000 events on S3). No other writer writes these
    /// names meanwhile: one that finds no state starts from offset 0 (or refuses, finding files).
    private func removeOverlapped(_ paths: [String], partition: Int32, from: Int64, to: Int64) async throws {
        let state = try await retrying("read state") { try await self.commits.state(partition) }
        let batchFiles = paths.filter { Self.isBatchFile($0, partition: partition) }
        if state == nil, from > 0 {
            for path in batchFiles {
                try await retrying("delete \(path)") { try await self.store.delete(path) }
            }
            logger.warning("lake writer: deleted the files of a batch whose state is gone (the lake's folder or bucket emptied, or its state deleted, during the batch's writes)", metadata: [
                "log.partition": .stringConvertible(partition), "lake.from": .stringConvertible(from), "lake.to": .stringConvertible(to), "lake.files": .stringConvertible(batchFiles.count),
            ])
            return
        }
        guard let next = state?.nextOffset, next > from else { return }
        let start = LakePaths.batchFileName(partition: partition, from: from)
        let ours = LakePaths.batchFileName(partition: partition, from: from, to: to)
        var other: String?
        for folder in Set(batchFiles.map { $0.split(separator: "/").dropLast().joined(separator: "/") }).sorted() {
            let names = try await retrying("list \(folder)/") { try await self.store.list(prefix: "\(folder)/\(start)") }
            if let found = names.first(where: { !($0.split(separator: "/").last ?? "").hasPrefix(ours) }) {
                other = found
                break
            }
        }
        guard let other else { return }
        for path in batchFiles {
            try await retrying("delete \(path)") { try await self.store.delete(path) }
        }
        logger.warning("lake writer: deleted the files of a batch whose writes ended after another writer had committed its records under other names (a rebalance while the store held the writes up, or this process was paused)", metadata: [
            "log.partition": .stringConvertible(partition), "lake.from": .stringConvertible(from), "lake.to": .stringConvertible(to), "lake.files": .stringConvertible(batchFiles.count),
            "lake.other_file": "\(other)", "lake.next_offset": .stringConvertible(next),
        ])
    }

    /// Runs `operation` until it succeeds: the lake may be unreachable for a while (S3 down), and the
    /// data waits in the log meanwhile. Gives up when the process is shutting down, and at once on
    /// a state or intent object that is there but unreadable: reading it again gives the same bytes,
    /// so retrying would only hide it (the lake writer stops, and so `serve` or `store`, with the
    /// object's name; docs/runbook.md, "An unreadable lake state").
    /// `retryIf`: which errors are retried (all but the permanent ones by default); others are thrown.
    private func retrying<T>(_ what: String, retryIf: (any Error) -> Bool = { _ in true }, _ operation: () async throws -> T) async throws -> T {
        var delay = Duration.milliseconds(200)
        var attempt = 0
        while true {
            do {
                let result = try await operation()
                if attempt > 0 {
                    health.set(kind.name, nil)
                    // The end of an outage, said once (it was visible only as warnings that stopped).
                    logger.info("lake writer: \(what) succeeded again; writing goes on", metadata: ["lake.failed_attempts": .stringConvertible(attempt)])
                }
                return result
            } catch where LakeError.isPermanent(error) || !retryIf(error) {
                throw error
            } catch where Task.isCancelled {
                throw error  // stopping (the shutdown timeout): not a failure to report or retry
            } catch {
                attempt += 1
                health.set(kind.name, "cannot \(what) in \(store.displayName) (\(attempt) times in a row; retrying): \(error)")
                metrics.flushFailed()
                logger.warning("lake writer: \(what) failed; retrying", metadata: [
                    "error": "\(error)", "lake.attempt": .stringConvertible(attempt), "lake.retry_in": "\(delay)",
                ])
                if Task.isCancelled || (Task.isShuttingDownGracefully && attempt >= 5) { throw error }
                await Self.wait(delay)
                delay = min(delay * 2, configuration.maxRetryDelay)
            }
        }
    }
}

/// The lake writer's instruments (docs/metrics.md).
struct LakeMetrics: Sendable {
    let files: Counter
    let bytes: Counter
    let rows: Counter
    let rollupFiles: Counter
    let rollupBytes: Counter
    let rollupRows: Counter
    let duplicates: Counter
    let flushDuration: Metrics.Timer
    let failures: Counter
    /// Damaged records of the log skipped (and kept in the lake), `playhead_log_damaged_records_total{consumer="lake"}`.
    let damaged: Counter
    /// Partitions taken up whose group had no offset though the lake had written them,
    /// `playhead_lake_group_offset_missing_total`.
    let groupOffsetMissing: Counter
    let lastFlush: Gauge

    init(dataset: String, flushInterval: Duration) {
        files = Counter(label: "playhead_lake_files_written_total", dimensions: [("dataset", dataset)])
        bytes = Counter(label: "playhead_lake_bytes_written_total", dimensions: [("dataset", dataset)])
        rows = Counter(label: "playhead_lake_rows_written_total", dimensions: [("dataset", dataset)])
        rollupFiles = Counter(label: "playhead_lake_files_written_total", dimensions: [("dataset", "rollups")])
        rollupBytes = Counter(label: "playhead_lake_bytes_written_total", dimensions: [("dataset", "rollups")])
        rollupRows = Counter(label: "playhead_lake_rows_written_total", dimensions: [("dataset", "rollups")])
        duplicates = Counter(label: "playhead_lake_duplicates_dropped_total")
        flushDuration = Metrics.Timer(label: "playhead_lake_flush_duration_seconds")
        failures = Counter(label: "playhead_lake_flush_failures_total")
        damaged = Counter(label: "playhead_log_damaged_records_total", dimensions: [("consumer", "lake")])
        groupOffsetMissing = Counter(label: "playhead_lake_group_offset_missing_total")
        lastFlush = Gauge(label: "playhead_lake_last_flush_timestamp_seconds")
        // Until the first flush, the writer's start: "seconds since the last flush" is then the time
        // the writer has gone without one (0 read as 1970, and fired `LakeFlushFailing` at once).
        lastFlush.record(Date().timeIntervalSince1970)
        // For LakeFlushFailing: a writer told to flush every 15 minutes had gone 10 minutes without
        // a flush, events waiting, in every cycle, and paged (an outside review).
        Gauge(label: "playhead_lake_flush_interval_seconds")
            .record(Double(flushInterval.components.seconds) + Double(flushInterval.components.attoseconds) / 1e18)
    }

    func flushed(_ batch: EncodedBatch, duration: Duration) {
        for file in batch.files {
            // Rollup files are counted as `rollups` (their bytes were counted as `events`).
            if file.dataset == "rollups" {
                rollupFiles.increment()
                rollupBytes.increment(by: file.bytes.count)
                rollupRows.increment(by: file.rows)
            } else if file.dataset == LakeFile.damaged {
                continue  // counted as damaged records by the caller
            } else {
                files.increment()
                bytes.increment(by: file.bytes.count)
            }
        }
        rows.increment(by: batch.rows)
        if batch.duplicates > 0 { duplicates.increment(by: batch.duplicates) }
        flushDuration.recordNanoseconds(Int64(duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
        lastFlush.record(Date().timeIntervalSince1970)
    }

    func flushFailed() { failures.increment() }
}
