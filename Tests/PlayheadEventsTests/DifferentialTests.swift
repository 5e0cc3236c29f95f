import Foundation
import PlayheadEvents
import PlayheadTestSupport
import Testing

/// The decoder and JSON Schema (Python `jsonschema` over schemas/1.0.json and 1.1.json) must agree on
/// accept/reject for a corpus of valid and invalid events.
@Suite struct DifferentialTests {
    /// Many variations of valid and invalid events.
    static func corpus() -> [[UInt8]] {
        var out: [String] = []
        out.append(event())
        // Synthetic sessions: all valid.
        var sessions = SyntheticSessions(seed: 11, concurrentSessions: 8, startTime: 1_714_564_800_000_000)
        for _ in 0..<200 {
            var e: [UInt8] = []
            sessions.appendNextEvent(to: &e)
            out.append(String(decoding: e, as: UTF8.self))
        }
        let typeValues = ["1", "-1", "0", "1.5", "true", "false", "null", "[]", "{}", #""""#, #""x""#, #"["x"]"#, #"{"a":1}"#]
        for (key, _) in baseMembers {
            out.append(event(without: key))
            for v in typeValues { out.append(event([key: v])) }
        }
        for key in ["session_id", "schema_version"] {
            for v in typeValues { out.append(event([key: v])) }
        }
        for v in ["play", "pause", "stop", "seek", "heartbeat", "buffering", "PLAY", "", "play "] {
            out.append(event(["event_type": "\"\(v)\""]))
            out.append(event(["event_type": "\"\(v)\"", "schema_version": #""1.1""#]))
            out.append(event(["event_type": "\"\(v)\"", "schema_version": #""1.0""#]))
        }
        for v in ["1.0", "1.1", "1.2", "2.0", "", "1", "1.00"] { out.append(event(["schema_version": "\"\(v)\""])) }
        for v in ["movie", "episode", "ad", "Movie", "series", ""] { out.append(event(["content_type": "\"\(v)\""])) }
        let timestamps = [
            "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.1Z", "2024-05-01T12:00:00.123456789+05:30", "2024-05-01t12:00:00z",
            "2024-05-01 12:00:00-08:00", "2016-12-31T23:59:60Z", "2024-05-01T12:00:00", "2024-05-01", "12:00:00Z",
            "2024-13-01T00:00:00Z", "2024-00-10T00:00:00Z", "2024-05-32T00:00:00Z", "2024-05-01T25:00:00Z",
            "2024-05-01T12:61:00Z", "2024-05-01T12:00:61Z", "2024-05-01T12:00:00.Z", "2024-05-01T12:00:00+0530",
            "2024-05-01T12:00:00+24:00", "2024-05-01T12:00:00+05:60", "2024-5-01T12:00:00Z", "x", "",
            "2024-05-01T12:00:00-0000", "2024-05-01T12:00:00+05", "2024-05-01T12:00:00.5-2359", "2024-05-01T12:00:00+2400",
            "2024-05-01T12:00:00+056", "2024-05-01T12:00:00+05:", "0001-01-01T00:00:00", "0001-01-01T00:00:00+01",
            "2023-02-29T12:00:00", "2024-02-29T12:00:00", "2024-04-31T00:00:00Z", "1900-02-29T00:00:00+0100", "2000-02-29T00:00:00-05",
            "2024-05-01T12:00:00ZZ", "2024-05-01T12:00:00 Z", "02024-05-01T12:00:00Z",
            // Years 0001-9999 in UTC: an offset or a leap second can carry a date past either end.
            "0001-01-01T00:00:00Z", "0000-12-31T23:59:59Z", "0000-12-31T23:59:59-00:01", "0001-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:60Z", "9999-12-31T23:59:59-23:59", "0000-03-01T00:00:00Z",
            // A line feed at the end, which Python's `$` let through (a review).
            #"2024-05-01T12:00:00Z\n"#, #"2024-05-01T12:00:00+05:30\n"#, #"2024-05-01T12:00:00\n"#, #"2024-05-01T12:00:00Z\r"#,
        ]
        for t in timestamps { out.append(event(["timestamp": "\"\(t)\""])) }
        for v in [
            "0", "-0", "1", "7260", "-1", "1.0", "1.5", "1e3", "1E+2", "-1.0", "9223372036854775807", "9223372036854775808",
            "99999999999999999999999", "1e30", "0.0", "2.5e-1",
            // Decided on the decimal text, not on a double (a review): not whole though its double is,
            // and whole at the top of the range though its double is past it.
            "39465301988822401.6", "6339237309395338239.8", "9223372036854775807.0", "9.223372036854775807e18", "9223372036854775807.5",
        ] { out.append(event(["duration_seconds": v])) }
        for v in ["0", "-0", "0.0", "120.5", "1e12", "1e13", "1000000000001", "-0.001", "-1", "1e-7", "3.14159265358979323846", "1e400"] {
            out.append(event(["current_timestamp": v]))
        }
        for n in [0, 1, 1023, 1024, 1025, 5000] {
            let s = "\"" + String(repeating: "a", count: n) + "\""
            for key in ["title", "event_id", "language", "ip_address", "event_source", "session_id"] { out.append(event([key: s])) }
            out.append(event(["genre": "[\(s)]"]))
        }
        for g in ["[]", #"["a"]"#, #"["a","b","c"]"#, #"["a",1]"#, #"[null]"#, #"[["a"]]"#, #""a""#, #"["a",]"#] {
            out.append(event(["genre": g]))
        }
        // Unknown fields and nesting.
        for d in [1, 5, 30, 31, 32, 33, 40] {
            out.append(event(appending: [("deep", nested(d))]))
            out.append(event(appending: [("deep", String(repeating: #"{"a":"#, count: d) + "1" + String(repeating: "}", count: d))]))
        }
        out.append(event(appending: [("extra", #"{"k":[1,2,{"z":null}]}"#), ("n", "1e999"), ("b", "false")]))
        out.append(event(appending: [("x", "1"), ("x", "2")]))
        // Keys must be unique in the event object; a nested unknown object is kept as it was sent.
        out.append(event(appending: [("x", #"{"a":1,"a":2}"#)]))
        out.append(event(appending: [("title", #""again""#)]))
        // Escapes.
        for s in [
            #""\u00e9""#, #""\ud83c\udfac""#, #""\ud800""#, #""\udc00""#, #""\ud800\u0041""#, #""\"\\\/\b\f\n\r\t""#,
            #""\u0000""#, #""\x41""#, #""\u12""#, #""a\u0022b""#,
        ] {
            out.append(event(["title": s]))
            out.append(event(appending: [("note", s)]))
        }
        out.append(event(["event_type": #""p\u006cay""#]))
        out.append(event(["schema_version": #""1\u002e1""#, "event_type": #""seek""#]))
        // Syntax.
        let base = event()
        out += [
            String(base.dropLast()), base + ",", "1", "\"x\"", "null", "{}", base.replacingOccurrences(of: ":", with: " : "),
            base.replacingOccurrences(of: ",", with: " ,\t"), " " + base + " ", base.replacingOccurrences(of: "\"play\"", with: "'play'"),
            base.replacingOccurrences(of: "120.5", with: "NaN"), base.replacingOccurrences(of: "120.5", with: "Infinity"),
            base.replacingOccurrences(of: "120.5", with: "0120.5"), base.replacingOccurrences(of: "120.5", with: "120."),
            base.replacingOccurrences(of: "120.5", with: ".5"), base.replacingOccurrences(of: "120.5", with: "+1"),
            base.replacingOccurrences(of: "7260", with: "0x10"), "{\"title\":\"a\tb\"}",
            base.replacingOccurrences(of: "\"user_id\"", with: "\"user\\u005fid\""),
            base.replacingOccurrences(of: "\"user_id\"", with: "\"user_ID\""),
        ]
        var bytes = out.map { Array($0.utf8) }
        // Invalid UTF-8 in a value and in a key.
        for bad: [UInt8] in [[0xFF], [0xC3], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xC3, 0xA9]] {
            var b = Array(event(["title": #""AB""#]).utf8)
            let at = b.firstRange(of: Array("AB".utf8))!.lowerBound
            b.replaceSubrange(at..<(at + 1), with: bad)
            bytes.append(b)
            var k = Array(event(appending: [("kAB", "1")]).utf8)
            let kat = k.firstRange(of: Array("kAB".utf8))!.lowerBound + 1
            k.replaceSubrange(kat..<(kat + 1), with: bad)
            bytes.append(k)
        }
        // Events over 32 KiB.
        bytes.append(Array(event(appending: [("pad", "\"" + String(repeating: "p", count: 32 * 1024) + "\"")]).utf8))
        // Random single-byte mutations of valid events (deterministic).
        var rng: UInt64 = 0x1234_5678
        func next() -> Int {
            rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: rng >> 33)
        }
        let seeds = Array(bytes.prefix(30))
        let alphabet = Array(#"{}[]",:0123456789.-eE"\ atn"#.utf8)
        for _ in 0..<600 {
            var b = seeds[next() % seeds.count]
            let i = next() % b.count
            switch next() % 3 {
            case 0: b[i] = alphabet[next() % alphabet.count]
            case 1: b.remove(at: i)
            default: b.insert(alphabet[next() % alphabet.count], at: i)
            }
            bytes.append(b)
        }
        return bytes
    }

    /// The decoder expects each event's keys in the previous event's order (a fast path); what it
    /// decides must not depend on what came before. Every object of the corpus, and the same with
    /// its keys in other orders and spacings, is decoded alone and as one line of a single NDJSON
    /// body: the same records, the same errors.
    @Test func eventsDecodeTheSameAloneAndAfterOthers() throws {
        var objects = Self.corpus().filter { $0.first == UInt8(ascii: "{") && !$0.contains(0x0A) }
        // Key orders other than the schema's: reversed, rotated, and with spaces around the colon.
        func member(_ m: (String, String)) -> String { "\"\(m.0)\":\(m.1)" }
        let schemaOrder: [String] = baseMembers.map(member)
        let reversedOrder: [String] = baseMembers.reversed().map(member)
        let rotated: [String] = Array(schemaOrder.dropFirst(5)) + Array(schemaOrder.prefix(5))
        let spaced: [String] = baseMembers.map { m in "\"\(m.0)\" : \(m.1)" }
        let twice: [String] = schemaOrder + [#""event_id":"twice""#]
        let unknownFirst: [String] = [#""x":1"#] + schemaOrder
        let reordered: [[UInt8]] = [reversedOrder, rotated, spaced, twice, unknownFirst].map { members in
            Array(("{" + members.joined(separator: ",") + "}").utf8)
        }
        for _ in 0..<3 { objects += reordered }
        let decoder = EventDecoder()
        // Messages of malformed lines give byte offsets in the body: compared are reason, field, id.
        func verdict(_ error: EventValidationError) -> String { "\(error.reason.rawValue) \(error.field ?? "-") \(error.eventID ?? "-")" }
        var alone: [(records: [[UInt8]], errors: [String])] = []
        for object in objects {
            var sink = CollectingSink()
            let outcome = object.withUnsafeBytes { decoder.decode($0, format: .ndjson, receivedAt: testReceivedAt, into: &sink) }
            alone.append((sink.accepted.map(\.record), outcome.errors.map(verdict)))
        }
        #expect(alone.contains { !$0.records.isEmpty } && alone.contains { !$0.errors.isEmpty })
        var differences: [String] = []
        // Bodies of at most 1,000 events (the limit of a request).
        for first in stride(from: 0, to: objects.count, by: 500) {
            let lines = first..<min(first + 500, objects.count)
            let body = Array(objects[lines].joined(separator: [0x0A]))
            var sink = CollectingSink()
            let outcome = body.withUnsafeBytes { decoder.decode($0, format: .ndjson, receivedAt: testReceivedAt, into: &sink) }
            for index in lines {
                let records = sink.accepted.filter { $0.index == index - first }.map(\.record)
                let errors = outcome.errors.filter { $0.index == index - first }.map(verdict)
                if records != alone[index].records || errors != alone[index].errors {
                    differences.append(
                        "#\(index) alone: \(alone[index].errors), after others: \(errors): \(String(decoding: objects[index].prefix(200), as: UTF8.self))"
                    )
                }
            }
        }
        #expect(differences.isEmpty, "\(differences.count) differences:\n\(differences.prefix(10).joined(separator: "\n"))")
    }

    @Test func decoderAgreesWithJSONSchema() throws {
        let corpus = Self.corpus()
        let decoder = EventDecoder()
        var verdicts: [(Bool, EventValidationError?)] = []
        for event in corpus {
            var sink = CollectingSink()
            let outcome = event.withUnsafeBytes { decoder.decode($0, format: .json, receivedAt: 0, into: &sink) }
            // One event per corpus entry: an array body is not an event.
            let isObject = event.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "{")
            verdicts.append((isObject && outcome.accepted == 1 && outcome.rejected == 0, outcome.errors.first))
        }
        let dir = try TemporaryDirectory(prefix: "events-diff")
        defer { withExtendedLifetime(dir) {} }  // removed on deinit: keep it until the test ends
        let input = dir.appending("corpus.b64")
        try corpus.map { Data($0).base64EncodedString() }.joined(separator: "\n").write(to: input, atomically: true, encoding: .utf8)
        let script = TestEnvironment.repoRoot.appendingPathComponent("scripts/events-jsonschema-check.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.python)
        process.arguments = [script]
        process.standardInput = try FileHandle(forReadingFrom: input)
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let lines = String(decoding: output, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
        try #require(lines.count == corpus.count, "python judged \(lines.count) of \(corpus.count)")
        var disagreements: [String] = []
        var accepted = 0
        for (k, line) in lines.enumerated() {
            let schemaAccepts = line.hasPrefix("1")
            if verdicts[k].0 { accepted += 1 }
            if schemaAccepts != verdicts[k].0 {
                let text = String(decoding: corpus[k].prefix(300), as: UTF8.self)
                disagreements.append("#\(k) schema=\(line) decoder=\(verdicts[k].1.map { "\($0.reason.rawValue) \($0.field ?? "")" } ?? "accepted"): \(text)")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements:\n\(disagreements.prefix(20).joined(separator: "\n"))")
        // The corpus holds both kinds in number.
        #expect(accepted > 250)
        #expect(corpus.count - accepted > 400)
    }
}
