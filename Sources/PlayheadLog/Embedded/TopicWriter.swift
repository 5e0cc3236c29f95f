#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CPlayhead
import Dispatch
import Foundation
import Logging
import Metrics

/// Appends to one topic with group commit: a dedicated thread takes every queued batch, writes them
/// with one `pwrite` and one `fdatasync`, publishes the new durable end, then completes each batch.
final class TopicWriter: @unchecked Sendable {
    struct Pending {
        var batch: LogRecordBatch
        var enqueued: UInt64
        var executor: (any LogCompletionExecutor)?
        var completion: @Sendable (Result<LogAppendResult, LogError>) -> Void
    }

    let topic: TopicState
    let configuration: EmbeddedLogConfiguration
    let logger: Logger
    let disk: DiskMonitor

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [Pending] = []
    /// The group being committed (owned by the writer thread); swapped with `queue`, so that
    /// neither array's storage is allocated again for every group.
    private var group: [Pending] = []
    private var queuedBytes = 0
    /// The writer is woken once this many batches are queued (more than 1 while it gathers a group).
    private var wakeWhenQueued = 1
    /// A queue this large is committed without waiting for more.
    private static let groupBytesWithoutWaiting = 1 << 20
    private var closing = false
    /// The base of a segment a reader found damaged while active: rolled before the next commit.
    private var rollRequest: (base: Int64, verify: Int64?)?
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    // Owned by the writer thread (set up before it starts).
    private var fd: Int32
    private var activeBase: Int64
    private var size: Int64
    private var nextOffset: Int64
    private var buffer: [UInt8] = []
    /// The end of the bytes the active segment file holds: `size` plus zero-filled space written
    /// ahead (see ``EmbeddedLogConfiguration/preallocateBytes``).
    private var fileEnd: Int64
    private static let zeros = [UInt8](repeating: 0, count: 64 << 10)
    /// Bytes this writer has appended, over every segment (for ``EmbeddedLogConfiguration/pageCacheBytes``).
    private var written: Int64 = 0
    /// Where the active segment's pages may still be cached (those before were dropped).
    private var cachedFrom: Int64 = 0
    /// Closed segments whose pages are dropped once far enough behind: by path, not by an open
    /// file, which kept a segment deleted by retention on disk until then (with small segments, up
    /// to 256 MiB of them per topic, which ran the process out of file descriptors, a probe).
    private var retiring: [(path: String, endWritten: Int64)] = []

    // Metrics.
    private let appendDuration: Metrics.Timer
    private let fsyncBatchRecords: Recorder
    private let fsyncs: Counter
    private let sizeGauge: Gauge

    /// Statistics for tests and benchmarks.
    struct Statistics: Sendable {
        var fsyncs: Int = 0
        var records: Int = 0
        var batches: Int = 0
        /// Group commits that waited for more batches (see ``EmbeddedLogConfiguration/groupCommitInterval``).
        var gatheringWaits: Int = 0
    }
    private var stats = Statistics()  // guarded by `condition`

    var statistics: Statistics {
        condition.lock()
        defer { condition.unlock() }
        return stats
    }

    init(topic: TopicState, fd: Int32, activeBase: Int64, size: Int64, nextOffset: Int64,
         configuration: EmbeddedLogConfiguration, disk: DiskMonitor, logger: Logger) {
        self.topic = topic
        self.fd = fd
        self.activeBase = activeBase
        self.size = size
        self.nextOffset = nextOffset
        fileEnd = size
        self.configuration = configuration
        self.disk = disk
        self.logger = logger
        appendDuration = Metrics.Timer(
            label: "playhead_log_append_duration_seconds",
            dimensions: [("backend", "embedded"), ("topic", topic.name)],
            preferredDisplayUnit: .seconds
        )
        fsyncBatchRecords = Recorder(label: "playhead_log_fsync_batch_records", aggregate: true)
        fsyncs = Counter(label: "playhead_log_fsyncs_total")
        sizeGauge = Gauge(label: "playhead_log_size_bytes", dimensions: [("topic", topic.name)])
        let closedBytes = topic.sizeOnDisk() - size
        topic.shared.withLockedValue { $0.closedBytes = closedBytes }
        sizeGauge.record(Double(closedBytes + size))
        topic.shared.withLockedValue { state in
            state.rollHandler = { [weak self] base, verify in self?.requestRoll(ifActive: base, verify: verify) }
        }
    }

    /// See ``TopicState/requestRoll(ifActive:)``: wakes the writer thread, which rolls if `base` is
    /// still the active segment and holds records.
    /// `verify`: a byte whose record must still be unreadable (a request from another process).
    func requestRoll(ifActive base: Int64, verify: Int64? = nil) {
        condition.lock()
        if !closing && rollRequest == nil {
            rollRequest = (base, verify)
            condition.broadcast()
        }
        condition.unlock()
    }

    func start() {
        for code in Self.appendFailureCodes { _ = Self.failureCounter(code) }
        let thread = Thread { [self] in self.runLoop() }
        thread.name = "playhead-log-writer-\(topic.name)"
        thread.qualityOfService = .userInitiated
        self.thread = thread
        thread.start()
    }

    /// The codes an append can fail with here, whose series exist from the start (at 0).
    static let appendFailureCodes: [LogError.Code] = [.full, .overloaded, .io, .unavailable]

    static func failureCounter(_ code: LogError.Code) -> Counter {
        Counter(label: "playhead_log_append_failures_total", dimensions: [("code", code.description)])
    }

    func append(
        _ batch: LogRecordBatch, executor: (any LogCompletionExecutor)?,
        completion: @escaping @Sendable (Result<LogAppendResult, LogError>) -> Void
    ) {
        if batch.isEmpty {
            completion(.success(LogAppendResult(partition: 0, firstOffset: nil, count: 0)))
            return
        }
        let bytes = batch.values.count
        var refusal: LogError?
        var wake = false
        condition.lock()
        if closing {
            refusal = LogError(code: .closed, message: "the log \(configuration.directory) is closed")
        } else if batch.largestValue > configuration.maxRecordBytes {
            // Refused, not written: every reader (and the recovery at start) takes a length over
            // the limit for damage, so a record over it was acknowledged and then stepped past as
            // damaged with the rest of its segment (an outside review of the code). The edge's
            // --max-body-bytes is held below the limit at start; this is the backstop.
            refusal = LogError(
                code: .tooLarge,
                message: "a record of \(batch.largestValue) bytes is over the embedded log's record limit of \(configuration.maxRecordBytes) bytes")
        } else if bytes > configuration.maxQueuedBytes {
            refusal = LogError(code: .tooLarge, message: "a batch of \(bytes) bytes is over the queue limit of \(configuration.maxQueuedBytes) bytes")
        } else if queuedBytes + bytes > configuration.maxQueuedBytes {
            refusal = LogError(
                code: .overloaded,
                message: "the log writer for \(topic.name) has \(queuedBytes) bytes queued (limit \(configuration.maxQueuedBytes))",
                retryAfterSeconds: 1
            )
        } else {
            queue.append(Pending(batch: batch, enqueued: DispatchTime.now().uptimeNanoseconds, executor: executor, completion: completion))
            queuedBytes += bytes
            wake = queue.count >= wakeWhenQueued || queuedBytes >= Self.groupBytesWithoutWaiting
        }
        condition.unlock()
        // Signalled after unlocking: a writer woken while the lock is still held would wake only to
        // block on the lock (two more futex calls and a thread switch per group under load).
        if wake { condition.signal() }
        if let refusal {
            Self.failureCounter(refusal.code).increment()
            completion(.failure(refusal))
        }
    }

    var queueIsEmpty: Bool {
        condition.lock()
        defer { condition.unlock() }
        return queue.isEmpty
    }

    /// Stops taking appends, writes what is queued, and waits for the thread to finish.
    func close() {
        condition.lock()
        let wasClosing = closing
        closing = true
        condition.broadcast()
        let started = thread != nil
        condition.unlock()
        guard !wasClosing else { return }
        if started { finished.wait() }
        if fd >= 0 {
            // A closed log leaves no zero-filled space behind (a restart would cut it off anyway).
            if fileEnd > size && ftruncate(fd, off_t(size)) == 0 { _ = Files.syncData(fd) }
            Glibc.close(fd)
            retiring = []
            fd = -1
        }
        topic.durableEndWriter?.close()
    }

    private func runLoop() {
        // Foundation does not pass `Thread.name` to the OS thread on Linux: name it for top -H, perf
        // and /proc (15 bytes are kept), e.g. `log-events`.
        playhead_name_thread("log-\(topic.name)")
        let (seconds, attoseconds) = configuration.groupCommitInterval.components
        let interval = UInt64(max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
        var lastStart: UInt64 = 0
        var lastGroupBatches = 0
        // The bytes of the group just committed, taken off `queuedBytes` under the next lock.
        var committedBytes = 0
        while true {
            condition.lock()
            queuedBytes -= committedBytes
            committedBytes = 0
            while queue.isEmpty && !closing && rollRequest == nil { condition.wait() }
            if let (base, verify) = rollRequest {
                rollRequest = nil
                condition.unlock()
                rollDamaged(base, verify: verify)
                continue
            }
            if queue.isEmpty && closing {
                condition.unlock()
                break
            }
            if interval > 0 && lastGroupBatches > 1 {
                gatherGroup(batches: lastGroupBatches, until: lastStart &+ interval)
            }
            lastStart = DispatchTime.now().uptimeNanoseconds
            swap(&queue, &group)
            lastGroupBatches = group.count
            condition.unlock()

            for item in group { committedBytes += item.batch.values.count }
            commit(&group)
            group.removeAll(keepingCapacity: true)
        }
        finished.signal()
    }

    /// Appends are arriving concurrently: waits (with `condition` held) until `batches` are queued,
    /// 1 MiB is, the log closes, or the uptime `deadline` (nanoseconds) passes.
    private func gatherGroup(batches: Int, until deadline: UInt64) {
        let due = Date(timeIntervalSinceNow: Double(Int64(deadline) - Int64(DispatchTime.now().uptimeNanoseconds)) / 1e9)
        if queue.count < batches { stats.gatheringWaits += 1 }
        wakeWhenQueued = batches
        while queue.count < batches && queuedBytes < Self.groupBytesWithoutWaiting && !closing {
            if !condition.wait(until: due) { break }
        }
        wakeWhenQueued = 1
    }

    /// When an append failure was last logged, and failures since (writer thread only).
    private var lastFailureLogged: ContinuousClock.Instant?
    private var failuresSinceLogged = 0

    /// Logs a failed group commit once per 10 s at most (with how many failed meanwhile: a full disk
    /// fails every group commit, hundreds a second; each failure is counted in the metrics), and
    /// notes a full disk for readiness.
    private func logFailure(_ message: Logger.Message, _ error: LogError, records: Int?) {
        let now = ContinuousClock.now
        failuresSinceLogged += 1
        if lastFailureLogged.map({ $0.duration(to: now) >= .seconds(10) }) ?? true {
            var metadata: Logger.Metadata = ["topic": "\(topic.name)", "error": "\(error)", "failures_since_last_logged": .stringConvertible(failuresSinceLogged)]
            if let records { metadata["records"] = .stringConvertible(records) }
            logger.error(message, metadata: metadata)
            lastFailureLogged = now
            failuresSinceLogged = 0
        }
        if error.code == .full { disk.noteFull() }
    }

    private func fail(_ items: [Pending], _ error: LogError) {
        Self.failureCounter(error.code).increment()
        if error.code == .io || error.code == .unavailable {
            condition.lock()
            lastFailure = (error.message, .now)
            condition.unlock()
            hadFailure = true
        } else if error.code == .full {
            hadFailure = true  // the next commit that succeeds clears the disk's full note
        }
        for item in items { item.completion(.failure(error)) }
    }

    /// The last group commit's I/O error, and when, until a commit succeeds (guarded by `condition`).
    private var lastFailure: (message: String, at: ContinuousClock.Instant)?
    /// Whether `lastFailure` may be set (writer thread only: no lock on the success path).
    private var hadFailure = false

    /// Why appends fail now, for readiness: the last group commit failed with an I/O error (other
    /// than a full disk, which ``DiskMonitor`` reports) within the last 10 s and none has succeeded
    /// since. A load balancer then sends requests elsewhere; after 10 s without appends the instance
    /// is ready again, so that it is tried again (a probe: with its file descriptors used up, every
    /// append failed with 500 while /readyz said ready).
    var failureReason: String? {
        condition.lock()
        defer { condition.unlock() }
        guard let lastFailure, lastFailure.at.duration(to: .now) < configuration.failureUnreadyFor else { return nil }
        return "the log's appends fail: \(lastFailure.message)"
    }

    /// Writes `items` as one group: roll if needed, one pwrite, one fdatasync, then completions.
    /// Empties `items` before handing completions over (see below).
    private func commit(_ items: inout [Pending]) {
        if let error = disk.checkBeforeWrite() {
            fail(items, error)
            return
        }
        if let error = rollIfActiveSegmentDeleted() {
            fail(items, error)
            return
        }
        if size >= configuration.segmentBytes && size > 0 {
            do throws(LogError) {
                try roll()
            } catch {
                logFailure("log: cannot start a new segment", error, records: nil)
                fail(items, error)
                return
            }
        }

        buffer.removeAll(keepingCapacity: true)
        var firstOffsets: [Int64] = []
        firstOffsets.reserveCapacity(items.count)
        var offset = nextOffset
        var records = 0
        for item in items {
            firstOffsets.append(offset)
            Self.encode(item.batch, into: &buffer)
            offset += Int64(item.batch.count)
            records += item.batch.count
        }

        let goodSize = size
        let end = goodSize + Int64(buffer.count)
        let (err, what, newFileEnd) = writeDurably(end: end)
        if err != 0 {
            // Leave no partial record behind: cut the file back to the last durable record. If the
            // cut fails, the failed group's bytes stay after `size` (no reader reads past the
            // published end), counted as space ahead, so that the segment's roll or close cuts them
            // (it cut only to `fileEnd`: a closed segment would have kept whole records that were
            // never acknowledged, under offsets the next segment also has; an outside review).
            if ftruncate(fd, off_t(goodSize)) == 0 {
                fileEnd = goodSize
            } else {
                fileEnd = max(goodSize, Files.fileSize(fd))
            }
            _ = Files.syncData(fd)
            let error = Files.error("cannot \(what)", Files.segmentPath(topic.directory, activeBase), err)
            logFailure("log: append failed; segment truncated back to its last durable record", error, records: records)
            fail(items, error)
            return
        }
        size = end
        fileEnd = newFileEnd
        nextOffset = offset
        written += Int64(buffer.count)
        trimPageCache()
        topic.publish(durableSize: size, durableNext: nextOffset)
        if hadFailure {
            condition.lock()
            lastFailure = nil
            condition.unlock()
            disk.noteWritten()
            hadFailure = false
        }

        fsyncs.increment()
        fsyncBatchRecords.record(records)
        sizeGauge.record(Double(topic.shared.withLockedValue { $0.closedBytes } + size))
        condition.lock()
        stats.fsyncs += 1
        stats.records += records
        stats.batches += items.count
        condition.unlock()

        let now = DispatchTime.now().uptimeNanoseconds
        // One hand-over per executor (event loop) for the whole group, in append order; appends
        // without an executor complete here.
        var handOvers: [(executor: any LogCompletionExecutor, completions: [Completed])] = []
        for (index, item) in items.enumerated() {
            appendDuration.recordNanoseconds(Int64(now &- item.enqueued))
            let result = LogAppendResult(partition: 0, firstOffset: firstOffsets[index], count: item.batch.count)
            guard let executor = item.executor else {
                item.completion(.success(result))
                continue
            }
            let key = executor.key
            let completed = Completed(completion: item.completion, result: result, batch: item.batch)
            if let slot = handOvers.firstIndex(where: { $0.executor.key == key }) {
                handOvers[slot].completions.append(completed)
            } else {
                handOvers.append((executor, [completed]))
            }
        }
        // The batches and completions were allocated on their executors' threads: this thread lets
        // go of them before handing them over, so that they are freed there, where malloc reuses
        // them from the thread's own cache. Freed here, they would go back to the allocator's
        // shared arena, under its lock, and the event loops would take new memory from it.
        items.removeAll(keepingCapacity: true)
        while let (executor, completions) = handOvers.popLast() {
            executor.execute {
                for completed in completions { completed.completion(.success(completed.result)) }
            }
        }
    }

    /// A completion and its result, on their way to the append's executor, with the batch (freed
    /// on the executor's thread when the completions have run).
    struct Completed: Sendable {
        var completion: @Sendable (Result<LogAppendResult, LogError>) -> Void
        var result: LogAppendResult
        var batch: LogRecordBatch
    }

    /// Re-frames a batch (`[len][value]`…) as disk records (`[len][crc32c][value]`…).
    static func encode(_ batch: LogRecordBatch, into buffer: inout [UInt8]) {
        batch.values.withUnsafeBytes { values in
            var position = 0
            while position + 4 <= values.count {
                let length = LogFraming.readUInt32(values, at: position)
                let value = UnsafeRawBufferPointer(rebasing: values[(position + 4)..<(position + 4 + Int(length))])
                let crc = CRC32C.record(length: length, value: value)
                buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: values[position..<(position + 4)]))
                buffer.append(UInt8(truncatingIfNeeded: crc))
                buffer.append(UInt8(truncatingIfNeeded: crc >> 8))
                buffer.append(UInt8(truncatingIfNeeded: crc >> 16))
                buffer.append(UInt8(truncatingIfNeeded: crc >> 24))
                buffer.append(contentsOf: value)
                position += 4 + Int(length)
            }
        }
    }

    /// Writes `buffer` at the end of the records (zero-filling ahead after a small commit) and
    /// fdatasyncs; returns 0 or the errno, the step that failed, and the new end of the file.
    private func writeDurably(end: Int64) -> (Int32, String, Int64) {
        let at = size
        var err = buffer.withUnsafeBytes { Files.writeAll(fd, $0, at: at) }
        var what = "write"
        var newFileEnd = max(fileEnd, end)
        if err == 0 && end > fileEnd && configuration.preallocateBytes > 0 && buffer.count < configuration.preallocateBelowBytes {
            // A small commit past the zero-filled space: fill the next stretch in the same fdatasync,
            // so that the commits after this one do not change the file's size.
            let (fillError, filledEnd) = fillZeros(from: end, count: configuration.preallocateBytes)
            if fillError == 0 {
                newFileEnd = filledEnd
            } else if ftruncate(fd, off_t(end)) != 0 {
                // Zero-filling is only an optimization (it fails first when space runs out), but
                // what it left behind must go before the records can be made durable.
                err = errno
                what = "cut the zero-fill"
            }
        }
        if err == 0 {
            err = Files.syncData(fd)
            what = "fdatasync"
        }
        return (err, what, newFileEnd)
    }

    /// Writes `count` zero bytes at `offset` (rounded up to whole 4 KiB pages); returns 0 or the
    /// errno, and the new end of the file.
    private func fillZeros(from offset: Int64, count: Int) -> (Int32, Int64) {
        let target = (offset + Int64(count) + 4095) & ~4095
        var position = offset
        while position < target {
            let chunk = Int(min(Int64(Self.zeros.count), target - position))
            let at = position
            let err = Self.zeros.withUnsafeBytes { Files.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[..<chunk]), at: at) }
            if err != 0 { return (err, offset) }
            position += Int64(chunk)
        }
        return (0, target)
    }

    /// Drops the cached pages of fsynced data more than `pageCacheBytes` behind the last write. On
    /// a VM whose memory is mapped in on first touch, growing the page cache into fresh memory cost
    /// about 4 s of CPU per GB written here, against 0.4 s when writes reuse dropped pages.
    private func trimPageCache() {
        let window = configuration.pageCacheBytes
        guard window > 0 else { return }
        while let first = retiring.first, written - first.endWritten >= window {
            // Gone (retention deleted it): its pages went with it.
            let closed = Glibc.open(first.path, O_RDONLY | O_CLOEXEC)
            if closed >= 0 {
                _ = posix_fadvise(closed, 0, 0, POSIX_FADV_DONTNEED)
                Glibc.close(closed)
            }
            retiring.removeFirst()
        }
        let keepFrom = size - window
        if keepFrom - cachedFrom >= 16 << 20 {
            _ = posix_fadvise(fd, off_t(cachedFrom), off_t(keepFrom - cachedFrom), POSIX_FADV_DONTNEED)
            cachedFrom = keepFrom
        }
    }

    /// When a failed early roll was last logged (writer thread only).
    private var lastRollFailureLogged: ContinuousClock.Instant?

    /// Closes the active segment `base` early, at a reader's request (damage in its durable part).
    private func rollDamaged(_ base: Int64, verify byte: Int64?) {
        guard base == activeBase, size > 0 else { return }
        if let byte, recordIsWhole(at: byte) {
            logger.info("log: a reader's request to close a segment early names a record that reads whole now (a stale request, or a write that was slow to finish); not closed", metadata: [
                "topic": "\(topic.name)", "segment": "\(Files.segmentPath(topic.directory, base))", "byte": .stringConvertible(byte),
            ])
            return
        }
        do throws(LogError) {
            try roll()
            logger.error("log: closed a segment early because a reader found damage in it; readers step to the next segment", metadata: [
                "topic": "\(topic.name)", "segment": "\(Files.segmentPath(topic.directory, base))", "next_segment": .stringConvertible(activeBase),
            ])
        } catch {
            // Readers ask again about once a second: said once a minute at most.
            let now = ContinuousClock.now
            if lastRollFailureLogged.map({ $0.duration(to: now) >= .seconds(60) }) ?? true {
                lastRollFailureLogged = now
                logger.error("log: cannot close a damaged segment early; its readers stay at the damage", metadata: ["topic": "\(topic.name)", "error": "\(error)"])
            }
        }
    }

    /// When the active segment was last checked for a deletion under the log, and whether it was
    /// found deleted and could not be left yet (writer thread only).
    private var lastLinkCheck = ContinuousClock.now
    private var activeSegmentDeleted = false

    /// At most once a second, before a group commit: if the active segment's file was deleted under
    /// the log (by hand: the log deletes only closed segments), says so at error level and goes on in
    /// a new segment. Appends went on into the deleted file, acknowledged, while readers in other
    /// processes could no longer find it, and the next start blamed retention (a probe: 18,680
    /// acknowledged events missing). Its records stay readable only to readers that hold it open;
    /// the others step past the gap as past a damaged segment, counting what they missed.
    /// Returns the error to fail the group with when the segment was deleted and no new one can be
    /// made: nothing may be acknowledged into a deleted file (checked again at every commit then).
    private func rollIfActiveSegmentDeleted() -> LogError? {
        let now = ContinuousClock.now
        guard fd >= 0, size > 0, activeSegmentDeleted || lastLinkCheck.duration(to: now) >= .seconds(1) else { return nil }
        lastLinkCheck = now
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_nlink == 0 else { return nil }
        activeSegmentDeleted = true
        let deleted = activeBase
        let (end, bytes) = (nextOffset, size)
        do throws(LogError) {
            try roll()
        } catch {
            logFailure("log: the segment being written was deleted, and a new one cannot be made", error, records: nil)
            return error
        }
        activeSegmentDeleted = false
        topic.forget(segment: deleted, bytes: bytes)
        logger.error("log: the segment being written was deleted under the log (never delete log files by hand): its records are lost to every reader that had not opened it; appends go on in a new segment", metadata: [
            "topic": "\(topic.name)", "segment": "\(Files.segmentPath(topic.directory, deleted))",
            "log.first_lost": .stringConvertible(deleted), "log.end": .stringConvertible(end), "next_segment": .stringConvertible(activeBase),
        ])
        return nil
    }

    /// Whether the record at `byte` of the active segment is whole and its checksum holds, read with
    /// the writer's own file (writer thread only). Unreadable counts as not whole.
    private func recordIsWhole(at byte: Int64) -> Bool {
        let header = Int64(Files.recordHeaderBytes)
        guard byte >= 0, byte + header <= size else { return false }
        var head = [UInt8](repeating: 0, count: Files.recordHeaderBytes)
        guard pread(fd, &head, head.count, off_t(byte)) == head.count else { return false }
        let length = head.withUnsafeBytes { LogFraming.readUInt32($0, at: 0) }
        guard Int(length) <= configuration.maxRecordBytes, byte + header + Int64(length) <= size else { return false }
        var record = [UInt8](repeating: 0, count: Files.recordHeaderBytes + Int(length))
        guard pread(fd, &record, record.count, off_t(byte)) == record.count else { return false }
        return SegmentScanner.validRecord(in: record, at: 0, maxRecordBytes: configuration.maxRecordBytes) != nil
    }

    private func roll() throws(LogError) {
        // A closed segment ends with its last record: readers take anything after it for corruption.
        if fileEnd > size {
            let oldPath = Files.segmentPath(topic.directory, activeBase)
            if ftruncate(fd, off_t(size)) != 0 { throw Files.error("cannot cut the zero-filled space off", oldPath) }
            let err = Files.syncData(fd)
            if err != 0 { throw Files.error("cannot fdatasync", oldPath, err) }
            fileEnd = size
        }
        let base = nextOffset
        let newFD = try Files.createSegment(topic.directory, base)
        Glibc.close(fd)
        if configuration.pageCacheBytes > 0 {
            retiring.append((Files.segmentPath(topic.directory, activeBase), written))
        }
        topic.rolled(to: base, closedSegmentBytes: size)
        fd = newFD
        activeBase = base
        size = 0
        fileEnd = 0
        cachedFrom = 0
        logger.debug("log: new segment", metadata: ["topic": "\(topic.name)", "base": .stringConvertible(base)])
    }
}

/// Free space on the log's file system, checked with statvfs before each group commit.
final class DiskMonitor: @unchecked Sendable {
    let directory: String
    let minimumFreeBytes: Int64
    private let free = Gauge(label: "playhead_log_disk_free_bytes")
    private let capacity = Gauge(label: "playhead_log_disk_capacity_bytes")
    private let lock = NSLock()
    /// Why the file system is below what appends need (bytes, or inodes), or nil.
    private var belowMinimum: String?
    /// When a change of `belowMinimum` was last logged.
    private var lastTransitionLogged: ContinuousClock.Instant?
    /// What the log last said: appends refused (true) or taken (false, also before anything is said).
    private var saidRefusing = false
    /// A write ran out of space, and the free bytes then: it holds until a write succeeds or the
    /// file system has more room than then. (It was cleared by the next check of free space above
    /// `minimumFreeBytes`, so on a full disk with `--log-min-free-bytes 0` `/readyz` said ready
    /// between two refused appends: CI, 2026-12-06.)
    private var lastFullError = false
    private var freeAtFullError: Int64 = 0

    private let logger: Logger
    /// statvfs of a folder (``Files/diskSpace(_:)``; tests give their own).
    private let diskSpace: @Sendable (String) -> (free: Int64, capacity: Int64, freeInodes: Int64, inodes: Int64)?

    /// The least time between two lines on the refusal's start or end.
    private let transitionLogInterval: Duration

    init(
        directory: String, minimumFreeBytes: Int64, logger: Logger, transitionLogInterval: Duration = .seconds(10),
        diskSpace: @escaping @Sendable (String) -> (free: Int64, capacity: Int64, freeInodes: Int64, inodes: Int64)? = Files.diskSpace
    ) {
        self.directory = directory
        self.minimumFreeBytes = minimumFreeBytes
        self.logger = logger
        self.transitionLogInterval = transitionLogInterval
        self.diskSpace = diskSpace
    }

    /// Refreshes the gauges only (also for a reader in another process than the log's writer:
    /// `store`, `observe`); returns the space found.
    @discardableResult
    func refreshGauges() -> (free: Int64, capacity: Int64, freeInodes: Int64, inodes: Int64)? {
        guard let space = diskSpace(directory) else { return nil }
        free.record(Double(space.free))
        capacity.record(Double(space.capacity))
        return space
    }

    /// Refreshes the gauges; returns a `.full` error when free space is below the minimum.
    func checkBeforeWrite() -> LogError? {
        guard let space = refreshGauges() else { return nil }
        // Out of inodes, a new segment cannot be made, whatever the bytes free (a probe: every
        // append failed while /readyz said ready, and each failure logged an error). A roll needs one.
        let below: String? = space.free < minimumFreeBytes
            ? "is below \(minimumFreeBytes) free bytes (\(space.free) free)"
            : space.inodes > 0 && space.freeInodes < 2 ? "has fewer than 2 free inodes (\(space.freeInodes) of \(space.inodes); a new segment needs one)" : nil
        lock.lock()
        belowMinimum = below
        if below == nil { clearFullIfRoomGrew(free: space.free) }
        // Said when it starts and when it ends (it was silent: only /readyz and the metrics showed
        // it), at most once per 10 s: free space that hovers at the minimum flips it at every group
        // commit. What the log says follows the state once the 10 s are up (checked each second):
        // a change within them was never said, and the last line said appends were taken while
        // every one was refused, or the reverse (an outside review of the logs).
        let now = ContinuousClock.now
        let due = (below != nil) != saidRefusing && (lastTransitionLogged.map { $0.duration(to: now) >= transitionLogInterval } ?? true)
        if due {
            lastTransitionLogged = now
            saidRefusing = below != nil
        }
        lock.unlock()
        if due, let below {
            let advice = space.free < minimumFreeBytes ? "free space, or lower --log-min-free-bytes" : "delete files on it, or give it more inodes"
            logger.warning("log: appends are refused (503 log_full): the file system of \(directory) \(below); \(advice)", metadata: [
                "log.directory": "\(directory)", "log.free_bytes": .stringConvertible(space.free), "log.min_free_bytes": .stringConvertible(minimumFreeBytes),
            ])
        } else if due {
            logger.notice("log: the file system of \(directory) has room again; appends are taken", metadata: [
                "log.directory": "\(directory)", "log.free_bytes": .stringConvertible(space.free),
            ])
        }
        guard let below else { return nil }
        // Clients see this message (503 log_full): the folder is named only in the server's log above.
        return LogError(code: .full, message: "the log's file system \(below)", retryAfterSeconds: 5)
    }

    func noteFull() {
        let free = diskSpace(directory)?.free ?? 0
        lock.lock()
        lastFullError = true
        freeAtFullError = free
        lock.unlock()
    }

    /// A write went through: a full disk noted before is past.
    func noteWritten() {
        lock.lock()
        lastFullError = false
        lock.unlock()
    }

    /// Why appends would fail now, if they would. After a write that ran out of space, until a
    /// write succeeds or the file system has more room than then (looked at here: an instance
    /// out of a load balancer's rotation gets no append to try).
    var reason: String? {
        lock.lock()
        let (below, full, freeThen) = (belowMinimum, lastFullError, freeAtFullError)
        lock.unlock()
        if let below { return "log_full: the file system of \(directory) \(below)" }
        guard full else { return nil }
        if let space = diskSpace(directory), space.free > freeThen {
            lock.lock()
            clearFullIfRoomGrew(free: space.free)
            lock.unlock()
            return nil
        }
        return "log_full: the last write to \(directory) ran out of space"
    }

    /// Forgets a write that ran out of space once the file system has more room than then.
    /// Called with `lock` held.
    private func clearFullIfRoomGrew(free: Int64) {
        if lastFullError && free > freeAtFullError { lastFullError = false }
    }
}
