import Testing
@testable import PlayheadEvents

/// Collects what the decoder hands over, as values.
struct CollectingSink: EventSink {
    struct Accepted {
        var index: Int
        var key: [UInt8]
        var dimensions: EventDimensions
        var record: [UInt8]
    }
    var accepted: [Accepted] = []
    var rejected: [(EventValidationError, [UInt8])] = []

    mutating func accepted(index: Int, key: UnsafeRawBufferPointer, dimensions: EventDimensions, record: UnsafeRawBufferPointer) {
        accepted.append(Accepted(index: index, key: Array(key), dimensions: dimensions, record: Array(record)))
    }

    mutating func rejected(_ error: EventValidationError, record: UnsafeRawBufferPointer) {
        rejected.append((error, Array(record)))
    }
}

func decode(_ body: String, format: EventBodyFormat = .sniff, configuration: EventDecoderConfiguration = .init(), receivedAt: Int64 = 1_700_000_000_000_000) -> (DecodeOutcome, CollectingSink) {
    var sink = CollectingSink()
    let decoder = EventDecoder(configuration: configuration)
    let bytes = Array(body.utf8)
    let outcome = bytes.withUnsafeBytes { decoder.decode($0, format: format, receivedAt: receivedAt, into: &sink) }
    return (outcome, sink)
}

@Suite struct SmokeTests {
    @Test func syntheticEventsAreAccepted() throws {
        var sessions = SyntheticSessions(seed: 1, concurrentSessions: 10, startTime: 1_700_000_000_000_000)
        var body: [UInt8] = []
        for k in 0..<200 {
            if k > 0 { body.append(UInt8(ascii: "\n")) }
            sessions.appendNextEvent(to: &body)
        }
        let (outcome, sink) = decode(String(decoding: body, as: UTF8.self))
        #expect(outcome.rejected == 0, "\(outcome.errors.prefix(3))")
        #expect(outcome.accepted == 200)
        var json: [UInt8] = []
        try sink.accepted[0].record.withUnsafeBytes { try EventRecordView($0).appendJSON(to: &json) }
        print(String(decoding: body.prefix(600), as: UTF8.self))
        print(String(decoding: json, as: UTF8.self))
    }
}
