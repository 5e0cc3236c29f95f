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

    /// How long the start-up listing (``preflight()``) waits for the store, its retries included:
    /// a store that has not answered by then is taken as one that cannot be reached.
    public let startupWait: Duration
    let logger: Logger

    public init(client: S3Client, bucket: String, prefix: String, startupWait: Duration = .seconds(10), logger: Logger = Logger(label: "playhead.lake")) {
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.split(separator: "/").joined(separator: "/")
        self.startupWait = startupWait
        self.logger = logger
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
    /// A store that cannot be reached, or that answers nothing within ``startupWait`` (it accepts
    /// connections and is silent: until 2026-12-07 the listing waited for its five attempts of
    /// 30 s, and `serve`'s and `store`'s ports stayed closed for 2.5 minutes, an outside review), is
    /// said and passes: the writer retries.
    public func giveUp(after: Duration) { client.giveUp(after: after) }

    public func preflight() async throws {
        do {
            _ = try await client.listObjects(bucket: bucket, prefix: prefix, maxKeys: 1, within: startupWait)
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
            case .other(let code) where S3Error.sessionTokenCodes.contains(code):
                // AWS answers an expired token with 400 ExpiredToken, which is no outage to wait out.
                throw LakeError(
                    .io,
                    "\(endpoint) refused the session token of the temporary credentials (\(code): \(error.message)): get new ones (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN) and start again; Playhead reads them once, at start (docs/s3.md)"
                )
            case .accessDenied, .signatureDoesNotMatch, .invalidAccessKeyId:
                // A token left in the shell from another session makes a static key fail as well.
                let token = client.configuration.credentials.sessionToken == nil
                    ? "" : "; AWS_SESSION_TOKEN is set, so the key is sent as temporary credentials: unset it for a long-term key"
                throw LakeError(
                    .io,
                    "\(endpoint) refused to list s3://\(bucket)/\(prefix) (\(error.code)): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the policy (docs/s3.md lists the actions the writer needs)\(token)"
                )
            case .transport where error.tlsFailure:
                // An untrusted certificate or an endpoint without TLS does not mend itself.
                throw LakeError(.io, "cannot reach \(endpoint): \(error.message)")
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
                // Unreachable, silent or failing now: the writer retries, and says so.
                let why = error.timedOut
                    ? "it answered nothing within \(startupWait.components.seconds) s"
                    : "\(error)"
                logger.warning(
                    "lake: the S3 store at \(client.configuration.endpoint) could not list s3://\(bucket)/\(prefix) at start (\(why)); starting without it: the lake writer retries, and the events wait in the log")
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

    /// The default (read with the ETag, compare, `If-Match`), except on a store that does not
    /// implement conditional writes (HTTP 501): there the write is made as before 2026-12-06, and
    /// the writers' checks before it are the only guard (docs/kafka.md, "A paused store").
    public func put(_ path: String, _ bytes: [UInt8], ifStill expected: [UInt8]?) async throws {
        try await put(path, bytes, ifStill: expected) { version in
            do {
                _ = try await put(path, bytes, ifVersion: version)
            } catch let error as S3Error where error.isNotImplemented {
                try await put(path, bytes)
            }
        }
    }

    public func list(prefix listPrefix: String) async throws -> [String] {
        let full = key(listPrefix)
        let strip = prefix.isEmpty ? 0 : prefix.count + 1
        return try await client.listAllObjects(bucket: bucket, prefix: full).map { String($0.key.dropFirst(strip)) }.sorted()
    }

    /// No error when the object is absent: most stores answer 204, and one that answers 404 (the
    /// protocol's promise) left a redo's or an intent's delete retried for ever (a code review).
    public func delete(_ path: String) async throws {
        do {
            try await client.deleteObject(bucket: bucket, key: key(path))
        } catch let error as S3Error where error.code == .noSuchKey {
        }
    }

    /// `If-Match` on the version. A DELETE sent again after its answer was lost finds the object
    /// gone, which SeaweedFS answers 412 (another store may answer 404): gone is what was asked
    /// for, not a change by another process (until 2026-12-07 a 412 was reported as one, where
    /// `put(_:_:ifVersion:)` takes its own write found there; an outside review).
    public func delete(_ path: String, ifVersion version: String) async throws {
        do {
            try await client.deleteObject(bucket: bucket, key: key(path), ifMatch: version)
        } catch let error as S3Error where error.isPreconditionFailed {
            if try await client.headObject(bucket: bucket, key: key(path)) == nil { return }
            throw LakeError(.otherWriter, "\(displayName)/\(path) was changed by another process since this one read it")
        } catch let error as S3Error where error.code == .noSuchKey {
            // Absent, as `delete(_:)` takes it (a store that answers 404).
        } catch let error as S3Error where error.isNotImplemented {
            // A store without conditional DELETE: read, compared, and deleted while it is still at
            // that version, as a conditional write falls back to a plain one (an import's emptied
            // path index stayed there, a review of the code).
            guard let current = try await getVersioned(path) else { return }
            guard current.version == version else {
                throw LakeError(.otherWriter, "\(displayName)/\(path) was changed by another process since this one read it")
            }
            try await delete(path)
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
            guard Self.isBucketName(bucket) else {
                throw LakeError(
                    .invalidLocation,
                    "'\(bucket)' is not a valid S3 bucket name (3-63 characters: a-z, 0-9, '-' and '.', starting and ending with a letter or a digit, no '..')"
                )
            }
            let prefix = parts.count > 1 ? String(parts[1]) : ""
            // Sent as they are, `.` and `..` make keys that S3 stores literally and other stores
            // refuse (SeaweedFS: 400 InvalidRequest on every object, after a listing that passed).
            if prefix.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) {
                throw LakeError(.invalidLocation, "'\(text)' has a '.' or '..' segment in its prefix: name the prefix as it is meant (s3://\(bucket)/a/b)")
            }
            // An empty segment (`a//b`, or a `/` at the prefix's start) was dropped, and the lake went
            // to `a/b` where the user had asked for something else (an outside review). One `/` at
            // the end names the same prefix and is taken.
            let trimmed = prefix.hasSuffix("/") ? prefix.dropLast() : Substring(prefix)
            if !prefix.isEmpty && trimmed.split(separator: "/", omittingEmptySubsequences: false).contains(where: \.isEmpty) {
                throw LakeError(.invalidLocation, "'\(text)' has an empty segment ('//') in its prefix '\(prefix)': name the prefix as it is meant (s3://\(bucket)/a/b)")
            }
            self = .s3(bucket: String(bucket), prefix: prefix)
        } else if let folder = try Self.folder(text) {
            self = .folder(folder)
        } else if text.contains("://") {
            throw LakeError(.invalidLocation, "'\(text)' is not a lake: use file:<dir> or s3://bucket/prefix")
        } else if text.lowercased().hasPrefix("s3:") || text.lowercased().hasPrefix("s3a:") {
            // `s3:/bucket/x` or `s3:bucket/x` (one slash or none) was taken as a folder path, and
            // the lake written to ./s3:/bucket/x on local disk without a word (an outside review).
            throw LakeError(.invalidLocation, "'\(text)' is not a lake: an S3 lake is s3://bucket/prefix (two slashes); a local folder is file:<dir> or a path")
        } else {
            self = .folder(text)
        }
        if case .folder(let path) = self, path.isEmpty {
            throw LakeError(.invalidLocation, "file: needs a folder, e.g. file:./data/lake")
        }
    }

    /// S3's rules for bucket names: 3-63 characters of ASCII a-z, 0-9, `-` and `.`, starting and
    /// ending with a letter or a digit, with no `..` (Unicode letters and digits passed before, and
    /// the error that followed told the user to make such a bucket).
    static func isBucketName(_ name: Substring) -> Bool {
        func isLetterOrDigit(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count), isLetterOrDigit(bytes[0]), isLetterOrDigit(bytes[bytes.count - 1]) else { return false }
        guard bytes.allSatisfy({ isLetterOrDigit($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }) else { return false }
        return !name.contains("..")
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
            let client = S3Client(configuration: configuration, httpClient: try S3Client.httpClient(for: configuration), logger: logger)
            return S3LakeStore(client: client, bucket: bucket, prefix: prefix, logger: logger)
        }
    }
}
