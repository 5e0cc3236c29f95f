#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Logging
import Metrics

/// Reads one topic of the embedded log (partition 0). Blocking file reads run on a private serial
/// queue, never on the cooperative pool; the queue also serialises access to the cursor.
final class EmbeddedConsumer: LogConsumer, @unchecked Sendable {
    let group: String?
    let topic: TopicState
    let root: String
    let configuration: EmbeddedLogConfiguration
    let logger: Logger
    private let queue: DispatchQueue
    private let isLogClosed: @Sendable () -> Bool
    private let lagGauge: Gauge?

    // Only touched on `queue`.
    private var assignedReported = false
    private var nextOffset: Int64 = 0
    private var skipUntil: Int64 = 0
    private var positioned = false
    private var fd: Int32 = -1
    private var segmentBase: Int64 = 0
    private var position: Int64 = 0
    private var buffer: [UInt8] = []
    /// Whether the last read stopped before the end of what the log holds (at a segment's end with
    /// the next segment there, or at the poll's record or byte bound): poll again without a pause.
    private var moreAvailable = false
    /// Where the last read found no record (segment and byte), to read little there next time.
    private var idleAt: (base: Int64, position: Int64)?
    private var committedOffsets: [Int32: Int64] = [:]
    /// The highest offset the group has committed that this consumer knows of (its file's at open,
    /// and its own commits since): retention may have deleted records below it, never above. Not
    /// the current offset, which the lake writer moves back for a new lake.
    private var highestCommitted: Int64?
    private var closed = false

    init(topic: TopicState, group: String?, root: String, configuration: EmbeddedLogConfiguration,
         logger: Logger, isLogClosed: @escaping @Sendable () -> Bool) throws(LogError) {
        self.topic = topic
        self.group = group
        self.root = root
        self.configuration = configuration
        self.logger = logger
        self.isLogClosed = isLogClosed
        self.queue = DispatchQueue(label: "playhead.log.consumer.\(topic.name).\(group ?? "-")")
        if let group {
            do throws(LogError) {
                committedOffsets = try GroupOffsets.read(root: root, group: group, topic: topic.name)
            } catch where error.code == .corrupt {
                // Damaged, or edited by hand (the log replaces it atomically): read as nothing
                // committed, which retention already takes it for (it keeps every segment). The
                // lake writer goes on from its lake's own state, and the metrics consumer counts
                // the live window again. It stopped the whole server, HTTP edge and all (an
                // outside review). The group's next commit writes the file anew.
                logger.error("log: group \(group)'s committed offsets cannot be read; reading as a new group does, and its next commit writes the file anew", metadata: [
                    "file": "\(GroupOffsets.path(root: root, group: group, topic: topic.name))", "error": "\(error)",
                ])
                committedOffsets = [:]
            }
            highestCommitted = committedOffsets[0]
        }
        // The gauge is the group's lag on the events topic: a group that also reads `rejected`
        // (the lake writer) must not overwrite it with that small topic's lag.
        if let group, topic.name == LogTopic.events.name {
            lagGauge = Gauge(label: "playhead_consumer_lag_events", dimensions: [("consumer", group)])
            // The embedded log's one partition, which a group's consumer always holds (on Kafka
            // the group's assignment decides; the same series there shows a member holding none).
            Gauge(label: "playhead_consumer_partitions_assigned", dimensions: [("consumer", group)]).record(1)
        } else {
            lagGauge = nil
        }
        let earliest = topic.segments().first ?? 0
        nextOffset = committedOffsets[0] ?? earliest
        if let group, let committed = committedOffsets[0] {
            // Past the end: the group's file was edited, or belongs to another log. Waiting there
            // read nothing, silently, until the log caught up (the live metrics stood still, a probe).
            let end = topic.endOffset(maxRecordBytes: configuration.maxRecordBytes)
            if committed > end {
                logger.warning("log: group \(group)'s committed offset of \(topic.name) is past the log's end; reading from the end", metadata: [
                    "log.committed": .stringConvertible(committed), "log.end": .stringConvertible(end), "file": "\(root)/groups/\(group)/\(topic.name)",
                ])
                nextOffset = end
            }
        }
        skipUntil = nextOffset
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws(LogError) -> T) async throws(LogError) -> T {
        let result: Result<T, LogError> = await withCheckedContinuation { continuation in
            queue.async {
                do throws(LogError) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    private func checkOpen() throws(LogError) {
        if closed || isLogClosed() {
            throw LogError(code: .closed, message: "the consumer of \(topic.name) is closed")
        }
    }

    func poll(maxRecords: Int, timeout: Duration) async throws(LogError) -> LogPoll {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let maxRecords = max(1, maxRecords)
        while true {
            let generation = topic.generation
            let poll = try await onQueue { () throws(LogError) -> LogPoll in
                try self.checkOpen()
                if !self.assignedReported {
                    self.assignedReported = true
                    return LogPoll(assigned: [0: self.nextOffset])
                }
                if let batch = try self.readAvailable(maxRecords: maxRecords) {
                    return LogPoll(batches: [batch], moreAvailable: self.moreAvailable)
                }
                return LogPoll()
            }
            if !poll.isEmpty { return poll }
            let now = ContinuousClock.now
            if now >= deadline || Task.isCancelled { return poll }
            let remaining = now.duration(to: deadline)
            if topic.readOnly {
                try? await Task.sleep(for: min(remaining, configuration.readOnlyPollInterval))
            } else {
                await topic.waitForAppend(after: generation, timeout: remaining)
            }
        }
    }

    func seek(partition: Int32, to offset: Int64) async throws(LogError) {
        guard partition == 0 else {
            throw LogError(code: .invalidArgument, message: "the embedded log has only partition 0, not \(partition)")
        }
        try await onQueue { () throws(LogError) in
            try self.checkOpen()
            self.closeSegment()
            self.nextOffset = offset
            self.skipUntil = offset
            self.positioned = false
        }
    }

    func commit(_ offsets: [Int32: Int64]) async throws(LogError) {
        guard let group else { return }
        for partition in offsets.keys where partition != 0 {
            throw LogError(code: .invalidArgument, message: "the embedded log has only partition 0, not \(partition)")
        }
        guard let offset = offsets[0] else { return }
        try await onQueue { () throws(LogError) in
            try self.checkOpen()
            var updated = self.committedOffsets
            updated[0] = offset
            try GroupOffsets.write(updated, root: self.root, group: group, topic: self.topic.name)
            self.committedOffsets = updated
            self.highestCommitted = max(self.highestCommitted ?? offset, offset)
        }
    }

    func committed() async throws(LogError) -> [Int32: Int64] {
        guard group != nil else { return [:] }
        return try await onQueue { self.committedOffsets }
    }

    func lag() async -> Int64? {
        let result = try? await onQueue { () -> Int64 in
            let end = self.topic.endOffset(maxRecordBytes: self.configuration.maxRecordBytes)
            let from = self.group == nil ? self.nextOffset : (self.committedOffsets[0] ?? (self.topic.segments().first ?? 0))
            return max(0, end - from)
        }
        if let result { lagGauge?.record(Double(result)) }
        return result
    }

    func endOffset(partition: Int32) async -> Int64? {
        guard partition == 0 else { return nil }
        return try? await onQueue { self.topic.endOffset(maxRecordBytes: self.configuration.maxRecordBytes) }
    }

    func skipDamagedRecord() async throws(LogError) -> DamagedLogRecord? {
        try await onQueue { () throws(LogError) -> DamagedLogRecord? in
            try self.checkOpen()
            return try self.skipDamagedRecordOnQueue()
        }
    }

    /// The damaged bytes at the cursor, when the offsets after them are certain; the cursor moves
    /// past them. A record whose checksum fails and whose frame is whole: that record. Anything else
    /// that cannot be read (a damaged length, a record cut short) in a segment another follows: the
    /// rest of the segment, whose records end where the next segment's name says. In the active
    /// segment, the writer is first asked to close it (and nil returned until it has).
    private func skipDamagedRecordOnQueue() throws(LogError) -> DamagedLogRecord? {
        if fd < 0 {
            guard try openSegment() else { return nil }
        }
        let following = topic.segments().first(where: { $0 > segmentBase })
        // Beside a writer in another process, the open segment's end may be a write in progress.
        if topic.readOnly && following == nil { return nil }
        let path = Files.segmentPath(topic.directory, segmentBase)
        let limit = topic.readableLimit(base: segmentBase, fd: fd)
        let header = Int64(Files.recordHeaderBytes)
        /// The record at `at`: its length, whether its checksum holds, and its bytes; nil if it does not fit.
        func frame(at: Int64) throws(LogError) -> (bytes: [UInt8], valid: Bool)? {
            guard at + header <= limit else { return nil }
            var head = [UInt8](repeating: 0, count: Files.recordHeaderBytes)
            guard try Files.read(fd, into: &head, count: Files.recordHeaderBytes, at: at, path: path) == Files.recordHeaderBytes else { return nil }
            let (length, stored) = head.withUnsafeBytes { (LogFraming.readUInt32($0, at: 0), LogFraming.readUInt32($0, at: 4)) }
            guard Int(length) <= configuration.maxRecordBytes, at + header + Int64(length) <= limit else { return nil }
            var bytes = [UInt8](repeating: 0, count: Files.recordHeaderBytes + Int(length))
            guard try Files.read(fd, into: &bytes, count: bytes.count, at: at, path: path) == bytes.count else { return nil }
            let valid = bytes.withUnsafeBytes { raw in
                CRC32C.record(length: length, value: UnsafeRawBufferPointer(rebasing: raw[Files.recordHeaderBytes...]))
                    == stored
            }
            return (bytes, valid)
        }
        /// The bytes from the cursor to the segment's end.
        func restOfSegment() throws(LogError) -> [UInt8] {
            var rest = [UInt8](repeating: 0, count: Int(max(0, Files.fileSize(fd) - position)))
            let got = try Files.read(fd, into: &rest, count: rest.count, at: position, path: path)
            rest.removeLast(rest.count - got)
            return rest
        }
        /// Leaves this segment for the next one, which starts at offset `next`.
        func step(to next: Int64) {
            closeSegment()
            skipUntil = max(skipUntil, next)
            nextOffset = next
            positioned = false
        }
        if let following, nextOffset >= following, case let extra = try restOfSegment(), !extra.isEmpty {
            // Bytes after the records a closed segment holds by its name (more records, or anything
            // else): they have no offsets, and the next segment's first record is `following`.
            logger.error("log: a closed segment holds bytes after its last record (more than its name and the next segment's say); they have no offsets, and the reader steps to the next segment", metadata: [
                "topic": "\(topic.name)", "segment": "\(path)", "byte": .stringConvertible(position), "bytes": .stringConvertible(extra.count),
                "next_segment": .stringConvertible(following),
            ])
            step(to: following)
            return DamagedLogRecord(partition: 0, offset: following, records: 0, missed: 0, bytes: extra)
        }
        let here = try frame(at: position)
        // Not stopped at damage (the reading failed for another reason, or has moved on).
        if let here, here.valid { return nil }
        if let damaged = here, nextOffset >= skipUntil {
            let after = position + Int64(damaged.bytes.count)
            // Certain when the next record is whole and valid (a damaged length would land
            // elsewhere), or when the segment ends right after it and the next starts at the next offset.
            let certain = after < limit ? (try frame(at: after))?.valid == true : following == nextOffset + 1
            if certain {
                let record = DamagedLogRecord(partition: 0, offset: nextOffset, bytes: damaged.bytes)
                position = after
                nextOffset += 1
                return record
            }
        }
        // A frame that cannot be trusted: the records after it in this segment cannot be found
        // again, but those of the next segment can, from the offset its name gives.
        guard let following else {
            // The active segment of this process's writer, damaged where it is durable (so not a
            // write in progress): the writer closes it, and the next try steps to the segment after.
            if !topic.readOnly && position < limit { topic.requestRoll(ifActive: segmentBase) }
            return nil
        }
        guard following > nextOffset else { return nil }
        let rest = try restOfSegment()
        let skipped = DamagedLogRecord(
            partition: 0, offset: nextOffset, records: following - nextOffset,
            missed: max(0, following - max(nextOffset, skipUntil)), bytes: rest
        )
        // Said at error level by a group's consumer, which keeps and counts what it steps past. A
        // reader of no group says nothing here (debug): its caller says what the step means to it
        // (`log dump` a warning per damaged place; the lake writer's warm-up, which reads records the
        // lake holds, a warning), and a restart's warm-up repeated this error, uncounted, at every
        // start for as long as the segment was kept (an outside review).
        let level: Logger.Level = group == nil ? .debug : .error
        if rest.isEmpty {
            // Nothing after the last whole record: the segment's end, or a segment after it, is gone
            // (deleted or cut short by hand), not damaged.
            let from = max(nextOffset, skipUntil)
            logger.log(level: level, "log: records \(from)..<\(following) are missing from the log: \(path) ends at its last whole record, and the next segment starts at offset \(following) (a segment deleted or cut short by hand, or records the log's recovery cut off: see its log); the reader steps to the next segment", metadata: [
                "topic": "\(topic.name)", "segment": "\(path)", "offset": .stringConvertible(from),
                "records_skipped": .stringConvertible(following - from), "next_segment": .stringConvertible(following),
            ])
        } else {
            logger.log(level: level, "log: a damaged record whose length cannot be trusted; the reader steps to the next segment", metadata: [
                "topic": "\(topic.name)", "segment": "\(path)", "byte": .stringConvertible(position), "offset": .stringConvertible(nextOffset),
                "records_skipped": .stringConvertible(following - nextOffset), "next_segment": .stringConvertible(following),
            ])
        }
        step(to: following)
        return skipped
    }

    /// At the log's end; or, for a reader that reads once (no roll requests), stopped at a record
    /// of the last segment that cannot be read (a write in progress in another process, or damage
    /// only a closed segment lets a reader step past): nothing more can be read now.
    func caughtUp() async -> Bool {
        (try? await onQueue {
            // Only a reader that reads once stops there; the others wait, asking the writer to close
            // the segment (a store's warm-up stopped at such a record, an outside review).
            if self.configuration.readOnlyRollRequestAfter == nil, let stuck = self.stuck, stuck.base == self.segmentBase,
               stuck.byte == self.position { return true }
            return self.nextOffset >= self.topic.endOffset(maxRecordBytes: self.configuration.maxRecordBytes)
        }) ?? false
    }

    func close() async {
        _ = try? await onQueue {
            self.closed = true
            self.closeSegment()
        }
    }

    // MARK: Reading (on `queue`)

    private func closeSegment() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        position = 0
    }

    /// Opens the segment holding `skipUntil` (or the earliest one, if retention deleted it).
    private func openSegment() throws(LogError) -> Bool {
        let segments = topic.segments()
        guard let first = segments.first else { return false }
        var target = skipUntil
        if target < first {
            let required = group.map { configuration.requiredGroups.contains($0) } ?? false
            if let group, required || highestCommitted.map({ target >= $0 }) == true {
                // Retention never deletes what a group has not committed: these were deleted by
                // hand, or lost with the disk (the message blamed retention, a probe). A group that
                // must read every record (the lake's) and asks for records it had committed before
                // was moved back: its lake was restored from a copy older than what the log keeps,
                // and lacks them for good (a probe, 2026-12-04: 4,800 events, a warning only).
                let cause = highestCommitted.map({ target < $0 }) == true
                    ? "group \(group) had read them (into this lake or another), then was moved back to \(target), and retention had deleted them: the lake now read lacks them (a lake restored from a copy older than the log's retention, or a new lake for this log; the lake they were written to holds them)"
                    : "group \(group) had not read them, which retention never deletes (log files deleted by hand, or lost with the disk)"
                logger.error("log: records \(target)..<\(first) are missing from the log: \(cause); docs/runbook.md; reading from \(first)", metadata: [
                    "topic": "\(topic.name)", "requested": .stringConvertible(target),
                ])
                // Counted with the damaged records the group's consumer steps past, so that
                // LogRecordDamaged fires (it was a log line only: a drill, 2026-12-04).
                Counter(label: "playhead_log_damaged_records_total", dimensions: [("consumer", group)]).increment(by: Int(first - target))
            } else {
                logger.warning("log: records before \(first) were deleted by retention; reading from \(first)", metadata: [
                    "topic": "\(topic.name)", "requested": .stringConvertible(target),
                ])
            }
            target = first
            skipUntil = first
        }
        let base = segments.last(where: { $0 <= target }) ?? first
        let path = Files.segmentPath(topic.directory, base)
        let newFD: Int32
        do throws(LogError) {
            newFD = try Files.open(path, O_RDONLY)
        } catch {
            // Deleted by retention between listing and opening: try again on the next poll.
            if !FileManager.default.fileExists(atPath: path) { return false }
            throw error
        }
        fd = newFD
        segmentBase = base
        position = 0
        nextOffset = base
        positioned = true
        return true
    }

    /// Reads the complete, valid records available now, up to `maxRecords`.
    private func readAvailable(maxRecords: Int) throws(LogError) -> ConsumedBatch? {
        if fd < 0 {
            guard try openSegment() else { return nil }
        }
        let maxBytes = 32 << 20
        var out: [UInt8] = []
        var count = 0
        var firstOffset: Int64 = -1
        let path = Files.segmentPath(topic.directory, segmentBase)
        moreAvailable = false
        var firstRead = true
        // A closed segment holds exactly `next base − base` records (docs/log-format.md): bytes after
        // that many are damage, not records whose offsets belong to the next segment. They were
        // read as offsets the next segment starts at, and the reader stalled at the crossing without
        // a word (an outside review: a valid record appended to a closed segment was taken as the
        // next segment's first, whose real record was then skipped after a restart).
        let segmentEnd = topic.closedSegmentEnd(base: segmentBase)
        reading: while count < maxRecords && out.count < maxBytes {
            let limit = topic.readableLimit(base: segmentBase, fd: fd)
            if position >= limit {
                if count > 0 {
                    // A poll ends at a segment's end. When the next segment is there, the caller must
                    // not pause as if caught up: with small segments (a few hundred records each) the
                    // readers' pause after a small poll held them to a segment per pause, 2,000-8,000
                    // events/s (a probe, 2026-12-04: the lake 1.45 M events behind after 30 s).
                    moreAvailable = nextOffset > segmentBase && topic.hasSegment(nextOffset)
                    break
                }
                // At the end of this segment: move on if the next one starts right here. That one name
                // is looked up first; listing the folder at every crossing cost a reader in another
                // process a listing of every segment per segment (a probe: 2,613 getdents64 calls for
                // 100 crossings of a folder of 7,573 segments).
                let following = nextOffset > segmentBase && topic.hasSegment(nextOffset)
                    ? nextOffset : topic.segmentsAtTail().first(where: { $0 > segmentBase })
                if let next = following, next > nextOffset, topic.readableLimit(base: segmentBase, fd: fd) <= position {
                    // A closed segment that holds fewer records than the next one's name says: cut short.
                    // A segment cut back to no record at all was said to end "after offset -1" (a review).
                    let holds = nextOffset > segmentBase ? "ends after offset \(nextOffset - 1)" : "holds no record (its name says it starts at offset \(segmentBase))"
                    try stall("\(path) \(holds), but the next segment starts at offset \(next)", limit: limit)
                }
                if let next = following, next == nextOffset {
                    // Read the rest of this segment once more: the writer finishes it before rolling.
                    if topic.readableLimit(base: segmentBase, fd: fd) > position { continue }
                    let nextPath = Files.segmentPath(topic.directory, next)
                    let newFD: Int32
                    do throws(LogError) {
                        newFD = try Files.open(nextPath, O_RDONLY)
                    } catch {
                        // Deleted by retention between the look-up and the open (a reader behind
                        // retention: the lake writer's warm-up reads below every commit): read on
                        // from the log's first segment, as ``openSegment()`` does, instead of
                        // failing the reader, which stopped the warm-up (a review of the code).
                        // Only when retention took it (it deletes from the oldest, so the log now
                        // starts past it): one deleted by hand in the middle is said, as before,
                        // not stepped round (in the writing process the segment list still names it,
                        // and the reader stalled without a word; an outside review of the diff).
                        guard !FileManager.default.fileExists(atPath: nextPath),
                            let first = (try? Files.checkedSegments(topic.directory))?.first, first > next
                        else { throw error }
                        Glibc.close(fd)
                        fd = -1
                        skipUntil = nextOffset
                        return try readAvailable(maxRecords: maxRecords)
                    }
                    Glibc.close(fd)
                    fd = newFD
                    segmentBase = next
                    position = 0
                    return try readAvailable(maxRecords: maxRecords)
                }
                break
            }
            if out.capacity == 0 {
                // Sized once for what is readable now (an upper bound: records shed their 4-byte
                // checksum here), instead of doubling up from empty, which copied each batch about
                // twice more and faulted in fresh pages at every step (perf, 100 events per POST:
                // 1.5 % of `serve`'s CPU). A small poll reserves at most 1 KiB per record asked for.
                out.reserveCapacity(Int(min(limit - position, Int64(maxBytes), Int64(maxRecords) << 10)))
            }
            var want = Int(min(limit - position, Int64(max(1 << 20, buffer.count))))
            if firstRead, let idleAt, idleAt.base == segmentBase, idleAt.position == position {
                // Where the last poll found nothing (the zero-filled space a writer keeps ahead):
                // 4 KiB first, not 1 MiB of zeros at every poll (25 MB/s for an idle reader, a probe).
                want = min(want, 4096)
            }
            firstRead = false
            let got = try Files.read(fd, into: &buffer, count: want, at: position, path: path)
            if got == 0 { break }
            var index = 0
            var progressed = false
            // At a bad record, what came before it is delivered (or skipped) first and the reading
            // stops there: the next read starts at the bad record, so an error names its true offset
            // and a retry never sees the records before it under other offsets.
            var stop = false
            inner: while count < maxRecords && out.count < maxBytes && got - index >= Files.recordHeaderBytes {
                if let segmentEnd, nextOffset >= segmentEnd {
                    if index == 0 && count == 0 {
                        throw LogError.corrupt("\(topic.name): \(path) holds bytes after its last record (offset \(segmentEnd - 1), as the next segment's name says), from byte \(position)")
                    }
                    stop = true
                    break inner
                }
                let (length, stored) = buffer.withUnsafeBytes { raw in
                    (LogFraming.readUInt32(raw, at: index), LogFraming.readUInt32(raw, at: index + 4))
                }
                if Int(length) > configuration.maxRecordBytes {
                    if index == 0 && count == 0 {
                        try stall("a record length of \(length) bytes at byte \(position + Int64(index)) of \(path)", limit: limit, unreadableAt: position)
                    }
                    stop = true
                    break inner
                }
                let total = Files.recordHeaderBytes + Int(length)
                if index + total > got {
                    if position + Int64(index + total) > limit {
                        if index == 0 && count == 0 {
                            try stall("a partial record at byte \(position + Int64(index)) of \(path)", limit: limit, unreadableAt: position)
                        }
                        stop = true
                        break inner
                    }
                    if total > buffer.count { buffer = [UInt8](repeating: 0, count: total) }
                    break
                }
                if nextOffset >= skipUntil {
                    let valid = buffer.withUnsafeBytes { raw in
                        CRC32C.record(length: length, value: UnsafeRawBufferPointer(rebasing: raw[(index + 8)..<(index + total)])) == stored
                    }
                    if !valid {
                        if index == 0 && count == 0 {
                            // A zero header is the zero-filled space after the last record.
                            try stall("a checksum mismatch at offset \(nextOffset) (byte \(position + Int64(index)) of \(path))", limit: limit,
                                      unreadableAt: length != 0 || stored != 0 ? position : nil)
                        }
                        stop = true
                        break inner
                    }
                    if firstOffset < 0 { firstOffset = nextOffset }
                    buffer.withUnsafeBytes { raw in
                        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[index..<(index + 4)]))
                        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[(index + 8)..<(index + total)]))
                    }
                    count += 1
                }
                index += total
                nextOffset += 1
                progressed = true
            }
            position += Int64(index)
            if stop { break reading }
            if !progressed && index == 0 && got >= Files.recordHeaderBytes {
                // The buffer was grown for a large record: read again.
                continue
            }
            if !progressed && got < Files.recordHeaderBytes {
                // The records read before it are delivered first (they were dropped with the error,
                // after the cursor had passed them: a segment cut inside a header lost them all).
                if count == 0 {
                    try stall("a partial record header at byte \(position) of \(path)", limit: limit,
                              unreadableAt: buffer[..<got].contains(where: { $0 != 0 }) ? position : nil)
                }
                break
            }
        }
        guard count > 0 else {
            idleAt = (segmentBase, position)
            return nil
        }
        idleAt = nil
        if count >= maxRecords || out.count >= maxBytes { moreAvailable = true }
        return ConsumedBatch(partition: 0, firstOffset: firstOffset, count: count, values: out)
    }

    /// An incomplete or invalid record: corruption where the writer has finished (a durable region,
    /// or a segment followed by another); otherwise a write in progress in another process.
    /// `unreadableAt`: the byte where the record starts, when its bytes are not zero-filled space.
    private func stall(_ what: String, limit: Int64, unreadableAt byte: Int64? = nil) throws(LogError) {
        let segments = topic.segmentsAtTail()
        let closedSegment = segments.contains(where: { $0 > segmentBase })
        if !topic.readOnly || closedSegment {
            stuck = nil
            throw LogError.corrupt("\(topic.name): \(what)")
        }
        askForRollIfStuck(at: byte, what)
    }

    /// Read-only: where the reader has been unable to read a record of the last segment, since when,
    /// and when it last asked the writing process to close the segment.
    private var stuck: (base: Int64, byte: Int64, since: ContinuousClock.Instant, asked: ContinuousClock.Instant?)?

    /// Beside a writer in another process, a record of the last segment that cannot be read may be a
    /// write in progress, or damage that only a closed segment lets a reader step past (the offset
    /// after a damaged length is known only from the next segment's name). One that stays for
    /// ``EmbeddedLogConfiguration/readOnlyRollRequestAfter`` is reported to the writer through the
    /// topic's `roll-request` file (again every 10 s while it stays); the writer closes the segment
    /// if the record lies in its durable part, and the next read finds it closed.
    private func askForRollIfStuck(at byte: Int64?, _ what: String) {
        guard let byte else {
            stuck = nil
            return
        }
        let now = ContinuousClock.now
        guard let current = stuck, current.base == segmentBase, current.byte == byte else {
            stuck = (segmentBase, byte, now, nil)
            return
        }
        guard let after = configuration.readOnlyRollRequestAfter, current.since.duration(to: now) >= after,
              current.asked.map({ $0.duration(to: now) >= .seconds(10) }) ?? true else { return }
        stuck?.asked = now
        do throws(LogError) {
            try topic.writeRollRequest(base: segmentBase, byte: byte)
            if current.asked == nil {
                logger.warning("log: a record of the last segment has been unreadable for a while (damage, or a write that does not finish); asked the writing process to close the segment early", metadata: [
                    "topic": "\(topic.name)", "problem": "\(what)", "request": "\(topic.rollRequestPath)",
                ])
            }
        } catch {
            if current.asked == nil {
                logger.error("log: cannot ask the writing process to close a segment early (asking again every 10 s); until it can, this reader stays at a record it cannot read, or until that process restarts", metadata: [
                    "topic": "\(topic.name)", "problem": "\(what)", "error": "\(error)",
                ])
            }
        }
    }
}
