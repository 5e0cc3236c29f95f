/// The number of bits needed for `value` (0 for 0).
@inline(__always)
func bitsNeeded(_ value: UInt64) -> Int { 64 - value.leadingZeroBitCount }

/// The RLE / bit-packed hybrid (Encodings.md): runs of 8 or more equal values become RLE runs, the
/// rest bit-packed groups of 8 values (at most 63 groups per run, so the header is one byte).
enum RLEHybrid {
    static func encode<T: FixedWidthInteger & UnsignedInteger>(
        _ values: UnsafeBufferPointer<T>, bitWidth: Int, into out: ByteSink
    ) {
        let n = values.count
        guard n > 0, let p = values.baseAddress else { return }
        let valueBytes = (bitWidth + 7) / 8
        var i = 0
        @inline(__always) func repeatsAtLeast8(_ start: Int) -> Bool {
            guard start + 8 <= n else { return false }
            let v = p[start]
            var k = start + 1
            while k < start + 8 {
                if p[k] != v { return false }
                k += 1
            }
            return true
        }
        while i < n {
            if repeatsAtLeast8(i) {
                let v = p[i]
                var end = i + 8
                while end < n && p[end] == v { end += 1 }
                out.appendVarint(UInt64(end - i) << 1)
                var value = UInt64(v)
                for _ in 0..<valueBytes {
                    out.append(byte: UInt8(truncatingIfNeeded: value))
                    value >>= 8
                }
                i = end
                continue
            }
            // Bit-packed run.
            let headerAt = out.count
            out.append(byte: 0)
            var groups = 0
            out.reserve(63 * bitWidth)
            while i < n && groups < 63 {
                if groups > 0 && repeatsAtLeast8(i) { break }
                var acc: UInt64 = 0
                var bits = 0
                for k in 0..<8 {
                    let v: UInt64 = i + k < n ? UInt64(p[i + k]) : 0
                    acc |= v << bits
                    bits += bitWidth
                    while bits >= 8 {
                        out.append(byte: UInt8(truncatingIfNeeded: acc))
                        acc >>= 8
                        bits -= 8
                    }
                }
                i += 8
                groups += 1
            }
            out.setByte(UInt8(groups << 1 | 1), at: headerAt)
        }
    }

    /// Levels as in a data page v1: a 4-byte little-endian length, then the hybrid encoding.
    static func encodeLevels(_ levels: UnsafeBufferPointer<UInt8>, maxLevel: Int, into out: ByteSink) {
        let lengthAt = out.count
        out.appendLittleEndian(UInt32(0))
        encode(levels, bitWidth: bitsNeeded(UInt64(maxLevel)), into: out)
        out.setLittleEndian(UInt32(out.count - lengthAt - 4), at: lengthAt)
    }
}

/// Packs `count` values (padding with zeros to `paddedCount`) of `bitWidth` bits, LSB first.
@inline(__always)
func bitPack(_ values: UnsafePointer<UInt64>, count: Int, paddedCount: Int, bitWidth: Int, into out: ByteSink) {
    guard bitWidth > 0 else { return }
    out.reserve(paddedCount * bitWidth / 8 + 8)
    var acc: UInt64 = 0
    var bits = 0
    for k in 0..<paddedCount {
        let v: UInt64 = k < count ? values[k] : 0
        acc |= v << UInt64(bits)
        let total = bits + bitWidth
        if total >= 64 {
            out.appendLittleEndian(acc)
            acc = bits == 0 ? 0 : v >> UInt64(64 - bits)
            bits = total - 64
        } else {
            bits = total
        }
    }
    var remaining = (bits + 7) / 8
    while remaining > 0 {
        out.append(byte: UInt8(truncatingIfNeeded: acc))
        acc >>= 8
        remaining -= 1
    }
}

/// DELTA_BINARY_PACKED (Encodings.md): blocks of 128 deltas in 4 miniblocks of 32, each with its own
/// bit width, after a header of block size, miniblock count, value count and first value.
struct DeltaBinaryPackedEncoder {
    static let blockSize = 128
    static let miniblocks = 4
    static let miniblockSize = 32

    private var scratch = [UInt64](repeating: 0, count: 128)

    mutating func encode<T: FixedWidthInteger & SignedInteger>(_ values: UnsafeBufferPointer<T>, into out: ByteSink) {
        let n = values.count
        out.appendVarint(UInt64(Self.blockSize))
        out.appendVarint(UInt64(Self.miniblocks))
        out.appendVarint(UInt64(n))
        guard n > 0, let p = values.baseAddress else {
            out.appendZigZag(0)
            return
        }
        out.appendZigZag(Int64(p[0]))
        var i = 1
        scratch.withUnsafeMutableBufferPointer { deltas in
            let d = deltas.baseAddress!
            while i < n {
                let count = min(Self.blockSize, n - i)
                var minDelta = T.max
                for k in 0..<count {
                    let delta = p[i + k] &- p[i + k - 1]
                    if delta < minDelta { minDelta = delta }
                }
                let used = (count + Self.miniblockSize - 1) / Self.miniblockSize
                for k in 0..<count {
                    let delta = p[i + k] &- p[i + k - 1]
                    d[k] = UInt64(truncatingIfNeeded: T.Magnitude(truncatingIfNeeded: delta &- minDelta))
                }
                out.appendZigZag(Int64(minDelta))
                let widthsAt = out.count
                out.appendLittleEndian(UInt32(0))
                for m in 0..<used {
                    let start = m * Self.miniblockSize
                    let inBlock = min(Self.miniblockSize, count - start)
                    var any: UInt64 = 0
                    for k in start..<(start + inBlock) { any |= d[k] }
                    let width = bitsNeeded(any)
                    out.setByte(UInt8(width), at: widthsAt + m)
                    bitPack(d + start, count: inBlock, paddedCount: Self.miniblockSize, bitWidth: width, into: out)
                }
                i += count
            }
        }
    }
}

/// PLAIN booleans: one bit each, LSB first.
func encodePlainBooleans(_ values: UnsafeBufferPointer<Bool>, into out: ByteSink) {
    var acc: UInt8 = 0
    var bits: UInt8 = 0
    for v in values {
        if v { acc |= 1 << bits }
        bits += 1
        if bits == 8 {
            out.append(byte: acc)
            acc = 0
            bits = 0
        }
    }
    if bits > 0 { out.append(byte: acc) }
}
