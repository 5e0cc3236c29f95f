/// The IP-address policy: truncation of IPv4 to /24 and IPv6 to /48.
enum IPTruncation {
    /// Writes the truncated form of `p[0..<n]` into `out` (≤ 64 bytes) and returns its length, or 0
    /// when the value is not an IP address.
    static func truncate(_ p: UnsafePointer<UInt8>, _ n: Int, into out: UnsafeMutablePointer<UInt8>) -> Int {
        if let v4 = parseIPv4(p, 0, n) {
            var k = 0
            for octet in 0..<3 {
                k += writeDecimal(Int(v4 >> (24 - 8 * octet) & 0xFF), out + k)
                out[k] = UInt8(ascii: ".")
                k += 1
            }
            out[k] = UInt8(ascii: "0")
            return k + 1
        }
        guard let groups = parseIPv6(p, n) else { return 0 }
        if groups[0..<5].allSatisfy({ $0 == 0 }) && groups[5] == 0xFFFF {
            // IPv4-mapped (::ffff:a.b.c.d): its /48 would keep nothing of the IPv4 address; the
            // IPv4 rule (/24) applies, in the mapped form.
            let prefix = "::ffff:"
            for (k, byte) in prefix.utf8.enumerated() { out[k] = byte }
            var k = prefix.utf8.count
            for octet in [groups[6] >> 8, groups[6] & 0xFF, groups[7] >> 8] {
                k += writeDecimal(Int(octet), out + k)
                out[k] = UInt8(ascii: ".")
                k += 1
            }
            out[k] = UInt8(ascii: "0")
            return k + 1
        }
        // The first three groups, then zeros: in the canonical text (RFC 5952) the zeros after the
        // last group that is not zero are the longest run, written "::".
        let hex: StaticString = "0123456789abcdef"
        // 6to4 (2002::/16) holds an IPv4 address in its second and third groups, all of it within
        // the /48: the IPv4 rule (/24) applies to it (until 2026-12-06 `2002:cb00:714d::1` was
        // stored as `2002:cb00:714d::`, 203.0.113.77 whole; a review).
        // (Groups picked by index, not gathered in an array: this runs for every event under
        // `truncate`, and an array is an allocation.)
        let third = groups[0] == 0x2002 ? groups[2] & 0xFF00 : groups[2]
        let kept = third != 0 ? 3 : groups[1] != 0 ? 2 : groups[0] != 0 ? 1 : 0
        var k = 0
        for g in 0..<kept {
            if g > 0 {
                out[k] = UInt8(ascii: ":")
                k += 1
            }
            let v = g == 2 ? third : groups[g]
            var started = false
            for shift in stride(from: 12, through: 0, by: -4) {
                let nib = Int(v >> UInt16(shift) & 0xF)
                if nib != 0 || started || shift == 0 {
                    out[k] = hex.utf8Start[nib]
                    k += 1
                    started = true
                }
            }
        }
        out[k] = UInt8(ascii: ":")
        out[k + 1] = UInt8(ascii: ":")
        return k + 2
    }

    private static func writeDecimal(_ v: Int, _ out: UnsafeMutablePointer<UInt8>) -> Int {
        if v >= 100 {
            out[0] = UInt8(ascii: "0") + UInt8(v / 100)
            out[1] = UInt8(ascii: "0") + UInt8(v / 10 % 10)
            out[2] = UInt8(ascii: "0") + UInt8(v % 10)
            return 3
        }
        if v >= 10 {
            out[0] = UInt8(ascii: "0") + UInt8(v / 10)
            out[1] = UInt8(ascii: "0") + UInt8(v % 10)
            return 2
        }
        out[0] = UInt8(ascii: "0") + UInt8(v)
        return 1
    }

    /// Dotted-quad IPv4 as RFC 3986's `dec-octet` and glibc's `inet_pton` take it: four decimal
    /// numbers of 0-255 without leading zeros. (`010.8.8.8` was read as 10.8.8.8, but `inet_aton`
    /// and some logs read `010` as octal 8: a /24 that may not be the sender's. Not an address,
    /// as for `inet_pton` and Python's `ipaddress`: a probe, 2026-12-04.)
    static func parseIPv4(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> UInt32? {
        var value: UInt32 = 0
        var i = start
        for octet in 0..<4 {
            var digits = 0
            var v: UInt32 = 0
            while i < end, p[i] >= UInt8(ascii: "0"), p[i] <= UInt8(ascii: "9"), digits < 3 {
                v = v * 10 + UInt32(p[i] - UInt8(ascii: "0"))
                digits += 1
                i += 1
            }
            guard digits > 0, v <= 255, digits == 1 || p[i - digits] != UInt8(ascii: "0") else { return nil }
            value = value << 8 | v
            if octet < 3 {
                guard i < end, p[i] == UInt8(ascii: ".") else { return nil }
                i += 1
            }
        }
        return i == end ? value : nil
    }

    private static func hexValue(_ b: UInt8) -> UInt16? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt16(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt16(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt16(b - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// The eight groups of an IPv6 address (with `::` and a trailing dotted IPv4; a `%zone` is ignored).
    static func parseIPv6(_ p: UnsafePointer<UInt8>, _ n0: Int) -> [UInt16]? {
        var n = n0
        for j in 0..<n0 where p[j] == UInt8(ascii: "%") {
            n = j
            break
        }
        guard n >= 2 else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawGap = false
        var i = 0
        if p[0] == UInt8(ascii: ":") {
            guard p[1] == UInt8(ascii: ":") else { return nil }
            sawGap = true
            i = 2
            if i == n { return [UInt16](repeating: 0, count: 8) }
        }
        while i < n {
            // An embedded IPv4 at the end?
            var j = i
            while j < n, p[j] != UInt8(ascii: ":"), p[j] != UInt8(ascii: ".") { j += 1 }
            if j < n, p[j] == UInt8(ascii: ".") {
                guard let v4 = parseIPv4(p, i, n) else { return nil }
                let hi = UInt16(v4 >> 16), lo = UInt16(v4 & 0xFFFF)
                if sawGap { tail += [hi, lo] } else { head += [hi, lo] }
                i = n
                break
            }
            var v: UInt16 = 0
            var digits = 0
            while i < n, let h = hexValue(p[i]) {
                guard digits < 4 else { return nil }
                v = v << 4 | h
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            if sawGap { tail.append(v) } else { head.append(v) }
            if i == n { break }
            guard p[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            if i < n, p[i] == UInt8(ascii: ":") {
                guard !sawGap else { return nil }
                sawGap = true
                i += 1
                if i == n { break }
            } else if i == n {
                return nil
            }
        }
        let total = head.count + tail.count
        if sawGap {
            guard total <= 7 else { return nil }
            return head + [UInt16](repeating: 0, count: 8 - total) + tail
        }
        return total == 8 ? head : nil
    }
}
