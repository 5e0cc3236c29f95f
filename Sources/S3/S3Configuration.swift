import Foundation

/// AWS credentials: an access key, its secret, and an optional session token (temporary credentials).
public struct S3Credentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; nil when the key or secret is missing.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> S3Credentials? {
        guard let key = environment["AWS_ACCESS_KEY_ID"], !key.isEmpty,
            let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty
        else { return nil }
        let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return S3Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: token)
    }
}

/// How failed requests are retried: 5xx, 429/SlowDown and connection errors are tried again up to
/// `maximumAttempts` times in all, waiting a jittered, exponentially growing delay between attempts
/// ("equal jitter": half the capped exponential delay, plus a random part of the other half).
public struct S3RetryPolicy: Sendable, Equatable {
    public var maximumAttempts: Int
    public var initialDelay: Duration
    public var maximumDelay: Duration

    public init(maximumAttempts: Int = 5, initialDelay: Duration = .milliseconds(100), maximumDelay: Duration = .seconds(5)) {
        self.maximumAttempts = max(1, maximumAttempts)
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
    }

    /// No retries.
    public static let none = S3RetryPolicy(maximumAttempts: 1)

    /// The delay before attempt `attempt + 1` (attempt counts from 1).
    public func delay(afterAttempt attempt: Int) -> Duration {
        let initial = Self.seconds(initialDelay)
        let cap = Self.seconds(maximumDelay)
        let exponential = min(cap, initial * pow(2, Double(max(0, attempt - 1))))
        let jittered = exponential / 2 + Double.random(in: 0...(exponential / 2))
        return .nanoseconds(Int64(jittered * 1e9))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// Where and how to reach S3.
public struct S3Configuration: Sendable {
    /// The scheme, host and port of the service, e.g. `http://127.0.0.1:8333` or `https://s3.eu-west-1.amazonaws.com`.
    public var endpoint: String
    public var region: String
    public var credentials: S3Credentials
    /// Path-style URLs (`endpoint/bucket/key`) rather than virtual-hosted ones (`bucket.host/key`).
    /// SeaweedFS and MinIO want path style.
    public var pathStyle: Bool
    public var retry: S3RetryPolicy
    /// `upload` uses a multipart upload for bodies larger than this.
    public var multipartThreshold: Int
    /// The part size of multipart uploads (S3 wants at least 5 MiB, except for the last part).
    public var partSize: Int
    /// How many parts of one upload are sent at the same time.
    public var multipartConcurrency: Int
    /// The timeout of one HTTP request (one attempt). 30 s: enough for a part of 8 MiB at 300 KB/s;
    /// a store that stalls (answers nothing) then shows as failed attempts within minutes, where
    /// 120 s per attempt, tried five times, hid it for ten (a probe with SeaweedFS stopped by SIGSTOP).
    public var requestTimeout: Duration
    /// A request that has moved no byte for this long (the store took none of its body and sent
    /// none of its answer) counts as unanswered: ``S3Client/unansweredRequests`` lists it and a
    /// warning is logged, long before `requestTimeout` and the retries give up. It still runs to its
    /// deadline. 15 s: a store that answers at all sends or takes something within seconds.
    public var unansweredAfter: Duration
    /// The largest object `getObject` reads into memory: at most `UInt32.max` bytes, the most a
    /// `ByteBuffer` holds (until 2026-12-07 the default was 4 GiB, one byte more, and an object of
    /// exactly that size would have trapped as it was read, an outside review).
    public var maximumObjectSize: Int
    /// A PEM file of certificate authorities trusted besides the system's (`AWS_CA_BUNDLE`): for a
    /// store whose certificate a private CA signed (MinIO, Ceph inside a company network).
    public var caBundle: String?

    public init(
        endpoint: String,
        region: String = "us-east-1",
        credentials: S3Credentials,
        pathStyle: Bool = true,
        retry: S3RetryPolicy = S3RetryPolicy(),
        multipartThreshold: Int = 16 << 20,
        partSize: Int = 8 << 20,
        multipartConcurrency: Int = 4,
        requestTimeout: Duration = .seconds(30),
        unansweredAfter: Duration = .seconds(15),
        maximumObjectSize: Int = Int(UInt32.max)
    ) {
        self.endpoint = endpoint
        self.region = region
        self.credentials = credentials
        self.pathStyle = pathStyle
        self.retry = retry
        self.multipartThreshold = multipartThreshold
        self.partSize = max(1, partSize)
        self.multipartConcurrency = max(1, multipartConcurrency)
        self.requestTimeout = requestTimeout
        self.unansweredAfter = unansweredAfter
        self.maximumObjectSize = maximumObjectSize
    }

    /// A configuration from explicit values, falling back to the environment:
    /// - endpoint: `endpoint`, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else AWS
    ///   (`https://s3.<region>.amazonaws.com`, virtual-hosted style);
    /// - region: `region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`;
    /// - credentials: `credentials`, else `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`;
    /// - certificate authorities besides the system's: `AWS_CA_BUNDLE` (a PEM file).
    /// Throws `S3Error` (`.missingCredentials`, `.invalidConfiguration`) with a message that says what to set.
    public static func fromEnvironment(
        endpoint: String? = nil,
        region: String? = nil,
        credentials: S3Credentials? = nil,
        pathStyle: Bool? = nil,
        retry: S3RetryPolicy = S3RetryPolicy(),
        multipartThreshold: Int = 16 << 20,
        partSize: Int = 8 << 20,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> S3Configuration {
        func nonEmpty(_ value: String?) -> String? { value.flatMap { $0.isEmpty ? nil : $0 } }
        let region = nonEmpty(region) ?? nonEmpty(environment["AWS_REGION"]) ?? nonEmpty(environment["AWS_DEFAULT_REGION"]) ?? "us-east-1"
        let explicitEndpoint = nonEmpty(endpoint) ?? nonEmpty(environment["AWS_ENDPOINT_URL_S3"]) ?? nonEmpty(environment["AWS_ENDPOINT_URL"])
        let resolvedEndpoint = explicitEndpoint ?? "https://s3.\(region).amazonaws.com"
        guard let credentials = credentials ?? S3Credentials.fromEnvironment(environment) else {
            throw S3Error(
                code: .missingCredentials,
                message: "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)",
                operation: "Configure"
            )
        }
        _ = try S3Endpoint(parsing: resolvedEndpoint)
        var configuration = S3Configuration(
            endpoint: resolvedEndpoint,
            region: region,
            credentials: credentials,
            pathStyle: pathStyle ?? (explicitEndpoint != nil),
            retry: retry,
            multipartThreshold: multipartThreshold,
            partSize: partSize
        )
        configuration.caBundle = nonEmpty(environment["AWS_CA_BUNDLE"])
        return configuration
    }
}

/// An endpoint split into scheme, host and port.
struct S3Endpoint: Sendable, Equatable {
    var scheme: String
    var host: String
    var port: Int?
    /// A path prefix of the endpoint ("" for none), without trailing `/`.
    var basePath: String

    init(parsing text: String) throws {
        func invalid(_ why: String) -> S3Error {
            S3Error(code: .invalidConfiguration, message: "S3 endpoint '\(text)' \(why): use e.g. http://127.0.0.1:8333", operation: "Configure")
        }
        guard let schemeEnd = text.range(of: "://") else { throw invalid("has no scheme") }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { throw invalid("must use http or https") }
        var rest = Substring(text[schemeEnd.upperBound...])
        var basePath = ""
        if let slash = rest.firstIndex(of: "/") {
            basePath = String(rest[slash...])
            rest = rest[..<slash]
            while basePath.hasSuffix("/") { basePath.removeLast() }
        }
        guard !rest.isEmpty else { throw invalid("has no host") }
        if let at = rest.lastIndex(of: "@") {
            // Credentials come from the environment, and an endpoint is printed in messages: one
            // with a password in it was repeated whole in start-up errors (a probe, 2026-12-04).
            let redacted = text[..<schemeEnd.upperBound] + "…@" + text[text.index(after: at)...]
            throw S3Error(
                code: .invalidConfiguration,
                message: "S3 endpoint '\(redacted)' has a user or password in it: give the scheme, host and port only; credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                operation: "Configure")
        }
        var host = String(rest)
        var port: Int?
        // A port out of 1...65535 is refused for an IPv6 literal too: `[::1]:65536` was taken and
        // crashed the process in NIO's SocketAddress at the first request (an outside review).
        func parsePort(_ text: Substring) throws -> Int {
            guard let value = Int(text), (1...65535).contains(value) else { throw invalid("has a bad port") }
            return value
        }
        if host.hasPrefix("[") {  // IPv6 literal
            guard let close = host.firstIndex(of: "]") else { throw invalid("has an IPv6 address without its closing ']'") }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                port = try parsePort(after.dropFirst())
            } else if !after.isEmpty {
                throw invalid("has something after its IPv6 address that is not a port")
            }
            host = String(host[...close])
        } else if let colon = host.lastIndex(of: ":") {
            port = try parsePort(host[host.index(after: colon)...])
            host = String(host[..<colon])
        }
        // The host's characters are checked here, so that a typo is a configuration error at
        // start: `http://bad host:27007` became AsyncHTTPClient's invalidURL at each request,
        // retried as a transport error for ever (an outside review).
        guard Self.isHost(host) else {
            throw invalid(host.isEmpty ? "has no host" : "has a bad host '\(host)' (a name of letters, digits, '-', '.' and '_', an IPv4 address, or an IPv6 address in brackets)")
        }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
        self.basePath = basePath
    }

    /// A host name (ASCII letters, digits, `-`, `.`, `_`: an internationalised name is given in its
    /// `xn--` form) or an IPv6 literal in brackets (hex digits, `:` and `.`, and a `%` zone).
    static func isHost(_ host: String) -> Bool {
        let bytes = Array(host.utf8)
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        if bytes.first == UInt8(ascii: "[") {
            guard bytes.count > 2, bytes.last == UInt8(ascii: "]") else { return false }
            let inside = bytes.dropFirst().dropLast()
            return inside.contains(UInt8(ascii: ":"))
                && inside.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "%") }
        }
        return !bytes.isEmpty
            && bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") }
    }

    /// The Host header for `host` (the endpoint's, or a virtual-hosted bucket's): the port is
    /// included unless it is the scheme's default.
    func hostHeader(host: String) -> String {
        guard let port else { return host }
        if (scheme == "http" && port == 80) || (scheme == "https" && port == 443) { return host }
        return "\(host):\(port)"
    }
}
