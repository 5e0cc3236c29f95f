#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1

/// An IP address as its 16 bytes, an IPv4 address (and an IPv4-mapped IPv6 one, which a
/// dual-stack socket reports for IPv4 peers) as `::ffff:a.b.c.d`.
struct IPAddressBytes: Hashable, Sendable {
    var bytes: [UInt8]

    /// An address in text: dotted IPv4 or IPv6 (RFC 4291), as `inet_pton` reads them.
    init?(_ text: some StringProtocol) {
        var v4 = in_addr()
        var v6 = in6_addr()
        let string = String(text)
        if inet_pton(AF_INET, string, &v4) == 1 {
            bytes = Self.mapped(v4)
        } else if inet_pton(AF_INET6, string, &v6) == 1 {
            bytes = withUnsafeBytes(of: v6) { Array($0) }
        } else {
            return nil
        }
    }

    /// A socket's address; nil for a Unix-domain socket.
    init?(_ address: SocketAddress) {
        switch address {
        case .v4(let a): bytes = Self.mapped(a.address.sin_addr)
        case .v6(let a): bytes = withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
        case .unixDomainSocket: return nil
        }
    }

    private static func mapped(_ address: in_addr) -> [UInt8] {
        [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + withUnsafeBytes(of: address.s_addr) { Array($0) }
    }

    /// Whether this is IPv4 (or IPv4-mapped IPv6).
    var isIPv4: Bool { bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF }

    /// Dotted IPv4 for IPv4 and IPv4-mapped addresses, else IPv6 in RFC 5952's canonical text.
    var text: String {
        if isIPv4 { return bytes[12...].map { String($0) }.joined(separator: ".") }
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An address range in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or one address.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    let base: IPAddressBytes
    /// Over the 16 bytes: an IPv4 /n is 96 + n.
    let prefixBits: Int
    public let description: String

    /// Reads `address[/bits]`; the error says what is wrong, in words for a flag's user.
    public init(parsing text: String) throws(IPNetworkError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddressBytes(parts[0]) else {
            throw IPNetworkError("'\(text)' is not an IP address or a CIDR range (such as 10.0.0.0/8 or 2001:db8::/32)")
        }
        let width = address.isIPv4 && !parts[0].contains(":") ? 32 : 128
        var bits = width
        if parts.count == 2 {
            guard parts[1].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), let n = Int(parts[1]), n <= width else {
                throw IPNetworkError("'\(text)' has a prefix length that is not 0–\(width)")
            }
            bits = n
        }
        prefixBits = bits + (128 - width)
        base = address
        // An IPv4-mapped address written as IPv6 (`::ffff:10.0.0.0/104`) is said as written: its
        // prefix counts over 128 bits, and "10.0.0.0/104" was refused (a review).
        func said(_ address: IPAddressBytes) -> String { width == 128 && address.isIPv4 ? "::ffff:" + address.text : address.text }
        for bit in prefixBits..<128 where address.bytes[bit / 8] & (0x80 >> UInt8(bit % 8)) != 0 {
            var masked = address
            for b in prefixBits..<128 { masked.bytes[b / 8] &= ~(0x80 >> UInt8(b % 8)) }
            // An IPv4-mapped address with an IPv4 prefix length (`::ffff:10.0.0.0/8`) meant the
            // IPv4 range: "did you mean ::/8?" named another range altogether (a review).
            if width == 128 && address.isIPv4 && bits <= 32 {
                throw IPNetworkError("'\(text)' has an IPv4-mapped address with a prefix length over 128 bits, /\(bits): did you mean \(said(address))/\(96 + bits) (or \(address.text)/\(bits))?")
            }
            throw IPNetworkError("'\(text)' has bits set past its /\(bits): did you mean \(said(masked))/\(bits)?")
        }
        description = parts.count == 2 ? "\(said(address))/\(bits)" : said(address)
    }

    /// The addresses of the range, as 128-bit numbers (IPv4 as IPv4-mapped).
    var span: ClosedRange<UInt128> {
        let low = base.bytes.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
        let hostBits = 128 - prefixBits
        let size: UInt128 = hostBits == 128 ? .max : (UInt128(1) << hostBits) - 1
        return low...(low | size)
    }

    /// What `networks` together trust that lets any client name its own address: "every client"
    /// (all of IPv6, IPv4-mapped included), "every IPv4 client" (all of ::ffff:0:0/96), or nil.
    /// One range alone (`0.0.0.0/0`) or several (`0.0.0.0/1,128.0.0.0/1`, which had no warning, a review).
    public static func coverage(of networks: [IPNetwork]) -> String? {
        var covered: [ClosedRange<UInt128>] = []
        for span in networks.map(\.span).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = covered.last, last.upperBound == .max || span.lowerBound <= last.upperBound + 1 {
                covered[covered.count - 1] = last.lowerBound...max(last.upperBound, span.upperBound)
            } else {
                covered.append(span)
            }
        }
        func covers(_ target: ClosedRange<UInt128>) -> Bool {
            covered.contains { $0.lowerBound <= target.lowerBound && $0.upperBound >= target.upperBound }
        }
        if covers(0...UInt128.max) { return "every client" }
        let mapped = UInt128(0xFFFF) << 32
        if covers(mapped...(mapped | 0xFFFF_FFFF)) { return "every IPv4 client" }
        return nil
    }

    func contains(_ address: IPAddressBytes) -> Bool {
        let whole = prefixBits / 8
        if whole > 0 && address.bytes[0..<whole] != base.bytes[0..<whole] { return false }
        let rest = prefixBits % 8
        guard rest > 0 else { return true }
        let mask: UInt8 = 0xFF << UInt8(8 - rest)
        return address.bytes[whole] & mask == base.bytes[whole] & mask
    }
}

public struct IPNetworkError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// A connection's peer: its address, as text, and whether it is a trusted proxy.
struct ClientPeer: Sendable {
    /// Nil for a peer without an IP address (a Unix-domain socket).
    var address: IPAddressBytes?
    var text: String?
    var trusted: Bool
}

/// The request header in which trusted proxies write the addresses they received a request from
/// (`--forwarded-header`).
public enum ForwardedHeader: Sendable, Equatable, CustomStringConvertible {
    /// A header whose value is a comma-separated list of addresses, the nearest proxy's last:
    /// `X-Forwarded-For`, or one that holds a single address (`X-Real-IP`, `CF-Connecting-IP`,
    /// `True-Client-IP`), read as X-Forwarded-For is: a comma-separated list. `name` is lowercase.
    case addressList(name: String)
    /// RFC 7239's `Forwarded`: the `for=` parameter of each element (`for=192.0.2.60`,
    /// `for="[2001:db8::17]:4711"`), the nearest proxy's last.
    case forwarded

    public static let xForwardedFor = ForwardedHeader.addressList(name: "x-forwarded-for")

    /// A header's name, in any case; the error says what is wrong, for a flag's user.
    public init(parsing name: String) throws(IPNetworkError) {
        guard !name.isEmpty, name.utf8.allSatisfy(CORSPolicy.isTokenByte) else {
            throw IPNetworkError("'\(name)' is not a header name (such as X-Forwarded-For, Forwarded or X-Real-IP)")
        }
        let lowercased = name.lowercased()
        self = lowercased == "forwarded" ? .forwarded : .addressList(name: lowercased)
    }

    public var description: String {
        switch self {
        case .forwarded: "Forwarded"
        case .addressList(let name): name == "x-forwarded-for" ? "X-Forwarded-For" : name
        }
    }

    /// The header's entries in order, the nearest proxy's last: each an address, maybe with a
    /// port, or anything else (`unknown`, an obfuscated `_name`, an element without `for=`), which
    /// ends the walk.
    func entries(_ headers: HTTPHeaders) -> [Substring] {
        switch self {
        case .addressList(let name):
            // Split on the comma's byte: NIO's `canonicalForm` splits on Characters, and a client's
            // entry ending in a Unicode prepend mark (U+0600) joined the comma a proxy appended
            // after it, so the client's entry and the proxy's read as one that is not an address,
            // and the proxy's own address was stored (an outside review).
            var entries: [Substring] = []
            for value in headers[name] {
                for element in Array(value.utf8).split(separator: UInt8(ascii: ",")) {
                    let blank = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
                    guard let first = element.firstIndex(where: { !blank($0) }), let last = element.lastIndex(where: { !blank($0) }) else { continue }
                    entries.append(Substring(String(decoding: element[first...last], as: UTF8.self)))
                }
            }
            return entries
        case .forwarded:
            var entries: [Substring] = []
            for value in headers["forwarded"] {
                // A quote left open swallows the separators after it: `for=6.6.6.6;x="` from a
                // client, with a proxy's `, for=203.0.113.50` appended to the same line, read as
                // one element, and the client chose its address (an outside review). Such a line
                // is one entry that is not an address: the walk ends there.
                guard let elements = Self.split(Substring(value), on: UInt8(ascii: ",")) else {
                    entries.append("")
                    continue
                }
                for element in elements {
                    // An empty element (`for=a, , for=b`, a trailing comma) is none: RFC 9110
                    // §5.6.1 has recipients ignore empty list elements, as X-Forwarded-For's are.
                    // (Until 2026-12-06 it was an entry that is not an address, which ended the
                    // walk at the proxy behind it: the client's address was lost, not forged.)
                    if element.utf8.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
                    // An element with `for=` twice is not valid (RFC 7239 §4: a parameter at most
                    // once): not an address, so the walk ends (the first one was taken until
                    // 2026-12-05).
                    let found = (Self.split(element, on: UInt8(ascii: ";")) ?? []).compactMap(Self.forValue)
                    entries.append(found.count == 1 ? found[0] : "")
                }
            }
            return entries
        }
    }

    /// `text` split at `separator` outside quoted strings (RFC 7230's, with backslash escapes), or
    /// nil when a quoted string is not closed. Byte by byte: stepping by Characters, a Unicode
    /// prepend mark (U+0600) joined the separator after it into one and hid it, so a client's
    /// `for=6.6.6.6;x=<U+0600>` and a proxy's `, for=<client>` appended to it read as one element,
    /// and the client chose its address (an outside review).
    private static func split(_ text: Substring, on separator: UInt8) -> [Substring]? {
        let bytes = Array(text.utf8)
        var parts: [Substring] = []
        var start = 0
        var quoted = false
        var escaped = false
        for (index, byte) in bytes.enumerated() {
            if escaped {
                escaped = false
            } else if quoted && byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\"") {
                quoted.toggle()
            } else if !quoted && byte == separator {
                parts.append(Substring(String(decoding: bytes[start..<index], as: UTF8.self)))
                start = index + 1
            }
        }
        if quoted || escaped { return nil }
        parts.append(Substring(String(decoding: bytes[start...], as: UTF8.self)))
        return parts
    }

    /// The value of a `for=` pair (a token, or a quoted string without its quotes), or nil for
    /// another pair.
    private static func forValue(_ pair: Substring) -> Substring? {
        let trimmed = Substring(String(pair).trimmed())
        guard let equals = trimmed.firstIndex(of: "="), trimmed[..<equals].lowercased() == "for" else { return nil }
        var value = trimmed[trimmed.index(after: equals)...]
        if value.count >= 2 && value.hasPrefix("\"") && value.hasSuffix("\"") {
            value = value.dropFirst().dropLast()
            if value.contains("\\") { value = Substring(value.replacingBackslashEscapes()) }
        }
        return value
    }
}

extension Substring {
    /// A quoted string's content with its `\x` escapes replaced by `x`.
    fileprivate func replacingBackslashEscapes() -> String {
        var result = ""
        var escaped = false
        for character in self {
            if !escaped && character == "\\" {
                escaped = true
                continue
            }
            escaped = false
            result.append(character)
        }
        return result
    }
}

/// Who sent a request, for `--fill-ip-address`: the connection's peer, or, when the peer is a
/// trusted proxy, the address that the chain of trusted proxies in `X-Forwarded-For` (or the
/// header `--forwarded-header` names) received it from. A client can write any such header it
/// likes, so the header is read only from a trusted peer, and only as far back as the proxies are
/// trusted.
public struct ClientAddressResolver: Sendable {
    public let trustedProxies: [IPNetwork]
    public let header: ForwardedHeader

    public init(trustedProxies: [IPNetwork] = [], header: ForwardedHeader = .xForwardedFor) {
        self.trustedProxies = trustedProxies
        self.header = header
    }

    /// What a connection's requests need of its peer, worked out once per connection.
    func peer(_ address: SocketAddress?) -> ClientPeer {
        guard let address, let bytes = IPAddressBytes(address) else { return ClientPeer(address: nil, text: nil, trusted: false) }
        return ClientPeer(address: bytes, text: bytes.text, trusted: isTrusted(bytes))
    }

    /// The client's address as text (dotted IPv4, IPv6 as RFC 5952 writes it), or nil when the
    /// peer has no IP address. From an untrusted peer, its own text, with no work per request.
    ///
    /// `X-Forwarded-For` (every such header, in order, comma-separated; or ``header``) is walked
    /// from its right end, the address the nearest proxy saw, while the addresses are trusted; the
    /// first one that is not trusted is the client. An entry that is not an address (`unknown`,
    /// garbage) ends the walk, and the last trusted address walked is the client: nothing further
    /// left can be believed. Entries may have a port (`203.0.113.7:5123`, `[2001:db8::1]:443`).
    func clientAddress(peer: ClientPeer, headers: HTTPHeaders) -> String? {
        guard peer.trusted, var client = peer.address else { return peer.text }
        // RFC 7239 lets a `Forwarded` node hide its port (`for="192.0.2.43:_hidden"`, an obfport):
        // the address is still the client's (it ended the walk, and the proxy's was stored, a review).
        let obfuscatedPorts: Bool
        if case .forwarded = header { obfuscatedPorts = true } else { obfuscatedPorts = false }
        for entry in header.entries(headers).reversed() {
            guard let address = Self.forwardedAddress(entry, obfuscatedPorts: obfuscatedPorts) else { break }
            client = address
            if !isTrusted(address) { break }
        }
        return client.text
    }

    private func isTrusted(_ address: IPAddressBytes) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }

    /// One `X-Forwarded-For` entry: an address, bracketed IPv6, either with a port; with
    /// `obfuscatedPorts` (RFC 7239's `Forwarded`), the port may be an obfuscated one (`_hidden`).
    static func forwardedAddress(_ entry: Substring, obfuscatedPorts: Bool = false) -> IPAddressBytes? {
        let text = Substring(String(entry).trimmed())
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let after = text[text.index(after: close)...]
            guard after.isEmpty || (after.hasPrefix(":") && isPort(after.dropFirst(), obfuscated: obfuscatedPorts)) else { return nil }
            let inside = text[text.index(after: text.startIndex)..<close]
            return inside.contains(":") ? IPAddressBytes(inside) : nil
        }
        if let address = IPAddressBytes(text) { return address }
        // IPv4 with a port: exactly one colon.
        let pieces = text.split(separator: ":", omittingEmptySubsequences: false)
        guard pieces.count == 2, isPort(pieces[1], obfuscated: obfuscatedPorts), let address = IPAddressBytes(pieces[0]), address.isIPv4 else { return nil }
        return address
    }

    /// A port: 1-5 digits, or with `obfuscated`, RFC 7239's obfport, `_` then letters, digits, `.`, `_`, `-`.
    private static func isPort(_ text: Substring, obfuscated: Bool) -> Bool {
        if obfuscated, text.first == "_" {
            return text.count > 1 && text.utf8.dropFirst().allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"): true
                default: false
                }
            }
        }
        return !text.isEmpty && text.count <= 5 && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }
}
