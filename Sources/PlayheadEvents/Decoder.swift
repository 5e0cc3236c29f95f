import CPlayhead

/// The single-pass JSON decoder and validator for events (schema 1.0 and 1.1).
///
/// It walks the body's bytes once, records where each field's value lies, validates it, and writes
/// the binary record straight from those spans (copying unescaped strings, unescaping the others).
/// No Foundation, no `String` per accepted event.
public struct EventDecoder: Sendable {
    public let configuration: EventDecoderConfiguration

    public init(configuration: EventDecoderConfiguration = .init()) {
        self.configuration = configuration
    }

    /// Decodes `body`, hands every accepted and rejected event to `sink` (in body order), and
    /// returns the counts and the rejections.
    ///
    /// A body that is not valid JSON (format `.json`, or sniffed as one document) is rejected as a
    /// whole (index -1, `malformed_json`), and none of its events are accepted. In NDJSON every line
    /// stands alone.
    ///
    /// `clientAddress`: the address of the client that sent the body (`--fill-ip-address`). An
    /// accepted event whose `ip_address` is `""` is stored with it instead, under the same IP policy.
    /// Nil (the default): `ip_address` is stored as the event has it.
    public func decode<Sink: EventSink>(
        _ body: UnsafeRawBufferPointer, format: EventBodyFormat, receivedAt: Int64, clientAddress: String? = nil,
        into sink: inout Sink
    ) -> DecodeOutcome {
        var parser = EventParser(configuration: configuration, body: body, receivedAt: receivedAt)
        if let clientAddress, clientAddress.utf8.count <= 64 { parser.clientAddress = clientAddress }
        parser.run(format: format)
        return parser.emit(into: &sink)
    }
}

/// A syntax error: the bytes are not JSON.
struct Malformed: Error {
    var message: String
}

/// A string value's position in the body: the bytes between its quotes.
struct StringSpan {
    var start = 0
    var end = 0
    /// The length once unescaped.
    var decodedCount = 0
    var escaped = false
}

/// An unknown member: from its key's opening quote to its key's end, then its value.
struct UnknownMember {
    var keyStart: Int
    var keyEnd: Int  // past the closing quote
    var valueStart: Int
    var valueEnd: Int
}

enum Field: Int {
    case eventID = 0, eventType, timestamp, userID, deviceID, sessionID, ipAddress, contentID, contentType, title,
        genre, durationSeconds, language, currentTimestamp, eventSource, schemaVersion

    static let names: [String] = [
        "event_id", "event_type", "timestamp", "user_id", "device_id", "session_id", "ip_address", "content_id",
        "content_type", "title", "genre", "duration_seconds", "language", "current_timestamp", "event_source",
        "schema_version",
    ]
    var name: String { Field.names[rawValue] }

    /// Required in every schema version (all but session_id and schema_version).
    static let requiredMask: UInt32 = {
        var mask: UInt32 = 0
        for f in 0..<16 where f != Field.sessionID.rawValue && f != Field.schemaVersion.rawValue { mask |= 1 << f }
        return mask
    }()

    /// Identifies a key (its unescaped bytes).
    @inline(__always)
    static func lookup(_ p: UnsafePointer<UInt8>, _ n: Int) -> Field? {
        guard n >= 5 else { return nil }
        let c = p[0]
        let candidate: Field
        switch n {
        case 5: candidate = c == UInt8(ascii: "t") ? .title : .genre
        case 7: candidate = .userID
        case 8: candidate = c == UInt8(ascii: "e") ? .eventID : .language
        case 9: candidate = c == UInt8(ascii: "t") ? .timestamp : .deviceID
        case 10:
            switch c {
            case UInt8(ascii: "e"): candidate = .eventType
            case UInt8(ascii: "s"): candidate = .sessionID
            case UInt8(ascii: "i"): candidate = .ipAddress
            default: candidate = .contentID
            }
        case 12: candidate = c == UInt8(ascii: "c") ? .contentType : .eventSource
        case 14: candidate = .schemaVersion
        case 16: candidate = .durationSeconds
        case 17: candidate = .currentTimestamp
        default: return nil
        }
        return bytesEqual(p, n, candidate.staticName) ? candidate : nil
    }

    /// The key as it usually appears in a body: `"name":`, quotes and colon included.
    var keyPattern: StaticString {
        switch self {
        case .eventID: "\"event_id\":"
        case .eventType: "\"event_type\":"
        case .timestamp: "\"timestamp\":"
        case .userID: "\"user_id\":"
        case .deviceID: "\"device_id\":"
        case .sessionID: "\"session_id\":"
        case .ipAddress: "\"ip_address\":"
        case .contentID: "\"content_id\":"
        case .contentType: "\"content_type\":"
        case .title: "\"title\":"
        case .genre: "\"genre\":"
        case .durationSeconds: "\"duration_seconds\":"
        case .language: "\"language\":"
        case .currentTimestamp: "\"current_timestamp\":"
        case .eventSource: "\"event_source\":"
        case .schemaVersion: "\"schema_version\":"
        }
    }

    var staticName: StaticString {
        switch self {
        case .eventID: "event_id"
        case .eventType: "event_type"
        case .timestamp: "timestamp"
        case .userID: "user_id"
        case .deviceID: "device_id"
        case .sessionID: "session_id"
        case .ipAddress: "ip_address"
        case .contentID: "content_id"
        case .contentType: "content_type"
        case .title: "title"
        case .genre: "genre"
        case .durationSeconds: "duration_seconds"
        case .language: "language"
        case .currentTimestamp: "current_timestamp"
        case .eventSource: "event_source"
        case .schemaVersion: "schema_version"
        }
    }
}

/// A key expected at a position of an event object, with its ``Field/keyPattern`` at hand.
struct ExpectedKey {
    var field: Field?
    var pattern: UnsafePointer<UInt8>
    var count: Int

    init(_ field: Field?) {
        self.field = field
        let pattern: StaticString = field?.keyPattern ?? "\u{0}"  // never matches: a key starts with a quote
        self.pattern = pattern.utf8Start
        count = pattern.utf8CodeUnitCount
    }
}

/// Whether `p[0..<n]` equals `s` (compared a word at a time).
@inline(__always)
func bytesEqual(_ p: UnsafePointer<UInt8>, _ n: Int, _ s: StaticString) -> Bool {
    guard s.utf8CodeUnitCount == n else { return false }
    return bytesEqual(p, s.utf8Start, n)
}

/// Whether `p[0..<n]` equals `q[0..<n]` (compared a word at a time).
@inline(__always)
func bytesEqual(_ p: UnsafePointer<UInt8>, _ q: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    let a = UnsafeRawPointer(p)
    let b = UnsafeRawPointer(q)
    if n >= 8 {
        var i = 0
        while i + 8 <= n {
            if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i += 8
        }
        return a.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) == b.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
    }
    if n >= 4 {
        return a.loadUnaligned(as: UInt32.self) == b.loadUnaligned(as: UInt32.self)
            && a.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self) == b.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
    }
    for i in 0..<n where p[i] != q[i] { return false }
    return true
}

/// The known values of the enum fields, and the dimension strings.
enum KnownValues {
    static let eventTypeStrings = ["play", "pause", "stop", "seek", "heartbeat", "buffering"]
    static let contentTypeStrings = ["movie", "episode", "ad"]

    typealias Matcher = (UnsafePointer<UInt8>, Int) -> Int?

    /// 1.0 event types (indexes into `eventTypeStrings`).
    static func eventType10(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        if bytesEqual(p, n, "play") { return 0 }
        if bytesEqual(p, n, "pause") { return 1 }
        if bytesEqual(p, n, "stop") { return 2 }
        return nil
    }

    static func eventType11(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        if let k = eventType10(p, n) { return k }
        if bytesEqual(p, n, "seek") { return 3 }
        if bytesEqual(p, n, "heartbeat") { return 4 }
        if bytesEqual(p, n, "buffering") { return 5 }
        return nil
    }

    static func contentType(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        if bytesEqual(p, n, "movie") { return 0 }
        if bytesEqual(p, n, "episode") { return 1 }
        if bytesEqual(p, n, "ad") { return 2 }
        return nil
    }

    static func schemaVersion(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        if bytesEqual(p, n, "1.0") { return 0 }
        if bytesEqual(p, n, "1.1") { return 1 }
        return nil
    }
}

/// What the parser hands to the sink once the body is done.
struct PendingEvent {
    var index: Int
    var accepted: Bool
    var keyStart: Int
    var keyCount: Int
    var recordStart: Int
    var recordCount: Int
    var eventType: UInt8
    var contentType: UInt8
    var eventSource: UInt8
    var errorIndex: Int
}

/// The events of a body waiting for `emit`, in order. The first is kept inline: a body of one event
/// (most requests from devices) allocates no array for it.
struct PendingEvents: Sequence {
    private var first: PendingEvent?
    private var rest: [PendingEvent] = []

    mutating func append(_ event: PendingEvent) {
        if first == nil { first = event } else { rest.append(event) }
    }

    mutating func removeAll() {
        first = nil
        rest.removeAll()
    }

    struct Iterator: IteratorProtocol {
        fileprivate var first: PendingEvent?
        fileprivate var rest: IndexingIterator<[PendingEvent]>

        mutating func next() -> PendingEvent? {
            if let event = first {
                first = nil
                return event
            }
            return rest.next()
        }
    }

    func makeIterator() -> Iterator { Iterator(first: first, rest: rest.makeIterator()) }
}

/// The per-event error being built (first error wins, except as noted in `finishEvent`).
struct FieldError {
    var reason: RejectionReason
    var field: String?
    var message: String
}

struct EventParser {
    let configuration: EventDecoderConfiguration
    let body: UnsafeRawBufferPointer
    let p: UnsafePointer<UInt8>
    let receivedAt: Int64
    let maxDepth: Int
    /// `configuration.eventSources`' table, taken once per body.
    let eventSources: EventSourceLabels.Table

    /// The end of the region being parsed (the body, or the current NDJSON line).
    var end: Int
    var pos = 0
    /// Where the body's content starts: 3 after a UTF-8 byte order mark, else 0.
    var contentStart = 0

    // Per event.
    var seen: UInt32 = 0
    /// Fields whose value had the right type.
    var typed: UInt32 = 0
    /// The string fields' spans by `Field` (16; freed by `emit`).
    let spans: UnsafeMutablePointer<StringSpan>
    /// The key expected at each position of an event object (`nil`: an unknown one): the
    /// previous event's keys, in its order (the schema's order before the first). Senders write
    /// every event with the same code, so a key is usually found by comparing its bytes with the
    /// one expected there (``Field/keyPattern``) instead of scanning and looking it up. Holds
    /// ``predictedKeys`` entries; freed by `emit`.
    let keyOrder: UnsafeMutablePointer<ExpectedKey>
    static let predictedKeys = 32
    /// The genres of the current event: the first `genreCount` entries (the array keeps its slots
    /// from event to event; emptying it per event went through a generic `replaceSubrange`).
    var genres: [StringSpan] = []
    var genreCount = 0
    var unknown: [UnknownMember] = []
    var unknownKeys: [UInt8] = []
    var unknownKeyRanges: [Range<Int>] = []
    /// Past ``unknownKeysComparedOneByOne`` unknown keys in an event: the index in
    /// ``unknownKeyRanges`` of the first key of each hash (``isRepeatedUnknownKey(_:)``). One
    /// integer per key: an array per key cost an allocation each (an outside review).
    var unknownKeyHashes: [Int: Int] = [:]
    var keyScratch: [UInt8] = []
    var durationSeconds: Int64 = 0
    var currentTimestamp: Double = 0
    var sessionNull = false
    /// What an empty `ip_address` is stored as (``EventDecoder/decode(_:format:receivedAt:clientAddress:into:)``):
    /// empty when there is no such address, and then "" stays "".
    var clientAddress = ""
    var error: FieldError?

    // Output.
    /// The records of the body (accepted and rejected), handed to the sink by `emit`.
    var out = UnsafeMutablePointer<UInt8>(bitPattern: 1)!
    var outCount = 0
    var outCapacity = 0
    var pending = PendingEvents()
    var errors: [EventValidationError] = []
    var acceptedCount = 0
    var eventIndex = 0
    /// Set when the body holds more events than ``EventDecoderConfiguration/refusedEventCount``.
    var tooManyToRead = false

    init(configuration: EventDecoderConfiguration, body: UnsafeRawBufferPointer, receivedAt: Int64) {
        self.configuration = configuration
        self.body = body
        self.p = body.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(bitPattern: 1)!
        self.receivedAt = receivedAt
        self.maxDepth = max(1, min(configuration.maxNestingDepth, 1024))
        eventSources = configuration.eventSources.table
        self.end = body.count
        spans = UnsafeMutablePointer<StringSpan>.allocate(capacity: 16)
        spans.initialize(repeating: StringSpan(), count: 16)
        keyOrder = UnsafeMutablePointer<ExpectedKey>.allocate(capacity: Self.predictedKeys)
        for k in 0..<Self.predictedKeys { (keyOrder + k).initialize(to: ExpectedKey(Field(rawValue: k))) }
        // Room for the record of a one-event body without growing (`writeRecord` reserves the
        // event's length + 256 + 5 per genre), yet under 1 KiB for a typical single event, which
        // malloc serves from its per-thread cache; larger blocks come from the shared arena, under
        // its lock.
        growOutput(body.count + 320)
        genres.reserveCapacity(8)
    }

    // MARK: Driving

    mutating func run(format: EventBodyFormat) {
        // A UTF-8 byte order mark first, which some clients write (.NET, PowerShell): RFC 8259 lets
        // a parser ignore it, and nothing is gained by refusing the whole body for it.
        if end - pos >= 3 && p[pos] == 0xEF && p[pos + 1] == 0xBB && p[pos + 2] == 0xBF {
            pos += 3
            contentStart = pos
        }
        if let encoding = wideEncoding() {
            rejectBody(.invalidUTF8, "the body is \(encoding), not UTF-8: JSON must be sent as UTF-8 (RFC 8259)")
            return
        }
        skipWhitespace()
        guard pos < end else {
            rejectBody(.emptyBody, "the body holds no event")
            return
        }
        switch format {
        case .json: runJSON()
        case .ndjson: runNDJSON()
        case .sniff:
            // The same reading as `application/json`, which takes NDJSON too when its lines are
            // objects of their own (``ndjsonAfterFirstObject(from:)``). Sniffing had its own, looser
            // rule (NDJSON whenever more followed the first object), so a `text/plain` body of
            // pretty-printed objects (what `jq .` prints) was cut into a rejection per line, and past
            // 2,000 lines refused as too many events (an outside review).
            runJSON()
        }
    }

    /// The encoding of a body sent as UTF-16 or UTF-32 (as a .NET or Windows client may), told by
    /// its byte order mark, or without one by where the zero bytes of its first four bytes fall
    /// (JSON text starts with an ASCII character, which those encodings pad with zero bytes);
    /// nil for anything else. A first line of NDJSON with a stray zero byte does not match, so it
    /// costs only that line. Without this, such a body was refused as malformed JSON, with a
    /// message about an invalid number or character that did not say why.
    func wideEncoding() -> String? {
        guard end - pos >= 2 else { return nil }
        let b0 = p[pos], b1 = p[pos + 1]
        guard b0 == 0xFF || b0 == 0xFE || b0 == 0 || b1 == 0 else { return nil }
        let b2: UInt8? = end - pos >= 4 ? p[pos + 2] : nil
        let b3: UInt8? = end - pos >= 4 ? p[pos + 3] : nil
        switch (b0, b1, b2, b3) {
        case (0xFF, 0xFE, 0, 0): return "UTF-32LE (byte order mark FF FE 00 00)"
        case (0xFF, 0xFE, _, _): return "UTF-16LE (byte order mark FF FE)"
        case (0xFE, 0xFF, _, _): return "UTF-16BE (byte order mark FE FF)"
        case (0, 0, 0xFE, 0xFF): return "UTF-32BE (byte order mark 00 00 FE FF)"
        case (1..., 0, 0, 0): return "UTF-32LE (without a byte order mark)"
        case (0, 0, 0, .some(1...)): return "UTF-32BE (without a byte order mark)"
        case (1..., 0, .some(1...), 0): return "UTF-16LE (without a byte order mark)"
        case (0, 1..., 0, .some(1...)): return "UTF-16BE (without a byte order mark)"
        default: return nil
        }
    }

    /// After `{` whose object is not valid JSON: NDJSON (its first line broken) when the first
    /// line alone is `{…}` and later lines hold more, or when every later line starts an object.
    /// (A first value that is valid and followed by more is not asked here: true then.)
    mutating func looksLikeNDJSON() -> Bool {
        guard p[pos] == UInt8(ascii: "{") else { return false }
        let start = pos
        defer { pos = start }
        var error: FieldError? = nil
        swap(&error, &self.error)
        defer { swap(&error, &self.error) }
        do throws(Malformed) {
            try skipValue(depth: 1)
            skipWhitespace()
            return pos < end
        } catch {
            // Malformed somewhere: NDJSON if the first line alone looks like an object, or if it
            // starts one and every later line does too (the first line cut short).
            var lineEnd = start
            while lineEnd < end, p[lineEnd] != 0x0A { lineEnd += 1 }
            guard lineEnd < end else { return false }
            var last = lineEnd - 1
            while last > start, isWhitespace(p[last]) { last -= 1 }
            return p[last] == UInt8(ascii: "}") || everyLineStartsAnObject(from: lineEnd + 1)
        }
    }

    /// Whether the lines from `lineStart` (a line's first byte) to the body's end that are not
    /// blank all start with `{`, and there is at least one: NDJSON, some of whose lines may be
    /// cut short or broken, rather than an object printed over several lines, whose inner lines
    /// start with a key or `}`.
    func everyLineStartsAnObject(from lineStart: Int) -> Bool {
        var i = lineStart
        var seen = false
        while i < end {
            while i < end, p[i] == 0x20 || p[i] == 0x09 || p[i] == 0x0D { i += 1 }
            if i < end, p[i] != 0x0A {
                guard p[i] == UInt8(ascii: "{") else { return false }
                seen = true
            }
            while i < end, p[i] != 0x0A { i += 1 }
            i += 1
        }
        return seen
    }

    mutating func runJSON() {
        let first = p[pos]
        var emptyArray = false
        var firstParsed = false
        do throws(Malformed) {
            if first == UInt8(ascii: "[") {
                pos += 1
                skipWhitespace()
                if pos < end, p[pos] == UInt8(ascii: "]") {
                    pos += 1
                    emptyArray = true
                } else {
                    while true {
                        skipWhitespace()
                        try element()
                        skipWhitespace()
                        guard pos < end else { throw Malformed(message: "the array is not closed") }
                        if p[pos] == UInt8(ascii: ",") {
                            pos += 1
                            continue
                        }
                        guard p[pos] == UInt8(ascii: "]") else {
                            throw Malformed(message: "expected ',' or ']' at byte \(pos)")
                        }
                        pos += 1
                        break
                    }
                }
            } else if first == UInt8(ascii: "{") {
                let firstStart = pos
                try element()
                firstParsed = true
                if ndjsonAfterFirstObject(from: firstStart) {
                    // NDJSON sent as application/json (curl's -H, a logging shipper): one event per
                    // line, as the type's body would have been read. It was refused whole, as
                    // malformed JSON, with every valid event in it (a contract review).
                    restartAsNDJSON()
                    return
                }
            } else {
                let start = pos
                try skipValue(depth: 1)
                skipWhitespace()
                guard pos == end else { throw Malformed(message: "unexpected bytes after the JSON value at byte \(pos)") }
                _ = start
                rejectBody(.notAnObject, "the body must be an event object, an array of event objects, or NDJSON")
                return
            }
            skipWhitespace()
            guard pos == end else {
                // Another object: NDJSON that is not one object per line (a review: the message
                // did not say why such a body was not read line by line).
                let hint = first == UInt8(ascii: "{") && p[pos] == UInt8(ascii: "{")
                    ? " (another object: NDJSON must hold each event on a line of its own, and an object printed over several lines is not read as NDJSON)" : ""
                throw Malformed(message: "unexpected bytes after the JSON value at byte \(pos)\(hint)")
            }
            // Nothing to accept, so the answer is a 400: it must say why.
            if emptyArray { rejectBody(.emptyBody, "the body is an empty array: it holds no event") }
        } catch {
            if tooManyToRead {
                refuseTooMany()
                return
            }
            // NDJSON sent as application/json whose first line is broken: read by lines, as when a
            // later line is (the good lines were refused with it, a review). Only when the first
            // line alone looks like an object (``looksLikeNDJSON()``); else not JSON at all.
            if first == UInt8(ascii: "{") && !firstParsed {
                pos = contentStart
                skipWhitespace()
                if looksLikeNDJSON() {
                    restartAsNDJSON()
                    return
                }
            }
            // Not JSON: nothing of it is accepted.
            discardOutput()
            rejectBody(.malformedJSON, "the body is not valid JSON: \(error.message)")
        }
    }

    /// Whether the body is NDJSON rather than one JSON value: more follows the first object (from
    /// `start` to `pos`) on a new line, the first object sits on one line, and the next line is a
    /// `{…}` of its own too. A pretty-printed object on either side is not NDJSON: read by lines,
    /// it was cut into a rejection per line (a review).
    func ndjsonAfterFirstObject(from start: Int) -> Bool {
        var i = pos
        var newline = false
        while i < end, isWhitespace(p[i]) {
            if p[i] == 0x0A { newline = true }
            i += 1
        }
        guard i < end && newline else { return false }
        // Only now, with more than one value in the body: the lines.
        for j in start..<pos where p[j] == 0x0A { return false }
        guard p[i] == UInt8(ascii: "{") else { return false }
        var lineEnd = i
        while lineEnd < end, p[lineEnd] != 0x0A { lineEnd += 1 }
        var last = lineEnd - 1
        while last > i, isWhitespace(p[last]) { last -= 1 }
        // The next line `{…}`, or every later line starting an object: one cut short (a line
        // broken in the middle) costs only itself. Until 2026-12-06 a broken second line had the
        // whole body refused as malformed JSON, where text/plain lost only that line (a review).
        return p[last] == UInt8(ascii: "}") || everyLineStartsAnObject(from: i)
    }

    /// Reads the body again from its start as NDJSON, forgetting what the JSON reading made.
    mutating func restartAsNDJSON() {
        discardOutput()
        eventIndex = 0
        pos = contentStart
        end = body.count
        runNDJSON()
    }

    /// Forgets every event and rejection made so far: the body is rejected whole.
    mutating func discardOutput() {
        outCount = 0
        pending.removeAll()
        errors.removeAll()
        acceptedCount = 0
    }

    /// Rejects the whole body for holding more events than ``EventDecoderConfiguration/refusedEventCount``.
    mutating func refuseTooMany() {
        discardOutput()
        let limit = configuration.maxEventsPerRequest
        rejectBody(
            .tooManyEvents,
            "the body holds more than \(configuration.refusedEventCount) events; a request may hold at most \(limit) (the events past \(limit) are rejected one by one up to \(configuration.refusedEventCount), past that the whole body is refused): nothing of it was accepted; send at most \(limit) events per request"
        )
    }

    /// One element of an array body (or the single object).
    mutating func element() throws(Malformed) {
        guard pos < end else { throw Malformed(message: "unexpected end of the body") }
        let start = pos
        let index = eventIndex
        eventIndex += 1
        if index >= configuration.maxEventsPerRequest {
            // The element is read first: a body whose element past the limit is not JSON (a
            // trailing comma) is malformed, not one of too many events (413 said so, an outside review).
            try skipValue(depth: 1)
            if index >= configuration.refusedEventCount {
                tooManyToRead = true
                throw Malformed(message: "too many events")
            }
            rejectEvent(
                index: index, start: start, end: pos, eventID: nil, field: nil, reason: .tooManyEvents,
                message: "a request may hold at most \(configuration.maxEventsPerRequest) events; this one was not read"
            )
            return
        }
        if p[start] == UInt8(ascii: "{") {
            try object()
            finishEvent(index: index, start: start, end: pos)
        } else {
            try skipValue(depth: 1)
            rejectNonObject(index: index, start: start, end: pos)
        }
    }

    /// Rejects an array element or NDJSON line that is JSON but not an object: `event_too_large`
    /// when it is over the event limit (which wins over every other reason), else `not_an_object`.
    mutating func rejectNonObject(index: Int, start: Int, end valueEnd: Int) {
        if valueEnd - start > configuration.maxEventBytes {
            rejectTooLarge(index: index, start: start, end: valueEnd, eventID: nil)
        } else {
            rejectEvent(index: index, start: start, end: valueEnd, eventID: nil, field: nil, reason: .notAnObject, message: "an event must be a JSON object")
        }
    }

    mutating func rejectTooLarge(index: Int, start: Int, end eventEnd: Int, eventID: String?) {
        rejectEvent(
            index: index, start: start, end: eventEnd, eventID: eventID, field: nil, reason: .eventTooLarge,
            message: "the event is \(eventEnd - start) bytes; the limit is \(configuration.maxEventBytes)"
        )
    }

    mutating func runNDJSON() {
        var lineStart = contentStart
        let bodyEnd = body.count
        var sawEvent = false
        var line = 0  // the line's number, blank lines included (for a malformed line's message)
        while lineStart < bodyEnd {
            line += 1
            let lineEnd = newline(from: lineStart, to: bodyEnd)
            var s = lineStart
            var e = lineEnd
            while s < e, isWhitespace(p[s]) { s += 1 }
            while e > s, isWhitespace(p[e - 1]) { e -= 1 }
            lineStart = lineEnd + 1
            if s == e { continue }
            sawEvent = true
            let index = eventIndex
            eventIndex += 1
            if index >= configuration.maxEventsPerRequest {
                if index >= configuration.refusedEventCount {
                    end = bodyEnd
                    refuseTooMany()
                    return
                }
                rejectEvent(
                    index: index, start: s, end: e, eventID: nil, field: nil, reason: .tooManyEvents,
                    message: "a request may hold at most \(configuration.maxEventsPerRequest) events; this one was not read"
                )
                continue
            }
            // A line over the event limit is read like any other, so that its rejection names its
            // `event_id` as in a JSON body (it gave null: an outside review); `event_too_large`
            // wins over every other reason, a malformed line's too.
            pos = s
            end = e
            do throws(Malformed) {
                if p[s] == UInt8(ascii: "{") {
                    try object()
                    guard pos == e else { throw Malformed(message: "unexpected bytes after the object at byte \(pos)") }
                    finishEvent(index: index, start: s, end: e)
                } else {
                    try skipValue(depth: 1)
                    guard pos == e else { throw Malformed(message: "unexpected bytes after the value at byte \(pos)") }
                    rejectNonObject(index: index, start: s, end: e)
                }
            } catch {
                if e - s > configuration.maxEventBytes {
                    rejectTooLarge(index: index, start: s, end: e, eventID: nil)
                    continue
                }
                // The line's number (blank lines count, as in an editor; `index` does not count them)
                // and where it starts: the error's byte is the body's, which a client with one bad
                // line among thousands had to map to a line itself.
                rejectEvent(
                    index: index, start: s, end: e, eventID: nil, field: nil, reason: .malformedJSON,
                    message: "line \(line) is not valid JSON: \(error.message) (the line starts at byte \(s))"
                )
            }
        }
        end = bodyEnd
        if !sawEvent { rejectBody(.emptyBody, "the body holds no event") }
    }

    // MARK: Lexing

    /// The index of the first '\n' in `p[from..<to]`, or `to` (eight bytes at a time).
    @inline(__always)
    func newline(from: Int, to: Int) -> Int {
        var i = from
        while i + 8 <= to {
            let x = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)) ^ 0x0A0A_0A0A_0A0A_0A0A
            let mask = (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
            if mask != 0 { return i + mask.trailingZeroBitCount >> 3 }
            i += 8
        }
        while i < to, p[i] != 0x0A { i += 1 }
        return i
    }

    @inline(__always)
    func isWhitespace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }

    @inline(__always)
    mutating func skipWhitespace() {
        while pos < end, isWhitespace(p[pos]) { pos += 1 }
    }

    @inline(__always)
    mutating func expect(_ byte: UInt8, _ what: StaticString) throws(Malformed) {
        skipWhitespace()
        guard pos < end, p[pos] == byte else { throw Malformed(message: "expected \(what) at byte \(pos)") }
        pos += 1
    }

    /// Why a string that `scanString` found bad is not UTF-8 text, for its error (a cold path):
    /// raw bytes, or, when its raw bytes are valid, an escape of half a surrogate pair, which a
    /// browser's `JSON.stringify` writes for a JavaScript string cut inside an emoji (`"🎬 x".slice(0, 1)`
    /// gives `"\ud83c"`); "is not valid UTF-8" alone sent web developers looking at bytes that were
    /// fine (a probe, 2026-12-04).
    func utf8Problem(_ span: StringSpan) -> String {
        guard span.end > span.start, UTF8Validation.isValid(UnsafeRawBufferPointer(start: p + span.start, count: span.end - span.start)) else {
            return "is not valid UTF-8"
        }
        return "holds a \\u escape of half a surrogate pair (a JavaScript string cut inside an emoji or another character outside the BMP), which no UTF-8 text can hold"
    }

    /// Scans a string whose opening quote is at `pos`; leaves `pos` past the closing quote.
    /// Invalid UTF-8 (raw or a lone surrogate escape) is reported through `badUTF8`.
    @inline(__always)
    mutating func scanString(badUTF8: inout Bool) throws(Malformed) -> StringSpan {
        pos += 1
        var span = StringSpan()
        span.start = pos
        var i = pos
        var decoded = 0
        // Fast path: plain ASCII, sixteen bytes at a time (SSE2), then eight (in a word). A byte is
        // special when it is '"', '\\', a control character or ≥ 0x80.
        var found = false
        while i &+ 16 <= end {
            let skip = Int(playhead_json_special16(p + i))
            i &+= skip
            decoded &+= skip
            if skip < 16 {
                found = true
                break
            }
        }
        while !found && i + 8 <= end {
            let w = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
            let quote = w ^ 0x2222_2222_2222_2222
            let slash = w ^ 0x5C5C_5C5C_5C5C_5C5C
            let special =
                ((quote &- 0x0101_0101_0101_0101) & ~quote) | ((slash &- 0x0101_0101_0101_0101) & ~slash)
                | ((w &- 0x2020_2020_2020_2020) & ~w) | w
            let mask = special & 0x8080_8080_8080_8080
            if mask != 0 {
                let skip = mask.trailingZeroBitCount >> 3
                i += skip
                decoded += skip
                break
            }
            i += 8
            decoded += 8
        }
        while i < end {
            let b = p[i]
            if b == UInt8(ascii: "\"") {
                span.end = i
                span.decodedCount = decoded
                pos = i + 1
                return span
            }
            if b == UInt8(ascii: "\\") || b < 0x20 || b >= 0x80 { break }
            i += 1
            decoded += 1
        }
        while i < end {
            let b = p[i]
            if b == UInt8(ascii: "\"") {
                span.end = i
                span.decodedCount = decoded
                pos = i + 1
                return span
            }
            if b == UInt8(ascii: "\\") {
                span.escaped = true
                guard i + 1 < end else { break }
                let c = p[i + 1]
                switch c {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                    decoded += 1
                case UInt8(ascii: "u"):
                    guard let u = hex4(i + 2) else { throw Malformed(message: "invalid \\u escape at byte \(i)") }
                    i += 6
                    if u >= 0xD800 && u <= 0xDBFF {
                        if i + 6 <= end, p[i] == UInt8(ascii: "\\"), p[i + 1] == UInt8(ascii: "u"), let lo = hex4(i + 2),
                            lo >= 0xDC00 && lo <= 0xDFFF
                        {
                            i += 6
                            decoded += 4
                        } else {
                            badUTF8 = true
                            decoded += 3
                        }
                    } else if u >= 0xDC00 && u <= 0xDFFF {
                        badUTF8 = true
                        decoded += 3
                    } else {
                        decoded += u < 0x80 ? 1 : (u < 0x800 ? 2 : 3)
                    }
                default:
                    throw Malformed(message: "invalid escape at byte \(i)")
                }
                continue
            }
            if b < 0x20 { throw Malformed(message: "control character in a string at byte \(i)") }
            if b >= 0x80 {
                let n = UTF8Validation.sequenceLength(p, i, end)
                if n == 0 {
                    badUTF8 = true
                    i += 1
                    decoded += 1
                } else {
                    i += n
                    decoded += n
                }
                continue
            }
            i += 1
            decoded += 1
        }
        throw Malformed(message: "unterminated string starting at byte \(span.start - 1)")
    }

    @inline(__always)
    func hex4(_ i: Int) -> UInt32? { Self.hex4(p, i, end) }

    @inline(__always)
    static func hex4(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> UInt32? {
        guard i + 4 <= end else { return nil }
        var v: UInt32 = 0
        for k in 0..<4 {
            let b = p[i + k]
            let d: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
            default: return nil
            }
            v = v << 4 | d
        }
        return v
    }

    /// Where a value should start, a byte that starts none (numbers are tried last): what it is.
    /// (It was "invalid number at byte N" for a NUL byte, a byte order mark at the start of an NDJSON
    /// line, or a word without quotes: a probe.)
    @inline(never)
    static func notAValue(_ p: UnsafePointer<UInt8>, at i: Int, end: Int) -> Malformed {
        let b = p[i]
        if b == 0xEF, end - i >= 3, p[i + 1] == 0xBB, p[i + 2] == 0xBF {
            return Malformed(message: "a byte order mark (EF BB BF) at byte \(i): one is taken only at the start of the body")
        }
        let what = b >= 0x21 && b < 0x7F ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x" + (b < 0x10 ? "0" : "") + String(b, radix: 16, uppercase: true)
        return Malformed(message: "unexpected \(what) at byte \(i), where a value should start (an object, array, string in quotes, number, true, false or null)")
    }

    /// A number's syntax, from `pos`; leaves `pos` past it.
    struct NumberToken {
        var start: Int
        var end: Int
        var isInteger: Bool
    }

    @inline(__always)
    mutating func scanNumber() throws(Malformed) -> NumberToken {
        let start = pos
        var i = pos
        if i < end, p[i] == UInt8(ascii: "-") { i += 1 }
        guard i < end else { throw Malformed(message: "invalid number at byte \(start)") }
        if p[i] == UInt8(ascii: "0") {
            i += 1
        } else if p[i] >= UInt8(ascii: "1") && p[i] <= UInt8(ascii: "9") {
            while i < end, p[i] &- UInt8(ascii: "0") < 10 { i += 1 }
        } else {
            throw i == start ? Self.notAValue(p, at: i, end: end) : Malformed(message: "invalid number at byte \(start)")
        }
        var isInteger = true
        if i < end, p[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            let digits = i
            while i < end, p[i] &- UInt8(ascii: "0") < 10 { i += 1 }
            guard i > digits else { throw Malformed(message: "invalid number at byte \(start)") }
        }
        if i < end, p[i] | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            i += 1
            if i < end, p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-") { i += 1 }
            let digits = i
            while i < end, p[i] &- UInt8(ascii: "0") < 10 { i += 1 }
            guard i > digits else { throw Malformed(message: "invalid number at byte \(start)") }
        }
        pos = i
        return NumberToken(start: start, end: i, isInteger: isInteger)
    }

    /// The value of a number token as a Double (exact fast path for ≤ 15 digits and small exponents).
    func doubleValue(_ t: NumberToken) -> Double {
        var i = t.start
        var negative = false
        if p[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        var mantissa: UInt64 = 0
        var digits = 0
        var exponent = 0
        while i < t.end, p[i] &- UInt8(ascii: "0") < 10 {
            if mantissa != 0 || p[i] != UInt8(ascii: "0") { digits += 1 }
            mantissa = mantissa &* 10 &+ UInt64(p[i] - UInt8(ascii: "0"))
            i += 1
        }
        if i < t.end, p[i] == UInt8(ascii: ".") {
            i += 1
            while i < t.end, p[i] &- UInt8(ascii: "0") < 10 {
                if mantissa != 0 || p[i] != UInt8(ascii: "0") { digits += 1 }
                mantissa = mantissa &* 10 &+ UInt64(p[i] - UInt8(ascii: "0"))
                exponent -= 1
                i += 1
            }
        }
        var slow = digits > 15
        if !slow, i < t.end {  // exponent
            i += 1
            var expNegative = false
            if p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-") {
                expNegative = p[i] == UInt8(ascii: "-")
                i += 1
            }
            var e = 0
            while i < t.end {
                e = e * 10 + Int(p[i] - UInt8(ascii: "0"))
                if e > 100_000 {
                    slow = true
                    break
                }
                i += 1
            }
            exponent += expNegative ? -e : e
        }
        if !slow, exponent >= -22, exponent <= 22 {
            var value = Double(mantissa)
            if exponent < 0 { value /= Self.powersOf10[-exponent] } else { value *= Self.powersOf10[exponent] }
            return negative ? -value : value
        }
        let text = String(decoding: UnsafeRawBufferPointer(start: p + t.start, count: t.end - t.start), as: UTF8.self)
        return Double(text) ?? .nan
    }

    enum IntegralValue: Equatable {
        case integer(Int64)
        case fraction
        case outOfRange
    }

    /// The exact value of a number token written with a fraction or an exponent, when it is an
    /// integer (JSON Schema's `integer`: a number whose fractional part is zero): the significant
    /// digits, without leading and trailing zeros, times a power of ten that must not be negative.
    /// A rare path (integers are sent as integers), so it may allocate.
    func integralValue(_ t: NumberToken) -> IntegralValue {
        var i = t.start
        let negative = p[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        var digits: [UInt8] = []
        var fractionDigits = 0
        var inFraction = false
        while i < t.end {
            let b = p[i]
            if b == UInt8(ascii: ".") {
                inFraction = true
            } else if b &- UInt8(ascii: "0") < 10 {
                if !(digits.isEmpty && b == UInt8(ascii: "0")) { digits.append(b &- UInt8(ascii: "0")) }
                // Leading zeros are dropped, but a fraction digit still moves the point.
                if inFraction { fractionDigits += 1 }
            } else {
                break  // `e` or `E`
            }
            i += 1
        }
        var exponent = 0
        if i < t.end {
            i += 1
            var exponentNegative = false
            if p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-") {
                exponentNegative = p[i] == UInt8(ascii: "-")
                i += 1
            }
            while i < t.end {
                // Saturates far beyond any digit count a body can hold (5 MiB).
                exponent = min(exponent * 10 + Int(p[i] - UInt8(ascii: "0")), 1 << 40)
                i += 1
            }
            if exponentNegative { exponent = -exponent }
        }
        while let last = digits.last, last == 0 {
            digits.removeLast()
            exponent += 1
        }
        if digits.isEmpty { return .integer(0) }
        let scale = exponent - fractionDigits
        if scale < 0 { return .fraction }
        if digits.count + scale > 19 { return .outOfRange }
        var magnitude: UInt64 = 0
        for digit in digits { magnitude = magnitude * 10 + UInt64(digit) }
        for _ in 0..<scale {
            let (m, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            if overflow { return .outOfRange }
            magnitude = m
        }
        if negative {
            return magnitude <= UInt64(Int64.max) + 1 ? .integer(magnitude == UInt64(Int64.max) + 1 ? .min : -Int64(magnitude)) : .outOfRange
        }
        return magnitude <= UInt64(Int64.max) ? .integer(Int64(magnitude)) : .outOfRange
    }

    static let powersOf10: [Double] = (0...22).map { k in
        var v = 1.0
        for _ in 0..<k { v *= 10 }
        return v
    }

    /// Checks a literal (`true`, `false`, `null`) at `pos`.
    @inline(__always)
    mutating func literal() throws(Malformed) {
        let b = p[pos]
        let word: StaticString = b == UInt8(ascii: "t") ? "true" : (b == UInt8(ascii: "f") ? "false" : "null")
        let n = word.utf8CodeUnitCount
        guard pos + n <= end else { throw Malformed(message: "invalid literal at byte \(pos)") }
        for k in 0..<n where p[pos + k] != word.utf8Start[k] { throw Malformed(message: "invalid literal at byte \(pos)") }
        pos += n
    }

    /// Skips any JSON value at `pos` (after whitespace), validating its syntax and its strings.
    /// `depth` is the depth the value would have if it is a container.
    mutating func skipValue(depth: Int) throws(Malformed) {
        skipWhitespace()
        guard pos < end else { throw Malformed(message: "unexpected end at byte \(pos)") }
        let b = p[pos]
        switch b {
        case UInt8(ascii: "\""):
            var bad = false
            let span = try scanString(badUTF8: &bad)
            if bad { noteError(.invalidUTF8, field: nil, "a string " + utf8Problem(span)) }
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            if depth > maxDepth {
                noteError(.tooDeep, field: nil, "objects and arrays may nest at most \(configuration.maxNestingDepth) deep")
                try skipDeep()
                return
            }
            let close = b == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            pos += 1
            skipWhitespace()
            if pos < end, p[pos] == close {
                pos += 1
                return
            }
            while true {
                if b == UInt8(ascii: "{") {
                    skipWhitespace()
                    guard pos < end else { throw Malformed(message: "unexpected end at byte \(pos)") }
                    guard p[pos] == UInt8(ascii: "\"") else { throw Malformed(message: "expected a key at byte \(pos)") }
                    var bad = false
                    let key = try scanString(badUTF8: &bad)
                    if bad { noteError(.invalidUTF8, field: nil, "a key " + utf8Problem(key)) }
                    try expect(UInt8(ascii: ":"), "':'")
                }
                try skipValue(depth: depth + 1)
                skipWhitespace()
                guard pos < end else { throw Malformed(message: "unexpected end at byte \(pos)") }
                if p[pos] == UInt8(ascii: ",") {
                    pos += 1
                    continue
                }
                guard p[pos] == close else { throw Malformed(message: "expected ',' or '\(Character(Unicode.Scalar(close)))' at byte \(pos)") }
                pos += 1
                return
            }
        case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            try literal()
        default:
            _ = try scanNumber()
        }
    }

    /// Whether `bytes` can be a record's `extra`: what the edge writes there, the members of an event
    /// that the schema does not define, as the sender wrote them. One JSON object with valid strings,
    /// at most 1,024 deep, whose keys (compared unescaped) are neither fields of the schema nor
    /// repeated: such an event is rejected (`duplicate_field`), so its record printed by `log dump`
    /// or `log salvage` and imported again would be refused (found by `scripts/fuzz records`).
    static func isExtraObject(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.first == UInt8(ascii: "{") else { return false }
        var configuration = EventDecoderConfiguration()
        configuration.maxNestingDepth = 1024
        var parser = EventParser(configuration: configuration, body: bytes, receivedAt: 0)
        defer {
            parser.spans.deallocate()
            parser.keyOrder.deallocate()
            if parser.outCapacity > 0 { parser.out.deallocate() }
        }
        do {
            try parser.extraMembers()
        } catch {
            return false
        }
        parser.skipWhitespace()
        return parser.error == nil && parser.pos == parser.end
    }

    /// Reads an object's members as unknown fields (``noteUnknown``), and notes an error for a key
    /// of the schema.
    mutating func extraMembers() throws(Malformed) {
        pos += 1
        skipWhitespace()
        if pos < end, p[pos] == UInt8(ascii: "}") {
            pos += 1
            return
        }
        while error == nil {
            skipWhitespace()
            // A body cut off after `{` or `,` is said as the other cut-offs are (an outside review).
            guard pos < end else { throw Malformed(message: "unexpected end at byte \(pos)") }
            guard p[pos] == UInt8(ascii: "\"") else { throw Malformed(message: "expected a key at byte \(pos)") }
            let keyQuote = pos
            var badKey = false
            let key = try scanString(badUTF8: &badKey)
            let keyEnd = pos
            try expect(UInt8(ascii: ":"), "':'")
            if let field = field(ofKey: key, bad: badKey) {
                noteError(.duplicateField, field: field.name, "the field \(field.name) is a field of the schema")
            }
            skipWhitespace()
            let valueStart = pos
            try skipValue(depth: 2)
            if !badKey { noteUnknown(key: key, keyQuote: keyQuote, keyEnd: keyEnd, valueStart: valueStart) }
            if try memberEndsObject() { return }
        }
    }

    /// Skips a container nested too deep without recursion, validating its syntax as
    /// ``skipValue(depth:)`` does (the containers open are kept on a stack of their own). It only
    /// counted brackets: a body that is not JSON (a `[` closed by `}`, words between them) had its
    /// other events accepted, and the contract rejects such a body whole (an outside review).
    mutating func skipDeep() throws(Malformed) {
        var inObject: [Bool] = []  // the containers open, innermost last: true for an object
        var expectingValue = true
        while true {
            skipWhitespace()
            guard pos < end else { throw Malformed(message: "unexpected end inside a nested value") }
            let b = p[pos]
            if expectingValue {
                switch b {
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    let object = b == UInt8(ascii: "{")
                    inObject.append(object)
                    pos += 1
                    skipWhitespace()
                    if pos < end, p[pos] == (object ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                        pos += 1
                        inObject.removeLast()
                        if inObject.isEmpty { return }
                        expectingValue = false
                    } else if object {
                        try skipDeepKey()
                    }
                    continue
                case UInt8(ascii: "\""):
                    var bad = false
                    _ = try scanString(badUTF8: &bad)
                case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                    try literal()
                default:
                    _ = try scanNumber()
                }
                expectingValue = false
                continue
            }
            guard let object = inObject.last else { return }
            if b == UInt8(ascii: ",") {
                pos += 1
                if object { try skipDeepKey() }
                expectingValue = true
            } else if b == (object ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                pos += 1
                inObject.removeLast()
                if inObject.isEmpty { return }
            } else {
                throw Malformed(message: "expected ',' or '\(object ? "}" : "]")' at byte \(pos)")
            }
        }
    }

    /// In ``skipDeep()``: an object's key and its colon.
    private mutating func skipDeepKey() throws(Malformed) {
        skipWhitespace()
        guard pos < end else { throw Malformed(message: "unexpected end at byte \(pos)") }
        guard p[pos] == UInt8(ascii: "\"") else { throw Malformed(message: "expected a key at byte \(pos)") }
        var bad = false
        _ = try scanString(badUTF8: &bad)
        skipWhitespace()
        guard pos < end, p[pos] == UInt8(ascii: ":") else { throw Malformed(message: "expected ':' at byte \(pos)") }
        pos += 1
    }

    // MARK: The event object

    /// Notes the event's first error. Where one can repeat many times in an event (a field given
    /// again), callers make the message only while there is none: a body of 870,000 repeats of
    /// one key made as many messages that nothing kept (an outside review).
    @inline(__always)
    mutating func noteError(_ reason: RejectionReason, field: String?, _ message: String) {
        if error == nil { error = FieldError(reason: reason, field: field, message: message) }
    }

    mutating func resetEvent() {
        seen = 0
        typed = 0
        genreCount = 0
        if !unknown.isEmpty {
            unknown.removeAll(keepingCapacity: true)
            unknownKeys.removeAll(keepingCapacity: true)
            unknownKeyRanges.removeAll(keepingCapacity: true)
            if !unknownKeyHashes.isEmpty { unknownKeyHashes.removeAll(keepingCapacity: true) }
        }
        sessionNull = false
        error = nil
    }

    /// Parses the event object at `pos` (a `{`), recording its fields.
    mutating func object() throws(Malformed) {
        resetEvent()
        let objectStart = pos
        pos += 1
        skipWhitespace()
        if pos < end, p[pos] == UInt8(ascii: "}") {
            pos += 1
            return
        }
        var position = 0
        while true {
            skipWhitespace()
            // A body cut off after `{` or `,` is said as the other cut-offs are (an outside review).
            guard pos < end else { throw Malformed(message: "unexpected end at byte \(pos)") }
            guard p[pos] == UInt8(ascii: "\"") else { throw Malformed(message: "expected a key at byte \(pos)") }
            let keyQuote = pos
            var badKey = false
            var key = StringSpan()
            var keyEnd = pos
            var field: Field? = nil
            if position < Self.predictedKeys, let expected = keyOrder[position].field,
                pos + keyOrder[position].count <= end,
                bytesEqual(p + pos, keyOrder[position].pattern, keyOrder[position].count)
            {
                // The expected key, written plainly: the same field the general path would find.
                field = expected
                pos += keyOrder[position].count
            } else {
                key = try scanString(badUTF8: &badKey)
                keyEnd = pos
                try expect(UInt8(ascii: ":"), "':'")
                field = self.field(ofKey: key, bad: badKey)
            }
            if position < Self.predictedKeys && keyOrder[position].field != field { keyOrder[position] = ExpectedKey(field) }
            position += 1
            skipWhitespace()
            guard pos < end else { throw Malformed(message: "unexpected end at byte \(pos)") }
            if let field {
                let bit: UInt32 = 1 << UInt32(field.rawValue)
                // A session_id of null clears its bit (absent, as the schema has it), and is
                // remembered apart: a second session_id after it is a repeat too (a review).
                if seen & bit != 0 || (sessionNull && field == .sessionID) {
                    if error == nil { noteError(.duplicateField, field: field.name, "the field \(field.name) appears more than once") }
                    try skipValue(depth: 2)
                } else {
                    seen |= bit
                    try value(of: field)
                }
            } else {
                let valueStart = pos
                let clean = error == nil
                try skipValue(depth: 2)
                // An event with an error already, or past the size limit (``finishEvent`` rejects
                // it for that first), is rejected whatever its other members are: their keys are
                // not kept, nor compared. Kept, 5 MiB of one repeated key (7.7 KB in gzip) held
                // an event loop for 0.2 s, and of distinct keys 0.35 s (an outside review).
                if !badKey && clean && pos - objectStart <= configuration.maxEventBytes {
                    noteUnknown(key: key, keyQuote: keyQuote, keyEnd: keyEnd, valueStart: valueStart)
                    nameUnknownField()
                }
            }
            if try memberEndsObject() { return }
        }
    }

    /// The schema's field a key names (compared unescaped), nil for another key; a key that is not
    /// valid UTF-8 names none and notes the error.
    @inline(__always)
    mutating func field(ofKey key: StringSpan, bad: Bool) -> Field? {
        if bad {
            noteError(.invalidUTF8, field: nil, "a key " + utf8Problem(key))
            return nil
        }
        if !key.escaped { return Field.lookup(p + key.start, key.end - key.start) }
        // An escape is at least two bytes and unescapes to at least one.
        unescape(key, into: &keyScratch)
        return keyScratch.withUnsafeBufferPointer { Field.lookup($0.baseAddress!, $0.count) }
    }

    /// After an object's member: true at the object's closing brace, false at a comma (both passed).
    @inline(__always)
    mutating func memberEndsObject() throws(Malformed) -> Bool {
        skipWhitespace()
        guard pos < end else { throw Malformed(message: "the object is not closed") }
        if p[pos] == UInt8(ascii: ",") {
            pos += 1
            return false
        }
        guard p[pos] == UInt8(ascii: "}") else { throw Malformed(message: "expected ',' or '}' at byte \(pos)") }
        pos += 1
        return true
    }

    /// An error found inside the value of the unknown field just noted (invalid UTF-8, nesting too
    /// deep) names that field, as errors of the schema's fields do; it named none (an outside
    /// review). A key that is not valid UTF-8 cannot be named, and its error keeps a null field.
    mutating func nameUnknownField() {
        guard let found = error, found.field == nil, let range = unknownKeyRanges.last else { return }
        let name = unknownFieldName(range)
        error = FieldError(reason: found.reason, field: name, message: "\(name): \(found.message)")
    }

    /// The unknown key at `range` of ``unknownKeys`` as an error names it: whole up to 256 bytes,
    /// else its first 256 bytes (whole characters) and `…`. A key of megabytes was repeated whole in
    /// the error's field and message, so a rejected record could hold the body twice over and be
    /// more than the log takes in one record (an outside review of the log).
    func unknownFieldName(_ range: Range<Int>) -> String {
        Self.shown(unknownKeys[range], atMost: Self.longestNameShown)
    }

    static let longestNameShown = 256

    /// `bytes` (valid UTF-8) as text, whole up to `limit` bytes; else its first `limit` bytes, cut
    /// back to a whole character, and `…`.
    static func shown(_ bytes: ArraySlice<UInt8>, atMost limit: Int) -> String {
        guard bytes.count > limit else { return String(decoding: bytes, as: UTF8.self) }
        var cut = bytes.startIndex + limit
        while cut > bytes.startIndex, bytes[cut] & 0xC0 == 0x80 { cut -= 1 }
        return String(decoding: bytes[..<cut], as: UTF8.self) + "…"
    }

    /// Whether the unknown key at `range` of ``unknownKeys`` is one of the event's earlier unknown
    /// keys. The first few are compared one by one; past them, by a table of their hashes (Swift's
    /// `Hasher`, seeded per process). Comparing each key with every earlier one was quadratic: an
    /// event of 32 KiB holds about 4,000 short keys, and a 5 MiB body of such events held an event
    /// loop for 3.8 s, and cost as much again in each reader of the records (an outside review).
    mutating func isRepeatedUnknownKey(_ range: Range<Int>) -> Bool {
        let keys = unknownKeys
        if unknownKeyRanges.count < Self.unknownKeysComparedOneByOne {
            return unknownKeyRanges.contains { $0.count == range.count && keys[$0].elementsEqual(keys[range]) }
        }
        func hash(_ range: Range<Int>) -> Int {
            keys.withUnsafeBytes { bytes in
                var hasher = Hasher()
                hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: bytes[range]))
                return hasher.finalize()
            }
        }
        if unknownKeyHashes.isEmpty {
            for (index, earlier) in unknownKeyRanges.enumerated() where unknownKeyHashes[hash(earlier)] == nil {
                unknownKeyHashes[hash(earlier)] = index
            }
        }
        let key = hash(range)
        guard let first = unknownKeyHashes[key] else {
            unknownKeyHashes[key] = unknownKeyRanges.count
            return false
        }
        if keys[unknownKeyRanges[first]].elementsEqual(keys[range]) { return true }
        // Two keys of one hash (about one in 2^64 pairs): every earlier key, one by one.
        return unknownKeyRanges.contains { $0.count == range.count && keys[$0].elementsEqual(keys[range]) }
    }

    static let unknownKeysComparedOneByOne = 16

    mutating func noteUnknown(key: StringSpan, keyQuote: Int, keyEnd: Int, valueStart: Int) {
        // Duplicate keys among unknown fields, compared unescaped.
        let start = unknownKeys.count
        if key.escaped {
            unescape(key, into: &keyScratch)
            unknownKeys.append(contentsOf: keyScratch)
        } else {
            unknownKeys.append(contentsOf: UnsafeBufferPointer(start: p + key.start, count: key.end - key.start))
        }
        let range = start..<unknownKeys.count
        if isRepeatedUnknownKey(range) {
            let name = unknownFieldName(range)
            noteError(.duplicateField, field: name, "the field \(name) appears more than once")
        }
        unknownKeyRanges.append(range)
        unknown.append(UnknownMember(keyStart: keyQuote, keyEnd: keyEnd, valueStart: valueStart, valueEnd: pos))
    }

    @inline(__always)
    func typeName(_ b: UInt8) -> String {
        switch b {
        case UInt8(ascii: "\""): return "a string"
        case UInt8(ascii: "{"): return "an object"
        case UInt8(ascii: "["): return "an array"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "a boolean"
        case UInt8(ascii: "n"): return "null"
        default: return "a number"
        }
    }

    /// Parses the value of a known field at `pos`.
    mutating func value(of field: Field) throws(Malformed) {
        let b = p[pos]
        switch field {
        case .genre:
            guard b == UInt8(ascii: "[") else {
                noteError(.invalidType, field: "genre", "genre must be an array of strings, not \(typeName(b))")
                try skipValue(depth: 2)
                return
            }
            pos += 1
            skipWhitespace()
            if pos < end, p[pos] == UInt8(ascii: "]") {
                pos += 1
                return
            }
            var k = 0
            while true {
                skipWhitespace()
                guard pos < end else { throw Malformed(message: "unexpected end at byte \(pos)") }
                if p[pos] == UInt8(ascii: "\"") {
                    var bad = false
                    let span = try scanString(badUTF8: &bad)
                    if bad {
                        noteError(.invalidUTF8, field: "genre[\(k)]", "genre[\(k)] " + utf8Problem(span))
                    } else if span.decodedCount > configuration.maxStringBytes {
                        noteError(
                            .stringTooLong, field: "genre[\(k)]",
                            "genre[\(k)] is \(span.decodedCount) bytes; the limit is \(configuration.maxStringBytes)"
                        )
                    }
                    if genreCount < genres.count {
                        genres[genreCount] = span
                    } else {
                        genres.append(span)
                    }
                    genreCount += 1
                } else {
                    let t = p[pos]
                    noteError(.invalidType, field: "genre[\(k)]", "genre[\(k)] must be a string, not \(typeName(t))")
                    try skipValue(depth: 3)
                }
                k += 1
                skipWhitespace()
                guard pos < end else { throw Malformed(message: "unexpected end at byte \(pos)") }
                if p[pos] == UInt8(ascii: ",") {
                    pos += 1
                    continue
                }
                guard p[pos] == UInt8(ascii: "]") else { throw Malformed(message: "expected ',' or ']' at byte \(pos)") }
                pos += 1
                return
            }
        case .durationSeconds:
            guard b == UInt8(ascii: "-") || b &- UInt8(ascii: "0") < 10 else {
                noteError(.invalidType, field: field.name, "duration_seconds must be an integer, not \(typeName(b))")
                try skipValue(depth: 2)
                return
            }
            let t = try scanNumber()
            if t.isInteger {
                var i = t.start
                let negative = p[i] == UInt8(ascii: "-")
                if negative { i += 1 }
                var v: Int64 = 0
                var overflow = false
                while i < t.end {
                    let (m, o1) = v.multipliedReportingOverflow(by: 10)
                    let (a, o2) = m.addingReportingOverflow(Int64(p[i] - UInt8(ascii: "0")))
                    overflow = overflow || o1 || o2
                    v = a
                    i += 1
                }
                // Below zero is said as such however far below: `negative_number` (docs/events.md),
                // not `invalid_value` as for Int64.min and beyond (an outside review).
                if overflow {
                    if negative {
                        noteError(.negativeNumber, field: field.name, "duration_seconds must not be negative")
                    } else {
                        noteError(.invalidValue, field: field.name, "duration_seconds is out of range")
                    }
                    return
                }
                durationSeconds = negative ? -v : v
            } else {
                // Decided on the decimal text, not on a Double: `1.0000000000000000001` and `1e-400`
                // have a fraction (a Double rounds them to integers), `9223372036854775807.0` fits.
                switch integralValue(t) {
                case .fraction:
                    noteError(.invalidType, field: field.name, "duration_seconds must be an integer")
                    return
                case .outOfRange:
                    if p[t.start] == UInt8(ascii: "-") {
                        noteError(.negativeNumber, field: field.name, "duration_seconds must not be negative")
                    } else {
                        noteError(.invalidValue, field: field.name, "duration_seconds is out of range")
                    }
                    return
                case .integer(let v):
                    durationSeconds = v
                }
            }
            if durationSeconds < 0 {
                noteError(.negativeNumber, field: field.name, "duration_seconds must not be negative")
            }
        case .currentTimestamp:
            guard b == UInt8(ascii: "-") || b &- UInt8(ascii: "0") < 10 else {
                noteError(.invalidType, field: field.name, "current_timestamp must be a number, not \(typeName(b))")
                try skipValue(depth: 2)
                return
            }
            let t = try scanNumber()
            let d = doubleValue(t)
            currentTimestamp = d
            if d < 0 {
                noteError(.negativeNumber, field: field.name, "current_timestamp must not be negative")
            } else if !d.isFinite || d > Self.maxPosition {
                noteError(.invalidValue, field: field.name, "current_timestamp is out of range (at most 1e12)")
            }
        default:
            if b == UInt8(ascii: "n"), field == .sessionID {
                try literal()
                sessionNull = true
                seen &= ~(1 << UInt32(Field.sessionID.rawValue))
                return
            }
            guard b == UInt8(ascii: "\"") else {
                noteError(.invalidType, field: field.name, "\(field.name) must be a string, not \(typeName(b))")
                try skipValue(depth: 2)
                return
            }
            var bad = false
            let span = try scanString(badUTF8: &bad)
            spans[field.rawValue] = span
            typed |= 1 << UInt32(field.rawValue)
            if bad {
                noteError(.invalidUTF8, field: field.name, "\(field.name) \(utf8Problem(span))")
            } else if span.decodedCount > configuration.maxStringBytes {
                noteError(
                    .stringTooLong, field: field.name,
                    "\(field.name) is \(span.decodedCount) bytes; the limit is \(configuration.maxStringBytes)"
                )
            }
        }
    }

    static let maxPosition = 1e12

    /// Unescapes a string span into `out` (replacing its contents).
    func unescape(_ span: StringSpan, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        Self.appendUnescaped(p, span, to: &out)
    }

    @inline(__always)
    func appendUnescaped(_ span: StringSpan, to out: inout [UInt8]) {
        Self.appendUnescaped(p, span, to: &out)
    }

    /// Appends the unescaped bytes of a string span.
    @inline(__always)
    static func appendUnescaped(_ p: UnsafePointer<UInt8>, _ span: StringSpan, to out: inout [UInt8]) {
        if !span.escaped {
            out.append(contentsOf: UnsafeRawBufferPointer(start: p + span.start, count: span.end - span.start))
            return
        }
        var i = span.start
        var run = i
        while i < span.end {
            guard p[i] == UInt8(ascii: "\\") else {
                i += 1
                continue
            }
            if run < i { out.append(contentsOf: UnsafeRawBufferPointer(start: p + run, count: i - run)) }
            let c = p[i + 1]
            i += 2
            switch c {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var u = hex4(p, i, span.end) ?? 0xFFFD
                i += 4
                if u >= 0xD800 && u <= 0xDBFF, i + 6 <= span.end, p[i] == UInt8(ascii: "\\"), p[i + 1] == UInt8(ascii: "u"),
                    let lo = hex4(p, i + 2, span.end), lo >= 0xDC00 && lo <= 0xDFFF
                {
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    i += 6
                }
                if u < 0x80 {
                    out.append(UInt8(u))
                } else if u < 0x800 {
                    out.append(UInt8(0xC0 | u >> 6))
                    out.append(UInt8(0x80 | u & 0x3F))
                } else if u < 0x10000 {
                    out.append(UInt8(0xE0 | u >> 12))
                    out.append(UInt8(0x80 | u >> 6 & 0x3F))
                    out.append(UInt8(0x80 | u & 0x3F))
                } else {
                    out.append(UInt8(0xF0 | u >> 18))
                    out.append(UInt8(0x80 | u >> 12 & 0x3F))
                    out.append(UInt8(0x80 | u >> 6 & 0x3F))
                    out.append(UInt8(0x80 | u & 0x3F))
                }
            default: out.append(c)  // \" \\ \/
            }
            run = i
        }
        if run < span.end { out.append(contentsOf: UnsafeRawBufferPointer(start: p + run, count: span.end - run)) }
    }

    // MARK: Finishing an event

    func has(_ field: Field) -> Bool { seen & (1 << UInt32(field.rawValue)) != 0 }

    /// The event's id for an error, when it was read.
    func readableEventID() -> String? {
        guard typed & (1 << UInt32(Field.eventID.rawValue)) != 0 else { return nil }
        let span = spans[Field.eventID.rawValue]
        var bytes: [UInt8] = []
        appendUnescaped(span, to: &bytes)
        guard UTF8Validation.isValid(bytes.withUnsafeBytes { $0 }) else { return nil }
        // An id past the string limit is shortened (whole characters, then `…`), as a long field
        // name is: an event over the size limit with an id of megabytes was kept with its id beside
        // it, twice its size, past what the log takes in one record (a review of the code).
        return Self.shown(bytes[...], atMost: configuration.maxStringBytes)
    }

    /// Matches a string value against known values (unescaping it when needed).
    @inline(__always)
    func enumIndex(_ span: StringSpan, _ match: KnownValues.Matcher) -> Int? {
        if !span.escaped { return match(p + span.start, span.end - span.start) }
        var bytes: [UInt8] = []
        Self.appendUnescaped(p, span, to: &bytes)
        return bytes.withUnsafeBufferPointer { match($0.baseAddress!, $0.count) }
    }

    @inline(__always)
    func spanEquals(_ span: StringSpan, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard !span.escaped, span.end - span.start == n else { return false }
        for k in 0..<n where p[span.start + k] != literal.utf8Start[k] { return false }
        return true
    }

    /// Validates the parsed object as a whole and writes its record, or rejects it.
    mutating func finishEvent(index: Int, start: Int, end eventEnd: Int) {
        if eventEnd - start > configuration.maxEventBytes {
            rejectTooLarge(index: index, start: start, end: eventEnd, eventID: readableEventID())
            return
        }
        // Schema version first: other rules depend on it.
        var v11 = false
        var versionBytes: StaticString = "1.0"
        if typed & (1 << UInt32(Field.schemaVersion.rawValue)) != 0 {
            let span = spans[Field.schemaVersion.rawValue]
            let known = enumIndex(span, KnownValues.schemaVersion)
            if known == 1 {
                v11 = true
                versionBytes = "1.1"
            } else if known == nil {
                if error == nil || (error!.reason != .invalidUTF8 && error!.reason != .tooDeep) {
                    var bytes: [UInt8] = []
                    appendUnescaped(span, to: &bytes)
                    let shown = String(decoding: bytes.prefix(64), as: UTF8.self)
                    error = FieldError(
                        reason: .unknownSchemaVersion, field: "schema_version",
                        message: "schema_version \"\(shown)\" is not known; this server knows 1.0 and 1.1"
                    )
                }
            }
        }
        if error == nil {
            let missing = Field.requiredMask & ~seen
            if missing != 0 {
                let f = Field(rawValue: missing.trailingZeroBitCount)!
                error = FieldError(reason: .missingField, field: f.name, message: "the required field \(f.name) is missing")
            }
        }
        var eventTypeIndex = 0
        var contentTypeIndex = 0
        var timestamp: Int64 = 0
        if error == nil {
            let span = spans[Field.eventType.rawValue]
            if let found = enumIndex(span, v11 ? KnownValues.eventType11 : KnownValues.eventType10) {
                eventTypeIndex = found
            } else {
                error = FieldError(
                    reason: .invalidValue, field: "event_type",
                    message: v11 ? "event_type must be one of play, pause, stop, seek, heartbeat, buffering" : "event_type must be one of play, pause, stop (schema 1.1 adds seek, heartbeat, buffering)"
                )
            }
        }
        if error == nil {
            let span = spans[Field.contentType.rawValue]
            if let found = enumIndex(span, KnownValues.contentType) {
                contentTypeIndex = found
            } else {
                error = FieldError(reason: .invalidValue, field: "content_type", message: "content_type must be one of movie, episode, ad")
            }
        }
        if error == nil {
            var empty: Field? = nil
            if spans[Field.eventID.rawValue].decodedCount == 0 {
                empty = .eventID
            } else if spans[Field.userID.rawValue].decodedCount == 0 {
                empty = .userID
            } else if spans[Field.deviceID.rawValue].decodedCount == 0 {
                empty = .deviceID
            } else if spans[Field.contentID.rawValue].decodedCount == 0 {
                empty = .contentID
            }
            if let f = empty {
                error = FieldError(reason: .invalidValue, field: f.name, message: "\(f.name) must not be empty")
            }
            if error == nil, has(.sessionID), spans[Field.sessionID.rawValue].decodedCount == 0 {
                error = FieldError(reason: .invalidValue, field: "session_id", message: "session_id must not be empty when present")
            }
        }
        if error == nil {
            let span = spans[Field.timestamp.rawValue]
            let parsed: Int64?
            if span.escaped {
                var bytes: [UInt8] = []
                appendUnescaped(span, to: &bytes)
                parsed = bytes.withUnsafeBytes { EventTimestamp.parseMicros($0) }
            } else {
                parsed = EventTimestamp.parseMicros(p + span.start, span.end - span.start)
            }
            if let parsed {
                timestamp = parsed
            } else {
                var bytes: [UInt8] = []
                appendUnescaped(span, to: &bytes)
                let text = String(decoding: bytes.prefix(64), as: UTF8.self)
                error = FieldError(
                    reason: .invalidTimestamp, field: "timestamp",
                    message: "timestamp \"\(text)\" \(EventTimestamp.problem(with: text)); an ISO 8601 date-time is needed, such as 2024-05-01T12:00:00.250Z"
                )
            }
        }
        if let error {
            rejectEvent(index: index, start: start, end: eventEnd, eventID: readableEventID(), field: error.field, reason: error.reason, message: error.message)
            return
        }
        writeRecord(
            index: index, eventBytes: eventEnd - start, timestamp: timestamp, eventTypeIndex: eventTypeIndex, contentTypeIndex: contentTypeIndex,
            version: versionBytes
        )
    }

    /// Makes room for `extra` more bytes in the output buffer.
    @inline(__always)
    mutating func reserveOutput(_ extra: Int) {
        if outCount + extra > outCapacity { growOutput(extra) }
    }

    mutating func growOutput(_ extra: Int) {
        let capacity = max(outCapacity * 2, outCount + extra, 512)
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        if outCount > 0 { grown.update(from: out, count: outCount) }
        if outCapacity > 0 { out.deallocate() }
        out = grown
        outCapacity = capacity
    }

    @inline(__always)
    mutating func put(_ byte: UInt8) {
        out[outCount] = byte
        outCount += 1
    }

    @inline(__always)
    mutating func putVarint(_ value: Int) {
        var v = UInt(value)
        while v >= 0x80 {
            out[outCount] = UInt8(truncatingIfNeeded: v) | 0x80
            outCount += 1
            v >>= 7
        }
        out[outCount] = UInt8(v)
        outCount += 1
    }

    @inline(__always)
    mutating func putInt64(_ value: Int64) {
        UnsafeMutableRawPointer(out + outCount).storeBytes(of: value.littleEndian, as: Int64.self)
        outCount += 8
    }

    @inline(__always)
    mutating func putBytes(_ source: UnsafePointer<UInt8>, _ count: Int) {
        let d = UnsafeMutableRawPointer(out + outCount)
        let src = UnsafeRawPointer(source)
        if count >= 8 && count <= 16 {
            // Two overlapping words: cheaper than a call to memmove for the usual short ids.
            d.storeBytes(of: src.loadUnaligned(as: UInt64.self), as: UInt64.self)
            (d + count - 8).storeBytes(of: (src + count - 8).loadUnaligned(as: UInt64.self), as: UInt64.self)
        } else if count < 8 {
            for k in 0..<count { out[outCount + k] = source[k] }
        } else {
            d.copyMemory(from: src, byteCount: count)
        }
        outCount += count
    }

    /// Writes a string span, unescaped, with its length.
    @inline(__always)
    mutating func putString(_ span: StringSpan) {
        putVarint(span.decodedCount)
        if !span.escaped {
            putBytes(p + span.start, span.end - span.start)
        } else {
            outCount += Self.writeUnescaped(p, span, to: out + outCount)
        }
    }

    /// Writes the unescaped bytes of an escaped span (never longer than the span) and returns their count.
    static func writeUnescaped(_ p: UnsafePointer<UInt8>, _ span: StringSpan, to o: UnsafeMutablePointer<UInt8>) -> Int {
        var k = 0
        var i = span.start
        while i < span.end {
            let b = p[i]
            guard b == UInt8(ascii: "\\") else {
                o[k] = b
                k += 1
                i += 1
                continue
            }
            let c = p[i + 1]
            i += 2
            switch c {
            case UInt8(ascii: "b"): o[k] = 0x08; k += 1
            case UInt8(ascii: "f"): o[k] = 0x0C; k += 1
            case UInt8(ascii: "n"): o[k] = 0x0A; k += 1
            case UInt8(ascii: "r"): o[k] = 0x0D; k += 1
            case UInt8(ascii: "t"): o[k] = 0x09; k += 1
            case UInt8(ascii: "u"):
                var u = hex4(p, i, span.end) ?? 0xFFFD
                i += 4
                if u >= 0xD800 && u <= 0xDBFF, i + 6 <= span.end, p[i] == UInt8(ascii: "\\"), p[i + 1] == UInt8(ascii: "u"),
                    let lo = hex4(p, i + 2, span.end), lo >= 0xDC00 && lo <= 0xDFFF
                {
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    i += 6
                }
                if u < 0x80 {
                    o[k] = UInt8(u); k += 1
                } else if u < 0x800 {
                    o[k] = UInt8(0xC0 | u >> 6); o[k + 1] = UInt8(0x80 | u & 0x3F); k += 2
                } else if u < 0x10000 {
                    o[k] = UInt8(0xE0 | u >> 12); o[k + 1] = UInt8(0x80 | u >> 6 & 0x3F); o[k + 2] = UInt8(0x80 | u & 0x3F); k += 3
                } else {
                    o[k] = UInt8(0xF0 | u >> 18); o[k + 1] = UInt8(0x80 | u >> 12 & 0x3F)
                    o[k + 2] = UInt8(0x80 | u >> 6 & 0x3F); o[k + 3] = UInt8(0x80 | u & 0x3F); k += 4
                }
            default:
                o[k] = c  // \" \\ \/
                k += 1
            }
        }
        return k
    }

    @inline(__always)
    mutating func putField(_ field: Field) {
        putString(spans[field.rawValue])
    }

    mutating func writeRecord(
        index: Int, eventBytes: Int, timestamp: Int64, eventTypeIndex: Int, contentTypeIndex: Int, version: StaticString
    ) {
        // Unescaping never lengthens a string; 16 varints, the genre varints and the IP fit in the
        // slack, and a client's address that replaces an empty `ip_address` is added to it.
        reserveOutput(eventBytes + 256 + 5 * genreCount + clientAddress.utf8.count)
        let recordStart = outCount
        let hasSession = has(.sessionID)
        put(RecordBytes.version)
        put((hasSession ? RecordBytes.flagSession : 0) | (unknown.isEmpty ? 0 : RecordBytes.flagExtra))
        putInt64(timestamp)
        putInt64(receivedAt)
        putInt64(Int64(bitPattern: currentTimestamp.bitPattern))
        putInt64(durationSeconds)
        putField(.eventID)
        putField(.eventType)
        // The log key keeps a session in one partition: `session_id`, else `device_id`.
        var keyField = Field.deviceID
        putField(.userID)
        var keyStart = outCount
        putField(.deviceID)
        if hasSession {
            keyField = .sessionID
            keyStart = outCount
            putField(.sessionID)
        }
        let keyCount = spans[keyField.rawValue].decodedCount
        keyStart += keyCount < 0x80 ? 1 : (keyCount < 0x4000 ? 2 : 3)
        putIP()
        putField(.contentID)
        putField(.contentType)
        putField(.title)
        putVarint(genreCount)
        for k in 0..<genreCount { putString(genres[k]) }
        putField(.language)
        if has(.schemaVersion) {
            putField(.schemaVersion)
        } else {
            put(UInt8(version.utf8CodeUnitCount))
            putBytes(version.utf8Start, version.utf8CodeUnitCount)
        }
        putField(.eventSource)
        if !unknown.isEmpty {
            var length = 2 + unknown.count - 1
            for m in unknown { length += (m.keyEnd - m.keyStart) + 1 + (m.valueEnd - m.valueStart) }
            putVarint(length)
            put(UInt8(ascii: "{"))
            for k in 0..<unknown.count {
                let m = unknown[k]
                if k > 0 { put(UInt8(ascii: ",")) }
                putBytes(p + m.keyStart, m.keyEnd - m.keyStart)
                put(UInt8(ascii: ":"))
                putBytes(p + m.valueStart, m.valueEnd - m.valueStart)
            }
            put(UInt8(ascii: "}"))
        }
        let sources = eventSources
        let sourceIndex = enumIndex(spans[Field.eventSource.rawValue]) { sources.index(of: $0, count: $1) }
        pending.append(
            PendingEvent(
                index: index, accepted: true, keyStart: keyStart, keyCount: keyCount,
                recordStart: recordStart, recordCount: outCount - recordStart,
                eventType: UInt8(eventTypeIndex), contentType: UInt8(contentTypeIndex),
                eventSource: UInt8(sourceIndex ?? EventSourceLabels.maxCount), errorIndex: -1
            )
        )
        acceptedCount += 1
    }

    mutating func putIP() {
        let span = spans[Field.ipAddress.rawValue]
        // An empty `ip_address` with the client's address to stand for it (`--fill-ip-address`).
        let filled = span.decodedCount == 0 && !clientAddress.isEmpty
        switch configuration.ipPolicy {
        case .keep where filled:
            var text = clientAddress
            text.withUTF8 { bytes in
                put(UInt8(bytes.count))
                putBytes(bytes.baseAddress!, bytes.count)
            }
        case .keep:
            putString(span)
        case .drop:
            put(0)
        case .truncate where filled:
            var text = clientAddress
            text.withUTF8 { putTruncatedIP($0) }
        case .truncate:
            var raw: [UInt8] = []
            Self.appendUnescaped(p, span, to: &raw)
            raw.withUnsafeBufferPointer { putTruncatedIP($0) }
        }
    }

    /// The truncated form of the address `raw`, with its length: "" when `raw` is empty, longer
    /// than 64 bytes, or not an IP address.
    mutating func putTruncatedIP(_ raw: UnsafeBufferPointer<UInt8>) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { buffer in
            let n = raw.count > 64 || raw.isEmpty ? 0 : IPTruncation.truncate(raw.baseAddress!, raw.count, into: buffer.baseAddress!)
            put(UInt8(n))
            putBytes(buffer.baseAddress!, n)
        }
    }

    // MARK: Rejections

    mutating func rejectEvent(
        index: Int, start: Int, end: Int, eventID: String?, field: String?, reason: RejectionReason, message: String
    ) {
        let error = EventValidationError(index: index, eventID: eventID, field: field, reason: reason, message: message)
        var record: [UInt8] = []
        RejectedRecordEncoder.encode(
            receivedAt: receivedAt, index: Int32(clamping: index), reason: reason, field: field, message: message,
            eventID: eventID, raw: UnsafeRawBufferPointer(start: p + start, count: end - start), into: &record
        )
        reserveOutput(record.count)
        let recordStart = outCount
        record.withUnsafeBufferPointer { putBytes($0.baseAddress!, $0.count) }
        pending.append(
            PendingEvent(
                index: index, accepted: false, keyStart: 0, keyCount: 0, recordStart: recordStart,
                recordCount: record.count, eventType: 0, contentType: 0, eventSource: 0,
                errorIndex: errors.count
            )
        )
        errors.append(error)
    }

    mutating func rejectBody(_ reason: RejectionReason, _ message: String) {
        rejectEvent(index: -1, start: 0, end: body.count, eventID: nil, field: nil, reason: reason, message: message)
    }

    // MARK: Output

    mutating func emit<Sink: EventSink>(into sink: inout Sink) -> DecodeOutcome {
        let base = UnsafeRawPointer(out)
        for event in pending {
            let record = UnsafeRawBufferPointer(start: base + event.recordStart, count: event.recordCount)
            if event.accepted {
                let key = UnsafeRawBufferPointer(start: base + event.keyStart, count: event.keyCount)
                let dimensions = EventDimensions(
                    eventTypeIndex: Int(event.eventType), contentTypeIndex: Int(event.contentType),
                    eventSourceIndex: Int(event.eventSource), sources: configuration.eventSources
                )
                sink.accepted(index: event.index, key: key, dimensions: dimensions, record: record)
            } else {
                sink.rejected(errors[event.errorIndex], record: record)
            }
        }
        spans.deallocate()
        keyOrder.deallocate()
        if outCapacity > 0 {
            out.deallocate()
            outCapacity = 0
            outCount = 0
        }
        return DecodeOutcome(accepted: acceptedCount, rejected: errors.count, errors: errors)
    }
}
