/// What identifies a viewing session to ``ContentAggregator``: the event's `session_id`, or its
/// `user_id` and `device_id` when it has none.
///
/// Most senders make session ids with a UUID generator. A lowercase UUID in its 36-character form
/// is kept as its 128 bits: reading it from a log record allocates nothing, and the aggregator's
/// session table hashes and compares two integers held in the table itself instead of a 36-byte
/// string on the heap (making, hashing and comparing such strings was about a quarter of the
/// metrics consumer's CPU under `playhead serve` at 100 events per POST). Any other text, an
/// uppercase UUID included, is kept as it is, so two keys are equal exactly when their texts are.
public struct SessionKey: Hashable, Sendable, CustomStringConvertible {
    private enum Storage: Hashable, Sendable {
        case uuid(UInt64, UInt64)
        case text(String)
    }

    private let storage: Storage

    public init(_ text: String) {
        var text = text
        self = text.withUTF8 { SessionKey(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// A key from UTF-8 bytes (a field of a log record); only text that is not a lowercase UUID is copied.
    public init(utf8 bytes: UnsafeRawBufferPointer) {
        if let (high, low) = Self.lowercaseUUID(bytes) {
            storage = .uuid(high, low)
        } else {
            storage = .text(String(decoding: bytes, as: UTF8.self))
        }
    }

    /// Kept as 128 bits (for tests).
    var isUUID: Bool {
        if case .uuid = storage { return true }
        return false
    }

    /// The key's text, as it was given.
    public var description: String {
        switch storage {
        case .text(let text):
            return text
        case .uuid(let high, let low):
            let hex = Array("0123456789abcdef".utf8)
            var out = [UInt8]()
            out.reserveCapacity(36)
            for digit in 0..<32 {
                if digit == 8 || digit == 12 || digit == 16 || digit == 20 { out.append(UInt8(ascii: "-")) }
                let word = digit < 16 ? high : low
                out.append(hex[Int(truncatingIfNeeded: word >> UInt64(60 - 4 * (digit % 16))) & 0xF])
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// The 128 bits of `8-4-4-4-12` lowercase hexadecimal digits, or nil for anything else.
    static func lowercaseUUID(_ bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64)? {
        guard bytes.count == 36 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        var digits = 0
        for index in 0..<36 {
            let byte = bytes[index]
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let value: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = byte &- UInt8(ascii: "a") &+ 10
            default: return nil
            }
            if digits < 16 {
                high = high << 4 | UInt64(value)
            } else {
                low = low << 4 | UInt64(value)
            }
            digits += 1
        }
        return (high, low)
    }
}
