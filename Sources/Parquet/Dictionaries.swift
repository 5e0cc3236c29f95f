#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A random value per process that the dictionaries' hashes start from. The values come from
/// clients (titles, ids), and with a fixed start anyone who reads this code could make many values
/// that share their slot's bits and so make every insert probe past all of them (the lake's id
/// hash was attacked so, 2026-12-06). Not a keyed hash in the cryptographic sense (SipHash costs
/// several times as much per value, and the dictionaries hash every value of every column); it
/// takes away the fixed target. The files do not depend on it: entries keep their insertion order.
let dictionaryHashSeed = UInt64.random(in: .min ... .max)

/// A fast 64-bit hash of a byte string (multiply-xorshift over 8-byte words), from `seed`.
@inline(__always)
func hashBytes(_ p: UnsafeRawPointer, _ n: Int, seed: UInt64) -> UInt64 {
    var h: UInt64 = seed ^ 0x9E37_79B9_7F4A_7C15 ^ (UInt64(n) &* 0xFF51_AFD7_ED55_8CCD)
    var i = 0
    while i + 8 <= n {
        let w = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        h = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 32
        i += 8
    }
    if i < n {
        // Readable: values live in ByteSinks, which keep slack bytes past their end.
        let shift = UInt64(8 * (8 - (n - i)))
        let w = (p.loadUnaligned(fromByteOffset: i, as: UInt64.self) << shift) >> shift
        h = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
    }
    h ^= h >> 29
    h = h &* 0xC4CE_B9FE_1A85_EC53
    h ^= h >> 32
    return h
}

@inline(__always)
func hashWord(_ value: UInt64, seed: UInt64) -> UInt64 {
    var h = (value ^ seed) &* 0x9E37_79B9_7F4A_7C15
    h ^= h >> 31
    h = h &* 0xBF58_476D_1CE4_E5B9
    h ^= h >> 29
    return h
}

/// Whether `n` bytes at `a` and `b` are equal; both must be readable up to the next 8-byte word (ByteSink slack).
@inline(__always)
func bytesEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
    var i = 0
    while i + 8 <= n {
        if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
        i += 8
    }
    if i < n {
        let shift = UInt64(8 * (8 - (n - i)))
        let x = a.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ b.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        return x << shift == 0
    }
    return true
}

/// Compares byte strings as unsigned bytes, shorter first on a common prefix (Parquet's BYTE_ARRAY order).
@inline(__always)
func compareBytes(_ a: UnsafeRawPointer, _ an: Int, _ b: UnsafeRawPointer, _ bn: Int) -> Int {
    let common = min(an, bn)
    if common > 0 {
        let c = memcmp(a, b, common)
        if c != 0 { return Int(c) }
    }
    return an - bn
}

/// A dictionary of byte strings (BYTE_ARRAY or FIXED_LEN_BYTE_ARRAY) with open addressing.
final class BytesDictionary {
    /// The entries, concatenated.
    let data = ByteSink(capacity: 1 << 16)
    /// Entry i is `data[starts[i] ..< starts[i + 1]]`; `count + 1` elements are used.
    @exclusivity(unchecked) private var starts: UnsafeMutablePointer<Int>
    @exclusivity(unchecked) private var startsCapacity = 1024
    @exclusivity(unchecked) private(set) var count = 0
    /// Open addressing: `hash tag << 32 | entry index`, `UInt64.max` when empty (one load per probe).
    @exclusivity(unchecked) private var slots: UnsafeMutablePointer<UInt64>
    @exclusivity(unchecked) private var mask: Int
    /// Bytes of the PLAIN-encoded dictionary page (4-byte lengths included unless fixed).
    @exclusivity(unchecked) private(set) var plainBytes = 0
    let fixedLength: Int?
    /// ``dictionaryHashSeed``, read once (a global is initialised lazily, checked at each use).
    private let seed = dictionaryHashSeed

    init(fixedLength: Int?) {
        self.fixedLength = fixedLength
        starts = .allocate(capacity: 1024)
        starts[0] = 0
        mask = 1023
        slots = .allocate(capacity: 1024)
        slots.initialize(repeating: .max, count: 1024)
    }

    deinit {
        slots.deallocate()
        starts.deallocate()
    }

    func reset() {
        data.removeAll()
        count = 0
        slots.update(repeating: .max, count: mask + 1)
        plainBytes = 0
    }

    func entry(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: data.base + starts[i], count: starts[i + 1] - starts[i])
    }

    /// The index of the value, inserting it if new; `isNew` tells whether it was inserted.
    @inline(__always)
    func index(of p: UnsafeRawPointer, count n: Int, isNew: inout Bool) -> UInt32 {
        let h = hashBytes(p, n, seed: seed)
        let tag = h >> 32
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let e = slots[slot]
            if e == .max { break }
            if e >> 32 == tag {
                let index = Int(truncatingIfNeeded: e & 0xFFFF_FFFF)
                let start = starts[index]
                let length = starts[index + 1] - start
                if length == n && bytesEqual(data.base + start, p, n) {
                    isNew = false
                    return UInt32(index)
                }
            }
            slot = (slot + 1) & mask
        }
        let index = count
        data.append(p, count: n)
        if count + 2 > startsCapacity {
            let grown = UnsafeMutablePointer<Int>.allocate(capacity: startsCapacity * 2)
            grown.update(from: starts, count: count + 1)
            starts.deallocate()
            starts = grown
            startsCapacity *= 2
        }
        count += 1
        starts[count] = data.count
        slots[slot] = tag << 32 | UInt64(index)
        plainBytes += n + (fixedLength == nil ? 4 : 0)
        isNew = true
        if (index + 1) * 2 > mask { rehash() }
        return UInt32(index)
    }

    private func rehash() {
        let newSize = (mask + 1) * 2
        let newSlots = UnsafeMutablePointer<UInt64>.allocate(capacity: newSize)
        newSlots.initialize(repeating: .max, count: newSize)
        let newMask = newSize - 1
        for i in 0..<count {
            let start = starts[i]
            let h = hashBytes(data.base + start, starts[i + 1] - start, seed: seed)
            var slot = Int(truncatingIfNeeded: h) & newMask
            while newSlots[slot] != .max { slot = (slot + 1) & newMask }
            newSlots[slot] = (h >> 32) << 32 | UInt64(i)
        }
        slots.deallocate()
        slots = newSlots
        mask = newMask
    }

    /// The PLAIN dictionary page body.
    func writePlain(into out: ByteSink) {
        out.reserve(plainBytes)
        for i in 0..<count {
            let e = entry(i)
            if fixedLength == nil { out.appendLittleEndian(UInt32(e.count)) }
            out.append(e)
        }
    }
}

/// A dictionary of fixed-width numbers keyed by their bit pattern (INT32, INT64, FLOAT, DOUBLE).
final class WordDictionary {
    @exclusivity(unchecked) private(set) var values: [UInt64] = []
    @exclusivity(unchecked) private var slots: UnsafeMutablePointer<Int32>
    @exclusivity(unchecked) private var mask: Int

    var count: Int { values.count }
    private let seed = dictionaryHashSeed

    init() {
        mask = 1023
        slots = .allocate(capacity: 1024)
        slots.initialize(repeating: -1, count: 1024)
    }

    deinit { slots.deallocate() }

    func reset() {
        values.removeAll(keepingCapacity: true)
        slots.update(repeating: -1, count: mask + 1)
    }

    @inline(__always)
    func index(of value: UInt64, isNew: inout Bool) -> UInt32 {
        var slot = Int(truncatingIfNeeded: hashWord(value, seed: seed)) & mask
        while true {
            let e = slots[slot]
            if e < 0 { break }
            if values[Int(e)] == value {
                isNew = false
                return UInt32(e)
            }
            slot = (slot + 1) & mask
        }
        let index = values.count
        values.append(value)
        slots[slot] = Int32(index)
        isNew = true
        if (index + 1) * 2 > mask { rehash() }
        return UInt32(index)
    }

    private func rehash() {
        let newSize = (mask + 1) * 2
        let newSlots = UnsafeMutablePointer<Int32>.allocate(capacity: newSize)
        newSlots.initialize(repeating: -1, count: newSize)
        let newMask = newSize - 1
        for (i, v) in values.enumerated() {
            var slot = Int(truncatingIfNeeded: hashWord(v, seed: seed)) & newMask
            while newSlots[slot] >= 0 { slot = (slot + 1) & newMask }
            newSlots[slot] = Int32(i)
        }
        slots.deallocate()
        slots = newSlots
        mask = newMask
    }
}
