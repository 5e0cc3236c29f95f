import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import PlayheadTestSupport
import Testing

@testable import S3

/// Known-answer tests from the examples in AWS's S3 documentation ("Signature Calculations for the
/// Authorization Header: Transferring Payload in a Single Chunk"), all with the documented example key
/// AKIAIOSFODNN7EXAMPLE, region us-east-1, at 2013-05-24T00:00:00Z.
@Suite struct SigV4KnownAnswerTests {
    static let credentials = S3Credentials(
        accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    static let signer = SigV4Signer(credentials: credentials, region: "us-east-1", service: "s3")
    /// 2013-05-24T00:00:00Z
    static let date = Date(timeIntervalSince1970: 1_369_353_600)
    static let host = "examplebucket.s3.amazonaws.com"

    @Test func getObjectWithRange() {
        var headers = HTTPHeaders([("Range", "bytes=0-9")])
        let result = Self.signer.sign(
            method: "GET", host: Self.host, path: "/test.txt", headers: &headers,
            payloadHash: SigV4Signer.emptyPayloadHash, date: Self.date)
        #expect(
            result.canonicalRequest == """
                GET
                /test.txt

                host:examplebucket.s3.amazonaws.com
                range:bytes=0-9
                x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                x-amz-date:20130524T000000Z

                host;range;x-amz-content-sha256;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """)
        #expect(
            result.stringToSign == """
                AWS4-HMAC-SHA256
                20130524T000000Z
                20130524/us-east-1/s3/aws4_request
                7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
                """)
        #expect(result.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(
            headers.first(name: "authorization")
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )
        #expect(headers.first(name: "x-amz-date") == "20130524T000000Z")
        #expect(headers.first(name: "x-amz-content-sha256") == SigV4Signer.emptyPayloadHash)
    }

    @Test func putObjectWithBodyAndStorageClass() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let payloadHash = SigV4Signer.hexSHA256(body)
        #expect(payloadHash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        var headers = HTTPHeaders([("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")])
        // The key is "test$file.text": '$' is percent-encoded in the canonical URI.
        let result = Self.signer.sign(
            method: "PUT", host: Self.host, path: "/test$file.text", headers: &headers, payloadHash: payloadHash, date: Self.date)
        #expect(result.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[1] == "/test%24file.text")
        #expect(result.signedHeaders == "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class")
        #expect(result.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test func getBucketLifecycle() {
        var headers = HTTPHeaders()
        let result = Self.signer.sign(
            method: "GET", host: Self.host, path: "/", query: [("lifecycle", "")], headers: &headers,
            payloadHash: SigV4Signer.emptyPayloadHash, date: Self.date)
        #expect(result.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[2] == "lifecycle=")
        #expect(result.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test func listObjectsQueryIsSorted() {
        var headers = HTTPHeaders()
        // Given out of order: the canonical query sorts by name.
        let result = Self.signer.sign(
            method: "GET", host: Self.host, path: "/", query: [("prefix", "J"), ("max-keys", "2")], headers: &headers,
            payloadHash: SigV4Signer.emptyPayloadHash, date: Self.date)
        #expect(result.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[2] == "max-keys=2&prefix=J")
        #expect(result.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func signingFromAURLGivesTheSameSignature() {
        var headers = HTTPHeaders()
        let result = Self.signer.sign(
            method: "GET", url: URL(string: "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J")!, headers: &headers,
            payloadHash: SigV4Signer.emptyPayloadHash, date: Self.date)
        #expect(result.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func aDifferentSecretDateOrRegionChangesTheSignature() {
        func signature(_ signer: SigV4Signer, _ date: Date) -> String {
            var headers = HTTPHeaders([("Range", "bytes=0-9")])
            return signer.sign(method: "GET", host: Self.host, path: "/test.txt", headers: &headers,
                payloadHash: SigV4Signer.emptyPayloadHash, date: date).signature
        }
        let reference = signature(Self.signer, Self.date)
        var wrong = Self.credentials
        wrong.secretAccessKey += "x"
        #expect(signature(SigV4Signer(credentials: wrong, region: "us-east-1"), Self.date) != reference)
        #expect(signature(SigV4Signer(credentials: Self.credentials, region: "eu-west-1"), Self.date) != reference)
        #expect(signature(Self.signer, Self.date.addingTimeInterval(1)) != reference)
    }

    @Test func sessionTokenIsSentAndSigned() {
        var credentials = Self.credentials
        credentials.sessionToken = "token/with+chars=="
        let signer = SigV4Signer(credentials: credentials, region: "us-east-1")
        var headers = HTTPHeaders()
        let result = signer.sign(method: "GET", host: Self.host, path: "/k", headers: &headers,
            payloadHash: SigV4Signer.emptyPayloadHash, date: Self.date)
        #expect(headers.first(name: "x-amz-security-token") == "token/with+chars==")
        #expect(result.signedHeaders == "host;x-amz-content-sha256;x-amz-date;x-amz-security-token")
        #expect(result.canonicalRequest.contains("\nx-amz-security-token:token/with+chars==\n"))
    }
}

@Suite struct CanonicalFormTests {
    @Test func uriEncodingFollowsRFC3986() {
        #expect(SigV4Signer.uriEncode("AZaz09-._~", encodeSlash: true) == "AZaz09-._~")
        #expect(SigV4Signer.uriEncode("a b=c+d&e", encodeSlash: false) == "a%20b%3Dc%2Bd%26e")
        #expect(SigV4Signer.uriEncode("dir/sub/x", encodeSlash: false) == "dir/sub/x")
        #expect(SigV4Signer.uriEncode("dir/sub/x", encodeSlash: true) == "dir%2Fsub%2Fx")
        #expect(SigV4Signer.uriEncode("ü日", encodeSlash: false) == "%C3%BC%E6%97%A5")
        #expect(SigV4Signer.uriEncode("100%*()!'$,;:@", encodeSlash: false) == "100%25%2A%28%29%21%27%24%2C%3B%3A%40")
        #expect(SigV4Signer.canonicalURI("/bucket/a key/ü") == "/bucket/a%20key/%C3%BC")
        #expect(SigV4Signer.canonicalURI("") == "/")
    }

    @Test func queryIsEncodedAndSortedByNameThenValue() {
        let query = SigV4Signer.canonicalQuery([
            ("prefix", "a b/c"), ("list-type", "2"), ("continuation-token", "x+y=="), ("b", "2"), ("b", "1"), ("uploads", ""),
        ])
        #expect(query == "b=1&b=2&continuation-token=x%2By%3D%3D&list-type=2&prefix=a%20b%2Fc&uploads=")
    }

    @Test func headerValuesAreTrimmedAndNamesLowerCased() {
        let headers = HTTPHeaders([
            ("X-Amz-Meta-Note", "  two   spaces  here "), ("Host", "h"), ("User-Agent", "not signed"), ("Content-Length", "3"),
            ("x-amz-meta-note", "second"),
        ])
        let (canonical, signed) = SigV4Signer.canonicalHeaders(headers)
        #expect(canonical == "host:h\nx-amz-meta-note:two spaces here,second\n")
        #expect(signed == "host;x-amz-meta-note")
    }

    @Test func timestampsAreUTC() {
        let (amz, day) = SigV4Signer.timestamps(Date(timeIntervalSince1970: 1_764_594_288))  // 2025-12-01T13:04:48Z
        #expect(amz == "20251201T130448Z")
        #expect(day == "20251201")
    }
}

@Suite struct XMLReaderTests {
    @Test func parsesAListingWithEntitiesCDATAAndNamespaces() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <!-- a comment -->
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>b</Name><IsTruncated>true</IsTruncated>
              <Contents><Key>a &amp; b &lt;c&gt; &#233;&#x65E5;</Key><Size>12</Size><ETag>&quot;abc&quot;</ETag>
                <LastModified>2026-12-01T13:04:48.250Z</LastModified></Contents>
              <Contents><Key><![CDATA[x<y>&z]]></Key><Size>0</Size><Owner id='1'/></Contents>
              <s3:NextContinuationToken xmlns:s3="urn:x">tok/en+=</s3:NextContinuationToken>
            </ListBucketResult>
            """
        let root = try XMLReader.parse(Array(xml.utf8))
        #expect(root.name == "ListBucketResult")
        let contents = root.children("Contents")
        #expect(contents.count == 2)
        #expect(contents[0].value("Key") == "a & b <c> é日")
        #expect(contents[0].value("ETag") == "\"abc\"")
        #expect(contents[1].value("Key") == "x<y>&z")
        #expect(contents[1].child("Owner") != nil)
        #expect(root.value("NextContinuationToken") == "tok/en+=")
        let date = try #require(S3Dates.parseISO8601(contents[0].value("LastModified")!))
        #expect(date.timeIntervalSince1970 == 1_796_130_288.25)
    }

    @Test func rejectsBrokenDocuments() {
        #expect(throws: XMLParseError.self) { try XMLReader.parse(Array("<a><b></a>".utf8)) }
        #expect(throws: XMLParseError.self) { try XMLReader.parse(Array("<a>".utf8)) }
        #expect(throws: XMLParseError.self) { try XMLReader.parse(Array("not xml".utf8)) }
    }

    /// Line ends as XML 1.0 reads them (CR LF and a lone CR are LF, in text and CDATA alike; a
    /// character reference keeps its CR), and `escape` writes a CR so that it reads back.
    @Test func normalizesLineEndsAndEscapesCR() throws {
        let root = try XMLReader.parse(Array("<a><b>1\r\n2\r3\n</b><c><![CDATA[x\r\ny\r]]>&#13;&#xd;&#xD;</c></a>".utf8))
        #expect(root.value("b") == "1\n2\n3\n")
        #expect(root.value("c") == "x\ny\n\r\r\r")
        // A combining mark after `<`, `&` or `>` makes one Character of the two: escaped by scalar.
        for text in ["a\rb", "a\r\nb", "\r", "<&>\"'\r\n\n", "<\u{301}b>\u{301}&\u{301}x;\u{301}"] {
            #expect(try XMLReader.parse(Array("<k>\(XMLReader.escape(text))</k>".utf8)).text == text)
        }
    }

    /// Character references have digits only (no sign), and `&#x` is lower case, as XML says; a
    /// document type declaration is refused, as is `<!` inside an element.
    @Test func characterReferencesAndDeclarations() throws {
        #expect(try XMLReader.parse(Array("<a>&#65;&#x41;&#+65;&#X41;&#x+41;&#;</a>".utf8)).text == "AA&#+65;&#X41;&#x+41;&#;")
        // Any number of leading zeros (12 bytes or more were kept as text until 2026-12-06); a
        // stray `&` stays text.
        let zeros = String(repeating: "0", count: 40)
        #expect(try XMLReader.parse(Array("<a>&#\(zeros)65;&#x\(zeros)41;& b &amp c&lt;</a>".utf8)).text == "AA& b &amp c<")
        #expect {
            try XMLReader.parse(Array("<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY e \"v\">]><a>&e;</a>".utf8))
        } throws: { error in
            "\(error)" == "XML: a document type declaration (<!DOCTYPE) is not expected in an S3 answer at byte 21"
        }
        #expect {
            try XMLReader.parse(Array("<a><!ELEMENT a ANY></a>".utf8))
        } throws: { error in
            "\(error)" == "XML: unexpected '<!' in <a> at byte 3"
        }
    }

    /// An answer nested deeper than any S3 answer is refused, not followed until the stack runs
    /// out: a store or a proxy in front of it could send one (the reader crashed the process on
    /// 100,000 levels until 2026-12-06).
    @Test func refusesDeepNesting() throws {
        let depth = 100_000
        let deep = String(repeating: "<a>", count: depth) + String(repeating: "</a>", count: depth)
        #expect {
            try XMLReader.parse(Array(deep.utf8))
        } throws: { error in
            "\(error)" == "XML: elements nested deeper than \(XMLReader.maximumDepth) at byte \(3 * XMLReader.maximumDepth)"
        }
        let allowed = String(repeating: "<a>", count: XMLReader.maximumDepth) + "x" + String(repeating: "</a>", count: XMLReader.maximumDepth)
        var element = try XMLReader.parse(Array(allowed.utf8))
        while let child = element.children.first { element = child }
        #expect(element.text == "x")
    }

    @Test func errorBodiesBecomeS3Errors() {
        let body = ByteBuffer(
            string: "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>The key does not exist</Message><RequestId>R1</RequestId></Error>")
        let error = S3Client.error(
            fromBody: body, status: 404, requestID: nil, method: .GET, operation: "GetObject", bucket: "b", key: "k", attempts: 1)
        #expect(error.code == .noSuchKey)
        #expect(error.status == 404)
        #expect(error.requestID == "R1")
        #expect(error.message == "The key does not exist")
        #expect(!error.isRetryable)
        let slow = S3Client.error(
            fromBody: ByteBuffer(string: "<Error><Code>SlowDown</Code></Error>"), status: 503, requestID: nil, method: .PUT,
            operation: "PutObject", bucket: "b", key: "k", attempts: 1)
        #expect(slow.code == .slowDown && slow.isRetryable)
        let bare = S3Client.error(fromBody: ByteBuffer(), status: 502, requestID: "x", method: .HEAD, operation: "HeadObject",
            bucket: "b", key: "k", attempts: 1)
        #expect(bare.code == .http(502) && bare.isRetryable)
        // 501 NotImplemented is what the store always answers (a conditional write it does not
        // take): not retried, so that the caller's fallback runs at once.
        let notImplemented = S3Client.error(
            fromBody: ByteBuffer(string: "<Error><Code>NotImplemented</Code></Error>"), status: 501, requestID: nil, method: .PUT,
            operation: "PutObject", bucket: "b", key: "k", attempts: 1)
        #expect(notImplemented.isNotImplemented && !notImplemented.isRetryable)
        let missing = S3Client.error(fromBody: ByteBuffer(), status: 404, requestID: nil, method: .HEAD, operation: "HeadObject",
            bucket: "b", key: "k", attempts: 1)
        #expect(missing.code == .noSuchKey)
        #expect(S3Dates.parseHTTPDate("Tue, 01 Dec 2026 13:04:48 GMT")?.timeIntervalSince1970 == 1_796_130_288)
    }
}

@Suite("ListObjectsV2 answers: URL-encoded names")
struct ListingAnswerTests {
    func page(_ body: String) throws -> S3ListPage {
        try S3Client.listPage(XMLReader.parse(Array("<ListBucketResult><IsTruncated>true</IsTruncated>\(body)</ListBucketResult>".utf8)))
    }

    @Test("with <EncodingType>url</EncodingType>, keys and common prefixes are decoded as forms are: + a space, %2B a plus; the continuation token is kept as sent")
    func decodesWhenTheAnswerSaysSo() throws {
        let listed = try page("""
            <Contents><Key>cr%0Dx</Key><Size>1</Size></Contents><Contents><Key>ctrl%01x</Key></Contents>
            <Contents><Key>sp+x</Key></Contents><Contents><Key>plus%2Bx</Key></Contents><Contents><Key>pct%2541x</Key></Contents>
            <Contents><Key>%E6%97%A5/a%2Fb</Key></Contents><CommonPrefixes><Prefix>date%3D1+2/</Prefix></CommonPrefixes>
            <NextContinuationToken>to%2Bk+en</NextContinuationToken><EncodingType>url</EncodingType>
            """)
        #expect(listed.objects.map(\.key) == ["cr\rx", "ctrl\u{01}x", "sp x", "plus+x", "pct%41x", "日/a/b"])
        #expect(listed.objects[0].size == 1)
        #expect(listed.commonPrefixes == ["date=1 2/"])
        #expect(listed.nextContinuationToken == "to%2Bk+en" && listed.isTruncated)
    }

    @Test("without <EncodingType> (a store that ignores encoding-type), names are taken as they are")
    func keepsNamesOtherwise() throws {
        let listed = try page("<Contents><Key>pct%41x</Key></Contents><Contents><Key>sp+x</Key></Contents><CommonPrefixes><Prefix>a%2F</Prefix></CommonPrefixes>")
        #expect(listed.objects.map(\.key) == ["pct%41x", "sp+x"])
        #expect(listed.commonPrefixes == ["a%2F"])
    }

    @Test("an encoded name that does not decode (a bad escape, bytes that are not UTF-8) is refused, named")
    func refusesBadEncoding() throws {
        for bad in ["%zz", "a%4", "%FF%FE"] {
            #expect {
                try page("<Contents><Key>\(bad)</Key></Contents><EncodingType>url</EncodingType>")
            } throws: { error in
                (error as? S3Client.ListingError)?.text.contains("<Key> \"\(bad)\" is not URL-encoded UTF-8") == true
            }
        }
        #expect(throws: S3Client.ListingError.self) { try S3Client.listPage(XMLReader.parse(Array("<Error/>".utf8))) }
    }
}

@Suite struct ConfigurationTests {
    @Test func endpointRegionAndCredentialsFallBackToTheEnvironment() throws {
        let env = [
            "AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S", "AWS_SESSION_TOKEN": "T",
            "AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:8333", "AWS_DEFAULT_REGION": "eu-west-3",
        ]
        let config = try S3Configuration.fromEnvironment(endpoint: nil, region: nil, environment: env)
        #expect(config.endpoint == "http://127.0.0.1:8333")
        #expect(config.region == "eu-west-3")
        #expect(config.credentials == S3Credentials(accessKeyID: "K", secretAccessKey: "S", sessionToken: "T"))
        #expect(config.pathStyle)
        let explicit = try S3Configuration.fromEnvironment(
            endpoint: "http://h:9", region: "us-west-2", credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "b"), environment: env)
        #expect(explicit.endpoint == "http://h:9" && explicit.region == "us-west-2" && explicit.credentials.accessKeyID == "a")
        let aws = try S3Configuration.fromEnvironment(environment: ["AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S", "AWS_REGION": "ap-south-1"])
        #expect(aws.endpoint == "https://s3.ap-south-1.amazonaws.com" && !aws.pathStyle)
    }

    @Test func missingCredentialsAreAClearError() {
        do {
            _ = try S3Configuration.fromEnvironment(endpoint: "http://127.0.0.1:1", environment: ["AWS_ACCESS_KEY_ID": "only-the-key"])
            Issue.record("expected an error")
        } catch let error as S3Error {
            #expect(error.code == .missingCredentials)
            #expect(error.description.contains("AWS_SECRET_ACCESS_KEY"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func badEndpointsAreRejected() {
        #expect(throws: S3Error.self) { try S3Endpoint(parsing: "127.0.0.1:8333") }
        #expect(throws: S3Error.self) { try S3Endpoint(parsing: "ftp://h") }
        #expect(throws: S3Error.self) { try S3Endpoint(parsing: "http://h:99999") }
        // A user or password in the endpoint is refused, and the message does not repeat it.
        do {
            _ = try S3Endpoint(parsing: "http://user:hunter2@127.0.0.1:8333")
            Issue.record("an endpoint with a password was taken")
        } catch {
            let message = (error as? S3Error)?.message ?? "\(error)"
            #expect(message.contains("has a user or password in it") && !message.contains("hunter2") && message.contains("…@127.0.0.1:8333"), "\(message)")
        }
        let endpoint = try? S3Endpoint(parsing: "http://127.0.0.1:8333/")
        #expect(endpoint?.host == "127.0.0.1" && endpoint?.port == 8333 && endpoint?.basePath == "")
        #expect(endpoint?.hostHeader(host: "127.0.0.1") == "127.0.0.1:8333")
        #expect((try? S3Endpoint(parsing: "https://s3.amazonaws.com:443"))?.hostHeader(host: "b.s3.amazonaws.com") == "b.s3.amazonaws.com")
    }

    @Test("a port out of 1...65535 is refused for an IPv6 address too (http://[::1]:65536 was taken and crashed the first request, SIGILL in NIO), and a host that is no host name at start (http://bad host:27007 was retried for ever as a transport error); an endpoint AsyncHTTPClient cannot make a URL of is not retried")
    func badPortsAndHostsAreRejected() throws {
        func message(_ endpoint: String) -> String? {
            do {
                _ = try S3Endpoint(parsing: endpoint)
                return nil
            } catch {
                return (error as? S3Error).map { $0.code == .invalidConfiguration ? $0.message : "\($0)" } ?? "\(error)"
            }
        }
        for endpoint in ["http://[::1]:65536", "http://[::1]:0", "http://[::1]:-1", "http://[::1]:x", "http://[::1]:", "http://127.0.0.1:65536"] {
            #expect(message(endpoint)?.contains("has a bad port") == true, "\(endpoint): \(String(describing: message(endpoint)))")
        }
        #expect(message("http://bad host:27007") == "S3 endpoint 'http://bad host:27007' has a bad host 'bad host' (a name of letters, digits, '-', '.' and '_', an IPv4 address, or an IPv6 address in brackets): use e.g. http://127.0.0.1:8333")
        for endpoint in ["http://:8333", "http://[::1", "http://[::1]x:80", "http://[]:80", "http://h?x=1", "http://bücher.example", "http://h#x", "http://[::1 ]:80"] {
            #expect(message(endpoint) != nil, "\(endpoint) was taken")
        }
        #expect((try? S3Endpoint(parsing: "http://[::1]:65535"))?.hostHeader(host: "[::1]") == "[::1]:65535")
        #expect((try? S3Endpoint(parsing: "https://[fe80::1%25eth0]"))?.port == nil)
        for endpoint in ["http://s3_gateway.internal-1:8333", "https://s3.eu-west-1.amazonaws.com", "http://xn--bcher-kva.example", "http://10.0.0.1"] {
            #expect(message(endpoint) == nil, "\(endpoint): \(String(describing: message(endpoint)))")
        }
        // Refused by the client as a configuration error, without a request, should one get past.
        var ending = S3InFlight.Ending.answered
        let invalid = S3Client.failure(of: HTTPClientError.invalidURL, operation: "GetObject", bucket: "b", key: "k", attempt: 1, ending: &ending)
        #expect(invalid.code == .invalidConfiguration && !invalid.isRetryable, "\(invalid)")
        let refused = S3Client.failure(
            of: IOError(errnoCode: ECONNREFUSED, reason: "connect"), operation: "GetObject", bucket: "b", key: "k", attempt: 1, ending: &ending)
        #expect(refused.code == .transport && refused.isRetryable)
    }

    @Test("the largest object getObject reads is UInt32.max bytes, what a ByteBuffer holds (it was 4 GiB, and an object of exactly that size would have trapped)")
    func largestObjectFitsAByteBuffer() {
        let configuration = S3Configuration(endpoint: "http://127.0.0.1:8333", credentials: S3Credentials(accessKeyID: "K", secretAccessKey: "S"))
        #expect(configuration.maximumObjectSize == Int(UInt32.max))
        #expect(S3Client.bodyLimit(1 << 32) == Int(UInt32.max) && S3Client.bodyLimit(1 << 40) == Int(UInt32.max) && S3Client.bodyLimit(1000) == 1000)
    }

    @Test func requestTargetsForPathAndVirtualHostedStyle() throws {
        let credentials = S3Credentials(accessKeyID: "K", secretAccessKey: "S")
        let local = S3Client(configuration: S3Configuration(endpoint: "http://127.0.0.1:8333", credentials: credentials))
        let object = try local.requestTarget(bucket: "lake", key: "events/date=2026-12-01/a b+ü.parquet", query: [])
        #expect(object.hostHeader == "127.0.0.1:8333")
        #expect(object.path == "/lake/events/date=2026-12-01/a b+ü.parquet")
        #expect(object.url == "http://127.0.0.1:8333/lake/events/date%3D2026-12-01/a%20b%2B%C3%BC.parquet")
        let list = try local.requestTarget(bucket: "lake", key: nil, query: [("prefix", "a/b"), ("list-type", "2")])
        #expect(list.url == "http://127.0.0.1:8333/lake?list-type=2&prefix=a%2Fb")
        let upload = try local.requestTarget(bucket: "lake", key: "k", query: [("uploads", "")])
        #expect(upload.url == "http://127.0.0.1:8333/lake/k?uploads=")

        let aws = S3Client(configuration: S3Configuration(endpoint: "https://s3.eu-west-1.amazonaws.com", region: "eu-west-1",
            credentials: credentials, pathStyle: false))
        let virtual = try aws.requestTarget(bucket: "lake", key: "x/y", query: [])
        #expect(virtual.hostHeader == "lake.s3.eu-west-1.amazonaws.com" && virtual.path == "/x/y")
        #expect(virtual.url == "https://lake.s3.eu-west-1.amazonaws.com/x/y")
        let dotted = try aws.requestTarget(bucket: "my.lake", key: "x", query: [])
        #expect(dotted.url == "https://s3.eu-west-1.amazonaws.com/my.lake/x")
        let prefixed = S3Client(configuration: S3Configuration(endpoint: "http://gateway:80/s3/", credentials: credentials))
        #expect(try prefixed.requestTarget(bucket: "b", key: "k", query: []).url == "http://gateway/s3/b/k")
        let broken = S3Client(configuration: S3Configuration(endpoint: "gateway:80", credentials: credentials))
        #expect(throws: S3Error.self) { try broken.requestTarget(bucket: "b", key: "k", query: []) }
    }

    @Test func retryDelaysGrowAndStayWithinBounds() {
        let policy = S3RetryPolicy(maximumAttempts: 10, initialDelay: .milliseconds(100), maximumDelay: .seconds(1))
        for attempt in 1...10 {
            let cap = min(1.0, 0.1 * pow(2, Double(attempt - 1)))
            for _ in 0..<20 {
                let delay = S3RetryPolicy.seconds(policy.delay(afterAttempt: attempt))
                #expect(delay >= cap / 2 - 1e-9 && delay <= cap + 1e-9)
            }
        }
    }
}

/// Our signatures against botocore's (an independent SigV4 implementation) for awkward keys and
/// queries, with fixed timestamps. Needs the test venv's Python (boto3).
@Suite struct SigV4BotocoreCrossCheckTests {
    struct Case: Codable {
        var key: String
        var secret: String
        var token: String?
        var method: String
        var url: String
        var headers: [String: String]
        var timestamp: String
        var region: String
        var payload: String
    }

    struct Answer: Codable {
        var canonical: String
        var signature: String
    }

    static let script = """
        import json, sys
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        out = []
        for c in json.loads(sys.stdin.read()):
            r = AWSRequest(method=c["method"], url=c["url"], headers=c["headers"], data=b"")
            r.context["timestamp"] = c["timestamp"]
            r.headers["X-Amz-Date"] = c["timestamp"]
            r.headers["X-Amz-Content-SHA256"] = c["payload"]
            if c.get("token"):
                r.headers["X-Amz-Security-Token"] = c["token"]
            auth = S3SigV4Auth(Credentials(c["key"], c["secret"], c.get("token")), "s3", c["region"])
            canonical = auth.canonical_request(r)
            out.append({"canonical": canonical, "signature": auth.signature(auth.string_to_sign(r, canonical), r)})
        print(json.dumps(out))
        """

    @Test func ourSignaturesEqualBotocores() async throws {
        let keys = [
            "plain.txt", "with space.txt", "a=b&c+d.json", "ünïcødé/日本語/файл.bin", "dir/sub dir/(paren)!*'~.dat",
            "percent%20literal", "semi;colon,comma:colon@at$dollar", "emoji-😀.txt", "date=2026-12-01/hour=13/part-0.parquet",
        ]
        let queries: [[(String, String)]] = [
            [], [("uploads", "")], [("partNumber", "3"), ("uploadId", "2~abc/def+ghi==")],
            [("list-type", "2"), ("prefix", "events/date=2026-12-01/"), ("continuation-token", "1/a+b=c"), ("max-keys", "97")],
        ]
        var cases: [Case] = []
        var ours: [SigV4Signer.Signature] = []
        let regions = ["us-east-1", "eu-west-3"]
        let times: [(Date, String)] = [
            (Date(timeIntervalSince1970: 1_369_353_600), "20130524T000000Z"), (Date(timeIntervalSince1970: 1_796_130_288), "20261201T130448Z"),
        ]
        for (index, key) in keys.enumerated() {
            let query = queries[index % queries.count]
            let region = regions[index % 2]
            let (date, stamp) = times[index % 2]
            let token: String? = index % 3 == 0 ? "session/token+\(index)==" : nil
            let credentials = S3Credentials(accessKeyID: "AKIDEXAMPLE\(index)", secretAccessKey: "secret/\(index)+key", sessionToken: token)
            let client = S3Client(configuration: S3Configuration(endpoint: "http://127.0.0.1:8333", region: region, credentials: credentials))
            let target = try client.requestTarget(bucket: "lake", key: key, query: query)
            let method = ["GET", "PUT", "POST", "DELETE", "HEAD"][index % 5]
            let payload = SigV4Signer.hexSHA256(Array("body \(index)".utf8))
            var headers = HTTPHeaders([("host", target.hostHeader), ("content-type", "application/octet-stream")])
            ours.append(client.signer.sign(method: method, host: target.hostHeader, path: target.path, query: query, headers: &headers,
                payloadHash: payload, date: date))
            cases.append(Case(key: credentials.accessKeyID, secret: credentials.secretAccessKey, token: token, method: method, url: target.url,
                headers: ["Content-Type": "application/octet-stream"], timestamp: stamp, region: region, payload: payload))
        }
        let input = try JSONEncoder().encode(cases)
        let result = try await runCommand(TestEnvironment.python, ["-c", Self.script], stdin: input, timeout: .seconds(60))
        try #require(result.status == 0, "\(result.stderr)")
        let answers = try JSONDecoder().decode([Answer].self, from: Data(result.stdout.utf8))
        try #require(answers.count == ours.count)
        for (index, answer) in answers.enumerated() {
            #expect(ours[index].canonicalRequest == answer.canonical, "key \(keys[index])")
            #expect(ours[index].signature == answer.signature, "key \(keys[index])")
        }
    }
}
