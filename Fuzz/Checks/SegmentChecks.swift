#if canImport(Glibc)
import Glibc
#endif
import PlayheadLog

extension FuzzChecks {
    /// The log's segment readers on any bytes: `log salvage` (``LogSalvage``, the whole file in
    /// memory, reading on past damage) and recovery on open (`SegmentScanner`, the file read a
    /// chunk at a time, stopping at the first bad record). The first byte chooses the chunk size
    /// (8 to 71 bytes, so that headers and records straddle chunk boundaries), the record size
    /// limit (64 bytes or 16 MiB), and whether the rest is a file as it is or a list of values the
    /// check frames into a valid segment (length, CRC-32C, value) first.
    ///
    /// - `log salvage` accounts for every byte: records, damaged ranges and trailing zeros, in
    ///   order, without gaps or overlaps; each record's length fits the limit and its CRC holds.
    /// - Recovery keeps exactly the records `log salvage` finds before the first damaged place
    ///   (the same bytes and count), and says why it stopped when that is not the end.
    /// - A valid segment is read whole by both: every value, in order, and no damage.
    public static func segments(_ input: UnsafeRawBufferPointer) -> [String] {
        guard let options = input.first else { return [] }
        let rest = Array(input.dropFirst())
        let chunk = 8 + Int(options & 0x3F)
        let maxRecordBytes = options & 0x40 != 0 ? 64 : 16 << 20
        var values: [[UInt8]]? = nil
        var file = rest
        if options & 0x80 != 0 {
            // Values: a length byte, then that many bytes (fewer at the end).
            var list: [[UInt8]] = []
            var i = 0
            while i < rest.count {
                let n = Int(rest[i])
                list.append(Array(rest[(i + 1)..<min(rest.count, i + 1 + n)]))
                i += 1 + n
            }
            file = []
            for value in list {
                let length = UInt32(value.count)
                let crc = value.withUnsafeBytes { CRC32C.record(length: length, value: $0) }
                withUnsafeBytes(of: length.littleEndian) { file.append(contentsOf: $0) }
                withUnsafeBytes(of: crc.littleEndian) { file.append(contentsOf: $0) }
                file.append(contentsOf: value)
            }
            values = list
        }
        var problems: [String] = []
        let salvage = LogSalvage.scan(file, maxRecordBytes: maxRecordBytes)

        // Every byte accounted for, in order.
        var pieces: [Range<Int>] = salvage.records.map { ($0.byte)..<($0.value.upperBound) } + salvage.damaged
        if let zeros = salvage.zeroFilled { pieces.append(zeros) }
        pieces.sort { $0.lowerBound < $1.lowerBound }
        var at = 0
        for piece in pieces {
            if piece.lowerBound != at || piece.isEmpty { problems.append("salvage: a gap, overlap or empty range at byte \(at): \(piece)") }
            at = piece.upperBound
        }
        if at != file.count { problems.append("salvage: accounts for \(at) of \(file.count) bytes") }
        if let zeros = salvage.zeroFilled, file[zeros].contains(where: { $0 != 0 }) { problems.append("salvage: zeroFilled holds other bytes") }
        for record in salvage.records {
            let count = record.value.count
            let stored = file.withUnsafeBytes { (LogFraming.readUInt32($0, at: record.byte), LogFraming.readUInt32($0, at: record.byte + 4)) }
            let crc = file.withUnsafeBytes { CRC32C.record(length: UInt32(count), value: UnsafeRawBufferPointer(rebasing: $0[record.value])) }
            if Int(stored.0) != count || count > maxRecordBytes || crc != stored.1 || record.value.lowerBound != record.byte + 8 {
                problems.append("salvage: the record at byte \(record.byte) is not a valid frame")
            }
            if record.damagedBefore != salvage.damaged.filter({ $0.lowerBound < record.byte }).count {
                problems.append("salvage: damagedBefore of the record at byte \(record.byte)")
            }
        }

        // Recovery on open: the records before the first damage.
        let before = salvage.records.filter { $0.damagedBefore == 0 }
        let expectedBytes = Int64(before.last?.value.upperBound ?? 0)
        switch scanFile(file, chunkBytes: chunk, maxRecordBytes: maxRecordBytes) {
        case .failure(let error):
            problems.append("recovery: \(error)")
        case .success(let result):
            if result.validBytes != expectedBytes || result.records != Int64(before.count) {
                problems.append("recovery keeps \(result.records) records, \(result.validBytes) bytes; salvage finds \(before.count), \(expectedBytes) bytes (chunks of \(chunk))")
            }
            if (result.problem == nil) != (expectedBytes == Int64(file.count)) {
                problems.append("recovery stops at byte \(result.validBytes) of \(file.count) saying \(result.problem ?? "nothing")")
            }
        }

        // A valid segment, read whole.
        if let values, values.allSatisfy({ $0.count <= maxRecordBytes }) {
            let read = salvage.records.map { Array(file[$0.value]) }
            if read != values || !salvage.damaged.isEmpty || salvage.zeroFilled != nil {
                problems.append("salvage reads \(read.count) of \(values.count) framed values, \(salvage.damaged.count) damaged ranges")
            }
        }
        return problems
    }

    /// The bytes in a temporary file, scanned as recovery on open scans a segment.
    static func scanFile(_ bytes: [UInt8], chunkBytes: Int, maxRecordBytes: Int) -> Result<SegmentScanner.Result, LogError> {
        var template = Array("/tmp/playhead-fuzz-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return .failure(LogError(code: .io, message: "mkstemp failed")) }
        defer {
            close(fd)
            template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { return .failure(LogError(code: .io, message: "write failed")) }
        return Result { () throws(LogError) in
            try SegmentScanner.scan(fd, path: "fuzz", verifyChecksums: true, maxRecordBytes: maxRecordBytes, chunkBytes: chunkBytes)
        }
    }
}
