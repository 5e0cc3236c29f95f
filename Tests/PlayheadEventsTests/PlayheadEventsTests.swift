import Testing
import PlayheadEvents

@Suite struct AcceptTests {
    /// Strings are scanned 16 bytes, then 8, then one at a time: a special byte (the closing quote,
    /// an escape, a non-ASCII character, a control character, invalid UTF-8) is found at every
    /// position of those blocks, and what follows it is scanned on.
    @Test func specialBytesAtEveryPosition() throws {
        for length in 0..<40 {
            let plain = String((0..<length).map { Character(UnicodeScalar(UInt8(ascii: "a") + UInt8($0 % 26))) })
            func title(_ json: String) -> String? {
                let (outcome, sink) = decode(event(["title": json]), format: .json)
                return outcome.accepted == 1 ? (try? sink.fields().first?.title) ?? nil : nil
            }
            #expect(title("\"" + plain + "\"") == plain, "\(length)")
            for k in 0...length {
                let head = String(plain.prefix(k)), tail = String(plain.dropFirst(k))
                #expect(title("\"" + head + #"\n"# + tail + "\"") == head + "\n" + tail, "escape at \(k) of \(length)")
                #expect(title("\"" + head + "é" + tail + "\"") == head + "é" + tail, "é at \(k) of \(length)")
                #expect(title("\"" + head + #"\u00e9"# + tail + "\"") == head + "é" + tail, "\\u at \(k) of \(length)")
                let control = decode(event(["title": "\"" + head + "\t" + tail + "\""]), format: .json).outcome
                #expect(control.errors.first?.reason == .malformedJSON, "tab at \(k) of \(length)")
                var bytes = Array(event(["title": "\"" + head + "#" + tail + "\""]).utf8)
                let at = bytes.firstIndex(of: UInt8(ascii: "#"))!
                bytes[at] = 0xFF
                let invalid = decode(bytes, format: .json).outcome
                #expect(invalid.errors.first?.reason == .invalidUTF8 && invalid.errors.first?.field == "title", "0xFF at \(k) of \(length)")
            }
        }
    }

    @Test func singleEventBecomesARecord() throws {
        let (outcome, sink) = decode(event(), format: .json)
        #expect(outcome.accepted == 1)
        #expect(outcome.rejected == 0)
        let f = try #require(try sink.fields().first)
        #expect(f.eventID == "e-1")
        #expect(f.eventType == "play")
        #expect(f.timestampMicros == EventTimestamp.parseMicros("2024-05-01T12:00:00Z")! + 250_000)
        #expect(f.receivedAtMicros == testReceivedAt)
        #expect(f.userID == "user_1")
        #expect(f.deviceID == "device_1")
        #expect(f.sessionID == nil)
        #expect(f.ipAddress == "192.168.1.77")
        #expect(f.contentID == "media_123")
        #expect(f.contentType == "movie")
        #expect(f.title == "The Long Night")
        #expect(f.genres == ["drama", "thriller"])
        #expect(f.durationSeconds == 7260)
        #expect(f.language == "en")
        #expect(f.currentTimestamp == 120.5)
        #expect(f.eventSource == "web_app")
        #expect(f.schemaVersion == "1.0")
        #expect(f.extra == nil)
        #expect(sink.accepted[0].key == Array("device_1".utf8))
        #expect(sink.accepted[0].dimensions == EventDimensions(eventType: "play", contentType: "movie", eventSource: "web_app"))
        // The decoder's record is byte-identical to the value encoder's.
        #expect(sink.accepted[0].record == EventRecordEncoder.encode(f))
    }

    @Test func sessionIDIsTheKey() throws {
        let (outcome, sink) = decode(event(["session_id": #""s-9""#]), format: .json)
        #expect(outcome.accepted == 1)
        #expect(sink.accepted[0].key == Array("s-9".utf8))
        #expect(try sink.fields()[0].sessionID == "s-9")
        // null session_id is the same as absent.
        let (o2, s2) = decode(event(["session_id": "null"]), format: .json)
        #expect(o2.accepted == 1)
        #expect(try s2.fields()[0].sessionID == nil)
        #expect(s2.accepted[0].key == Array("device_1".utf8))
    }

    @Test func unknownDimensionsAreBounded() throws {
        let (_, sink) = decode(event(["event_source": #""my-own-app-42""#]), format: .json)
        #expect(sink.accepted[0].dimensions.eventSource == "other")
        #expect(try sink.fields()[0].eventSource == "my-own-app-42")
    }

    @Test func unknownFieldsAreKeptVerbatim() throws {
        let extras = [("app_version", #""3.2.1""#), ("nested", #"{"a": [1, 2.50, {"b": null}], "c": "\u00e9"}"#), ("flag", "true")]
        let (outcome, sink) = decode(event(appending: extras), format: .json)
        #expect(outcome.accepted == 1)
        let f = try sink.fields()[0]
        #expect(f.extra == #"{"app_version":"3.2.1","nested":{"a": [1, 2.50, {"b": null}], "c": "\u00e9"},"flag":true}"#)
    }

    @Test func schemaVersions() throws {
        #expect(decode(event(["schema_version": #""1.0""#]), format: .json).outcome.accepted == 1)
        let (o, s) = decode(event(["schema_version": #""1.1""#, "event_type": #""heartbeat""#]), format: .json)
        #expect(o.accepted == 1)
        #expect(try s.fields()[0].schemaVersion == "1.1")
        #expect(s.accepted[0].dimensions.eventType == "heartbeat")
        for type in ["seek", "buffering", "heartbeat"] {
            let e = rejection(event(["event_type": "\"\(type)\""]))
            #expect(e?.reason == .invalidValue, "1.0 does not know \(type)")
            #expect(e?.field == "event_type")
            #expect(rejection(event(["event_type": "\"\(type)\"", "schema_version": #""1.1""#])) == nil)
        }
    }

    @Test func integralFloatsAreIntegers() throws {
        let (o, s) = decode(event(["duration_seconds": "1.0e3"]), format: .json)
        #expect(o.accepted == 1)
        #expect(try s.fields()[0].durationSeconds == 1000)
        #expect(rejection(event(["duration_seconds": "-0"])) == nil)
        #expect(rejection(event(["duration_seconds": "9223372036854775807"])) == nil)
        // Decided on the decimal text: a Double would round these to integers (or past Int64.max).
        for (text, value) in [
            ("9223372036854775807.0", Int64.max), ("922337203685477580.7e1", Int64.max), ("10.0", 10), ("0.0e-400", 0),
            ("1000e-3", 1), ("0.00120e4", 12), ("-0.0", 0), ("12345678901234567890e-1", 1_234_567_890_123_456_789),
        ] {
            let (o, s) = decode(event(["duration_seconds": text]), format: .json)
            #expect(o.accepted == 1, "\(text)")
            #expect(try s.fields().first?.durationSeconds == value, "\(text)")
        }
        for text in ["1.0000000000000000001", "1e-400", "0.5", "9223372036854775806.5", "1234.5e-1", "-0.0001"] {
            let error = rejection(event(["duration_seconds": text]))
            #expect(error?.reason == .invalidType, "\(text)")
            #expect(error?.field == "duration_seconds")
        }
        for text in ["9223372036854775808.0", "1e19", "1e400", "1.5e99999999999999"] {
            let error = rejection(event(["duration_seconds": text]))
            #expect(error?.reason == .invalidValue, "\(text)")
            #expect(error?.message.contains("out of range") == true, "\(text)")
        }
        #expect(rejection(event(["duration_seconds": "-2.0e0"]))?.reason == .negativeNumber)
        #expect(rejection(event(["duration_seconds": "-9223372036854775809.0"]))?.reason == .negativeNumber)
    }

    @Test func numbersParseExactly() throws {
        for text in ["0", "0.1", "120.5", "3599.999", "1e2", "1234567890.12345", "999999999999.999", "0.000001", "123456789012.34567", "5E-1"] {
            let (o, s) = decode(event(["current_timestamp": text]), format: .json)
            try #require(o.accepted == 1, "\(text)")
            #expect(try s.fields()[0].currentTimestamp == Double(text)!, "\(text)")
        }
    }
}

@Suite struct RejectionTests {
    @Test func missingFields() {
        for (key, _) in baseMembers {
            let e = rejection(event(without: key))
            #expect(e?.reason == .missingField, "\(key)")
            #expect(e?.field == key)
            #expect(e?.index == 0)
            if key != "event_id" { #expect(e?.eventID == "e-1") } else { #expect(e?.eventID == nil) }
        }
    }

    @Test func invalidTypes() {
        let wrong: [String: [String]] = [
            "event_id": ["1", "null", "[]", "{}", "true"],
            "title": ["5", "null"],
            "genre": [#""drama""#, "{}", "null", "3"],
            "duration_seconds": [#""60""#, "null", "true", "[]", "1.5"],
            "current_timestamp": [#""1.5""#, "null", "false"],
            "timestamp": ["1714564800", "null"],
            "schema_version": ["1.0", "null"],
            "session_id": ["5", "[]"],
        ]
        for (key, values) in wrong {
            for value in values {
                let e = rejection(event([key: value]))
                #expect(e?.reason == .invalidType, "\(key)=\(value) gave \(String(describing: e))")
                #expect(e?.field == key)
            }
        }
        let e = rejection(event(["genre": #"["a", 3, "c"]"#]))
        #expect(e?.reason == .invalidType)
        #expect(e?.field == "genre[1]")
    }

    @Test func invalidValues() {
        let cases: [(String, String)] = [
            ("event_type", #""PLAY""#), ("event_type", #""""#), ("content_type", #""film""#),
            ("event_id", #""""#), ("user_id", #""""#), ("device_id", #""""#), ("content_id", #""""#),
            ("session_id", #""""#), ("duration_seconds", "9223372036854775808"),
            ("duration_seconds", "123456789012345678901234567890"), ("current_timestamp", "1e400"),
            ("current_timestamp", "1e13"), ("duration_seconds", "1e300"),
        ]
        for (key, value) in cases {
            let e = rejection(event([key: value]))
            #expect(e?.reason == .invalidValue, "\(key)=\(value) gave \(String(describing: e))")
            #expect(e?.field == key)
        }
    }

    @Test func negativeNumbers() {
        // However far below zero, and however written: Int64.min and beyond, -1e30, and positions
        // below -1e12 were `invalid_value` "out of range" (an outside review).
        let farBelow = [
            ("duration_seconds", "-9223372036854775808"), ("duration_seconds", "-9223372036854775809"), ("duration_seconds", "-1e30"),
            ("current_timestamp", "-2e12"), ("current_timestamp", "-1e400"),
        ]
        for (key, value) in [("duration_seconds", "-1"), ("current_timestamp", "-0.5"), ("duration_seconds", "-2.0")] + farBelow {
            let e = rejection(event([key: value]))
            #expect(e?.reason == .negativeNumber, "\(key)=\(value)")
            #expect(e?.field == key)
            #expect(e?.eventID == "e-1")
        }
    }

    @Test func stringLimits() {
        var config = EventDecoderConfiguration()
        config.maxStringBytes = 32
        #expect(rejection(event(["title": "\"" + String(repeating: "a", count: 32) + "\""]), configuration: config) == nil)
        let e = rejection(event(["title": "\"" + String(repeating: "a", count: 33) + "\""]), configuration: config)
        #expect(e?.reason == .stringTooLong)
        #expect(e?.field == "title")
        // Counted after unescaping: 32 escapes of one byte each fit.
        #expect(rejection(event(["title": "\"" + String(repeating: "\\u0041", count: 32) + "\""]), configuration: config) == nil)
        // é is two bytes.
        #expect(rejection(event(["title": "\"" + String(repeating: "é", count: 16) + "\""]), configuration: config) == nil)
        #expect(rejection(event(["title": "\"" + String(repeating: "é", count: 17) + "\""]), configuration: config)?.reason == .stringTooLong)
        let g = rejection(event(["genre": "[\"ok\",\"" + String(repeating: "g", count: 33) + "\"]"]), configuration: config)
        #expect(g?.reason == .stringTooLong)
        #expect(g?.field == "genre[1]")
    }

    @Test func eventTooLarge() {
        var config = EventDecoderConfiguration()
        config.maxEventBytes = 600
        let big = event(appending: [("padding", "\"" + String(repeating: "x", count: 600) + "\"")])
        for format in [EventBodyFormat.json, .ndjson] {
            let (outcome, sink) = decode(big, format: format, configuration: config)
            #expect(outcome.rejected == 1)
            #expect(outcome.errors[0].reason == .eventTooLarge)
            #expect(outcome.errors[0].index == 0)
            let raw = sink.rejected[0].record.withUnsafeBytes { Array(try! RejectedRecordView($0).raw) }
            #expect(raw == Array(big.utf8))
        }
        // The rejection names the event's id in NDJSON too, as in a JSON body (NDJSON gave null:
        // an outside review), and event_too_large wins over the line's other problems.
        for format in [EventBodyFormat.json, .ndjson] {
            let (o2, _) = decode([event(["event_id": #""small""#]), big].joined(separator: format == .json ? "," : "\n").wrappedFor(format), format: format, configuration: config)
            #expect(o2.accepted == 1, "\(format)")
            #expect(o2.errors.map(\.index) == [1], "\(format)")
            #expect(o2.errors.first?.eventID == "e-1", "\(format): \(o2.errors)")
        }
        // An id past the string limit is named by its first 1,024 bytes and "…" (an id of
        // megabytes was kept beside the event, twice its size: a review).
        let longID = String(repeating: "i", count: 1023) + "é" + String(repeating: "j", count: 5000)
        let (longIDOutcome, _) = decode(event(["event_id": "\"" + longID + "\""]), format: .json, configuration: config)
        #expect(longIDOutcome.errors.first?.eventID == String(repeating: "i", count: 1023) + "…", "\(String(describing: longIDOutcome.errors.first?.eventID?.prefix(40)))")
        let badAndBig = event(["event_type": #""jump""#], appending: [("padding", "\"" + String(repeating: "x", count: 600) + "\"")])
        let (ndjsonBad, _) = decode(badAndBig + "\n" + event(), format: .ndjson, configuration: config)
        #expect(ndjsonBad.errors.map(\.reason) == [.eventTooLarge] && ndjsonBad.errors.first?.eventID == "e-1", "\(ndjsonBad.errors)")
        // A line or element over the limit that is not an object, or not JSON, is too large all the same.
        let longString = "\"" + String(repeating: "s", count: 700) + "\""
        let brokenBig = "{\"event_id\": \"b\", " + String(repeating: "x", count: 700)
        let (lines, linesSink) = decode([longString, brokenBig, event()].joined(separator: "\n"), format: .ndjson, configuration: config)
        #expect(lines.errors.map(\.reason) == [.eventTooLarge, .eventTooLarge] && lines.accepted == 1, "\(lines.errors)")
        #expect(lines.errors.allSatisfy { $0.eventID == nil })
        #expect(linesSink.rejected.count == 2)
        let (element, _) = decode("[" + longString + "," + event() + "]", format: .json, configuration: config)
        #expect(element.errors.map(\.reason) == [.eventTooLarge] && element.accepted == 1, "\(element.errors)")
        #expect(decode("[\"short\"]", format: .json, configuration: config).outcome.errors.map(\.reason) == [.notAnObject])
    }

    @Test func tooManyEvents() {
        var config = EventDecoderConfiguration()
        config.maxEventsPerRequest = 3
        let events = (0..<5).map { event(["event_id": "\"id-\($0)\""]) }
        for (body, format) in [("[" + events.joined(separator: ",") + "]", EventBodyFormat.json), (events.joined(separator: "\n"), .ndjson)] {
            let (outcome, sink) = decode(body, format: format, configuration: config)
            #expect(outcome.accepted == 3)
            #expect(outcome.rejected == 2)
            #expect(outcome.errors.map(\.index) == [3, 4])
            #expect(outcome.errors.allSatisfy { $0.reason == .tooManyEvents })
            let raws = sink.rejected.map { r in r.record.withUnsafeBytes { String(decoding: try! RejectedRecordView($0).raw, as: UTF8.self) } }
            #expect(raws == [events[3], events[4]])
        }
        // Up to twice the limit, the events past it are rejected one by one; one more and the body
        // is refused whole, kept as one rejected record (a review sent 600,000 lines `1` in 1,217
        // bytes of gzip: 600,000 rejected records and an 88 MB answer).
        let six = (0..<6).map { event(["event_id": "\"id-\($0)\""]) }
        for (body, format) in [("[" + six.joined(separator: ",") + "]", EventBodyFormat.json), (six.joined(separator: "\n"), .ndjson)] {
            let (outcome, _) = decode(body, format: format, configuration: config)
            #expect(outcome.accepted == 3 && outcome.errors.map(\.index) == [3, 4, 5], "\(format)")
        }
        let seven = six + [event()]
        let ones = [String](repeating: "1", count: 100)
        let refusedBodies: [(String, EventBodyFormat)] = [
            ("[" + seven.joined(separator: ",") + "]", .json), (seven.joined(separator: "\n"), .ndjson),
            ("[" + ones.joined(separator: ",") + "]", .json), (ones.joined(separator: "\n"), .ndjson),
        ]
        for (body, format) in refusedBodies {
            let (outcome, sink) = decode(body, format: format, configuration: config)
            #expect(outcome.accepted == 0 && sink.accepted.isEmpty, "\(format)")
            let indexes = outcome.errors.map { $0.index }
            #expect(indexes == [-1] && outcome.errors.first?.reason == .tooManyEvents, "\(format)")
            #expect(outcome.errors.first?.message.contains("more than 6 events") == true)
            let raws = sink.rejected.map { r in r.record.withUnsafeBytes { String(decoding: try! RejectedRecordView($0).raw, as: UTF8.self) } }
            #expect(raws == [body])
        }
        // An element past twice the limit that is not JSON makes the body malformed, not one of
        // too many events (413 said so of `[1,1,1,1,1,1,]`, an outside review).
        for body in ["[1,1,1,1,1,1,]", "[1,1,1,1,1,1, x]"] {
            let (outcome, _) = decode(body, format: .json, configuration: config)
            #expect(outcome.errors.map(\.reason) == [.malformedJSON], "\(body): \(outcome.errors)")
        }
        // import sets no limit: twice Int.max does not overflow.
        config.maxEventsPerRequest = Int.max
        #expect(config.refusedEventCount == Int.max)
        #expect(decode("[" + six.joined(separator: ",") + "]", format: .json, configuration: config).0.accepted == 6)
    }

    @Test func malformedJSON() {
        let bodies = [
            #"{"event_id": "x""#, "[" + event() + ",", "{" , #"{"a":1,}"#, #"{'a':1}"#, #"{"a":NaN}"#,
            #"{"a":01}"#, #"{"a":1.}"#, #"{"a":"\x"}"#, "{\"a\":\"tab\there\"}", #"{"a":tru}"#, "[" + event() + "] x",
            #"{"a":"\u12G4"}"#, "[" + event() + " " + event() + "]",
            // Past the nesting limit too (only brackets were counted there: an outside review).
            "[" + event() + "," + event(appending: [("x", String(repeating: "[", count: 40) + "{{ this is ; not json" + String(repeating: "]", count: 42))]) + "]",
            "[" + event() + "," + event(appending: [("x", String(repeating: "[", count: 40) + "1}" + String(repeating: "]", count: 39))]) + "]",
            "[" + event() + "," + event(appending: [("x", String(repeating: "{\"k\":", count: 40) + "1,}" + String(repeating: "}", count: 39))]) + "]",
            "[" + event() + "," + event(appending: [("x", String(repeating: "[", count: 40) + "1 2" + String(repeating: "]", count: 40))]) + "]",
        ]
        for body in bodies {
            let (outcome, sink) = decode(body, format: .json)
            #expect(outcome.accepted == 0, "\(body)")
            #expect(outcome.errors.count == 1, "\(body)")
            #expect(outcome.errors.first?.reason == .malformedJSON, "\(body): \(outcome.errors)")
            #expect(outcome.errors.first?.index == -1)
            let raw = sink.rejected.first.map { r in r.record.withUnsafeBytes { Array(try! RejectedRecordView($0).raw) } }
            #expect(raw == Array(body.utf8))
        }
    }

    @Test func malformedArrayAcceptsNothing() {
        let body = "[" + event() + "," + event(["event_id": #""e-2""#]) + ", {\"broken\": }]"
        let (outcome, sink) = decode(body, format: .json)
        #expect(outcome.accepted == 0)
        #expect(sink.accepted.isEmpty)
        #expect(outcome.errors.map(\.index) == [-1])
    }

    @Test func invalidUTF8() {
        var bytes = Array(event(["title": #""ABC""#]).utf8)
        let at = bytes.firstRange(of: Array("ABC".utf8))!.lowerBound
        for bad: [UInt8] in [[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xE2, 0x82], [0xF4, 0x90, 0x80, 0x80]] {
            var b = bytes
            b.replaceSubrange(at..<(at + 1), with: bad)
            let (outcome, sink) = decode(b, format: .json)
            #expect(outcome.errors.first?.reason == .invalidUTF8, "\(bad)")
            #expect(outcome.errors.first?.field == "title")
            #expect(outcome.errors.first?.message == "title is not valid UTF-8", "\(String(describing: outcome.errors.first))")
            let raw = sink.rejected.first.map { r in r.record.withUnsafeBytes { Array(try! RejectedRecordView($0).raw) } }
            #expect(raw == b)
        }
        bytes = Array(event().utf8)
        for escape in [#""\ud800""#, #""\udc00x""#, #""\ud800\u0041""#, #""\ud83c""#] {
            let rejected = rejection(event(["title": escape]))
            #expect(rejected?.reason == .invalidUTF8, "\(escape)")
            // Half a pair, as JavaScript writes a string cut inside an emoji: said so, not "not UTF-8".
            #expect(rejected?.message.hasPrefix("title holds a \\u escape of half a surrogate pair") == true, "\(String(describing: rejected))")
        }
        // In an unknown field too, which the rejection names (it named no field: an outside
        // review), nested or not; a key that is not valid UTF-8 cannot be named.
        for value in [#""\udfff""#, #"{"a":["\ud800"]}"#] {
            let unknown = rejection(event(appending: [("note", value)]))
            #expect(unknown?.reason == .invalidUTF8 && unknown?.field == "note", "\(String(describing: unknown))")
            #expect(unknown?.message.hasPrefix("note: a string holds a \\u escape of half a surrogate pair") == true, "\(String(describing: unknown))")
        }
        // And in a genre and a key, whose bytes are fine: said so there too ("not valid UTF-8" was, a review).
        let genre = rejection(event(["genre": #"["drama","\ud83d"]"#]))
        #expect(genre?.field == "genre[1]" && genre?.message.hasPrefix("genre[1] holds a \\u escape of half a surrogate pair") == true, "\(String(describing: genre))")
        let key = rejection(event(appending: [(#"n\ud83d"#, "1")]))
        #expect(key?.reason == .invalidUTF8 && key?.message.hasPrefix("a key holds a \\u escape of half a surrogate pair") == true, "\(String(describing: key))")
        var badKey = Array(event(appending: [("nXte", "1")]).utf8)
        badKey[badKey.firstRange(of: Array("nXte".utf8))!.lowerBound + 1] = 0xFF
        let (keyOutcome, _) = decode(badKey, format: .json)
        #expect(keyOutcome.errors.map(\.reason) == [.invalidUTF8] && keyOutcome.errors.first?.field == nil, "\(keyOutcome.errors)")
        // An escaped key is named unescaped; a later problem does not take the first one's place.
        let escaped = rejection(event(appending: [(#"n\u006fte"#, #""\udfff""#), ("other", #""\ud800""#)]))
        #expect(escaped?.field == "note", "\(String(describing: escaped))")
        // A duplicate unknown key keeps its own error.
        let twice = rejection(event(appending: [("note", "1"), ("note", "2")]))
        #expect(twice?.reason == .duplicateField && twice?.field == "note", "\(String(describing: twice))")
    }

    @Test func tooDeep() {
        var config = EventDecoderConfiguration()
        config.maxNestingDepth = 5
        // The event is depth 1; its member value starts at depth 2.
        #expect(rejection(event(appending: [("x", nested(4))]), configuration: config) == nil)
        let e = rejection(event(appending: [("x", nested(5))]), configuration: config)
        #expect(e?.reason == .tooDeep)
        #expect(e?.eventID == "e-1")
        #expect(e?.field == "x", "\(String(describing: e))")
        // Far too deep must not crash, and the following events still decode.
        var big = EventDecoderConfiguration()
        big.maxEventBytes = 1 << 20
        let body = "[" + event(appending: [("x", nested(100_000))]) + "," + event() + "]"
        let (outcome, _) = decode(body, format: .json, configuration: big)
        #expect(outcome.errors.map(\.reason) == [.tooDeep])
        #expect(outcome.accepted == 1)
    }

    @Test func duplicateFields() throws {
        let e = rejection(#"{"event_id":"a","event_id":"b"}"#)
        #expect(e?.reason == .duplicateField)
        #expect(e?.field == "event_id")
        let u = rejection(event(appending: [("x", "1"), ("x", "2")]))
        #expect(u?.reason == .duplicateField)
        #expect(u?.field == "x")
        // Escaped keys are compared unescaped.
        #expect(rejection(event(appending: [("\\u0065vent_id", #""z""#)]))?.reason == .duplicateField)
        #expect(rejection(event(appending: [("y", "1"), ("\\u0079", "2")]))?.reason == .duplicateField)
        // A session_id of null, then another session_id: a repeat, in either order (null then a
        // value was accepted, an outside review).
        for (first, second) in [("null", #""x""#), ("null", "null"), (#""x""#, "null")] {
            let repeated = rejection(event(appending: [("session_id", first), ("session_id", second)]))
            #expect(repeated?.reason == .duplicateField && repeated?.field == "session_id", "\(first), \(second): \(String(describing: repeated))")
        }
        // Many unknown keys: repeats are found past the first ones too (compared by hash there),
        // escaped or not, and thousands of distinct keys are accepted.
        var config = EventDecoderConfiguration()
        config.maxEventBytes = 1 << 20
        let many = (0..<5_000).map { ("k\($0)", "0") }
        #expect(rejection(event(appending: many), configuration: config) == nil)
        for (index, repeatedKey) in [(3, "k3"), (40, "k40"), (4_999, "k4999"), (2_000, "\\u006b2000")] {
            var keys = many
            keys.insert((repeatedKey, "1"), at: min(index + 1 + index % 7, keys.count))
            let e = rejection(event(appending: keys), configuration: config)
            #expect(e?.reason == .duplicateField && e?.field == "k\(index)", "\(repeatedKey): \(String(describing: e))")
        }
        // A long unknown key is named by its first 256 bytes (whole characters) and "…", in the
        // field and the message (a key of megabytes was repeated whole, twice).
        let long = String(repeating: "a", count: 255) + "é" + String(repeating: "b", count: 10_000)
        let longRepeated = rejection(event(appending: [(long, "1"), (long, "2")]), configuration: config)
        #expect(longRepeated?.field == String(repeating: "a", count: 255) + "…", "\(String(describing: longRepeated?.field))")
        #expect(longRepeated?.reason == .duplicateField && (longRepeated?.message.utf8.count ?? .max) < 400, "\(String(describing: longRepeated?.message))")
        // The event after one with many keys starts afresh, also past the keys compared one by one
        // (the table of their hashes keeps its room, not its keys).
        let (outcome, _) = decode("[" + event(appending: many) + "," + event(appending: [("k1", "1"), ("k17", "1")]) + "]", format: .json, configuration: config)
        #expect(outcome.accepted == 2, "\(outcome.errors)")
        let again = Array(many.prefix(100))
        let (afresh, afreshSink) = decode("[" + event(appending: many) + "," + event(appending: again) + "]", format: .json, configuration: config)
        #expect(afresh.accepted == 2, "\(afresh.errors)")
        let second = try #require(try afreshSink.fields().last?.extra)
        #expect(second.hasPrefix(#"{"k0":0,"k1":0"#) && second.hasSuffix(#""k99":0}"#), "\(second.prefix(80))")
        // After the event's first error, later members are neither kept nor compared: the error
        // stays the first one, and thousands of repeats cost nothing more (an outside review: 5 MiB
        // of one repeated key held an event loop for 0.2 s). The next event is whole again.
        let repeats = [("a", "1"), ("b", "2"), ("a", "3")] + Array(repeating: ("a", "1"), count: 20_000) + [("b", "9")]
        let (repeated, _) = decode("[" + event(appending: repeats) + "," + event(appending: [("a", "1"), ("b", "2")]) + "]", format: .json, configuration: config)
        #expect(repeated.accepted == 1 && repeated.errors.map(\.reason) == [.duplicateField] && repeated.errors.first?.field == "a", "\(repeated.errors)")
        // An event past the size limit is rejected as too large, whatever its keys.
        var small = EventDecoderConfiguration()
        small.maxEventBytes = 2_000
        let oversize = rejection(event(appending: (0..<400).map { ("k\($0 % 300)", "0") }), configuration: small)
        #expect(oversize?.reason == .eventTooLarge, "\(String(describing: oversize))")
    }

    @Test("a body cut off after an object's '{' or ',' is an unexpected end, as other cut-offs are (it said a key was expected past the end)")
    func cutOffObject() {
        for (body, at) in [("{", 1), (#"{"event_id":"x","#, 16), (#"{"x":{"y":1,"#, 12), (#"{"x":[{"#, 7)] {
            let (outcome, _) = decode(body, format: .json)
            #expect(outcome.errors.first?.reason == .malformedJSON, "\(body): \(outcome.errors)")
            #expect(outcome.errors.first?.message.contains("unexpected end at byte \(at)") == true, "\(body): \(outcome.errors)")
        }
        let (middle, _) = decode(#"{"x":1,}"#, format: .json)
        #expect(middle.errors.first?.message.contains("expected a key at byte 7") == true, "\(middle.errors)")
    }

    @Test func unknownSchemaVersion() {
        for v in [#""2.0""#, #""1""#, #""""#, #""1.0 ""#] {
            let e = rejection(event(["schema_version": v, "title": "5"]))
            #expect(e?.reason == .unknownSchemaVersion, "\(v)")
            #expect(e?.field == "schema_version")
        }
    }

    @Test func notAnObject() {
        let (o, _) = decode(#"[1, "x", null, []]"#, format: .json)
        #expect(o.errors.map(\.reason) == Array(repeating: .notAnObject, count: 4))
        #expect(o.errors.map(\.index) == [0, 1, 2, 3])
        let (o2, _) = decode("42", format: .json)
        #expect(o2.errors.map(\.reason) == [.notAnObject])
        #expect(o2.errors.map(\.index) == [-1])
        let (o3, _) = decode("\(event())\n7\n", format: .ndjson)
        #expect(o3.accepted == 1)
        #expect(o3.errors.map(\.index) == [1])
        #expect(o3.errors.map(\.reason) == [.notAnObject])
    }

    @Test("a malformed NDJSON line is named by its line number (blank lines count), with where it starts")
    func malformedLineNumber() {
        let body = "{\"a\":1}\n\n{\"event_id\":\"x\", NOPE}\n\(event())\r\n  {"
        let (o, _) = decode(body, format: .ndjson)
        #expect(o.accepted == 1)
        #expect(o.errors.map(\.index) == [0, 1, 3], "\(o.errors)")
        #expect(o.errors.map(\.reason) == [.missingField, .malformedJSON, .malformedJSON], "\(o.errors)")
        #expect(o.errors[1].message == "line 3 is not valid JSON: expected a key at byte 26 (the line starts at byte 9)", "\(o.errors[1])")
        let last = body.utf8.count - 1
        #expect(o.errors[2].message.hasPrefix("line 5 is not valid JSON: ") && o.errors[2].message.hasSuffix("(the line starts at byte \(last))"), "\(o.errors[2])")
    }

    @Test("a UTF-8 byte order mark at the start of the body is skipped; anywhere else it is an error")
    func byteOrderMark() {
        let bom = "\u{FEFF}"
        for (body, format) in [(bom + event(), EventBodyFormat.json), (bom + "[" + event() + "]", .sniff), (bom + event() + "\n" + event(), .ndjson), (bom + event() + "\n" + event(), .sniff)] {
            let (o, _) = decode(body, format: format)
            #expect(o.errors.isEmpty, "\(body.prefix(20).debugDescription): \(o.errors)")
            #expect(o.accepted == body.filter { $0 == "\n" }.count + 1)
        }
        let (o, _) = decode(event() + "\n" + bom + event(), format: .ndjson)
        #expect(o.accepted == 1 && o.errors.map(\.index) == [1])
        // The message says what the bytes are (it was "invalid number at byte N").
        #expect(o.errors.first?.message.contains("a byte order mark (EF BB BF) at byte") == true, "\(o.errors)")
        let (zero, _) = decode(event() + "\n\u{0}" + event() + "\n" + #"{"event_id": abc}"#, format: .ndjson)
        #expect(zero.errors.map(\.index) == [1, 2], "\(zero.errors)")
        #expect(zero.errors.first?.message.contains("unexpected byte 0x00 at byte") == true, "\(zero.errors)")
        #expect(zero.errors.last?.message.contains("unexpected 'a' at byte") == true, "\(zero.errors)")
        let (alone, _) = decode(bom, format: .json)
        #expect(alone.errors.map(\.reason) == [.emptyBody])
    }

    @Test("a body in UTF-16 or UTF-32, with or without a byte order mark, is refused as not UTF-8, naming the encoding")
    func wideEncodings() {
        let text = event()
        func utf16(_ bigEndian: Bool, bom: Bool) -> [UInt8] {
            ((bom ? [UInt16(0xFEFF)] : []) + Array(text.utf16))
                .flatMap { bigEndian ? [UInt8($0 >> 8), UInt8($0 & 0xFF)] : [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        }
        let utf32LE: [UInt8] = ([0xFEFF] + text.unicodeScalars.map(\.value)).flatMap { value in (0..<4).map { UInt8((value >> (8 * $0)) & 0xFF) } }
        let cases: [([UInt8], String)] = [
            (utf16(false, bom: true), "UTF-16LE (byte order mark FF FE)"),
            (utf16(true, bom: true), "UTF-16BE (byte order mark FE FF)"),
            (utf16(false, bom: false), "UTF-16LE (without a byte order mark)"),
            (utf16(true, bom: false), "UTF-16BE (without a byte order mark)"),
            (utf32LE, "UTF-32LE (byte order mark FF FE 00 00)"),
            (Array(utf32LE.dropFirst(4)), "UTF-32LE (without a byte order mark)"),
        ]
        for (body, encoding) in cases {
            for format in [EventBodyFormat.json, .ndjson, .sniff] {
                let (o, sink) = decode(body, format: format)
                #expect(o.accepted == 0)
                #expect(o.errors.map(\.reason) == [.invalidUTF8], "\(encoding)")
                #expect(o.errors.first?.message == "the body is \(encoding), not UTF-8: JSON must be sent as UTF-8 (RFC 8259)")
                #expect(sink.rejected.count == 1, "kept whole in rejected")
            }
        }
        // The same event in UTF-8 is accepted; a stray zero byte on the first line of NDJSON costs
        // only that line.
        #expect(decode(text).outcome.accepted == 1)
        let stray = decode([0, 0x0A] + Array((text + "\n" + text).utf8), format: .ndjson).outcome
        #expect(stray.accepted == 2 && stray.errors.map(\.index) == [0], "\(stray.errors)")
    }

    @Test func emptyBody() {
        // An empty array too: nothing is accepted, so the 400 must say why.
        for (body, format) in [("", EventBodyFormat.json), ("  \n ", .sniff), ("\n\n", .ndjson), ("", .ndjson), ("[ ]", .json), ("[]", .sniff)] {
            let (o, sink) = decode(body, format: format)
            #expect(o.errors.map(\.reason) == [.emptyBody], "\(body.debugDescription)")
            #expect(o.errors.map(\.index) == [-1])
            #expect(sink.rejected.count == 1)
        }
        // After an empty array, anything but whitespace is malformed JSON (one error, not two).
        let (o, _) = decode("[] x", format: .json)
        #expect(o.errors.map(\.reason) == [.malformedJSON])
    }

    @Test func invalidTimestamps() {
        let bad = [
            "2024-05-01 12:00", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z", "2024-05-01T24:00:00Z", "2024-05-01T12:60:00Z", "2024-05-01T12:00:61Z",
            "2024-05-01T12:00:00.Z", "2024-05-01T12:00:00+24:00", "20240501T120000Z",
            "2024-5-1T12:00:00Z", "yesterday", "", "2024-05-01T12:00:00Z ", "2024-05-01T12:00:00ZZ",
            "2024-05-01T12:00:00+01:60", "2024-05-01T12:00:00+0160", "2024-05-01T12:00:00+1", "2024-05-01T12:00:00+010",
            "2024-05-01T12:00:00+01:0", "2024-05-01T12:00:00+01:", "2024-05-01T12:00:00,5Z", "2024-05-01T12:00Z",
            "2024-05-01T12:00:00.", "2024-05-01T12:00:00 ",
        ]
        for text in bad {
            let e = rejection(event(["timestamp": "\"\(text)\""]))
            #expect(e?.reason == .invalidTimestamp, "\(text)")
            #expect(e?.field == "timestamp")
            // The message quotes the value and says what is wrong with it.
            #expect(e?.message.hasPrefix("timestamp \"\(text)\" ") == true, "\(String(describing: e?.message))")
        }
        let why: [(String, String)] = [
            ("2024-13-01T00:00:00Z", "has month 13, which does not exist"),
            ("2023-02-29T00:00:00Z", "has day 29, but 2023-02 has 28 days"),
            ("2024-05-01T24:00:00Z", "has the time 24:00:00, which does not exist"),
            ("2024-05-01T12:00:00.Z", "has a '.' with no fraction digits after it"),
            ("2024-05-01T12:00:00+24:00", "has the offset +24:00, which is out of range (at most ±23:59)"),
            ("2024-05-01T12:00:00+2400", "has the offset +2400, which is out of range (at most ±23:59)"),
            ("2024-05-01T12:00:00+0160", "has the offset +0160, which is out of range (at most ±23:59)"),
            ("2024-05-01T12:00:00+010", "is not of the form YYYY-MM-DDThh:mm:ss[.fraction] followed by Z, ±hh:mm, ±hhmm, ±hh or nothing (UTC)"),
            ("yesterday", "is not of the form YYYY-MM-DDThh:mm:ss[.fraction] followed by Z, ±hh:mm, ±hhmm, ±hh or nothing (UTC)"),
        ]
        for (text, problem) in why {
            #expect(EventTimestamp.parseMicros(text) == nil, "\(text)")
            #expect(EventTimestamp.problem(with: text) == problem, "\(text)")
        }
    }

    @Test("the ISO 8601 forms SDKs send beside RFC 3339: ±hhmm and ±hh offsets, and none (UTC)")
    func isoTimestampForms() {
        let utc = EventTimestamp.parseMicros("2024-05-01T12:00:00Z")
        #expect(utc == 1_714_564_800_000_000)
        // Java's and Android's SimpleDateFormat ("…SSSZ"), a bare hour offset, Python's utcnow().isoformat().
        for text in ["2024-05-01T12:00:00+0000", "2024-05-01T12:00:00-0000", "2024-05-01T12:00:00+00", "2024-05-01T12:00:00",
                     "2024-05-01T17:30:00+0530", "2024-05-01T17:30:00+05:30", "2024-05-01T07:00:00-05", "2024-05-01 12:00:00"] {
            #expect(EventTimestamp.parseMicros(text) == utc, "\(text)")
            let (o, _) = decode(event(["timestamp": "\"\(text)\""]))
            #expect(o.accepted == 1, "\(text): \(o.errors)")
        }
        #expect(EventTimestamp.parseMicros("2024-05-01T12:00:00.123456") == utc! + 123_456)
        #expect(EventTimestamp.parseMicros("2024-05-01T12:00:00.5+0100") == utc! - 3_600_000_000 + 500_000)
        // The range is still years 0001-9999 in UTC, whatever the form.
        #expect(EventTimestamp.parseMicros("0001-01-01T00:00:00") == EventTimestamp.earliestSeconds * 1_000_000)
        #expect(EventTimestamp.parseMicros("0001-01-01T00:00:00+01") == nil)
        #expect(EventTimestamp.parseMicros("9999-12-31T23:59:59-0001") == nil)
    }

    @Test func everyReasonIsProduced() {
        var config = EventDecoderConfiguration()
        config.maxEventsPerRequest = 1
        config.maxEventBytes = 2000
        var seen = Set<RejectionReason>()
        let bodies: [(String, EventBodyFormat)] = [
            (event(without: "user_id"), .json), (event(["title": "1"]), .json), (event(["content_type": #""x""#]), .json),
            (event(["timestamp": #""x""#]), .json), (event(["duration_seconds": "-1"]), .json),
            (event(["title": "\"" + String(repeating: "t", count: 1025) + "\""]), .json),
            (event(appending: [("p", "\"" + String(repeating: "p", count: 2000) + "\"")]), .json),
            ("[" + event() + "," + event() + "]", .json), ("{", .json), (event(["title": #""\ud800""#]), .json),
            (event(appending: [("d", nested(40))]), .json), (event(["schema_version": #""9""#]), .json), ("[1]", .json),
            ("", .json), (#"{"title":"a","title":"b"}"#, .json),
        ]
        for (body, format) in bodies {
            for e in decode(body, format: format, configuration: config).outcome.errors { seen.insert(e.reason) }
        }
        #expect(seen == Set(RejectionReason.all))
    }
}

extension String {
    /// The body of `format` holding these events: an array for `.json`, the lines as they are otherwise.
    func wrappedFor(_ format: EventBodyFormat) -> String { format == .json ? "[" + self + "]" : self }
}
