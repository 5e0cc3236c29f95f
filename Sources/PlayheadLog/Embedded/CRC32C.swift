import CPlayhead

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the CPU's instruction where there is one,
/// else slice-by-8 tables.
///
/// Every record on disk carries the CRC-32C of its length field and value, so that torn writes and
/// bit rot are detected when a segment is recovered or read.
public enum CRC32C {
    /// Eight 256-entry tables, one after another.
    static let table: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var crc = UInt32(index)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
            }
            table[index] = crc
        }
        for slice in 1..<8 {
            for index in 0..<256 {
                let previous = table[(slice - 1) * 256 + index]
                table[slice * 256 + index] = (previous >> 8) ^ table[Int(previous & 0xFF)]
            }
        }
        return table
    }()

    /// Whether the CPU computes CRC-32C itself (x86-64 SSE4.2: several times faster than the tables).
    static let hardware = playhead_crc32c_hardware() != 0

    /// The CRC-32C of `bytes`, continuing from `previous` (the CRC of the bytes before them; 0 to start).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        let count = bytes.count
        guard count > 0 else { return previous }
        if hardware { return ~playhead_crc32c_update(~previous, bytes.baseAddress, count) }
        return software(bytes, continuing: previous)
    }

    /// The same with the tables (slicing by 8), on any CPU.
    static func software(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        var crc = ~previous
        let count = bytes.count
        guard count > 0 else { return previous }
        table.withUnsafeBufferPointer { t in
            var position = 0
            while position + 8 <= count {
                let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self))
                let low = UInt32(truncatingIfNeeded: word) ^ crc
                let high = UInt32(truncatingIfNeeded: word >> 32)
                crc = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
                position += 8
            }
            while position < count {
                crc = t[Int((crc ^ UInt32(bytes[position])) & 0xFF)] ^ (crc >> 8)
                position += 1
            }
        }
        return ~crc
    }

    public static func checksum<C: Collection<UInt8>>(_ bytes: C, continuing previous: UInt32 = 0) -> UInt32 {
        if let result = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0), continuing: previous) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes { checksum($0, continuing: previous) }
    }

    /// The checksum stored in a record header: CRC-32C over the 4 length bytes, then the value.
    package static func record(length: UInt32, value: UnsafeRawBufferPointer) -> UInt32 {
        var lengthLE = length.littleEndian
        let head = withUnsafeBytes(of: &lengthLE) { checksum($0) }
        return checksum(value, continuing: head)
    }
}
