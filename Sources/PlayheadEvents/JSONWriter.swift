/// Small JSON output helpers (no Foundation).
enum JSONWriter {
    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    static func appendInt(_ value: Int64, to out: inout [UInt8]) {
        if value == 0 {
            out.append(UInt8(ascii: "0"))
            return
        }
        var magnitude = value.magnitude
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var divisor: UInt64 = 1
        while divisor <= magnitude / 10 { divisor *= 10 }
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(magnitude / divisor))
            magnitude %= divisor
            divisor /= 10
        }
    }

    /// Appends a zero-padded decimal of `width` digits.
    static func appendPadded(_ value: Int, width: Int, to out: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var v = value
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8((v / divisor) % 10))
            v %= divisor
            divisor /= 10
        }
    }

    static func appendDouble(_ value: Double, to out: inout [UInt8]) {
        if !value.isFinite {
            out.append(contentsOf: "null".utf8)
            return
        }
        if value < 1e15, value > -1e15, value == Double(Int64(value)) {
            // -0.0 is kept as written: the lake keeps it (Int64 has no negative zero).
            if value.sign == .minus && value == 0 { out.append(UInt8(ascii: "-")) }
            appendInt(Int64(value), to: &out)
            out.append(contentsOf: ".0".utf8)
            return
        }
        out.append(contentsOf: value.description.utf8)
    }

    static func appendString(_ string: String, to out: inout [UInt8]) {
        var s = string
        s.withUTF8 { appendString(UnsafeRawBufferPointer($0), to: &out) }
    }

    /// Appends `bytes` (valid UTF-8) as a JSON string literal.
    static func appendString(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var runStart = 0
        var i = 0
        let count = bytes.count
        while i < count {
            let b = bytes[i]
            if b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                if runStart < i { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<i])) }
                out.append(UInt8(ascii: "\\"))
                switch b {
                case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                default:
                    out.append(contentsOf: "u00".utf8)
                    out.append(hex[Int(b >> 4)])
                    out.append(hex[Int(b & 15)])
                }
                runStart = i + 1
            }
            i += 1
        }
        if runStart < count { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<count])) }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends microseconds since the epoch as `"YYYY-MM-DDTHH:MM:SS.ffffffZ"` (with the quotes).
    static func appendTimestamp(_ micros: Int64, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var seconds = micros / 1_000_000
        var fraction = micros % 1_000_000
        if fraction < 0 {
            fraction += 1_000_000
            seconds -= 1
        }
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        let (y, m, d) = CivilDate.fromDays(days)
        appendPadded(Int(y), width: 4, to: &out)
        out.append(UInt8(ascii: "-"))
        appendPadded(Int(m), width: 2, to: &out)
        out.append(UInt8(ascii: "-"))
        appendPadded(Int(d), width: 2, to: &out)
        out.append(UInt8(ascii: "T"))
        appendPadded(Int(secondOfDay / 3600), width: 2, to: &out)
        out.append(UInt8(ascii: ":"))
        appendPadded(Int(secondOfDay / 60 % 60), width: 2, to: &out)
        out.append(UInt8(ascii: ":"))
        appendPadded(Int(secondOfDay % 60), width: 2, to: &out)
        out.append(UInt8(ascii: "."))
        appendPadded(Int(fraction), width: 6, to: &out)
        out.append(contentsOf: "Z\"".utf8)
    }

    static func appendBase64(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var i = 0
        let n = bytes.count
        while i + 3 <= n {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(table[Int(v >> 18 & 63)])
            out.append(table[Int(v >> 12 & 63)])
            out.append(table[Int(v >> 6 & 63)])
            out.append(table[Int(v & 63)])
            i += 3
        }
        if n - i == 1 {
            let v = UInt32(bytes[i]) << 16
            out.append(table[Int(v >> 18 & 63)])
            out.append(table[Int(v >> 12 & 63)])
            out.append(contentsOf: "==".utf8)
        } else if n - i == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(table[Int(v >> 18 & 63)])
            out.append(table[Int(v >> 12 & 63)])
            out.append(table[Int(v >> 6 & 63)])
            out.append(UInt8(ascii: "="))
        }
    }
}

/// Proleptic Gregorian calendar arithmetic (days since 1970-01-01).
enum CivilDate {
    /// Days since the epoch of a civil date (H. Hinnant's algorithm).
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func fromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    static func isLeap(_ year: Int64) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysInMonth(year: Int64, month: Int64) -> Int64 {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
