/// A small Snappy compressor (the raw block format: a varint length, then literals and copies with
/// 2-byte offsets within 64 KiB blocks). Greedy matching on 4-byte hashes.
struct SnappyCompressor {
    private static let tableBits = 14
    private var table = [Int32](repeating: -1, count: 1 << 14)

    mutating func compress(_ input: UnsafeRawBufferPointer, into out: ByteSink) {
        out.appendVarint(UInt64(input.count))
        guard let base = input.baseAddress, input.count > 0 else { return }
        var blockStart = 0
        while blockStart < input.count {
            let blockEnd = min(input.count, blockStart + 65536)
            compressBlock(base, blockStart, blockEnd, out)
            blockStart = blockEnd
        }
    }

    private static func emitLiteral(_ p: UnsafeRawPointer, _ n: Int, _ out: ByteSink) {
        guard n > 0 else { return }
        let m = n - 1
        if m < 60 {
            out.append(byte: UInt8(m << 2))
        } else if m < 1 << 8 {
            out.append(byte: 60 << 2)
            out.append(byte: UInt8(m))
        } else if m < 1 << 16 {
            out.append(byte: 61 << 2)
            out.appendLittleEndian(UInt16(m))
        } else {
            out.append(byte: 63 << 2)
            out.appendLittleEndian(UInt32(m))
        }
        out.append(p, count: n)
    }

    private static func emitCopy(offset: Int, length: Int, _ out: ByteSink) {
        var remaining = length
        while remaining > 0 {
            let chunk = remaining > 64 ? (remaining - 64 < 4 ? 60 : 64) : remaining
            out.append(byte: UInt8((chunk - 1) << 2 | 2))
            out.appendLittleEndian(UInt16(offset))
            remaining -= chunk
        }
    }

    private mutating func compressBlock(_ base: UnsafeRawPointer, _ start: Int, _ end: Int, _ out: ByteSink) {
        table.withUnsafeMutableBufferPointer { table in
            table.update(repeating: -1)
            var ip = start
            var literalStart = start
            while ip + 4 <= end {
                let v = base.loadUnaligned(fromByteOffset: ip, as: UInt32.self)
                let h = Int((v &* 0x1E35_A7BD) >> UInt32(32 - Self.tableBits))
                let candidate = Int(table[h])
                table[h] = Int32(ip - start)
                if candidate >= 0 && base.loadUnaligned(fromByteOffset: start + candidate, as: UInt32.self) == v {
                    let from = start + candidate
                    var length = 4
                    while ip + length < end
                        && base.load(fromByteOffset: from + length, as: UInt8.self) == base.load(fromByteOffset: ip + length, as: UInt8.self)
                    {
                        length += 1
                    }
                    Self.emitLiteral(base + literalStart, ip - literalStart, out)
                    Self.emitCopy(offset: ip - from, length: length, out)
                    ip += length
                    literalStart = ip
                } else {
                    ip += 1 + ((ip - literalStart) >> 5)
                }
            }
            Self.emitLiteral(base + literalStart, end - literalStart, out)
        }
    }
}
