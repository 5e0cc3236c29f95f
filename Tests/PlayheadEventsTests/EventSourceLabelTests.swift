import PlayheadEvents
import Testing

@Suite struct EventSourceLabelTests {
    @Test("values added with --event-source keep their own label; the built-in ones stay; any other value is 'other', escaped or not")
    func addedValuesAreLabels() throws {
        var configuration = EventDecoderConfiguration()
        configuration.eventSources = try EventSourceLabels(adding: ["samsung_tizen", "lg_webos", "xbox"])
        let body = [
            event(["event_id": #""a""#, "event_source": #""samsung_tizen""#]),
            event(["event_id": #""b""#, "event_source": #""lg_web\u006fs""#]),  // the same value, escaped
            event(["event_id": #""c""#, "event_source": #""roku""#]),
            event(["event_id": #""d""#, "event_source": #""xbox_one""#]),  // a longer value that starts the same
            event(["event_id": #""e""#, "event_source": #""xbo""#]),
        ].joined(separator: "\n")
        let (outcome, sink) = decode(body, format: .ndjson, configuration: configuration)
        #expect(outcome.accepted == 5)
        #expect(sink.accepted.map(\.dimensions.eventSource) == ["samsung_tizen", "lg_webos", "roku", "other", "other"])
        // A decoder with the built-in values alone counts the added ones as 'other', and stores
        // every value as sent: the labels are the metrics', not the lake's.
        let (_, plain) = decode(body, format: .ndjson)
        #expect(plain.accepted.map(\.dimensions.eventSource) == ["other", "other", "roku", "other", "other"])
        #expect(try plain.fields().map(\.eventSource) == ["samsung_tizen", "lg_webos", "roku", "xbox_one", "xbo"])
    }

    @Test("every code reads back as the labels it was made from, for the built-in values and added ones")
    func codesRoundTrip() throws {
        let added = (0..<(EventSourceLabels.maxCount - EventSourceLabels.builtIn.count)).map { "source_\($0)" }
        for sources in [EventSourceLabels.standard, try EventSourceLabels(adding: added)] {
            var codes = Set<Int>()
            for type in ["play", "pause", "stop", "seek", "heartbeat", "buffering"] {
                for content in ["movie", "episode", "ad"] {
                    for source in sources.names + ["other"] {
                        let dimensions = EventDimensions(eventType: type, contentType: content, eventSource: source, sources: sources)
                        #expect(dimensions.eventSource == source)
                        #expect((0..<EventDimensions.codeCount).contains(dimensions.code))
                        #expect(EventDimensions(code: dimensions.code, sources: sources) == dimensions)
                        codes.insert(dimensions.code)
                    }
                    // A value not listed is 'other', with other's code.
                    let unknown = EventDimensions(eventType: type, contentType: content, eventSource: "nope", sources: sources)
                    #expect(unknown == EventDimensions(eventType: type, contentType: content, eventSource: "other", sources: sources))
                }
            }
            #expect(codes.count == 6 * 3 * (sources.names.count + 1))
        }
    }

    @Test("a value that cannot be a label is refused with the reason; built-in and repeated values are taken once")
    func invalidValues() throws {
        #expect(try EventSourceLabels(adding: ["roku", "xbox", "xbox", "web"]).names == EventSourceLabels.builtIn + ["xbox"])
        let refused: [(String, String)] = [
            ("", "is empty"),
            ("other", "label of every value not listed"),
            (String(repeating: "x", count: 65), "65 bytes long; at most 64"),
            ("tv\"app", "a quote"),
            ("tv\\app", "a backslash"),
            ("tv\napp", "a control character"),
        ]
        for (value, reason) in refused {
            #expect {
                try EventSourceLabels(adding: [value])
            } throws: { error in
                "\(error)".contains(reason)
            }
        }
        // 64 values in all, the built-in ones included.
        let room = EventSourceLabels.maxCount - EventSourceLabels.builtIn.count
        #expect(try EventSourceLabels(adding: (0..<room).map { "s\($0)" }).names.count == EventSourceLabels.maxCount)
        #expect {
            try EventSourceLabels(adding: (0...room).map { "s\($0)" })
        } throws: { error in
            "\(error)".contains("make 65; at most 64 in all")
        }
        // A multi-byte value is measured in UTF-8 bytes.
        #expect(try EventSourceLabels(adding: [String(repeating: "é", count: 32)]).contains(String(repeating: "é", count: 32)))
    }
}
