import Foundation
import PlayheadEvents

extension FuzzChecks {
    /// The record readers on any bytes (what a Kafka topic written by another producer, or a
    /// damaged segment, can hold). The first byte chooses the reader: even, the event record's;
    /// odd, the rejected record's.
    ///
    /// - A reader refuses what it cannot read with an error, never by crashing or reading past the
    ///   bytes.
    /// - What it reads, it can print (`log dump`, the lake's `extra`): the JSON is valid JSON.
    /// - An event record it reads is one the edge could have written: printed and decoded again,
    ///   it is accepted (but for the rules readers leave to the edge: the schema version and its
    ///   event types).
    public static func records(_ input: UnsafeRawBufferPointer) -> [String] {
        guard let which = input.first else { return [] }
        let bytes = UnsafeRawBufferPointer(rebasing: input.dropFirst())
        var json: [UInt8] = []
        if which & 1 == 0 {
            guard let view = try? EventRecordView(bytes) else { return [] }
            _ = EventRecordFields(view)
            _ = view.firstGenre
            for k in 0..<view.genreCount { _ = view.genreBytes(k) }
            view.appendJSON(to: &json)
            guard isJSONObject(json) else { return ["an event record prints as invalid JSON: \(String(decoding: json.prefix(400), as: UTF8.self))"] }
            // Decoded again (the server's received_at is an unknown field to the schema, kept in extra).
            var configuration = EventDecoderConfiguration()
            configuration.maxEventBytes = 1 << 30
            configuration.maxStringBytes = 1 << 30
            configuration.maxNestingDepth = 1 << 20
            var sink = FuzzSink()
            let outcome = json.withUnsafeBytes {
                EventDecoder(configuration: configuration).decode($0, format: .json, receivedAt: receivedAt, into: &sink)
            }
            // Readers leave two rules to the edge on purpose (docs/event-record.md, "Upgrades"): a
            // schema_version they do not know, and which event types each version allows.
            let leftToTheEdge = outcome.errors.allSatisfy {
                $0.reason == .unknownSchemaVersion || ($0.reason == .invalidValue && $0.field == "event_type")
            }
            guard outcome.accepted == 1 || (outcome.errors.count == 1 && leftToTheEdge) else {
                return ["an event record the readers take is refused by the edge: \(outcome.errors); printed as \(String(decoding: json.prefix(400), as: UTF8.self))"]
            }
        } else {
            guard let view = try? RejectedRecordView(bytes) else { return [] }
            _ = (view.reason, view.field, view.message, view.eventID)
            view.appendJSON(to: &json)
            guard isJSONObject(json) else { return ["a rejected record prints as invalid JSON: \(String(decoding: json.prefix(400), as: UTF8.self))"] }
        }
        return []
    }

    static func isJSONObject(_ bytes: [UInt8]) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(bytes), options: [])) is [String: Any]
    }
}
