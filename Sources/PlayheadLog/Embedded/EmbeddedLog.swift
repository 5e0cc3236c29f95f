#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle

/// The embedded, single-node durable log: segment files per topic, group commit on a dedicated
/// writer thread per topic, consumer groups with atomically committed offsets, retention.
///
/// See docs/log-format.md for the on-disk format and the recovery rules.
public final class EmbeddedLog: LogBackend, Service, Sendable {
    public let configuration: EmbeddedLogConfiguration
    /// Whether this process only reads (another process writes).
    public let isReadOnly: Bool
    private let logger: Logger
    private let disk: DiskMonitor
    private let lockFD: Int32

    private struct State {
        var topics: [String: TopicState] = [:]
        var writers: [String: TopicWriter] = [:]
        var closed = false
        /// `.lake-writer.lock`, held by the process whose lake writer reads this log (or -1).
        var lakeWriterLockFD: Int32 = -1
        /// By topic: when retention last said which groups keep it over its limits.
        var retentionHeldSaid: [String: Date] = [:]
    }
    private let state: NIOLockedValueBox<State>

    public var displayName: String { "file:\(configuration.directory)" }

    /// The log's random id, in `<dir>/id`: made when the log is first opened for writing, read by
    /// readers (`nil` for a reader that starts before any writer made it, until one does). The
    /// lake's state records it, so that two logs never write one lake (docs/lake.md, "One log per lake").
    public var identity: String? {
        if let known = knownIdentity.withLockedValue({ $0 }) { return known }
        guard isReadOnly, let found = Files.existingLogIdentity(configuration.directory) else { return nil }
        knownIdentity.withLockedValue { $0 = found }
        return found
    }
    private let knownIdentity: NIOLockedValueBox<String?>

    /// A reader of a log that no writer has made yet: its ``identity`` comes when one does.
    public var awaitsIdentity: Bool { isReadOnly && identity == nil }

    private init(configuration: EmbeddedLogConfiguration, readOnly: Bool, lockFD: Int32, identity: String?, logger: Logger) {
        self.configuration = configuration
        self.knownIdentity = NIOLockedValueBox(identity)
        self.isReadOnly = readOnly
        self.lockFD = lockFD
        self.logger = logger
        self.disk = DiskMonitor(directory: configuration.directory, minimumFreeBytes: configuration.minimumFreeBytes, logger: logger)
        self.state = NIOLockedValueBox(State())
    }

    /// Opens (creating if needed) the log for writing: takes the directory's lock, and recovers the
    /// torn tail of every topic's last segment.
    public static func open(_ configuration: EmbeddedLogConfiguration, logger: Logger) throws(LogError) -> EmbeddedLog {
        var configuration = configuration
        configuration.directory = normalized(configuration.directory)
        let root = configuration.directory
        try Files.makeDirectories(root)
        try Files.makeDirectories(root + "/groups")
        let lockFD = try Files.open(root + "/.lock", O_RDWR | O_CREAT)
        if flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            Glibc.close(lockFD)
            throw LogError(code: .unavailable, message: "another process (an `ingest` or a `serve`) writes the log \(root) (\(root)/.lock is locked): one writer per log; stop the other first, or give this one a data folder of its own (--data-dir or --log)")
        }
        let identity: String
        do throws(LogError) {
            identity = try Files.logIdentity(root)
        } catch {
            Glibc.close(lockFD)
            throw error
        }
        let log = EmbeddedLog(configuration: configuration, readOnly: false, lockFD: lockFD, identity: identity, logger: logger)
        if configuration.partitions != 1 {
            logger.notice("log: the embedded log keeps one partition per topic; ignoring partitions=\(configuration.partitions)")
        }
        do throws(LogError) {
            // Topics this log has written: a folder that holds segments, or one of Playhead's own
            // topics. Any other folder is left alone: `lost+found` of a log at the root of its
            // own file system was opened as a topic, made segments in, and a writer that was not
            // root could not start (an outside review of the code).
            for name in topicNames(root) where [LogTopic.events.name, LogTopic.rejected.name].contains(name) || Self.holdsSegments(root + "/" + name) {
                _ = try log.writer(for: name)
            }
        } catch {
            log.close()
            throw error
        }
        _ = log.disk.checkBeforeWrite()
        return log
    }

    /// Opens the log to read it beside a writer in another process: consumers tail the segment files
    /// (looking for new records every ``EmbeddedLogConfiguration/readOnlyPollInterval``) and may commit
    /// their groups' offsets; ``producer(for:)`` throws. Creates the directory if it does not exist yet
    /// (the reader may start before the writer).
    public static func openReadOnly(_ configuration: EmbeddedLogConfiguration, logger: Logger) throws(LogError) -> EmbeddedLog {
        var configuration = configuration
        configuration.directory = normalized(configuration.directory)
        // The reader may start before the writer: make the directory so that both agree on it.
        try Files.makeDirectories(configuration.directory)
        let identity = Files.existingLogIdentity(configuration.directory)
        let log = EmbeddedLog(configuration: configuration, readOnly: true, lockFD: -1, identity: identity, logger: logger)
        log.disk.refreshGauges()
        return log
    }

    /// Takes `<dir>/.lake-writer.lock` for this process's lake writer (`serve`, `store`), until
    /// ``close()``: one lake writer per embedded log. A second one (a `store` started on the data
    /// folder of a running `serve`, or two `store` beside one `ingest`) is refused at its start;
    /// before 2026-12-04 it ran, and the lake's claim then stopped the *first* one, `serve` with its
    /// HTTP edge included (probe M). Where the file cannot be made (a read-only folder), nothing is
    /// checked here; the lake's claim still is.
    public func lockForLakeWriter() throws(LogError) {
        let path = configuration.directory + "/.lake-writer.lock"
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            logger.notice("log: cannot take \(path) (\(String(cString: strerror(errno)))): a second lake writer on this log is found by the lake's claim only")
            return
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(fd)
            throw LogError(
                code: .unavailable,
                message: "another process (a `serve` or a `store`) writes the lake from the log \(configuration.directory) (\(path) is locked): one lake writer per log, either `serve` alone (it writes the lake itself) or `ingest` with one `store`; stop the other first"
            )
        }
        let previous = state.withLockedValue { state in
            defer { state.lakeWriterLockFD = fd }
            return state.lakeWriterLockFD
        }
        if previous >= 0 { Glibc.close(previous) }
    }

    /// For a reader: why there is nothing to read yet, when no writer has ever made this log (no
    /// `id` file), or nil. A `store` or `observe` whose `--data-dir` had a typo waited for good,
    /// ready and silent (a probe).
    public var waitingForWriter: String? {
        guard isReadOnly, Files.existingLogIdentity(configuration.directory) == nil else { return nil }
        // Segments but no id: a log written by a release before 2026-12-03, which made none (it
        // said "no log has been written", beside 10,000 records, a probe).
        let segments = (try? FileManager.default.contentsOfDirectory(atPath: configuration.directory + "/events")) ?? []
        if segments.contains(where: { $0.hasSuffix(".log") }) {
            return "the log at \(configuration.directory) holds records but has no id file: it was written by a Playhead release before 2026-12-03, which gave logs none; start this release's `playhead ingest` (or `serve`) on it once, whose writer gives it one, and this reader goes on (docs/runbook.md, \"Upgrading\")"
        }
        return "no log has been written at \(configuration.directory) yet: waiting for a writer (`playhead ingest` with this --data-dir or --log); check the path"
    }

    /// Whether no writer has ever written at this log's directory: no `id` file and no topic with a
    /// segment. A folder that is not a log (a `--data-dir` given as `--log`): `log dump` printed
    /// nothing there and exited 0, as for an empty log (until 2026-12-05).
    public var isNeverWritten: Bool {
        let root = configuration.directory
        guard Files.existingLogIdentity(root) == nil else { return false }
        return !Self.topicNames(root).contains { Self.holdsSegments(root + "/" + $0) }
    }

    private static func holdsSegments(_ folder: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).contains { $0.hasSuffix(".log") }
    }

    private static func normalized(_ directory: String) -> String {
        var directory = directory
        while directory.count > 1 && directory.hasSuffix("/") { directory.removeLast() }
        return directory
    }

    private static func topicNames(_ root: String) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        return names.filter { name in
            guard name != "groups", (try? GroupOffsets.validate(name, what: "topic")) != nil else { return false }
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: root + "/" + name, isDirectory: &isDirectory) && isDirectory.boolValue
        }.sorted()
    }

    private static func validateTopic(_ name: String) throws(LogError) {
        try GroupOffsets.validate(name, what: "topic")
        if name == "groups" { throw LogError(code: .invalidArgument, message: "'groups' cannot be a topic name") }
    }

    // MARK: Topics

    /// The writer of `name`, recovering its last segment the first time.
    private func writer(for name: String) throws(LogError) -> TopicWriter {
        let result: Result<TopicWriter, LogError> = state.withLockedValue { state in
            if state.closed { return .failure(LogError(code: .closed, message: "the log \(configuration.directory) is closed")) }
            if let writer = state.writers[name] { return .success(writer) }
            do throws(LogError) {
                let writer = try recover(name)
                state.topics[name] = writer.topic
                state.writers[name] = writer
                writer.start()
                return .success(writer)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Scans the last segment of a topic, cuts off a torn or corrupt tail, and opens it for appending.
    private func recover(_ name: String) throws(LogError) -> TopicWriter {
        let directory = configuration.directory + "/" + name
        try Files.makeDirectory(directory)
        // A reader's request to close the segment of the previous run: recovery cuts what it named.
        unlink(directory + "/roll-request")
        var segments = try Files.checkedSegments(directory)
        if segments.isEmpty {
            let fd = try Files.open(Files.segmentPath(directory, 0), O_RDWR | O_CREAT)
            Glibc.close(fd)
            try Files.syncDirectory(directory)
            try Files.syncDirectory(configuration.directory)
            segments = [0]
        }
        let base = segments.last!
        let path = Files.segmentPath(directory, base)
        // The previous run's durable end, read before the tail is cut: bytes it published as durable
        // are damage when invalid, never a torn write.
        let durableEnd = DurableEndWriter(directory: directory, logger: logger)
        let previous = durableEnd?.previous
        let fd = try Files.open(path, O_RDWR)
        let scan: SegmentScanner.Result
        do throws(LogError) {
            scan = try SegmentScanner.scan(fd, path: path, verifyChecksums: true, maxRecordBytes: configuration.maxRecordBytes)
        } catch {
            Glibc.close(fd)
            throw error
        }
        let fileSize = Files.fileSize(fd)
        if scan.validBytes < fileSize {
            if Files.isZeroFilled(fd, from: scan.validBytes, to: fileSize) {
                // The space the writer fills with zeros ahead of its records (not closed cleanly).
                logger.debug("log: cut off the zero-filled space after the last record", metadata: [
                    "topic": "\(name)", "segment": "\(path)", "kept_records": .stringConvertible(scan.records),
                    "zero_bytes": .stringConvertible(fileSize - scan.validBytes),
                ])
            } else {
                do throws(LogError) {
                    try keepDamagedTail(
                        fd, path: path, topic: name, scan: scan, fileSize: fileSize,
                        durableBytes: previous.flatMap { $0.base == base ? $0.size : nil }
                    )
                } catch {
                    Glibc.close(fd)
                    throw error
                }
            }
            // The step that failed is named (a failed fdatasync said "cannot truncate": a review).
            if ftruncate(fd, off_t(scan.validBytes)) != 0 {
                let error = Files.error("cannot truncate", path)
                Glibc.close(fd)
                throw error
            }
            let err = Files.syncData(fd)
            if err != 0 {
                let error = Files.error("cannot fdatasync", path, err)
                Glibc.close(fd)
                throw error
            }
        } else if scan.validBytes > 0 {
            // Records the last run wrote but had not fsynced (a kill -9 before the group's
            // fdatasync) are kept, and published to readers as durable: made so first.
            let err = Files.syncData(fd)
            if err != 0 {
                let error = Files.error("cannot fdatasync", path, err)
                Glibc.close(fd)
                throw error
            }
        }
        var activeFD = fd
        var activeBase = base
        var activeSize = scan.validBytes
        var next = base + scan.records
        // The offset to go on at, past records readers had been told were durable and that are
        // gone. Only a durable end of a segment this log still has (a file left from a deleted log,
        // or copied from another, names another one; a code review). Then past every group's
        // committed offset (fsynced, where the durable end is not): one past the log's end means
        // records the group read are gone, as when the last segments were deleted while the log was
        // stopped; their offsets were given to new records, which that group (the lake's) never
        // read (an outside review: 300 of 500 acknowledged events missing from the lake).
        var resumeAt = next
        if let previous, previous.next > next, previous.next <= Files.maxSegmentBase, segments.contains(previous.base) {
            resumeAt = previous.next
        }
        let groupAhead = GroupOffsets.all(root: configuration.directory, topic: name)
            .filter { $0.value > resumeAt && $0.value <= Files.maxSegmentBase }
            .max { $0.value < $1.value }
        if let groupAhead { resumeAt = groupAhead.value }
        if resumeAt > next {
            // Readers had been told that records up to `previous.next` were durable, and some may
            // have read them (the lake writer may have written them and committed past them); the
            // recovery above cut some of them off (damage inside the last segment, or a disk that
            // lost a write it had reported durable). Giving those offsets to new records would hide
            // the new records from such readers for good: the log goes on at `previous.next`
            // instead, in a new segment, and readers step past the gap as past a damaged segment,
            // counting what they had not read.
            let newBase = resumeAt
            let newPath = Files.segmentPath(directory, newBase)
            do throws(LogError) {
                activeFD = try Files.createSegment(directory, newBase)
            } catch {
                Glibc.close(fd)
                throw LogError(
                    code: error.code,
                    message: "\(path): records \(next)..<\(newBase) that readers had been told were durable are gone, and the "
                        + "segment \(newPath) to go on after them cannot be made, so the log was not opened: \(error.message)")
            }
            Glibc.close(fd)
            var metadata: Logger.Metadata = [
                "topic": "\(name)", "segment": "\(path)", "log.first_lost": .stringConvertible(next), "log.end_before": .stringConvertible(newBase),
                "records_lost": .stringConvertible(newBase - next), "next_segment_base": .stringConvertible(newBase),
            ]
            if let groupAhead { metadata["log.group"] = "\(groupAhead.key)" }
            logger.error(groupAhead != nil
                ? "log: a group has committed past the log's end: records it read are gone (the last segments deleted while the log was stopped, or cut off as damaged); the log goes on at its offset, so that no offset names two records"
                : "log: records that readers had been told were durable are gone from the last segment; the log goes on after them, so that no offset names two records", metadata: metadata)
            segments.append(newBase)
            activeBase = newBase
            activeSize = 0
            next = newBase
        }
        let topic = TopicState(name: name, directory: directory, readOnly: false, durableEndWriter: durableEnd)
        topic.shared.withLockedValue { state in
            state.segments = segments
            state.activeBase = activeBase
            state.durableSize = activeSize
            state.durableNext = next
        }
        durableEnd?.write(DurableEnd(base: activeBase, size: activeSize, next: next))
        logger.debug("log: opened topic", metadata: ["topic": "\(name)", "segments": .stringConvertible(segments.count), "next_offset": .stringConvertible(next)])
        return TopicWriter(
            topic: topic, fd: activeFD, activeBase: activeBase, size: activeSize, nextOffset: next,
            configuration: configuration, disk: disk, logger: logger
        )
    }

    /// Before recovery cuts a segment's invalid tail off: a torn write (nothing valid after the bad
    /// record) gets a warning; damage inside the segment (complete, valid records after the bad
    /// one, which were written before it and may have been acknowledged) gets an error, and the
    /// tail is first saved to `<segment>.damaged-at-<byte>` so that no acknowledged record is
    /// destroyed. If that copy cannot be made the log does not open (nothing is cut).
    ///
    /// `durableBytes`: the segment's size the previous run published as durable (its durable end),
    /// if it names this segment. Bytes below it were fsynced and acknowledged, so an invalid record
    /// there is damage even with nothing valid after it: it was cut as a torn tail, without a copy,
    /// though `log salvage` could read its event back (an outside review).
    private func keepDamagedTail(
        _ fd: Int32, path: String, topic: String, scan: SegmentScanner.Result, fileSize: Int64, durableBytes: Int64?
    ) throws(LogError) {
        var tail: [UInt8] = []
        let count = Int(fileSize - scan.validBytes)
        let got = try Files.read(fd, into: &tail, count: count, at: scan.validBytes, path: path)
        tail.removeLast(tail.count - got)
        let after = SegmentScanner.recordsAfterDamage(in: tail, maxRecordBytes: configuration.maxRecordBytes)
        let durableDamaged = durableBytes.map { scan.validBytes < $0 } ?? false
        guard after != nil || durableDamaged else {
            logger.warning("log: recovered a torn tail", metadata: [
                "topic": "\(topic)", "segment": "\(path)", "kept_records": .stringConvertible(scan.records),
                "kept_bytes": .stringConvertible(scan.validBytes), "dropped_bytes": .stringConvertible(count),
                "reason": "\(scan.problem ?? "trailing bytes")",
            ])
            return
        }
        let saved = path + ".damaged-at-\(scan.validBytes)"
        let records = after?.records ?? 0
        do throws(LogError) {
            try Files.writeAtomically(tail, to: saved)
        } catch {
            throw LogError(
                code: error.code,
                message: "\(path) is damaged at byte \(scan.validBytes) (\(scan.problem ?? "an invalid record")), "
                    + (after == nil
                        ? "below the \(durableBytes ?? 0) bytes published as durable; they could not be saved before the "
                        : "with \(records) complete records after the damage; they could not be saved before the ")
                    + "segment is cut there, so the log was not opened: \(error.message)"
            )
        }
        var metadata: Logger.Metadata = [
            "topic": "\(topic)", "segment": "\(path)", "kept_records": .stringConvertible(scan.records),
            "damaged_at_byte": .stringConvertible(scan.validBytes), "reason": "\(scan.problem ?? "an invalid record")",
            "records_after_damage": .stringConvertible(records), "saved_to": "\(saved)",
        ]
        if let after { metadata["records_start_at_byte_of_saved_file"] = .stringConvertible(after.position) }
        if let durableBytes { metadata["durable_bytes"] = .stringConvertible(durableBytes) }
        logger.error(after == nil
            ? "log: the last segment is damaged below the size published as durable; the bytes from the damage on were cut off and saved (log salvage reads them)"
            : "log: a segment is damaged inside; the records after the damage were cut off and saved", metadata: metadata)
    }

    private func topicState(_ name: String) throws(LogError) -> TopicState {
        if !isReadOnly { return try writer(for: name).topic }
        _ = try Files.checkedSegments(configuration.directory + "/" + name)
        let result: Result<TopicState, LogError> = state.withLockedValue { state in
            if state.closed { return .failure(LogError(code: .closed, message: "the log \(configuration.directory) is closed")) }
            if let topic = state.topics[name] { return .success(topic) }
            let topic = TopicState(name: name, directory: configuration.directory + "/" + name, readOnly: true)
            state.topics[name] = topic
            return .success(topic)
        }
        return try result.get()
    }

    // MARK: LogBackend

    public func readNote(_ name: String) throws(LogError) -> [UInt8]? {
        let path = configuration.directory + "/" + name
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Files.error("cannot read", path)
        }
        return [UInt8](data)
    }

    public func writeNote(_ name: String, _ contents: [UInt8]) throws(LogError) {
        try Files.writeAtomically(contents, to: configuration.directory + "/" + name)
    }

    /// A hold is kept as a group's committed offset (`groups/<holder>/<topic>`), which retention
    /// already honours; the holder's name must not be a consumer group's.
    public func holdRetention(of topic: LogTopic, from offsets: [Int32: Int64], holder: String) throws(LogError) {
        try GroupOffsets.validate(holder, what: "retention holder")
        try Self.validateTopic(topic.name)
        guard let offset = offsets[0] else { return }
        try GroupOffsets.write([0: offset], root: configuration.directory, group: holder, topic: topic.name)
    }

    public func producer(for topic: LogTopic) throws(LogError) -> any LogProducer {
        guard !isReadOnly else {
            throw LogError(code: .invalidArgument, message: "the log \(configuration.directory) is open read-only")
        }
        try Self.validateTopic(topic.name)
        return EmbeddedProducer(writer: try writer(for: topic.name), disk: disk, isClosed: { [self] in isClosed })
    }

    public func consumer(for topic: LogTopic, group: String?) throws(LogError) -> any LogConsumer {
        try Self.validateTopic(topic.name)
        if let group { try GroupOffsets.validate(group, what: "group") }
        return try EmbeddedConsumer(
            topic: try topicState(topic.name), group: group, root: configuration.directory,
            configuration: configuration, logger: logger, isLogClosed: { [self] in isClosed }
        )
    }

    var isClosed: Bool { state.withLockedValue { $0.closed } }

    /// Group-commit statistics of a topic (records and fsyncs so far), for tests and benchmarks.
    public func statistics(for topic: LogTopic) -> (fsyncs: Int, records: Int, batches: Int, gatheringWaits: Int)? {
        guard let writer = state.withLockedValue({ $0.writers[topic.name] }) else { return nil }
        let stats = writer.statistics
        return (stats.fsyncs, stats.records, stats.batches, stats.gatheringWaits)
    }

    // MARK: Service

    /// Applies retention and refreshes the disk gauges until graceful shutdown, then closes the log
    /// (writing what is queued first).
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var lastRetention = ContinuousClock.now
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if Task.isCancelled { break }
                await self.offPool {
                    if self.isReadOnly { self.disk.refreshGauges() } else { _ = self.disk.checkBeforeWrite() }
                }
                if !self.isReadOnly { await self.offPool { self.takeRollRequests() } }
                let interval = self.configuration.retentionBytes == nil ? self.configuration.retentionInterval : .seconds(1)
                if !self.isReadOnly && lastRetention.duration(to: .now) >= interval {
                    lastRetention = .now
                    await self.offPool { self.applyRetention() }
                }
            }
        }
        await offPool { self.close() }
    }

    /// Early rolls asked for by readers in other processes (``TopicState/takeRollRequest()``).
    private func takeRollRequests() {
        let topics = state.withLockedValue { Array($0.writers.values.map(\.topic)) }
        for topic in topics {
            guard let request = topic.takeRollRequest() else { continue }
            if request.accepted {
                logger.info("log: a reader in another process asked to close a segment early (a record it cannot read)", metadata: [
                    "topic": "\(topic.name)", "segment": "\(Files.segmentPath(topic.directory, request.base))", "byte": .stringConvertible(request.byte),
                ])
            } else {
                logger.info("log: a reader's request to close a segment early was not for the active segment's durable records; ignored", metadata: [
                    "topic": "\(topic.name)", "segment_base": .stringConvertible(request.base), "byte": .stringConvertible(request.byte),
                ])
            }
        }
    }

    private func offPool(_ body: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                body()
                continuation.resume()
            }
        }
    }

    /// Stops taking appends, writes and fsyncs what is queued, closes files. Idempotent; blocks
    /// until the writer threads are done.
    public func close() {
        let (writers, topics, wasClosed, lakeWriterLockFD) = state.withLockedValue { state in
            let wasClosed = state.closed
            state.closed = true
            defer { state.lakeWriterLockFD = -1 }
            return (Array(state.writers.values), Array(state.topics.values), wasClosed, state.lakeWriterLockFD)
        }
        if lakeWriterLockFD >= 0 { Glibc.close(lakeWriterLockFD) }
        guard !wasClosed else { return }
        for writer in writers { writer.close() }
        for topic in topics { topic.close() }
        if lockFD >= 0 {
            flock(lockFD, LOCK_UN)
            Glibc.close(lockFD)
        }
    }

    // MARK: Retention

    /// Deletes closed segments that every group has committed past (and every retention hold,
    /// ``holdRetention(of:from:holder:)``, is past) and that are older than `retentionAge` or beyond
    /// `retentionBytes`. Returns the paths deleted.
    @discardableResult
    public func applyRetention(now: Date = Date()) -> [String] {
        guard !isReadOnly, configuration.retentionAge != nil || configuration.retentionBytes != nil else { return [] }
        let topics = state.withLockedValue { Array($0.topics.values) }
        var deleted: [String] = []
        for topic in topics {
            var groups = GroupOffsets.all(root: configuration.directory, topic: topic.name)
            for group in configuration.requiredGroups where groups[group] == nil { groups[group] = 0 }
            let minimumCommitted = groups.values.min() ?? Int64.max
            let segments = topic.segments()
            guard segments.count > 1 else { continue }
            var sizes = segments.map { topic.dataSize(ofSegment: $0) }
            var total = sizes.reduce(0, +)
            for index in 0..<(segments.count - 1) {
                let path = Files.segmentPath(topic.directory, segments[index])
                let end = segments[index + 1]
                var expired = false
                if let age = configuration.retentionAge, let modified = Files.modificationTime(path) {
                    let seconds = Double(age.components.seconds) + Double(age.components.attoseconds) / 1e18
                    expired = now.timeIntervalSince1970 - modified >= seconds
                }
                if let limit = configuration.retentionBytes, total > limit { expired = true }
                guard expired else { break }
                guard minimumCommitted >= end else {
                    sayRetentionHeld(topic: topic.name, groups: groups.filter { $0.value < end }, end: end, now: now)
                    break
                }
                topic.forget(segment: segments[index], bytes: sizes[index])
                let failure = unlink(path) == 0 ? 0 : errno
                if failure == 0 || failure == ENOENT {
                    // Gone already (deleted by hand to free a disk) is deleted: it was put back and
                    // failed again at every pass, and retention stopped for good (a review).
                    deleted.append(path)
                    total -= sizes[index]
                    sizes[index] = 0
                    logger.info("log: retention deleted a segment", metadata: [
                        "topic": "\(topic.name)", "segment": "\(path)", "end_offset": .stringConvertible(end),
                    ])
                } else {
                    // Still the topic's: readers, the size and the next pass see it again (it was
                    // forgotten for good, and counted nowhere, until a restart: a review). The
                    // later segments wait for it, so that the log keeps no gap.
                    topic.restore(segment: segments[index], bytes: sizes[index])
                    logger.warning("log: retention cannot delete \(path): \(String(cString: strerror(failure)))")
                    break
                }
            }
            Gauge(label: "playhead_log_size_bytes", dimensions: [("topic", topic.name)]).record(Double(total))
        }
        // The segments' own folders: a deletion is durable once its directory is synced (the
        // log's folder was synced instead, so a crash could bring deleted segments back).
        for directory in Set(deleted.map { String($0[..<($0.lastIndex(of: "/") ?? $0.endIndex)]) }) {
            try? Files.syncDirectory(directory)
        }
        return deleted
    }

    /// Says, at warning level and at most every 10 minutes per topic, which groups keep segments
    /// that are over the retention limits: a group that no process runs any more (an `observe`
    /// retired, `serve` restarted with `--metrics off`) keeps its offsets file, which held
    /// retention for good without a word and exports no lag, while the log grew to the free-space
    /// floor and ingest answered 503 (an outside review, 2026-12-07). The lake writer's own hold
    /// (`<group>.rollups`, ``holdRetention(of:from:holder:)``), which keeps the open hours on
    /// purpose, is not named among them; when it alone holds the segments, that is said at notice
    /// level (throttled apart): a log over its limits, with no word of why, surprised an operator
    /// (a review of a long run, whose limits were below the open hours' traffic).
    private func sayRetentionHeld(topic: String, groups: [String: Int64], end: Int64, now: Date) {
        let holders = groups.filter { !$0.key.hasSuffix(".rollups") }.sorted { $0.key < $1.key }
        let hold = groups.filter { $0.key.hasSuffix(".rollups") }.min { $0.value < $1.value }
        guard !holders.isEmpty || hold != nil else { return }
        // The hold's notice is throttled apart, so that it never delays a warning about a group.
        let key = holders.isEmpty ? topic + " (hold)" : topic
        let due = state.withLockedValue { state in
            if let said = state.retentionHeldSaid[key], now.timeIntervalSince(said) < 600 { return false }
            state.retentionHeldSaid[key] = now
            return true
        }
        guard due else { return }
        if holders.isEmpty, let hold {
            logger.notice(
                "log: retention keeps segments of topic \(topic) that are over its limits (--log-retention-hours, --log-retention-bytes) for the lake writer's open hours: \(hold.key) holds them from offset \(hold.value), the first record a restart rebuilds the open hours' rollups from; they go once those hours close (normally about the last 75 minutes of traffic, at most 2 hours 11 minutes; docs/log-format.md, \"Retention\")",
                metadata: ["topic": "\(topic)", "groups": "\(hold.key)", "segment_end_offset": .stringConvertible(end)]
            )
            return
        }
        let described = holders.map { group, offset in
            let file = GroupOffsets.path(root: configuration.directory, group: group, topic: topic)
            let last = Files.modificationTime(file).map { GroupStanding.age(now.timeIntervalSince1970 - $0) + " ago" } ?? "never"
            // A required group (the lake writer's) is never to be removed: it is behind, or has not
            // started (a review: the advice below named it too).
            let required = configuration.requiredGroups.contains(group) ? ", required: its consumer is behind or has not started" : ""
            return "\(group) at offset \(offset) (last commit: \(last)\(required))"
        }
        let removable = holders.contains { !configuration.requiredGroups.contains($0.key) }
        let advice = removable
            ? "; a group that no process runs any more holds the log for good: remove its folder \(configuration.directory)/groups/<group> while nothing runs it (docs/runbook.md, DiskNearlyFull)"
            : " (docs/runbook.md, DiskNearlyFull)"
        logger.warning(
            "log: retention keeps segments of topic \(topic) that are over its limits (--log-retention-hours, --log-retention-bytes), because not every consumer group has read them: \(described.joined(separator: ", ")); the oldest segment ends at offset \(end). A lagging group shows in playhead_consumer_lag_events\(advice)",
            metadata: ["topic": "\(topic)", "groups": "\(holders.map(\.key).joined(separator: ","))", "segment_end_offset": .stringConvertible(end)]
        )
    }

}

/// Appends to one topic of an ``EmbeddedLog``.
struct EmbeddedProducer: LogProducer {
    let writer: TopicWriter
    let disk: DiskMonitor
    let isClosed: @Sendable () -> Bool

    /// One partition: keys are not stored (see ``LogRecordBatch``).
    var usesKeys: Bool { false }

    func append(_ batch: LogRecordBatch, completion: @escaping @Sendable (Result<LogAppendResult, LogError>) -> Void) {
        writer.append(batch, executor: nil, completion: completion)
    }

    func append(
        _ batch: LogRecordBatch, executor: some LogCompletionExecutor,
        completion: @escaping @Sendable (Result<LogAppendResult, LogError>) -> Void
    ) {
        writer.append(batch, executor: executor, completion: completion)
    }

    var unavailableReason: String? {
        if isClosed() { return "the log is closed" }
        return disk.reason ?? writer.failureReason
    }
}
