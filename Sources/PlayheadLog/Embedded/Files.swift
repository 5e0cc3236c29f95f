#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Thin POSIX wrappers that report failures as ``LogError`` (ENOSPC, EFBIG and EDQUOT become `.full`).
enum Files {
    static let recordHeaderBytes = 8

    static func errorCode(_ err: Int32) -> LogError.Code {
        if err == ENOSPC || err == EFBIG || err == EDQUOT { return .full }
        // Out of file descriptors or kernel memory: gone once connections close or memory frees, so
        // a client's retry can succeed (503, not the 500 of an I/O error: a probe, 2026-12-04, got
        // 500 "a retry is not expected to succeed" for requests that a retry a second later stored).
        if err == EMFILE || err == ENFILE || err == ENOMEM { return .unavailable }
        return .io
    }

    static func error(_ what: String, _ path: String, _ err: Int32 = errno, file: String = #fileID, line: Int = #line) -> LogError {
        let code = errorCode(err)
        var error = LogError(
            code: code,
            message: "\(what) \(path): \(String(cString: strerror(err)))",
            retryAfterSeconds: code == .full ? 5 : nil,
            file: file, line: line
        )
        // The path stays in the server's log; a client learns the system's reason only.
        error.clientMessage = code == .unavailable
            ? "the server is short of a resource: \(String(cString: strerror(err)))"
            : "the log's disk: \(String(cString: strerror(err)))"
        return error
    }

    static func segmentName(_ base: Int64) -> String {
        let digits = String(base)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".log"
    }

    static func segmentPath(_ directory: String, _ base: Int64) -> String {
        directory + "/" + segmentName(base)
    }

    /// The largest first offset a segment may have: 2^62. No log gets near it (4.6e18 records); a
    /// name past it is not this log's, and offsets counted on from it overflowed: a segment named
    /// `09223372036854775805.log` stopped `serve` and `log dump` with an arithmetic-overflow trap, and
    /// one named past Int64 was passed over in silence (a probe, 2026-12-04).
    static let maxSegmentBase: Int64 = 1 << 62

    /// The base offsets of the segments in `directory`, ascending (empty if it does not exist).
    static func listSegments(_ directory: String) -> [Int64] {
        (try? segmentBases(directory, refusingOutOfRange: false)) ?? []
    }

    /// ``listSegments(_:)`` for a log that opens: a segment name (20 digits and `.log`) past
    /// ``maxSegmentBase`` is an error instead of a base (or, past Int64, a name passed over).
    static func checkedSegments(_ directory: String) throws(LogError) -> [Int64] {
        try segmentBases(directory, refusingOutOfRange: true)
    }

    private static func segmentBases(_ directory: String, refusingOutOfRange: Bool) throws(LogError) -> [Int64] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var bases: [Int64] = []
        for name in names where name.hasSuffix(".log") && name.count == 24 {
            let base = Int64(name.prefix(20))
            if refusingOutOfRange, (base ?? .max) > maxSegmentBase, name.prefix(20).allSatisfy({ $0.isASCII && $0.isNumber }) {
                throw LogError.corrupt(
                    "\(directory)/\(name): a segment whose first offset is past 2^62, which no log reaches (4.6e18 records): not a segment of this log (a file named or made by hand?); move it out of the folder")
            }
            if let base { bases.append(base) }
        }
        return bases.sorted()
    }

    /// Creates segment `base` in `directory` (it must not exist) and makes its name durable (the
    /// directory fsynced); on a failure nothing is left behind. Returns the open file (read-write).
    static func createSegment(_ directory: String, _ base: Int64) throws(LogError) -> Int32 {
        let path = segmentPath(directory, base)
        let fd = try open(path, O_RDWR | O_CREAT | O_EXCL)
        do throws(LogError) {
            try syncDirectory(directory)
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
        return fd
    }

    static func makeDirectory(_ path: String) throws(LogError) {
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw error("cannot create directory", path)
        }
    }

    /// Creates `path` and any missing parents. A failure names the directory that could not be
    /// made and the system's reason ("Permission denied"), not a Foundation error domain.
    static func makeDirectories(_ path: String) throws(LogError) {
        var current = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            if !current.isEmpty && !current.hasSuffix("/") { current += "/" }
            current += component
            if mkdir(current, 0o755) != 0 && errno != EEXIST { throw error("cannot create directory", current) }
        }
        var info = stat()
        guard stat(path, &info) == 0 else { throw error("cannot create directory", path) }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw error("cannot create directory", path, ENOTDIR) }
    }

    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o644) throws(LogError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            throw error("cannot open", path)
        }
    }

    static func fileSize(_ fd: Int32) -> Int64 {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return 0 }
        return Int64(info.st_size)
    }

    static func syncData(_ fd: Int32) -> Int32 {
        #if canImport(Darwin)
        return fsync(fd) == 0 ? 0 : errno
        #else
        while true {
            if fdatasync(fd) == 0 { return 0 }
            if errno != EINTR { return errno }
        }
        #endif
    }

    static func syncDirectory(_ path: String) throws(LogError) {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        if fsync(fd) != 0 { throw error("cannot fsync directory", path) }
    }

    /// Writes all of `bytes` at `offset`; returns 0 or the errno of the failure.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) -> Int32 {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + Int64(done)))
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return EIO }
            done += n
        }
        return 0
    }

    /// Whether bytes `start..<end` of `fd` are all zero (false if they cannot be read).
    static func isZeroFilled(_ fd: Int32, from start: Int64, to end: Int64) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var position = start
        while position < end {
            let want = Int(min(Int64(buffer.count), end - position))
            guard let got = try? read(fd, into: &buffer, count: want, at: position, path: ""), got == want else { return false }
            if buffer[..<got].contains(where: { $0 != 0 }) { return false }
            position += Int64(got)
        }
        return true
    }

    /// Reads up to `count` bytes at `offset` into `buffer` (resized); returns the number read.
    static func read(_ fd: Int32, into buffer: inout [UInt8], count: Int, at offset: Int64, path: String) throws(LogError) -> Int {
        if buffer.count < count { buffer = [UInt8](repeating: 0, count: count) }
        var done = 0
        let result: Int32 = buffer.withUnsafeMutableBytes { raw in
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + Int64(done)))
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                if n == 0 { break }
                done += n
            }
            return 0
        }
        if result != 0 { throw error("cannot read", path, result) }
        return done
    }

    /// Writes `contents` to `path` atomically: a temporary file (`temporary`, by default `path` +
    /// `.tmp`), fsync, rename, fsync of the directory; without the fsyncs when not `durable` (the
    /// file is whole or absent after a crash, but may be absent).
    static func writeAtomically(_ contents: [UInt8], to path: String, temporary: String? = nil, durable: Bool = true) throws(LogError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = temporary ?? path + ".tmp"
        let fd = try open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
        var err = contents.withUnsafeBytes { writeAll(fd, $0, at: 0) }
        if err == 0 && durable && fsync(fd) != 0 { err = errno }
        close(fd)
        if err != 0 {
            unlink(temporary)
            throw error("cannot write", temporary, err)
        }
        if rename(temporary, path) != 0 {
            let renameError = errno
            unlink(temporary)
            throw error("cannot rename to", path, renameError)
        }
        if durable { try syncDirectory(directory) }
    }

    /// The log's id in `<root>/id`, made (a random UUID, written atomically) when there is none.
    /// Called by the writer, under the directory's lock.
    static func logIdentity(_ root: String) throws(LogError) -> String {
        if let existing = existingLogIdentity(root) { return existing }
        // A log that has written a lake (it noted its runs there) has an id the lake names: made
        // anew, the lake refused the log as another's, and the old id was gone from the folder
        // (an outside review deleted the file; the refusal's advice was for two logs on one lake).
        let runs = root + "/lake-runs.json"
        if access(runs, F_OK) == 0 {
            throw LogError(code: .invalidArgument, message: "\(root)/id is missing, but this log has written a lake (\(runs) lists its runs): its lake names the log by that id. Write the id back: the lake's _playhead/log.json holds it as log_id (`echo <log_id> > \(root)/id`), and start again. To give this folder a new id on purpose (a copy of another data folder), delete \(runs) too, and point --lake at a lake of its own (docs/lake.md, \"One log per lake\").")
        }
        let id = UUID().uuidString.lowercased()
        try writeAtomically(Array((id + "\n").utf8), to: root + "/id")
        return id
    }

    /// The log's id, if a writer has made it.
    static func existingLogIdentity(_ root: String) -> String? {
        guard let text = try? String(contentsOfFile: root + "/id", encoding: .utf8) else { return nil }
        let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return id.isEmpty ? nil : id
    }

    /// Free and total bytes of the file system holding `path` (for unprivileged users).
    /// Free and total bytes of the file system of `path`, and its free and total inodes (total 0
    /// where the file system has no fixed number: btrfs, some network file systems).
    static func diskSpace(_ path: String) -> (free: Int64, capacity: Int64, freeInodes: Int64, inodes: Int64)? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        let unit = Int64(info.f_frsize == 0 ? info.f_bsize : info.f_frsize)
        return (Int64(info.f_bavail) * unit, Int64(info.f_blocks) * unit, Int64(info.f_favail), Int64(info.f_files))
    }

    static func modificationTime(_ path: String) -> Double? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
    }

    static func size(_ path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int64(info.st_size)
    }
}

/// Walks the records of a segment file.
/// Reads segments as recovery on open and `log salvage` do (`scripts/fuzz segments` checks that the
/// two agree on any bytes, docs/fuzzing.md).
package enum SegmentScanner {
    package struct Result {
        /// Bytes of complete, valid records from the start of the file.
        package var validBytes: Int64
        /// Number of complete, valid records.
        package var records: Int64
        /// Why scanning stopped before the end of the file, if it did.
        package var problem: String?
    }

    /// The length of the complete, valid record that starts at `position` of `bytes`, or nil.
    static func validRecord(in bytes: [UInt8], at position: Int, maxRecordBytes: Int) -> Int? {
        guard position >= 0, bytes.count - position >= Files.recordHeaderBytes else { return nil }
        return bytes.withUnsafeBytes { raw -> Int? in
            let length = LogFraming.readUInt32(raw, at: position)
            guard Int(length) <= maxRecordBytes else { return nil }
            let total = Files.recordHeaderBytes + Int(length)
            guard bytes.count - position >= total else { return nil }
            let stored = LogFraming.readUInt32(raw, at: position + 4)
            let actual = CRC32C.record(length: length, value: UnsafeRawBufferPointer(rebasing: raw[(position + 8)..<(position + total)]))
            return actual == stored ? total : nil
        }
    }

    /// Looks past a record that is not valid (at the start of `tail`) for complete, valid records:
    /// where the first one starts in `tail`, and how many follow one another from there. Nil when
    /// there is none, as after a torn write (the part of a group that never reached the disk).
    ///
    /// Valid records after a bad one mean damage inside the segment, not a torn write: the records
    /// after it were written, and maybe acknowledged, before the damage was done. A match by chance
    /// needs a plausible length and a 32-bit CRC to agree, so it is rare, and a real record is
    /// followed by the next one.
    static func recordsAfterDamage(in tail: [UInt8], maxRecordBytes: Int) -> (position: Int, records: Int)? {
        guard let position = nextValidRecord(in: tail, after: 0, maxRecordBytes: maxRecordBytes) else { return nil }
        var records = 0
        var next = position
        while let length = validRecord(in: tail, at: next, maxRecordBytes: maxRecordBytes) {
            records += 1
            next += length
        }
        return (position, records)
    }

    /// Where the first complete, valid record after byte `position` of `bytes` starts, trying every
    /// byte position; nil when there is none.
    ///
    /// A position's checksum is computed only where the record it would hold is followed by what
    /// follows a record: the end of the bytes (or less than a length's 4 bytes), or a plausible
    /// length (the next record's, or the zeros ahead of the writer). Random bytes pass that about
    /// once in 256, and each checksum covers up to `maxRecordBytes`: checking every position took
    /// 20 s of CPU (before the server listened) for the 17 MB tail behind one bad record of that
    /// size, and it grew as the cube of the tail (an outside review of the code).
    static func nextValidRecord(in bytes: [UInt8], after position: Int, maxRecordBytes: Int) -> Int? {
        bytes.withUnsafeBytes { raw in
            var candidate = position + 1
            while raw.count - candidate >= Files.recordHeaderBytes {
                let length = Int(LogFraming.readUInt32(raw, at: candidate))
                let next = candidate + Files.recordHeaderBytes + length
                let plausible = length <= maxRecordBytes && next <= raw.count
                    && (raw.count - next < 4 || Int(LogFraming.readUInt32(raw, at: next)) <= maxRecordBytes)
                if plausible, validRecord(in: bytes, at: candidate, maxRecordBytes: maxRecordBytes) != nil { return candidate }
                candidate += 1
            }
            return nil
        }
    }

    /// Reads `fd` from the start and returns how far its records are complete and valid.
    /// `chunkBytes`: how much is read at a time, more when a record is longer (the fuzzer reads a
    /// few bytes at a time, so that records and headers straddle every boundary). `knownSize`: the
    /// file's size as the caller took it (by default, `fstat` now); a file found shorter ends there.
    package static func scan(
        _ fd: Int32, path: String, verifyChecksums: Bool, maxRecordBytes: Int, from start: Int64 = 0, records startRecords: Int64 = 0,
        chunkBytes: Int = 1 << 20, knownSize: Int64? = nil
    ) throws(LogError) -> Result {
        var size = knownSize ?? Files.fileSize(fd)
        var position = start
        var records = startRecords
        var buffer = [UInt8](repeating: 0, count: max(chunkBytes, Files.recordHeaderBytes))
        var problem: String?
        scanning: while position < size {
            let want = Int(min(Int64(buffer.count), size - position))
            let got = try Files.read(fd, into: &buffer, count: want, at: position, path: path)
            if got < want {
                // The file is shorter than when the scan began (cut while it was read): it ends
                // here. It read 0 bytes for ever at 100 % CPU, in another process's reader (a
                // `log groups`, a consumer's end offset; an outside review).
                size = position + Int64(got)
            }
            var index = 0
            var advanced = false
            while true {
                if got - index < Files.recordHeaderBytes {
                    let left = size - position - Int64(index)
                    if left < Int64(Files.recordHeaderBytes) {
                        // The end of the file: clean, or inside a header. (Until 2026-12-06 a
                        // clean end read to its last byte was called a partial header of 0
                        // bytes; callers look at `validBytes` first. Found by `scripts/fuzz
                        // segments`.)
                        if left > 0 { problem = "a partial record header (\(left) bytes)" }
                        position += Int64(index)
                        break scanning
                    }
                    break
                }
                let (length, stored) = buffer.withUnsafeBytes { raw in
                    (LogFraming.readUInt32(raw, at: index), LogFraming.readUInt32(raw, at: index + 4))
                }
                if Int(length) > maxRecordBytes {
                    problem = "a record length of \(length) bytes (over the \(maxRecordBytes)-byte limit)"
                    position += Int64(index)
                    break scanning
                }
                let total = Files.recordHeaderBytes + Int(length)
                if index + total > got {
                    if position + Int64(index) + Int64(total) > size {
                        problem = "a partial record (\(size - position - Int64(index)) of \(total) bytes)"
                        position += Int64(index)
                        break scanning
                    }
                    if total > buffer.count { buffer = [UInt8](repeating: 0, count: total) }
                    break
                }
                if verifyChecksums {
                    let actual = buffer.withUnsafeBytes { raw in
                        CRC32C.record(length: length, value: UnsafeRawBufferPointer(rebasing: raw[(index + 8)..<(index + total)]))
                    }
                    if actual != stored {
                        problem = "a checksum mismatch at record \(records)"
                        position += Int64(index)
                        break scanning
                    }
                }
                index += total
                records += 1
                advanced = true
            }
            position += Int64(index)
            _ = advanced
        }
        return Result(validBytes: position, records: records, problem: problem)
    }
}
