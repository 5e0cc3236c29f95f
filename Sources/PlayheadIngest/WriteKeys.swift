import NIOHTTP1

/// Checks write keys: `Authorization: Bearer <key>`, or `?write_key=<key>` for beacons.
struct WriteKeyCheck: Sendable {
    let keys: Set<String>

    /// nil when the request may proceed, else the 401 answer.
    func check(_ request: HTTPRequest) -> HTTPResponse? {
        guard !keys.isEmpty else { return nil }
        let presented: String?
        if let authorization = request.head.headers.first(name: "authorization") {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                return unauthorized("the Authorization header must be 'Bearer <write key>'")
            }
            presented = String(parts[1]).trimmed()
        } else {
            presented = request.queryParameter("write_key")
        }
        guard let presented, !presented.isEmpty else {
            return unauthorized("a write key is required: send 'Authorization: Bearer <key>' or '?write_key=<key>'")
        }
        guard keys.contains(presented) else {
            return unauthorized("unknown write key")
        }
        return nil
    }

    private func unauthorized(_ message: String) -> HTTPResponse {
        var response = HTTPResponse.error(.unauthorized, code: "unauthorized", message: message)
        response.headers.add(name: "WWW-Authenticate", value: #"Bearer realm="playhead""#)
        return response
    }
}
