import Foundation
import PlayheadEvents

/// What must hold for any bytes given to the event decoder, whatever they are: the properties the
/// fuzzer (`scripts/fuzz`) checks on every input and the tests check on the saved corpus
/// (`Fuzz/corpus/`). Each check returns what it found wrong, empty when nothing; the fuzzer's
/// driver stops on the first input with a problem, so a problem must be a bug, never a choice.
public enum FuzzChecks {
    /// The receive time every decode here uses (2025-11-24T16:00:00Z).
    static let receivedAt: Int64 = 1_764_000_000_000_000

    /// The decoder on `input`: its first byte chooses the body format, the limits, the IP policy and
    /// whether a client address is given (so that one corpus covers them all); the rest is the body.
    ///
    /// - The counts agree with what reached the sink, every event's index comes once and in order,
    ///   and a body refused whole (index -1) accepts nothing.
    /// - Every accepted record passes the readers' checks (`EventRecordView`), its key is its
    ///   `session_id` or else its `device_id`, and it holds the body's receive time.
    /// - Printed as JSON (`log dump`'s form) and decoded again, it gives the same record, byte for
    ///   byte (no field is lost, changed or moved, and the printer's escapes and numbers read back).
    /// - Every rejected record reads back (`RejectedRecordView`) with the error the answer gave, and
    ///   holds bytes the client sent (the whole body for index -1).
    /// - Where Foundation's `JSONSerialization` also reads the body, the fields of every accepted
    ///   event equal Foundation's values (a second, independent JSON parser).
    public static func eventDecoder(_ input: UnsafeRawBufferPointer) -> [String] {
        guard let options = input.first else { return [] }
        let body = UnsafeRawBufferPointer(rebasing: input.dropFirst())
        var configuration = EventDecoderConfiguration()
        if options & 0x04 != 0 {
            configuration.maxEventsPerRequest = 3
            configuration.maxStringBytes = 40
            configuration.maxNestingDepth = 4
            configuration.maxEventBytes = 400
        }
        configuration.ipPolicy = IPAddressPolicy.allCases[Int(options >> 3 & 3) % IPAddressPolicy.allCases.count]
        let client: String? = options & 0x20 != 0 ? "203.0.113.7" : nil
        let format: EventBodyFormat = [.json, .ndjson, .sniff, .sniff][Int(options & 3)]

        var sink = FuzzSink()
        let outcome = EventDecoder(configuration: configuration).decode(
            body, format: format, receivedAt: receivedAt, clientAddress: client, into: &sink
        )
        var problems: [String] = []
        func problem(_ text: String) { problems.append(text) }

        // Counts and indexes.
        if outcome.accepted != sink.accepted.count {
            problem("outcome.accepted \(outcome.accepted) but the sink got \(sink.accepted.count) accepted events")
        }
        if outcome.rejected != sink.rejected.count || outcome.errors.count != sink.rejected.count {
            problem("outcome.rejected \(outcome.rejected), \(outcome.errors.count) errors, but the sink got \(sink.rejected.count)")
        }
        if outcome.errors != sink.rejected.map(\.error) { problem("the errors answered differ from those stored") }
        let wholeBody = sink.rejected.contains { $0.error.index == -1 }
        if wholeBody, sink.rejected.count != 1 || !sink.accepted.isEmpty {
            problem("a body refused whole (index -1) also has \(sink.accepted.count) accepted and \(sink.rejected.count - 1) other rejected events")
        }
        if !wholeBody {
            let indexes = sink.order
            if indexes != Array(0..<indexes.count) {
                problem("event indexes are not 0, 1, 2, … in body order: \(indexes.prefix(20))")
            }
        }
        if format != .ndjson, !wholeBody, body.isEmpty {
            problem("an empty body was not refused whole")
        }

        // Accepted records.
        for event in sink.accepted {
            problems += acceptedRecord(event, configuration: configuration)
        }

        // Rejected records.
        for rejection in sink.rejected {
            rejection.record.withUnsafeBytes { record in
                let view: RejectedRecordView
                do {
                    view = try RejectedRecordView(record)
                } catch {
                    problem("rejection \(rejection.error.index): the rejected record does not read back: \(error)")
                    return
                }
                let error = rejection.error
                if Int(view.index) != error.index || view.reason != error.reason.rawValue || view.message != error.message
                    || view.field != (error.field ?? "") || view.eventID != (error.eventID ?? "") || view.receivedAtMicros != receivedAt
                {
                    problem("rejection \(error.index): the stored record (\(view.index), \(view.reason), \(view.field)) differs from the answer (\(error))")
                }
                if error.message.isEmpty { problem("rejection \(error.index): no message") }
                // (A repeated unknown field is named as sent.)
                if let field = error.field, error.reason != .duplicateField, !knownFields.contains(field), !isGenreEntry(field) {
                    problem("rejection \(error.index): field \"\(field)\" is not a field of the schema")
                }
                if error.index == -1 {
                    if !view.raw.elementsEqual(body) { problem("a body refused whole is not stored whole") }
                } else if !contains(body, view.raw) {
                    problem("rejection \(error.index): the stored raw bytes are not bytes of the body")
                }
            }
        }

        // Foundation, where it reads the body as one JSON document.
        if !wholeBody, format != .ndjson, !sink.accepted.isEmpty {
            problems += compareWithFoundation(body, accepted: sink.accepted)
        }
        return problems
    }

    /// What must hold for one accepted event: its record reads back, with its key, the receive time,
    /// its dimensions and the IP policy, and it prints and decodes again to the same bytes.
    static func acceptedRecord(_ event: FuzzSink.Accepted, configuration: EventDecoderConfiguration) -> [String] {
        event.record.withUnsafeBytes { record in
            let view: EventRecordView
            do {
                view = try EventRecordView(record)
            } catch {
                return ["event \(event.index): the accepted record does not read back: \(error)"]
            }
            var problems: [String] = []
            let key = view.sessionIDBytes ?? view.deviceIDBytes
            if !key.elementsEqual(event.key) { problems.append("event \(event.index): its key is not its session_id or device_id") }
            if view.receivedAtMicros != receivedAt { problems.append("event \(event.index): received_at \(view.receivedAtMicros)") }
            if event.dimensions.eventType != view.eventType || event.dimensions.contentType != view.contentType {
                problems.append("event \(event.index): the dimensions (\(event.dimensions)) differ from the record's types")
            }
            if configuration.ipPolicy == .drop, !view.ipAddressBytes.isEmpty {
                problems.append("event \(event.index): ip_address kept under --ip-policy drop")
            }
            return problems + roundTrip(view, index: event.index, configuration: configuration)
        }
    }

    /// The schema's fields, as rejections name them.
    static let knownFields: Set<String> = [
        "event_id", "event_type", "timestamp", "user_id", "device_id", "session_id", "ip_address", "content_id",
        "content_type", "title", "genre", "duration_seconds", "language", "current_timestamp", "event_source",
        "schema_version",
    ]

    /// `genre[k]`: one entry of the list.
    static func isGenreEntry(_ field: String) -> Bool {
        field.hasPrefix("genre[") && field.hasSuffix("]") && Int(field.dropFirst(6).dropLast()) != nil
    }

    /// The record printed as `log dump` prints it (without the server's `received_at`), decoded again
    /// under the same string and nesting limits, must give the same bytes.
    static func roundTrip(_ view: EventRecordView, index: Int, configuration: EventDecoderConfiguration) -> [String] {
        var json: [UInt8] = []
        view.appendJSON(to: &json)
        let marker = Array(#","received_at":""#.utf8)
        guard let cut = lastRange(of: marker, in: json) else { return ["event \(index): no received_at in \(String(decoding: json, as: UTF8.self))"] }
        json.removeSubrange(cut..<json.count)
        json.append(UInt8(ascii: "}"))
        var again = EventDecoderConfiguration()
        again.maxEventBytes = 1 << 30
        again.maxStringBytes = configuration.maxStringBytes
        again.maxNestingDepth = configuration.maxNestingDepth
        var sink = FuzzSink()
        let outcome = json.withUnsafeBytes {
            EventDecoder(configuration: again).decode($0, format: .json, receivedAt: receivedAt, into: &sink)
        }
        let text = String(decoding: json.prefix(600), as: UTF8.self)
        guard outcome.accepted == 1, let first = sink.accepted.first else {
            return ["event \(index): printed as \(text) it is not accepted again: \(outcome.errors)"]
        }
        if !first.record.elementsEqual(view.bytes) {
            let other = first.record.withUnsafeBytes { try? EventRecordFields(EventRecordView($0)) }
            return ["event \(index): printed and decoded again it differs: \(EventRecordFields(view)) against \(String(describing: other)); printed as \(text)"]
        }
        return []
    }

    /// Foundation's values for the fields of each accepted event (strings compared as UTF-8 bytes).
    static func compareWithFoundation(_ body: UnsafeRawBufferPointer, accepted: [FuzzSink.Accepted]) -> [String] {
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(body), options: []) else { return [] }
        let events: [Any]
        if let array = parsed as? [Any] { events = array } else { events = [parsed] }
        var problems: [String] = []
        for event in accepted {
            guard event.index < events.count, let object = events[event.index] as? [String: Any] else {
                problems.append("event \(event.index) was accepted, but Foundation finds no object there (\(events.count) values)")
                continue
            }
            event.record.withUnsafeBytes { record in
                guard let view = try? EventRecordView(record) else { return }
                let strings: [(String, UnsafeRawBufferPointer)] = [
                    ("event_id", view.eventIDBytes), ("event_type", view.eventTypeBytes), ("user_id", view.userIDBytes),
                    ("device_id", view.deviceIDBytes), ("content_id", view.contentIDBytes),
                    ("content_type", view.contentTypeBytes), ("title", view.titleBytes), ("language", view.languageBytes),
                    ("event_source", view.eventSourceBytes),
                ]
                for (name, bytes) in strings {
                    guard let value = object[name] as? String else {
                        problems.append("event \(event.index): Foundation has no string \(name)")
                        continue
                    }
                    if !Array(value.utf8).elementsEqual(bytes) {
                        problems.append("event \(event.index): \(name) is \(Array(bytes)) here, \(Array(value.utf8)) in Foundation")
                    }
                }
                if let session = view.sessionIDBytes {
                    if let value = object["session_id"] as? String, !Array(value.utf8).elementsEqual(session) {
                        problems.append("event \(event.index): session_id differs from Foundation's")
                    }
                } else if object["session_id"] is String {
                    problems.append("event \(event.index): Foundation has a session_id, the record none")
                }
                if let genres = object["genre"] as? [String] {
                    if genres.map({ Array($0.utf8) }) != view.genres.map({ Array($0.utf8) }) {
                        problems.append("event \(event.index): genre \(view.genres) here, \(genres) in Foundation")
                    }
                } else {
                    problems.append("event \(event.index): Foundation has no list of strings genre")
                }
                if let duration = object["duration_seconds"] as? NSNumber, duration.doubleValue == duration.doubleValue.rounded(),
                    abs(duration.doubleValue) < 1e15, Int64(duration.doubleValue) != view.durationSeconds
                {
                    problems.append("event \(event.index): duration_seconds \(view.durationSeconds) here, \(duration) in Foundation")
                }
                if let position = object["current_timestamp"] as? NSNumber, position.doubleValue != view.currentTimestamp,
                    abs(position.doubleValue - view.currentTimestamp) > abs(view.currentTimestamp) * 1e-15
                {
                    problems.append("event \(event.index): current_timestamp \(view.currentTimestamp) here, \(position) in Foundation")
                }
            }
        }
        return problems
    }

    static func lastRange(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var i = haystack.count - needle.count
        while i >= 0 {
            if haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i -= 1
        }
        return nil
    }

    static func contains(_ haystack: UnsafeRawBufferPointer, _ needle: UnsafeRawBufferPointer) -> Bool {
        if needle.isEmpty { return true }
        guard haystack.count >= needle.count else { return false }
        let first = needle[0]
        for start in 0...(haystack.count - needle.count) where haystack[start] == first {
            if UnsafeRawBufferPointer(rebasing: haystack[start..<(start + needle.count)]).elementsEqual(needle) { return true }
        }
        return false
    }
}

/// Keeps copies of everything the decoder hands over (the tests' sink too).
public struct FuzzSink: EventSink {
    public struct Accepted {
        public var index: Int
        public var key: [UInt8]
        public var dimensions: EventDimensions
        public var record: [UInt8]
    }
    public var accepted: [Accepted] = []
    public var rejected: [(error: EventValidationError, record: [UInt8])] = []
    /// Every event's index in the order the sink got them.
    public var order: [Int] = []

    public init() {}

    public mutating func accepted(index: Int, key: UnsafeRawBufferPointer, dimensions: EventDimensions, record: UnsafeRawBufferPointer) {
        accepted.append(Accepted(index: index, key: Array(key), dimensions: dimensions, record: Array(record)))
        order.append(index)
    }

    public mutating func rejected(_ error: EventValidationError, record: UnsafeRawBufferPointer) {
        rejected.append((error, Array(record)))
        order.append(error.index)
    }
}
