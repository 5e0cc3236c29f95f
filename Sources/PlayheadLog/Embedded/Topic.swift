#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers

/// One topic's directory and what readers in this process may see of it.
///
/// In a writable log, the writer publishes the durable end (after each fdatasync) here, and readers
/// never read beyond it; it also writes it to the topic's `durable-end` file (``DurableEnd``). In a
/// read-only log (another process writes), readers list the directory and read up to the durable
/// end that file gives (up to the file size when there is none: a log of an older release), never
/// past a record that is incomplete or fails its checksum.
final class TopicState: @unchecked Sendable {
    let name: String
    let directory: String
    let readOnly: Bool
    /// Writable: the `durable-end` file, for readers in other processes (nil if it cannot be made).
    let durableEndWriter: DurableEndWriter?
    /// Read-only: the writing process's `durable-end` file.
    let durableEndReader: DurableEndReader?

    struct Shared {
        /// Segment base offsets, ascending (writable log only; read-only lists the directory).
        var segments: [Int64] = []
        var activeBase: Int64 = 0
        /// Bytes of the active segment that are durable.
        var durableSize: Int64 = 0
        /// The offset after the last durable record.
        var durableNext: Int64 = 0
        var generation: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
        var closed = false
        /// Bytes in closed segments (for `playhead_log_size_bytes`).
        var closedBytes: Int64 = 0
        /// Read-only: an incremental count of the last segment's records, for `lag()`.
        var tailBase: Int64 = -1
        var tailPosition: Int64 = 0
        var tailRecords: Int64 = 0
        /// Asks the writer to close the active segment if its base is the one given (see
        /// ``requestRoll(ifActive:)``); set by the writer.
        /// The second argument: a byte whose record the writer checks first (a request from another
        /// process, which may be stale), or nil.
        var rollHandler: (@Sendable (Int64, Int64?) -> Void)?
    }

    let shared = NIOLockedValueBox(Shared())

    init(name: String, directory: String, readOnly: Bool, durableEndWriter: DurableEndWriter? = nil) {
        self.name = name
        self.directory = directory
        self.readOnly = readOnly
        self.durableEndWriter = readOnly ? nil : durableEndWriter
        durableEndReader = readOnly ? DurableEndReader(directory: directory) : nil
    }

    /// Called by the writer after a successful fdatasync.
    func publish(durableSize: Int64, durableNext: Int64) {
        let (waiters, base) = shared.withLockedValue { state -> ([CheckedContinuation<Void, Never>], Int64) in
            state.durableSize = durableSize
            state.durableNext = durableNext
            state.generation &+= 1
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            return (waiters, state.activeBase)
        }
        durableEndWriter?.write(DurableEnd(base: base, size: durableSize, next: durableNext))
        for waiter in waiters { waiter.resume() }
    }

    /// Segment `base` (a closed one, of `bytes` bytes) is gone: deleted by retention, or found
    /// deleted under the log.
    func forget(segment base: Int64, bytes: Int64) {
        shared.withLockedValue { state in
            state.segments.removeAll { $0 == base }
            state.closedBytes -= bytes
        }
    }

    /// Segment `base` that retention forgot could not be deleted after all: it is the topic's again.
    func restore(segment base: Int64, bytes: Int64) {
        shared.withLockedValue { state in
            guard !state.segments.contains(base) else { return }
            state.segments.insert(base, at: state.segments.firstIndex { $0 > base } ?? state.segments.endIndex)
            state.closedBytes += bytes
        }
    }

    func rolled(to base: Int64, closedSegmentBytes: Int64) {
        let next = shared.withLockedValue { state -> Int64 in
            state.closedBytes += closedSegmentBytes
            state.segments.append(base)
            state.activeBase = base
            state.durableSize = 0
            return state.durableNext
        }
        // Readers in other processes finish the closed segment (cut to its records before the new
        // one was made) and wait at the start of the new one.
        durableEndWriter?.write(DurableEnd(base: base, size: 0, next: next))
    }

    /// A reader found damage in the durable part of segment `base` while it is the active one: asks
    /// the writer to close it and start the next, whose name is the offset after the last record,
    /// so that readers can step past the damage as in any closed segment. Nothing happens if the
    /// segment is no longer active or no writer is open.
    func requestRoll(ifActive base: Int64) {
        let handler = shared.withLockedValue { $0.activeBase == base ? $0.rollHandler : nil }
        handler?(base, nil)
    }

    /// The file through which a reader in another process (a read-only open) asks the writing
    /// process for ``requestRoll(ifActive:)``: one line, `<segment base> <byte>\n`.
    var rollRequestPath: String { directory + "/roll-request" }

    /// Read-only: asks the writing process to close segment `base`, whose record at `byte` cannot be
    /// read (written atomically; the writer removes it once read).
    func writeRollRequest(base: Int64, byte: Int64) throws(LogError) {
        // A temporary name of this process's own: `store` and `observe` may ask at the same moment.
        // No fsync: a request lost in a crash is made again.
        try Files.writeAtomically(
            Array("\(base) \(byte)\n".utf8), to: rollRequestPath, temporary: rollRequestPath + ".\(getpid()).tmp", durable: false)
    }

    /// Writable: takes a reader's request from ``rollRequestPath``, if there is one, and passes it on
    /// when `base` is the active segment and `byte` lies in its durable part (a record there that a
    /// reader cannot read is damage, not a write in progress; the writer also reads the record there
    /// again before it rolls, since the request may be stale: made before a restart, or before a
    /// slow write finished). Returns the request and whether it was passed on; nil when there is
    /// none. The file is removed either way.
    func takeRollRequest() -> (base: Int64, byte: Int64, accepted: Bool)? {
        let path = rollRequestPath
        guard access(path, F_OK) == 0 else { return nil }
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        unlink(path)
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 2, let base = Int64(fields[0]), let byte = Int64(fields[1]) else {
            return (-1, -1, false)
        }
        let handler = shared.withLockedValue { state in
            state.activeBase == base && byte >= 0 && byte < state.durableSize ? state.rollHandler : nil
        }
        handler?(base, byte)
        return (base, byte, handler != nil)
    }

    func close() {
        durableEndReader?.close()
        let waiters = shared.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.closed = true
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var isClosed: Bool { shared.withLockedValue { $0.closed } }
    var generation: UInt64 { shared.withLockedValue { $0.generation } }

    /// Waits until the writer publishes something after `generation`, or `timeout` passes.
    func waitForAppend(after generation: UInt64, timeout: Duration) async {
        if readOnly {
            try? await Task.sleep(for: timeout)
            return
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id: UInt64? = shared.withLockedValue { state in
                if state.generation != generation || state.closed { return nil }
                let id = state.nextWaiter
                state.nextWaiter &+= 1
                state.waiters[id] = continuation
                return id
            }
            guard let id else {
                continuation.resume()
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                let waiter = self.shared.withLockedValue { $0.waiters.removeValue(forKey: id) }
                waiter?.resume()
            }
        }
    }

    /// The segment base offsets, ascending.
    func segments() -> [Int64] {
        if readOnly { return Files.listSegments(directory) }
        return shared.withLockedValue { $0.segments }
    }

    /// ``segments()`` for a reader polling at the end of the log: when read-only, a listing at most
    /// 1 s old. An idle reader beside a writer in another process listed the folder at every 50 ms
    /// poll, 5 % of a core with 1,897 segments (a probe, 2026-12-04). A segment made since is seen
    /// by ``hasSegment(_:)`` (a lookup of its name) or within the second.
    func segmentsAtTail() -> [Int64] {
        guard readOnly else { return segments() }
        let now = ContinuousClock.now
        if let cached = tailListing.withLockedValue({ $0.flatMap { $0.at.duration(to: now) < .seconds(1) ? $0.list : nil } }) {
            return cached
        }
        let list = Files.listSegments(directory)
        tailListing.withLockedValue { $0 = (list, now) }
        return list
    }
    private let tailListing = NIOLockedValueBox<(list: [Int64], at: ContinuousClock.Instant)?>(nil)

    /// Whether a segment starts at `base`: one lookup of its name when read-only, not a listing.
    func hasSegment(_ base: Int64) -> Bool {
        if readOnly { return access(Files.segmentPath(directory, base), F_OK) == 0 }
        return shared.withLockedValue { state in
            // Sorted: a reader near the end (the usual case) finds it among the last.
            state.segments.reversed().contains(base)
        }
    }

    /// The offset after the last record of segment `base` when it is closed: the next segment's
    /// base, which its records must end at. Nil for the segment being written (or, read-only, the
    /// last one the writing process published, or one not yet listed).
    func closedSegmentEnd(base: Int64) -> Int64? {
        func following(_ segments: [Int64]) -> Int64? {
            var found: Int64? = nil
            for segment in segments.reversed() {
                guard segment > base else { break }
                found = segment
            }
            return found
        }
        guard readOnly else {
            return shared.withLockedValue { state in state.activeBase == base ? nil : following(state.segments) }
        }
        if let end = durableEndReader?.current(), base >= end.base { return nil }
        return following(segmentsAtTail())
    }

    /// How many bytes of segment `base` (open as `fd`) a reader may read.
    func readableLimit(base: Int64, fd: Int32) -> Int64 {
        if !readOnly {
            let limit: Int64? = shared.withLockedValue { state in
                state.activeBase == base ? state.durableSize : nil
            }
            if let limit { return limit }
        }
        let fileSize = Files.fileSize(fd)
        // Read-only: no further than the writing process has made durable. A segment that another
        // follows is closed (the writer cut it to its records and synced it before it made the
        // next), and read whole, whatever the file says: a durable end older than the log (after a
        // power cut, before the writer has started; or not updated by an older release's writer)
        // held a closed segment back, and its reader then took the rest of it for damage (a code
        // review). The last segment: up to its durable bytes; one made after the published end (a
        // roll not yet published), nothing yet.
        guard readOnly, let end = durableEndReader?.current() else { return fileSize }
        if base < end.base || segmentsAtTail().contains(where: { $0 > base }) { return fileSize }
        return base == end.base ? min(end.size, fileSize) : 0
    }

    /// The offset after the last record (durable in this process; complete on disk when read-only:
    /// durable, as the writing process published it, or, for a log of an older release, whole).
    func endOffset(maxRecordBytes: Int) -> Int64 {
        if !readOnly { return shared.withLockedValue { $0.durableNext } }
        guard let last = Files.listSegments(directory).last else { return 0 }
        // The published end when it is of the last segment (what a reader can read, so that
        // `log dump` and the lake's warm-up end there when the writer died before an fdatasync);
        // otherwise the file is older than the log, and the whole records on disk count.
        if let end = durableEndReader?.current(), end.base == last, end.next >= last { return end.next }
        let path = Files.segmentPath(directory, last)
        guard let fd = try? Files.open(path, O_RDONLY) else { return last }
        defer { Glibc.close(fd) }
        let (startPosition, startRecords) = shared.withLockedValue { state in
            state.tailBase == last ? (state.tailPosition, state.tailRecords) : (0, 0)
        }
        guard let result = try? SegmentScanner.scan(
            fd, path: path, verifyChecksums: true, maxRecordBytes: maxRecordBytes,
            from: startPosition, records: startRecords
        ) else { return last + startRecords }
        shared.withLockedValue { state in
            state.tailBase = last
            state.tailPosition = result.validBytes
            state.tailRecords = result.records
        }
        return last + result.records
    }

    /// Total bytes of the topic's segments.
    func sizeOnDisk() -> Int64 {
        segments().reduce(0) { $0 + dataSize(ofSegment: $1) }
    }

    /// The bytes of records in segment `base`: its file size, except for the active segment of the
    /// writing process, whose file may hold zero-filled space after its records.
    func dataSize(ofSegment base: Int64) -> Int64 {
        if !readOnly {
            let active: Int64? = shared.withLockedValue { $0.activeBase == base ? $0.durableSize : nil }
            if let active { return active }
        }
        return Files.size(Files.segmentPath(directory, base)) ?? 0
    }
}
