import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// An object read with `getObject`.
public struct S3Object: Sendable {
    public var body: ByteBuffer
    public var etag: String?
    public var contentLength: Int
    public var contentType: String?
    public var lastModified: Date?

    /// The object's bytes.
    public var bytes: [UInt8] { Array(body.readableBytesView) }
}

/// An object as listed (ListObjectsV2) or described (HeadObject).
public struct S3ObjectSummary: Sendable, Equatable {
    public var key: String
    public var size: Int
    /// The ETag without its quotes.
    public var etag: String?
    public var lastModified: Date?

    public init(key: String, size: Int, etag: String?, lastModified: Date?) {
        self.key = key
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
    }
}

/// One page of a ListObjectsV2 listing.
public struct S3ListPage: Sendable {
    public var objects: [S3ObjectSummary]
    public var commonPrefixes: [String]
    public var isTruncated: Bool
    public var nextContinuationToken: String?
}

/// A part of a multipart upload, as `completeMultipartUpload` wants it.
public struct S3CompletedPart: Sendable, Equatable {
    public var partNumber: Int
    /// The ETag the service returned for the part (quotes kept as sent).
    public var etag: String

    public init(partNumber: Int, etag: String) {
        self.partNumber = partNumber
        self.etag = etag
    }
}

/// An S3 client over AsyncHTTPClient, signing every request with `SigV4Signer`.
///
/// - Failed requests are retried (5xx, 429/SlowDown, connection errors) per `S3RetryPolicy`, each
///   attempt re-signed with the current time.
/// - `upload` uses one PUT up to `multipartThreshold`, and a multipart upload above it; a failed
///   multipart upload is aborted so no parts are left behind.
/// - Errors are `S3Error`s carrying the service's code, status, message and request ID.
/// - Metrics: `playhead_s3_requests_total{operation,status}` (one per attempt; status `error` when
///   there was no HTTP answer), `playhead_s3_retries_total{operation}` and
///   `playhead_s3_requests_unanswered` (see `unansweredRequests`).
/// - Attempts in flight are watched: one that has moved no byte (none of its body taken, none of
///   its answer come) for `unansweredAfter` is listed in `unansweredRequests` and logged once.
public final class S3Client: Sendable {
    public let configuration: S3Configuration
    public let signer: SigV4Signer
    let httpClient: HTTPClient
    let logger: Logger
    let endpoint: Result<S3Endpoint, S3Error>
    let metricsFactory: (any MetricsFactory)?
    let inFlight: S3InFlight
    /// From ``giveUp(after:)``: no request goes on past this instant, neither an attempt in flight
    /// nor a retry.
    private let givingUpAt = Mutex<ContinuousClock.Instant?>(nil)

    /// Ends every request `after` from now at the latest: the attempt in flight then (cut as at its
    /// deadline) and any retry after it. For a process that is stopping (`import` on SIGTERM): a
    /// store that does not answer held it for a request's 5 attempts of 30 s, about 2.5 minutes,
    /// past a service manager's stop timeout (an outside review). Requests made before the instant
    /// still have their first attempt, so that the import can take its files out of the lake again
    /// while the store answers. A second call keeps the earlier instant.
    public func giveUp(after: Duration) {
        let instant = ContinuousClock.now + after
        givingUpAt.withLock { $0 = min($0 ?? instant, instant) }
    }

    var giveUpInstant: ContinuousClock.Instant? { givingUpAt.withLock { $0 } }

    /// The attempts in flight that have moved no byte for ``S3Configuration/unansweredAfter`` or
    /// longer (the store took none of their body and sent none of their answer), silent longest
    /// first. Empty while the store answers.
    public var unansweredRequests: [S3UnansweredRequest] {
        inFlight.unanswered(threshold: configuration.unansweredAfter)
    }

    /// The HTTP client S3 clients use by default: like `HTTPClient.shared`, except that a connection
    /// that cannot be established fails the request at once (after `connect` timeout 5 s at most)
    /// instead of AsyncHTTPClient retrying it silently until the request's deadline, so that
    /// `S3RetryPolicy` governs outages (with its logs and metrics).
    public static let defaultHTTPClient: HTTPClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration())

    private static func clientConfiguration(tls: TLSConfiguration? = nil) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout.connect = .seconds(5)
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.decompression = .disabled
        return configuration
    }

    /// HTTP clients that trust a CA bundle besides the system's roots, one per bundle, kept for
    /// the process's life like ``defaultHTTPClient``.
    private static let bundleClients = Mutex<[String: HTTPClient]>([:])

    /// The HTTP client for `configuration`: ``defaultHTTPClient``, or one that also trusts the
    /// certificates of its ``S3Configuration/caBundle``. Throws `invalidConfiguration` when that
    /// file holds no PEM certificate.
    public static func httpClient(for configuration: S3Configuration) throws -> HTTPClient {
        // Read only for an https endpoint: a stray bundle in a shell stopped an http:// one (a review).
        guard let bundle = configuration.caBundle, configuration.endpoint.lowercased().hasPrefix("https://") else { return defaultHTTPClient }
        let notPEM = "it holds no PEM certificate (-----BEGIN CERTIFICATE-----; a DER file: openssl x509 -inform der -in it -out ca.pem)"
        return try bundleClients.withLock { clients in
            if let client = clients[bundle] { return client }
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMFile(bundle)
            } catch {
                var isFolder: ObjCBool = false
                let exists = FileManager.default.fileExists(atPath: bundle, isDirectory: &isFolder)
                let reason = !exists ? "no such file"
                    : isFolder.boolValue ? "it is a folder: give the PEM file of the certificate authorities"
                    : FileManager.default.isReadableFile(atPath: bundle) ? notPEM : "it cannot be read (permissions?)"
                throw S3Error(code: .invalidConfiguration, message: "AWS_CA_BUNDLE \(bundle): \(reason)", operation: "Configure")
            }
            guard !certificates.isEmpty else {
                throw S3Error(code: .invalidConfiguration, message: "AWS_CA_BUNDLE \(bundle): \(notPEM)", operation: "Configure")
            }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.additionalTrustRoots = [.certificates(certificates)]
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration(tls: tls))
            clients[bundle] = client
            return client
        }
    }

    /// - Parameter httpClient: `S3Client.defaultHTTPClient` unless given; with a client that retries
    ///   connection establishment (as `HTTPClient.shared` does), an outage shows up as slow requests
    ///   that fail at `requestTimeout` rather than as quick retries.
    /// - Parameter metricsFactory: where metrics go (`MetricsSystem.factory` unless given).
    public init(
        configuration: S3Configuration,
        httpClient: HTTPClient = S3Client.defaultHTTPClient,
        logger: Logger = Logger(label: "playhead.s3"),
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.metricsFactory = metricsFactory
        inFlight = S3InFlight { count in
            Gauge(label: "playhead_s3_requests_unanswered", factory: metricsFactory ?? MetricsSystem.factory).record(count)
        }
        self.configuration = configuration
        self.httpClient = httpClient
        self.logger = logger
        self.signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region, service: "s3")
        do {
            endpoint = .success(try S3Endpoint(parsing: configuration.endpoint))
        } catch let error as S3Error {
            endpoint = .failure(error)
        } catch {
            endpoint = .failure(S3Error(code: .invalidConfiguration, message: "\(error)", operation: "Configure"))
        }
    }

    // MARK: Objects

    /// Stores `body` under `key`: one PUT up to `multipartThreshold` bytes, a multipart upload above
    /// (aborted if it fails). When this returns, the object is complete and durable.
    public func upload(bucket: String, key: String, body: ByteBuffer, contentType: String? = nil) async throws {
        if body.readableBytes <= configuration.multipartThreshold {
            try await putObject(bucket: bucket, key: key, body: body, contentType: contentType)
        } else {
            try await multipartUpload(bucket: bucket, key: key, body: body, contentType: contentType)
        }
    }

    /// One PUT. Returns the ETag (without quotes).
    ///
    /// A conditional PUT (RFC 9110 §13.1; S3 since 2024, SeaweedFS, MinIO): `ifNoneMatch: "*"` writes
    /// only when no object has the key, `ifMatch` only when the object's ETag is that one (quotes
    /// optional). When the condition fails the store answers 412: ``S3Error/isPreconditionFailed``.
    @discardableResult
    public func putObject(
        bucket: String, key: String, body: ByteBuffer, contentType: String? = nil, ifMatch: String? = nil, ifNoneMatch: String? = nil
    ) async throws -> String? {
        var headers: [(String, String)] = []
        if let contentType { headers.append(("content-type", contentType)) }
        if let ifMatch { headers.append(("if-match", ifMatch.hasPrefix("\"") ? ifMatch : "\"\(ifMatch)\"")) }
        if let ifNoneMatch { headers.append(("if-none-match", ifNoneMatch)) }
        let response = try await send(operation: "PutObject", method: .PUT, bucket: bucket, key: key, headers: headers, body: body)
        return response.headers.first(name: "etag").map(Self.unquote)
    }

    /// Reads a whole object. Throws `S3Error` with `.noSuchKey` when it does not exist, and
    /// `.invalidResponse` when it is larger than ``S3Configuration/maximumObjectSize`` (or than
    /// `UInt32.max` bytes, the most a `ByteBuffer` holds, whatever that is set to).
    public func getObject(bucket: String, key: String) async throws -> S3Object {
        let response = try await send(
            operation: "GetObject", method: .GET, bucket: bucket, key: key, maximumBodySize: Self.bodyLimit(configuration.maximumObjectSize)
        )
        return S3Object(
            body: response.body,
            etag: response.headers.first(name: "etag").map(Self.unquote),
            contentLength: response.body.readableBytes,
            contentType: response.headers.first(name: "content-type"),
            lastModified: response.headers.first(name: "last-modified").flatMap(S3Dates.parseHTTPDate)
        )
    }

    /// Describes an object; nil when it does not exist.
    public func headObject(bucket: String, key: String) async throws -> S3ObjectSummary? {
        do {
            let response = try await send(operation: "HeadObject", method: .HEAD, bucket: bucket, key: key)
            return S3ObjectSummary(
                key: key,
                size: response.headers.first(name: "content-length").flatMap { Int($0) } ?? 0,
                etag: response.headers.first(name: "etag").map(Self.unquote),
                lastModified: response.headers.first(name: "last-modified").flatMap(S3Dates.parseHTTPDate)
            )
        } catch let error as S3Error where error.status == 404 && error.code != .noSuchBucket {
            return nil
        }
    }

    /// Deletes an object (no error when it does not exist, as S3 does).
    /// With `ifMatch`, only while the object's ETag is that one (else `S3Error.isPreconditionFailed`).
    public func deleteObject(bucket: String, key: String, ifMatch: String? = nil) async throws {
        let headers = ifMatch.map { [("if-match", $0.hasPrefix("\"") ? $0 : "\"\($0)\"")] } ?? []
        try await send(operation: "DeleteObject", method: .DELETE, bucket: bucket, key: key, headers: headers)
    }

    // MARK: Listing

    /// One page of ListObjectsV2.
    ///
    /// - Parameter within: how long the request may take in all, its retries included; the attempt
    ///   in flight then is cut at that moment (`S3Error/timedOut`). Unless given, each attempt has
    ///   ``S3Configuration/requestTimeout``.
    public func listObjects(
        bucket: String,
        prefix: String = "",
        delimiter: String? = nil,
        continuationToken: String? = nil,
        startAfter: String? = nil,
        maxKeys: Int? = nil,
        within: Duration? = nil
    ) async throws -> S3ListPage {
        // Keys come back URL-encoded: XML 1.0 cannot carry most C0 control characters, and a store
        // without the parameter mangles them (SeaweedFS writes U+FFFD for \u{01}, so the listing
        // named a key that does not exist).
        var query: [(String, String)] = [("list-type", "2"), ("encoding-type", "url")]
        if !prefix.isEmpty { query.append(("prefix", prefix)) }
        if let delimiter { query.append(("delimiter", delimiter)) }
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        if let startAfter { query.append(("start-after", startAfter)) }
        if let maxKeys { query.append(("max-keys", String(maxKeys))) }
        let response = try await send(
            operation: "ListObjectsV2", method: .GET, bucket: bucket, key: nil, listing: prefix.isEmpty ? nil : prefix, query: query,
            within: within)
        let root = try parseXML(response, operation: "ListObjectsV2", bucket: bucket)
        do {
            return try Self.listPage(root)
        } catch let message as ListingError {
            throw S3Error(code: .invalidResponse, status: response.status, message: message.text,
                requestID: response.headers.first(name: "x-amz-request-id"), operation: "ListObjectsV2", bucket: bucket)
        }
    }

    struct ListingError: Error { var text: String }

    /// The page a ListObjectsV2 answer holds. Keys and common prefixes are decoded when the answer
    /// says `<EncodingType>url</EncodingType>` (a store that ignores `encoding-type` sends them
    /// as they are, and a `%` in them is then a `%`).
    static func listPage(_ root: S3XMLElement) throws(ListingError) -> S3ListPage {
        guard root.name == "ListBucketResult" else { throw ListingError(text: "expected <ListBucketResult>, got <\(root.name)>") }
        let encoded = root.value("EncodingType")?.trimmingCharacters(in: .whitespaces).lowercased() == "url"
        func name(_ text: String, _ element: String) throws(ListingError) -> String {
            guard encoded else { return text }
            // application/x-www-form-urlencoded, as AWS and SeaweedFS write it: a space is `+`, a `+` is %2B.
            guard let decoded = text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding else {
                throw ListingError(text: "<\(element)> \(text.debugDescription) is not URL-encoded UTF-8, though the listing says <EncodingType>url</EncodingType>")
            }
            return decoded
        }
        var objects: [S3ObjectSummary] = []
        for contents in root.children("Contents") {
            guard let key = contents.value("Key") else { throw ListingError(text: "<Contents> without <Key>") }
            objects.append(
                S3ObjectSummary(
                    key: try name(key, "Key"),
                    size: contents.value("Size").flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? 0,
                    etag: contents.value("ETag").map(Self.unquote),
                    lastModified: contents.value("LastModified").flatMap(S3Dates.parseISO8601)
                ))
        }
        var prefixes: [String] = []
        for prefix in root.children("CommonPrefixes").compactMap({ $0.value("Prefix") }) { prefixes.append(try name(prefix, "Prefix")) }
        let truncated = root.value("IsTruncated")?.trimmingCharacters(in: .whitespaces).lowercased() == "true"
        let token = root.value("NextContinuationToken").flatMap { $0.isEmpty ? nil : $0 }  // opaque, never encoded
        return S3ListPage(objects: objects, commonPrefixes: prefixes, isTruncated: truncated, nextContinuationToken: token)
    }

    /// Every object under `prefix`, following continuation tokens.
    public func listAllObjects(bucket: String, prefix: String, maxKeysPerPage: Int? = nil) async throws -> [S3ObjectSummary] {
        var all: [S3ObjectSummary] = []
        var token: String?
        var startAfter: String?
        var pages = 0
        while true {
            let page = try await listObjects(
                bucket: bucket, prefix: prefix, continuationToken: token, startAfter: token == nil ? startAfter : nil, maxKeys: maxKeysPerPage
            )
            pages += 1
            all.append(contentsOf: page.objects)
            guard page.isTruncated else { break }
            if let next = page.nextContinuationToken {
                guard next != token else {
                    throw S3Error(code: .invalidResponse, message: "the listing repeats its continuation token", operation: "ListObjectsV2", bucket: bucket)
                }
                token = next
            } else if let last = page.objects.last?.key {
                // No token: continue after the last key (ListObjectsV2's start-after).
                token = nil
                startAfter = last
            } else {
                throw S3Error(code: .invalidResponse, message: "a truncated listing page without a continuation token or keys",
                    operation: "ListObjectsV2", bucket: bucket)
            }
        }
        logger.debug("s3 listed objects", metadata: ["bucket": "\(bucket)", "prefix": "\(prefix)", "objects": .stringConvertible(all.count), "pages": .stringConvertible(pages)])
        return all
    }

    // MARK: Buckets

    /// Creates `bucket`; succeeds when it already exists and these credentials can use it.
    public func createBucket(_ bucket: String) async throws {
        var body: ByteBuffer?
        if configuration.region != "us-east-1" {
            body = ByteBuffer(
                string: "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>"
                    + XMLReader.escape(configuration.region) + "</LocationConstraint></CreateBucketConfiguration>")
        }
        do {
            try await send(operation: "CreateBucket", method: .PUT, bucket: bucket, key: nil, body: body)
            logger.info("s3 bucket created", metadata: ["bucket": "\(bucket)"])
        } catch let error as S3Error where error.code == .bucketAlreadyOwnedByYou {
            return
        } catch let error as S3Error where error.code == .bucketAlreadyExists {
            // Some stores say BucketAlreadyExists for our own bucket: it is fine if we can use it.
            guard try await bucketExists(bucket) else { throw error }
        }
    }

    /// Whether `bucket` exists and these credentials may use it (HeadBucket).
    public func bucketExists(_ bucket: String) async throws -> Bool {
        do {
            try await send(operation: "HeadBucket", method: .HEAD, bucket: bucket, key: nil)
            return true
        } catch let error as S3Error where error.status == 404 || error.status == 403 {
            return false
        }
    }

    /// Deletes an empty bucket.
    public func deleteBucket(_ bucket: String) async throws {
        try await send(operation: "DeleteBucket", method: .DELETE, bucket: bucket, key: nil)
    }

    // MARK: Multipart uploads

    /// Starts a multipart upload; returns its upload ID.
    public func createMultipartUpload(bucket: String, key: String, contentType: String? = nil) async throws -> String {
        var headers: [(String, String)] = []
        if let contentType { headers.append(("content-type", contentType)) }
        let response = try await send(
            operation: "CreateMultipartUpload", method: .POST, bucket: bucket, key: key, query: [("uploads", "")], headers: headers
        )
        let root = try parseXML(response, operation: "CreateMultipartUpload", bucket: bucket, key: key)
        guard let uploadID = root.value("UploadId"), !uploadID.isEmpty else {
            throw S3Error(code: .invalidResponse, status: response.status, message: "no <UploadId> in the answer",
                operation: "CreateMultipartUpload", bucket: bucket, key: key)
        }
        return uploadID
    }

    /// Uploads part `partNumber` (1...10000) of an upload.
    public func uploadPart(bucket: String, key: String, uploadID: String, partNumber: Int, body: ByteBuffer) async throws -> S3CompletedPart {
        let response = try await send(
            operation: "UploadPart", method: .PUT, bucket: bucket, key: key,
            query: [("partNumber", String(partNumber)), ("uploadId", uploadID)], body: body
        )
        guard let etag = response.headers.first(name: "etag") else {
            throw S3Error(code: .invalidResponse, status: response.status, message: "no ETag for part \(partNumber)",
                operation: "UploadPart", bucket: bucket, key: key)
        }
        return S3CompletedPart(partNumber: partNumber, etag: etag)
    }

    /// Completes an upload from its parts (sorted by part number here). Returns the object's ETag.
    @discardableResult
    public func completeMultipartUpload(bucket: String, key: String, uploadID: String, parts: [S3CompletedPart]) async throws -> String? {
        var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for part in parts.sorted(by: { $0.partNumber < $1.partNumber }) {
            let quoted = part.etag.hasPrefix("\"") ? part.etag : "\"\(part.etag)\""
            xml += "<Part><PartNumber>\(part.partNumber)</PartNumber><ETag>\(XMLReader.escape(quoted))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let response = try await send(
            operation: "CompleteMultipartUpload", method: .POST, bucket: bucket, key: key, query: [("uploadId", uploadID)],
            headers: [("content-type", "application/xml")], body: ByteBuffer(string: xml), errorMayComeWith200: true
        )
        let root = try parseXML(response, operation: "CompleteMultipartUpload", bucket: bucket, key: key)
        return root.value("ETag").map(Self.unquote)
    }

    /// Aborts an upload, freeing its parts.
    public func abortMultipartUpload(bucket: String, key: String, uploadID: String) async throws {
        try await send(operation: "AbortMultipartUpload", method: .DELETE, bucket: bucket, key: key, query: [("uploadId", uploadID)])
    }

    /// A multipart upload of `body` in parts of `partSize` bytes, `multipartConcurrency` at a time.
    public func multipartUpload(bucket: String, key: String, body: ByteBuffer, contentType: String? = nil) async throws {
        let started = ContinuousClock.now
        let uploadID = try await createMultipartUpload(bucket: bucket, key: key, contentType: contentType)
        let partSize = max(configuration.partSize, 1)
        let total = body.readableBytes
        let partCount = max(1, (total + partSize - 1) / partSize)
        do {
            let parts = try await withThrowingTaskGroup(of: S3CompletedPart.self, returning: [S3CompletedPart].self) { group in
                var parts: [S3CompletedPart] = []
                var next = 1
                func addPart(_ number: Int) {
                    let offset = (number - 1) * partSize
                    let length = min(partSize, total - offset)
                    let slice = body.getSlice(at: body.readerIndex + offset, length: length) ?? ByteBuffer()
                    group.addTask {
                        try await self.uploadPart(bucket: bucket, key: key, uploadID: uploadID, partNumber: number, body: slice)
                    }
                }
                while next <= partCount && next <= configuration.multipartConcurrency {
                    addPart(next)
                    next += 1
                }
                while let part = try await group.next() {
                    parts.append(part)
                    if next <= partCount {
                        addPart(next)
                        next += 1
                    }
                }
                return parts
            }
            do {
                try await completeMultipartUpload(bucket: bucket, key: key, uploadID: uploadID, parts: parts)
            } catch let error as S3Error where error.code == .noSuchUpload && error.attempts > 1 {
                // An earlier attempt may have completed the upload and lost its answer (a dropped
                // connection): the store then knows the upload no more, and answers a retry
                // NoSuchUpload (AWS does). The object there with this body's size is that upload's
                // (a review: reported as failed, and "aborted", with the object in place).
                guard let object = try await headObject(bucket: bucket, key: key), object.size == total else { throw error }
                logger.info(
                    "s3 multipart upload completed by an attempt whose answer was lost",
                    metadata: ["bucket": "\(bucket)", "key": "\(key)", "bytes": .stringConvertible(total), "attempts": .stringConvertible(error.attempts)])
            }
            logger.debug(
                "s3 multipart upload complete",
                metadata: [
                    "bucket": "\(bucket)", "key": "\(key)", "bytes": .stringConvertible(total), "parts": .stringConvertible(partCount),
                    "duration_ms": .stringConvertible(Self.milliseconds(ContinuousClock.now - started)),
                ])
        } catch {
            // Abort in a fresh task, so that it runs even when this one was cancelled. A cancelled
            // upload (a stop that ran out of time) does not wait for it: against a stalled store the
            // abort's retries take minutes, and the stop must not (a review); its parts then stay
            // until a lifecycle rule removes them (docs/s3.md).
            let logger = self.logger
            let reason = "\(error)"
            let abort = Task {
                do {
                    try await self.abortMultipartUpload(bucket: bucket, key: key, uploadID: uploadID)
                    logger.warning("s3 multipart upload aborted", metadata: ["bucket": "\(bucket)", "key": "\(key)", "error": "\(reason)"])
                } catch let abortError {
                    logger.error(
                        "s3 multipart upload failed and could not be aborted; its parts remain until a lifecycle rule removes them",
                        metadata: ["bucket": "\(bucket)", "key": "\(key)", "upload_id": "\(uploadID)", "error": "\(abortError)"])
                }
            }
            if !Task.isCancelled { await abort.value }
            throw error
        }
    }

    // MARK: Requests

    struct Response: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    /// Signs and sends a request, retrying per the policy. Returns a 2xx answer or throws `S3Error`.
    @discardableResult
    func send(
        operation: String,
        method: HTTPMethod,
        bucket: String?,
        key: String?,
        listing prefix: String? = nil,
        query: [(String, String)] = [],
        headers extraHeaders: [(String, String)] = [],
        body: ByteBuffer? = nil,
        maximumBodySize: Int = 64 << 20,
        errorMayComeWith200: Bool = false,
        within: Duration? = nil
    ) async throws -> Response {
        let target = try requestTarget(bucket: bucket, key: key, query: query)
        let (hostHeader, path, url) = (target.hostHeader, target.path, target.url)
        let (payloadHash, headersToSend) = try await Self.digested(body, headers: extraHeaders, method: method)
        let policy = configuration.retry
        let asked = within.map { ContinuousClock.now + $0 }

        var attempt = 0
        while true {
            attempt += 1
            try Task.checkCancellation()
            let started = ContinuousClock.now
            // `within`, or the instant of ``giveUp(after:)`` if sooner (read at each attempt: it
            // may come while the request is retried).
            let end = [asked, giveUpInstant].compactMap { $0 }.min()
            if let giveUp = giveUpInstant, started >= giveUp {
                throw S3Error(
                    code: .transport, message: "not sent: the process is stopping, and its requests to the store had until then",
                    operation: operation, bucket: bucket, key: key, attempts: attempt - 1)
            }
            // The attempt's deadline: its own, or what is left of `within`, if less.
            let attemptDeadline = min(configuration.requestTimeout, end.map { started.duration(to: $0) } ?? configuration.requestTimeout)
            let timeout = TimeAmount.nanoseconds(Int64(S3RetryPolicy.seconds(attemptDeadline) * 1e9))
            var statusLabel = "error"
            // Watched while in flight: each piece of the body taken and each piece of the answer
            // moves it; silent for `unansweredAfter`, it is listed and said.
            let streamed = (body?.readableBytes ?? 0) > Self.bodyPieceSize
            let watched = inFlight.begin(
                S3InFlight.Entry(
                    operation: operation, bucket: bucket, key: key ?? prefix, attempt: attempt, maximumAttempts: policy.maximumAttempts,
                    deadline: attemptDeadline, lastMoved: started, waitingFor: streamed ? .body : .answer))
            let watchdog = Task { [inFlight, logger, threshold = configuration.unansweredAfter] in
                await inFlight.watch(watched, threshold: threshold, logger: logger)
            }
            // How the attempt ended: an attempt that reaches its deadline leaves the store silent
            // for the next one (``S3InFlight/end(_:_:)``).
            var ending = S3InFlight.Ending.answered
            do {
                // Runs as the attempt ends, before a failure's handler below waits to retry: the
                // attempt that failed is no longer listed meanwhile (the store's silence is, if it
                // timed out).
                defer {
                    watchdog.cancel()
                    if let entry = inFlight.end(watched, ending), entry.warned {
                        logger.info(
                            "s3 request ended after the store was silent",
                            metadata: [
                                "operation": "\(operation)", "bucket": "\(bucket ?? "")", "key": "\(key ?? "")", "attempt": .stringConvertible(attempt),
                                "duration_ms": .stringConvertible(Self.milliseconds(ContinuousClock.now - started)),
                            ])
                    }
                }
                var headers = HTTPHeaders(headersToSend)
                headers.replaceOrAdd(name: "host", value: hostHeader)
                signer.sign(
                    method: method.rawValue, host: hostHeader, path: path, query: query, headers: &headers, payloadHash: payloadHash, date: Date()
                )
                var request = HTTPClientRequest(url: url)
                request.method = method
                request.headers = headers
                if let body {
                    if streamed {
                        let pieces = S3BodyPieces(body: body, pieceSize: Self.bodyPieceSize) { [inFlight, logger] done in
                            inFlight.moved(watched, waitingFor: done ? .answer : .body, logger: logger)
                        }
                        request.body = .stream(pieces, length: .known(Int64(body.readableBytes)))
                    } else {
                        request.body = .bytes(body)
                    }
                }
                let response: (status: HTTPResponseStatus, headers: HTTPHeaders)
                let collected: ByteBuffer
                let headCame = HeadCame()
                do {
                    // The attempt's deadline covers the whole exchange: AsyncHTTPClient honours
                    // `timeout` only until the answer's head has come, and a body that stalled
                    // after it hung the call for ever (a GET of the lake's state, so an import, the
                    // writer and serve's start-up; an outside review). Past the deadline the attempt
                    // is cancelled (its connection closed) and fails as timed out, retried as one.
                    let exchanged = try await Self.exchange(until: started + attemptDeadline, givingUp: { [weak self] in self?.giveUpInstant }) {
                        [httpClient, inFlight, logger, request, attempt, headCame] in
                        let response = try await httpClient.execute(request, timeout: timeout)
                        headCame.withLock { $0 = true }
                        inFlight.moved(watched, waitingFor: .restOfAnswer, logger: logger)
                        var collected = ByteBuffer()
                        for try await piece in response.body {
                            inFlight.moved(watched, waitingFor: .restOfAnswer, logger: logger)
                            guard collected.readableBytes + piece.readableBytes <= maximumBodySize else {
                                throw S3Error(code: .invalidResponse, message: "the answer is larger than \(maximumBodySize) bytes",
                                    operation: operation, bucket: bucket, key: key, attempts: attempt)
                            }
                            var piece = piece
                            if collected.readableBytes == 0 {
                                collected = piece
                            } else {
                                collected.writeBuffer(&piece)
                            }
                        }
                        return (response.status, response.headers, collected)
                    }
                    response = (exchanged.0, exchanged.1)
                    collected = exchanged.2
                } catch is CancellationError {
                    ending = .cancelled
                    throw CancellationError()
                } catch let error as S3Error {
                    throw error
                } catch is AttemptDeadline {
                    // Cut before the head came, it is AsyncHTTPClient's own timeout (whichever of
                    // the two fired first), and said as that.
                    guard headCame.withLock({ $0 }) else {
                        throw Self.failure(
                            of: HTTPClientError.deadlineExceeded, operation: operation, bucket: bucket, key: key, attempt: attempt, ending: &ending)
                    }
                    ending = .timedOut
                    var failure = S3Error(
                        code: .transport,
                        message: "no whole answer within the attempt's deadline (\(S3UnansweredRequest.seconds(attemptDeadline)) s): the answer's body stopped coming",
                        operation: operation, bucket: bucket, key: key, attempts: attempt)
                    failure.timedOut = true
                    throw failure
                } catch {
                    throw Self.failure(of: error, operation: operation, bucket: bucket, key: key, attempt: attempt, ending: &ending)
                }
                let status = Int(response.status.code)
                statusLabel = String(status)
                let requestID = response.headers.first(name: "x-amz-request-id")
                if (200..<300).contains(status) {
                    if errorMayComeWith200, let error = Self.errorInBody(collected, status: status, requestID: requestID,
                        operation: operation, bucket: bucket, key: key, attempts: attempt)
                    {
                        statusLabel = "\(status)-error"
                        throw error
                    }
                    countRequest(operation: operation, status: statusLabel)
                    logger.trace(
                        "s3 request",
                        metadata: [
                            "operation": "\(operation)", "bucket": "\(bucket ?? "")", "key": "\(key ?? "")", "status": .stringConvertible(status),
                            "attempt": .stringConvertible(attempt), "duration_ms": .stringConvertible(Self.milliseconds(ContinuousClock.now - started)),
                        ])
                    return Response(status: status, headers: response.headers, body: collected)
                }
                var failure = Self.error(
                    fromBody: collected, status: status, requestID: requestID, method: method, operation: operation,
                    bucket: bucket, key: key, attempts: attempt)
                failure.retryAfter = response.headers.first(name: "retry-after").flatMap { Self.retryAfter($0, now: Date()) }
                throw failure
            } catch var error as S3Error {
                countRequest(operation: operation, status: statusLabel)
                error.attempts = attempt
                // A retry's wait must leave time for the retry within `within`.
                let delay = max(policy.delay(afterAttempt: attempt), error.retryAfter ?? .zero)
                let inTime = end.map { ContinuousClock.now + delay + .milliseconds(100) < $0 } ?? true
                guard error.isRetryable, attempt < policy.maximumAttempts, inTime else {
                    logger.debug(
                        "s3 request failed",
                        metadata: ["operation": "\(operation)", "bucket": "\(bucket ?? "")", "key": "\(key ?? "")", "error": "\(error)"])
                    throw error
                }
                // A store that says when to come back (Retry-After on 503 or 429) is asked no sooner.
                countRetry(operation: operation)
                logger.warning(
                    "s3 request failed; retrying",
                    metadata: [
                        "operation": "\(operation)", "bucket": "\(bucket ?? "")", "key": "\(key ?? "")", "attempt": .stringConvertible(attempt),
                        "max_attempts": .stringConvertible(policy.maximumAttempts), "delay_ms": .stringConvertible(Self.milliseconds(delay)), "error": "\(error)",
                    ])
                try await Task.sleep(for: delay)
            }
        }
    }

    /// The most bytes an answer's body may have: `maximum`, and never more than a `ByteBuffer`
    /// holds (`UInt32.max`; one more trapped, an outside review).
    static func bodyLimit(_ maximum: Int) -> Int { min(maximum, Int(UInt32.max)) }

    /// The attempt's deadline passed before its whole answer came (``exchange(until:_:)``).
    struct AttemptDeadline: Error {}

    /// Whether an attempt's answer head has come, for the words of its failure at its deadline.
    final class HeadCame: Sendable {
        private let came = Mutex(false)
        func withLock<T>(_ body: (inout Bool) -> T) -> T { came.withLock { body(&$0) } }
    }

    /// Runs `operation` (an attempt: its request and the reading of its answer's body), cancelled
    /// when `deadline` comes first, or the instant `givingUp` gives (``giveUp(after:)``, looked at
    /// every second), and then throws ``AttemptDeadline``. Cancelling the operation cancels the
    /// request in AsyncHTTPClient, which closes its connection.
    static func exchange<T: Sendable>(
        until deadline: ContinuousClock.Instant, givingUp: @escaping @Sendable () -> ContinuousClock.Instant? = { nil },
        _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                while true {
                    let limit = min(deadline, givingUp() ?? deadline)
                    let now = ContinuousClock.now
                    if now >= limit { return nil }
                    try await Task.sleep(until: min(limit, now + .seconds(1)), clock: .continuous)
                }
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw AttemptDeadline() }
            return value
        }
    }

    /// The `S3Error` of an attempt that got no answer (`error` from AsyncHTTPClient or NIO), and how
    /// it ended. An endpoint AsyncHTTPClient cannot make a URL of (`invalidURL`, `emptyHost`,
    /// `emptyScheme`) is an `invalidConfiguration`, which is not retried: as a
    /// `transport` error, a typo in a host was retried for ever (an outside review).
    static func failure(
        of error: any Error, operation: String, bucket: String?, key: String?, attempt: Int, ending: inout S3InFlight.Ending
    ) -> S3Error {
        var failure = S3Error(code: .transport, message: Self.transportMessage(error), operation: operation, bucket: bucket, key: key, attempts: attempt)
        failure.tlsFailure = Self.tlsMessage(error) != nil
        if let client = error as? HTTPClientError {
            if [HTTPClientError.deadlineExceeded, .readTimeout, .writeTimeout].contains(client) {
                ending = .timedOut
                failure.timedOut = true
            } else if client == .connectTimeout || client == .cancelled {
                // No connection, or given up: nothing heard, and no silence of a store
                // that took the connection either.
                ending = .cancelled
            } else if [HTTPClientError.invalidURL, .emptyHost, .emptyScheme].contains(client) {
                ending = .cancelled
                failure.code = .invalidConfiguration
                failure.message = "the endpoint cannot be made into a URL (\(client)): check it (--s3-endpoint, AWS_ENDPOINT_URL)"
            }
        }
        return failure
    }

    // MARK: Helpers

    /// Bodies larger than this are sent in pieces of this size, so that the store taking them shows
    /// (``unansweredRequests``); smaller ones fit in the sockets' buffers at once.
    static let bodyPieceSize = 64 << 10

    /// The body's SHA-256 for the signature, and the headers with its `Content-MD5` added. A body
    /// over 256 KiB (a Parquet file or a part of one: tens of milliseconds of hashing) is hashed on
    /// NIO's thread pool, not on the task's thread of the cooperative pool.
    static func digested(
        _ body: ByteBuffer?, headers extra: [(String, String)], method: HTTPMethod
    ) async throws -> (payloadHash: String, headers: [(String, String)]) {
        guard let body else { return (SigV4Signer.emptyPayloadHash, extra) }
        let hash: @Sendable () -> (String, [(String, String)]) = {
            (SigV4Signer.hexSHA256(body), Self.headers(extra, method: method, body: body))
        }
        guard body.readableBytes > 256 << 10 else { return hash() }
        return try await NIOThreadPool.singleton.runIfActive(hash)
    }

    /// The headers of a request besides Host and the signature's: a PUT with a body carries its
    /// `Content-MD5`, which the store checks against the body it got. A SeaweedFS gateway stored an
    /// empty object for a PUT whose client died after sending the head and before the body (a
    /// killed import, a killed `store`): with the header it refuses it. AWS S3 checks it too.
    static func headers(_ extra: [(String, String)], method: HTTPMethod, body: ByteBuffer?) -> [(String, String)] {
        guard method == .PUT, let body, !extra.contains(where: { $0.0.lowercased() == "content-md5" }) else { return extra }
        return extra + [("content-md5", SigV4Signer.base64MD5(body))]
    }

    /// Where a request goes: the Host header, the unencoded path that is signed, and the URL sent
    /// (whose path and query are exactly the canonical ones).
    struct RequestTarget: Equatable {
        var hostHeader: String
        var path: String
        var url: String
    }

    func requestTarget(bucket: String?, key: String?, query: [(String, String)]) throws -> RequestTarget {
        let endpoint = try self.endpoint.get()
        var host = endpoint.host
        var path = endpoint.basePath
        if let bucket {
            // Virtual-hosted style, unless path style is asked for, or the bucket name has dots and
            // TLS is used (a dotted bucket does not match the wildcard certificate).
            let virtualHosted = !configuration.pathStyle && !(endpoint.scheme == "https" && bucket.contains("."))
            if virtualHosted {
                host = "\(bucket).\(endpoint.host)"
                path += "/" + (key ?? "")
            } else {
                path += "/" + bucket
                if let key { path += "/" + key }
            }
        } else {
            path += "/"
        }
        let hostHeader = endpoint.hostHeader(host: host)
        let canonicalQuery = SigV4Signer.canonicalQuery(query)
        let url = "\(endpoint.scheme)://\(hostHeader)\(SigV4Signer.canonicalURI(path))" + (canonicalQuery.isEmpty ? "" : "?\(canonicalQuery)")
        return RequestTarget(hostHeader: hostHeader, path: path, url: url)
    }

    /// Where metrics go: the client's factory, else the bootstrapped system's (read at each use, as
    /// swift-metrics' own initialisers do).
    var metrics: any MetricsFactory { metricsFactory ?? MetricsSystem.factory }

    func countRequest(operation: String, status: String) {
        let dimensions = [("operation", operation), ("status", status)]
        Counter(label: "playhead_s3_requests_total", dimensions: dimensions, factory: metrics).increment()
    }

    func countRetry(operation: String) {
        Counter(label: "playhead_s3_retries_total", dimensions: [("operation", operation)], factory: metrics).increment()
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    static func unquote(_ etag: String) -> String {
        var text = etag
        if text.hasPrefix("W/") { text.removeFirst(2) }
        if text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") { text = String(text.dropFirst().dropLast()) }
        return text
    }

    func parseXML(_ response: Response, operation: String, bucket: String? = nil, key: String? = nil) throws -> S3XMLElement {
        do {
            return try XMLReader.parse(response.body.readableBytesView)
        } catch {
            throw S3Error(code: .invalidResponse, status: response.status, message: "unreadable XML: \(error)",
                requestID: response.headers.first(name: "x-amz-request-id"), operation: operation, bucket: bucket, key: key)
        }
    }

    static func errorInBody(
        _ body: ByteBuffer, status: Int, requestID: String?, operation: String, bucket: String?, key: String?, attempts: Int
    ) -> S3Error? {
        guard let root = try? XMLReader.parse(body.readableBytesView), root.name == "Error", let code = root.value("Code") else { return nil }
        return S3Error(
            code: S3Error.Code(s3Code: code), status: status, message: root.value("Message") ?? "",
            requestID: root.value("RequestId") ?? requestID, operation: operation, bucket: bucket, key: key, attempts: attempts)
    }

    /// The error of a non-2xx answer: from its XML body when there is one, else from the status.
    static func error(
        fromBody body: ByteBuffer, status: Int, requestID: String?, method: HTTPMethod, operation: String,
        bucket: String?, key: String?, attempts: Int
    ) -> S3Error {
        if var error = errorInBody(body, status: status, requestID: requestID, operation: operation, bucket: bucket, key: key, attempts: attempts) {
            error.fromErrorBody = true
            return error
        }
        let code: S3Error.Code
        switch status {
        case 404: code = key != nil ? .noSuchKey : .noSuchBucket
        case 403: code = .accessDenied
        case 500: code = .internalError
        case 503: code = .serviceUnavailable
        case 429: code = .slowDown
        default: code = .http(status)
        }
        let text = String(decoding: body.readableBytesView.prefix(300), as: UTF8.self)
        return S3Error(code: code, status: status, message: text, requestID: requestID, operation: operation, bucket: bucket, key: key, attempts: attempts)
    }
}

/// Date parsing for S3's two formats, without DateFormatter.
enum S3Dates {
    /// `2026-12-01T13:04:48.000Z` (ListObjectsV2).
    static func parseISO8601(_ text: String) -> Date? {
        let t = Array(text.trimmingCharacters(in: .whitespaces).utf8)
        guard t.count >= 19 else { return nil }
        func number(_ range: Range<Int>) -> Int32? { Int32(String(decoding: t[range], as: UTF8.self)) }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        var fraction = 0.0
        if t.count > 20, t[19] == UInt8(ascii: ".") {
            var end = 20
            while end < t.count, t[end] >= UInt8(ascii: "0"), t[end] <= UInt8(ascii: "9") { end += 1 }
            fraction = Double("0." + String(decoding: t[20..<end], as: UTF8.self)) ?? 0
        }
        return date(year: year, month: month, day: day, hour: hour, minute: minute, second: second, fraction: fraction)
    }

    /// `Tue, 01 Dec 2026 13:04:48 GMT` (Last-Modified).
    static func parseHTTPDate(_ text: String) -> Date? {
        let parts = text.split(separator: " ")
        guard parts.count >= 5, let day = Int32(parts[1]), let year = Int32(parts[3]) else { return nil }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let monthIndex = months.firstIndex(of: String(parts[2])) else { return nil }
        let clock = parts[4].split(separator: ":")
        guard clock.count == 3, let hour = Int32(clock[0]), let minute = Int32(clock[1]), let second = Int32(clock[2]) else { return nil }
        return date(year: year, month: Int32(monthIndex + 1), day: day, hour: hour, minute: minute, second: second, fraction: 0)
    }

    static func date(year: Int32, month: Int32, day: Int32, hour: Int32, minute: Int32, second: Int32, fraction: Double) -> Date {
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = month - 1
        parts.tm_mday = day
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        let seconds = timegm(&parts)
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }
}

extension S3Client {
    /// A transport failure in words: the system's for a socket error (NIO describes a refused
    /// connection as "connection reset (error set): Connection refused) (errno: 111)").
    /// A connection the pool held open and the server (or the network) has since closed is said so
    /// in words, not as NIO's "I/O on closed channel".
    static func transportMessage(_ error: any Error) -> String {
        if let tls = tlsMessage(error) { return tls }
        if let io = error as? IOError {
            return "\(String(cString: strerror(io.errnoCode))) (errno \(io.errnoCode))"
        }
        if let channel = error as? ChannelError, channel == .ioOnClosedChannel || channel == .eof {
            return "the connection was closed before an answer came (the server closed it or went away)"
        }
        if let client = error as? HTTPClientError, client == .remoteConnectionClosed {
            return "the connection was closed before an answer came (the server closed it or went away)"
        }
        return "\(error)"
    }

    /// A `Retry-After` value as a wait of at most 30 s: seconds (fractions and huge numbers too: one
    /// past `Int` was ignored, a review) or an HTTP date; nil when it is neither.
    static func retryAfter(_ value: String, now: Date) -> Duration? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        let seconds: Double
        if let number = Double(trimmed), number.isFinite {
            seconds = number
        } else if let date = S3Dates.parseHTTPDate(trimmed) {
            seconds = date.timeIntervalSince(now)
        } else {
            return nil
        }
        return .milliseconds(Int64((min(max(seconds, 0), 30) * 1000).rounded()))
    }

    /// A failed TLS handshake in words, or nil when `error` is not one. BoringSSL's own text names
    /// the source file it was built from (`… CERTIFICATE_VERIFY_FAILED at /…/handshake.cc:320`):
    /// only its reason codes are kept, with what to do about the usual ones.
    static func tlsMessage(_ error: any Error) -> String? {
        let text: String
        switch error {
        case let extra as NIOSSLExtraError:
            return "the TLS handshake failed: \(extra)"
        case let ssl as NIOSSLError:
            text = "\(ssl)"
        case let boring as BoringSSLError:
            text = "\(boring)"
        default:
            return nil
        }
        let reasons = tlsReasonCodes(text)
        if reasons.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the TLS handshake failed: the store's certificate is not trusted (CERTIFICATE_VERIFY_FAILED); for a certificate that a private CA signed, set AWS_CA_BUNDLE to that CA's PEM file (docs/s3.md)"
        }
        if reasons.contains("WRONG_VERSION_NUMBER") {
            return "the TLS handshake failed: the endpoint does not speak TLS (WRONG_VERSION_NUMBER); a gateway that serves plain HTTP needs an http:// endpoint"
        }
        return "the TLS handshake failed: \(reasons.isEmpty ? text : reasons.joined(separator: ", "))"
    }

    /// BoringSSL's reason codes in an error's text (`CERTIFICATE_VERIFY_FAILED` of
    /// `error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at …`).
    static func tlsReasonCodes(_ text: String) -> [String] {
        var reasons: [String] = []
        var rest = Substring(text)
        while let marker = rest.range(of: "OPENSSL_internal:") {
            rest = rest[marker.upperBound...]
            let code = rest.prefix { $0.isUppercase || $0.isNumber || $0 == "_" }
            if !code.isEmpty, !reasons.contains(String(code)) { reasons.append(String(code)) }
        }
        return reasons
    }
}
