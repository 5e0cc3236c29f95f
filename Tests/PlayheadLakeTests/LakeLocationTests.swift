import Foundation
import PlayheadLake
import PlayheadTestSupport
@testable import S3
import Testing

@Suite("--lake locations and S3 start-up words")
struct LakeLocationTests {
    @Test("s3:// bucket names follow S3's rules (ASCII only), and a prefix with '.', '..' or empty segments is refused")
    func s3Locations() throws {
        #expect(try LakeLocation(parsing: "s3://my.lake-01/a/b") == .s3(bucket: "my.lake-01", prefix: "a/b"))
        #expect(try LakeLocation(parsing: "s3://lake") == .s3(bucket: "lake", prefix: ""))
        #expect(try LakeLocation(parsing: "s3://lake/a..b/c.d/...") == .s3(bucket: "lake", prefix: "a..b/c.d/..."))
        // Unicode letters and digits passed before (and the error that followed said to make such a bucket).
        for bad in ["läke", "lake٣", "-lake", "lake-", ".lake", "la..ke", "LAKE", "la", String(repeating: "a", count: 64), "la_ke"] {
            #expect(throws: LakeError.self, "s3://\(bad)/p") { try LakeLocation(parsing: "s3://\(bad)/p") }
        }
        for bad in ["s3://lake/a/../b", "s3://lake/./dot", "s3://lake/..", "s3://lake/a/."] {
            do {
                _ = try LakeLocation(parsing: bad)
                Issue.record("\(bad) must be refused")
            } catch {
                #expect("\(error)".contains("has a '.' or '..' segment in its prefix"), "\(error)")
            }
        }
        // An empty segment was dropped: s3://lake/a//b wrote to a/b (an outside review). One '/' at
        // the end names the same prefix.
        #expect(try LakeLocation(parsing: "s3://lake/a/b/") == .s3(bucket: "lake", prefix: "a/b/"))
        #expect(try LakeLocation(parsing: "s3://lake/") == .s3(bucket: "lake", prefix: ""))
        for (bad, prefix) in [("s3://lake/a//b", "a//b"), ("s3://lake//a", "/a"), ("s3://lake//", "/"), ("s3://lake/a//", "a//")] {
            do {
                _ = try LakeLocation(parsing: bad)
                Issue.record("\(bad) must be refused")
            } catch {
                #expect("\(error)".contains("has an empty segment ('//') in its prefix '\(prefix)'"), "\(error)")
            }
        }
    }

    @Test("a failed TLS handshake is said by its reason codes, without the build path BoringSSL's text holds")
    func tlsReasons() {
        let text = "handshakeFailed(NIOSSL.BoringSSLError.sslError([Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at /work/main/.build/checkouts/swift-nio-ssl/Sources/CNIOBoringSSL/ssl/handshake.cc:320]))"
        #expect(S3Client.tlsReasonCodes(text) == ["CERTIFICATE_VERIFY_FAILED"])
        #expect(S3Client.tlsReasonCodes("error:1 OPENSSL_internal:WRONG_VERSION_NUMBER at x; OPENSSL_internal:WRONG_VERSION_NUMBER at y") == ["WRONG_VERSION_NUMBER"])
        #expect(S3Client.tlsReasonCodes("Connection refused").isEmpty)
        #expect(S3Client.tlsMessage(S3Error(code: .transport, message: "x", operation: "Get")) == nil)
    }

    @Test("Retry-After: seconds, fractions and HTTP dates, at most 30 s (a number past Int and a date were ignored)")
    func retryAfterValues() throws {
        let now = try #require(S3Dates.parseHTTPDate("Sun, 06 Dec 2026 08:00:00 GMT"))
        #expect(S3Client.retryAfter("3", now: now) == .seconds(3))
        #expect(S3Client.retryAfter(" 3 ", now: now) == .seconds(3))
        #expect(S3Client.retryAfter("2.5", now: now) == .milliseconds(2500))
        #expect(S3Client.retryAfter("99999999999999999999", now: now) == .seconds(30))
        #expect(S3Client.retryAfter("-5", now: now) == .zero)
        #expect(S3Client.retryAfter("Sun, 06 Dec 2026 08:00:10 GMT", now: now) == .seconds(10))
        #expect(S3Client.retryAfter("Sun, 06 Dec 2026 09:00:00 GMT", now: now) == .seconds(30))
        #expect(S3Client.retryAfter("soon", now: now) == nil)
    }

    @Test("AWS_CA_BUNDLE: a folder, a file without PEM and a missing file are said as such; an http:// endpoint does not read it")
    func caBundleWords() throws {
        let directory = try TemporaryDirectory(prefix: "ca-bundle")
        let notPEM = directory.appending("der.cer").path
        try Data([0x30, 0x82, 0x01]).write(to: URL(fileURLWithPath: notPEM))
        func message(_ bundle: String, endpoint: String = "https://127.0.0.1:9000") -> String {
            var configuration = S3Configuration(endpoint: endpoint, credentials: S3Credentials(accessKeyID: "k", secretAccessKey: "s"))
            configuration.caBundle = bundle
            do {
                _ = try S3Client.httpClient(for: configuration)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(message(directory.path).contains("it is a folder"), "\(message(directory.path))")
        #expect(message(notPEM).contains("it holds no PEM certificate"), "\(message(notPEM))")
        #expect(message(directory.appending("none.pem").path).contains("no such file"))
        #expect(message(notPEM, endpoint: "http://127.0.0.1:9000") == "no error")
    }
}
