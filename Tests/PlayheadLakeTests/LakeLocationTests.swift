import PlayheadLake
@testable import S3
import Testing

@Suite("--lake locations and S3 start-up words")
struct LakeLocationTests {
    @Test("s3:// bucket names follow S3's rules (ASCII only), and a prefix with '.' or '..' segments is refused")
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
    }

    @Test("a failed TLS handshake is said by its reason codes, without the build path BoringSSL's text holds")
    func tlsReasons() {
        let text = "handshakeFailed(NIOSSL.BoringSSLError.sslError([Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at /work/main/.build/checkouts/swift-nio-ssl/Sources/CNIOBoringSSL/ssl/handshake.cc:320]))"
        #expect(S3Client.tlsReasonCodes(text) == ["CERTIFICATE_VERIFY_FAILED"])
        #expect(S3Client.tlsReasonCodes("error:1 OPENSSL_internal:WRONG_VERSION_NUMBER at x; OPENSSL_internal:WRONG_VERSION_NUMBER at y") == ["WRONG_VERSION_NUMBER"])
        #expect(S3Client.tlsReasonCodes("Connection refused").isEmpty)
        #expect(S3Client.tlsMessage(S3Error(code: .transport, message: "x", operation: "Get")) == nil)
    }
}
