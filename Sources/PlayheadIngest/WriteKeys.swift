import Crypto
import NIOHTTP1

/// Checks write keys: `Authorization: Bearer <key>`, or `?write_key=<key>` for beacons.
///
/// The keys are held as their SHA-256 digests, and a presented key is digested before it is
/// looked up: a comparison that stops at the first byte that differs then tells a client how
/// much of a digest it got right, which says nothing about the key. Held as text, the lookup's
/// comparison of the presented key with a configured one took longer the more of its first bytes
/// were right: a timing side channel on the key itself.
struct WriteKeyCheck: Sendable {
    private let digests: Set<[UInt8]>

    init(keys: Set<String>) {
        digests = Set(keys.map(Self.digest))
    }

    private static func digest(_ key: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(key.utf8)))
    }

    /// nil when the request may proceed, else the 401 answer.
    func check(_ request: HTTPRequest) -> HTTPResponse? {
        guard !digests.isEmpty else { return nil }
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
        guard digests.contains(Self.digest(presented)) else {
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
