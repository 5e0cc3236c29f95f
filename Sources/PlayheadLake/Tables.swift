import CPlayhead
import Parquet
import PlayheadEvents

/// The Parquet writer settings of a lake file.
extension LakeWriterConfiguration {
    var parquet: ParquetWriterConfiguration {
        ParquetWriterConfiguration(
            compression: .zstd(level: Int(zstdLevel)),
            rowGroupRows: rowGroupRows,
            keyValueMetadata: ["playhead.lake.version": "1"],
            createdBy: PlayheadVersion.parquetCreatedBy
        )
    }
}

/// Writes `rows` with `body`, appending to the columns of a writer, and returns the file's bytes.
private func writeParquet(
    schema: ParquetSchema, rowCount: Int, configuration: LakeWriterConfiguration,
    estimatedBytes: Int, _ body: (ParquetWriter) throws -> Void
) throws -> [UInt8] {
    let output = ParquetByteBuffer(reservingCapacity: estimatedBytes)
    let writer = try ParquetWriter(schema: schema, configuration: configuration.parquet, output: output)
    try body(writer)
    _ = try writer.close()
    return output.takeBytes()
}

/// `events/`: one row per accepted event, columns named as the event's fields (DESIGN.md).
enum EventsTable {
    static let schema = ParquetSchema([
        .string("event_id"),
        .string("event_type"),
        .timestamp("timestamp"),
        .timestamp("received_at"),
        .string("user_id"),
        .string("device_id"),
        .string("session_id", optional: true),
        .string("ip_address"),
        .string("content_id"),
        .string("content_type"),
        .string("title"),
        .stringList("genre"),
        .int64("duration_seconds"),
        .string("language"),
        .double("current_timestamp"),
        .string("schema_version"),
        .string("event_source"),
        .json("extra", optional: true),
    ])

    /// The order rows are written in: by `content_id` (its bytes, as Parquet orders strings), then
    /// session (by hash), then event time. Rows of one content and one session sit together, so
    /// titles, genres, users and devices form long runs that the dictionary and zstd compress to
    /// almost nothing, and a session reads in time order. Ordered by value, each row group's
    /// `content_id` statistics cover a narrow range, so readers skip row groups on a content filter
    /// (in hash order every row group spanned the catalogue: a probe, 2026-12-03).
    typealias SortKey = (content: UInt64, session: UInt64, time: Int64, index: Int)

    /// The sort key of a record, from what the rollups read of it (so it is parsed and hashed once
    /// for both).
    static func sortKey(_ facts: RollupFacts, index: Int) -> SortKey {
        (facts.content, facts.session, facts.timestampMicros, index)
    }

    /// The rows of `keys` in sort order. `views` gives each content's id bytes (`SortKey.index`):
    /// the contents of a batch (a few thousand at most) are ranked by value, and the rows then
    /// sorted by rank, so the id bytes are compared once per content, not per row.
    static func sortOrder(_ keys: [SortKey], views: [UnsafeRawBufferPointer]) -> [Int] {
        var example: [UInt64: Int] = [:]
        for key in keys where example[key.content] == nil { example[key.content] = key.index }
        let contents = example.map { hash, index in
            (hash: hash, id: (try? EventRecordView(views[index]))?.contentIDBytes ?? UnsafeRawBufferPointer(start: nil, count: 0))
        }.sorted { a, b in
            a.id.elementsEqual(b.id) ? a.hash < b.hash : a.id.lexicographicallyPrecedes(b.id)
        }
        var rank: [UInt64: UInt64] = [:]
        rank.reserveCapacity(contents.count)
        for (place, content) in contents.enumerated() { rank[content.hash] = UInt64(place) }
        var keys = keys
        for k in keys.indices { keys[k].content = rank[keys[k].content] ?? 0 }
        keys.sort { a, b in
            if a.content != b.content { return a.content < b.content }
            if a.session != b.session { return a.session < b.session }
            if a.time != b.time { return a.time < b.time }
            return a.index < b.index
        }
        return keys.map(\.index)
    }

    /// How many rows ahead the encoder starts loading a record.
    static let prefetchDistance = 6

    static func encode(_ views: [UnsafeRawBufferPointer], rows: [Int], configuration: LakeWriterConfiguration) throws -> [UInt8] {
        let estimated = max(4096, rows.count * 48)
        return try writeParquet(schema: schema, rowCount: rows.count, configuration: configuration, estimatedBytes: estimated) { writer in
            // One local per column: reading them from an array would retain and release the
            // column writer at every value.
            let (eventID, eventType, timestamp, receivedAt, userID, deviceID) =
                (writer.column(0), writer.column(1), writer.column(2), writer.column(3), writer.column(4), writer.column(5))
            let (sessionID, ipAddress, contentID, contentType, title, genre) =
                (writer.column(6), writer.column(7), writer.column(8), writer.column(9), writer.column(10), writer.column(11))
            let (duration, language, position, schemaVersion, eventSource, extra) =
                (writer.column(12), writer.column(13), writer.column(14), writer.column(15), writer.column(16), writer.column(17))
            // The records' places in sort order, gathered first: `views` is read all over, and a
            // loop that does nothing else overlaps those cache misses, where the encoding loop
            // below (hundreds of instructions per row) would wait out each one.
            var ordered: [UnsafeRawBufferPointer] = []
            ordered.reserveCapacity(rows.count)
            for row in rows { ordered.append(views[row]) }
            var pending = 0
            // Rows go to the writer 16,384 at a time, and a row group closes exactly at rowGroupRows.
            var inGroup = 0
            let groupRows = max(1, configuration.rowGroupRows)
            for (place, view) in ordered.enumerated() {
                // Rows are read in sort order, all over the batch: start loading a later row's
                // record (about five cache lines) while this one is encoded.
                if place + Self.prefetchDistance < ordered.count {
                    let ahead = ordered[place + Self.prefetchDistance]
                    if let base = ahead.baseAddress {
                        for line in stride(from: 0, to: ahead.count, by: 64) { playhead_prefetch(base + line) }
                    }
                }
                let r = try EventRecordView(view)
                try eventID.append(r.eventIDBytes)
                try eventType.append(r.eventTypeBytes)
                try timestamp.append(r.timestampMicros)
                try receivedAt.append(r.receivedAtMicros)
                try userID.append(r.userIDBytes)
                try deviceID.append(r.deviceIDBytes)
                if let session = r.sessionIDBytes { try sessionID.append(session) } else { try sessionID.appendNull() }
                try ipAddress.append(r.ipAddressBytes)
                try contentID.append(r.contentIDBytes)
                try contentType.append(r.contentTypeBytes)
                try title.append(r.titleBytes)
                try genre.appendList(count: r.genreCount)
                for k in 0..<r.genreCount { try genre.append(r.genreBytes(k)) }
                try duration.append(r.durationSeconds)
                try language.append(r.languageBytes)
                try position.append(r.currentTimestamp)
                try schemaVersion.append(r.schemaVersionBytes)
                try eventSource.append(r.eventSourceBytes)
                if let bytes = r.extraBytes { try extra.append(bytes) } else { try extra.appendNull() }
                pending += 1
                if pending == 16_384 || inGroup + pending == groupRows {
                    try writer.endRows(pending)
                    inGroup = (inGroup + pending) % groupRows
                    pending = 0
                }
            }
            if pending > 0 { try writer.endRows(pending) }
        }
    }
}

/// `rejected/`: every rejected event or body, byte for byte, with why (docs/lake.md).
enum RejectedTable {
    static let schema = ParquetSchema([
        .timestamp("received_at"),
        .int32("request_index"),
        .string("reason"),
        .string("field", optional: true),
        .string("message"),
        .string("event_id", optional: true),
        .binary("raw"),
        .string("raw_text", optional: true),
    ])

    static func encode(_ views: [UnsafeRawBufferPointer], rows: [Int], configuration: LakeWriterConfiguration) throws -> [UInt8] {
        let estimated = max(4096, rows.reduce(0) { $0 + views[$1].count })
        return try writeParquet(schema: schema, rowCount: rows.count, configuration: configuration, estimatedBytes: estimated) { writer in
            let c = (0..<writer.columnCount).map { writer.column($0) }
            for row in rows {
                let r = try RejectedRecordView(views[row])
                try c[0].append(r.receivedAtMicros)
                try c[1].append(r.index)
                try c[2].append(r.reason)
                // Null when there is none (a whole body, an event without a readable event_id), as
                // the API's answer and `log dump` give it.
                if r.fieldBytes.isEmpty { try c[3].appendNull() } else { try c[3].append(r.fieldBytes) }
                try c[4].append(r.message)
                if r.eventIDBytes.isEmpty { try c[5].appendNull() } else { try c[5].append(r.eventIDBytes) }
                try c[6].append(r.raw)
                if isValidUTF8(r.raw) { try c[7].append(r.raw) } else { try c[7].appendNull() }
            }
            try writer.endRows(rows.count)
        }
    }

    private static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}

/// `rollups/`: per-hour, per-content aggregates (docs/lake.md).
enum RollupsTable {
    static let schema = ParquetSchema([
        .timestamp("hour_start"),
        .string("content_id"),
        .string("content_type"),
        .string("title"),
        .int64("events"),
        .int64("plays"),
        .int64("sessions"),
        .int64("unique_viewers"),
        .double("watch_time_seconds"),
        .int64("completions"),
    ])

    static func encode(_ rows: [RollupRow], configuration: LakeWriterConfiguration) throws -> [UInt8] {
        try writeParquet(schema: schema, rowCount: rows.count, configuration: configuration, estimatedBytes: 4096 + rows.count * 64) { writer in
            let c = (0..<writer.columnCount).map { writer.column($0) }
            for row in rows {
                try c[0].append(row.hourStartMicros)
                try c[1].append(row.contentID)
                try c[2].append(row.contentType)
                try c[3].append(row.title)
                try c[4].append(row.events)
                try c[5].append(row.plays)
                try c[6].append(row.sessions)
                try c[7].append(row.uniqueViewers)
                try c[8].append(row.watchTimeSeconds)
                try c[9].append(row.completions)
            }
            try writer.endRows(rows.count)
        }
    }
}
