/// What a closed file holds.
public struct ParquetFileSummary: Sendable {
    /// Rows written.
    public var rows: Int64
    /// Row groups written.
    public var rowGroups: Int
    /// Bytes of the whole file.
    public var bytes: Int64
    /// Per column, in schema order.
    public var columns: [ParquetColumnSummary]
}

/// Sizes of one column over all row groups.
public struct ParquetColumnSummary: Sendable {
    /// The column's name.
    public var name: String
    /// Compressed bytes of its pages, headers included.
    public var compressedBytes: Int64
    /// Uncompressed bytes of its pages, headers included.
    public var uncompressedBytes: Int64
    /// The encodings its pages use ("PLAIN", "RLE", "RLE_DICTIONARY", "DELTA_BINARY_PACKED").
    public var encodings: [String]
}

/// A streaming Parquet writer with a columnar, typed API and bounded memory.
///
/// Append each column's values for a batch of rows through ``column(_:)``, then call ``endRows(_:)``
/// (which checks that every column got the rows and writes a row group once
/// ``ParquetWriterConfiguration/rowGroupRows`` or ``ParquetWriterConfiguration/rowGroupBytes`` is
/// reached), or call ``flushRowGroup()`` to write the buffered rows now. ``close()`` writes the
/// buffered rows and the footer.
///
/// ```swift
/// let output = ParquetByteBuffer()
/// let writer = try ParquetWriter(schema: ParquetSchema([.string("name"), .int64("n", optional: true)]), output: output)
/// try writer.column(0).append("a")
/// try writer.column(1).appendNull()
/// try writer.endRows(1)
/// let summary = try writer.close()
/// ```
///
/// Not thread-safe; encoding and compression are CPU work: don't run it on an event loop.
public final class ParquetWriter {
    /// The file's schema.
    public let schema: ParquetSchema
    /// The writer's options.
    public let configuration: ParquetWriterConfiguration

    private var output: any ParquetOutput
    private let columns: [ParquetColumnWriter]
    private let context: EncodingContext
    private var position: Int64 = 0
    private(set) var rowGroups: [RowGroupMetadata] = []
    private var rowsWritten: Int64 = 0
    private var endedRows = 0
    private var failure: ParquetError?
    private var closed = false
    private var columnTotals: [(compressed: Int64, uncompressed: Int64, encodings: Set<Encoding>)]

    /// Starts a file: validates the schema and writes the leading magic bytes.
    public init(
        schema: ParquetSchema, configuration: ParquetWriterConfiguration = .init(), output: some ParquetOutput
    ) throws(ParquetError) {
        try schema.validate()
        try configuration.validate()
        self.schema = schema
        self.configuration = configuration
        self.output = output
        columns = schema.columns.enumerated().map { ParquetColumnWriter(column: $1, index: $0) }
        columnTotals = Array(repeating: (0, 0, []), count: schema.columns.count)
        context = try EncodingContext(configuration: configuration)
        try write(Array("PAR1".utf8))
    }

    /// The number of columns.
    public var columnCount: Int { columns.count }

    /// The writer of column `index` (schema order).
    public func column(_ index: Int) -> ParquetColumnWriter {
        columns[index]
    }

    /// The writer of the column called `name`, if any.
    public func column(named name: String) -> ParquetColumnWriter? {
        columns.first { $0.column.name == name }
    }

    /// Rows buffered and not yet written (as counted by ``endRows(_:)``).
    public var bufferedRows: Int { endedRows }

    /// Bytes buffered (an estimate of the PLAIN size of the values not yet written).
    public var bufferedBytes: Int { columns.reduce(0) { $0 + $1.bufferedBytes } }

    /// Marks the end of `count` rows appended to every column: checks every column holds the same
    /// number of rows, then writes a row group if the configured rows or bytes are reached.
    ///
    /// - Throws: ``ParquetError/Code/columnLengthMismatch`` if a column got a different number of rows.
    public func endRows(_ count: Int = 1) throws(ParquetError) {
        try checkUsable()
        let expected = endedRows + count
        for column in columns where column.rows != expected || column.hasOpenList {
            throw lengthMismatch(column, expected: expected)
        }
        endedRows = expected
        if endedRows >= configuration.rowGroupRows || bufferedBytes >= configuration.rowGroupBytes {
            try flushRowGroup()
        }
    }

    /// Marks the end of one row (see ``endRows(_:)``).
    public func endRow() throws(ParquetError) {
        try endRows(1)
    }

    private func lengthMismatch(_ column: ParquetColumnWriter, expected: Int) -> ParquetError {
        if column.hasOpenList {
            return ParquetError(.columnLengthMismatch, "column '\(column.column.name)' has an unfinished list")
        }
        let counts = columns.map { "\($0.column.name)=\($0.rows)" }.joined(separator: ", ")
        return ParquetError(
            .columnLengthMismatch,
            "column '\(column.column.name)' has \(column.rows) rows buffered, expected \(expected) (\(counts))")
    }

    private func checkUsable() throws(ParquetError) {
        if closed { throw ParquetError(.writeAfterClose, "the writer is closed") }
        if let failure { throw ParquetError(.writeAfterClose, "the writer failed earlier: \(failure)") }
    }

    /// Writes the buffered rows now, as one row group (or several, if they exceed the configured
    /// rows or bytes). Does nothing if no rows are buffered.
    ///
    /// - Throws: ``ParquetError/Code/columnLengthMismatch`` if the columns hold different numbers of rows.
    public func flushRowGroup() throws(ParquetError) {
        try checkUsable()
        let rows = columns.first?.rows ?? 0
        for column in columns where column.rows != rows || column.hasOpenList {
            throw lengthMismatch(column, expected: rows)
        }
        guard rows > 0 else { return }
        do {
            try writeRowGroups(rows: rows)
        } catch {
            failure = error
            throw error
        }
        for column in columns { column.resetBuffers() }
        endedRows = 0
    }

    private func writeRowGroups(rows: Int) throws(ParquetError) {
        // Rounded up without `a + b - 1`, which overflowed for a limit of Int.max ("never split",
        // which the configuration's check accepts: a crash, a review).
        func groupsOf(_ a: Int, by b: Int) -> Int { a / b + (a % b > 0 ? 1 : 0) }
        let byBytes = groupsOf(bufferedBytes, by: configuration.rowGroupBytes)
        let byRows = groupsOf(rows, by: configuration.rowGroupRows)
        let groups = max(1, min(rows, max(byBytes, byRows)))
        let perGroup = (rows + groups - 1) / groups
        var cursors = Array(repeating: (level: 0, value: 0), count: columns.count)
        var remaining = rows
        while remaining > 0 {
            let groupRows = min(perGroup, remaining)
            var chunks: [ColumnChunkMetadata] = []
            let groupStart = position
            var totalUncompressed: Int64 = 0
            var totalCompressed: Int64 = 0
            for (i, column) in columns.enumerated() {
                let (levelEnd, valueEnd) = column.advance(levelStart: cursors[i].level, valueStart: cursors[i].value, rows: groupRows)
                let chunk = try column.encodeChunk(
                    levels: cursors[i].level..<levelEnd, values: cursors[i].value..<valueEnd, context: context)
                cursors[i] = (levelEnd, valueEnd)
                let start = position
                try write(context.dictionaryChunk.bytes)
                try write(context.dataChunk.bytes)
                chunks.append(ColumnChunkMetadata(column: column.column, chunk: chunk, start: start))
                totalUncompressed += chunk.uncompressedBytes
                totalCompressed += chunk.compressedBytes
                columnTotals[i].compressed += chunk.compressedBytes
                columnTotals[i].uncompressed += chunk.uncompressedBytes
                columnTotals[i].encodings.formUnion(chunk.encodings)
            }
            rowGroups.append(
                RowGroupMetadata(
                    columns: chunks, totalByteSize: totalUncompressed, numRows: Int64(groupRows), fileOffset: groupStart,
                    totalCompressedSize: totalCompressed, ordinal: Int16(truncatingIfNeeded: rowGroups.count)))
            rowsWritten += Int64(groupRows)
            remaining -= groupRows
        }
    }

    private func write(_ bytes: UnsafeRawBufferPointer) throws(ParquetError) {
        guard bytes.count > 0 else { return }
        do {
            try output.write(bytes)
        } catch let error as ParquetError {
            throw error
        } catch {
            throw ParquetError(.io, "writing the output: \(error)")
        }
        position += Int64(bytes.count)
    }

    private func write(_ bytes: [UInt8]) throws(ParquetError) {
        var failure: ParquetError?
        bytes.withUnsafeBytes { buffer in
            do { try write(buffer) } catch { failure = error as? ParquetError ?? ParquetError(.io, "\(error)") }
        }
        if let failure { throw failure }
    }

    /// Writes the buffered rows and the footer, then closes a ``ParquetFileOutput``. Later calls throw
    /// ``ParquetError/Code/writeAfterClose``.
    @discardableResult
    public func close() throws(ParquetError) -> ParquetFileSummary {
        try flushRowGroup()
        closed = true
        for column in columns { column.closed = true }
        let footer = ByteSink(capacity: 4096)
        FileMetadataEncoder.encode(
            schema: schema, rowGroups: rowGroups, numRows: rowsWritten, configuration: configuration, into: footer)
        let length = UInt32(footer.count)
        footer.appendLittleEndian(length)
        footer.append(Array("PAR1".utf8), count: 4)
        try write(footer.bytes)
        if let file = output as? ParquetFileOutput { try file.close() }
        return ParquetFileSummary(
            rows: rowsWritten, rowGroups: rowGroups.count, bytes: position,
            columns: zip(schema.columns, columnTotals).map { column, totals in
                ParquetColumnSummary(
                    name: column.name, compressedBytes: totals.compressed, uncompressedBytes: totals.uncompressed,
                    encodings: totals.encodings.sorted().map(\.name))
            })
    }
}
