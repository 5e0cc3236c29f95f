/// What identifies a viewing session to ``ContentAggregator``: the event's `session_id`, or its
/// `user_id` and `device_id` when it has none.
///
/// Most senders make session ids with a UUID generator. A lowercase UUID in its 36-character form
/// is kept as its 128 bits: reading it from a log record allocates nothing, and the aggregator's
/// session table hashes and compares two integers held in the table itself instead of a 36-byte
/// string on the heap (making, hashing and comparing such strings was about a quarter of the
/// metrics consumer's CPU under `playhead serve` at 100 events per POST). Any other text, an
/// uppercase UUID included, is kept as it is, so two keys are equal exactly when their texts are,
/// byte for byte (as Swift's `String`, equal when canonically equivalent, made the NFC and NFD
/// spellings of one id one session, which the lake keeps apart: an outside review).
public struct SessionKey: Hashable, Sendable, CustomStringConvertible {
    private enum Storage: Hashable, Sendable {
        case uuid(UInt64, UInt64)
        case text(ExactString)
        /// An event without a `session_id`: its user and device, apart from every `session_id`, as
        /// one text that cannot be read two ways: the user's length in UTF-8 bytes, `:`, the user,
        /// the device (one string, so that a key stays 17 bytes, as with the other cases).
        case userDevice(ExactString)
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
            storage = .text(ExactString(String(decoding: bytes, as: UTF8.self)))
        }
    }

    /// The key of an event without a `session_id`: its `user_id` and `device_id`, as a pair. Joined
    /// as text (`user/device`), user `a/b` on device `c` was user `a` on device `b/c`, and both were
    /// the session whose `session_id` is `a/b/c` (an outside review: one viewer's pause ended
    /// another's play).
    public init(userID: String, deviceID: String) {
        storage = .userDevice(ExactString("\(userID.utf8.count):\(userID)\(deviceID)"))
    }

    /// The bytes of text the key holds: none for a UUID kept as 128 bits.
    public var textBytes: Int {
        switch storage {
        case .uuid: return 0
        case .text(let text), .userDevice(let text): return text.string.utf8.count
        }
    }

    /// Kept as 128 bits (for tests).
    var isUUID: Bool {
        if case .uuid = storage { return true }
        return false
    }

    /// The key's text, as it was given (a `session_id`), or the user and device it stands for.
    public var description: String {
        switch storage {
        case .text(let text):
            return text.string
        case .userDevice(let exact):
            let joined = exact.string
            // The user's length, then the user and the device.
            let colon = joined.utf8.firstIndex(of: UInt8(ascii: ":"))!
            let length = Int(Substring(joined.utf8[..<colon]))!
            let user = joined.utf8[joined.utf8.index(after: colon)...].prefix(length)
            let device = joined.utf8[user.endIndex...]
            return "user_id \(String(Substring(user))), device_id \(String(Substring(device)))"
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
    ///
    /// The 32 digits are read as four 8-byte words (the groups 4-4 and 4-12 are joined), and each
    /// word is checked and turned into 32 bits without a branch per byte; the byte-at-a-time loop
    /// this replaces was 2 % of `serve`'s CPU at 100 events per POST.
    static func lowercaseUUID(_ bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64)? {
        guard bytes.count == 36,
            bytes[8] == UInt8(ascii: "-"), bytes[13] == UInt8(ascii: "-"),
            bytes[18] == UInt8(ascii: "-"), bytes[23] == UInt8(ascii: "-")
        else { return nil }
        func word(_ offset: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        func halves(_ first: Int, _ second: Int) -> UInt64 {
            let a = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: first, as: UInt32.self))
            let b = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: second, as: UInt32.self))
            return UInt64(a) | UInt64(b) << 32
        }
        guard let d0 = hexWord(word(0)), let d1 = hexWord(halves(9, 14)),
            let d2 = hexWord(halves(19, 24)), let d3 = hexWord(word(28))
        else { return nil }
        return (UInt64(d0) << 32 | UInt64(d1), UInt64(d2) << 32 | UInt64(d3))
    }

    /// Eight lowercase hexadecimal digits (the first in the lowest byte of `x`) as 32 bits, or nil
    /// if a byte is anything else.
    @inline(__always)
    static func hexWord(_ x: UInt64) -> UInt32? {
        let high: UInt64 = 0x8080_8080_8080_8080
        let ones: UInt64 = 0x0101_0101_0101_0101
        // For bytes below 0x80, adding 0x80 - lo sets a byte's top bit exactly when the byte is at
        // least lo, and adding 0x7F - hi exactly when it is above hi; no sum carries into the next
        // byte.
        func within(_ lo: UInt64, _ hi: UInt64) -> UInt64 {
            (x &+ (0x80 - lo) &* ones) & ~(x &+ (0x7F - hi) &* ones) & high
        }
        let digits = within(0x30, 0x39)  // 0-9
        let letters = within(0x61, 0x66)  // a-f
        guard x & high == 0, digits | letters == high else { return nil }
        // A digit's low nibble is its value; a letter's is its value - 9.
        var v = (x & 0x0F0F_0F0F_0F0F_0F0F) &+ (letters >> 7) &* 9
        // The first digit is the most significant: put it in the top byte, then pack the nibbles.
        v = v.byteSwapped
        v = (v | v >> 4) & 0x00FF_00FF_00FF_00FF
        v = (v | v >> 8) & 0x0000_FFFF_0000_FFFF
        v = (v | v >> 16) & 0x0000_0000_FFFF_FFFF
        return UInt32(truncatingIfNeeded: v)
    }
}
