/// An S3 request that failed: the service's error code (from the XML error body or the status),
/// the HTTP status, the message, the request ID, and the operation that failed.
public struct S3Error: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Hashable, CustomStringConvertible {
        case noSuchKey
        case noSuchBucket
        case noSuchUpload
        case accessDenied
        case signatureDoesNotMatch
        case invalidAccessKeyId
        case requestTimeTooSkewed
        case slowDown
        case internalError
        case serviceUnavailable
        case requestTimeout
        case bucketAlreadyExists
        case bucketAlreadyOwnedByYou
        case invalidPart
        case invalidPartOrder
        case entityTooSmall
        case invalidBucketName
        /// Any other S3 error code, as the service spelled it.
        case other(String)
        /// An HTTP error status without an S3 error body.
        case http(Int)
        /// The request did not get an HTTP answer (connection refused or reset, timeout, ...).
        case transport
        /// The answer could not be understood (bad XML, missing fields).
        case invalidResponse
        /// No credentials were configured.
        case missingCredentials
        /// The configuration is unusable (bad endpoint, ...).
        case invalidConfiguration

        /// Maps an S3 error code string (`NoSuchKey`) to a case.
        public init(s3Code: String) {
            switch s3Code {
            case "NoSuchKey": self = .noSuchKey
            case "NoSuchBucket": self = .noSuchBucket
            case "NoSuchUpload": self = .noSuchUpload
            case "AccessDenied": self = .accessDenied
            case "SignatureDoesNotMatch": self = .signatureDoesNotMatch
            case "InvalidAccessKeyId": self = .invalidAccessKeyId
            case "RequestTimeTooSkewed": self = .requestTimeTooSkewed
            case "SlowDown": self = .slowDown
            case "InternalError": self = .internalError
            case "ServiceUnavailable": self = .serviceUnavailable
            case "RequestTimeout": self = .requestTimeout
            case "BucketAlreadyExists": self = .bucketAlreadyExists
            case "BucketAlreadyOwnedByYou": self = .bucketAlreadyOwnedByYou
            case "InvalidPart": self = .invalidPart
            case "InvalidPartOrder": self = .invalidPartOrder
            case "EntityTooSmall": self = .entityTooSmall
            case "InvalidBucketName": self = .invalidBucketName
            default: self = .other(s3Code)
            }
        }

        public var description: String {
            switch self {
            case .noSuchKey: "NoSuchKey"
            case .noSuchBucket: "NoSuchBucket"
            case .noSuchUpload: "NoSuchUpload"
            case .accessDenied: "AccessDenied"
            case .signatureDoesNotMatch: "SignatureDoesNotMatch"
            case .invalidAccessKeyId: "InvalidAccessKeyId"
            case .requestTimeTooSkewed: "RequestTimeTooSkewed"
            case .slowDown: "SlowDown"
            case .internalError: "InternalError"
            case .serviceUnavailable: "ServiceUnavailable"
            case .requestTimeout: "RequestTimeout"
            case .bucketAlreadyExists: "BucketAlreadyExists"
            case .bucketAlreadyOwnedByYou: "BucketAlreadyOwnedByYou"
            case .invalidPart: "InvalidPart"
            case .invalidPartOrder: "InvalidPartOrder"
            case .entityTooSmall: "EntityTooSmall"
            case .invalidBucketName: "InvalidBucketName"
            case .other(let code): code
            case .http(let status): "HTTP \(status)"
            case .transport: "transport error"
            case .invalidResponse: "invalid response"
            case .missingCredentials: "missing credentials"
            case .invalidConfiguration: "invalid configuration"
            }
        }
    }

    public var code: Code
    /// The HTTP status, when there was an answer.
    public var status: Int?
    public var message: String
    /// `x-amz-request-id` (or `<RequestId>` from the error body).
    public var requestID: String?
    /// The operation that failed: `PutObject`, `GetObject`, `UploadPart`, ...
    public var operation: String
    public var bucket: String?
    public var key: String?
    /// How many attempts were made before giving up.
    public var attempts: Int
    /// Whether the answer carried an S3 error document (`<Error><Code>…`), rather than the code
    /// being guessed from the status: a 404 from something that is not an S3 API (a console, a
    /// filer, an endpoint with a path) has none.
    public var fromErrorBody = false
    /// The request failed in its TLS handshake (an untrusted certificate, an endpoint that does not
    /// speak TLS): retrying soon does not mend it, so a start-up check stops on it.
    public var tlsFailure = false
    /// The (last) attempt reached its deadline with no answer: a store that is silent, or one too
    /// slow for the deadline.
    public var timedOut = false
    /// The answer's `Retry-After` (on 503 and 429), which the next attempt waits for (up to 30 s).
    public var retryAfter: Duration?

    public init(
        code: Code,
        status: Int? = nil,
        message: String,
        requestID: String? = nil,
        operation: String,
        bucket: String? = nil,
        key: String? = nil,
        attempts: Int = 1
    ) {
        self.code = code
        self.status = status
        self.message = message
        self.requestID = requestID
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.attempts = attempts
    }

    /// The store refused the credentials or what they may do: no retry mends it. AWS answers an
    /// expired or bad session token with 400 `ExpiredToken` / `InvalidToken` (not 403).
    public var isCredentialRefusal: Bool {
        switch code {
        case .accessDenied, .signatureDoesNotMatch, .invalidAccessKeyId: true
        case .other(let name): Self.sessionTokenCodes.contains(name)
        default: false
        }
    }

    /// The codes of a session token the store does not take (expired, malformed, to be refreshed).
    public static let sessionTokenCodes: Set<String> = ["ExpiredToken", "InvalidToken", "TokenRefreshRequired", "ExpiredTokenException"]

    /// A conditional request's condition did not hold (HTTP 412, `PreconditionFailed`).
    public var isPreconditionFailed: Bool { status == 412 }

    /// The store does not implement the request (HTTP 501, `NotImplemented`): conditional writes, on
    /// some S3-compatible stores.
    public var isNotImplemented: Bool { status == 501 || code == .other("NotImplemented") }

    /// Whether trying again may succeed: 5xx, 429, SlowDown, timeouts and connection errors; not 501
    /// `NotImplemented`, which a store answers every time (a conditional write on a store without
    /// them: each state commit was tried 5 times, with 4 warnings of an outage, before its fallback,
    /// an outside review of the code).
    public var isRetryable: Bool {
        if isNotImplemented { return false }
        switch code {
        case .slowDown, .internalError, .serviceUnavailable, .requestTimeout, .transport: return true
        default:
            if let status, status >= 500 || status == 429 { return true }
            return false
        }
    }

    public var description: String {
        var text = "S3 \(operation) failed: \(code)"
        if let status { text += " (HTTP \(status))" }
        if !message.isEmpty { text += ": \(message)" }
        if let bucket {
            text += " [s3://\(bucket)"
            if let key { text += "/\(key)" }
            text += "]"
        }
        if let requestID, !requestID.isEmpty { text += " request-id=\(requestID)" }
        if attempts > 1 { text += " after \(attempts) attempts" }
        return text
    }
}
