import NIOCore
import NIOHTTP1

/// A complete response produced by a route.
public struct HTTPResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: ByteBuffer
    /// The whole response as an HTTP/1.1 keep-alive answer (status line, headers, body), encoded
    /// once for an answer sent again and again: the connection writes these bytes as they are
    /// when nothing needs adding (see ``encodedOnce()``).
    public private(set) var encoded: ByteBuffer?

    public init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// This response with ``encoded`` filled in (and `Content-Length` set): for constant answers
    /// built once, so that each request that gets one skips the HTTP encoder.
    public func encodedOnce() -> HTTPResponse {
        var response = self
        response.headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        var wire = ByteBuffer()
        wire.writeString("HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\n")
        for (name, value) in response.headers {
            wire.writeString("\(name): \(value)\r\n")
        }
        wire.writeString("\r\n")
        wire.writeImmutableBuffer(body)
        response.encoded = wire
        return response
    }

    /// A response with a body of the given type.
    public init(status: HTTPResponseStatus, contentType: String, body: ByteBuffer) {
        self.init(status: status, headers: ["Content-Type": contentType], body: body)
    }

    /// A JSON response from prepared JSON text.
    public static func json(_ status: HTTPResponseStatus, _ json: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: ByteBuffer(string: json))
    }

    /// The error body every non-event error uses: `{"error": code, "message": message}`.
    public static func error(
        _ status: HTTPResponseStatus,
        code: String,
        message: String,
        retryAfterSeconds: Int? = nil
    ) -> HTTPResponse {
        var response = json(status, #"{"error":\#(JSONText.quoted(code)),"message":\#(JSONText.quoted(message))}"#)
        if let retryAfterSeconds {
            response.headers.replaceOrAdd(name: "Retry-After", value: String(retryAfterSeconds))
        }
        return response
    }
}

/// What a route sees of a request.
public struct HTTPRequest: Sendable {
    public var head: HTTPRequestHead
    public var body: ByteBuffer
    /// The path without the query string.
    public var path: Substring
    /// The raw query string, without `?`; empty when there is none.
    public var query: Substring
    /// The connection's peer, read only for an endpoint that needs it (`--fill-ip-address`); else nil.
    var peer: ClientPeer?

    init(head: HTTPRequestHead, body: ByteBuffer) {
        self.head = head
        self.body = body
        (path, query) = Self.split(uri: head.uri)
    }

    /// The path and the query string (without `?`) of a request target. Searched as UTF-8 bytes:
    /// `Substring.firstIndex(of: Character)` walks grapheme clusters, which showed up under
    /// single-event load (twice per request).
    static func split(uri: String) -> (path: Substring, query: Substring) {
        var whole = uri[...]
        if whole.utf8.first != UInt8(ascii: "/") { whole = originForm(whole) }
        guard let mark = whole.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (whole, "") }
        return (whole[..<mark], whole[whole.utf8.index(after: mark)...])
    }

    /// The path and query of an absolute-form target (`http://host:port/path?query`), which a
    /// server must accept (RFC 9112, 3.2.2) and which requests forwarded by some proxies use; any
    /// other target as it is. "/" when the target names no path.
    static func originForm(_ target: Substring) -> Substring {
        let bytes = target.utf8
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")),
            bytes[colon...].starts(with: "://".utf8),
            ["http", "https"].contains(target[..<colon].lowercased())
        else { return target }
        let authority = bytes.index(colon, offsetBy: 3)
        guard let end = bytes[authority...].firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }) else {
            return "/"
        }
        return bytes[end] == UInt8(ascii: "/") ? target[end...] : ("/" + target[end...])[...]
    }

    /// The first value of the query parameter `name`, percent-decoded.
    public func queryParameter(_ name: String) -> String? {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.first.map({ $0 == name[...] }) == true {
                return parts.count > 1 ? JSONText.percentDecoded(parts[1]) : ""
            }
        }
        return nil
    }
}

/// A route that other modules add to the server (metrics, the live page).
public struct HTTPRoute: Sendable {
    public var method: HTTPMethod
    public var path: String
    /// Runs on an event loop: it must be quick and must not block.
    public var handler: @Sendable (HTTPRequest) -> HTTPResponse

    public init(_ method: HTTPMethod, _ path: String, handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse) {
        self.method = method
        self.path = path
        self.handler = handler
    }
}

/// Small text helpers for the responses the edge writes by hand.
enum JSONText {
    /// `s` as a JSON string literal, with quotes.
    static func quoted(_ s: some StringProtocol) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return out
    }

    /// `s` with `%XX` escapes decoded (RFC 3986, 2.1). A `+` stays a `+`: the form encoding's
    /// `+` for a space is not applied, since the one parameter read (`write_key`) never holds a
    /// space, while keys with a `+` (base64) are often pasted into URLs unescaped. A `%` not followed
    /// by two hex digits is kept as it is, with what follows it.
    static func percentDecoded(_ s: Substring) -> String {
        let utf8 = Array(s.utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var index = 0
        while index < utf8.count {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%"), index + 2 < utf8.count, let high = hexValue(utf8[index + 1]),
                let low = hexValue(utf8[index + 2])
            {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(byte)
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
