/// UTF-8 validation (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
enum UTF8Validation {
    /// The length of the valid multi-byte sequence starting at `p[i]` (whose lead byte is ≥ 0x80),
    /// or 0 when it is invalid. `end` is the first index past the readable bytes.
    @inline(__always)
    static func sequenceLength(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        let b0 = p[i]
        if b0 < 0xC2 { return 0 }
        if b0 < 0xE0 {
            guard i + 1 < end, p[i + 1] & 0xC0 == 0x80 else { return 0 }
            return 2
        }
        if b0 < 0xF0 {
            guard i + 2 < end else { return 0 }
            let b1 = p[i + 1], b2 = p[i + 2]
            guard b1 & 0xC0 == 0x80, b2 & 0xC0 == 0x80 else { return 0 }
            if b0 == 0xE0 && b1 < 0xA0 { return 0 }  // overlong
            if b0 == 0xED && b1 >= 0xA0 { return 0 }  // surrogate
            return 3
        }
        if b0 < 0xF5 {
            guard i + 3 < end else { return 0 }
            let b1 = p[i + 1], b2 = p[i + 2], b3 = p[i + 3]
            guard b1 & 0xC0 == 0x80, b2 & 0xC0 == 0x80, b3 & 0xC0 == 0x80 else { return 0 }
            if b0 == 0xF0 && b1 < 0x90 { return 0 }  // overlong
            if b0 == 0xF4 && b1 >= 0x90 { return 0 }  // > U+10FFFF
            return 4
        }
        return 0
    }

    static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return true }
        let end = bytes.count
        var i = 0
        while i < end {
            if base[i] < 0x80 {
                i += 1
                continue
            }
            let n = sequenceLength(base, i, end)
            if n == 0 { return false }
            i += n
        }
        return true
    }
}
