import Parquet
import PlayheadEvents

/// The Parquet writer settings of a lake file.
extension LakeWriterConfiguration {
    var parquet: ParquetWriterConfiguration {
        ParquetWriterConfiguration(
            compression: .zstd(level: Int(zstdLevel)),
            rowGroupRows: rowGroupRows,
            keyValueMetadata: ["playhead.lake.version": "1"],
            createdBy: "playhead (parquet-swift)"
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

    /// The order rows are written in: by content, then session, then event time. Rows of one content
    /// and one session sit together, so titles, genres, users and devices form long runs that the
    /// dictionary and zstd compress to almost nothing, and a session reads in time order.
    typealias SortKey = (content: UInt64, session: UInt64, time: Int64, index: Int)

    /// The sort key of a record (read while the record is classified, so it is parsed once for both).
    static func sortKey(_ record: EventRecordView, index: Int) -> SortKey {
        let session = record.sessionIDBytes ?? record.deviceIDBytes
        return (hash64(record.contentIDBytes), hash64(session), record.timestampMicros, index)
    }

    static func sortOrder(_ keys: [SortKey]) -> [Int] {
        var keys = keys
        keys.sort { a, b in
            if a.content != b.content { return a.content < b.content }
            if a.session != b.session { return a.session < b.session }
            if a.time != b.time { return a.time < b.time }
            return a.index < b.index
        }
        return keys.map(\.index)
    }

    static func encode(_ views: [UnsafeRawBufferPointer], rows: [Int], configuration: LakeWriterConfiguration) throws -> [UInt8] {
        let estimated = max(4096, rows.count * 48)
        return try writeParquet(schema: schema, rowCount: rows.count, configuration: configuration, estimatedBytes: estimated) { writer in
            let c = (0..<writer.columnCount).map { writer.column($0) }
            var pending = 0
            for row in rows {
                let r = try EventRecordView(views[row])
                try c[0].append(r.eventIDBytes)
                try c[1].append(r.eventTypeBytes)
                try c[2].append(r.timestampMicros)
                try c[3].append(r.receivedAtMicros)
                try c[4].append(r.userIDBytes)
                try c[5].append(r.deviceIDBytes)
                if let session = r.sessionIDBytes { try c[6].append(session) } else { try c[6].appendNull() }
                try c[7].append(r.ipAddressBytes)
                try c[8].append(r.contentIDBytes)
                try c[9].append(r.contentTypeBytes)
                try c[10].append(r.titleBytes)
                try c[11].appendList(count: r.genreCount)
                for k in 0..<r.genreCount { try c[11].append(r.genreBytes(k)) }
                try c[12].append(r.durationSeconds)
                try c[13].append(r.languageBytes)
                try c[14].append(r.currentTimestamp)
                try c[15].append(r.schemaVersionBytes)
                try c[16].append(r.eventSourceBytes)
                if let extra = r.extraBytes { try c[17].append(extra) } else { try c[17].appendNull() }
                pending += 1
                if pending == 16_384 {
                    try writer.endRows(pending)
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
        .string("field"),
        .string("message"),
        .string("event_id"),
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
                try c[3].append(r.field)
                try c[4].append(r.message)
                try c[5].append(r.eventID)
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
