import Foundation
import Testing
import PlayheadEvents

@Suite struct FormatTests {
    let a = event(["event_id": #""a""#])
    let b = event(["event_id": #""b""#, "title": "5"])
    let c = event(["event_id": #""c""#, "session_id": #""s""#])

    @Test func arrayPartialAcceptance() throws {
        let (outcome, sink) = decode("[\(a),\(b),\(c)]", format: .json)
        #expect(outcome.accepted == 2)
        #expect(outcome.rejected == 1)
        #expect(sink.accepted.map(\.index) == [0, 2])
        #expect(try sink.fields().map(\.eventID) == ["a", "c"])
        let e = outcome.errors[0]
        #expect(e.index == 1)
        #expect(e.eventID == "b")
        #expect(e.field == "title")
        #expect(e.reason == .invalidType)
        let view = try sink.rejected[0].record.withUnsafeBytes { try RejectedRecordView($0) }
        _ = view
        sink.rejected[0].record.withUnsafeBytes { bytes in
            let r = try! RejectedRecordView(bytes)
            #expect(Array(r.raw) == Array(b.utf8))
            #expect(r.index == 1)
            #expect(r.reason == "invalid_type")
            #expect(r.field == "title")
            #expect(r.eventID == "b")
            #expect(r.receivedAtMicros == testReceivedAt)
        }
    }

    @Test func ndjsonPartialAcceptance() throws {
        let body = "\(a)\r\n\n  \(b)\n{\"broken\n\(c)"
        let (outcome, sink) = decode(body, format: .ndjson)
        #expect(outcome.accepted == 2)
        #expect(outcome.errors.map(\.index) == [1, 2])
        #expect(outcome.errors.map(\.reason) == [.invalidType, .malformedJSON])
        #expect(sink.accepted.map(\.index) == [0, 3])
        let raw = sink.rejected[1].record.withUnsafeBytes { String(decoding: try! RejectedRecordView($0).raw, as: UTF8.self) }
        #expect(raw == "{\"broken")
    }

    @Test func sniffing() throws {
        #expect(decode("  [\(a),\(c)]", format: .sniff).outcome.accepted == 2)
        #expect(decode("\n\(a)\n", format: .sniff).outcome.accepted == 1)
        #expect(decode("\(a)\n\(c)\n", format: .sniff).outcome.accepted == 2)
        // Two objects on one line are neither one document nor NDJSON.
        #expect(decode("\(a)\(c)", format: .sniff).outcome.errors.map(\.reason) == [.malformedJSON])
        // Pretty-printed single object.
        let pretty = a.replacingOccurrences(of: ",", with: ",\n  ")
        #expect(decode(pretty, format: .sniff).outcome.accepted == 1)
        // NDJSON whose first line is broken still accepts the rest.
        let (o, _) = decode("{\"x\":}\n\(a)\n", format: .sniff)
        #expect(o.accepted == 1)
        #expect(o.errors.map(\.index) == [0])
        // As .json, two objects on one line are malformed; on lines of their own they are NDJSON
        // sent as application/json, read line by line (they were refused whole), and an error
        // names its line's index.
        #expect(decode("\(a) \(c)", format: .json).outcome.errors.map(\.reason) == [.malformedJSON])
        #expect(decode("\(a)\n\(c)", format: .json).outcome.accepted == 2)
        let (mixed, mixedSink) = decode("\(b)\r\n\n\(a)\n{\"broken\n\(c)\n", format: .json)
        #expect(mixed.accepted == 2 && mixed.errors.map(\.index) == [0, 2], "\(mixed.errors)")
        #expect(mixedSink.accepted.map(\.index) == [1, 3] && mixedSink.rejected.count == 2)
        // One object and blank lines after it is one object.
        #expect(decode("\(a)\n\n", format: .json).outcome.accepted == 1)
        // A broken first line: the lines after it are still read (they were refused with it).
        let (brokenFirst, _) = decode("{\"event_id\": bad}\n\(a)\n", format: .json)
        #expect(brokenFirst.accepted == 1 && brokenFirst.errors.map(\.index) == [0], "\(brokenFirst.errors)")
        // A line cut short in the middle (an unclosed string runs to the end of its line) costs
        // only itself, sent as application/json or text/plain, second line or first: the body
        // was refused whole as malformed JSON when the second line was the broken one (a review).
        for format in [EventBodyFormat.json, .sniff] {
            let (second, secondSink) = decode("\(a)\n{\"event_id\": \"sn-1\", \"broken\n\(c)\n", format: format)
            #expect(second.accepted == 2 && second.errors.map(\.index) == [1], "\(format): \(second.errors)")
            #expect(secondSink.rejected.count == 1)
            let (first, _) = decode("{\"event_id\": \"sn-0\", \"bro\n\(a)\r\n\n  \(c)", format: format)
            #expect(first.accepted == 2 && first.errors.map(\.index) == [0], "\(format): \(first.errors)")
            let (last, _) = decode("\(a)\n\(c)\n{\"event_id\": \"sn-2\", \"ti", format: format)
            #expect(last.accepted == 2 && last.errors.map(\.index) == [2], "\(format): \(last.errors)")
        }
        // A pretty-printed object followed by another is not NDJSON: refused whole, as before,
        // rather than cut into a rejection per line; so is a stream of them (what `jq .` prints).
        let broken = "{\"event_id\": \"p\",\n  \"title\": \"x\",,\n  \"genre\": []\n}"
        // The same as text/plain (sendBeacon, or no type), which was read by lines: a rejection per
        // line, and past 2,000 lines 413 too_many_events (an outside review).
        let jq = (0..<120).map { _ in pretty }.joined(separator: "\n")
        for body in ["\(pretty)\n\(c)", "\(c)\n\(pretty)", "\(pretty)\n\(pretty)\n", "\(c)\n\(broken)", "\(broken)\n\(c)", jq] {
            for format in [EventBodyFormat.json, .sniff] {
                let (o, sink) = decode(body, format: format)
                let reasons = o.errors.map { $0.reason }
                #expect(o.accepted == 0 && reasons == [RejectionReason.malformedJSON] && sink.rejected.count == 1, "\(format): \(o.errors.prefix(3))")
                #expect(o.errors.first?.index == -1)
            }
        }
        // The message says why such a body was not read line by line.
        let (twoPretty, _) = decode("\(pretty)\n\(c)", format: .json)
        #expect(twoPretty.errors.first?.message.contains("NDJSON must hold each event on a line of its own") == true, "\(twoPretty.errors)")
        #expect(decode("\(a) [1]", format: .json).outcome.errors.first?.message.contains("NDJSON") == false)
    }

    @Test func eventIDOfAWrongTypeIsNotReported() {
        // The first event's id must not leak into the second's error.
        let (outcome, _) = decode("[\(a),\(event(["event_id": "7", "title": "1"]))]", format: .json)
        #expect(outcome.errors.count == 1)
        #expect(outcome.errors.first?.eventID == nil)
        #expect(outcome.errors.first?.field == "event_id")
    }

    @Test func responseJSON() throws {
        let (outcome, _) = decode("[\(a),\(b),1]", format: .json)
        let text = String(decoding: outcome.responseJSON(), as: UTF8.self)
        #expect(
            text
                == #"{"accepted":1,"rejected":2,"errors":[{"index":1,"event_id":"b","field":"title","reason":"invalid_type","message":"title must be a string, not a number"},{"index":2,"event_id":null,"field":null,"reason":"not_an_object","message":"an event must be a JSON object"}]}"#
        )
    }
}

/// The `ip_address` stored for an event whose `ip_address` is the JSON value `json`.
func storedIPAddress(json: String, policy: IPAddressPolicy, client: String? = nil) throws -> String? {
    var config = EventDecoderConfiguration()
    config.ipPolicy = policy
    let (_, sink) = decode(event(["ip_address": json]), format: .json, configuration: config, clientAddress: client)
    return try sink.fields().first?.ipAddress
}

@Suite struct IPPolicyTests {
    func stored(_ ip: String, _ policy: IPAddressPolicy) throws -> String? {
        try storedIPAddress(json: "\"\(ip)\"", policy: policy)
    }

    @Test func keep() throws {
        #expect(try stored("203.0.113.77", .keep) == "203.0.113.77")
        #expect(try stored("not an ip", .keep) == "not an ip")
    }

    @Test func drop() throws {
        #expect(try stored("203.0.113.77", .drop) == "")
        #expect(try stored("2001:db8::1", .drop) == "")
    }

    @Test func truncate() throws {
        #expect(try stored("203.0.113.77", .truncate) == "203.0.113.0")
        #expect(try stored("10.1.2.3", .truncate) == "10.1.2.0")
        #expect(try stored("2001:db8:abcd:12:3:4:5:6", .truncate) == "2001:db8:abcd::")
        #expect(try stored("2001:0DB8:00AB::1", .truncate) == "2001:db8:ab::")
        // 6to4 carries an IPv4 address in groups 2 and 3: /24 of it (the /48 kept all of it).
        #expect(try stored("2002:cb00:714d::1", .truncate) == "2002:cb00:7100::")
        #expect(try stored("2002:cb00:0042:1:2:3:4:5", .truncate) == "2002:cb00::")
        #expect(try stored("2002:0:0::1", .truncate) == "2002::")
        // The canonical text (RFC 5952): one spelling per prefix, so that GROUP BY sees one value.
        #expect(try stored("::1", .truncate) == "::")
        #expect(try stored("fe80::1%eth0", .truncate) == "fe80::")
        #expect(try stored("2001:db8::5", .truncate) == "2001:db8::")
        #expect(try stored("2001:0:5:6::1", .truncate) == "2001:0:5::")
        #expect(try stored("0:0:5::1", .truncate) == "0:0:5::")
        #expect(try stored("2001:db8:0:ffff::", .truncate) == "2001:db8::")
        // IPv4-mapped: the IPv4 rule, in the mapped form.
        #expect(try stored("::ffff:192.0.2.128", .truncate) == "::ffff:192.0.2.0")
        #expect(try stored("::FFFF:c000:0280", .truncate) == "::ffff:192.0.2.0")
        #expect(try stored("::fffe:192.0.2.128", .truncate) == "::")
        #expect(try stored("256.1.1.1", .truncate) == "")
        #expect(try stored("1.2.3", .truncate) == "")
        // Leading zeros (octal to inet_aton): not an address, as for inet_pton.
        for value in ["010.8.8.8", "01.2.3.4", "1.2.3.00", "1.02.3.4", "::ffff:010.2.3.4"] {
            #expect(try stored(value, .truncate) == "", "\(value)")
        }
        #expect(try stored("0.0.0.0", .truncate) == "0.0.0.0")
        #expect(try stored("100.0.10.0", .truncate) == "100.0.10.0")
        #expect(try stored("garbage", .truncate) == "")
        #expect(try stored("1:2:3:4:5:6:7:8:9", .truncate) == "")
        #expect(try stored("", .truncate) == "")
    }
}

@Suite struct ClientAddressFillTests {
    func stored(_ ip: String, client: String?, _ policy: IPAddressPolicy = .keep) throws -> String? {
        try storedIPAddress(json: ip, policy: policy, client: client)
    }

    @Test("an empty ip_address is stored as the client's address; any other value, as sent")
    func onlyEmptyIsFilled() throws {
        #expect(try stored(#""""#, client: "203.0.113.77") == "203.0.113.77")
        #expect(try stored(#""""#, client: "2001:db8::1") == "2001:db8::1")
        #expect(try stored(#""""#, client: nil) == "")
        #expect(try stored(#""198.51.100.1""#, client: "203.0.113.77") == "198.51.100.1")
        #expect(try stored(#"" ""#, client: "203.0.113.77") == " ")
        #expect(try stored(#""\u0030""#, client: "203.0.113.77") == "0")
    }

    @Test("the IP policy applies to the filled address as to a sent one")
    func policyApplies() throws {
        #expect(try stored(#""""#, client: "203.0.113.77", .truncate) == "203.0.113.0")
        #expect(try stored(#""""#, client: "2001:db8:abcd:12::1", .truncate) == "2001:db8:abcd::")
        #expect(try stored(#""""#, client: "203.0.113.77", .drop) == "")
        #expect(try stored(#""198.51.100.9""#, client: "203.0.113.77", .truncate) == "198.51.100.0")
    }

    @Test("in a body of many events each empty one is filled; the rest of every record is unchanged; a rejected event keeps its bytes")
    func manyEvents() throws {
        let filled = event(["event_id": #""f""#, "ip_address": #""""#])
        let kept = event(["event_id": #""k""#, "ip_address": #""10.0.0.1""#])
        let bad = event(["event_id": #""x""#, "ip_address": #""""#, "title": "1"])
        let body = "[\(filled),\(kept),\(bad),\(filled)]"
        let (outcome, sink) = decode(body, format: .json, clientAddress: "192.0.2.1")
        #expect(outcome.accepted == 3 && outcome.rejected == 1)
        let fields = try sink.fields()
        #expect(fields.map(\.ipAddress) == ["192.0.2.1", "10.0.0.1", "192.0.2.1"])
        // Apart from ip_address, the same records as without the client's address.
        let (_, plain) = decode(body, format: .json)
        var expected = try plain.fields()
        for k in [0, 2] { expected[k].ipAddress = "192.0.2.1" }
        #expect(fields == expected)
        #expect(String(decoding: sink.rejected[0].record, as: UTF8.self).contains(#""ip_address":"""#))
    }
}

@Suite struct TimestampTests {
    func micros(_ s: String) -> Int64? { EventTimestamp.parseMicros(s) }

    @Test func knownInstants() {
        #expect(micros("1970-01-01T00:00:00Z") == 0)
        #expect(micros("2024-05-01T12:00:00Z") == 1_714_564_800_000_000)
        #expect(micros("2024-05-01T12:00:00.5Z") == 1_714_564_800_500_000)
        #expect(micros("2024-05-01T12:00:00.123456789Z") == 1_714_564_800_123_456)
        #expect(micros("2024-05-01T14:30:00+02:30") == 1_714_564_800_000_000)
        #expect(micros("2024-05-01T07:00:00-05:00") == 1_714_564_800_000_000)
        #expect(micros("2024-05-01t12:00:00z") == 1_714_564_800_000_000)
        #expect(micros("2024-05-01 12:00:00Z") == 1_714_564_800_000_000)
        #expect(micros("1969-12-31T23:59:59.999999Z") == -1)
        #expect(micros("2024-02-29T00:00:00Z") == 1_709_164_800_000_000)
        #expect(micros("2000-02-29T00:00:00Z") != nil)
        #expect(micros("1900-02-29T00:00:00Z") == nil)
        // Years 0001-9999 in UTC, where an offset or a leap second can carry a date past either end.
        #expect(micros("0001-01-01T00:00:00Z") == EventTimestamp.earliestSeconds * 1_000_000)
        #expect(micros("9999-12-31T23:59:59.999999Z") == EventTimestamp.latestSeconds * 1_000_000 + 999_999)
        #expect(micros("9999-12-31T23:59:59.999999+00:01") != nil)
        for outside in ["0000-12-31T23:59:59Z", "9999-12-31T23:59:60Z", "9999-12-31T23:59:59-00:01", "0001-01-01T00:00:00+00:01",
                        "0000-01-01T00:00:00+23:59"] {
            #expect(micros(outside) == nil, "\(outside)")
            #expect(EventTimestamp.problem(with: outside) == "is outside years 0001-9999 in UTC", "\(outside)")
        }
        #expect(micros("2024-05-01T12:00:00") == micros("2024-05-01T12:00:00Z"))
        #expect(EventTimestamp.problem(with: "2024-05-01T12:00:00Zx").hasPrefix("is not of the form"))
        // A leap second counts as the next minute's first second.
        #expect(micros("2016-12-31T23:59:60Z") == micros("2017-01-01T00:00:00Z"))
        #expect(micros("2024-05-02T00:30:00+00:30") == micros("2024-05-02T00:00:00Z"))
        #expect(micros("0001-01-01T00:00:00Z") == -62_135_596_800_000_000)
        #expect(micros("9999-12-31T23:59:59.999999Z") == 253_402_300_799_999_999)
    }

    @Test func roundTripThroughJSON() throws {
        let (_, sink) = decode(event(["timestamp": #""2024-05-01T14:30:00.000001+02:30""#]), format: .json)
        var json: [UInt8] = []
        try sink.accepted[0].record.withUnsafeBytes { try EventRecordView($0).appendJSON(to: &json) }
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains(#""timestamp":"2024-05-01T12:00:00.000001Z""#))
        #expect(text.contains(#""received_at":"2023-11-14T22:13:20.123456Z""#))
        // -0 stays -0 (`log dump` printed 0.0, while the lake keeps the sign), and 0 stays 0.
        for (position, printed) in [("-0", "-0.0"), ("-0.0", "-0.0"), ("0", "0.0"), ("12.5", "12.5"), ("7", "7.0")] {
            let (_, sink) = decode(event(["current_timestamp": position]), format: .json)
            var json: [UInt8] = []
            try sink.accepted[0].record.withUnsafeBytes { try EventRecordView($0).appendJSON(to: &json) }
            #expect(String(decoding: json, as: UTF8.self).contains(#""current_timestamp":\#(printed),"#), "\(position)")
        }
    }

    /// An unknown field named `received_at` is printed, and the server's `received_at` after it, so
    /// that a reader keeping a repeated key's last value (Foundation's, jq, Python) reads the server's.
    @Test func serversReceivedAtComesLast() throws {
        let (o, sink) = decode(event([:], appending: [("received_at", #""2000-01-01T00:00:00Z""#), ("app", "1")]), format: .json)
        #expect(o.accepted == 1, "\(o.errors)")
        var json: [UInt8] = []
        try sink.accepted[0].record.withUnsafeBytes { try EventRecordView($0).appendJSON(to: &json) }
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains(#""received_at":"2000-01-01T00:00:00Z""#), "the client's field is kept: \(text)")
        #expect(text.hasSuffix(#","received_at":"2023-11-14T22:13:20.123456Z"}"#), "\(text)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
        #expect(object["received_at"] as? String == "2023-11-14T22:13:20.123456Z")
        #expect(object["app"] as? Int == 1)
    }
}

@Suite struct UnicodeTests {
    @Test func escapesAreDecoded() throws {
        let (o, sink) = decode(
            event([
                "title": #""Am\u00e9lie \"quoted\" \\ \/ \t\n \ud83c\udfac \u20AC""#, "genre": #"["\u0064rama", "ça"]"#,
                "event_id": #""\u0031""#,
            ]),
            format: .json
        )
        #expect(o.accepted == 1, "\(o.errors)")
        let f = try sink.fields()[0]
        #expect(f.title == "Amélie \"quoted\" \\ / \t\n 🎬 €")
        #expect(f.genres == ["drama", "ça"])
        #expect(f.eventID == "1")
    }

    @Test func rawUTF8IsKept() throws {
        let (o, sink) = decode(event(["title": #""Kōbe 夜 🎬""#, "language": #""ja""#]), format: .json)
        #expect(o.accepted == 1)
        #expect(try sink.fields()[0].title == "Kōbe 夜 🎬")
    }

    @Test func escapedKeysAndEnumValues() throws {
        let body = event(["event_type": #""p\u006cay""#, "content_type": #""\u006dovie""#])
            .replacingOccurrences(of: #""user_id""#, with: #""user\u005fid""#)
        let (o, sink) = decode(body, format: .json)
        #expect(o.accepted == 1, "\(o.errors)")
        #expect(sink.accepted[0].dimensions.eventType == "play")
        #expect(try sink.fields()[0].userID == "user_1")
    }
}

@Suite struct RoundTripTests {
    /// decode → EventRecordView.appendJSON → decode again gives the same record (but received_at,
    /// which the JSON carries as an unknown field the second time).
    @Test func decodeViewJSONDecode() throws {
        var sessions = SyntheticSessions(seed: 7, concurrentSessions: 5, startTime: 1_700_000_000_000_000)
        var bodies: [String] = []
        for _ in 0..<50 {
            var e: [UInt8] = []
            sessions.appendNextEvent(to: &e)
            bodies.append(String(decoding: e, as: UTF8.self))
        }
        bodies.append(event(["title": #""Am\u00e9lie \"x\"""#, "schema_version": #""1.1""#, "event_type": #""seek""#], appending: [("app", #"{"v": [1, "\u00e9"]}"#), ("n", "-1.5e3")]))
        for body in bodies {
            let (o, sink) = decode(body, format: .json)
            #expect(o.accepted == 1, "\(o.errors)")
            let first = try sink.fields()[0]
            var json: [UInt8] = []
            try sink.accepted[0].record.withUnsafeBytes { try EventRecordView($0).appendJSON(to: &json) }
            let (o2, sink2) = decode(json, format: .json)
            #expect(o2.accepted == 1, "\(String(decoding: json, as: UTF8.self)) \(o2.errors)")
            var second = try sink2.fields()[0]
            #expect(second.extra?.contains(#""received_at":"#) == true)
            second.extra = first.extra
            // The timestamp survives at microsecond precision.
            #expect(second == first)
        }
    }

    @Test func encoderAndViewAgree() throws {
        let fields = EventRecordFields(
            eventID: "id", eventType: "stop", timestampMicros: -5, receivedAtMicros: 1 << 50, userID: "u",
            deviceID: "d", sessionID: "s", ipAddress: "", contentID: "c", contentType: "ad",
            title: String(repeating: "t", count: 300), genres: ["a", "", "ç"], durationSeconds: 30, language: "fr",
            currentTimestamp: 12.25, eventSource: "roku", schemaVersion: "1.1", extra: #"{"k":1}"#
        )
        let bytes = EventRecordEncoder.encode(fields)
        try bytes.withUnsafeBytes { raw in
            let view = try EventRecordView(raw)
            #expect(EventRecordFields(view) == fields)
            #expect(view.genreCount == 3)
            #expect(Array(view.genreBytes(2)) == Array("ç".utf8))
            #expect(view.sessionIDBytes.map(Array.init) == Array("s".utf8))
            #expect(view.extraBytes.map(Array.init) == Array(#"{"k":1}"#.utf8))
        }
        // Every truncation and a trailing byte are refused, never read past.
        for n in 0..<bytes.count {
            #expect(throws: RecordFormatError.self) { try Array(bytes[0..<n]).withUnsafeBytes { _ = try EventRecordView($0) } }
        }
        #expect(throws: RecordFormatError.self) { try (bytes + [0]).withUnsafeBytes { _ = try EventRecordView($0) } }
        var v2 = bytes
        v2[0] = 2
        #expect(throws: RecordFormatError.self) { try v2.withUnsafeBytes { _ = try EventRecordView($0) } }
        // A schema version this build does not know is not an event record (another producer's;
        // what dump printed of it import refused).
        for (version, type, readable) in [("9.9", "play", false), ("1.1", "seek", true), ("1.0", "stop", true), ("", "play", false), ("1.0 ", "play", false)] {
            var other = fields
            other.schemaVersion = version
            other.eventType = type
            let read = EventRecordEncoder.encode(other).withUnsafeBytes { (try? EventRecordView($0)) != nil }
            #expect(read == readable, "schema_version \(version), event_type \(type)")
        }
        // An `extra` with blanks after its `}` (another producer's record, which the reader's check
        // allows) prints as JSON: its `}` was spliced in and a blank dropped (an outside review).
        for (extra, members) in [(#"{"a":1}\#n"#, #","a":1"#), ("{} ", ""), (#"{ "a" : [1] }  \#t"#, #", "a" : [1] "#)] {
            var spaced = fields
            spaced.extra = extra
            try EventRecordEncoder.encode(spaced).withUnsafeBytes { raw in
                let view = try EventRecordView(raw)
                var json: [UInt8] = []
                view.appendJSON(to: &json, receivedAt: false)
                let text = String(decoding: json, as: UTF8.self)
                #expect(text.hasSuffix(#""schema_version":"1.1"\#(members)}"#), "\(extra.debugDescription): \(text)")
                #expect((try? JSONSerialization.jsonObject(with: Data(json))) != nil, "\(text)")
            }
        }
    }

    /// The view gives schema event and content types as literals: every value must come back as it
    /// was. A value outside the schema's enums is refused (no event the edge accepts has one: a
    /// record with one came from another producer), with the field and the value in the message.
    @Test(arguments: ["play", "pause", "stop", "seek", "heartbeat", "buffering", "movie", "episode", "ad",
                      "", "p", "plax", "Play", "pause ", "heartbeats", "bufferinG", "adx", "movies", "épisode", "ad\u{0}"])
    func typesComeBackAsWritten(value: String) throws {
        let eventTypes = ["play", "pause", "stop", "seek", "heartbeat", "buffering"]
        let contentTypes = ["movie", "episode", "ad"]
        for (eventType, contentType) in [(value, "movie"), ("play", value)] {
            let fields = EventRecordFields(
                eventID: "id", eventType: eventType, timestampMicros: 1, receivedAtMicros: 2, userID: "u",
                deviceID: "d", sessionID: nil, ipAddress: "", contentID: "c", contentType: contentType,
                title: "t", genres: [], durationSeconds: 30, language: "fr",
                currentTimestamp: 1, eventSource: "web", schemaVersion: "1.1", extra: nil
            )
            let known = eventTypes.contains(eventType) && contentTypes.contains(contentType)
            try EventRecordEncoder.encode(fields).withUnsafeBytes { raw in
                guard known else {
                    let field = eventTypes.contains(eventType) ? "content_type" : "event_type"
                    #expect {
                        _ = try EventRecordView(raw)
                    } throws: { error in
                        (error as? RecordFormatError)?.message.hasPrefix("\(field) \"\(value)\" is not one of") == true
                    }
                    return
                }
                let view = try EventRecordView(raw)
                #expect(view.eventType == eventType)
                #expect(view.contentType == contentType)
                #expect(view.eventTypeIs("play") == (eventType == "play"))
                #expect(view.eventTypeIs("heartbeat") == (eventType == "heartbeat"))
                #expect(EventRecordFields(view) == fields)
            }
        }
    }

    /// Values no event the edge accepts can have, in records that are framed right: each refused,
    /// with the reason (a probe wrote such records to a Kafka topic; an extreme timestamp stopped
    /// every `store`, invalid UTF-8 or an `extra` that is not JSON made DuckDB refuse the lake).
    @Test func recordsWithValuesNoEventHasAreRefused() throws {
        let good = EventRecordFields(
            eventID: "id", eventType: "play", timestampMicros: 1_700_000_000_000_000, receivedAtMicros: 1_700_000_000_000_000,
            userID: "u", deviceID: "d", sessionID: "s", ipAddress: "1.2.3.4", contentID: "c", contentType: "movie",
            title: "Tïtle", genres: ["drama", "ç"], durationSeconds: 30, language: "fr", currentTimestamp: 1,
            eventSource: "web", schemaVersion: "1.0", extra: #"{"k":[1,{"x":"é"}]}"#
        )
        func problem(_ fields: EventRecordFields, patch: (inout [UInt8]) -> Void = { _ in }) -> String? {
            var bytes = EventRecordEncoder.encode(fields)
            patch(&bytes)
            return bytes.withUnsafeBytes { raw in
                do throws(RecordFormatError) {
                    _ = try EventRecordView(raw)
                    return nil
                } catch {
                    return error.message
                }
            }
        }
        #expect(problem(good) == nil)
        var limits = good
        limits.timestampMicros = EventTimestamp.earliestSeconds * 1_000_000
        limits.receivedAtMicros = EventTimestamp.latestSeconds * 1_000_000 + 999_999
        limits.currentTimestamp = 1e12
        limits.durationSeconds = .max
        limits.extra = " {} "
        #expect(problem(limits) == "extra is not a JSON object of fields the schema does not define, each once", "an extra must start with its brace, as the edge writes it")
        limits.extra = "{}"
        #expect(problem(limits) == nil)
        var cases: [(EventRecordFields, String)] = []
        for micros in [Int64.min, -(1 << 62), EventTimestamp.earliestSeconds * 1_000_000 - 1, EventTimestamp.latestSeconds * 1_000_000 + 1_000_000, 1 << 62, .max] {
            var f = good
            f.timestampMicros = micros
            cases.append((f, "timestamp \(micros) µs since 1970 is outside years 0001-9999"))
            f = good
            f.receivedAtMicros = micros
            cases.append((f, "received_at \(micros) µs since 1970 is outside years 0001-9999"))
        }
        var f = good
        f.durationSeconds = -5
        cases.append((f, "duration_seconds -5 is negative"))
        for position in [Double.nan, -1, 1e12 + 1, .infinity] {
            f = good
            f.currentTimestamp = position
            cases.append((f, "current_timestamp \(position) is not a position of 0 to 1e12"))
        }
        for empty in [\EventRecordFields.eventID, \.userID, \.deviceID, \.contentID] {
            f = good
            f[keyPath: empty] = ""
            cases.append((f, "an identifier (event_id, user_id, device_id, content_id or session_id) is empty"))
        }
        f = good
        f.sessionID = ""
        cases.append((f, "an identifier (event_id, user_id, device_id, content_id or session_id) is empty"))
        // Not JSON, and (found by `scripts/fuzz records`) keys no event's extra has: a field of the
        // schema, plainly or escaped, or a key twice (compared unescaped).
        for extra in [
            "not json{", "{", #"{"a":}"#, "{} {}", "[1]", #"{"a":"\#u{1}"}"#, "", #"{"duration_seconds":1}"#,
            #"{"x":1,"event\u005fid":"e"}"#, #"{"a":1,"a":2}"#, #"{"a":1,"\u0061":2}"#,
        ] {
            f = good
            f.extra = extra
            cases.append((f, "extra is not a JSON object of fields the schema does not define, each once"))
        }
        for extra in [#"{"received_at":"x","a":{"a":1,"duration_seconds":2},"":3,"b":[{"c":1},{"c":1}]}"#, #"{"timestamps":1}"#] {
            f = good
            f.extra = extra
            #expect(problem(f) == nil, "\(extra)")
        }
        for (fields, message) in cases {
            #expect(problem(fields) == message, "\(message)")
        }
        // Invalid UTF-8 in each string in turn: the title's first byte, a genre's, the extra's.
        for text in ["Tïtle", "ç", "é"] {
            #expect(problem(good) { bytes in
                let at = bytes.firstRange(of: Array(text.utf8))!.lowerBound
                bytes[at] = 0xFF
            } == "a string is not valid UTF-8", "\(text)")
        }
        var ascii = good
        ascii.title = "Title"
        ascii.genres = ["drama"]
        ascii.extra = nil
        #expect(problem(ascii) { bytes in bytes[bytes.firstRange(of: Array("Title".utf8))!.lowerBound] = 0xC0 } == "a string is not valid UTF-8")
        #expect(problem(ascii) { bytes in bytes[bytes.firstRange(of: Array("web".utf8))!.lowerBound] = 0x80 } == "a string is not valid UTF-8")
        // Rejected records: received_at in range, and their strings (not the raw bytes) UTF-8.
        func rejected(receivedAt: Int64, message: String = "m", raw: [UInt8] = [0xFF]) -> [UInt8] {
            var out: [UInt8] = []
            raw.withUnsafeBytes {
                RejectedRecordEncoder.encode(receivedAt: receivedAt, index: 0, reason: .invalidValue, field: "f", message: message, eventID: nil, raw: $0, into: &out)
            }
            return out
        }
        #expect(throws: Never.self) { try rejected(receivedAt: 1).withUnsafeBytes { _ = try RejectedRecordView($0) } }
        #expect(throws: RecordFormatError.self) { try rejected(receivedAt: .min).withUnsafeBytes { _ = try RejectedRecordView($0) } }
        var bad = rejected(receivedAt: 1, message: "mé")
        bad[bad.firstRange(of: Array("é".utf8))!.lowerBound] = 0xFF
        #expect(throws: RecordFormatError.self) { try bad.withUnsafeBytes { _ = try RejectedRecordView($0) } }
    }

    @Test func rejectedRecordRoundTrip() throws {
        var out: [UInt8] = []
        let raw: [UInt8] = Array(#"{"a":"é"}"#.utf8)
        raw.withUnsafeBytes {
            RejectedRecordEncoder.encode(
                receivedAt: 1_714_564_800_000_001, index: 3, reason: .invalidType, field: "genre[1]",
                message: "a \"message\"", eventID: "e-9", raw: $0, into: &out
            )
        }
        try out.withUnsafeBytes { bytes in
            let v = try RejectedRecordView(bytes)
            #expect(v.receivedAtMicros == 1_714_564_800_000_001)
            #expect(v.index == 3)
            #expect(v.reason == "invalid_type")
            #expect(v.field == "genre[1]")
            #expect(v.message == "a \"message\"")
            #expect(v.eventID == "e-9")
            #expect(Array(v.raw) == raw)
            var json: [UInt8] = []
            v.appendJSON(to: &json)
            #expect(
                String(decoding: json, as: UTF8.self)
                    == #"{"received_at":"2024-05-01T12:00:00.000001Z","index":3,"reason":"invalid_type","field":"genre[1]","message":"a \"message\"","event_id":"e-9","raw":"{\"a\":\"é\"}"}"#
            )
        }
        // Binary raw bytes come out as base64.
        var bin: [UInt8] = []
        [UInt8]([0xFF, 0x00, 0x41]).withUnsafeBytes {
            RejectedRecordEncoder.encode(receivedAt: 0, index: -1, reason: .malformedJSON, field: nil, message: "m", eventID: nil, raw: $0, into: &bin)
        }
        try bin.withUnsafeBytes { bytes in
            var json: [UInt8] = []
            try RejectedRecordView(bytes).appendJSON(to: &json)
            #expect(
                String(decoding: json, as: UTF8.self)
                    == #"{"received_at":"1970-01-01T00:00:00.000000Z","index":-1,"reason":"malformed_json","field":null,"message":"m","event_id":null,"raw_base64":"/wBB"}"#
            )
        }
        for n in 0..<bin.count {
            #expect(throws: RecordFormatError.self) { try Array(bin[0..<n]).withUnsafeBytes { _ = try RejectedRecordView($0) } }
        }
    }
}

@Suite struct OutputBufferTests {
    /// The decoder's output buffer starts at the body's size plus a little (small enough for
    /// malloc's per-thread cache for a typical single event); a record that reserves more (here 200
    /// short genres: 5 bytes reserved per genre) makes it grow, first empty, then with records in it.
    @Test func recordsThatReserveMoreThanTheBodyGrowTheBuffer() throws {
        let genres = "[" + (0..<200).map { "\"\(Character(UnicodeScalar(UInt8(97 + $0 % 26))))\"" }.joined(separator: ",") + "]"
        let one = event(["genre": genres, "event_id": #""g-1""#])
        let (o, sink) = decode(one, format: .json)
        #expect(o.accepted == 1, "\(o.errors)")
        let expected = try sink.fields()[0]
        #expect(expected.genres.count == 200 && expected.genres[27] == "b")

        let bad = event(["event_type": #""jump""#, "event_id": #""bad""#])
        let body = "[" + [one, bad, one].joined(separator: ",") + "]"
        let (o2, sink2) = decode(body, format: .json)
        #expect(o2.accepted == 2 && o2.rejected == 1, "\(o2.errors)")
        for fields in try sink2.fields() { #expect(fields == expected) }
        #expect(String(decoding: sink2.rejected[0].record, as: UTF8.self).contains(bad))
    }
}
