/// A written column chunk, with absolute offsets.
struct ColumnChunkMetadata {
    var column: ParquetColumn
    var chunk: ChunkMetadata
    var start: Int64
}

struct RowGroupMetadata {
    var columns: [ColumnChunkMetadata]
    var totalByteSize: Int64
    var numRows: Int64
    var fileOffset: Int64
    var totalCompressedSize: Int64
    var ordinal: Int16
}

/// Encodes `FileMetaData` (parquet.thrift) with the compact protocol.
enum FileMetadataEncoder {
    static func encode(
        schema: ParquetSchema, rowGroups: [RowGroupMetadata], numRows: Int64,
        configuration: ParquetWriterConfiguration, into out: ByteSink
    ) {
        var w = ThriftCompactWriter(into: out)
        w.beginStructValue()
        w.field(1, i32: 2)
        let elementCount = 1 + schema.columns.reduce(0) { $0 + ($1.isList ? 3 : 1) }
        w.beginList(2, .struct, count: elementCount)
        w.beginStructValue()
        w.field(4, string: "schema")
        w.field(5, i32: Int32(schema.columns.count))
        w.endStruct()
        for column in schema.columns {
            if let elementOptional = column.listElementOptional {
                // <repetition> group name (LIST) { repeated group list { <repetition> leaf element } }
                w.beginStructValue()
                w.field(3, i32: column.optional ? 1 : 0)
                w.field(4, string: column.name)
                w.field(5, i32: 1)
                w.field(6, i32: 3)  // ConvertedType.LIST
                w.beginStruct(10)
                w.emptyStruct(3)  // LogicalType.LIST
                w.endStruct()
                w.endStruct()
                w.beginStructValue()
                w.field(3, i32: 2)
                w.field(4, string: "list")
                w.field(5, i32: 1)
                w.endStruct()
                leaf(&w, column, name: "element", optional: elementOptional)
            } else {
                leaf(&w, column, name: column.name, optional: column.optional)
            }
        }
        w.field(3, i64: numRows)
        w.beginList(4, .struct, count: rowGroups.count)
        for group in rowGroups { rowGroup(&w, group, configuration) }
        if !configuration.keyValueMetadata.isEmpty {
            let pairs = configuration.keyValueMetadata.sorted { $0.key < $1.key }
            w.beginList(5, .struct, count: pairs.count)
            for (key, value) in pairs {
                w.beginStructValue()
                w.field(1, string: key)
                w.field(2, string: value)
                w.endStruct()
            }
        }
        w.field(6, string: configuration.createdBy)
        w.beginList(7, .struct, count: schema.columns.count)
        for _ in schema.columns {
            w.beginStructValue()
            w.emptyStruct(1)  // TYPE_ORDER
            w.endStruct()
        }
        w.endStruct()
    }

    private static func leaf(_ w: inout ThriftCompactWriter, _ column: ParquetColumn, name: String, optional: Bool) {
        w.beginStructValue()
        w.field(1, i32: column.physicalType.thriftValue)
        if case .fixedLenByteArray(let length) = column.physicalType { w.field(2, i32: Int32(length)) }
        w.field(3, i32: optional ? 1 : 0)
        w.field(4, string: name)
        if let converted = convertedType(column.logicalType) { w.field(6, i32: converted) }
        if let logical = column.logicalType {
            w.beginStruct(10)
            switch logical {
            case .string: w.emptyStruct(1)
            case .date: w.emptyStruct(6)
            case .timestamp(let unit, let isAdjustedToUTC):
                w.beginStruct(8)
                w.field(1, bool: isAdjustedToUTC)
                w.beginStruct(2)
                switch unit {
                case .milliseconds: w.emptyStruct(1)
                case .microseconds: w.emptyStruct(2)
                case .nanoseconds: w.emptyStruct(3)
                }
                w.endStruct()
                w.endStruct()
            case .integer(let bitWidth, let signed):
                w.beginStruct(10)
                w.field(1, byte: bitWidth)
                w.field(2, bool: signed)
                w.endStruct()
            case .json: w.emptyStruct(12)
            case .uuid: w.emptyStruct(14)
            }
            w.endStruct()
        }
        w.endStruct()
    }

    private static func convertedType(_ logical: ParquetLogicalType?) -> Int32? {
        switch logical {
        case .string?: 0
        case .date?: 6
        case .timestamp(.milliseconds, true)?: 9
        case .timestamp(.microseconds, true)?: 10
        case .json?: 19
        case .integer(8, true)?: 15
        case .integer(16, true)?: 16
        case .integer(32, true)?: 17
        case .integer(64, true)?: 18
        case .integer(8, false)?: 11
        case .integer(16, false)?: 12
        case .integer(32, false)?: 13
        case .integer(64, false)?: 14
        default: nil
        }
    }

    private static func rowGroup(_ w: inout ThriftCompactWriter, _ group: RowGroupMetadata, _ configuration: ParquetWriterConfiguration) {
        w.beginStructValue()
        w.beginList(1, .struct, count: group.columns.count)
        for chunk in group.columns { columnChunk(&w, chunk, configuration) }
        w.field(2, i64: group.totalByteSize)
        w.field(3, i64: group.numRows)
        w.field(5, i64: group.fileOffset)
        w.field(6, i64: group.totalCompressedSize)
        w.field(7, i16: group.ordinal)
        w.endStruct()
    }

    private static func columnChunk(_ w: inout ThriftCompactWriter, _ c: ColumnChunkMetadata, _ configuration: ParquetWriterConfiguration) {
        let chunk = c.chunk
        w.beginStructValue()
        w.field(2, i64: c.start)
        w.beginStruct(3)
        w.field(1, i32: c.column.physicalType.thriftValue)
        w.beginList(2, .i32, count: chunk.encodings.count)
        for encoding in chunk.encodings { w.element(i32: encoding.rawValue) }
        let path = c.column.path
        w.beginList(3, .binary, count: path.count)
        for part in path { w.element(string: part) }
        w.field(4, i32: configuration.compression.codec)
        w.field(5, i64: chunk.numValues)
        w.field(6, i64: chunk.uncompressedBytes)
        w.field(7, i64: chunk.compressedBytes)
        w.field(9, i64: c.start + chunk.dataPageOffset)
        if let dictionaryOffset = chunk.dictionaryPageOffset { w.field(11, i64: c.start + dictionaryOffset) }
        if configuration.writeStatistics {
            w.beginStruct(12)
            w.field(3, i64: chunk.nullCount)
            if let maxValue = chunk.maxValue, let minValue = chunk.minValue {
                w.field(5, binary: maxValue)
                w.field(6, binary: minValue)
            }
            w.endStruct()
        }
        w.beginList(13, .struct, count: chunk.encodingStats.count)
        for (pageType, encoding, count) in chunk.encodingStats {
            w.beginStructValue()
            w.field(1, i32: pageType.rawValue)
            w.field(2, i32: encoding.rawValue)
            w.field(3, i32: count)
            w.endStruct()
        }
        w.endStruct()
        w.endStruct()
    }
}
