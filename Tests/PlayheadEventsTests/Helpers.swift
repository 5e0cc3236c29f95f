import FuzzChecks
import PlayheadEvents

/// Collects what the decoder hands over, as values.
typealias CollectingSink = FuzzSink

extension FuzzSink {
    /// The accepted events as value records.
    func fields() throws -> [EventRecordFields] {
        try accepted.map { a in try a.record.withUnsafeBytes { EventRecordFields(try EventRecordView($0)) } }
    }
}

let testReceivedAt: Int64 = 1_700_000_000_123_456

func decode(
    _ body: [UInt8], format: EventBodyFormat = .sniff, configuration: EventDecoderConfiguration = .init(),
    clientAddress: String? = nil
) -> (outcome: DecodeOutcome, sink: CollectingSink) {
    var sink = CollectingSink()
    let decoder = EventDecoder(configuration: configuration)
    let outcome = body.withUnsafeBytes {
        decoder.decode($0, format: format, receivedAt: testReceivedAt, clientAddress: clientAddress, into: &sink)
    }
    return (outcome, sink)
}

func decode(
    _ body: String, format: EventBodyFormat = .sniff, configuration: EventDecoderConfiguration = .init(),
    clientAddress: String? = nil
) -> (outcome: DecodeOutcome, sink: CollectingSink) {
    decode(Array(body.utf8), format: format, configuration: configuration, clientAddress: clientAddress)
}

/// The members of a valid schema-1.0 event, as raw JSON fragments, in a fixed order.
let baseMembers: [(String, String)] = [
    ("event_id", #""e-1""#),
    ("event_type", #""play""#),
    ("timestamp", #""2024-05-01T12:00:00.250Z""#),
    ("user_id", #""user_1""#),
    ("device_id", #""device_1""#),
    ("ip_address", #""192.168.1.77""#),
    ("content_id", #""media_123""#),
    ("content_type", #""movie""#),
    ("title", #""The Long Night""#),
    ("genre", #"["drama","thriller"]"#),
    ("duration_seconds", "7260"),
    ("language", #""en""#),
    ("current_timestamp", "120.5"),
    ("event_source", #""web_app""#),
]

/// A valid event with some members replaced (value nil removes the member), and extra members appended.
func event(_ overrides: [String: String?] = [:], appending extra: [(String, String)] = []) -> String {
    var parts: [String] = []
    for (key, value) in baseMembers {
        if let override = overrides[key] {
            if let override { parts.append("\"\(key)\":\(override)") }
        } else {
            parts.append("\"\(key)\":\(value)")
        }
    }
    for (key, value) in overrides where !baseMembers.contains(where: { $0.0 == key }) {
        if let value { parts.append("\"\(key)\":\(value)") }
    }
    for (key, value) in extra { parts.append("\"\(key)\":\(value)") }
    return "{" + parts.joined(separator: ",") + "}"
}

/// Decodes one event and returns its single rejection (or nil when accepted).
func rejection(_ body: String, configuration: EventDecoderConfiguration = .init()) -> EventValidationError? {
    let (outcome, _) = decode(body, format: .json, configuration: configuration)
    return outcome.errors.first
}

func nested(_ depth: Int) -> String {
    String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
}

/// A valid event without one member.
func event(without key: String) -> String {
    var overrides: [String: String?] = [:]
    overrides.updateValue(nil, forKey: key)
    return event(overrides)
}
