import Foundation
import PlayheadTestSupport
import Testing

/// `POST /v1/events` and the other routes, over real HTTP against `playhead serve`: every case of
/// the contract in docs/openapi.yaml.
@Suite("HTTP API", .serialized)
struct IngestAPITests {
    @Test("a single event is accepted, stored with received_at, and dumped")
    func singleEvent() async throws {
        let (server, _) = try await Fixtures.server()
        let before = Date()
        let response = try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("e-1", ["extra_field": ["nested": 1]])))
        #expect(response.status == 202)
        #expect(response.json["accepted"] as? Int == 1)
        #expect(response.json["rejected"] as? Int == 0)
        let records = try await Fixtures.dump(server.dataDirectory)
        #expect(records.count == 1)
        let record = try #require(records.first)
        #expect(record["event_id"] as? String == "e-1")
        #expect(record["genre"] as? [String] == ["thriller", "action"])
        #expect((record["extra_field"] as? [String: Any])?["nested"] as? Int == 1)
        let receivedAt = try #require(record["received_at"] as? String)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let received = try #require(formatter.date(from: receivedAt.replacingOccurrences(of: #"(\.\d{3})\d+"#, with: "$1", options: .regularExpression)))
        #expect(abs(received.timeIntervalSince(before)) < 10)
    }

    @Test(
        "on an IPv6 address the start-up line gives a URL that works (http://[::1]:port; it said http://::1:port)",
        .enabled(if: (try? String(contentsOfFile: "/proc/net/if_inet6", encoding: .utf8))?.contains(" lo") == true, "needs IPv6 on loopback")
    )
    func listensOnIPv6() async throws {
        let directory = try TemporaryDirectory(prefix: "ipv6")
        defer { withExtendedLifetime(directory) {} }
        let port = try TestNetwork.freePort()
        let server = try ChildProcess(
            TestEnvironment.playheadExecutable, ["serve", "--host", "::1", "--port", "\(port)", "--data-dir", directory.appending("data").path],
            name: "playhead-ipv6", logDirectory: TestEnvironment.artifactsDirectory)
        defer { if server.isRunning { server.kill9() } }
        let line = try await server.waitForOutput(containing: "listening on http://", timeout: .seconds(60))
        #expect(line.contains("listening on http://[::1]:\(port)"), "\(line)")
        let health = try await TestHTTP.request("http://[::1]:\(port)/healthz")
        #expect(health.status == 200)
        // Given as in a URL, with brackets: the same address (it was refused as an unknown host).
        let bracketedPort = try TestNetwork.freePort()
        let bracketed = try ChildProcess(
            TestEnvironment.playheadExecutable,
            ["serve", "--host", "[::1]", "--port", "\(bracketedPort)", "--data-dir", directory.appending("data2").path],
            name: "playhead-ipv6-brackets", logDirectory: TestEnvironment.artifactsDirectory)
        defer { if bracketed.isRunning { bracketed.kill9() } }
        let bracketedLine = try await bracketed.waitForOutput(containing: "listening on http://", timeout: .seconds(60))
        #expect(bracketedLine.contains("listening on http://[::1]:\(bracketedPort)"), "\(bracketedLine)")
        // loadgen takes the same two forms (it took [::1] for a host name and blamed the server).
        for host in ["::1", "[::1]"] {
            let run = try await runCommand(
                TestEnvironment.playheadExecutable, ["loadgen", "--host", host, "--port", "\(bracketedPort)", "--events", "3", "--connections", "1", "--json"])
            #expect(run.status == 0 && run.stdout.contains("\"acknowledged_events\":3"), "\(host): \(run.stdout) \(run.stderr)")
        }
    }

    @Test("--metrics off: events are taken, and /metrics, / and /live.json answer 404 saying metrics are off")
    func metricsOff() async throws {
        let (server, _) = try await Fixtures.server(["--metrics", "off"])
        #expect(try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("metrics-off"))).status == 202)
        let metrics = try await TestHTTP.request("\(server.baseURL)/metrics")
        #expect(metrics.status == 404 && metrics.text.contains("metrics are off in this process (--metrics off)"), "\(metrics.status) \(metrics.text)")
        for path in ["/", "/live.json"] {
            let live = try await TestHTTP.request("\(server.baseURL)\(path)")
            #expect(live.status == 404 && live.text.contains("\"metrics_off\"") && live.text.contains("live page"), "\(path): \(live.status) \(live.text)")
        }
    }

    @Test("an array, NDJSON and a text/plain beacon are all accepted, and NDJSON sent as application/json; pretty-printed events are one invalid body")
    func bodyFormats() async throws {
        let (server, _) = try await Fixtures.server()
        let array = try await TestHTTP.postEvents(server, Fixtures.json([Fixtures.event("a1"), Fixtures.event("a2")]))
        #expect(array.status == 202 && array.json["accepted"] as? Int == 2)
        let ndjson = try await TestHTTP.postEvents(
            server, Fixtures.ndjson([Fixtures.event("n1"), Fixtures.event("n2"), Fixtures.event("n3")]),
            contentType: "application/x-ndjson"
        )
        #expect(ndjson.status == 202 && ndjson.json["accepted"] as? Int == 3)
        let beacon = try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("b1")), contentType: "text/plain;charset=UTF-8")
        #expect(beacon.status == 202 && beacon.json["accepted"] as? Int == 1)
        // NDJSON sent as application/json is read as NDJSON (it was refused whole as malformed JSON).
        let mislabelled = try await TestHTTP.postEvents(
            server, Fixtures.ndjson([Fixtures.event("j1"), Fixtures.event("j2", ["duration_seconds": -1]), Fixtures.event("j3")]),
            contentType: "application/json")
        #expect(mislabelled.status == 202 && mislabelled.json["accepted"] as? Int == 2 && mislabelled.json["rejected"] as? Int == 1,
                "\(mislabelled.text)")
        #expect((mislabelled.json["errors"] as? [[String: Any]])?.first?["index"] as? Int == 1, "\(mislabelled.text)")
        // Pretty-printed events one after another (what `jq .` prints) are one invalid JSON body,
        // as a beacon's text/plain as much as application/json: text/plain was read line by line,
        // one rejection per line (an outside review).
        let pretty = try [Fixtures.event("p1"), Fixtures.event("p2")].map {
            String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self)
        }.joined(separator: "\n")
        for type in ["text/plain", "application/json"] {
            let answer = try await TestHTTP.postEvents(server, pretty, contentType: type)
            let errors = answer.json["errors"] as? [[String: Any]]
            #expect(answer.status == 400 && errors?.count == 1, "\(type): \(answer.text.prefix(300))")
            #expect(errors?.first?["index"] as? Int == -1 && errors?.first?["reason"] as? String == "malformed_json", "\(type): \(answer.text.prefix(300))")
        }
        let ids = try await Fixtures.storedIDs(server.dataDirectory)
        #expect(Set(ids) == ["a1", "a2", "n1", "n2", "n3", "b1", "j1", "j3"])
    }

    @Test("partial acceptance: per-event errors name index, event_id, field and reason; rejects are stored byte for byte")
    func partialAcceptance() async throws {
        let (server, _) = try await Fixtures.server()
        let bad = Fixtures.json(Fixtures.event("bad-1", ["duration_seconds": -5]))
        let body = Fixtures.json(Fixtures.event("ok-1")) + "\n" + bad + "\n" + Fixtures.json(Fixtures.event("ok-2")) + "\n"
        let response = try await TestHTTP.postEvents(server, body, contentType: "application/x-ndjson")
        #expect(response.status == 202)
        #expect(response.json["accepted"] as? Int == 2)
        #expect(response.json["rejected"] as? Int == 1)
        let error = try #require((response.json["errors"] as? [[String: Any]])?.first)
        #expect(error["index"] as? Int == 1)
        #expect(error["event_id"] as? String == "bad-1")
        #expect(error["field"] as? String == "duration_seconds")
        #expect(error["reason"] as? String == "negative_number")
        #expect((error["message"] as? String)?.isEmpty == false)
        let rejected = try await Fixtures.dump(server.dataDirectory, topic: "rejected")
        #expect(rejected.count == 1)
        #expect(rejected.first?["raw"] as? String == bad)
        #expect(rejected.first?["reason"] as? String == "negative_number")
        #expect(rejected.first?["index"] as? Int == 1)
        #expect(rejected.first?["received_at"] is String)
    }

    /// One invalid event per rejection reason of schema 1.0, each checked for its reason and field.
    static let invalidEvents: [(name: String, body: String, reason: String, field: String?)] = [
        ("missing field", Fixtures.json(Fixtures.event("r1", ["user_id": nil])), "missing_field", "user_id"),
        ("wrong type", Fixtures.json(Fixtures.event("r2", ["duration_seconds": "long"])), "invalid_type", "duration_seconds"),
        ("genre not a list", Fixtures.json(Fixtures.event("r3", ["genre": "drama"])), "invalid_type", "genre"),
        ("genre element not a string", Fixtures.json(Fixtures.event("r4", ["genre": ["drama", 7]])), "invalid_type", "genre[1]"),
        ("value outside the enum", Fixtures.json(Fixtures.event("r5", ["event_type": "rewind"])), "invalid_value", "event_type"),
        ("content type outside the enum", Fixtures.json(Fixtures.event("r6", ["content_type": "podcast"])), "invalid_value", "content_type"),
        ("unparseable timestamp", Fixtures.json(Fixtures.event("r7", ["timestamp": "yesterday"])), "invalid_timestamp", "timestamp"),
        ("impossible date", Fixtures.json(Fixtures.event("r8", ["timestamp": "2025-02-30T10:00:00Z"])), "invalid_timestamp", "timestamp"),
        ("negative duration", Fixtures.json(Fixtures.event("r9", ["duration_seconds": -1])), "negative_number", "duration_seconds"),
        ("negative position", Fixtures.json(Fixtures.event("r10", ["current_timestamp": -0.5])), "negative_number", "current_timestamp"),
        ("over-long string", Fixtures.json(Fixtures.event("r11", ["title": String(repeating: "x", count: 5000)])), "string_too_long", "title"),
        ("event over 32 KiB", Fixtures.json(Fixtures.event("r12", ["padding": String(repeating: "y", count: 40_000)])), "event_too_large", nil),
        ("unknown schema version", Fixtures.json(Fixtures.event("r13", ["schema_version": "9.9"])), "unknown_schema_version", "schema_version"),
        ("not an object", "[1,2]", "not_an_object", nil),
        ("malformed JSON line", #"{"event_id": "r15", "#, "malformed_json", nil),
        ("duplicate field", #"{"event_id":"r16","event_id":"r16b"}"#, "duplicate_field", "event_id"),
    ]

    @Test("every rejection reason is reported precisely", arguments: 0..<invalidEvents.count)
    func rejectionReasons(_ index: Int) async throws {
        let (server, _) = try await Fixtures.server()
        let case_ = Self.invalidEvents[index]
        let body = Fixtures.json(Fixtures.event("good")) + "\n" + case_.body + "\n"
        let response = try await TestHTTP.postEvents(server, body, contentType: "application/x-ndjson")
        #expect(response.status == 202, "\(case_.name): \(response.text)")
        #expect(response.json["accepted"] as? Int == 1, "\(case_.name)")
        let error = try #require((response.json["errors"] as? [[String: Any]])?.first, "\(case_.name): \(response.text)")
        #expect(error["index"] as? Int == 1, "\(case_.name)")
        #expect(error["reason"] as? String == case_.reason, "\(case_.name): \(response.text)")
        if let field = case_.field { #expect(error["field"] as? String == field, "\(case_.name): \(response.text)") }
    }

    @Test("400 when nothing can be accepted: all invalid, malformed array, empty body")
    func nothingAccepted() async throws {
        let (server, _) = try await Fixtures.server()
        let allInvalid = try await TestHTTP.postEvents(server, Fixtures.json([Fixtures.event("x", ["event_type": "fly"])]))
        #expect(allInvalid.status == 400)
        #expect(allInvalid.json["accepted"] as? Int == 0)
        #expect(allInvalid.json["rejected"] as? Int == 1)
        let malformed = try await TestHTTP.postEvents(server, #"[{"event_id": "a"}, {"#)
        #expect(malformed.status == 400)
        #expect((malformed.json["errors"] as? [[String: Any]])?.first?["reason"] as? String == "malformed_json")
        #expect((malformed.json["errors"] as? [[String: Any]])?.first?["index"] as? Int == -1)
        let empty = try await TestHTTP.postEvents(server, "")
        #expect(empty.status == 400)
        // The malformed body is kept whole in the rejected stream.
        let rejected = try await Fixtures.dump(server.dataDirectory, topic: "rejected")
        #expect(rejected.contains { $0["raw"] as? String == #"[{"event_id": "a"}, {"# })
    }

    @Test("413 for a body over the limit, declared or streamed, and for too many events")
    func tooLarge() async throws {
        let (server, _) = try await Fixtures.server(["--max-body-bytes", "10000", "--max-events-per-request", "5"])
        let big = Fixtures.json((0..<40).map { Fixtures.event("big-\($0)") })
        let declared = try await TestHTTP.postEvents(server, big)
        #expect(declared.status == 413)
        #expect(declared.json["error"] as? String == "body_too_large")
        // Chunked: no Content-Length, so the limit is enforced while reading.
        let connection = try RawConnection(port: server.port)
        connection.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        let chunk = Array(big.utf8)
        connection.send(Array("\(String(chunk.count, radix: 16))\r\n".utf8) + chunk + Array("\r\n0\r\n\r\n".utf8))
        let answer = String(decoding: await connection.readAll(timeout: .seconds(10)), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 413"), "\(answer)")
        // Events past --max-events-per-request are rejected one by one (and kept in `rejected`); the
        // first ones are judged as usual (docs/events.md).
        let many = try await TestHTTP.postEvents(server, Fixtures.json((0..<6).map { Fixtures.event("m-\($0)") }))
        #expect(many.status == 202)
        #expect(many.json["accepted"] as? Int == 5)
        let manyErrors = many.json["errors"] as? [[String: Any]]
        #expect(manyErrors?.count == 1)
        #expect(manyErrors?.first?["reason"] as? String == "too_many_events")
        #expect(manyErrors?.first?["index"] as? Int == 5)
        // Past twice the limit the body is refused whole: 413, nothing accepted, one rejected record
        // holding the body (a review made 600,000 rejected records and an 88 MB answer from a
        // 1,217-byte gzip body of lines `1`).
        let tooMany = Fixtures.json((0..<11).map { Fixtures.event("t-\($0)") })
        let refused = try await TestHTTP.postEvents(server, tooMany)
        #expect(refused.status == 413)
        #expect(refused.json["accepted"] as? Int == 0 && refused.json["rejected"] as? Int == 1)
        let refusedError = (refused.json["errors"] as? [[String: Any]])?.first
        #expect(refusedError?["index"] as? Int == -1 && refusedError?["reason"] as? String == "too_many_events", "\(refused.text)")
        let ones = try await TestHTTP.postEvents(server, String(repeating: "1\n", count: 4000), contentType: "application/x-ndjson")
        #expect(ones.status == 413 && ones.body.count < 1000, "\(ones.status) \(ones.body.count) bytes")
        let rejected = try await Fixtures.dump(server.dataDirectory, topic: "rejected")
        #expect(rejected.filter { $0["index"] as? Int == -1 }.map { $0["raw"] as? String } == [tooMany, String(repeating: "1\n", count: 4000)])
        #expect(rejected.count == 3, "one past the limit, then one record per refused body")
        #expect(try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("after-too-many"))).status == 202)
    }

    @Test("gzip bodies are accepted, several members too; a bomb gets 413, corrupt, cut-off or trailed gzip 400")
    func gzip() async throws {
        let (server, directory) = try await Fixtures.server(["--max-body-bytes", "100000"])
        let body = Fixtures.json((0..<20).map { Fixtures.event("g-\($0)") })
        let compressed = try await Self.gzip(Array(body.utf8), directory: directory)
        let ok = try await TestHTTP.postEvents(server, compressed, headers: [("Content-Encoding", "gzip")])
        #expect(ok.status == 202 && ok.json["accepted"] as? Int == 20, "\(ok.text)")
        // 50 MB of zeros compresses to about 50 KB: under the wire limit, far over it decoded.
        let bomb = try await Self.gzip([UInt8](repeating: 0x20, count: 50_000_000), directory: directory)
        #expect(bomb.count < 100_000)
        let refused = try await TestHTTP.postEvents(server, bomb, headers: [("Content-Encoding", "gzip")])
        #expect(refused.status == 413, "\(refused.text)")
        let corrupt = try await TestHTTP.postEvents(server, Array(compressed.prefix(30)) + [1, 2, 3], headers: [("Content-Encoding", "gzip")])
        #expect(corrupt.status == 400, "\(corrupt.text)")
        // Two members one after another (as concatenating two gzip files makes): every event of both.
        let second = try await Self.gzip(Array(Fixtures.json((20..<27).map { Fixtures.event("g-\($0)") }).utf8), directory: directory)
        let both = try await TestHTTP.postEvents(server, compressed + second, headers: [("Content-Encoding", "gzip")])
        #expect(both.status == 400, "two JSON arrays one after another are one malformed body: \(both.text)")
        let ndjson = { (ids: Range<Int>) in ids.map { Fixtures.json(Fixtures.event("n-\($0)")) }.joined(separator: "\n") + "\n" }
        let members = try await Self.gzip(Array(ndjson(0..<3).utf8), directory: directory) + Self.gzip(Array(ndjson(3..<7).utf8), directory: directory)
        let concatenated = try await TestHTTP.postEvents(server, members, contentType: "application/x-ndjson", headers: [("Content-Encoding", "gzip")])
        #expect(concatenated.status == 202 && concatenated.json["accepted"] as? Int == 7, "\(concatenated.text)")
        // A large member before a small one: the buffer sized from the last member's length grows.
        let uneven = try await Self.gzip(Array(ndjson(100..<220).utf8), directory: directory) + Self.gzip(Array(ndjson(220..<221).utf8), directory: directory)
        let grown = try await TestHTTP.postEvents(server, uneven, contentType: "application/x-ndjson", headers: [("Content-Encoding", "gzip")])
        #expect(grown.status == 202 && grown.json["accepted"] as? Int == 121, "\(grown.text)")
        // The limit holds decoded: exactly --max-body-bytes is taken, one byte more is 413.
        let events = ndjson(300..<303)
        for (padding, status) in [(100_000 - events.utf8.count, 202), (100_001 - events.utf8.count, 413)] {
            let atLimit = try await Self.gzip(Array((events + String(repeating: "\n", count: padding)).utf8), directory: directory)
            let answer = try await TestHTTP.postEvents(server, atLimit, contentType: "application/x-ndjson", headers: [("Content-Encoding", "gzip")])
            #expect(answer.status == status, "\(padding): \(answer.text)")
        }
        // Cut off inside a member, followed by bytes that are not gzip, a member whose length field
        // lies, or no bytes at all: 400 that says what is wrong, and not the events before the fault.
        var lying = members
        lying[lying.count - 1] ^= 1
        let damages: [(String, [UInt8], String)] = [
            ("cut off", Array(members.dropLast(5)), "ends inside member 2"),
            ("trailing bytes", members + Array("JUNK".utf8), "are not another gzip member"),
            ("length field", lying, "not valid gzip"),
            ("empty", [], "no gzip data"),
        ]
        for (name, damaged, reason) in damages {
            let refused = try await TestHTTP.postEvents(server, damaged, contentType: "application/x-ndjson", headers: [("Content-Encoding", "gzip")])
            #expect(refused.status == 400 && refused.text.contains("invalid_gzip") && refused.text.contains(reason), "\(name): \(refused.text)")
        }
        let unsupported = try await TestHTTP.postEvents(server, body, headers: [("Content-Encoding", "br")])
        #expect(unsupported.status == 415)
        // It names what the server takes (RFC 9110 §12.5.3), as the media type's 415 does not.
        #expect(unsupported.headers.first(name: "accept-encoding") == "gzip", "\(unsupported.headers)")
        let mediaType = try await TestHTTP.postEvents(server, body, contentType: "text/csv")
        #expect(mediaType.status == 415 && mediaType.headers.first(name: "accept-encoding") == nil, "\(mediaType.headers)")
    }

    static func gzip(_ bytes: [UInt8], directory: TemporaryDirectory) async throws -> [UInt8] {
        let input = directory.appending("gzip-input-\(UUID().uuidString)")
        try Data(bytes).write(to: input)
        let output = directory.appending("gzip-output-\(UUID().uuidString)")
        let result = try await runCommand("/bin/sh", ["-c", "gzip -c -6 '\(input.path)' > '\(output.path)'"])
        guard result.status == 0 else { throw TestSupportError("gzip failed: \(result.stderr)") }
        return Array(try Data(contentsOf: output))
    }

    @Test("415 for an unsupported content type; a body in UTF-16 gets 400 naming the encoding; 501 for a transfer coding other than chunked before the final chunked, 400 when chunked is not last")
    func unsupportedMediaType() async throws {
        let (server, _) = try await Fixtures.server()
        let response = try await TestHTTP.postEvents(server, "<xml/>", contentType: "application/xml")
        #expect(response.status == 415)
        #expect(response.json["error"] as? String == "unsupported_media_type")
        // A body in UTF-16 gets 400 naming the encoding (any charset parameter is ignored, as RFC 8259
        // asks of a JSON recipient: the bytes decide).
        let event = Fixtures.json(Fixtures.event("c1"))
        let utf16 = try await TestHTTP.postEvents(server, [0xFF, 0xFE] + event.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }, contentType: "application/json; charset=utf-16")
        #expect(utf16.status == 400)
        let error = (utf16.json["errors"] as? [[String: Any]])?.first
        #expect(error?["reason"] as? String == "invalid_utf8", "\(utf16.text)")
        #expect((error?["message"] as? String)?.hasPrefix("the body is UTF-16LE") == true, "\(utf16.text)")

        // A transfer coding other than chunked: 501 from the head, and nothing of the body stored.
        let raw = try RawConnection(port: server.port)
        let chunk = Fixtures.json(Fixtures.event("te-gzip"))
        #expect(raw.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            + String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n0\r\n\r\n"))
        let answer = String(decoding: await raw.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 501 ") && answer.contains(#""error":"unsupported_transfer_encoding""#), "\(answer)")
        // Without chunked last, the body's end cannot be found: 400 and a close (RFC 9112 §6.3), as
        // on every other path.
        let unframed = try RawConnection(port: server.port)
        #expect(unframed.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\n" + chunk))
        let refused = String(decoding: await unframed.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(refused.hasPrefix("HTTP/1.1 400 ") && refused.contains(#""error":"malformed_http""#) && refused.contains("RFC 9112 §6.3"), "\(refused)")
        #expect(refused.contains("Connection: close\r\n") || refused.contains("connection: close\r\n"), "\(refused)")
        #expect(await server.stop() == 0)
        #expect(try await Fixtures.storedIDs(server.dataDirectory).isEmpty)
    }

    @Test("RFC 9112 at the edge: HTTP/1.1 without exactly one Host gets 400, a version other than 1.0 and 1.1 gets 505, the HTTP/2 preface a 400 that says so; none is stored")
    func versionsAndHost() async throws {
        let (server, _) = try await Fixtures.server()
        func exchange(_ request: String) async throws -> String {
            let raw = try RawConnection(port: server.port)
            #expect(raw.send(request))
            return String(decoding: await raw.readAll(timeout: .seconds(30)), as: UTF8.self)
        }
        let event = Fixtures.json(Fixtures.event("no-host"))
        let post = "POST /v1/events HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: \(event.utf8.count)\r\n"
        let noHost = try await exchange(post + "\r\n" + event)
        #expect(noHost.hasPrefix("HTTP/1.1 400 ") && noHost.contains(#""error":"malformed_http""#), "\(noHost)")
        #expect(noHost.contains("exactly one Host header") && noHost.contains("this one has 0"), "\(noHost)")
        let twoHosts = try await exchange(post + "Host: a\r\nHOST: b\r\n\r\n" + event)
        #expect(twoHosts.hasPrefix("HTTP/1.1 400 ") && twoHosts.contains("this one has 2"), "\(twoHosts)")
        // Any case of the name is one Host; HTTP/1.0 needs none.
        let upper = try await exchange("GET /healthz HTTP/1.1\r\nHOST: a\r\nConnection: close\r\n\r\n")
        #expect(upper.hasPrefix("HTTP/1.1 200 "), "\(upper)")
        let http10 = try await exchange("GET /healthz HTTP/1.0\r\n\r\n")
        #expect(http10.hasPrefix("HTTP/1.0 200 "), "\(http10)")

        let http2 = try await exchange("POST /v1/events HTTP/2.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(event.utf8.count)\r\n\r\n" + event)
        #expect(http2.hasPrefix("HTTP/1.1 505 ") && http2.contains(#""error":"http_version_not_supported""#), "\(http2)")
        #expect(http2.contains("other than HTTP/1.1 and HTTP/1.0"), "\(http2)")
        let http09 = try await exchange("GET /healthz\r\n\r\n")
        #expect(http09.hasPrefix("HTTP/1.1 505 "), "\(http09)")
        let preface = try await exchange("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        #expect(preface.hasPrefix("HTTP/1.1 400 ") && preface.contains("HTTP/2 is not supported"), "\(preface)")

        #expect(await server.stop() == 0)
        #expect(try await Fixtures.storedIDs(server.dataDirectory).isEmpty)
    }

    @Test("serve refuses a CORS origin that no browser could send and a write key that no client could present, naming the flag and why")
    func unmatchableOriginsAndKeys() async throws {
        var cases: [([String], String)] = [
            (["--cors-origin", "https://app.example.com/"], "--cors-origin 'https://app.example.com/' ends with a slash"),
            (["--cors-origin", ""], "--cors-origin '' is empty"),
            (["--cors-origin", "app.example.com"], "has no scheme"),
            (["--cors-origin", "https://app.example.com/play"], "has a path or query (/play)"),
            (["--cors-origin", "https://app.example.com:443"], "drop :443"),
            (["--write-key", ""], "--write-key number 1 (of 1 given) must be non-empty printable ASCII"),
            (["--write-key", "good", "--write-key", "two words"], "--write-key number 2 (of 2 given) must be"),
        ]
        let directory = try TemporaryDirectory(prefix: "e2e")
        let data = directory.appending("never-made").path
        // A key file: unreadable, empty of keys, or with a bad line (named by number, not shown).
        let comments = directory.appending("comments-only").path, bad = directory.appending("bad-line").path
        try "# no keys yet\n\n".write(toFile: comments, atomically: true, encoding: .utf8)
        try "good-key\nsecret with spaces\n".write(toFile: bad, atomically: true, encoding: .utf8)
        cases += [
            (["--write-key-file", directory.appending("missing").path], "--write-key-file \(directory.appending("missing").path) cannot be read"),
            (["--write-key-file", comments], "--write-key-file \(comments) holds no key"),
            (["--write-key-file", bad], "--write-key-file \(bad), line 2: a key must be printable ASCII without spaces"),
        ]
        for (arguments, expected) in cases {
            let result = try await runCommand(TestEnvironment.playheadExecutable, ["serve", "--port", "0", "--data-dir", data] + arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
            #expect(!result.stderr.contains("two words"), "a key is not shown: \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: data), "refused before anything is made")
        // What browsers do send is taken: two origins, a port, a custom scheme, null and *.
        let (server, _) = try await Fixtures.server(
            ["--cors-origin", "https://app.example.com", "--cors-origin", "http://localhost:8080", "--cors-origin", "capacitor://localhost", "--cors-origin", "null"]
        )
        // Taken, with a warning each: null (any sandboxed page sends it), a key file others can
        // read, a trusted proxy range that holds every address.
        let keys = directory.appending("keys-0644").path
        try "k-0644\n".write(toFile: keys, atomically: true, encoding: .utf8)
        chmod(keys, 0o644)
        let (unsafe, _) = try await Fixtures.server(
            ["--cors-origin", "null", "--write-key-file", keys, "--fill-ip-address", "--trusted-proxy", "10.0.0.0/8,0.0.0.0/0"]
        )
        #expect(await unsafe.stop() == 0)
        for warning in ["--cors-origin null lets any site send events", "can be read by every user (mode 644): chmod 600 it", "--trusted-proxy 10.0.0.0/8,0.0.0.0/0 trusts every IPv4 client"] {
            #expect(unsafe.process.stderr.contains(warning), "\(warning): \(unsafe.process.stderr)")
        }
        // One that others can write (and so add a key to) too.
        chmod(keys, 0o622)
        let (writable, _) = try await Fixtures.server(["--write-key-file", keys])
        #expect(await writable.stop() == 0)
        #expect(writable.process.stderr.contains("can be written by users other than its owner, who could add keys of their own (mode 622): chmod 600 it"), "\(writable.process.stderr)")
        chmod(keys, 0o640)
        let (safe, _) = try await Fixtures.server(["--write-key-file", keys])
        #expect(await safe.stop() == 0)
        #expect(!safe.process.stderr.contains("every user") && !safe.process.stderr.contains("can be written"), "\(safe.process.stderr)")
        let response = try await TestHTTP.request(
            "\(server.baseURL)/v1/events", method: .OPTIONS, headers: [("Origin", "http://localhost:8080"), ("Access-Control-Request-Method", "POST")]
        )
        #expect(response.status == 204)
        #expect(await server.stop() == 0)
    }

    @Test("401 without a valid write key; bearer header and query parameter both work")
    func writeKeys() async throws {
        let (server, _) = try await Fixtures.server(["--write-key", "k-secret"])
        let body = Fixtures.json(Fixtures.event("w1"))
        let missing = try await TestHTTP.postEvents(server, body)
        #expect(missing.status == 401)
        #expect(missing.headers.first(name: "www-authenticate") != nil)
        let wrong = try await TestHTTP.postEvents(server, body, headers: [("Authorization", "Bearer nope")])
        #expect(wrong.status == 401)
        let bearer = try await TestHTTP.postEvents(server, body, headers: [("Authorization", "Bearer k-secret")])
        #expect(bearer.status == 202)
        let beacon = try await TestHTTP.postEvents(server, body, contentType: "text/plain", query: "?write_key=k-secret")
        #expect(beacon.status == 202)
        // The header decides when both are sent: a good key in the query does not save a bad header.
        let both = try await TestHTTP.postEvents(server, body, headers: [("Authorization", "Bearer nope")], query: "?write_key=k-secret")
        #expect(both.status == 401)
        let headerWins = try await TestHTTP.postEvents(server, body, headers: [("Authorization", "Bearer k-secret")], query: "?write_key=nope")
        #expect(headerWins.status == 202)
        // Keys from a file (out of `ps`), with comments and CRLF lines, taken with --write-key.
        let directory = try TemporaryDirectory(prefix: "keys")
        let file = directory.appending("keys").path
        try "# rotated 2026-12\r\nfile-key-1\r\n\n  file-key-2  \n".write(toFile: file, atomically: true, encoding: .utf8)
        let (fromFile, _) = try await Fixtures.server(["--write-key-file", file, "--write-key", "flag-key"])
        for (key, status) in [("file-key-1", 202), ("file-key-2", 202), ("flag-key", 202), ("# rotated", 401), ("nope", 401)] {
            let answer = try await TestHTTP.postEvents(fromFile, body, headers: [("Authorization", "Bearer \(key)")])
            #expect(answer.status == status, "\(key)")
        }
        #expect(!fromFile.process.stderr.contains("file-key-1"))
        // From a pipe (`--write-key-file <(vault kv get …)`, a FIFO), which gives its bytes once:
        // it was refused as "not UTF-8 text", and a second read would have found no key.
        let fifo = directory.appending("keys.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        async let writer = runCommand("/bin/bash", ["-c", "printf 'pipe-key\\n' > \(fifo)"], timeout: .seconds(60))
        let (fromPipe, _) = try await Fixtures.server(["--write-key-file", fifo])
        for (key, status) in [("pipe-key", 202), ("nope", 401)] {
            let answer = try await TestHTTP.postEvents(fromPipe, body, headers: [("Authorization", "Bearer \(key)")])
            #expect(answer.status == status, "\(key)")
        }
        #expect(try await writer.status == 0)
        withExtendedLifetime(directory) {}
    }

    @Test("--fill-ip-address stores the client's address in events whose ip_address is empty: the peer, or behind --trusted-proxy the address in X-Forwarded-For; off, an empty ip_address stays empty")
    func fillIPAddress() async throws {
        func stored(_ server: PlayheadServer) async throws -> [String: String] {
            var byID: [String: String] = [:]
            for record in try await Fixtures.dump(server.dataDirectory) {
                if let id = record["event_id"] as? String { byID[id] = record["ip_address"] as? String }
            }
            return byID
        }
        let forged = [("X-Forwarded-For", "203.0.113.9")]
        // Off (the default): stored as sent, X-Forwarded-For ignored.
        let (off, _) = try await Fixtures.server()
        let plain = try await TestHTTP.postEvents(off, Fixtures.json(Fixtures.event("off", ["ip_address": ""])), headers: forged)
        #expect(plain.status == 202)
        #expect(try await stored(off) == ["off": ""])
        // On, no trusted proxy: the peer (this test, on loopback), whatever X-Forwarded-For says;
        // through every body path (JSON array, a beacon's text/plain, gzip).
        let (peer, directory) = try await Fixtures.server(["--fill-ip-address"])
        let array = Fixtures.json([Fixtures.event("empty", ["ip_address": ""]), Fixtures.event("sent", ["ip_address": "198.51.100.1"])])
        #expect(try await TestHTTP.postEvents(peer, array, headers: forged).status == 202)
        let beacon = try await TestHTTP.postEvents(peer, Fixtures.json(Fixtures.event("beacon", ["ip_address": ""])), contentType: "text/plain;charset=UTF-8")
        #expect(beacon.status == 202)
        let compressed = try await Self.gzip(Array(Fixtures.json(Fixtures.event("gzip", ["ip_address": ""])).utf8), directory: directory)
        #expect(try await TestHTTP.postEvents(peer, compressed, headers: [("Content-Encoding", "gzip")]).status == 202)
        #expect(try await stored(peer) == ["empty": "127.0.0.1", "sent": "198.51.100.1", "beacon": "127.0.0.1", "gzip": "127.0.0.1"])
        // Behind trusted proxies, with the IP policy applied after: the nearest untrusted address.
        // (A blank element in the list is none: `10.0.0.0/8, ` was refused as "'' is not an IP address".)
        let (proxied, _) = try await Fixtures.server(["--fill-ip-address", "--trusted-proxy", "127.0.0.0/8,10.0.0.0/8, ", "--ip-policy", "truncate"])
        let chain = [("X-Forwarded-For", "192.0.2.1, 203.0.113.9"), ("X-Forwarded-For", "10.1.2.3")]
        #expect(try await TestHTTP.postEvents(proxied, Fixtures.json(Fixtures.event("chain", ["ip_address": ""])), headers: chain).status == 202)
        #expect(try await TestHTTP.postEvents(proxied, Fixtures.json(Fixtures.event("none", ["ip_address": ""]))).status == 202)
        #expect(try await stored(proxied) == ["chain": "203.0.113.0", "none": "127.0.0.0"])
        // RFC 7239's Forwarded, when the proxies write that header; X-Forwarded-For is then not read.
        let (rfc7239, _) = try await Fixtures.server(["--fill-ip-address", "--trusted-proxy", "127.0.0.0/8,10.0.0.0/8", "--forwarded-header", "Forwarded"])
        let forwarded = [("Forwarded", #"for=192.0.2.1, for="[2001:db8::7]:4711";proto=https"#), ("Forwarded", "for=10.1.2.3;by=10.0.0.1"), ("X-Forwarded-For", "198.51.100.99")]
        #expect(try await TestHTTP.postEvents(rfc7239, Fixtures.json(Fixtures.event("rfc7239", ["ip_address": ""])), headers: forwarded).status == 202)
        #expect(try await stored(rfc7239) == ["rfc7239": "2001:db8::7"])
        // Refused at start, naming the flag and why.
        for (arguments, expected) in [
            (["--forwarded-header", "Forwarded"], "--forwarded-header is only read by --fill-ip-address, which is off"),
            (["--fill-ip-address", "--forwarded-header", "X-Real-IP"], "--forwarded-header is read only from a --trusted-proxy peer, and none is given"),
            (["--fill-ip-address", "--trusted-proxy", "10.0.0.0/8", "--forwarded-header", "X Real IP"], "--forwarded-header: 'X Real IP' is not a header name"),
            (["--trusted-proxy", "10.0.0.0/8"], "--trusted-proxy is only read by --fill-ip-address, which is off"),
            (["--fill-ip-address", "--trusted-proxy", "10.0.0.1/8"], "--trusted-proxy: '10.0.0.1/8' has bits set past its /8: did you mean 10.0.0.0/8?"),
            (["--fill-ip-address", "--trusted-proxy", "10.0.0.0/8, proxy.internal"], "--trusted-proxy: 'proxy.internal' is not an IP address or a CIDR range"),
            // S3 flags on a folder lake (taken silently until 2026-12-06, a review).
            (["--s3-endpoint", "http://127.0.0.1:8333"], "--s3-endpoint is only read for an s3:// lake, and --lake is the default folder"),
            (["--lake", "file:/tmp/lake", "--s3-region", "eu-west-1"], "--s3-region is only read for an s3:// lake, and --lake is file:/tmp/lake"),
        ] {
            let result = try await runCommand(TestEnvironment.playheadExecutable, ["serve", "--port", "0", "--data-dir", directory.appending("refused").path] + arguments)
            #expect(result.status != 0 && result.stderr.contains(expected), "\(arguments): \(result.stderr)")
        }
    }

    /// Sends `body`'s head on each of `connections` connections, then (300 ms later) the bodies, one
    /// after another; the answers, in that order.
    static func headsThenBodies(port: Int, body: String, connections count: Int) async throws -> [String] {
        var connections: [RawConnection] = []
        for _ in 0..<count {
            let connection = try RawConnection(port: port)
            _ = connection.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
            connections.append(connection)
        }
        try await Task.sleep(for: .milliseconds(300))
        var answers: [String] = []
        for connection in connections {
            _ = connection.send(body)
            answers.append(String(decoding: await connection.readSome(timeout: .seconds(10)), as: UTF8.self))
        }
        return answers
    }

    @Test("429 past the rate limit, with a Retry-After of the seconds until the bucket refills (20 events taken at 5/s: 3 s)")
    func rateLimit() async throws {
        let (server, _) = try await Fixtures.server(["--rate-limit", "5"])
        let body = Fixtures.json((0..<20).map { Fixtures.event("rl-\($0)") })
        let started = ContinuousClock.now
        let first = try await TestHTTP.postEvents(server, body)
        #expect(first.status == 202)
        let second = try await TestHTTP.postEvents(server, body)
        let took = ContinuousClock.now - started
        #expect(second.status == 429)
        // 5 - 20 = -15 tokens: 3 s at 5/s (it said 1 s whatever the debt). The bucket refills from
        // the first request on: when the two requests took a second or more (a loaded machine), 2 s.
        let expected = took < .milliseconds(900) ? ["3"] : ["2", "3"]
        let retryAfter = second.headers.first(name: "retry-after") ?? ""
        #expect(expected.contains(retryAfter) && second.text.contains("retry in \(retryAfter) s"), "\(took): \(second.headers) \(second.text)")
        // Refused from the head: a client that waits for `100 Continue` is told 429 before it sends
        // its body (it was told to go on, and then refused, until 2026-12-06).
        let connection = try RawConnection(port: server.port)
        connection.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n")
        let early = String(decoding: await connection.readSome(timeout: .seconds(10)), as: UTF8.self)
        #expect(early.hasPrefix("HTTP/1.1 429"), "\(early.prefix(200))")

        // Rejected events are taken from the bucket too: a flood of invalid events went past the
        // limit (a review: 262,000 rejections in 15 s under --rate-limit 50).
        let (strict, _) = try await Fixtures.server(["--rate-limit", "5"])
        let invalid = Fixtures.json((0..<20).map { Fixtures.event("bad-\($0)", ["duration_seconds": -1]) })
        #expect(try await TestHTTP.postEvents(strict, invalid).status == 400)
        #expect(try await TestHTTP.postEvents(strict, invalid).status == 429)
        // So is a gzip body that cannot be read: one rejection, as a malformed JSON body (corrupt
        // ones went past the limit, each stored in the log, an outside review).
        // (0.2 events/s: the bucket holds 0.2, a corrupt body takes it to -0.8, 4 s to refill, so
        // the next is refused however slowly a loaded machine answers.)
        let (gzipLimited, _) = try await Fixtures.server(["--rate-limit", "0.2"])
        let notGzip = Array(Fixtures.json(Fixtures.event("ng")).utf8)
        let corrupt = try await TestHTTP.postEvents(gzipLimited, notGzip, headers: [("Content-Encoding", "gzip")])
        #expect(corrupt.status == 400 && corrupt.text.contains("invalid_gzip"), "\(corrupt.text)")
        // What is wrong, in words: a body sent as it is (zlib said "incorrect header check at byte 2").
        #expect(corrupt.text.contains("it starts with the bytes 7b 22, not gzip's 1f 8b (sent uncompressed with Content-Encoding: gzip?)"), "\(corrupt.text)")
        let next = try await TestHTTP.postEvents(gzipLimited, notGzip, headers: [("Content-Encoding", "gzip")])
        #expect(next.status == 429, "\(next.status) \(next.text)")
        // Heads sent at once are all let in while the bucket holds a token, but a body is stored
        // only if the bucket holds its events or is full: 20 connections whose bodies followed
        // their heads carried 2,000 events past --rate-limit 10 in under a second (an outside
        // review), and 5,500 with 500-event bodies after a first fix. At 2/s with 10-event bodies,
        // one is stored (the bucket full), the others refused, before or after their bodies.
        let (bursty, _) = try await Fixtures.server(["--rate-limit", "2"])
        let ten = Fixtures.json((0..<10).map { Fixtures.event("burst-\($0)") })
        let answers = try await Self.headsThenBodies(port: bursty.port, body: ten, connections: 20).map { String($0.prefix(12)) }
        let stored = answers.filter { $0 == "HTTP/1.1 202" }.count
        #expect(stored >= 1 && stored <= 2 && answers.filter { $0 == "HTTP/1.1 429" }.count == 20 - stored, "\(answers)")
        // Bodies larger than the bucket: the same, one request at most (the bucket was full).
        let (large, _) = try await Fixtures.server(["--rate-limit", "10"])
        let big = Fixtures.json((0..<100).map { Fixtures.event("big-\($0)") })
        let bigAnswers = try await Self.headsThenBodies(port: large.port, body: big, connections: 10)
        #expect(bigAnswers.filter { $0.hasPrefix("HTTP/1.1 202") }.count == 1, "\(bigAnswers.map { $0.prefix(12) })")
        // One refused after its body was read says when the bucket will have room.
        #expect(bigAnswers.contains { $0.hasPrefix("HTTP/1.1 429") && $0.contains("retry in") }, "\(bigAnswers.map { $0.prefix(12) })")
        // Every 429 closes its connection, refused from the head or after the body (the second kept
        // it open: a fuzz-http seed, 2026-12-07).
        let refusals = bigAnswers.filter { $0.hasPrefix("HTTP/1.1 429") }
        #expect(!refusals.isEmpty && refusals.allSatisfy { $0.lowercased().contains("\r\nconnection: close\r\n") }, "\(refusals)")
        // A rate below one event a second is said as given (it said "at most 0 events per second").
        let (slow, _) = try await Fixtures.server(["--rate-limit", "0.25"])
        #expect(try await TestHTTP.postEvents(slow, Fixtures.json(Fixtures.event("half"))).status == 202)
        let half = try await TestHTTP.postEvents(slow, Fixtures.json(Fixtures.event("half-2")))
        #expect(half.status == 429 && half.text.contains("the server takes at most 0.25 events per second"), "\(half.text)")
    }

    @Test("--max-in-flight-bytes bounds the request bytes being received at once: past it, 503 overloaded with Retry-After; and it may not be below --max-body-bytes")
    func inFlightBytesFlag() async throws {
        let (server, _) = try await Fixtures.server(["--max-body-bytes", "600000", "--max-in-flight-bytes", "1000000"])
        let head = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 600000\r\n\r\n"
        let first = try RawConnection(port: server.port)
        #expect(first.send(head) && first.send([UInt8](repeating: UInt8(ascii: " "), count: 500_000)))
        // Once the server holds the first body's bytes (a fixed 300 ms could come before it read
        // them on a loaded machine, and then the two bodies' bytes were counted interleaved).
        for _ in 0..<300 where await TestHTTP.metricTotal(server, #"playhead_ingest_in_flight_bytes{stage="receiving"}"#) < 500_000 {
            try await Task.sleep(for: .milliseconds(100))
        }
        let second = try RawConnection(port: server.port)
        #expect(second.send(head) && second.send([UInt8](repeating: UInt8(ascii: " "), count: 600_000)))
        let answer = String(decoding: await second.readSome(timeout: .seconds(10)), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 503") && answer.contains("budget of 1000000 bytes for request bodies being received is used up") && answer.lowercased().contains("retry-after: 1"), "\(answer.prefix(400))")
        _ = first
        #expect(try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("after-in-flight"))).status == 202)

        // Bodies that no route reads are dropped as they come, not held in the budget: an
        // OPTIONS /v1/events or a GET /healthz with a large body, from a client with no write key,
        // used it up, and every POST got 503 overloaded (an outside review).
        let (quiet, _) = try await Fixtures.server(["--max-body-bytes", "600000", "--max-in-flight-bytes", "1000000"])
        var holders: [RawConnection] = []
        // 999,900 bytes together, of a budget of 1,000,000: held, they left no room for a POST.
        for (request, length, sent) in [("OPTIONS /v1/events", 700_000, 590_000), ("GET /healthz", 600_000, 409_900)] {
            let holder = try RawConnection(port: quiet.port)
            #expect(holder.send("\(request) HTTP/1.1\r\nHost: x\r\nContent-Length: \(length)\r\n\r\n") && holder.send([UInt8](repeating: UInt8(ascii: "a"), count: sent)))
            holders.append(holder)
            try await Task.sleep(for: .milliseconds(300))
        }
        try await Task.sleep(for: .milliseconds(1500))  // the gauge is sampled every second
        #expect(await TestHTTP.metricTotal(quiet, #"playhead_ingest_in_flight_bytes{stage="receiving"}"#) < 100_000)
        let through = try await TestHTTP.postEvents(quiet, Fixtures.json(Fixtures.event("past-the-holders")))
        #expect(through.status == 202, "\(through.status) \(through.text)")
        // Past --max-body-bytes (the first announced 700,000) such a body is refused as any is.
        #expect(holders[0].send([UInt8](repeating: UInt8(ascii: "a"), count: 20_000)))
        let tooLarge = String(decoding: await holders[0].readSome(timeout: .seconds(10)), as: UTF8.self)
        #expect(tooLarge.hasPrefix("HTTP/1.1 413"), "\(tooLarge.prefix(300))")
        holders.removeAll()

        // A chunked body cut by bytes that are not HTTP: its bytes leave the budget with the 400,
        // while the connection lingers (they stayed until it closed, and a POST got 503: a review).
        let (parsed, _) = try await Fixtures.server(["--max-body-bytes", "600000", "--max-in-flight-bytes", "1000000"])
        let broken = try RawConnection(port: parsed.port)
        #expect(broken.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\(String(500_000, radix: 16))\r\n"))
        #expect(broken.send([UInt8](repeating: UInt8(ascii: " "), count: 500_000) + Array("\r\nzz\r\n".utf8)))
        let malformed = String(decoding: await broken.readSome(timeout: .seconds(10)), as: UTF8.self)
        #expect(malformed.hasPrefix("HTTP/1.1 400"), "\(malformed.prefix(300))")
        #expect(broken.send("x"))  // still open: the close lingers
        let afterBroken = try await TestHTTP.postEvents(parsed, Array(repeating: UInt8(ascii: " "), count: 590_000) + Array(Fixtures.json(Fixtures.event("after-broken")).utf8))
        #expect(afterBroken.status == 202, "\(afterBroken.status) \(afterBroken.text.prefix(300))")
        _ = broken

        let refused = try await runCommand(
            TestEnvironment.playheadExecutable, ["serve", "--max-body-bytes", "600000", "--max-in-flight-bytes", "500000"], timeout: .seconds(30))
        #expect(refused.status == 64 && refused.stderr.contains("--max-in-flight-bytes (500000) must be at least --max-body-bytes (600000)"), "\(refused.stderr)")
    }

    @Test("503 with Retry-After when the log refuses appends (disk below its free-space floor)")
    func logFull() async throws {
        let (server, directory) = try await Fixtures.server(["--log-min-free-bytes", "1000000000000000"])
        let response = try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("full-1")))
        #expect(response.status == 503, "\(response.text)")
        // The client learns why, not where the server keeps its data; the server's log says where.
        #expect(response.text.contains("the log's file system is below 1000000000000000 free bytes") && !response.text.contains(directory.url.path), "\(response.text)")
        #expect(server.process.stderr.contains("the file system of \(directory.url.path)"), "\(server.process.stderr.suffix(2000))")
        #expect(response.headers.first(name: "retry-after") != nil)
        let ready = try await TestHTTP.request("\(server.baseURL)/readyz")
        #expect(ready.status == 503)
        let health = try await TestHTTP.request("\(server.baseURL)/healthz")
        #expect(health.status == 200)
        // Nothing was stored, so nothing counts as accepted (or rejected); the failure does.
        let mixed = try await TestHTTP.postEvents(server, Fixtures.json([Fixtures.event("full-2"), ["event_id": "bad"]]))
        #expect(mixed.status == 503, "\(mixed.text)")
        let metrics = try await TestHTTP.request("\(server.baseURL)/metrics").text
        #expect(TestHTTP.metricTotal(metrics, "playhead_events_accepted_total") == 0, "\(metrics)")
        #expect(TestHTTP.metricTotal(metrics, #"playhead_events_rejected_total{reason="missing_field"}"#) == 0, "\(metrics)")
        // One failed append for each request: the second one's rejected event is appended only once
        // its accepted one is stored, so after that failed it is not tried.
        #expect(TestHTTP.metricTotal(metrics, #"playhead_log_append_failures_total{code="full"}"#) == 2, "\(metrics)")
    }

    @Test("Metrics from the start: every rejection and refusal reason and append failure code at 0; the lake's last flush at the writer's start; the log's disk in readers too; unparseable requests counted")
    func metricsFromTheStart() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }
        var metrics = try await TestHTTP.request("\(server.baseURL)/metrics").text
        for reason in ["missing_field", "invalid_type", "malformed_json", "invalid_gzip", "duplicate_field"] {
            #expect(metrics.contains(#"playhead_events_rejected_total{reason="\#(reason)"} 0"#), "\(reason)")
        }
        for reason in ["rate_limited", "overloaded", "body_too_large"] {
            #expect(metrics.contains(#"playhead_ingest_requests_refused_total{reason="\#(reason)"} 0"#), "\(reason)")
        }
        #expect(metrics.contains(#"playhead_log_append_failures_total{code="full"} 0"#))
        for consumer in ["lake", "metrics"] {
            #expect(metrics.contains(#"playhead_log_damaged_records_total{consumer="\#(consumer)"} 0"#), "\(consumer)")
            // The embedded log's one partition, held by each group's consumer once it has opened the
            // log. The consumers open beside the HTTP edge, so a first scrape may come before them
            // (the series is not there yet; CI saw it once).
            let series = #"playhead_consumer_partitions_assigned{consumer="\#(consumer)"}"#
            var held = TestHTTP.metricTotal(metrics, series)
            for _ in 0..<100 where held != 1 {
                try await Task.sleep(for: .milliseconds(100))
                held = await TestHTTP.metricTotal(server, series)
            }
            #expect(held == 1, "\(consumer)")
        }
        // Every family served is in the contract's list of names (docs/metrics-names.txt), with its type.
        let listed = try String(contentsOf: TestEnvironment.repoRoot.appendingPathComponent("docs/metrics-names.txt"), encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.split(separator: " ").prefix(2).joined(separator: " ") }
        let served = metrics.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { String($0.dropFirst("# TYPE ".count)) }
        #expect(served.count > 20 && Set(served).isSubset(of: Set(listed)), "not in docs/metrics-names.txt: \(Set(served).subtracting(listed).sorted())")
        // And with the labels listed there: an event from 2025 is counted outside the live window,
        // by `reason` (a family listed without its label once, an outside review).
        #expect(try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("labels-late"))).status == 202)
        var outside = 0.0
        for _ in 0..<100 where outside < 1 {
            try await Task.sleep(for: .milliseconds(100))
            outside = await TestHTTP.metricTotal(server, "playhead_content_events_outside_live_window_total")
        }
        #expect(outside == 1)
        var labelsListed: [String: Set<String>] = [:]
        for line in try String(contentsOf: TestEnvironment.repoRoot.appendingPathComponent("docs/metrics-names.txt"), encoding: .utf8)
            .split(separator: "\n") where !line.hasPrefix("#")
        {
            let fields = line.split(separator: " ")
            labelsListed[String(fields[0])] = fields.count > 2 ? Set(fields[2].split(separator: ",").map(String.init)) : []
        }
        let samples = try await TestHTTP.request("\(server.baseURL)/metrics").text.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
        for sample in samples {
            let name = String(sample.prefix { $0 != "{" && $0 != " " })
            let family = ["_bucket", "_sum", "_count"].first { name.hasSuffix($0) && labelsListed[String(name.dropLast($0.count))] != nil }
                .map { String(name.dropLast($0.count)) } ?? name
            guard let listedLabels = labelsListed[family] else { continue }
            var used = Set<String>()
            if let open = sample.firstIndex(of: "{"), let close = sample.lastIndex(of: "}") {
                for pair in sample[sample.index(after: open)..<close].split(separator: ",") {
                    if let equals = pair.firstIndex(of: "=") { used.insert(String(pair[..<equals])) }
                }
            }
            used.remove("le")
            #expect(used == listedLabels, "\(family) is served with labels \(used.sorted()), docs/metrics-names.txt lists \(listedLabels.sorted())")
        }
        let started = TestHTTP.metricTotal(metrics, "playhead_lake_last_flush_timestamp_seconds")
        #expect(abs(started - Date().timeIntervalSince1970) < 120, "\(started)")
        // A request that is not HTTP is answered and counted.
        let raw = try RawConnection(port: server.port)
        #expect(raw.send("GARBAGE\r\n\r\n"))
        let answer = String(decoding: await raw.readAll(timeout: .seconds(10)), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer)")
        metrics = try await TestHTTP.request("\(server.baseURL)/metrics").text
        #expect(metrics.contains(#"playhead_http_server_request_duration_seconds_count{route="other",method="unknown",status="400"} 1"#), "\(metrics)")
        // A body half sent is counted as arriving (sampled every second), and no longer once it is dropped.
        #expect(TestHTTP.metricTotal(metrics, "playhead_ingest_in_flight_bytes") == 0, "\(metrics)")
        let partial = try RawConnection(port: server.port)
        #expect(partial.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + String(repeating: " ", count: 60_000)))
        func inFlight(_ stage: String) async throws -> Double {
            let text = try await TestHTTP.request("\(server.baseURL)/metrics").text
            return text.split(separator: "\n").first { $0.hasPrefix(#"playhead_ingest_in_flight_bytes{stage="\#(stage)"}"#) }
                .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? -1
        }
        var arriving = 0.0
        for _ in 0..<300 where arriving < 60_000 {
            try await Task.sleep(for: .milliseconds(100))
            arriving = try await inFlight("receiving")
        }
        #expect(arriving >= 60_000, "\(arriving)")
        #expect(try await inFlight("processing") == 0)
        partial.shutdownWrite()  // the body ends short: answered 400, and its bytes given back
        for _ in 0..<300 where arriving > 0 {
            try await Task.sleep(for: .milliseconds(100))
            arriving = try await inFlight("receiving")
        }
        #expect(arriving == 0)
        #expect(await server.stop() == 0)

        // A reader beside the writer (`observe`) reports the log's disk too.
        let observer = try await PlayheadServer(command: "observe", dataDirectory: server.dataDirectory)
        let observed = try await TestHTTP.request("\(observer.baseURL)/metrics").text
        #expect(TestHTTP.metricTotal(observed, "playhead_log_disk_capacity_bytes") > 0, "\(observed)")
        // It takes no events: no edge series (they stood at 0 there for good).
        for family in ["playhead_events_rejected_total", "playhead_ingest_requests_refused_total", "playhead_ingest_in_flight_bytes"] {
            #expect(!observed.contains(family), "\(family): \(observed)")
        }
        #expect(await observer.stop() == 0)
        // A log written by a release before 2026-12-03 has no id: the reader says so, not that no
        // log was written (beside its records).
        try FileManager.default.removeItem(atPath: "\(server.dataDirectory)/log/id")
        let upgraded = try await PlayheadServer(command: "observe", dataDirectory: server.dataDirectory)
        let waiting = try await TestHTTP.request("\(upgraded.baseURL)/readyz")
        #expect(waiting.status == 503 && waiting.text.contains("holds records but has no id file"), "\(waiting.status) \(waiting.text)")
        #expect(await upgraded.stop() == 0)
    }

    @Test("CORS: preflight for allowed and other origins, headers on answers")
    func cors() async throws {
        let (server, _) = try await Fixtures.server(["--cors-origin", "https://player.example"])
        let preflight = try await TestHTTP.request(
            "\(server.baseURL)/v1/events", method: .OPTIONS,
            headers: [("Origin", "https://player.example"), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "content-type")]
        )
        #expect(preflight.status == 204)
        // Once each: a browser refuses a preflight whose Access-Control-Allow-Origin is repeated.
        #expect(preflight.headers["access-control-allow-origin"] == ["https://player.example"])
        #expect(preflight.headers["access-control-allow-credentials"] == ["true"])
        #expect(preflight.headers["vary"] == ["Origin"])
        #expect(preflight.headers.first(name: "access-control-allow-methods") == "POST, OPTIONS")
        // Headers a page's tracing tools add are allowed (they got 403, which Chrome reports only as
        // a preflight without an ok status); a name that is not a token is left out, and the browser names it.
        let traced = try await TestHTTP.request(
            "\(server.baseURL)/v1/events", method: .OPTIONS,
            headers: [("Origin", "https://player.example"), ("Access-Control-Request-Method", "POST"),
                      ("Access-Control-Request-Headers", "content-type,traceparent, X-Request-ID,bad header")]
        )
        #expect(traced.status == 204, "\(traced.status) \(traced.text)")
        #expect(traced.headers.first(name: "access-control-allow-headers") == "authorization, content-encoding, content-type, traceparent, x-request-id, x-requested-with", "\(traced.headers)")
        // A mistyped path answers 404 with the CORS headers, so the page sees the status, not a CORS error.
        let typo = try await TestHTTP.request(
            "\(server.baseURL)/v1/event", method: .POST, headers: [("Origin", "https://player.example"), ("Content-Type", "text/plain")],
            body: Array(Fixtures.json(Fixtures.event("c-typo")).utf8))
        #expect(typo.status == 404 && typo.headers["access-control-allow-origin"] == ["https://player.example"], "\(typo.status) \(typo.headers)")
        // And a preflight for a path the server does not serve is answered as that of /v1/events, so
        // that a preflighted fetch (JSON, a write key) gets as far as its 404 (it got a 404 to the
        // preflight, which the browser reports as a CORS error); another origin's still gets 403.
        for (origin, status) in [("https://player.example", 204), ("https://evil.example", 403)] {
            let typoPreflight = try await TestHTTP.request(
                "\(server.baseURL)//v1/events", method: .OPTIONS,
                headers: [("Origin", origin), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "content-type, authorization")])
            #expect(typoPreflight.status == status, "\(origin): \(typoPreflight.status) \(typoPreflight.text)")
            #expect(typoPreflight.headers["access-control-allow-origin"] == (status == 204 ? [origin] : []), "\(origin): \(typoPreflight.headers)")
        }
        let denied = try await TestHTTP.request(
            "\(server.baseURL)/v1/events", method: .OPTIONS,
            headers: [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")]
        )
        #expect(denied.status == 403)
        let post = try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("c1")), headers: [("Origin", "https://player.example")])
        #expect(post.headers["access-control-allow-origin"] == ["https://player.example"])
        #expect(post.headers["access-control-allow-credentials"] == ["true"])
        // A page of another origin needs no preflight for a text/plain beacon: refused by its Origin,
        // from the head (nothing stored); a client that sends no Origin is not affected.
        let other = try await TestHTTP.postEvents(
            server, Fixtures.json(Fixtures.event("c-evil")), contentType: "text/plain", headers: [("Origin", "https://evil.example")])
        #expect(other.status == 403 && other.text.contains("origin_not_allowed"), "\(other.status) \(other.text)")
        #expect(!other.headers.contains(name: "access-control-allow-origin"))
        let app = try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("c-app")))
        #expect(app.status == 202)
        #expect(try await Fixtures.storedIDs(server.dataDirectory) == ["c1", "c-app"])
        // The live page may not be framed by another site's page, nor cached.
        let page = try await TestHTTP.request("\(server.baseURL)/")
        #expect(page.status == 200 && page.headers.first(name: "x-frame-options") == "DENY", "\(page.headers)")
        #expect(page.headers.first(name: "content-security-policy") == "frame-ancestors 'none'" && page.headers.first(name: "cache-control") == "no-store")
        // The read-only routes carry no CORS headers, even for an allowed origin: a page of another
        // origin cannot read them through a visitor's browser.
        for path in ["/metrics", "/live.json", "/openapi.json", "/healthz"] {
            let read = try await TestHTTP.request("\(server.baseURL)\(path)", headers: [("Origin", "https://player.example")])
            #expect(read.status == 200 && !read.headers.contains(name: "access-control-allow-origin"), "\(path): \(read.headers)")
            #expect(read.headers.first(name: "x-content-type-options") == "nosniff", "\(path): \(read.headers)")
            // Nor does a preflight there: OPTIONS answers with the path's methods, as for any client.
            let options = try await TestHTTP.request(
                "\(server.baseURL)\(path)", method: .OPTIONS,
                headers: [("Origin", "https://player.example"), ("Access-Control-Request-Method", "GET")]
            )
            #expect(options.status == 204 && options.headers.first(name: "allow") == "GET, HEAD, OPTIONS", "\(path): \(options.headers)")
            #expect(!options.headers.contains(name: "access-control-allow-origin"), "\(path): \(options.headers)")
        }
    }

    @Test("CORS in a real browser: fetch (preflighted JSON, NDJSON, gzip, partial acceptance) and sendBeacon (its empty ip_address filled by --fill-ip-address) from an allowed origin; another origin is blocked")
    func corsInBrowser() async throws {
        let pagePort = try TestNetwork.freePort()
        let (server, _) = try await Fixtures.server(["--cors-origin", "http://127.0.0.1:\(pagePort)", "--write-key", "browser-key", "--fill-ip-address"])
        let script = TestEnvironment.repoRoot.appendingPathComponent("Tests/Scripts/browser_ingest_check.py").path
        let result = try await runCommand(
            TestEnvironment.python, [script, String(pagePort), server.baseURL, "browser-key"],
            environment: ["SE_OFFLINE": "true"], timeout: .seconds(90)
        )
        #expect(result.status == 0, "browser_ingest_check.py failed:\n\(result.stdout)\n\(result.stderr.suffix(3000))")
        let report = try #require(
            (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any], "no report: \(result.stdout)"
        )
        // sendBeacon does not wait for its answer: give the server a moment to store it.
        let expected = Set(try #require(report["stored"] as? [String]))
        var stored = Set<String>()
        for _ in 0..<50 {
            stored = Set(try await Fixtures.storedIDs(server.dataDirectory))
            if expected.isSubset(of: stored) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(expected.isSubset(of: stored), "missing from the log: \(expected.subtracting(stored))")
        let notStored = Set(try #require(report["not_stored"] as? [String]))
        #expect(notStored.isDisjoint(with: stored))
        #expect(stored.count == expected.count)
        // The beacon sent ip_address "" (a page cannot know its address): stored as the browser's
        // address as the server saw it; the other events' own addresses are kept.
        let addresses = try await Fixtures.dump(server.dataDirectory).map { ($0["event_id"] as? String ?? "", $0["ip_address"] as? String ?? "") }
        let beacon = try #require(report["beacon_id"] as? String)
        #expect(addresses.filter { $0.0 == beacon }.map(\.1) == ["127.0.0.1"], "\(addresses)")
        #expect(addresses.filter { $0.0 != beacon }.allSatisfy { $0.1 == "203.0.113.7" }, "\(addresses)")
    }

    @Test("health, readiness, OpenAPI (served as docs/openapi.yaml says, valid by openapi-spec-validator, its Event the rules of schemas/*.json), 404, 405 and an unknown method, each as the document says")
    func otherRoutes() async throws {
        let (server, _) = try await Fixtures.server()
        #expect(try await TestHTTP.request("\(server.baseURL)/healthz").status == 200)
        #expect(try await TestHTTP.request("\(server.baseURL)/readyz").status == 200)
        #expect(try await TestHTTP.request("\(server.baseURL)/nope").status == 404)
        let wrongMethod = try await TestHTTP.request("\(server.baseURL)/v1/events")
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.headers.first(name: "allow")?.contains("POST") == true)
        // A route that answers GET answers HEAD too, and says so.
        let postToHealth = try await TestHTTP.request("\(server.baseURL)/healthz", method: .POST)
        #expect(postToHealth.status == 405 && postToHealth.headers.first(name: "allow") == "GET, HEAD, OPTIONS", "\(postToHealth.headers)")
        // OPTIONS * asks about the server (RFC 9110 §9.3.7): every method some path takes. Any other
        // method may not use the asterisk form.
        for (method, status) in [("OPTIONS", "204 No Content"), ("GET", "400 Bad Request")] {
            let raw = try RawConnection(port: server.port)
            #expect(raw.send("\(method) * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
            let answer = String(decoding: await raw.readAll(timeout: .seconds(10)), as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 \(status)\r\n"), "\(answer)")
            if method == "OPTIONS" { #expect(answer.contains("Allow: GET, HEAD, OPTIONS, POST\r\n"), "\(answer)") }
        }
        // What an outside review of the document against the server found. Each exchange asks to
        // keep the connection, and is followed by a second request: a connection the server
        // closes answers only the first.
        func exchange(_ request: String) async throws -> String {
            let raw = try RawConnection(port: server.port)
            #expect(raw.send(request + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
            return String(decoding: await raw.readAll(timeout: .seconds(10)), as: UTF8.self)
        }
        // `GET *` is malformed_http, closed as every other one is (it was kept open).
        let star = try await exchange("GET * HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(star.hasPrefix("HTTP/1.1 400 Bad Request\r\n") && star.contains("Connection: close\r\n"), "\(star)")
        #expect(!star.contains("\"status\":\"ok\""), "the connection stayed open: \(star)")
        // A method the parser knows without a name of its own in NIO is named as sent (it was
        // `RAW(value: "QUERY")`).
        let query405 = try await exchange("QUERY /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        #expect(query405.hasPrefix("HTTP/1.1 405 ") && query405.contains("/healthz does not accept QUERY; allowed: GET, HEAD, OPTIONS"), "\(query405)")
        let query404 = try await exchange("QUERY /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        #expect(query404.hasPrefix("HTTP/1.1 404 ") && query404.contains("no route for QUERY /nope"), "\(query404)")
        // A method the server does not know: 400 malformed_http, closed, and said so; the message
        // was "not a token HTTP allows", which FOO and get are.
        for method in ["FOO", "get"] {
            let unknown = try await exchange("\(method) /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(unknown.hasPrefix("HTTP/1.1 400 Bad Request\r\n") && unknown.contains("\"error\":\"malformed_http\""), "\(unknown)")
            #expect(unknown.contains("methods are case-sensitive") && !unknown.contains("\"status\":\"ok\""), "\(unknown)")
        }
        // A 404 varies with the Origin (an allowed one is echoed), and says so without one too: a
        // shared cache may keep a 404.
        let notFound = try await exchange("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(notFound.hasPrefix("HTTP/1.1 404 ") && notFound.contains("Vary: Origin\r\n"), "\(notFound)")
        // A Content-Length past Int.max (the parser takes up to 2^64 - 1) is refused from the head,
        // without a 100 Continue (it was read up to the limit first).
        let huge = try RawConnection(port: server.port)
        #expect(huge.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 18446744073709551615\r\n\r\n"))
        let hugeAnswer = String(decoding: await huge.readSome(timeout: .seconds(10)), as: UTF8.self)
        #expect(hugeAnswer.hasPrefix("HTTP/1.1 413 ") && hugeAnswer.contains("the body has 18446744073709551615 bytes"), "\(hugeAnswer)")
        let openapi = try await TestHTTP.request("\(server.baseURL)/openapi.json")
        #expect(openapi.status == 200)
        // The served document is docs/openapi.yaml, converted to JSON.
        let file = TestEnvironment.repoRoot.appendingPathComponent("docs/openapi.yaml").path
        let expected = try await runPython(
            "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1])), sort_keys=True))", arguments: [file]
        )
        let served = try JSONSerialization.jsonObject(with: Data(openapi.body))
        let servedCanonical = String(decoding: try JSONSerialization.data(withJSONObject: served, options: [.sortedKeys]), as: UTF8.self)
        let expectedObject = try JSONSerialization.jsonObject(with: Data(expected.utf8))
        let expectedCanonical = String(decoding: try JSONSerialization.data(withJSONObject: expectedObject, options: [.sortedKeys]), as: UTF8.self)
        #expect(servedCanonical == expectedCanonical, "run scripts/gen-openapi after editing docs/openapi.yaml")
        // The document is valid OpenAPI 3.0 by an implementation that is not ours. (scripts/fuzz-http
        // checks the answers against it, with openapi-core.)
        let validated = try await runCommand(TestEnvironment.python, ["-c", """
            import sys
            from openapi_spec_validator import validate
            from openapi_spec_validator.readers import read_from_filename
            validate(read_from_filename(sys.argv[1])[0])
            print("valid")
            """, file])
        #expect(validated.status == 0 && validated.stdout.contains("valid"), "docs/openapi.yaml is not valid OpenAPI: \(validated.stderr.suffix(3000))")
        // Its Event states the rules of schemas/1.0.json and 1.1.json (the decoder's, checked by
        // DifferentialTests), not a copy of its own that drifted: each field's type, lengths,
        // bounds, pattern and values, and what is required.
        let agreement = try await runPython(#"""
            import json, sys, yaml
            root = sys.argv[1]
            event = yaml.safe_load(open(f"{root}/docs/openapi.yaml"))["components"]["schemas"]["Event"]
            schemas = {v: json.load(open(f"{root}/schemas/{v}.json")) for v in ("1.0", "1.1")}
            rules = ("type", "minLength", "maxLength", "minimum", "maximum", "pattern", "items")
            problems = []
            if set(event["required"]) != set(schemas["1.0"]["required"]):
                problems.append(f"required: {sorted(event['required'])} against 1.0's {sorted(schemas['1.0']['required'])}")
            for name in set(schemas["1.0"]["properties"]) | set(schemas["1.1"]["properties"]) | set(event["properties"]):
                mine = event["properties"].get(name)
                if mine is None:
                    problems.append(f"{name}: not in the OpenAPI Event")
                    continue
                for version, schema in schemas.items():
                    theirs = schema["properties"].get(name)
                    if theirs is None:
                        problems.append(f"{name}: not in schemas/{version}.json")
                        continue
                    kinds = theirs["type"] if isinstance(theirs["type"], list) else [theirs["type"]]
                    want = {k: theirs[k] for k in rules if k in theirs and k != "type"} | {"type": [k for k in kinds if k != "null"][0]}
                    have = {k: mine[k] for k in rules if k in mine}
                    # A `not` rule (the timestamp's line feed): its pattern, not its description.
                    if "not" in theirs: want["not"] = theirs["not"].get("pattern")
                    if "not" in mine: have["not"] = mine["not"].get("pattern")
                    if have != want or mine.get("nullable", False) != ("null" in kinds):
                        problems.append(f"{name}: {have} (nullable {mine.get('nullable', False)}) against schemas/{version}.json's {want}")
                values = set().union(*(set(s["properties"][name].get("enum", [])) | ({s["properties"][name]["const"]} if "const" in s["properties"][name] else set()) for s in schemas.values()))
                if values and set(mine.get("enum", [])) != values:
                    problems.append(f"{name}: enum {mine.get('enum')} against the schemas' {sorted(values)}")
            print("\n".join(problems) if problems else "same")
            """#, arguments: [TestEnvironment.repoRoot.path])
        #expect(agreement.trimmingCharacters(in: .whitespacesAndNewlines) == "same", "docs/openapi.yaml's Event and schemas/*.json differ:\n\(agreement)")
    }

    @Test("SIGTERM, SIGINT and SIGHUP (a closed terminal) drain gracefully and exit 0; acknowledged events survive the restart", arguments: [SIGTERM, SIGINT, SIGHUP])
    func gracefulShutdown(signal: Int32) async throws {
        let (server, directory) = try await Fixtures.server()
        let response = try await TestHTTP.postEvents(server, Fixtures.json([Fixtures.event("s1"), Fixtures.event("s2")]))
        #expect(response.status == 202)
        #expect(await server.stop(signal: signal) == 0)
        #expect(server.process.stderr.contains("ingest: stopping"), "\(server.process.stderr.suffix(2000))")
        let restarted = try await PlayheadServer(dataDirectory: server.dataDirectory, arguments: [])
        _ = directory
        let again = try await TestHTTP.postEvents(restarted, Fixtures.json(Fixtures.event("s3")))
        #expect(again.status == 202)
        let ids = try await Fixtures.storedIDs(server.dataDirectory)
        #expect(ids == ["s1", "s2", "s3"])
    }

    @Test("a second signal during a graceful stop (SIGTERM then SIGINT, or SIGINT twice) ends serve at once, saying so (it waited out --shutdown-grace for a stalled client); every acknowledged event is there after a restart", arguments: [(SIGTERM, SIGINT), (SIGINT, SIGINT)])
    func secondSignalStopsAtOnce(first: Int32, second: Int32) async throws {
        let (server, directory) = try await Fixtures.server(["--shutdown-grace", "120"])
        defer { withExtendedLifetime(directory) {} }
        let response = try await TestHTTP.postEvents(server, Fixtures.json([Fixtures.event("two-1"), Fixtures.event("two-2")]))
        #expect(response.status == 202)
        // A client stalled in the middle of a body holds the graceful stop for the whole grace period.
        let stalled = try RawConnection(port: server.port)
        #expect(stalled.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n[{\"event_id\":"))
        for _ in 0..<300 where await TestHTTP.metricTotal(server, #"playhead_ingest_in_flight_bytes{stage="receiving"}"#) == 0 {
            try await Task.sleep(for: .milliseconds(100))
        }
        server.process.signal(first)
        let stopping = try await server.process.waitForOutput(containing: "finishing requests in flight")
        // What it waits for: the stalled client's connection (and the test's own keep-alive one).
        #expect(stopping.contains("connections=") && !stopping.contains("connections=0") && stopping.contains("a second signal stops at once"), "\(stopping)")
        // Still draining: the first signal alone does not end it.
        try await Task.sleep(for: .seconds(1))
        #expect(server.process.isRunning)
        let started = ContinuousClock.now
        server.process.signal(second)
        let status = await server.process.waitForExit(timeout: .seconds(20))
        #expect(status == 128 + second, "\(server.process.stderr.suffix(2000))")
        #expect(started.duration(to: .now) < .seconds(10))
        #expect(server.process.stderr.contains("a second signal: stopping at once"), "\(server.process.stderr.suffix(2000))")
        let restarted = try await PlayheadServer(dataDirectory: server.dataDirectory, arguments: [])
        #expect(try await TestHTTP.postEvents(restarted, Fixtures.json(Fixtures.event("two-3"))).status == 202)
        #expect(try await Fixtures.storedIDs(server.dataDirectory) == ["two-1", "two-2", "two-3"])
        #expect(await restarted.stop() == 0)
    }

    @Test("pipelined requests on one connection are answered in order; an idle connection is closed on SIGTERM")
    func pipeliningAndQuiescing() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        func post(_ body: String, close: Bool = false) -> String {
            rawPost(body: body, extra: close ? "Connection: close\r\n" : "")
        }
        // Three requests in one write: each response waits for an fsync, the next request is already there.
        let connection = try RawConnection(port: server.port)
        let first = Fixtures.json(Fixtures.event("p1"))
        let invalid = Fixtures.json(Fixtures.event("p3", ["event_type": "fly"]))
        #expect(connection.send(post(first) + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + post(invalid, close: true)))
        let answer = String(decoding: await connection.readAll(timeout: .seconds(30)), as: UTF8.self)
        let statuses = statusLines(answer)
        #expect(statuses == ["HTTP/1.1 202", "HTTP/1.1 200", "HTTP/1.1 400"], "\(answer)")
        #expect(answer.contains(#""accepted":1"#) && answer.contains(#""status":"ok""#) && answer.contains("invalid_value"), "\(answer)")

        // Many pipelined events on one connection, sent faster than they are fsynced: all stored, in order.
        let burst = try RawConnection(port: server.port)
        let ids = (0..<50).map { "burst-\($0)" }
        #expect(burst.send(ids.enumerated().map { post(Fixtures.json(Fixtures.event($1)), close: $0 == ids.count - 1) }.joined()))
        let burstAnswer = String(decoding: await burst.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(burstAnswer.components(separatedBy: "HTTP/1.1 202").count - 1 == ids.count, "\(burstAnswer.prefix(400))")

        // An idle keep-alive connection does not hold up a graceful stop: the server closes it.
        let idle = try RawConnection(port: server.port)
        #expect(idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
        let started = ContinuousClock.now
        async let idleAnswer = idle.readAll(timeout: .seconds(60))
        try await Task.sleep(for: .milliseconds(300))
        #expect(await server.stop() == 0)
        let idleText = String(decoding: await idleAnswer, as: UTF8.self)
        #expect(idleText.hasPrefix("HTTP/1.1 200"), "\(idleText)")
        #expect(started.duration(to: .now) < .seconds(30), "the idle connection was closed by the stop, not by a timeout")
        let stored = try await Fixtures.storedIDs(server.dataDirectory)
        #expect(stored == ["p1"] + ids)
    }

    @Test("a client stalled in the middle of a body when the grace period ends: the connection is closed, the stop is clean (no NIO misuse), exit 0", arguments: 0..<3)
    func stalledClientAtShutdown(round: Int) async throws {
        // SWIFTNIO_STRICT turns NIO's "cannot schedule tasks on an EventLoop that has already shut
        // down" from a printed error into a crash; it happened in most stops like this one.
        let directory = try TemporaryDirectory(prefix: "stall")
        let server = try await PlayheadServer(
            dataDirectory: directory.appending("data").path, arguments: ["--shutdown-grace", "1"],
            environment: ["SWIFTNIO_STRICT": "true"], name: "playhead-stall-\(round)"
        )
        let stored = try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("before-stall-\(round)")))
        #expect(stored.status == 202)
        let stalled = try RawConnection(port: server.port)
        #expect(stalled.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n[{\"event_id\":"))
        // Stopped once the server has the body's first bytes (sampled every second; a fixed 200 ms
        // could come before it read them on a loaded machine).
        for _ in 0..<300 where await TestHTTP.metricTotal(server, #"playhead_ingest_in_flight_bytes{stage="receiving"}"#) == 0 {
            try await Task.sleep(for: .milliseconds(100))
        }
        let started = ContinuousClock.now
        #expect(await server.stop() == 0, "\(server.process.stderr.suffix(3000))")
        // A stop held until the request timeout (30 s) would not be within 20 s.
        #expect(started.duration(to: .now) < .seconds(20))
        #expect(!server.process.stderr.contains("Cannot schedule"), "\(server.process.stderr.suffix(3000))")
        #expect(server.process.stdout.contains("closing connections still open") || server.process.stderr.contains("closing connections still open"))
        #expect(try await Fixtures.storedIDs(server.dataDirectory) == ["before-stall-\(round)"])
        withExtendedLifetime(directory) {}
    }

    @Test("serve run by an unprivileged user, as the Kubernetes manifests run it, accepts connections and events (it once reset every connection: TCP_NODELAY was set as SO_DEBUG, which needs CAP_NET_ADMIN)")
    func unprivilegedUser() async throws {
        // Not root: every other test already runs unprivileged.
        guard geteuid() == 0 else { return }
        let directory = try TemporaryDirectory(prefix: "nobody")
        defer { withExtendedLifetime(directory) {} }
        let data = directory.appending("data").path
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        #expect(chmod(directory.path, 0o755) == 0 && chown(data, 65534, 65534) == 0)
        let port = try TestNetwork.freePort()
        let server = try ChildProcess(
            "/usr/bin/setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", "--", TestEnvironment.playheadExecutable,
             "serve", "--data-dir", data, "--port", "\(port)"],
            name: "playhead-nobody", logDirectory: TestEnvironment.artifactsDirectory)
        defer { if server.isRunning { server.kill9() } }
        _ = try await server.waitForOutput(containing: "listening on http://", timeout: .seconds(30))
        let health = try await TestHTTP.request("http://127.0.0.1:\(port)/healthz")
        #expect(health.status == 200)
        let answer = try await TestHTTP.request(
            "http://127.0.0.1:\(port)/v1/events", method: .POST, headers: [("Content-Type", "application/json")],
            body: Array(Fixtures.json(Fixtures.event("as-nobody")).utf8))
        #expect(answer.status == 202, "\(answer.text)")
        // The load generator sets the same option on its connections.
        let load = try await runCommand(
            "/usr/bin/setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", "--", TestEnvironment.playheadExecutable,
             "loadgen", "--port", "\(port)", "--connections", "2", "--duration", "1", "--json"],
            timeout: .seconds(60))
        #expect(load.status == 0 && load.stdout.contains("\"failed_requests\":0"), "\(load.stdout) \(load.stderr.suffix(2000))")
        #expect(!load.stdout.contains("\"acknowledged_events\":0,"), "\(load.stdout)")
        server.signal(SIGTERM)
        #expect(await server.waitForExit(timeout: .seconds(30)) == 0, "\(server.stderr.suffix(2000))")
        #expect(try await Fixtures.storedIDs(data).first == "as-nobody")
    }

    @Test("Expect: 100-continue gets 100 Continue before the body is sent; a body over the limit gets 413 instead")
    func expectContinue() async throws {
        let (server, directory) = try await Fixtures.server(["--max-body-bytes", "4096"])
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        let body = Fixtures.json(Fixtures.event("x1"))
        let connection = try RawConnection(port: server.port)
        #expect(connection.send(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-Continue\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n"
        ))
        let interim = String(decoding: await connection.readSome(timeout: .seconds(10)), as: UTF8.self)
        #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n", "\(interim)")
        #expect(connection.send(body + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        let answer = String(decoding: await connection.readAll(timeout: .seconds(30)), as: UTF8.self)
        let statuses = statusLines(answer)
        #expect(statuses == ["HTTP/1.1 202", "HTTP/1.1 200"], "\(answer)")

        // Too large from its head: the final answer, no 100 Continue.
        let large = try RawConnection(port: server.port)
        #expect(large.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n"))
        let refused = String(decoding: await large.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(refused.hasPrefix("HTTP/1.1 413 "), "\(refused)")
        #expect(!refused.contains("100 Continue"), "\(refused)")
        // So on every path: a GET announcing a body over the limit was told to go on, and the body
        // read and dropped up to the limit (an outside review).
        let largeGet = try RawConnection(port: server.port)
        #expect(largeGet.send("GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 99999999999\r\n\r\n"))
        let refusedGet = String(decoding: await largeGet.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(refusedGet.hasPrefix("HTTP/1.1 413 ") && refusedGet.contains("body_too_large") && !refusedGet.contains("100 Continue"), "\(refusedGet)")

        #expect(await server.stop() == 0)
        let stored = try await Fixtures.storedIDs(server.dataDirectory)
        #expect(stored == ["x1"])
    }

    @Test("empty lines between requests (RFC 9112 §2.2) start no request: an idle connection that got a stray CRLF stays open past --request-timeout, and the next request has its own deadline (it got 408)")
    func strayLineEndsStartNoRequest() async throws {
        let (server, directory) = try await Fixtures.server(["--request-timeout", "1"])
        defer { withExtendedLifetime(directory) {} }
        let connection = try RawConnection(port: server.port)
        #expect(connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
        let first = String(decoding: await connection.readSome(timeout: .seconds(10)), as: UTF8.self)
        #expect(first.hasPrefix("HTTP/1.1 200"), "\(first)")
        #expect(connection.send("\r\n"))
        try await Task.sleep(for: .seconds(3))  // three times --request-timeout
        #expect(connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        let second = String(decoding: await connection.readAll(timeout: .seconds(10)), as: UTF8.self)
        #expect(statusLines(second) == ["HTTP/1.1 200"], "\(second)")
        #expect(await server.stop() == 0)
    }

    @Test("a request that asks for another protocol (Upgrade, CONNECT) gets its answer without switching, and the connection closes: nothing sent after it is held in memory or left waiting")
    func upgradeClosesTheConnection() async throws {
        let (server, directory) = try await Fixtures.server(["--request-timeout", "5"])
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        // A WebSocket handshake with a request pipelined behind it. NIO's parser reads nothing after
        // the handshake: that request was held unanswered until the idle timeout (75 s).
        let handshake = try RawConnection(port: server.port)
        let started = ContinuousClock.now
        #expect(handshake.send(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + rawPost("behind-upgrade")
        ))
        let answer = String(decoding: await handshake.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(statusLines(answer) == ["HTTP/1.1 200"] && answer.contains("Connection: close\r\n"), "\(answer)")
        #expect(started.duration(to: .now) < .seconds(10), "closed after the answer, not by a timeout")

        // llhttp reads Proxy-Connection as Connection.
        let proxy = try RawConnection(port: server.port)
        #expect(proxy.send(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nProxy-Connection: upgrade\r\nUpgrade: websocket\r\n\r\n" + rawPost("behind-proxy-upgrade")
        ))
        let proxyAnswer = String(decoding: await proxy.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(statusLines(proxyAnswer) == ["HTTP/1.1 200"] && proxyAnswer.contains("Connection: close\r\n"), "\(proxyAnswer)")

        // `curl --http2` on http:// asks for h2c on its POST: the events are taken, in HTTP/1.1.
        let body = Fixtures.json(Fixtures.event("h2c-post"))
        let h2c = try RawConnection(port: server.port)
        #expect(h2c.send(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
                + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        ))
        let h2cAnswer = String(decoding: await h2c.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(statusLines(h2cAnswer) == ["HTTP/1.1 202"] && h2cAnswer.contains("Connection: close\r\n"), "\(h2cAnswer)")

        // CONNECT, then 64 MB as fast as loopback takes them: the server's memory must not take them in
        // (it grew with every byte sent, 1 GB in 0.9 s, until the request timeout).
        func residentKB() throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(server.process.pid)/status", encoding: .utf8)
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
        }
        let before = try residentKB()
        let tunnel = try RawConnection(port: server.port)
        let junk = [UInt8](repeating: 0x41, count: 1 << 20)
        #expect(tunnel.send("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"))
        for _ in 0..<64 where tunnel.send(junk) {}
        let tunnelAnswer = String(decoding: await tunnel.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(tunnelAnswer.hasPrefix("HTTP/1.1 404 ") && tunnelAnswer.contains("Connection: close\r\n"), "\(tunnelAnswer.prefix(500))")
        let after = try residentKB()
        #expect(before > 0 && after - before < 24 << 10, "resident memory \(before) kB before, \(after) kB after")
        #expect(try await TestHTTP.request("\(server.baseURL)/healthz").status == 200)

        #expect(await server.stop() == 0)
        let stored = try await Fixtures.storedIDs(server.dataDirectory)
        #expect(stored == ["h2c-post"])
    }

    @Test("a client that half-closes after its requests gets every answer, then the connection is closed")
    func halfClose() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        // One request, then a half-close (as `printf … | nc -N` does).
        let single = try RawConnection(port: server.port)
        #expect(single.send(rawPost("h1")))
        single.shutdownWrite()
        let started = ContinuousClock.now
        let singleAnswer = String(decoding: await single.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(singleAnswer.hasPrefix("HTTP/1.1 202 Accepted\r\n") && singleAnswer.contains("Connection: close\r\n"), "\(singleAnswer)")
        #expect(started.duration(to: .now) < .seconds(10), "closed after the answer, not by a timeout")

        // Three pipelined requests and a half-close: three answers in order, the last one closing.
        let pipelined = try RawConnection(port: server.port)
        #expect(pipelined.send(rawPost("h2") + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + rawPost("h3")))
        pipelined.shutdownWrite()
        let pipelinedStarted = ContinuousClock.now
        let answer = String(decoding: await pipelined.readAll(timeout: .seconds(30)), as: UTF8.self)
        let statuses = statusLines(answer)
        #expect(statuses == ["HTTP/1.1 202", "HTTP/1.1 200", "HTTP/1.1 202"], "\(answer)")
        // Only the last answer may say it closes. The server reads the half-close only once it
        // reads again, and it holds reads while pipelined requests wait for their answers: under
        // load the last answer can go out first, as a keep-alive one (a full parallel run, once);
        // the connection is closed right after it all the same.
        let closing = answer.components(separatedBy: "Connection: close")
        #expect(closing.count == 1 || (closing.count == 2 && statusLines(closing[0]).count == 3), "only the last answer closes: \(answer)")
        #expect(pipelinedStarted.duration(to: .now) < .seconds(10), "closed after the answers, not by a timeout")

        // An idle connection that half-closes is closed at once.
        let idle = try RawConnection(port: server.port)
        idle.shutdownWrite()
        let idleStarted = ContinuousClock.now
        #expect(await idle.readAll(timeout: .seconds(30)).isEmpty)
        #expect(idleStarted.duration(to: .now) < .seconds(10))

        #expect(await server.stop() == 0)
        let stored = try await Fixtures.storedIDs(server.dataDirectory)
        #expect(stored == ["h1", "h2", "h3"])
    }

    @Test("an answer that closes the connection early lets the client finish sending: an upload over the limit sent whole gets its 413, not a reset; requests pipelined behind such an answer are neither answered nor stored")
    func lingeringClose() async throws {
        let (server, directory) = try await Fixtures.server(["--max-body-bytes", "65536"])
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        // A body 128 times the limit, sent whole before the answer is read (as Python's urllib
        // does). Closing at once with those bytes unread reset the connection under the upload.
        let upload = try RawConnection(port: server.port)
        let big = String(repeating: "x", count: 8 << 20)
        let sent = upload.send(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(big.utf8.count)\r\n\r\n" + big
        )
        #expect(sent, "the server read the rest of the upload instead of resetting the connection")
        let answer = String(decoding: await upload.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 413 ") && answer.contains("Connection: close\r\n") && answer.contains(#""error":"body_too_large""#), "\(answer)")

        // The same for a chunked upload, refused once its chunks pass the limit.
        let chunked = try RawConnection(port: server.port)
        let chunk = "10000\r\n" + String(repeating: "y", count: 0x10000) + "\r\n"
        #expect(chunked.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + String(repeating: chunk, count: 128) + "0\r\n\r\n"))
        let chunkedAnswer = String(decoding: await chunked.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(chunkedAnswer.hasPrefix("HTTP/1.1 413 "), "\(chunkedAnswer)")

        // Two events pipelined behind a request refused from its head (415): the connection closes
        // after the 415, so those two are not answered, and must not be stored either.
        let pipelined = try RawConnection(port: server.port)
        let xml = "<event/>"
        #expect(pipelined.send(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: \(xml.utf8.count)\r\n\r\n\(xml)"
                + rawPost("behind-1") + rawPost("behind-2")
        ))
        let refused = String(decoding: await pipelined.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(statusLines(refused) == ["HTTP/1.1 415"], "\(refused)")

        // A client that keeps its side open after the answer: what it sends is dropped, and the
        // connection is closed once nothing has come for a few seconds.
        #expect(pipelined.send(rawPost("after-the-answer")))
        // (5 s of quiet close it; 15 s leave room for a loaded machine, under the 30 s cap.)
        try await Task.sleep(for: .seconds(15))
        _ = pipelined.send("x")  // reaches a closed socket, which resets the connection
        try await Task.sleep(for: .milliseconds(200))
        #expect(!pipelined.send("x"), "the lingering connection was closed")

        let stored = try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("later")))
        #expect(stored.status == 202)
        #expect(await server.stop() == 0)
        let ids = try await Fixtures.storedIDs(server.dataDirectory)
        #expect(ids == ["later"])
    }

    @Test("a client that sends requests without reading the answers: the server stops reading (and answering) until it reads, then answers every request in order")
    func backPressure() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        // 5,000 small requests for a large answer (about 100 MB of answers for 200 kB sent), the last
        // one closing the connection.
        let count = 5000
        let request = "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
        let requests = String(repeating: request, count: count - 1) + "GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        let connection = try RawConnection(port: server.port)
        let sending = Task.detached { connection.send(requests) }
        try await Task.sleep(for: .seconds(3))
        // Not reading: only what the socket buffers hold was answered (here about 370 answers, 4 MB),
        // and no more are made while the client reads nothing. Before back-pressure, every request
        // was answered at once and its answer kept in memory. (On a loaded machine the buffers may
        // still be filling after 3 s: the count is taken once two reads a second apart agree.)
        var answered = try await answeredCount(server, route: "/openapi.json")
        for _ in 0..<30 {
            try await Task.sleep(for: .seconds(1))
            let now = try await answeredCount(server, route: "/openapi.json")
            if now == answered { break }
            answered = now
            if now == count { break }
        }
        #expect(answered > 0 && answered < count, "answered \(answered) of \(count) while the client read nothing")
        try await Task.sleep(for: .seconds(2))
        #expect(try await answeredCount(server, route: "/openapi.json") == answered, "no answers are made while none are read")
        // Reading now: every answer arrives, in order, and the connection closes after the last.
        let answer = await connection.readAll(timeout: .seconds(60))
        #expect(await sending.value)
        let text = String(decoding: answer, as: UTF8.self)
        #expect(text.components(separatedBy: "HTTP/1.1 200 OK\r\n").count - 1 == count)
        #expect(try await answeredCount(server, route: "/openapi.json") == count)
        #expect(await server.stop() == 0)
    }

    @Test("bytes that are not HTTP after pipelined requests: answered 400 after those requests' answers, then the connection is closed")
    func unparseableAfterPipelinedRequests() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        // Two events (each answer waits for an fsync), then bytes the HTTP parser refuses, in one write.
        let connection = try RawConnection(port: server.port)
        #expect(connection.send(rawPost("u1") + rawPost("u2") + "GARBAGE \u{1} NOT HTTP\r\n\r\n" + rawPost("u3")))
        let started = ContinuousClock.now
        let answer = String(decoding: await connection.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(started.duration(to: .now) < .seconds(10), "the connection was closed after the 400, not left to a timeout")
        let statuses = statusLines(answer)
        #expect(statuses == ["HTTP/1.1 202", "HTTP/1.1 202", "HTTP/1.1 400"], "\(answer)")
        #expect(answer.hasSuffix(#"the connection is closed"}"#) && answer.contains(#""error":"malformed_http""#), "\(answer)")
        #expect(await server.stop() == 0)
        // The two requests before the bad bytes were answered 202 and are stored; nothing after them is read.
        let stored = try await Fixtures.storedIDs(server.dataDirectory)
        #expect(stored == ["u1", "u2"])
    }

    @Test("requests the HTTP parser refuses: the 400 says what was wrong in words a client can act on")
    func unparseableRequestsAreExplained() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        let head = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        let cases: [(request: String, says: String)] = [
            (head + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "sent with Content-Length"),
            (head + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", "is sent with Transfer-Encoding"),
            (head + "Content-Length: 5x\r\n\r\n", "Content-Length is not one decimal number"),
            (head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", "a chunk size is not a hexadecimal number"),
            (head + "Bad Header: 1\r\nContent-Length: 0\r\n\r\n", "a space before the colon"),
            (head + "Content-Length: 2\r\nContent-Length: 2\r\n\r\n[]", "more than one Content-Length header"),
            ("POST /v1/events HTTP/1.1\rHost: x\r\nContent-Length: 0\r\n\r\n", "a CR not followed by LF"),
        ]
        for (request, says) in cases {
            let connection = try RawConnection(port: server.port)
            #expect(connection.send(request))
            let answer = String(decoding: await connection.readAll(timeout: .seconds(30)), as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 400 ") && answer.contains(#""error":"malformed_http""#), "\(answer)")
            #expect(answer.contains(says) && !answer.contains("http_parser error"), "\(request): \(answer)")
        }
        // A head over 80 KiB is HTTP, only too large: 431 (it was a 400 `malformed_http`). One under passes.
        for (size, status) in [(79 << 10, "HTTP/1.1 202 "), (81 << 10, "HTTP/1.1 431 ")] {
            let connection = try RawConnection(port: server.port)
            let body = Fixtures.json(Fixtures.event("big-head-\(size)"))
            #expect(connection.send(head + "X-Padding: \(String(repeating: "a", count: size))\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body))
            let answer = String(decoding: await connection.readAll(timeout: .seconds(30)), as: UTF8.self)
            #expect(answer.hasPrefix(status), "\(size): \(answer.prefix(300))")
            if status.contains("431") {
                #expect(answer.contains(#""error":"headers_too_large""#) && answer.contains("longer than 80 KiB"), "\(answer)")
            }
        }
        // A request line ended by LF alone is taken for another HTTP version: the answer says both.
        let bareLF = try RawConnection(port: server.port)
        #expect(bareLF.send("POST /v1/events HTTP/1.1\nHost: x\nContent-Length: 0\n\n"))
        let bareLFAnswer = String(decoding: await bareLF.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(bareLFAnswer.contains("or does not end with CRLF"), "\(bareLFAnswer)")
        #expect(try await Fixtures.storedIDs(server.dataDirectory) == ["big-head-\(79 << 10)"])
        #expect(await server.stop() == 0)
    }

    @Test("the answer to one accepted event is sent as bytes encoded once; answers that need more headers are encoded per request")
    func encodedOnceAnswer() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        let accepted = #"{"accepted":1,"rejected":0,"errors":[]}"#
        // Keep-alive HTTP/1.1 without Origin: exactly these bytes, then the connection still answers.
        let plain = try RawConnection(port: server.port)
        #expect(plain.send(rawPost("e1") + rawPost("e2", extra: "Connection: close\r\n")))
        let plainAnswer = String(decoding: await plain.readAll(timeout: .seconds(30)), as: UTF8.self)
        let encoded = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 39\r\n\r\n" + accepted
        #expect(plainAnswer.hasPrefix(encoded), "\(plainAnswer)")
        let second = plainAnswer.dropFirst(encoded.count)
        #expect(second.hasPrefix("HTTP/1.1 202 Accepted\r\n") && second.contains("Connection: close\r\n"), "\(second)")
        #expect(second.hasSuffix(accepted), "\(second)")

        // With Origin: the CORS headers are added, so the answer is encoded for this request.
        let browser = try RawConnection(port: server.port)
        #expect(browser.send(rawPost("e3", extra: "Origin: https://player.example\r\nConnection: close\r\n")))
        let browserAnswer = String(decoding: await browser.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(browserAnswer.hasPrefix("HTTP/1.1 202 Accepted\r\n"), "\(browserAnswer)")
        #expect(browserAnswer.contains("Access-Control-Allow-Origin: https://player.example\r\n"), "\(browserAnswer)")
        #expect(browserAnswer.hasSuffix(accepted), "\(browserAnswer)")

        // HTTP/1.0 (closes after the answer): answered in its own version.
        let old = try RawConnection(port: server.port)
        #expect(old.send(rawPost("e4", version: "1.0")))
        let oldAnswer = String(decoding: await old.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(oldAnswer.hasPrefix("HTTP/1.0 202 Accepted\r\n") && oldAnswer.hasSuffix(accepted), "\(oldAnswer)")
        #expect(!oldAnswer.contains("keep-alive"), "\(oldAnswer)")
        // HTTP/1.0 asking for keep-alive: the answer says the connection stays, and it does.
        let oldKept = try RawConnection(port: server.port)
        #expect(oldKept.send(rawPost("e4k", version: "1.0", extra: "Connection: Keep-Alive\r\n") + rawPost("e4l", version: "1.0")))
        let oldKeptAnswer = String(decoding: await oldKept.readAll(timeout: .seconds(30)), as: UTF8.self)
        let oldKeptParts = oldKeptAnswer.components(separatedBy: "HTTP/1.0 202 Accepted\r\n")
        #expect(oldKeptParts.count == 3, "\(oldKeptAnswer)")
        #expect(oldKeptParts.count == 3 && oldKeptParts[1].contains("Connection: keep-alive\r\n") && !oldKeptParts[2].contains("keep-alive"), "\(oldKeptAnswer)")
        // HTTP/1.0 with Transfer-Encoding: faulty framing (RFC 9112 §6.1): answered, then closed, even
        // though it asks for keep-alive; the request behind it is not answered. (It was kept open.)
        let chunkedOld = try RawConnection(port: server.port)
        let chunk = Fixtures.json(Fixtures.event("e4c"))
        #expect(chunkedOld.send(
            "POST /v1/events HTTP/1.0\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                + String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n0\r\n\r\n" + "GET /healthz HTTP/1.0\r\n\r\n"))
        let chunkedOldAnswer = String(decoding: await chunkedOld.readAll(timeout: .seconds(30)), as: UTF8.self)
        #expect(chunkedOldAnswer.hasPrefix("HTTP/1.0 202 ") && chunkedOldAnswer.ranges(of: "HTTP/1.").count == 1, "\(chunkedOldAnswer)")
        #expect(chunkedOldAnswer.contains("Connection: close\r\n") && chunkedOldAnswer.hasSuffix(accepted), "\(chunkedOldAnswer)")

        // Answers written as encoded bytes and answers written through the HTTP encoder, mixed on one
        // connection: a HEAD after answers of the first kind must not make the encoder take a later
        // GET for the HEAD and drop its body (NIO's encoder queues each request's method, and only an
        // answer it encodes takes one off).
        let mixed = try RawConnection(port: server.port)
        let get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        #expect(mixed.send(rawPost("e5") + rawPost("e6") + rawPost("e7") + "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            + get + get + get + rawPost("e8", extra: "Origin: https://player.example\r\nConnection: close\r\n")))
        let mixedAnswer = String(decoding: await mixed.readAll(timeout: .seconds(30)), as: UTF8.self)
        let mixedStatuses = statusLines(mixedAnswer)
        #expect(mixedStatuses == ["HTTP/1.1 202", "HTTP/1.1 202", "HTTP/1.1 202", "HTTP/1.1 200", "HTTP/1.1 200",
            "HTTP/1.1 200", "HTTP/1.1 200", "HTTP/1.1 202"], "\(mixedAnswer)")
        #expect(mixedAnswer.ranges(of: #""status":"ok""#).count == 3, "\(mixedAnswer)")
        #expect(mixedAnswer.hasSuffix(accepted), "\(mixedAnswer)")

        #expect(await server.stop() == 0)
        let stored = try await Fixtures.storedIDs(server.dataDirectory)
        #expect(stored == ["e1", "e2", "e3", "e4", "e4k", "e4l", "e4c", "e5", "e6", "e7", "e8"])
    }

    @Test("loadgen --gzip sends gzip bodies with Content-Encoding: gzip, and the server stores every acknowledged event")
    func loadgenGzip() async throws {
        // What goes over the wire: a one-request listener that keeps the request and answers 202.
        let capture = """
            import gzip, json, socket, sys
            listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(1)
            print("port=%d" % listener.getsockname()[1], flush=True)
            connection, _ = listener.accept(); data = b""
            while b"\\r\\n\\r\\n" not in data: data += connection.recv(65536)
            head, body = data.split(b"\\r\\n\\r\\n", 1)
            headers = dict(line.split(": ", 1) for line in head.decode().split("\\r\\n")[1:])
            headers = {k.lower(): v for k, v in headers.items()}
            while len(body) < int(headers["content-length"]): body += connection.recv(65536)
            answer = b'{"accepted":5,"rejected":0,"errors":[]}'
            connection.sendall(b"HTTP/1.1 202 Accepted\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s" % (len(answer), answer))
            connection.close()
            events = [json.loads(line) for line in gzip.decompress(body).splitlines() if line]
            print(json.dumps({"encoding": headers.get("content-encoding"), "magic": body[:2].hex(), "events": len(events), "ids": len({e["event_id"] for e in events})}), flush=True)
            """
        let listener = try ChildProcess(TestEnvironment.python, ["-c", capture], name: "gzip-capture")
        let port = try await listener.waitForOutput(containing: "port=").dropFirst("port=".count)
        let sent = try await runCommand(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", String(port), "--connections", "1", "--batch", "5", "--format", "ndjson", "--events", "5", "--gzip"]
        )
        #expect(sent.status == 0, "\(sent.stderr)")
        let line = try await listener.waitForOutput(containing: "encoding")
        let seen = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect(seen?["encoding"] as? String == "gzip" && seen?["magic"] as? String == "1f8b", "\(line)")
        #expect(seen?["events"] as? Int == 5 && seen?["ids"] as? Int == 5, "\(line)")

        // Against the server: every acknowledged event is stored, once.
        let (server, directory) = try await Fixtures.server()
        let ids = directory.appending("ids.txt").path
        let run = try await runCommand(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", "\(server.port)", "--connections", "2", "--batch", "50", "--events", "1000", "--gzip", "--acknowledged-ids", ids, "--json"]
        )
        #expect(run.status == 0, "\(run.stderr)")
        let acknowledged = try String(contentsOfFile: ids, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(acknowledged.count == 1000, "\(run.stdout)")
        #expect(await server.stop() == 0)
        #expect(try await Fixtures.storedIDs(server.dataDirectory).sorted() == acknowledged.sorted())
    }

    @Test("loadgen --acknowledged-ids writes ids as they are acknowledged: a loadgen killed with -9 leaves the ids of all but its last second, each stored once; an unwritable path fails before sending; SIGINT ends the run with its report and every id")
    func loadgenAcknowledgedIDsStream() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        let ids = directory.appending("ids.txt").path
        let loadgen = try ChildProcess(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", "\(server.port)", "--connections", "4", "--batch", "10", "--rate", "2000",
             "--duration", "60", "--acknowledged-ids", ids],
            name: "loadgen-killed", logDirectory: TestEnvironment.artifactsDirectory
        )
        // Killed once 1,000 ids are in the file (about half a second at 2,000 events/s; a fixed 3.5 s
        // was too short on a machine at a load of 6), so that the ids of the last second are left out.
        func lines(_ path: String) -> Int { ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count }
        for _ in 0..<600 where lines(ids) < 1000 { try await Task.sleep(for: .milliseconds(100)) }
        try await Task.sleep(for: .milliseconds(1000))
        loadgen.kill9()
        _ = await loadgen.waitForExit(timeout: .seconds(10))
        // Written only at the end of the run before: nothing at all was left.
        let acknowledged = ((try? String(contentsOfFile: ids, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        #expect(acknowledged.count >= 1000, "1,000 ids written before the kill, and more a second later: \(acknowledged.count)")
        #expect(Set(acknowledged).count == acknowledged.count)
        #expect(await server.stop() == 0)
        let stored = Dictionary(grouping: try await Fixtures.storedIDs(server.dataDirectory), by: { $0 })
        let notOnce = acknowledged.filter { stored[$0]?.count != 1 }
        #expect(notOnce.isEmpty, "acknowledged ids not stored exactly once, e.g. \(Array(notOnce.prefix(3)))")

        let unwritable = try await runCommand(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", "1", "--duration", "30", "--acknowledged-ids", directory.appending("no/such/dir/ids.txt").path],
            timeout: .seconds(10)
        )
        #expect(unwritable.status == 1)
        #expect(unwritable.stderr.contains("cannot open") && !unwritable.stderr.contains("no request reached"), "\(unwritable.stderr)")

        // SIGINT (Ctrl-C) ends the run early: the report comes, and every acknowledged id is written.
        let (server2, directory2) = try await Fixtures.server()
        defer { withExtendedLifetime(directory2) {} }
        let ids2 = directory2.appending("ids.txt").path
        let interrupted = try ChildProcess(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", "\(server2.port)", "--connections", "4", "--batch", "10", "--rate", "2000",
             "--duration", "60", "--acknowledged-ids", ids2, "--json"],
            name: "loadgen-interrupted", logDirectory: TestEnvironment.artifactsDirectory
        )
        let started = ContinuousClock.now
        for _ in 0..<600 where lines(ids2) < 1000 { try await Task.sleep(for: .milliseconds(100)) }
        let waited = Double((ContinuousClock.now - started).components.seconds)
        interrupted.signal(SIGINT)
        #expect(await interrupted.waitForExit(timeout: .seconds(10)) == 0, "\(interrupted.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(interrupted.stdout.utf8)) as? [String: Any], "\(interrupted.stdout)")
        let written = ((try? String(contentsOfFile: ids2, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(written.count == report["acknowledged_events"] as? Int && written.count >= 1000, "\(written.count) ids, \(interrupted.stdout)")
        #expect((report["elapsed_seconds"] as? Double ?? 60) < waited + 10, "\(interrupted.stdout)")
        #expect(await server2.stop() == 0)
    }

    @Test("loadgen --replay sends the bodies it made up front again and again, and refuses --acknowledged-ids; loadgen fails when no request reaches the server, and when none is acknowledged")
    func loadgenReplay() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        let run = try await runCommand(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", "\(server.port)", "--connections", "1", "--batch", "5", "--replay", "3", "--events", "60", "--json"]
        )
        #expect(run.status == 0, "\(run.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        #expect(report?["acknowledged_events"] as? Int == 60, "\(run.stdout)")
        #expect(await server.stop() == 0)
        // 3 bodies of 5 events, each sent 4 times: 15 distinct ids, 4 times each, in the log.
        let ids = try await Fixtures.storedIDs(server.dataDirectory)
        #expect(ids.count == 60)
        #expect(Set(ids).count == 15)
        #expect(Dictionary(grouping: ids, by: { $0 }).values.allSatisfy { $0.count == 4 })

        let refused = try await runCommand(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", "1", "--replay", "2", "--acknowledged-ids", directory.appending("ids.txt").path]
        )
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("--replay repeats events"), "\(refused.stderr)")

        // Every request refused (a wrong write key): the report is printed, and the run fails (it
        // exited 0, an outside review).
        let (keyed, _) = try await Fixtures.server(["--write-key", "right-key"])
        let wrongKey = try await runCommand(
            TestEnvironment.playheadExecutable, ["loadgen", "--port", "\(keyed.port)", "--connections", "1", "--events", "5", "--write-key", "wrong-key"])
        #expect(wrongKey.status == 1, "\(wrongKey.stdout) \(wrongKey.stderr)")
        #expect(wrongKey.stderr.contains("none of the 5 requests to 127.0.0.1:\(keyed.port) was acknowledged (status codes: 401="), "\(wrongKey.stderr)")
        #expect(wrongKey.stdout.contains("acknowledged 0"), "\(wrongKey.stdout)")
        #expect(await keyed.stop() == 0)

        // No server there: the report of zeros is printed, and the run fails.
        let nowhere = try await runCommand(TestEnvironment.playheadExecutable, ["loadgen", "--port", "1", "--duration", "1"])
        #expect(nowhere.status != 0)
        #expect(nowhere.stderr.contains("no request reached 127.0.0.1:1"), "\(nowhere.stderr)")
        #expect(nowhere.stdout.contains("connection errors"), "\(nowhere.stdout)")
    }

    @Test("loadgen --rate holds from the start and --duration ends the run, with fewer events per second than connections; two runs without --seed send different events, and the report names the seed that repeats them")
    func loadgenRateAndSeed() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        // 10 events/s over 64 connections for 3 s: about 30 events, in about 3 s (it sent 64 at
        // once and ran 6.4 s).
        let paced = try await runCommand(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", "\(server.port)", "--rate", "10", "--duration", "3", "--json"]
        )
        #expect(paced.status == 0, "\(paced.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(paced.stdout.utf8)) as? [String: Any])
        let acknowledged = try #require(report["acknowledged_events"] as? Int)
        let elapsed = try #require(report["elapsed_seconds"] as? Double)
        // (Within 5 s: the run's connections and the answers still in flight at its end count too,
        // and a loaded machine makes them slow; the old pacing ran 6.4 s.)
        #expect((25...35).contains(acknowledged) && elapsed < 5, "\(paced.stdout)")
        #expect(report["seed"] is Int, "\(paced.stdout)")

        // Without --seed each run has its own events; with the seed a report names, the same ones.
        func written(_ extra: [String]) async throws -> (ids: [String], stderr: String) {
            let file = directory.appending("events-\(UUID().uuidString).ndjson").path
            let run = try await runCommand(TestEnvironment.playheadExecutable, ["loadgen", "--output", file, "--events", "20"] + extra)
            #expect(run.status == 0, "\(run.stderr)")
            let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
            let ids = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["event_id"] as? String }
            return (ids, run.stderr)
        }
        let first = try await written([]), second = try await written([])
        #expect(first.ids.count == 20 && Set(first.ids).isDisjoint(with: second.ids))
        let seed = try #require(first.stderr.firstMatch(of: /\(seed (\d+)\)/)?.output.1, "\(first.stderr)")
        let again = try await written(["--seed", String(seed)])
        #expect(again.ids == first.ids)
        // --output writes what one connection sends with that seed, as --help says.
        let acks = directory.appending("seed-acks.txt").path
        let sent = try await runCommand(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", "\(server.port)", "--connections", "1", "--events", "20", "--rate", "1000", "--seed", String(seed), "--acknowledged-ids", acks])
        #expect(sent.status == 0, "\(sent.stderr)")
        let acknowledgedIDs = try String(contentsOfFile: acks, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(Set(acknowledgedIDs) == Set(first.ids), "\(acknowledgedIDs) \(first.ids)")
        // Fewer sessions than connections: each connection simulates one, and it says so.
        let few = try await runCommand(
            TestEnvironment.playheadExecutable, ["loadgen", "--port", "\(server.port)", "--sessions", "2", "--connections", "4", "--events", "4", "--rate", "100"])
        #expect(few.status == 0 && few.stderr.contains("note: --sessions 2 is fewer than --connections 4: each connection simulates one session, so 4 sessions run at once"), "\(few.stderr)")
        #expect(await server.stop() == 0)
    }

    @Test("loadgen --output writes through a symbolic link and into a FIFO, as a shell's > does, instead of replacing them with a new file")
    func loadgenOutputThroughLinksAndPipes() async throws {
        let directory = try TemporaryDirectory()
        let target = directory.appending("real.ndjson").path, link = directory.appending("link.ndjson").path
        try "old\n".write(toFile: target, atomically: false, encoding: .utf8)
        #expect(symlink(target, link) == 0)
        let run = try await runCommand(TestEnvironment.playheadExecutable, ["loadgen", "--output", link, "--events", "3"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == target, "the link is still a link")
        let written = try String(contentsOfFile: target, encoding: .utf8).split(separator: "\n")
        #expect(written.count == 3 && written.allSatisfy { $0.hasPrefix("{") }, "\(written)")

        // A FIFO: a reader on the other end gets the events (`loadgen --output fifo | import` works).
        let fifo = directory.appending("events.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let reader = try ChildProcess("/bin/cat", [fifo], name: "fifo-reader")
        let piped = try await runCommand(TestEnvironment.playheadExecutable, ["loadgen", "--output", fifo, "--events", "5"])
        #expect(piped.status == 0, "\(piped.stderr)")
        #expect(await reader.waitForExit() == 0)
        #expect(reader.stdout.split(separator: "\n").count == 5, "\(reader.stdout)")
        var status = stat()
        #expect(stat(fifo, &status) == 0 && status.st_mode & S_IFMT == S_IFIFO, "the FIFO is still a FIFO")

        let refused = try await runCommand(TestEnvironment.playheadExecutable, ["loadgen", "--output", directory.appending("no/such/dir/x").path, "--events", "1"])
        #expect(refused.status != 0 && refused.stderr.contains("No such file or directory"), "\(refused.stderr)")
    }

    @Test("log dump: --follow tails a running server's log in order; --limit, --offset and --partition pick records; bad values are refused")
    func logDump() async throws {
        let (server, _) = try await Fixtures.server()
        func post(_ ids: [String]) async throws {
            let body = ids.map { Fixtures.json(Fixtures.event($0)) }.joined(separator: "\n")
            let response = try await TestHTTP.postEvents(server, body, contentType: "application/x-ndjson")
            #expect(response.status == 202, "\(response.text)")
        }
        let first = (0..<10).map { "dump-\($0)" }, later = (0..<5).map { "later-\($0)" }
        try await post(first)
        let data = server.dataDirectory
        let follower = try ChildProcess(TestEnvironment.playheadExecutable, ["log", "dump", "--data-dir", data, "--follow"], name: "dump-follow")
        _ = try await follower.waitForOutput(containing: #""dump-9""#)
        try await post(later)
        _ = try await follower.waitForOutput(containing: #""later-4""#)
        follower.signal(SIGTERM)
        #expect(await follower.waitForExit() != nil)
        func records(_ text: String) -> [(id: String, offset: Int)] {
            text.split(separator: "\n").map {
                let object = (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? [:]
                return (object["event_id"] as? String ?? "?", object["_offset"] as? Int ?? -1)
            }
        }
        let followed = records(follower.stdout)
        #expect(followed.map(\.id) == first + later)
        #expect(followed.map(\.offset) == Array(0..<15))

        func dump(_ arguments: [String]) async throws -> CommandResult {
            try await runCommand(TestEnvironment.playheadExecutable, ["log", "dump", "--data-dir", data] + arguments)
        }
        #expect(records(try await dump(["--limit", "3"]).stdout).map(\.id) == Array(first.prefix(3)))
        let fromOffset = records(try await dump(["--offset", "12"]).stdout)
        #expect(fromOffset.map(\.id) == ["later-2", "later-3", "later-4"] && fromOffset.map(\.offset) == [12, 13, 14], "\(fromOffset)")
        #expect(records(try await dump(["--offset", "10", "--partition", "0", "--limit", "1"]).stdout).map(\.id) == ["later-0"])
        let pastEnd = try await dump(["--offset", "99"])
        #expect(pastEnd.status == 0 && pastEnd.stdout.isEmpty, "\(pastEnd.stdout)")
        let refusals: [([String], String)] = [
            (["--offset", "0", "--partition", "1"], "the embedded log has only partition 0, not 1"),
            (["--partition", "0"], "--partition needs --offset"),
            (["--offset=-1"], "--offset must not be negative"),
        ]
        for (arguments, expected) in refusals {
            let result = try await dump(arguments)
            #expect(result.status != 0 && result.stderr.contains(expected), "\(arguments): \(result.stderr)")
        }
        #expect(await server.stop() == 0)
    }

    @Test("serve refuses a data or lake folder it cannot make, naming the folder and the system's reason; log dump refuses a folder with no log")
    func unusableFolders() async throws {
        let directory = try TemporaryDirectory(prefix: "e2e")
        let file = directory.appending("a-file").path
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        // A lake elsewhere: serve opens the lake before the log.
        let log = try await runCommand(
            TestEnvironment.playheadExecutable, ["serve", "--port", "0", "--data-dir", file + "/data", "--lake", directory.appending("lake").path])
        #expect(log.status != 0)
        #expect(log.stderr.contains("--data-dir \(file)/data (the log in it): cannot create directory \(file)/data: Not a directory"), "\(log.stderr)")
        let lake = try await runCommand(
            TestEnvironment.playheadExecutable,
            ["serve", "--port", "0", "--data-dir", directory.appending("data").path, "--lake", file + "/lake"]
        )
        #expect(lake.status != 0)
        #expect(lake.stderr.contains("cannot create the lake folder \(file)/lake: Not a directory"), "\(lake.stderr)")
        // The lake under --data-dir is said as such (the message named --lake, which was not given).
        let underData = try await runCommand(TestEnvironment.playheadExecutable, ["serve", "--port", "0", "--data-dir", file + "/data", "--log", directory.appending("log").path])
        #expect(underData.status != 0 && underData.stderr.contains("Error: --data-dir \(file)/data (the lake in it): cannot create the lake folder \(file)/data/lake"),
                "\(underData.stderr)")
        // A --data-dir that is a file is refused as such, before anything is made.
        let fileAsData = try await runCommand(TestEnvironment.playheadExecutable, ["serve", "--port", "0", "--data-dir", file])
        #expect(fileAsData.status == 64 && fileAsData.stderr.contains("--data-dir \(file) is a file, not a folder"), "\(fileAsData.stderr)")

        // `log dump` of a folder that holds no log: an error, not an empty dump, and nothing is created.
        let missing = directory.appending("mistyped").path
        let dump = try await runCommand(TestEnvironment.playheadExecutable, ["log", "dump", "--data-dir", missing])
        #expect(dump.status != 0)
        #expect(dump.stderr.contains("no log at \(missing)/log: the directory does not exist"), "\(dump.stderr)")
        #expect(!FileManager.default.fileExists(atPath: missing))
    }
}

/// The bytes of `POST /v1/events` with one event of id `id`, for tests that write raw HTTP.
private func rawPost(_ id: String, version: String = "1.1", extra: String = "") -> String {
    rawPost(body: Fixtures.json(Fixtures.event(id)), version: version, extra: extra)
}

/// The bytes of `POST /v1/events` with `body`; `extra` holds more header lines.
private func rawPost(body: String, version: String = "1.1", extra: String = "") -> String {
    "POST /v1/events HTTP/\(version)\r\nHost: x\r\nContent-Type: application/json\r\n\(extra)"
        + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
}

/// How many requests for `route` the server has answered, from its `/metrics`.
private func answeredCount(_ server: PlayheadServer, route: String) async throws -> Int {
    let metrics = try await TestHTTP.request("\(server.baseURL)/metrics").text
    return metrics.split(separator: "\n")
        .filter { $0.hasPrefix("playhead_http_server_request_duration_seconds_count{") && $0.contains(#"route="\#(route)""#) }
        .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
        .reduce(0) { $0 + Int($1) }
}

/// The status lines of the HTTP/1.1 answers in `answer`, in order ("HTTP/1.1 202"). Bodies do not
/// end with a line break, so they are found wherever they start.
private func statusLines(_ answer: String) -> [String] {
    answer.ranges(of: "HTTP/1.1 ").map { String(answer[$0.lowerBound...].prefix(12)) }
}
