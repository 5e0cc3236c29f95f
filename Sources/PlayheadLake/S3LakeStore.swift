import Foundation
import Logging
import NIOPosix
import NIOCore
import PlayheadLog
import S3

/// A lake in an S3 bucket under a prefix (`s3://bucket/prefix`). An object is durable and whole once
/// its PUT (or multipart upload) completes; S3 replaces objects atomically.
public final class S3LakeStore: LakeStore {
    public let client: S3Client
    public let bucket: String
    /// The key prefix, without leading or trailing `/` ("" for the bucket's root).
    public let prefix: String

    public init(client: S3Client, bucket: String, prefix: String) {
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.split(separator: "/").joined(separator: "/")
    }

    public var displayName: String { prefix.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(prefix)" }

    /// The request silent longest, when one has been silent for the client's
    /// ``S3Configuration/unansweredAfter`` (15 s by default), with how many are.
    public var unansweredRequest: String? {
        let unanswered = client.unansweredRequests
        guard let first = unanswered.first else { return nil }
        let others = unanswered.count > 1 ? " (and \(unanswered.count - 1) more request(s) as silent)" : ""
        return "the S3 store at \(client.configuration.endpoint) answers nothing: \(first)\(others); writes wait for it"
    }

    /// Lists one key under the prefix (ListObjectsV2, which the writer needs anyway): a bucket that
    /// does not exist, or credentials the store refuses, stop the command at start with what to do.
    public func preflight() async throws {
        do {
            _ = try await client.listObjects(bucket: bucket, prefix: prefix, maxKeys: 1)
        } catch let error as S3Error {
            let endpoint = client.configuration.endpoint
            switch error.code {
            case .noSuchBucket where !error.fromErrorBody:
                throw LakeError(
                    .io,
                    "\(endpoint) answered a listing of the bucket '\(bucket)' with HTTP 404 and no S3 error: it does not look like an S3 API; --s3-endpoint (or AWS_ENDPOINT_URL) must be the S3 gateway's scheme, host and port, with no path"
                )
            case .noSuchBucket:
                // A gateway behind a path answers for a bucket named by the path's first segment.
                // Said as the endpoint's fault, without the advice to create the bucket there (which
                // fails the same way, a probe).
                if let components = URLComponents(string: endpoint), !components.path.isEmpty, components.path != "/" {
                    var bare = components
                    bare.path = ""
                    throw LakeError(
                        .io,
                        "\(endpoint) answered that the bucket '\(bucket)' does not exist, and the endpoint has a path (\(components.path)), which an S3 gateway reads as the bucket's name: --s3-endpoint (or AWS_ENDPOINT_URL) must be the gateway's scheme, host and port alone (\(bare.string ?? endpoint)?)"
                    )
                }
                throw LakeError(
                    .io,
                    "the bucket '\(bucket)' does not exist at \(endpoint); Playhead does not create buckets: create it first (for example `aws s3 mb s3://\(bucket) --endpoint-url \(endpoint)`)"
                )
            case .invalidResponse where error.status.map({ (200..<300).contains($0) }) ?? false:
                // A successful answer that is not S3's (an HTML page from a web server or a proxy
                // that answers 200 to everything): writes there would "succeed" and store nothing.
                throw LakeError(
                    .io,
                    "\(endpoint) answered a listing of s3://\(bucket)/\(prefix) with HTTP \(error.status ?? 200) but not with an S3 listing (\(error.message)): it does not look like an S3 API; --s3-endpoint (or AWS_ENDPOINT_URL) must be the S3 gateway's scheme, host and port"
                )
            case .accessDenied, .signatureDoesNotMatch, .invalidAccessKeyId:
                throw LakeError(
                    .io,
                    "\(endpoint) refused to list s3://\(bucket)/\(prefix) (\(error.code)): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the policy (docs/s3.md lists the actions the writer needs)"
                )
            case .requestTimeTooSkewed:
                // Every signed request fails the same way until the clock is set right.
                throw LakeError(
                    .io,
                    "\(endpoint) refused the request because this machine's clock differs from its own by more than S3 allows (RequestTimeTooSkewed: \(error.message)): set the clock right (NTP) and start again"
                )
            case .other(let code) where ["AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"].contains(code):
                // Signed for another region, or the bucket lives elsewhere: retrying cannot help.
                throw LakeError(
                    .io,
                    "\(endpoint) refused to list s3://\(bucket)/\(prefix) (\(code): \(error.message)): check --s3-region (or AWS_REGION) and --s3-endpoint against the bucket's region"
                )
            default:
                // Unreachable or failing now: the writer retries, and says so.
                return
            }
        }
    }

    func key(_ path: String) -> String { prefix.isEmpty ? path : "\(prefix)/\(path)" }

    public func put(_ path: String, _ bytes: [UInt8]) async throws {
        try await client.upload(bucket: bucket, key: key(path), body: ByteBuffer(bytes: bytes))
    }

    public func get(_ path: String) async throws -> [UInt8]? {
        try await getVersioned(path)?.bytes
    }

    public func getVersioned(_ path: String) async throws -> (bytes: [UInt8], version: String?)? {
        do {
            let object = try await client.getObject(bucket: bucket, key: key(path))
            return (object.bytes, object.etag)
        } catch let error as S3Error where error.code == .noSuchKey {
            return nil
        }
    }

    /// `If-Match` on the version (`If-None-Match: *` without one). A PUT sent again after its
    /// answer was lost finds its own bytes there, and that is not a change by another process.
    public func put(_ path: String, _ bytes: [UInt8], ifVersion version: String?) async throws -> String? {
        do {
            return try await client.putObject(
                bucket: bucket, key: key(path), body: ByteBuffer(bytes: bytes), contentType: "application/json",
                ifMatch: version, ifNoneMatch: version == nil ? "*" : nil
            )
        } catch let error as S3Error where error.isPreconditionFailed {
            if let now = try await getVersioned(path), now.bytes == bytes { return now.version }
            throw LakeError(.otherWriter, "\(displayName)/\(path) was changed by another process since this one read it")
        }
    }

    public func list(prefix listPrefix: String) async throws -> [String] {
        let full = key(listPrefix)
        let strip = prefix.isEmpty ? 0 : prefix.count + 1
        return try await client.listAllObjects(bucket: bucket, prefix: full).map { String($0.key.dropFirst(strip)) }.sorted()
    }

    public func delete(_ path: String) async throws {
        try await client.deleteObject(bucket: bucket, key: key(path))
    }

    public func delete(_ path: String, ifVersion version: String) async throws {
        do {
            try await client.deleteObject(bucket: bucket, key: key(path), ifMatch: version)
        } catch let error as S3Error where error.isPreconditionFailed {
            throw LakeError(.otherWriter, "\(displayName)/\(path) was changed by another process since this one read it")
        }
    }
}

/// Where a lake is, parsed from `--lake`.
public enum LakeLocation: Sendable, Equatable {
    case folder(String)
    case s3(bucket: String, prefix: String)

    /// Parses `file:<dir>`, `file:///<dir>`, a plain path, or `s3://bucket[/prefix]`.
    public init(parsing text: String) throws {
        if text.hasPrefix("s3://") {
            let rest = text.dropFirst("s3://".count)
            let parts = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let bucket = parts.first, !bucket.isEmpty else {
                throw LakeError(.invalidLocation, "'\(text)' has no bucket: use s3://bucket/prefix")
            }
            guard bucket.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" || $0 == "." }), (3...63).contains(bucket.count) else {
                throw LakeError(.invalidLocation, "'\(bucket)' is not a valid S3 bucket name (3-63 lower-case letters, digits, '-' or '.')")
            }
            self = .s3(bucket: String(bucket), prefix: parts.count > 1 ? String(parts[1]) : "")
        } else if let folder = try Self.folder(text) {
            self = .folder(folder)
        } else if text.contains("://") {
            throw LakeError(.invalidLocation, "'\(text)' is not a lake: use file:<dir> or s3://bucket/prefix")
        } else {
            self = .folder(text)
        }
        if case .folder(let path) = self, path.isEmpty {
            throw LakeError(.invalidLocation, "file: needs a folder, e.g. file:./data/lake")
        }
    }

    private static func folder(_ text: String) throws -> String? {
        do {
            return try FileLocation.folder(text)
        } catch {
            throw LakeError(.invalidLocation, error.description)
        }
    }
}

extension LakeLocation {
    /// Opens the store of this location. An `s3://` lake signs with the credentials of the usual AWS
    /// environment variables and talks to `s3Endpoint` (or the endpoint those variables name).
    ///
    /// - Parameter threadPool: runs the blocking file calls of a folder lake. Started by the caller.
    public func openStore(s3Endpoint: String?, s3Region: String?, threadPool: NIOThreadPool, logger: Logger) throws -> any LakeStore {
        switch self {
        case .folder(let path):
            return try FileLakeStore(root: path, threadPool: threadPool)
        case .s3(let bucket, let prefix):
            let configuration = try S3Configuration.fromEnvironment(endpoint: s3Endpoint, region: s3Region)
            return S3LakeStore(client: S3Client(configuration: configuration, logger: logger), bucket: bucket, prefix: prefix)
        }
    }
}
