import NIOHTTP1

/// Cross-origin rules for browser SDKs.
///
/// Browsers send `sendBeacon` and `fetch(..., {credentials: "include"})` with credentials, and a
/// credentialed response may not use `Access-Control-Allow-Origin: *`. So an allowed origin is always
/// echoed back, with `Access-Control-Allow-Credentials: true` and `Vary: Origin`.
struct CORSPolicy: Sendable {
    let allowsEveryOrigin: Bool
    let allowedOrigins: Set<String>
    static let allowedMethods = "POST, GET, OPTIONS"
    static let allowedHeaders: Set<String> = ["content-type", "content-encoding", "authorization", "x-requested-with"]
    static let maxAgeSeconds = 600

    init(origins: [String]) {
        allowsEveryOrigin = origins.contains("*")
        allowedOrigins = Set(origins.map { $0.lowercased() })
    }

    func allows(origin: String) -> Bool {
        allowsEveryOrigin || allowedOrigins.contains(origin.lowercased())
    }

    /// Adds the CORS headers of an actual (non-preflight) response.
    func decorate(_ headers: inout HTTPHeaders, requestHeaders: HTTPHeaders) {
        guard let origin = requestHeaders.first(name: "origin"), allows(origin: origin) else { return }
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
        let requested = request.head.headers.first(name: "access-control-request-headers") ?? ""
        for name in requested.split(separator: ",") {
            let header = String(name).trimmed().lowercased()
            if !header.isEmpty && !Self.allowedHeaders.contains(header) {
                return .error(.forbidden, code: "header_not_allowed", message: "request header \(header) is not allowed")
            }
        }
        var headers: HTTPHeaders = [
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": Self.allowedMethods,
            "Access-Control-Allow-Headers": Self.allowedHeaders.sorted().joined(separator: ", "),
            "Access-Control-Max-Age": String(Self.maxAgeSeconds),
            "Vary": "Origin",
        ]
        headers.add(name: "Content-Length", value: "0")
        return HTTPResponse(status: .noContent, headers: headers)
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
