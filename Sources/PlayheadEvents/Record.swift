/// The binary event record, version 1 (docs/event-record.md). Little-endian integers; strings are a
/// LEB128 byte length followed by UTF-8 bytes.

/// A record that is not a well-formed version-1 record.
public struct RecordFormatError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "malformed record: \(message)" }
}

enum RecordBytes {
    static let version: UInt8 = 1
    static let flagSession: UInt8 = 1
    static let flagExtra: UInt8 = 2
    /// Where an event record's first string (its length) starts: after the version, the flags and
    /// four 8-byte numbers.
    static let eventStringsStart = 2 + 4 * 8

    /// Whether every byte is below 0x80, eight at a time.
    static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        var high: UInt64 = 0
        while i + 8 <= bytes.count {
            high |= bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < bytes.count {
            high |= UInt64(bytes[i])
            i += 1
        }
        return high & 0x8080_8080_8080_8080 == 0
    }

    @inline(__always)
    static func appendVarint(_ value: Int, to out: inout [UInt8]) {
        var v = UInt64(value)
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    @inline(__always)
    static func appendInt64(_ value: Int64, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    @inline(__always)
    static func appendInt32(_ value: Int32, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    @inline(__always)
    static func appendString(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        appendVarint(bytes.count, to: &out)
        out.append(contentsOf: bytes)
    }

    static func appendString(_ string: String, to out: inout [UInt8]) {
        var s = string
        s.withUTF8 { appendString(UnsafeRawBufferPointer($0), to: &out) }
    }
}

/// Reads a record with bounds checks.
struct RecordReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    @inline(__always)
    mutating func u8() throws(RecordFormatError) -> UInt8 {
        guard offset < bytes.count else { throw RecordFormatError("truncated at byte \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    @inline(__always)
    mutating func i64() throws(RecordFormatError) -> Int64 {
        guard offset + 8 <= bytes.count else { throw RecordFormatError("truncated at byte \(offset)") }
        defer { offset += 8 }
        return Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Int64.self))
    }

    @inline(__always)
    mutating func i32() throws(RecordFormatError) -> Int32 {
        guard offset + 4 <= bytes.count else { throw RecordFormatError("truncated at byte \(offset)") }
        defer { offset += 4 }
        return Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self))
    }

    @inline(__always)
    mutating func varint() throws(RecordFormatError) -> Int {
        // Most lengths fit in one byte.
        if offset < bytes.count, bytes[offset] < 0x80 {
            defer { offset += 1 }
            return Int(bytes[offset])
        }
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count else { throw RecordFormatError("truncated varint at byte \(offset)") }
            let b = bytes[offset]
            offset += 1
            guard shift < 63 else { throw RecordFormatError("varint too long at byte \(offset)") }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { break }
            shift += 7
        }
        guard result <= UInt64(Int32.max) else { throw RecordFormatError("length \(result) too large") }
        return Int(result)
    }

    /// A string's position (start, count).
    @inline(__always)
    mutating func slice() throws(RecordFormatError) -> RecordSlice {
        let count = try varint()
        guard count <= bytes.count - offset else { throw RecordFormatError("string of \(count) bytes past the end at byte \(offset)") }
        defer { offset += count }
        return RecordSlice(start: Int32(offset), count: Int32(count))
    }
}

struct RecordSlice: Sendable {
    var start: Int32
    var count: Int32
    static let empty = RecordSlice(start: 0, count: 0)
}

extension UnsafeRawBufferPointer {
    @inline(__always)
    subscript(slice s: RecordSlice) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[Int(s.start)..<Int(s.start + s.count)])
    }
}

@inline(__always)
func makeString(_ bytes: UnsafeRawBufferPointer) -> String {
    String(decoding: bytes, as: UTF8.self)
}

/// The fields of an event, as values (for tests, tools and the encoder).
public struct EventRecordFields: Sendable, Hashable {
    public var eventID: String
    public var eventType: String
    public var timestampMicros: Int64
    public var receivedAtMicros: Int64
    public var userID: String
    public var deviceID: String
    public var sessionID: String?
    public var ipAddress: String
    public var contentID: String
    public var contentType: String
    public var title: String
    public var genres: [String]
    public var durationSeconds: Int64
    public var language: String
    public var currentTimestamp: Double
    public var eventSource: String
    public var schemaVersion: String
    /// A JSON object with the fields the schema does not define, or nil.
    public var extra: String?

    public init(
        eventID: String, eventType: String, timestampMicros: Int64, receivedAtMicros: Int64, userID: String,
        deviceID: String, sessionID: String? = nil, ipAddress: String, contentID: String, contentType: String,
        title: String, genres: [String], durationSeconds: Int64, language: String, currentTimestamp: Double,
        eventSource: String, schemaVersion: String = "1.0", extra: String? = nil
    ) {
        self.eventID = eventID
        self.eventType = eventType
        self.timestampMicros = timestampMicros
        self.receivedAtMicros = receivedAtMicros
        self.userID = userID
        self.deviceID = deviceID
        self.sessionID = sessionID
        self.ipAddress = ipAddress
        self.contentID = contentID
        self.contentType = contentType
        self.title = title
        self.genres = genres
        self.durationSeconds = durationSeconds
        self.language = language
        self.currentTimestamp = currentTimestamp
        self.eventSource = eventSource
        self.schemaVersion = schemaVersion
        self.extra = extra
    }

    public init(_ view: EventRecordView) {
        self.init(
            eventID: view.eventID, eventType: view.eventType, timestampMicros: view.timestampMicros,
            receivedAtMicros: view.receivedAtMicros, userID: view.userID, deviceID: view.deviceID,
            sessionID: view.sessionID, ipAddress: view.ipAddress, contentID: view.contentID,
            contentType: view.contentType, title: view.title, genres: view.genres,
            durationSeconds: view.durationSeconds, language: view.language,
            currentTimestamp: view.currentTimestamp, eventSource: view.eventSource,
            schemaVersion: view.schemaVersion, extra: view.extra
        )
    }
}

/// Writes binary event records (version 1). The decoder writes records itself, field by field, in
/// the same layout; this is the value-based form for tests and tools.
public enum EventRecordEncoder {
    public static func encode(_ event: EventRecordFields, into out: inout [UInt8]) {
        out.append(RecordBytes.version)
        out.append((event.sessionID != nil ? RecordBytes.flagSession : 0) | (event.extra != nil ? RecordBytes.flagExtra : 0))
        RecordBytes.appendInt64(event.timestampMicros, to: &out)
        RecordBytes.appendInt64(event.receivedAtMicros, to: &out)
        RecordBytes.appendInt64(Int64(bitPattern: event.currentTimestamp.bitPattern), to: &out)
        RecordBytes.appendInt64(event.durationSeconds, to: &out)
        RecordBytes.appendString(event.eventID, to: &out)
        RecordBytes.appendString(event.eventType, to: &out)
        RecordBytes.appendString(event.userID, to: &out)
        RecordBytes.appendString(event.deviceID, to: &out)
        if let session = event.sessionID { RecordBytes.appendString(session, to: &out) }
        RecordBytes.appendString(event.ipAddress, to: &out)
        RecordBytes.appendString(event.contentID, to: &out)
        RecordBytes.appendString(event.contentType, to: &out)
        RecordBytes.appendString(event.title, to: &out)
        RecordBytes.appendVarint(event.genres.count, to: &out)
        for genre in event.genres { RecordBytes.appendString(genre, to: &out) }
        RecordBytes.appendString(event.language, to: &out)
        RecordBytes.appendString(event.schemaVersion, to: &out)
        RecordBytes.appendString(event.eventSource, to: &out)
        if let extra = event.extra { RecordBytes.appendString(extra, to: &out) }
    }

    public static func encode(_ event: EventRecordFields) -> [UInt8] {
        var out: [UInt8] = []
        encode(event, into: &out)
        return out
    }
}

/// Writes rejected records (version 1).
public enum RejectedRecordEncoder {
    public static func encode(
        receivedAt: Int64, index: Int32, reason: RejectionReason, field: String?, message: String, eventID: String?,
        raw: UnsafeRawBufferPointer, into out: inout [UInt8]
    ) {
        out.reserveCapacity(out.count + raw.count + message.utf8.count + 64)
        out.append(RecordBytes.version)
        RecordBytes.appendInt64(receivedAt, to: &out)
        RecordBytes.appendInt32(index, to: &out)
        RecordBytes.appendString(reason.rawValue, to: &out)
        RecordBytes.appendString(field ?? "", to: &out)
        RecordBytes.appendString(message, to: &out)
        RecordBytes.appendString(eventID ?? "", to: &out)
        RecordBytes.appendString(raw, to: &out)
    }
}

/// Reads the fields of a binary event record in place. The view borrows the bytes: use it only
/// while they are alive.
public struct EventRecordView {
    public let bytes: UnsafeRawBufferPointer
    public let flags: UInt8
    public let timestampMicros: Int64
    public let receivedAtMicros: Int64
    public let currentTimestamp: Double
    public let durationSeconds: Int64
    private let eventIDSlice: RecordSlice
    private let eventTypeSlice: RecordSlice
    private let userIDSlice: RecordSlice
    private let deviceIDSlice: RecordSlice
    private let sessionIDSlice: RecordSlice
    private let ipSlice: RecordSlice
    private let contentIDSlice: RecordSlice
    private let contentTypeSlice: RecordSlice
    private let titleSlice: RecordSlice
    private let genreStart: Int32
    public let genreCount: Int
    private let languageSlice: RecordSlice
    private let schemaVersionSlice: RecordSlice
    private let eventSourceSlice: RecordSlice
    private let extraSlice: RecordSlice

    /// Checks the framing (version, lengths within the bytes, nothing left over).
    public init(_ value: UnsafeRawBufferPointer) throws(RecordFormatError) {
        bytes = value
        var r = RecordReader(value)
        let version = try r.u8()
        guard version == RecordBytes.version else { throw RecordFormatError("unknown record version \(version)") }
        flags = try r.u8()
        guard flags & ~(RecordBytes.flagSession | RecordBytes.flagExtra) == 0 else {
            throw RecordFormatError("unknown flags \(flags)")
        }
        timestampMicros = try r.i64()
        receivedAtMicros = try r.i64()
        currentTimestamp = Double(bitPattern: UInt64(bitPattern: try r.i64()))
        durationSeconds = try r.i64()
        eventIDSlice = try r.slice()
        eventTypeSlice = try r.slice()
        userIDSlice = try r.slice()
        deviceIDSlice = try r.slice()
        sessionIDSlice = flags & RecordBytes.flagSession != 0 ? try r.slice() : .empty
        ipSlice = try r.slice()
        contentIDSlice = try r.slice()
        contentTypeSlice = try r.slice()
        titleSlice = try r.slice()
        let count = try r.varint()
        genreStart = Int32(r.offset)
        for _ in 0..<count { _ = try r.slice() }
        genreCount = count
        languageSlice = try r.slice()
        schemaVersionSlice = try r.slice()
        eventSourceSlice = try r.slice()
        extraSlice = flags & RecordBytes.flagExtra != 0 ? try r.slice() : .empty
        guard r.offset == value.count else { throw RecordFormatError("\(value.count - r.offset) bytes left over") }
        if let problem = contentProblem(stringsFrom: RecordBytes.eventStringsStart) { throw RecordFormatError(problem) }
    }

    /// What no event the edge accepts can hold (DESIGN.md's rules, docs/event-record.md), or nil.
    /// The edge writes only records that pass; a record in this layout with other values was
    /// written to a Kafka topic by another producer, and is refused like any record that cannot be
    /// read (kept under `_playhead/damaged/`, counted), not written to the lake: there, a timestamp
    /// at the ends of Int64 overflowed the lake's hour arithmetic and stopped every `store` that
    /// took the partition (a probe, 2026-12-04), and a string that is not UTF-8 or an `extra` that
    /// is not JSON made DuckDB refuse every query over the lake that read the column.
    private func contentProblem(stringsFrom stringsStart: Int) -> String? {
        guard EventTimestamp.isWithinYears(micros: timestampMicros) else {
            return "timestamp \(timestampMicros) µs since 1970 is outside years 0001-9999"
        }
        guard EventTimestamp.isWithinYears(micros: receivedAtMicros) else {
            return "received_at \(receivedAtMicros) µs since 1970 is outside years 0001-9999"
        }
        guard durationSeconds >= 0 else { return "duration_seconds \(durationSeconds) is negative" }
        guard currentTimestamp >= 0, currentTimestamp <= EventParser.maxPosition else {
            return "current_timestamp \(currentTimestamp) is not a position of 0 to 1e12"
        }
        guard eventIDSlice.count > 0, userIDSlice.count > 0, deviceIDSlice.count > 0, contentIDSlice.count > 0,
            flags & RecordBytes.flagSession == 0 || sessionIDSlice.count > 0
        else { return "an identifier (event_id, user_id, device_id, content_id or session_id) is empty" }
        // Every string at once when the record's bytes from its first string on are ASCII (the
        // usual case); else string by string.
        if !RecordBytes.isASCII(UnsafeRawBufferPointer(rebasing: bytes[min(stringsStart, bytes.count)...])) {
            var slices = [
                eventIDSlice, eventTypeSlice, userIDSlice, deviceIDSlice, sessionIDSlice, ipSlice, contentIDSlice,
                contentTypeSlice, titleSlice, languageSlice, schemaVersionSlice, eventSourceSlice, extraSlice,
            ]
            var failed = false
            forEachGenre { genre in failed = failed || !UTF8Validation.isValid(genre) }
            slices.removeAll { UTF8Validation.isValid(bytes[slice: $0]) }
            if failed || !slices.isEmpty { return "a string is not valid UTF-8" }
        }
        // A version this build knows: a record of another producer's with `9.9` was taken as an
        // event, and what `log dump` and `log salvage` printed of it `import` refused (an outside
        // review). (Its event type is checked against every version's, not its own: records that
        // tools and tests write under 1.0 with 1.1's types are read, as they always were.)
        guard let version = schemaVersionBytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
            KnownValues.schemaVersion(version, schemaVersionBytes.count) != nil
        else { return "schema_version \"\(makeString(UnsafeRawBufferPointer(rebasing: schemaVersionBytes.prefix(64))))\" is not one this build knows (1.0, 1.1)" }
        guard let type = eventTypeBytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
            KnownValues.eventType11(type, eventTypeBytes.count) != nil
        else { return "event_type \"\(makeString(UnsafeRawBufferPointer(rebasing: eventTypeBytes.prefix(64))))\" is not one of \(KnownValues.eventTypeStrings.joined(separator: ", "))" }
        guard let content = contentTypeBytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
            KnownValues.contentType(content, contentTypeBytes.count) != nil
        else { return "content_type \"\(makeString(UnsafeRawBufferPointer(rebasing: contentTypeBytes.prefix(64))))\" is not one of \(KnownValues.contentTypeStrings.joined(separator: ", "))" }
        if flags & RecordBytes.flagExtra != 0, !EventParser.isExtraObject(bytes[slice: extraSlice]) {
            return "extra is not a JSON object of fields the schema does not define, each once"
        }
        return nil
    }

    public var eventIDBytes: UnsafeRawBufferPointer { bytes[slice: eventIDSlice] }
    public var eventTypeBytes: UnsafeRawBufferPointer { bytes[slice: eventTypeSlice] }
    /// Whether the event type is `value`, compared byte for byte (nothing is made of the field).
    public func eventTypeIs(_ value: StaticString) -> Bool { Self.bytes(eventTypeBytes, are: value) }
    public var userIDBytes: UnsafeRawBufferPointer { bytes[slice: userIDSlice] }
    public var deviceIDBytes: UnsafeRawBufferPointer { bytes[slice: deviceIDSlice] }
    public var sessionIDBytes: UnsafeRawBufferPointer? {
        flags & RecordBytes.flagSession != 0 ? bytes[slice: sessionIDSlice] : nil
    }
    public var ipAddressBytes: UnsafeRawBufferPointer { bytes[slice: ipSlice] }
    public var contentIDBytes: UnsafeRawBufferPointer { bytes[slice: contentIDSlice] }
    public var contentTypeBytes: UnsafeRawBufferPointer { bytes[slice: contentTypeSlice] }
    public var titleBytes: UnsafeRawBufferPointer { bytes[slice: titleSlice] }
    public var languageBytes: UnsafeRawBufferPointer { bytes[slice: languageSlice] }
    public var schemaVersionBytes: UnsafeRawBufferPointer { bytes[slice: schemaVersionSlice] }
    public var eventSourceBytes: UnsafeRawBufferPointer { bytes[slice: eventSourceSlice] }
    public var extraBytes: UnsafeRawBufferPointer? {
        flags & RecordBytes.flagExtra != 0 ? bytes[slice: extraSlice] : nil
    }

    /// The `k`th genre (0 ≤ k < genreCount). Walks the genre list (short).
    public func genreBytes(_ k: Int) -> UnsafeRawBufferPointer {
        precondition(k >= 0 && k < genreCount, "genre index \(k) out of range 0..<\(genreCount)")
        var r = RecordReader(bytes)
        r.offset = Int(genreStart)
        var s = RecordSlice.empty
        for _ in 0...k { s = try! r.slice() }
        return bytes[slice: s]
    }

    /// Calls `body` with each genre's bytes.
    public func forEachGenre(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var r = RecordReader(bytes)
        r.offset = Int(genreStart)
        for _ in 0..<genreCount { try body(bytes[slice: try! r.slice()]) }
    }

    public var eventID: String { makeString(eventIDBytes) }
    /// A schema event type is a string literal (no validation, no allocation: the metrics consumer
    /// reads it for every event); any other value a new string.
    public var eventType: String {
        let b = eventTypeBytes
        if Self.bytes(b, are: "play") { return "play" }
        if Self.bytes(b, are: "pause") { return "pause" }
        if Self.bytes(b, are: "stop") { return "stop" }
        if Self.bytes(b, are: "seek") { return "seek" }
        if Self.bytes(b, are: "heartbeat") { return "heartbeat" }
        if Self.bytes(b, are: "buffering") { return "buffering" }
        return makeString(b)
    }
    public var userID: String { makeString(userIDBytes) }
    public var deviceID: String { makeString(deviceIDBytes) }
    public var sessionID: String? { sessionIDBytes.map(makeString) }
    public var ipAddress: String { makeString(ipAddressBytes) }
    public var contentID: String { makeString(contentIDBytes) }
    /// A schema content type is a string literal, as ``eventType`` is.
    public var contentType: String {
        let b = contentTypeBytes
        if Self.bytes(b, are: "movie") { return "movie" }
        if Self.bytes(b, are: "episode") { return "episode" }
        if Self.bytes(b, are: "ad") { return "ad" }
        return makeString(b)
    }

    /// Whether a field's bytes spell `value` (the length is compared first).
    private static func bytes(_ field: UnsafeRawBufferPointer, are value: StaticString) -> Bool {
        guard let p = field.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return value.utf8CodeUnitCount == 0 }
        return bytesEqual(p, field.count, value)
    }
    public var title: String { makeString(titleBytes) }
    public var genres: [String] {
        var result: [String] = []
        result.reserveCapacity(genreCount)
        forEachGenre { result.append(makeString($0)) }
        return result
    }
    /// The first genre of the list (the primary one), or `nil` when the list is empty.
    public var firstGenre: String? {
        guard genreCount > 0 else { return nil }
        var r = RecordReader(bytes)
        r.offset = Int(genreStart)
        guard let slice = try? r.slice() else { return nil }
        return makeString(bytes[slice: slice])
    }
    public var language: String { makeString(languageBytes) }
    public var schemaVersion: String { makeString(schemaVersionBytes) }
    public var eventSource: String { makeString(eventSourceBytes) }
    public var extra: String? { extraBytes.map(makeString) }

    /// The event as one JSON object: the schema's fields in schema order (timestamps as ISO-8601 UTC
    /// with microseconds), `session_id` when present, `schema_version`, the unknown fields from
    /// `extra` at top level, as sent, then `received_at` (left out with `receivedAt: false`: the
    /// event as `playhead import` reads it back).
    public func appendJSON(to out: inout [UInt8], receivedAt: Bool = true) {
        out.append(contentsOf: #"{"event_id":"#.utf8)
        JSONWriter.appendString(eventIDBytes, to: &out)
        out.append(contentsOf: #","event_type":"#.utf8)
        JSONWriter.appendString(eventTypeBytes, to: &out)
        out.append(contentsOf: #","timestamp":"#.utf8)
        JSONWriter.appendTimestamp(timestampMicros, to: &out)
        out.append(contentsOf: #","user_id":"#.utf8)
        JSONWriter.appendString(userIDBytes, to: &out)
        out.append(contentsOf: #","device_id":"#.utf8)
        JSONWriter.appendString(deviceIDBytes, to: &out)
        if let session = sessionIDBytes {
            out.append(contentsOf: #","session_id":"#.utf8)
            JSONWriter.appendString(session, to: &out)
        }
        out.append(contentsOf: #","ip_address":"#.utf8)
        JSONWriter.appendString(ipAddressBytes, to: &out)
        out.append(contentsOf: #","content_id":"#.utf8)
        JSONWriter.appendString(contentIDBytes, to: &out)
        out.append(contentsOf: #","content_type":"#.utf8)
        JSONWriter.appendString(contentTypeBytes, to: &out)
        out.append(contentsOf: #","title":"#.utf8)
        JSONWriter.appendString(titleBytes, to: &out)
        out.append(contentsOf: #","genre":["#.utf8)
        var first = true
        forEachGenre { genre in
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            JSONWriter.appendString(genre, to: &out)
        }
        out.append(contentsOf: #"],"duration_seconds":"#.utf8)
        JSONWriter.appendInt(durationSeconds, to: &out)
        out.append(contentsOf: #","language":"#.utf8)
        JSONWriter.appendString(languageBytes, to: &out)
        out.append(contentsOf: #","current_timestamp":"#.utf8)
        JSONWriter.appendDouble(currentTimestamp, to: &out)
        out.append(contentsOf: #","event_source":"#.utf8)
        JSONWriter.appendString(eventSourceBytes, to: &out)
        out.append(contentsOf: #","schema_version":"#.utf8)
        JSONWriter.appendString(schemaVersionBytes, to: &out)
        if let extra = extraBytes {
            // `extra` is `{…}`, maybe with blanks after it (from another producer: the reader's check
            // allows them, and the `}` was spliced in and a blank dropped, a line that is not JSON,
            // an outside review); splice its members in unless it is empty.
            func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 }
            var close = extra.count - 1
            while close > 0, isBlank(extra[close]) { close -= 1 }
            var i = 1
            while i < close, isBlank(extra[i]) { i += 1 }
            if i < close {
                out.append(UInt8(ascii: ","))
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: extra[1..<close]))
            }
        }
        // After the unknown fields: a client that sent a `received_at` of its own (an unknown field
        // to the schema) has it printed twice, and readers that keep a repeated key's last value
        // (jq, Python's json, JavaScript) take the server's. Before 2026-12-05 they took the client's.
        if receivedAt {
            out.append(contentsOf: #","received_at":"#.utf8)
            JSONWriter.appendTimestamp(receivedAtMicros, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }
}

/// Reads a rejected record in place. The view borrows the bytes.
public struct RejectedRecordView {
    public let bytes: UnsafeRawBufferPointer
    public let receivedAtMicros: Int64
    public let index: Int32
    private let reasonSlice: RecordSlice
    private let fieldSlice: RecordSlice
    private let messageSlice: RecordSlice
    private let eventIDSlice: RecordSlice
    private let rawSlice: RecordSlice

    public init(_ value: UnsafeRawBufferPointer) throws(RecordFormatError) {
        bytes = value
        var r = RecordReader(value)
        let version = try r.u8()
        guard version == RecordBytes.version else { throw RecordFormatError("unknown rejected-record version \(version)") }
        receivedAtMicros = try r.i64()
        index = try r.i32()
        reasonSlice = try r.slice()
        fieldSlice = try r.slice()
        messageSlice = try r.slice()
        eventIDSlice = try r.slice()
        rawSlice = try r.slice()
        guard r.offset == value.count else { throw RecordFormatError("\(value.count - r.offset) bytes left over") }
        // As for event records (``EventRecordView``): what the edge never writes, from another producer.
        guard EventTimestamp.isWithinYears(micros: receivedAtMicros) else {
            throw RecordFormatError("received_at \(receivedAtMicros) µs since 1970 is outside years 0001-9999")
        }
        for slice in [reasonSlice, fieldSlice, messageSlice, eventIDSlice] where !UTF8Validation.isValid(bytes[slice: slice]) {
            throw RecordFormatError("a string is not valid UTF-8")
        }
    }

    public var reasonBytes: UnsafeRawBufferPointer { bytes[slice: reasonSlice] }
    public var fieldBytes: UnsafeRawBufferPointer { bytes[slice: fieldSlice] }
    public var messageBytes: UnsafeRawBufferPointer { bytes[slice: messageSlice] }
    public var eventIDBytes: UnsafeRawBufferPointer { bytes[slice: eventIDSlice] }
    public var raw: UnsafeRawBufferPointer { bytes[slice: rawSlice] }

    public var reason: String { makeString(reasonBytes) }
    public var field: String { makeString(fieldBytes) }
    public var message: String { makeString(messageBytes) }
    public var eventID: String { makeString(eventIDBytes) }

    /// `{"received_at":"…","index":i,"reason":"…","field":"…"|null,"message":"…","event_id":"…"|null,"raw":"…"}`;
    /// the raw bytes are shown as a string when they are valid UTF-8, else as base64 in `raw_base64`.
    public func appendJSON(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"received_at":"#.utf8)
        JSONWriter.appendTimestamp(receivedAtMicros, to: &out)
        out.append(contentsOf: #","index":"#.utf8)
        JSONWriter.appendInt(Int64(index), to: &out)
        out.append(contentsOf: #","reason":"#.utf8)
        JSONWriter.appendString(reasonBytes, to: &out)
        out.append(contentsOf: #","field":"#.utf8)
        if fieldBytes.isEmpty { out.append(contentsOf: "null".utf8) } else { JSONWriter.appendString(fieldBytes, to: &out) }
        out.append(contentsOf: #","message":"#.utf8)
        JSONWriter.appendString(messageBytes, to: &out)
        out.append(contentsOf: #","event_id":"#.utf8)
        if eventIDBytes.isEmpty { out.append(contentsOf: "null".utf8) } else { JSONWriter.appendString(eventIDBytes, to: &out) }
        if UTF8Validation.isValid(raw) {
            out.append(contentsOf: #","raw":"#.utf8)
            JSONWriter.appendString(raw, to: &out)
        } else {
            out.append(contentsOf: #","raw_base64":""#.utf8)
            JSONWriter.appendBase64(raw, to: &out)
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
    }
}
