import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// AWS Signature Version 4 (header-based), as S3 wants it.
///
/// `sign` adds `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (with a session token),
/// `host` (when missing) and `authorization` to the headers. The date is a parameter, so signatures
/// are deterministic and testable against AWS's published examples.
///
/// Canonical request (what is hashed and signed):
/// ```
/// METHOD \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n PayloadHash
/// ```
/// - CanonicalURI: the path with every byte outside RFC 3986's unreserved set (`A-Z a-z 0-9 - . _ ~`)
///   percent-encoded in upper-case hex, `/` kept; S3 encodes the path once (no double encoding).
/// - CanonicalQuery: names and values percent-encoded the same way (`/` encoded too), sorted by name
///   then value, `name=value` joined by `&` (`name=` for a valueless parameter).
/// - CanonicalHeaders: lower-case names, values trimmed with inner runs of spaces collapsed,
///   repeated headers joined by `,`, sorted by name, each `name:value\n`.
public struct SigV4Signer: Sendable {
    public let credentials: S3Credentials
    public let region: String
    public let service: String

    /// The payload hash of an empty body.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// The payload hash that tells S3 the body is not signed (only sensible over TLS).
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// Headers never signed: they may be changed or added by proxies and HTTP clients.
    static let unsignedHeaders: Set<String> = [
        "authorization", "user-agent", "content-length", "connection", "expect", "transfer-encoding",
        "x-amzn-trace-id", "keep-alive", "te", "upgrade", "proxy-authorization", "accept-encoding",
    ]

    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The parts of a signature, for tests and debugging.
    public struct Signature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signedHeaders: String
        public var signature: String
        public var authorization: String
    }

    /// Signs a request given its host, its path (not yet percent-encoded, e.g. `/bucket/my key`) and
    /// its query parameters (not yet encoded).
    @discardableResult
    public func sign(
        method: String,
        host: String,
        path: String,
        query: [(String, String)] = [],
        headers: inout HTTPHeaders,
        payloadHash: String,
        date: Date
    ) -> Signature {
        let (amzDate, day) = Self.timestamps(date)
        headers.replaceOrAdd(name: "x-amz-date", value: amzDate)
        if service == "s3" { headers.replaceOrAdd(name: "x-amz-content-sha256", value: payloadHash) }
        if let token = credentials.sessionToken { headers.replaceOrAdd(name: "x-amz-security-token", value: token) }
        if !headers.contains(name: "host") { headers.add(name: "host", value: host) }
        headers.remove(name: "authorization")

        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(headers)
        let canonicalRequest = [
            method.uppercased(),
            Self.canonicalURI(path),
            Self.canonicalQuery(query),
            canonicalHeaders,
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            "AWS4-HMAC-SHA256",
            amzDate,
            scope,
            Self.hexSHA256(Array(canonicalRequest.utf8)),
        ].joined(separator: "\n")
        let key = signingKey(day: day)
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        let authorization =
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope),SignedHeaders=\(signedHeaders),Signature=\(signature)"
        headers.add(name: "authorization", value: authorization)
        return Signature(
            canonicalRequest: canonicalRequest,
            stringToSign: stringToSign,
            signedHeaders: signedHeaders,
            signature: signature,
            authorization: authorization
        )
    }

    /// Signs a request given its URL (the host, port, path and query are taken from it; the path is
    /// decoded first, then canonically re-encoded).
    @discardableResult
    public func sign(method: String, url: URL, headers: inout HTTPHeaders, payloadHash: String, date: Date) -> Signature {
        let components = URLComponents(url: url, resolvingAgainstBaseURL: false)
        var host = components?.host ?? ""
        if let port = components?.port {
            let scheme = components?.scheme ?? "https"
            if !((scheme == "http" && port == 80) || (scheme == "https" && port == 443)) { host += ":\(port)" }
        }
        var path = components?.path ?? "/"
        if path.isEmpty { path = "/" }
        let query = (components?.queryItems ?? []).map { ($0.name, $0.value ?? "") }
        return sign(method: method, host: host, path: path, query: query, headers: &headers, payloadHash: payloadHash, date: date)
    }

    /// The derived signing key: HMAC chain of date, region, service and "aws4_request".
    func signingKey(day: String) -> SymmetricKey {
        let secret = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        let kDate = HMAC<SHA256>.authenticationCode(for: Array(day.utf8), using: secret)
        let kRegion = HMAC<SHA256>.authenticationCode(for: Array(region.utf8), using: SymmetricKey(data: kDate))
        let kService = HMAC<SHA256>.authenticationCode(for: Array(service.utf8), using: SymmetricKey(data: kRegion))
        let kSigning = HMAC<SHA256>.authenticationCode(for: Array("aws4_request".utf8), using: SymmetricKey(data: kService))
        return SymmetricKey(data: kSigning)
    }

    // MARK: Canonical forms

    /// The canonical URI of an (unencoded) path.
    public static func canonicalURI(_ path: String) -> String {
        let encoded = uriEncode(path, encodeSlash: false)
        return encoded.hasPrefix("/") ? encoded : "/" + encoded
    }

    /// The canonical query string of (unencoded) parameters.
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        var pairs: [(name: String, value: String)] = []
        pairs.reserveCapacity(query.count)
        for (name, value) in query {
            pairs.append((name: uriEncode(name, encodeSlash: true), value: uriEncode(value, encodeSlash: true)))
        }
        pairs.sort { (a: (name: String, value: String), b: (name: String, value: String)) -> Bool in
            if a.name != b.name { return a.name < b.name }
            return a.value < b.value
        }
        var parts: [String] = []
        for pair in pairs { parts.append(pair.name + "=" + pair.value) }
        return parts.joined(separator: "&")
    }

    /// Canonical headers (each `name:value\n`) and the signed-header list (`a;b;c`).
    static func canonicalHeaders(_ headers: HTTPHeaders) -> (String, String) {
        var values: [String: [String]] = [:]
        for (name, value) in headers {
            let lower = name.lowercased()
            if unsignedHeaders.contains(lower) { continue }
            values[lower, default: []].append(trimHeaderValue(value))
        }
        let names = values.keys.sorted()
        var canonical = ""
        for name in names { canonical += "\(name):\(values[name]!.joined(separator: ","))\n" }
        return (canonical, names.joined(separator: ";"))
    }

    static func trimHeaderValue(_ value: String) -> String {
        var out = ""
        var lastWasSpace = false
        for scalar in value.unicodeScalars {
            if scalar == " " || scalar == "\t" {
                if !lastWasSpace && !out.isEmpty { out.unicodeScalars.append(" ") }
                lastWasSpace = true
            } else {
                out.unicodeScalars.append(scalar)
                lastWasSpace = false
            }
        }
        if out.hasSuffix(" ") { out.removeLast() }
        return out
    }

    /// RFC 3986 percent-encoding of the UTF-8 bytes of `text`: unreserved characters stay, `/` stays
    /// unless `encodeSlash`, everything else becomes `%XX` (upper-case hex).
    public static func uriEncode(_ text: String, encodeSlash: Bool) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if isUnreserved(byte) || (byte == 0x2F && !encodeSlash) {
                out.append(byte)
            } else {
                out.append(0x25)  // %
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// RFC 3986 unreserved: `A-Z a-z 0-9 - . _ ~`.
    static func isUnreserved(_ byte: UInt8) -> Bool {
        if byte >= 0x41 && byte <= 0x5A { return true }  // A-Z
        if byte >= 0x61 && byte <= 0x7A { return true }  // a-z
        if byte >= 0x30 && byte <= 0x39 { return true }  // 0-9
        return byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E  // - . _ ~
    }

    // MARK: Hashing and time

    /// Lower-case hex SHA-256 of `bytes`.
    public static func hexSHA256<Bytes: DataProtocol>(_ bytes: Bytes) -> String {
        hex(SHA256.hash(data: bytes))
    }

    /// Lower-case hex SHA-256 of the readable bytes of `buffer`.
    public static func hexSHA256(_ buffer: ByteBuffer) -> String {
        buffer.withUnsafeReadableBytes { hex(SHA256.hash(data: $0)) }
    }

    /// Base64 of the MD5 of the readable bytes of `buffer`: a `Content-MD5` header (RFC 1864).
    public static func base64MD5(_ buffer: ByteBuffer) -> String {
        buffer.withUnsafeReadableBytes { Data(Insecure.MD5.hash(data: $0)).base64EncodedString() }
    }

    static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `20130524T000000Z` and `20130524` for `date` (UTC).
    static func timestamps(_ date: Date) -> (String, String) {
        var time = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let day = pad(parts.tm_year + 1900, 4) + pad(parts.tm_mon + 1, 2) + pad(parts.tm_mday, 2)
        let time2 = pad(parts.tm_hour, 2) + pad(parts.tm_min, 2) + pad(parts.tm_sec, 2)
        return ("\(day)T\(time2)Z", day)
    }
}
