import NIOHTTP1

/// Cross-origin rules for browser SDKs.
///
/// Browsers send `sendBeacon` and `fetch(..., {credentials: "include"})` with credentials, and a
/// credentialed response may not use `Access-Control-Allow-Origin: *`. So an allowed origin is always
/// echoed back, with `Access-Control-Allow-Credentials: true` and `Vary: Origin`.
struct CORSPolicy: Sendable {
    let allowsEveryOrigin: Bool
    let allowedOrigins: Set<String>
    /// What a page of another origin may send: events (`POST /v1/events`) and their preflight.
    static let allowedMethods = "POST, OPTIONS"
    static let allowedHeaders: Set<String> = ["content-type", "content-encoding", "authorization", "x-requested-with"]
    static let maxAgeSeconds = 600

    init(origins: [String]) {
        allowsEveryOrigin = origins.contains("*")
        allowedOrigins = Set(origins.map { $0.lowercased() })
    }

    func allows(origin: String) -> Bool {
        allowsEveryOrigin || allowedOrigins.contains(origin.lowercased())
    }

    /// Adds the CORS headers of an actual (non-preflight) response. A response that already has
    /// them (the answer to a preflight) is left as it is: a browser refuses a repeated
    /// `Access-Control-Allow-Origin` ("contains multiple values"), and with it the whole request.
    func decorate(_ headers: inout HTTPHeaders, requestHeaders: HTTPHeaders) {
        guard let origin = requestHeaders.first(name: "origin"), allows(origin: origin),
            !headers.contains(name: "access-control-allow-origin")
        else { return }
        headers.add(name: "Access-Control-Allow-Origin", value: origin)
        headers.add(name: "Access-Control-Allow-Credentials", value: "true")
        headers.add(name: "Access-Control-Expose-Headers", value: "Retry-After")
        headers.add(name: "Vary", value: "Origin")
    }

    /// The answer to a preflight `OPTIONS` request.
    func preflight(_ request: HTTPRequest) -> HTTPResponse {
        guard let origin = request.head.headers.first(name: "origin") else {
            return .error(.badRequest, code: "not_a_preflight", message: "OPTIONS needs an Origin header (CORS preflight)")
        }
        guard allows(origin: origin) else {
            return .error(.forbidden, code: "origin_not_allowed", message: "origin \(origin) is not allowed by the CORS configuration")
        }
        // Every requested header that is a header name is allowed: the server reads only the ones
        // it knows (the body's type and encoding, a write key) and ignores the rest, as it does for
        // requests from anywhere else. Pages send more than the SDK does: tracing tools add
        // `traceparent`, `baggage`, `sentry-trace` or `X-Request-ID` to every request. Until
        // 2026-12-04 any other header got 403, and Chrome could only say that the preflight "does not
        // have HTTP ok status" (a probe); a name that is not a token is left out of the answer, and
        // the browser then names it.
        let requested = request.head.headers.first(name: "access-control-request-headers") ?? ""
        var allowed = Self.allowedHeaders
        for name in requested.split(separator: ",") {
            let header = String(name).trimmed().lowercased()
            if !header.isEmpty && header.utf8.allSatisfy(Self.isTokenByte) { allowed.insert(header) }
        }
        var headers: HTTPHeaders = [
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": Self.allowedMethods,
            "Access-Control-Allow-Headers": allowed.sorted().joined(separator: ", "),
            "Access-Control-Max-Age": String(Self.maxAgeSeconds),
            "Vary": "Origin",
        ]
        headers.add(name: "Content-Length", value: "0")
        return HTTPResponse(status: .noContent, headers: headers)
    }

    /// A byte of an HTTP token (RFC 9110 §5.6.2), the syntax of a header name.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    func trimmed() -> String {
        var s = self[...]
        while let first = s.first, first == " " || first == "\t" { s = s.dropFirst() }
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// Checks on `--cors-origin` values, so that one that could never match a browser's `Origin`
/// header is refused at start-up instead of failing every cross-origin request later.
public enum CORSOrigin {
    /// Why `origin` can never equal an `Origin` header a browser sends, or nil when it can. A
    /// browser sends `scheme://host[:port]`: no path, no trailing slash, and no port when it is the
    /// scheme's default. `*` (every origin) and `null` (sandboxed frames, `file:` pages) are kept.
    public static func problem(with origin: String) -> String? {
        if origin == "*" || origin == "null" { return nil }
        if origin.isEmpty { return "is empty; give an origin such as https://app.example.com, or * for every origin" }
        if origin.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F }) {
            return "contains whitespace or a control character"
        }
        guard let separator = origin.range(of: "://"), separator.lowerBound > origin.startIndex else {
            return "has no scheme; an origin looks like https://app.example.com"
        }
        let scheme = origin[..<separator.lowerBound].lowercased()
        let authority = origin[separator.upperBound...]
        if let cut = authority.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            let rest = authority[cut...]
            return rest == "/"
                ? "ends with a slash; a browser's Origin header never does, so drop it"
                : "has a path or query (\(rest)); a browser's Origin header is scheme://host[:port] only"
        }
        if authority.isEmpty || authority.hasPrefix(":") { return "has no host" }
        if (scheme == "https" && authority.hasSuffix(":443")) || (scheme == "http" && authority.hasSuffix(":80")) {
            return "has its scheme's default port, which browsers leave out of the Origin header; drop \(authority[authority.lastIndex(of: ":")!...])"
        }
        return nil
    }
}
