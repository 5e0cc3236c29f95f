/// Reads back the records of damaged log bytes: a segment file, the tail a log saved when it opened
/// (`<segment>.damaged-at-<byte>`), or what a consumer kept in the lake (`_playhead/damaged/…`).
/// Where a record cannot be read, the bytes after it are searched, one position at a time, for the
/// next complete record whose length fits and whose checksum holds (as recovery on open does), and
/// reading goes on from there. Records between two damaged places cannot be given offsets: how many
/// records the damaged bytes held is unknown.
public enum LogSalvage {
    public struct Record: Sendable, Equatable {
        /// Where the record's frame starts in the bytes.
        public var byte: Int
        /// The record's value (the bytes after its 8-byte header).
        public var value: Range<Int>
        /// How many damaged places come before it: 0 before the first.
        public var damagedBefore: Int
    }

    public struct Result: Sendable, Equatable {
        public var records: [Record]
        /// The byte ranges no record could be read from.
        public var damaged: [Range<Int>]
        /// Zeros at the end, after the last record: the space a writing log fills ahead of its
        /// records (docs/log-format.md), not damage.
        public var zeroFilled: Range<Int>?

        /// The offset of each record where it is certain: counting on from `firstOffset` before the
        /// first damaged place, and back from `endOffset` (the offset after the last record the
        /// bytes hold) after the last one.
        public func offsets(firstOffset: Int64?, endOffset: Int64?) -> [Int64?] {
            // Undamaged, but holding more or fewer records than its offsets say: which of them has
            // which offset is not certain (they were numbered back from the end, a closed segment
            // with a record too many all off by one: an outside review).
            if damaged.isEmpty, let firstOffset, let endOffset, Int64(records.count) != endOffset - firstOffset {
                return Array(repeating: nil, count: records.count)
            }
            if impossible(firstOffset: firstOffset, endOffset: endOffset) { return Array(repeating: nil, count: records.count) }
            var result: [Int64?] = []
            var beforeFirst: Int64 = 0
            var fromEnd = afterLast
            for record in records {
                var offset: Int64?
                if record.damagedBefore == 0, let firstOffset {
                    offset = firstOffset + beforeFirst
                    beforeFirst += 1
                }
                if record.damagedBefore == damaged.count, let endOffset {
                    offset = endOffset - fromEnd
                    fromEnd -= 1
                }
                result.append(offset)
            }
            return result
        }

        /// Whether `firstOffset` and `endOffset` cannot both be right for these records: the records
        /// after the last damaged place, counted back from `endOffset`, would start below 0 or below
        /// those counted on from `firstOffset` (an outside review: `--end-offset 100` numbered
        /// records from -149).
        /// The records after the last damaged place (all of them when there is none).
        var afterLast: Int64 { Int64(records.filter { $0.damagedBefore == damaged.count }.count) }

        public func impossible(firstOffset: Int64?, endOffset: Int64?) -> Bool {
            guard let endOffset else { return false }
            let beforeFirst = damaged.isEmpty ? 0 : Int64(records.filter { $0.damagedBefore == 0 }.count)
            return endOffset - afterLast < (firstOffset ?? 0) + beforeFirst
        }
    }

    /// `count` bytes read whole as one record's value, without a frame: what the lake writer keeps
    /// of a record whose value it cannot read (`p<partition>-<offset>.record`).
    public static func wholeValue(_ count: Int) -> Result {
        Result(records: [Record(byte: 0, value: 0..<count, damagedBefore: 0)], damaged: [], zeroFilled: nil)
    }

    public static func scan(_ bytes: [UInt8], maxRecordBytes: Int = EmbeddedLogConfiguration(directory: "").maxRecordBytes) -> Result {
        var records: [Record] = []
        var damaged: [Range<Int>] = []
        var position = 0
        var zeroFilled: Range<Int>?
        while position < bytes.count {
            if let total = SegmentScanner.validRecord(in: bytes, at: position, maxRecordBytes: maxRecordBytes) {
                records.append(Record(byte: position, value: (position + Files.recordHeaderBytes)..<(position + total), damagedBefore: damaged.count))
                position += total
                continue
            }
            if bytes[position...].allSatisfy({ $0 == 0 }) {
                zeroFilled = position..<bytes.count
                break
            }
            let next = SegmentScanner.nextValidRecord(in: bytes, after: position, maxRecordBytes: maxRecordBytes) ?? bytes.count
            damaged.append(position..<next)
            position = next
        }
        return Result(records: records, damaged: damaged, zeroFilled: zeroFilled)
    }
}
