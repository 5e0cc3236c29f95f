// PlayheadEvents: the event model, the fast JSON decoder and validator, and the binary record codec.
// See docs/events.md and docs/event-record.md.

/// How a request body holds its events.
public enum EventBodyFormat: Sendable {
    /// One JSON object, or a JSON array of objects; NDJSON whose lines are objects of their own is
    /// read as NDJSON.
    case json
    /// Newline-delimited JSON: one object per line (blank lines are skipped).
    case ndjson
    /// A body whose content type names no format (none, or `text/plain` from `sendBeacon`): read
    /// as ``json`` is.
    case sniff
}

/// What is stored of the sender's `ip_address`.
public enum IPAddressPolicy: String, Sendable, CaseIterable {
    /// As sent.
    case keep
    /// IPv4 to its /24 (last octet 0), IPv6 to its /48. A value that is not an IP address is dropped ("").
    case truncate
    /// Stored as "".
    case drop
}

/// Limits of the decoder.
public struct EventDecoderConfiguration: Sendable {
    /// An event (its JSON bytes) larger than this is rejected with `event_too_large`.
    public var maxEventBytes = 32 * 1024
    /// Events past this count in one body are rejected one by one with `too_many_events`, up to
    /// as many again; a body holding more than ``refusedEventCount`` is refused whole.
    public var maxEventsPerRequest = 1000

    /// The count of events past which a body is refused whole (`too_many_events` at index -1, the
    /// body kept as one rejected record): twice ``maxEventsPerRequest``. Until 2026-12-06 every
    /// event past the limit had its own rejection, and a 1,217-byte gzip body of 600,000 lines
    /// `1` made 600,000 rejected records (62 MB in the log) and an 88 MB answer (a review).
    public var refusedEventCount: Int {
        let (twice, overflow) = maxEventsPerRequest.multipliedReportingOverflow(by: 2)
        return overflow ? Int.max : twice
    }
    /// What is stored of `ip_address`.
    public var ipPolicy = IPAddressPolicy.keep
    /// The `event_source` values that keep their own label in ``EventDimensions``.
    public var eventSources = EventSourceLabels.standard
    /// The longest value (in UTF-8 bytes, after unescaping) of a string field the schema defines
    /// (including each `genre` entry). Unknown fields are bounded by `maxEventBytes` only.
    public var maxStringBytes = 1024
    /// The deepest nesting allowed, counting the event object as depth 1 (an array body's brackets
    /// do not count).
    public var maxNestingDepth = 32

    public init() {}
}

/// Why an event was rejected: a bounded code (a metric label and a column in the rejected stream).
public struct RejectionReason: Hashable, Sendable, RawRepresentable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// A required field is absent.
    public static let missingField = RejectionReason(rawValue: "missing_field")
    /// A field has the wrong JSON type.
    public static let invalidType = RejectionReason(rawValue: "invalid_type")
    /// A field has the right type but a value outside its domain (enum, empty id, integer overflow).
    public static let invalidValue = RejectionReason(rawValue: "invalid_value")
    /// `timestamp` is not an ISO 8601 date-time of the accepted forms (``EventTimestamp``).
    public static let invalidTimestamp = RejectionReason(rawValue: "invalid_timestamp")
    /// `duration_seconds` or `current_timestamp` is negative.
    public static let negativeNumber = RejectionReason(rawValue: "negative_number")
    /// A string field is longer than `maxStringBytes`.
    public static let stringTooLong = RejectionReason(rawValue: "string_too_long")
    /// The event is larger than `maxEventBytes`.
    public static let eventTooLarge = RejectionReason(rawValue: "event_too_large")
    /// The event came after `maxEventsPerRequest` others in its body.
    public static let tooManyEvents = RejectionReason(rawValue: "too_many_events")
    /// The bytes are not JSON.
    public static let malformedJSON = RejectionReason(rawValue: "malformed_json")
    /// A string is not valid UTF-8 (raw bytes, or escapes with a lone surrogate).
    public static let invalidUTF8 = RejectionReason(rawValue: "invalid_utf8")
    /// Objects or arrays nested deeper than `maxNestingDepth`.
    public static let tooDeep = RejectionReason(rawValue: "too_deep")
    /// `schema_version` names a version this server does not know.
    public static let unknownSchemaVersion = RejectionReason(rawValue: "unknown_schema_version")
    /// The event is valid JSON but not an object.
    public static let notAnObject = RejectionReason(rawValue: "not_an_object")
    /// The body holds no event at all.
    public static let emptyBody = RejectionReason(rawValue: "empty_body")
    /// A key appears twice in one object.
    public static let duplicateField = RejectionReason(rawValue: "duplicate_field")

    /// Every reason the decoder produces.
    public static let all: [RejectionReason] = [
        .missingField, .invalidType, .invalidValue, .invalidTimestamp, .negativeNumber, .stringTooLong,
        .eventTooLarge, .tooManyEvents, .malformedJSON, .invalidUTF8, .tooDeep, .unknownSchemaVersion,
        .notAnObject, .emptyBody, .duplicateField,
    ]
}

/// One rejected event (or the whole body, when `index == -1`).
public struct EventValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The event's position in its body (0-based; NDJSON counts non-blank lines), -1 for the whole body.
    public var index: Int
    /// The event's `event_id` when it could be read.
    public var eventID: String?
    /// The field at fault, as a path such as `genre[1]`, or nil.
    public var field: String?
    public var reason: RejectionReason
    /// A sentence for people.
    public var message: String

    public init(index: Int, eventID: String? = nil, field: String? = nil, reason: RejectionReason, message: String) {
        self.index = index
        self.eventID = eventID
        self.field = field
        self.reason = reason
        self.message = message
    }

    public var description: String {
        "event \(index)\(field.map { " field \($0)" } ?? ""): \(reason.rawValue): \(message)"
    }
}

/// The bounded labels of an accepted event, for metrics.
public struct EventDimensions: Sendable, Hashable {
    public let eventType: String
    public let contentType: String
    /// One of the decoder's ``EventSourceLabels``, else "other".
    public let eventSource: String
    /// The three labels as one small number in `0..<codeCount`, so that events can be counted by
    /// their labels without hashing strings. It holds the event source's index in its
    /// ``EventSourceLabels`` (``EventSourceLabels/maxCount`` for `other`): read it back with the same.
    public let code: Int

    public init(eventType: String, contentType: String, eventSource: String, sources: EventSourceLabels = .standard) {
        self.init(
            eventTypeIndex: KnownValues.eventTypeStrings.firstIndex(of: eventType) ?? KnownValues.eventTypeStrings.count,
            contentTypeIndex: KnownValues.contentTypeStrings.firstIndex(of: contentType) ?? KnownValues.contentTypeStrings.count,
            eventSourceIndex: sources.names.firstIndex(of: eventSource) ?? sources.names.count,
            sources: sources, eventType: eventType, contentType: contentType
        )
    }

    /// The labels of `code` (a value of `code` of another instance made with the same `sources`).
    public init(code: Int, sources: EventSourceLabels = .standard) {
        let stride = Self.sourceStride
        let contentTypes = KnownValues.contentTypeStrings.count + 1
        self.init(
            eventTypeIndex: code / stride / contentTypes, contentTypeIndex: code / stride % contentTypes, eventSourceIndex: code % stride,
            sources: sources
        )
    }

    /// From the decoder's indexes into the known values (an index past the end: a value outside
    /// them, named by `eventType` / `contentType`).
    init(
        eventTypeIndex: Int, contentTypeIndex: Int, eventSourceIndex: Int, sources: EventSourceLabels,
        eventType: String? = nil, contentType: String? = nil
    ) {
        let types = KnownValues.eventTypeStrings, contents = KnownValues.contentTypeStrings
        self.eventType = eventTypeIndex < types.count ? types[eventTypeIndex] : eventType ?? "other"
        self.contentType = contentTypeIndex < contents.count ? contents[contentTypeIndex] : contentType ?? "other"
        eventSource = sources.label(at: eventSourceIndex)
        let sourceSlot = eventSourceIndex < sources.names.count ? eventSourceIndex : EventSourceLabels.maxCount
        code = (eventTypeIndex * (contents.count + 1) + contentTypeIndex) * Self.sourceStride + sourceSlot
    }

    /// The event types of the schema, each its own label value (any other is `other`).
    public static var eventTypes: [String] { KnownValues.eventTypeStrings }
    /// The content types of the schema, each its own label value (any other is `other`).
    public static var contentTypes: [String] { KnownValues.contentTypeStrings }

    /// Event sources take this many codes per event type and content type: every index of an
    /// ``EventSourceLabels``, and `other`.
    static var sourceStride: Int { EventSourceLabels.maxCount + 1 }

    /// The number of distinct codes.
    public static var codeCount: Int {
        (KnownValues.eventTypeStrings.count + 1) * (KnownValues.contentTypeStrings.count + 1) * sourceStride
    }
}

/// Receives what the decoder produces. The buffers are valid only during the call.
public protocol EventSink {
    /// An accepted event. `key` is its `session_id` when present, else its `device_id` (so that a
    /// session stays in one Kafka partition); `record` is the binary record, version 1.
    mutating func accepted(index: Int, key: UnsafeRawBufferPointer, dimensions: EventDimensions, record: UnsafeRawBufferPointer)
    /// A rejected event; `record` is the rejected record, version 1, whose raw bytes are the event's
    /// exact bytes (the whole body when `error.index == -1`).
    mutating func rejected(_ error: EventValidationError, record: UnsafeRawBufferPointer)
}

/// What one body gave.
public struct DecodeOutcome: Sendable {
    public var accepted: Int
    public var rejected: Int
    /// Every rejection, in body order.
    public var errors: [EventValidationError]

    public init(accepted: Int = 0, rejected: Int = 0, errors: [EventValidationError] = []) {
        self.accepted = accepted
        self.rejected = rejected
        self.errors = errors
    }

    /// Whether the body was refused whole for holding more than
    /// ``EventDecoderConfiguration/refusedEventCount`` events (HTTP 413).
    public var refusedForTooManyEvents: Bool {
        accepted == 0 && errors.count == 1 && errors[0].index == -1 && errors[0].reason == .tooManyEvents
    }

    /// The HTTP answer:
    /// `{"accepted":N,"rejected":M,"errors":[{"index":i,"event_id":"…"|null,"field":"…"|null,"reason":"…","message":"…"}]}`.
    public func responseJSON() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(48 + errors.count * 128)
        out.append(contentsOf: #"{"accepted":"#.utf8)
        JSONWriter.appendInt(Int64(accepted), to: &out)
        out.append(contentsOf: #","rejected":"#.utf8)
        JSONWriter.appendInt(Int64(rejected), to: &out)
        out.append(contentsOf: #","errors":["#.utf8)
        for (n, error) in errors.enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"index":"#.utf8)
            JSONWriter.appendInt(Int64(error.index), to: &out)
            out.append(contentsOf: #","event_id":"#.utf8)
            if let id = error.eventID { JSONWriter.appendString(id, to: &out) } else { out.append(contentsOf: "null".utf8) }
            out.append(contentsOf: #","field":"#.utf8)
            if let field = error.field { JSONWriter.appendString(field, to: &out) } else { out.append(contentsOf: "null".utf8) }
            out.append(contentsOf: #","reason":"#.utf8)
            JSONWriter.appendString(error.reason.rawValue, to: &out)
            out.append(contentsOf: #","message":"#.utf8)
            JSONWriter.appendString(error.message, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: "]}".utf8)
        return out
    }
}
