#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOConcurrencyHelpers

/// A topic's durable end as the writing process last published it, for readers in other processes:
/// the file `<topic>/durable-end`.
///
/// Readers in the writing process see the durable end in memory (``TopicState``); readers in another
/// process (`store`, `observe` and `log dump` beside `ingest`) once read up to the segment file's size,
/// which takes in records written but not yet fsynced. When such a write failed (an `fdatasync`
/// error, then the writer cut the segment back) or was lost (a power cut), the writer gave the same
/// offsets to other records, and a reader that had read the first ones (the lake writer, which then
/// committed past them) never read the second: acknowledged events missing from the lake without a
/// word (an outside review, 2026-12-06). Now the writer writes its durable end here after each
/// `fdatasync`, and readers in other processes read no further (see docs/log-format.md, "Reading").
///
/// The file holds one 48-byte record, rewritten in place with `pwrite`: a magic number, the active
/// segment's base offset, its durable bytes, the offset after the last durable record, a sequence
/// number, and a CRC-32C of the 40 bytes before it. A reader that meets a record being rewritten
/// (its checksum fails) reads again. The file is not fsynced: a copy older than the log only holds
/// readers back, since each value was written after the records it covers were durable.
struct DurableEnd: Equatable, Sendable {
    var base: Int64
    var size: Int64
    var next: Int64

    static let fileName = "durable-end"
    static let recordBytes = 48
    private static let magic: UInt64 = 0x444E_4552_5544_4850  // "PHDUREND", little-endian

    static func path(_ directory: String) -> String { directory + "/" + fileName }

    /// The record's bytes, with `sequence`.
    func encoded(sequence: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.recordBytes)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: Self.magic.littleEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: UInt64(bitPattern: base).littleEndian, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: UInt64(bitPattern: size).littleEndian, toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: UInt64(bitPattern: next).littleEndian, toByteOffset: 24, as: UInt64.self)
            raw.storeBytes(of: sequence.littleEndian, toByteOffset: 32, as: UInt64.self)
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<40]))
            raw.storeBytes(of: crc.littleEndian, toByteOffset: 40, as: UInt32.self)
        }
        return bytes
    }

    /// The record in `bytes`, or nil when it is not one (another file, or caught mid-rewrite).
    static func decode(_ bytes: [UInt8]) -> DurableEnd? {
        guard bytes.count >= recordBytes else { return nil }
        return bytes.withUnsafeBytes { raw -> DurableEnd? in
            guard UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)) == magic else { return nil }
            let crc = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 40, as: UInt32.self))
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<40])) == crc else { return nil }
            func field(_ at: Int) -> Int64 { Int64(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))) }
            let value = DurableEnd(base: field(8), size: field(16), next: field(24))
            guard value.base >= 0, value.size >= 0, value.next >= value.base else { return nil }
            return value
        }
    }

    /// Reads the record of the file open as `fd`: nil when there is none or it stays invalid.
    static func read(_ fd: Int32) -> DurableEnd? {
        var bytes = [UInt8](repeating: 0, count: recordBytes)
        for _ in 0..<3 {
            let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, recordBytes, 0) }
            guard got == recordBytes else { return nil }
            if let value = decode(bytes) { return value }
        }
        return nil
    }
}

/// The writer's side of ``DurableEnd``: the file open for writing, and the last value written.
final class DurableEndWriter: @unchecked Sendable {
    let path: String
    private var fd: Int32
    private var sequence: UInt64 = 0
    /// What the file held when the writer opened it: the previous run's durable end (nil if none).
    let previous: DurableEnd?
    private let logger: Logger
    /// Whether the last write failed (said once, until one succeeds).
    private var failing = false

    /// Opens (or creates) the file in `directory`; nil when it cannot be made (a full disk or a
    /// read-only folder), with a warning: readers in other processes then read as before, up to
    /// the file size.
    init?(directory: String, logger: Logger) {
        path = DurableEnd.path(directory)
        self.logger = logger
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            logger.warning("log: cannot make the durable-end file; readers in other processes (store, observe, log dump) read up to the file size, which can hold records not yet durable (docs/log-format.md)", metadata: [
                "file": "\(DurableEnd.path(directory))", "error": "\(String(cString: strerror(errno)))",
            ])
            return nil
        }
        self.fd = fd
        previous = DurableEnd.read(fd)
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Closes the file (when the log closes; a write after it does nothing). It stayed open until
    /// the log object went, which kept a closed log's file system busy (a test's tmpfs could not be
    /// unmounted).
    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Writes `value` (on the writer's thread, after the `fdatasync` that made it durable). A failed
    /// write leaves the older value, which holds readers in other processes back (said once).
    func write(_ value: DurableEnd) {
        guard fd >= 0 else { return }
        sequence &+= 1
        let bytes = value.encoded(sequence: sequence)
        let err = bytes.withUnsafeBytes { Files.writeAll(fd, $0, at: 0) }
        if err != 0 && !failing {
            logger.warning("log: cannot write the durable-end file; readers in other processes wait at the end it last held until a write succeeds", metadata: [
                "file": "\(path)", "error": "\(String(cString: strerror(err)))",
            ])
        }
        failing = err != 0
    }
}

/// The reader's side of ``DurableEnd`` in another process: opens the file once it exists.
final class DurableEndReader: @unchecked Sendable {
    let path: String
    private struct State {
        var fd: Int32 = -1
        var lastOpen: ContinuousClock.Instant?
        var lastLinkCheck: ContinuousClock.Instant?
        /// The last value read: kept when a read fails or is torn (falling back to the file size
        /// then would read what is not durable yet).
        var lastGood: DurableEnd?
    }
    private let state = NIOLockedValueBox(State())

    init(directory: String) { path = DurableEnd.path(directory) }

    deinit { close() }

    /// Closes the file (when the log closes); a later ``current()`` opens it again.
    func close() {
        state.withLockedValue { state in
            if state.fd >= 0 { Glibc.close(state.fd) }
            state.fd = -1
        }
    }

    /// The published durable end, or nil when no writer of this version has published one (a log
    /// written by an older release: readers read up to the file size, as that release's did).
    func current() -> DurableEnd? {
        let path = self.path
        return state.withLockedValue { state -> DurableEnd? in
            let now = ContinuousClock.now
            if state.fd >= 0, state.lastLinkCheck.map({ $0.duration(to: now) >= .seconds(1) }) ?? true {
                // A file deleted, or replaced (a log folder moved aside and made again), is opened
                // again: the open one must still be the one at the path.
                state.lastLinkCheck = now
                var open = stat(), atPath = stat()
                if fstat(state.fd, &open) != 0 || open.st_nlink == 0 || stat(path, &atPath) != 0
                    || atPath.st_ino != open.st_ino || atPath.st_dev != open.st_dev
                {
                    Glibc.close(state.fd)
                    state.fd = -1
                    state.lastGood = nil
                    state.lastOpen = nil
                }
            }
            if state.fd < 0 {
                if let last = state.lastOpen, last.duration(to: now) < .seconds(1) { return state.lastGood }
                state.lastOpen = now
                state.lastLinkCheck = now
                state.fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
                if state.fd < 0 { return nil }
            }
            if let value = DurableEnd.read(state.fd) { state.lastGood = value }
            return state.lastGood
        }
    }
}
