import Foundation
import Parquet
import PlayheadTestSupport

/// The kinds of leaf values the tests generate.
enum Kind: String, CaseIterable {
    case string, json, binary, int64, uint64, int8, uint8, int16, uint16, int32, uint32
    case double, float, bool, date, uuid, fixed, timestampMs = "timestamp_ms", timestampUs = "timestamp_us"
    case timestampNs = "timestamp_ns"

    static let fixedLength = 5

    func column(_ name: String, optional: Bool) -> ParquetColumn {
        switch self {
        case .string: .string(name, optional: optional)
        case .json: .json(name, optional: optional)
        case .binary: .binary(name, optional: optional)
        case .int64: .int64(name, optional: optional)
        case .uint64: .uint64(name, optional: optional)
        case .int8: .int32(name, optional: optional, bitWidth: 8)
        case .uint8: .int32(name, optional: optional, bitWidth: 8, signed: false)
        case .int16: .int32(name, optional: optional, bitWidth: 16)
        case .uint16: .int32(name, optional: optional, bitWidth: 16, signed: false)
        case .int32: .int32(name, optional: optional)
        case .uint32: .int32(name, optional: optional, bitWidth: 32, signed: false)
        case .double: .double(name, optional: optional)
        case .float: .float(name, optional: optional)
        case .bool: .boolean(name, optional: optional)
        case .date: .date(name, optional: optional)
        case .uuid: .uuid(name, optional: optional)
        case .fixed: .fixedBytes(name, length: Self.fixedLength, optional: optional)
        case .timestampMs: .timestamp(name, unit: .milliseconds, optional: optional)
        case .timestampUs: .timestamp(name, unit: .microseconds, optional: optional)
        case .timestampNs: .timestamp(name, unit: .nanoseconds, optional: optional)
        }
    }

    /// pyarrow's name of the type it reads.
    var arrowType: String {
        switch self {
        case .string: "string"
        case .json: "extension<arrow.json>"
        case .binary: "binary"
        case .int64: "int64"
        case .uint64: "uint64"
        case .int8: "int8"
        case .uint8: "uint8"
        case .int16: "int16"
        case .uint16: "uint16"
        case .int32: "int32"
        case .uint32: "uint32"
        case .double: "double"
        case .float: "float"
        case .bool: "bool"
        case .date: "date32[day]"
        case .uuid: "extension<arrow.uuid>"
        case .fixed: "fixed_size_binary[\(Self.fixedLength)]"
        case .timestampMs: "timestamp[ms, tz=UTC]"
        case .timestampUs: "timestamp[us, tz=UTC]"
        case .timestampNs: "timestamp[ns, tz=UTC]"
        }
    }

    /// DuckDB's name of the type it reads.
    var duckdbType: String {
        switch self {
        case .string: "VARCHAR"
        case .json: "JSON"
        case .binary: "BLOB"
        case .int64: "BIGINT"
        case .uint64: "UBIGINT"
        case .int8: "TINYINT"
        case .uint8: "UTINYINT"
        case .int16: "SMALLINT"
        case .uint16: "USMALLINT"
        case .int32: "INTEGER"
        case .uint32: "UINTEGER"
        case .double: "DOUBLE"
        case .float: "FLOAT"
        case .bool: "BOOLEAN"
        case .date: "DATE"
        case .uuid: "UUID"
        case .fixed: "BLOB"
        case .timestampMs, .timestampUs: "TIMESTAMP WITH TIME ZONE"
        case .timestampNs: "TIMESTAMPTZ_NS"
        }
    }

    /// pyarrow's `ParquetLogicalType.type` of the leaf.
    var logicalType: String {
        switch self {
        case .string: "STRING"
        case .json: "JSON"
        case .binary, .double, .float, .bool, .fixed: "NONE"
        case .int64, .uint64, .int8, .uint8, .int16, .uint16, .int32, .uint32: "INT"
        case .date: "DATE"
        case .uuid: "UUID"
        case .timestampMs, .timestampUs, .timestampNs: "TIMESTAMP"
        }
    }

    var isInteger: Bool {
        switch self {
        case .int64, .uint64, .int8, .uint8, .int16, .uint16, .int32, .uint32, .date, .timestampMs, .timestampUs, .timestampNs: true
        default: false
        }
    }

    var physicalIsInt32: Bool {
        switch self {
        case .int8, .uint8, .int16, .uint16, .int32, .uint32, .date: true
        default: false
        }
    }
}

/// One value of a test column.
indirect enum TestValue: Equatable {
    case null
    case text(String)
    case bytes([UInt8])
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case float(Float)
    case bool(Bool)
    case list([TestValue])

    static func == (a: TestValue, b: TestValue) -> Bool { a.json == b.json }

    /// The canonical JSON form (see scripts/parquet/check_files.py).
    var json: String {
        switch self {
        case .null: return "null"
        case .text(let s): return jsonString(s)
        case .bytes(let b): return "\"" + b.map { String(format: "%02x", $0) }.joined() + "\""
        case .int(let v): return String(v)
        case .uint(let v): return String(v)
        case .double(let d): return d.isNaN ? "\"nan\"" : String(d.bitPattern)
        case .float(let f): return f.isNaN ? "\"nan\"" : String(f.bitPattern)
        case .bool(let b): return b ? "true" : "false"
        case .list(let items): return "[" + items.map(\.json).joined(separator: ",") + "]"
        }
    }
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                out += String(format: "\\u%04x", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

/// A test column: its definition, its values, and what the readers should report.
struct TestColumn {
    var kind: Kind
    var column: ParquetColumn
    var values: [TestValue]
    /// The exact set of encodings the chunks must list, when the test forces one.
    var encodings: [String]?
    /// The chunks must have no min/max (values longer than `statisticsMaxValueBytes`).
    var noMinMax = false

    var isList: Bool { column.isList }

    var arrowType: String {
        guard let elementOptional = column.listElementOptional else { return kind.arrowType }
        return "list<element: \(kind.arrowType)\(elementOptional ? "" : " not null")>"
    }

    var duckdbType: String { isList ? kind.duckdbType + "[]" : kind.duckdbType }

    var specJSON: String {
        var fields = [
            "\"name\": \(jsonString(column.name))",
            "\"kind\": \"\(kind.rawValue)\"",
            "\"list\": \(isList)",
            "\"arrow_type\": \(jsonString(arrowType))",
            "\"duckdb_type\": \(jsonString(duckdbType))",
            "\"logical_type\": \"\(kind.logicalType)\"",
            "\"values\": [" + values.map(\.json).joined(separator: ",") + "]",
        ]
        if noMinMax { fields.append("\"no_min_max\": true") }
        if let encodings { fields.append("\"encodings\": [" + encodings.map { "\"\($0)\"" }.joined(separator: ",") + "]") }
        return "{" + fields.joined(separator: ", ") + "}"
    }

    /// Appends row `row` to the writer's column.
    func append(row: Int, to writer: ParquetColumnWriter) throws {
        let value = values[row]
        switch value {
        case .null:
            try writer.appendNull()
        case .list(let items):
            try writer.appendList(count: items.count)
            for item in items { try appendLeaf(item, to: writer) }
        default:
            try appendLeaf(value, to: writer)
        }
    }

    /// Appends rows with a bulk API if the column is flat, required and of a kind that has one.
    func appendBulk(rows: Range<Int>, to writer: ParquetColumnWriter) throws -> Bool {
        guard !isList, !column.optional else { return false }
        let slice = values[rows]
        switch kind {
        case .string, .binary, .json:
            var bytes: [UInt8] = []
            var offsets = [0]
            for value in slice {
                switch value {
                case .text(let s): bytes.append(contentsOf: s.utf8)
                case .bytes(let b): bytes.append(contentsOf: b)
                default: return false
                }
                offsets.append(bytes.count)
            }
            // All values empty: a buffer with no address, as Arrow's can be (its values were dropped).
            let none = UnsafeRawBufferPointer(start: nil, count: 0)
            try bytes.withUnsafeBytes { raw in
                try offsets.withUnsafeBufferPointer { try writer.append(contentsOf: bytes.isEmpty ? none : raw, offsets: $0) }
            }
        case .int64, .timestampMs, .timestampUs, .timestampNs:
            try writer.append(contentsOf: slice.map { if case .int(let v) = $0 { v } else { 0 } })
        case .int32, .date:
            try writer.append(contentsOf: slice.map { if case .int(let v) = $0 { Int32(v) } else { 0 } })
        case .double:
            try writer.append(contentsOf: slice.map { if case .double(let v) = $0 { v } else { 0 } })
        default:
            return false
        }
        return true
    }

    private func appendLeaf(_ value: TestValue, to writer: ParquetColumnWriter) throws {
        switch value {
        case .null: try writer.appendNull()
        case .text(let s): try writer.append(s)
        case .bytes(let b): try b.withUnsafeBytes { try writer.append($0) }
        case .int(let v):
            if kind.physicalIsInt32, let small = Int32(exactly: v), v % 2 == 0 { try writer.append(small) } else { try writer.append(v) }
        case .uint(let v):
            if kind == .uint64 { try writer.append(v) } else { try writer.append(Int64(v)) }
        case .double(let d): try writer.append(d)
        case .float(let f): try writer.append(f)
        case .bool(let b): try writer.append(b)
        case .list: fatalError("nested lists are not generated")
        }
    }
}

/// A file to write and check.
struct TestFile {
    var name: String
    var columns: [TestColumn]
    var rows: Int
    /// Exact statistics even for long values, unless a test says otherwise.
    var configuration = ParquetWriterConfiguration(statisticsMaxValueBytes: 1 << 30)
    /// Sizes of the row batches passed to `endRows` (the rest in one batch).
    var batches: [Int] = []
    /// Flush after these batch indexes.
    var flushAfter: Set<Int> = []
    var expectedRowGroups: Int?
    /// Use the bulk `append(contentsOf:)` APIs where a column allows them.
    var bulk = false

    var codecName: String {
        switch configuration.compression {
        case .uncompressed: "UNCOMPRESSED"
        case .zstd: "ZSTD"
        case .snappy: "SNAPPY"
        }
    }

    /// Writes the file and returns its manifest entry.
    @discardableResult
    func write(in directory: TemporaryDirectory) throws -> (path: String, manifest: String, summary: ParquetFileSummary) {
        let path = directory.appending(name + ".parquet").path
        let output = try ParquetFileOutput(path: path)
        let writer = try ParquetWriter(
            schema: ParquetSchema(columns.map(\.column)), configuration: configuration, output: output)
        var row = 0
        var batchIndex = 0
        var sizes = batches
        let batched = sizes.reduce(0, +)
        if batched < rows { sizes.append(rows - batched) }
        for size in sizes where row < rows {
            let end = min(rows, row + size)
            for (index, column) in columns.enumerated() {
                let columnWriter = writer.column(index)
                if bulk, try column.appendBulk(rows: row..<end, to: columnWriter) { continue }
                for r in row..<end { try column.append(row: r, to: columnWriter) }
            }
            try writer.endRows(end - row)
            if flushAfter.contains(batchIndex) { try writer.flushRowGroup() }
            row = end
            batchIndex += 1
        }
        let summary = try writer.close()
        var fields = [
            "\"path\": \(jsonString(path))",
            "\"rows\": \(rows)",
            "\"codec\": \"\(codecName)\"",
            "\"key_value_metadata\": {"
                + configuration.keyValueMetadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)): \(jsonString($0.value))" }
                .joined(separator: ", ") + "}",
            "\"columns\": [" + columns.map(\.specJSON).joined(separator: ",\n") + "]",
        ]
        if let expectedRowGroups { fields.append("\"row_groups\": \(expectedRowGroups)") }
        return (path, "{" + fields.joined(separator: ",\n") + "}", summary)
    }
}

/// Runs scripts/parquet/check_files.py over the files' manifests; returns its problems (empty if none).
func checkWithReaders(_ manifests: [String], in directory: TemporaryDirectory) async throws -> [String] {
    let manifestPath = directory.appending("manifest.json").path
    try ("[" + manifests.joined(separator: ",\n") + "]").write(toFile: manifestPath, atomically: true, encoding: .utf8)
    let script = TestEnvironment.repoRoot.appendingPathComponent("scripts/parquet/check_files.py").path
    let result = try await runCommand(TestEnvironment.python, [script, manifestPath], timeout: .seconds(600))
    let lines = result.stdout.split(separator: "\n").map(String.init)
    if result.status != 0 && lines.count <= 1 {
        return ["check_files.py failed (status \(result.status)): \(result.stderr)"]
    }
    return lines.filter { !$0.hasPrefix("checked ") }
}
