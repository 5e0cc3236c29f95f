#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The wall clock (`CLOCK_REALTIME`), in microseconds since the Unix epoch: the `received_at` of
/// events, and the time the lake and the metrics compare theirs with.
public enum WallClock {
    @inlinable
    public static func micros() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
    }
}

/// Event timestamps: RFC 3339 date-times, `YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|±HH:MM)`, and
/// the ISO 8601 forms that SDKs send beside them: an offset as `±HHMM` (Java's and Android's
/// `SimpleDateFormat` with `Z`) or `±HH`, and no offset at all, which is taken as UTC (as BigQuery
/// and Spark's default zone take it; Python's `datetime.utcnow().isoformat()` writes that form). Until 2026-12-06 only
/// RFC 3339 was accepted, and a whole fleet's events went to `rejected/` (a contract review); this
/// type was named `RFC3339` then.
public enum EventTimestamp {
    /// Microseconds since the Unix epoch (UTC), or nil when `bytes` is not such a date-time.
    /// Fractions past microseconds are truncated; second 60 (a leap second) is accepted and
    /// counted as the first second of the next minute.
    public static func parseMicros(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return nil }
        return parseMicros(base, bytes.count)
    }

    public static func parseMicros(_ string: String) -> Int64? {
        var s = string
        return s.withUTF8 { parseMicros(UnsafeRawBufferPointer($0)) }
    }

    /// Why `text` (which ``parseMicros(_:)`` refused) is not such a date-time, as the end of a
    /// sentence about it: for error messages, not the hot path.
    public static func problem(with text: String) -> String {
        let form = "is not of the form YYYY-MM-DDThh:mm:ss[.fraction] followed by Z, ±hh:mm, ±hhmm, ±hh or nothing (UTC)"
        let b = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= b.count else { return nil }
            var value = 0
            for byte in b[from..<(from + count)] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        func byte(_ i: Int, _ allowed: String) -> Bool { i < b.count && allowed.utf8.contains(b[i]) }
        guard let year = number(0, 4), byte(4, "-"), let month = number(5, 2), byte(7, "-"), let day = number(8, 2),
            byte(10, "Tt "), let hour = number(11, 2), byte(13, ":"), let minute = number(14, 2), byte(16, ":"),
            let second = number(17, 2)
        else { return form }
        if !(1...12).contains(month) { return "has month \(month), which does not exist" }
        let days = Int(CivilDate.daysInMonth(year: Int64(year), month: Int64(month)))
        if !(1...days).contains(day) { return "has day \(day), but \(text.prefix(7)) has \(days) days" }
        if hour > 23 || minute > 59 || second > 60 { return "has the time \(text.dropFirst(11).prefix(8)), which does not exist" }
        var i = 19
        if byte(i, ".") {
            i += 1
            let digits = b[i...].prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }.count
            if digits == 0 { return "has a '.' with no fraction digits after it" }
            i += digits
        }
        if i == b.count {
            // No offset: UTC.
        } else if byte(i, "+-") {
            guard let hours = number(i + 1, 2) else { return form }
            var minutes = 0
            if i + 3 == b.count {
                // ±hh
            } else if byte(i + 3, ":"), let m = number(i + 4, 2), i + 6 == b.count {
                minutes = m
            } else if let m = number(i + 3, 2), i + 5 == b.count {
                minutes = m
            } else {
                return form
            }
            if hours > 23 || minutes > 59 { return "has the offset \(text.dropFirst(i)), which is out of range (at most ±23:59)" }
        } else if !(byte(i, "Zz") && i + 1 == b.count) {
            return form
        }
        // Well formed, so the instant is out of range (or the parser and this disagree).
        return parseMicros(text) == nil ? "is outside years 0001-9999 in UTC" : form
    }

    @inline(__always)
    private static func digit(_ p: UnsafePointer<UInt8>, _ i: Int) -> Int64? {
        let d = p[i] &- UInt8(ascii: "0")
        return d < 10 ? Int64(d) : nil
    }

    @inline(__always)
    private static func two(_ p: UnsafePointer<UInt8>, _ i: Int) -> Int64? {
        guard let a = digit(p, i), let b = digit(p, i + 1) else { return nil }
        return a * 10 + b
    }

    static func parseMicros(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int64? {
        // Shortest: 2024-01-01T00:00:00 (19 bytes, UTC).
        guard n >= 19 else { return nil }
        guard let y1 = two(p, 0), let y2 = two(p, 2), p[4] == UInt8(ascii: "-"), let month = two(p, 5),
            p[7] == UInt8(ascii: "-"), let day = two(p, 8)
        else { return nil }
        let sep = p[10]
        guard sep == UInt8(ascii: "T") || sep == UInt8(ascii: "t") || sep == UInt8(ascii: " ") else { return nil }
        guard let hour = two(p, 11), p[13] == UInt8(ascii: ":"), let minute = two(p, 14), p[16] == UInt8(ascii: ":"),
            let second = two(p, 17)
        else { return nil }
        let year = y1 * 100 + y2
        guard month >= 1, month <= 12, day >= 1, day <= CivilDate.daysInMonth(year: year, month: month),
            hour <= 23, minute <= 59, second <= 60
        else { return nil }
        var i = 19
        var micros: Int64 = 0
        if i < n && p[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < n, let d = digit(p, i) {
                if digits < 6 { micros = micros * 10 + d }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            while digits < 6 {
                micros *= 10
                digits += 1
            }
        }
        var offsetSeconds: Int64 = 0
        if i < n {
            let z = p[i]
            if z == UInt8(ascii: "Z") || z == UInt8(ascii: "z") {
                i += 1
            } else if z == UInt8(ascii: "+") || z == UInt8(ascii: "-") {
                // ±hh:mm, ±hhmm or ±hh.
                guard i + 3 <= n, let oh = two(p, i + 1), oh <= 23 else { return nil }
                var om: Int64 = 0
                if i + 3 == n {
                    i += 3
                } else if p[i + 3] == UInt8(ascii: ":") {
                    guard i + 6 <= n, let m = two(p, i + 4) else { return nil }
                    om = m
                    i += 6
                } else {
                    guard i + 5 <= n, let m = two(p, i + 3) else { return nil }
                    om = m
                    i += 5
                }
                guard om <= 59 else { return nil }
                offsetSeconds = (oh * 3600 + om * 60) * (z == UInt8(ascii: "-") ? -1 : 1)
            } else {
                return nil
            }
        }
        guard i == n else { return nil }
        let days = CivilDate.days(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        // In UTC, within years 0001-9999 (an offset or a leap second can carry a date past either
        // end): what pyarrow, Spark and most readers can hold as a timestamp.
        guard seconds >= earliestSeconds, seconds <= latestSeconds else { return nil }
        return seconds * 1_000_000 + micros
    }

    /// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, in seconds since the Unix epoch.
    public static let earliestSeconds: Int64 = -62_135_596_800
    public static let latestSeconds: Int64 = 253_402_300_799

    /// Whether `micros` (since the Unix epoch) lies in years 0001-9999 in UTC, as every timestamp
    /// the edge accepts and every `received_at` it sets.
    public static func isWithinYears(micros: Int64) -> Bool {
        micros >= earliestSeconds * 1_000_000 && micros <= latestSeconds * 1_000_000 + 999_999
    }
}
