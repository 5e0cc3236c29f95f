import Foundation
import Testing
@testable import Parquet
import PlayheadTestSupport

@Suite("Parquet files read back by pyarrow and DuckDB")
struct ReaderRoundTripTests {
    private func check(_ files: [TestFile]) async throws {
        let directory = try TemporaryDirectory(prefix: "parquet")
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        var manifests: [String] = []
        for file in files {
            manifests.append(try file.write(in: directory).manifest)
        }
        let problems = try await checkWithReaders(manifests, in: directory)
        #expect(problems.isEmpty, "\(problems.prefix(40).joined(separator: "\n"))")
    }

    @Test("every kind, flat and list, required and optional, read back exactly")
    func everyKind() async throws {
        var random = RandomData(seed: 1)
        var columns: [TestColumn] = []
        for (i, kind) in Kind.allCases.enumerated() {
            columns.append(random.column("flat\(i)_\(kind.rawValue)", rows: 200, kind: kind, list: false))
            columns.append(random.column("list\(i)_\(kind.rawValue)", rows: 200, kind: kind, list: true))
        }
        try await check([TestFile(name: "every-kind", columns: columns, rows: 200)])
    }

    @Test("random schemas, data and configurations (seeds 100-129)")
    func randomFilesA() async throws {
        var files: [TestFile] = []
        for seed in UInt64(100)..<130 {
            var random = RandomData(seed: seed)
            files.append(random.file("random-\(seed)"))
        }
        try await check(files)
    }

    @Test("random schemas, data and configurations (seeds 200-229)")
    func randomFilesB() async throws {
        var files: [TestFile] = []
        for seed in UInt64(200)..<230 {
            var random = RandomData(seed: seed)
            files.append(random.file("random-\(seed)"))
        }
        try await check(files)
    }

    @Test("bulk appends (Arrow-style bytes + offsets, arrays) read back exactly")
    func bulkAppends() async throws {
        var files: [TestFile] = []
        for seed in UInt64(300)..<306 {
            var random = RandomData(seed: seed)
            var file = random.file("bulk-\(seed)")
            file.rows = 500
            file.columns = []
            for (i, kind) in [Kind.string, .binary, .json, .int64, .timestampUs, .int32, .date, .double].enumerated() {
                var column = random.column("c\(i)", rows: 500, kind: kind, list: false)
                if column.column.optional {
                    var pool: [TestValue] = []
                    var values: [TestValue] = []
                    for value in column.values {
                        values.append(value == .null ? random.leaf(kind, shape: .random, pool: &pool, i: 0) : value)
                    }
                    column = TestColumn(kind: kind, column: kind.column("c\(i)", optional: false), values: values, encodings: nil)
                }
                file.columns.append(column)
            }
            file.bulk = true
            files.append(file)
        }
        // Every value empty, appended over a buffer with no address (the rows were not added, and
        // endRows failed on a column with 0 rows, a review).
        var empty = TestFile(
            name: "bulk-all-empty",
            columns: [TestColumn(kind: .string, column: .string("s"), values: Array(repeating: .text(""), count: 3), encodings: nil)], rows: 3)
        empty.bulk = true
        files.append(empty)
        try await check(files)
    }

    @Test("every encoding with every codec")
    func encodingCodecMatrix() async throws {
        var files: [TestFile] = []
        let codecs: [ParquetCompression] = [.uncompressed, .zstd(level: 3), .snappy]
        let encodings: [ParquetEncodingChoice] = [.automatic, .plain, .dictionary, .deltaBinaryPacked]
        for (c, codec) in codecs.enumerated() {
            for (e, encoding) in encodings.enumerated() {
                var random = RandomData(seed: UInt64(1000 + c * 10 + e))
                let kinds: [Kind] = encoding == .deltaBinaryPacked
                    ? [.int64, .int32, .timestampUs, .date, .uint64, .int8] : [.string, .int64, .double, .uuid, .float, .timestampMs]
                var columns: [TestColumn] = []
                for (i, kind) in kinds.enumerated() {
                    var column = random.column("c\(i)", rows: 2000, kind: kind, list: i == 0)
                    column.column.encoding = encoding
                    let levels = column.column.optional || column.isList
                    switch encoding {
                    case .plain: column.encodings = ["PLAIN"] + (levels ? ["RLE"] : [])
                    case .dictionary: column.encodings = ["PLAIN", "RLE_DICTIONARY"] + (levels ? ["RLE"] : [])
                    case .deltaBinaryPacked: column.encodings = ["DELTA_BINARY_PACKED"] + (levels ? ["RLE"] : [])
                    case .automatic: column.encodings = nil
                    }
                    columns.append(column)
                }
                var configuration = ParquetWriterConfiguration(compression: codec, statisticsMaxValueBytes: 1 << 30)
                configuration.pageBytes = 8192
                files.append(TestFile(name: "matrix-\(c)-\(e)", columns: columns, rows: 2000, configuration: configuration))
            }
        }
        try await check(files)
    }

    @Test("zero rows, one row, many row groups, long strings, all nulls")
    func edgeCases() async throws {
        var random = RandomData(seed: 7)
        var files: [TestFile] = []
        let kinds: [Kind] = [.string, .int64, .timestampUs, .uuid, .bool, .double]
        files.append(TestFile(
            name: "zero-rows", columns: kinds.enumerated().map { random.column("c\($0)", rows: 0, kind: $1) }, rows: 0,
            expectedRowGroups: 0))
        files.append(TestFile(
            name: "one-row", columns: kinds.enumerated().map { random.column("c\($0)", rows: 1, kind: $1) }, rows: 1,
            expectedRowGroups: 1))
        var many = TestFile(
            name: "many-row-groups", columns: kinds.enumerated().map { random.column("c\($0)", rows: 1000, kind: $1, list: $0 == 0) },
            rows: 1000, expectedRowGroups: 16)
        many.configuration.rowGroupRows = 64
        files.append(many)
        var byBytes = TestFile(
            name: "row-groups-by-bytes", columns: [random.column("s", rows: 1000, kind: .binary, list: false)], rows: 1000)
        byBytes.configuration.rowGroupBytes = 4096
        files.append(byBytes)
        // "Never split" limits, which the configuration accepts: the row-group arithmetic overflowed (a crash, a review).
        var unbounded = TestFile(
            name: "row-groups-unbounded", columns: [random.column("s", rows: 10, kind: .string, list: false)], rows: 10, expectedRowGroups: 1)
        unbounded.configuration.rowGroupRows = .max
        unbounded.configuration.rowGroupBytes = .max
        files.append(unbounded)
        let long = (0..<30).map { i in TestValue.text(String(repeating: "ab🎬é", count: i * 997)) }
        files.append(TestFile(
            name: "long-strings",
            columns: [TestColumn(kind: .string, column: .string("s"), values: long, encodings: nil)], rows: long.count))
        var truncated = TestFile(
            name: "long-strings-no-min-max",
            columns: [TestColumn(kind: .string, column: .string("s"), values: long, encodings: nil, noMinMax: true)], rows: long.count)
        truncated.configuration.statisticsMaxValueBytes = 4096
        files.append(truncated)
        var allNull = TestFile(
            name: "all-null",
            columns: [
                TestColumn(kind: .string, column: .string("s", optional: true), values: Array(repeating: .null, count: 100), encodings: nil),
                TestColumn(kind: .int64, column: .int64("i", optional: true), values: Array(repeating: .null, count: 100), encodings: nil),
                TestColumn(kind: .string, column: .stringList("l", optional: true), values: Array(repeating: .null, count: 100), encodings: nil),
                TestColumn(kind: .string, column: .stringList("e"), values: Array(repeating: .list([]), count: 100), encodings: nil),
            ], rows: 100)
        allNull.configuration.keyValueMetadata = ["k": "v", "empty": ""]
        files.append(allNull)
        try await check(files)
    }

    @Test("a dictionary past its limit falls back to PLAIN pages in the same chunk")
    func dictionaryFallback() async throws {
        let directory = try TemporaryDirectory(prefix: "parquet")
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        let values = (0..<5000).map { TestValue.text("value-\($0 * 7919 % 5000)-" + String(repeating: "x", count: $0 % 17)) }
        var file = TestFile(
            name: "fallback",
            columns: [TestColumn(kind: .string, column: .string("s").encoded(.dictionary), values: values, encodings: ["PLAIN", "RLE_DICTIONARY"])],
            rows: values.count)
        file.configuration.dictionaryPageLimitBytes = 2000
        file.configuration.pageBytes = 1000
        let output = ParquetByteBuffer()
        let writer = try ParquetWriter(schema: ParquetSchema([file.columns[0].column]), configuration: file.configuration, output: output)
        for row in 0..<file.rows { try file.columns[0].append(row: row, to: writer.column(0)) }
        try writer.endRows(file.rows)
        try writer.flushRowGroup()
        let stats: [(PageType, Encoding, Int32)] = writer.rowGroups[0].columns[0].chunk.encodingStats
        func pages(_ type: PageType, _ encoding: Encoding) -> Int32 {
            stats.filter { $0.0 == type && $0.1 == encoding }.map { $0.2 }.reduce(0, +)
        }
        #expect(pages(PageType.dictionaryPage, Encoding.plain) == 1)
        #expect(pages(PageType.dataPage, Encoding.rleDictionary) > 0)
        #expect(pages(PageType.dataPage, Encoding.plain) > 0)
        try writer.close()
        let manifest = try file.write(in: directory).manifest
        let problems = try await checkWithReaders([manifest], in: directory)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }

    @Test("the seed's example event, as one row, reads the same in pyarrow and DuckDB")
    func seedEvent() async throws {
        let directory = try TemporaryDirectory(prefix: "parquet")
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        let path = directory.appending("seed.parquet").path
        let schema = ParquetSchema([
            .string("event_id"), .string("event_type"), .timestamp("timestamp"), .string("user_id"), .string("device_id"),
            .string("session_id", optional: true), .string("ip_address"), .string("content_id"), .string("content_type"),
            .string("title"), .stringList("genre"), .int64("duration_seconds"), .string("language"),
            .double("current_timestamp"), .string("schema_version"), .string("event_source"),
            .timestamp("received_at"), .json("extra", optional: true),
        ])
        let writer = try ParquetWriter(
            schema: schema, configuration: .init(keyValueMetadata: ["playhead.schema_version": "1.0"]),
            output: try ParquetFileOutput(path: path))
        try writer.column(0).append("content_analytics_event__123")
        try writer.column(1).append("play")
        try writer.column(2).append(Int64(1_742_913_045_123_000))  // 2025-03-25T14:30:45.123Z
        try writer.column(3).append("user_123")
        try writer.column(4).append("web_browser_xyz")
        try writer.column(5).append("sesssion_123")
        try writer.column(6).append("192.168.1.1")
        try writer.column(7).append("media_123")
        try writer.column(8).append("movie")
        try writer.column(9).append("Mr Robot")
        try writer.column(10).appendList(["thriller", "action"])
        try writer.column(11).append(Int64(8880))
        try writer.column(12).append("en")
        try writer.column(13).append(120.5)
        try writer.column(14).append("1.0")
        try writer.column(15).append("web_app")
        try writer.column(16).append(Int64(1_742_913_046_000_001))
        try writer.column(17).appendNull()
        try writer.endRow()
        let summary = try writer.close()
        #expect(summary.rows == 1)
        #expect(summary.rowGroups == 1)
        let script = """
            import json, sys, duckdb, pyarrow.parquet as pq
            path = sys.argv[1]
            def plain(v):
                if hasattr(v, "isoformat"):
                    return v.isoformat()
                return v
            table = pq.read_table(path)
            arrow = {k: plain(v) for k, v in table.to_pylist()[0].items()}
            con = duckdb.connect()
            con.execute("SET TimeZone = 'UTC'")
            cursor = con.execute(f"SELECT * FROM read_parquet('{path}')")
            names = [d[0] for d in cursor.description]
            duck = {k: plain(v) for k, v in zip(names, cursor.fetchall()[0])}
            meta = {k.decode(): v.decode() for k, v in pq.ParquetFile(path).metadata.metadata.items()}
            print(json.dumps({"arrow": arrow, "duckdb": duck, "types": {f.name: str(f.type) for f in table.schema}, "meta": meta}))
            """
        let output = try await runPython(script, arguments: [path])
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let expected: [String: Any] = [
            "event_id": "content_analytics_event__123", "event_type": "play", "timestamp": "2025-03-25T14:30:45.123000+00:00",
            "user_id": "user_123", "device_id": "web_browser_xyz", "session_id": "sesssion_123", "ip_address": "192.168.1.1",
            "content_id": "media_123", "content_type": "movie", "title": "Mr Robot", "genre": ["thriller", "action"],
            "duration_seconds": 8880, "language": "en", "current_timestamp": 120.5, "schema_version": "1.0",
            "event_source": "web_app", "received_at": "2025-03-25T14:30:46.000001+00:00", "extra": NSNull(),
        ]
        for reader in ["arrow", "duckdb"] {
            let row = try #require(decoded[reader] as? [String: Any])
            #expect(row.count == expected.count, "\(reader): \(row.keys.sorted())")
            for (key, value) in expected {
                #expect((row[key] as? NSObject) == (value as? NSObject), "\(reader).\(key): \(String(describing: row[key])) != \(value)")
            }
        }
        let types = try #require(decoded["types"] as? [String: String])
        #expect(types["timestamp"] == "timestamp[us, tz=UTC]")
        #expect(types["genre"] == "list<element: string not null>")
        #expect(types["duration_seconds"] == "int64")
        #expect(types["extra"] == "extension<arrow.json>")
        #expect((decoded["meta"] as? [String: String]) == ["playhead.schema_version": "1.0"])
    }
}

@Suite("Parquet writer errors")
struct WriterErrorTests {
    private func writer(_ columns: [ParquetColumn]) throws -> ParquetWriter {
        try ParquetWriter(schema: ParquetSchema(columns), output: ParquetByteBuffer())
    }

    private func code(_ body: () throws -> Void) -> ParquetError.Code? {
        do {
            try body()
            return nil
        } catch let error as ParquetError {
            return error.code
        } catch {
            return .io
        }
    }

    @Test("values that don't fit the schema are rejected and change nothing")
    func valuesThatDontFit() throws {
        let w = try writer([
            .int32("small", bitWidth: 8), .string("s"), .uuid("u"), .int32("u16", bitWidth: 16, signed: false),
            .stringList("l"), .boolean("b"),
        ])
        #expect(code { try w.column(0).append(Int32(128)) } == .valueDoesNotFitSchema)
        #expect(code { try w.column(0).append(Int64(-129)) } == .valueDoesNotFitSchema)
        #expect(code { try w.column(0).appendNull() } == .valueDoesNotFitSchema)
        #expect(code { try w.column(1).append(Int64(1)) } == .valueDoesNotFitSchema)
        #expect(code { try w.column(1).append(1.5) } == .valueDoesNotFitSchema)
        #expect(code { try w.column(2).append([UInt8](repeating: 0, count: 15)) } == .valueDoesNotFitSchema)
        #expect(code { try w.column(2).append(uuidString: "not-a-uuid") } == .valueDoesNotFitSchema)
        #expect(code { try w.column(3).append(Int32(-1)) } == .valueDoesNotFitSchema)
        #expect(code { try w.column(3).append(Int32(65536)) } == .valueDoesNotFitSchema)
        #expect(code { try w.column(4).append("element outside a list") } == .valueDoesNotFitSchema)
        #expect(code { try w.column(4).appendNullList() } == .valueDoesNotFitSchema)
        #expect(code { try w.column(5).append("true") } == .valueDoesNotFitSchema)
        for i in 0..<w.columnCount { #expect(w.column(i).rows == 0) }
        #expect(code { try w.column(0).append(Int32(-128)) } == nil)
        #expect(code { try w.column(3).append(Int32(65535)) } == nil)
        #expect(w.column(0).rows == 1)
        try w.column(4).appendList(count: 2)
        try w.column(4).append("a")
        #expect(code { try w.column(4).appendNull() } == .valueDoesNotFitSchema)
        #expect(code { try w.column(4).appendList(count: 1) } == .valueDoesNotFitSchema)
    }

    @Test("columns of different lengths are reported at endRows, flush and close")
    func lengthMismatch() throws {
        let w = try writer([.string("a"), .int64("b"), .stringList("c")])
        try w.column(0).append("x")
        try w.column(1).append(Int64(1))
        var caught: ParquetError?
        do { try w.endRows(1) } catch { caught = error }
        #expect(caught?.code == .columnLengthMismatch)
        #expect(caught?.message.contains("'c'") == true, "\(String(describing: caught))")
        #expect(code { try w.flushRowGroup() } == .columnLengthMismatch)
        try w.column(2).appendList(count: 2)
        try w.column(2).append("only one")
        #expect(code { try w.endRows(1) } == .columnLengthMismatch)
        try w.column(2).append("two")
        try w.endRows(1)
        try w.column(0).append("y")
        #expect(code { try w.close() } == .columnLengthMismatch)
    }

    @Test("writes after close are rejected")
    func writeAfterClose() throws {
        let output = ParquetByteBuffer()
        let w = try ParquetWriter(schema: ParquetSchema([.string("a")]), output: output)
        try w.column(0).append("x")
        try w.endRow()
        let summary = try w.close()
        #expect(summary.bytes == Int64(output.bytes.count))
        #expect(Array(output.bytes.prefix(4)) == Array("PAR1".utf8))
        #expect(Array(output.bytes.suffix(4)) == Array("PAR1".utf8))
        #expect(code { try w.column(0).append("y") } == .writeAfterClose)
        #expect(code { try w.endRow() } == .writeAfterClose)
        #expect(code { try w.flushRowGroup() } == .writeAfterClose)
        #expect(code { _ = try w.close() } == .writeAfterClose)
    }

    @Test("invalid schemas and configurations are rejected")
    func invalidSchemas() {
        #expect(code { _ = try writer([.string("a"), .int64("a")]) } == .invalidSchema)
        #expect(code { _ = try writer([.string("a").encoded(.deltaBinaryPacked)]) } == .invalidSchema)
        #expect(code { _ = try writer([.boolean("a").encoded(.dictionary)]) } == .invalidSchema)
        #expect(code { _ = try writer([.fixedBytes("a", length: 0)]) } == .invalidSchema)
        #expect(code { _ = try writer([.int32("a", bitWidth: 12)]) } == .invalidSchema)
        #expect(code {
            _ = try ParquetWriter(
                schema: ParquetSchema([.string("a")]), configuration: .init(rowGroupRows: 0), output: ParquetByteBuffer())
        } == .invalidArgument)
    }

    @Test("output errors surface as io errors")
    func outputErrors() throws {
        struct Failing: ParquetOutput {
            var allowed: Int
            mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
                if allowed <= 0 { throw TestSupportError("disk full") }
                allowed -= 1
            }
        }
        let w = try ParquetWriter(schema: ParquetSchema([.string("a")]), output: Failing(allowed: 1))
        try w.column(0).append("x")
        try w.endRow()
        #expect(code { try w.flushRowGroup() } == .io)
        #expect(code { try w.flushRowGroup() } == .writeAfterClose)
        #expect(code { _ = try ParquetFileOutput(path: "/nonexistent-dir/x.parquet") } == .io)
    }
}

@Suite("Parquet encoders (known answers from Encodings.md and the Thrift spec)")
struct EncoderTests {
    @Test("RLE / bit-packed hybrid")
    func rleHybrid() {
        let out = ByteSink()
        [UInt8](repeating: 0, count: 8).withUnsafeBufferPointer { RLEHybrid.encode($0, bitWidth: 1, into: out) }
        #expect(out.array == [0x10, 0x00])
        out.removeAll()
        [UInt8](0...7).withUnsafeBufferPointer { RLEHybrid.encode($0, bitWidth: 3, into: out) }
        #expect(out.array == [0x03, 0x88, 0xC6, 0xFA])
        out.removeAll()
        // One bit-packed group, then a run of 10 twos, bit width 2.
        ([1, 2, 3, 1, 2, 3, 1, 2] + [UInt8](repeating: 2, count: 10)).withUnsafeBufferPointer { RLEHybrid.encode($0, bitWidth: 2, into: out) }
        #expect(out.array == [0x03, 0x79, 0x9E, 0x14, 0x02])
        out.removeAll()
        [UInt32](repeating: 300, count: 20).withUnsafeBufferPointer { RLEHybrid.encode($0, bitWidth: 9, into: out) }
        #expect(out.array == [40, 0x2C, 0x01])
    }

    @Test("DELTA_BINARY_PACKED")
    func deltaBinaryPacked() {
        var encoder = DeltaBinaryPackedEncoder()
        let out = ByteSink()
        [Int64(1), 2, 3, 4, 5].withUnsafeBufferPointer { encoder.encode($0, into: out) }
        #expect(out.array == [0x80, 0x01, 0x04, 0x05, 0x02, 0x02, 0, 0, 0, 0])
        out.removeAll()
        [Int32(7), 5, 3, 1, 2, 3, 4, 5].withUnsafeBufferPointer { encoder.encode($0, into: out) }
        #expect(out.array == [0x80, 0x01, 0x04, 0x08, 0x0E, 0x03, 2, 0, 0, 0, 0xC0, 0x3F, 0, 0, 0, 0, 0, 0])
        out.removeAll()
        [Int64.min, Int64.max].withUnsafeBufferPointer { encoder.encode($0, into: out) }
        // first value zigzag(Int64.min) = UInt64.max; one delta of -1 (wrapping): min delta -1, width 0.
        #expect(out.array == [0x80, 0x01, 0x04, 0x02] + [UInt8](repeating: 0xFF, count: 9) + [0x01, 0x01, 0, 0, 0, 0])
    }

    @Test("Thrift compact protocol")
    func thrift() {
        let out = ByteSink()
        var w = ThriftCompactWriter(into: out)
        w.beginStructValue()
        w.field(1, i32: -1)
        w.field(2, bool: true)
        w.field(20, i64: 150)
        w.beginList(21, .binary, count: 1)
        w.element(string: "ab")
        w.beginStruct(22)
        w.emptyStruct(1)
        w.endStruct()
        w.endStruct()
        #expect(out.array == [0x15, 0x01, 0x11, 0x06, 0x28, 0xAC, 0x02, 0x19, 0x18, 0x02, 0x61, 0x62, 0x1C, 0x1C, 0x00, 0x00, 0x00])
    }

    @Test("BYTE_ARRAY statistics use unsigned byte order")
    func unsignedOrder() {
        let a: [UInt8] = [0x7F]
        let b: [UInt8] = [0x80]
        let c: [UInt8] = [0x80, 0x00]
        #expect(compareBytes(a, 1, b, 1) < 0)
        #expect(compareBytes(b, 1, c, 2) < 0)
        #expect(compareBytes(c, 2, c, 2) == 0)
    }
}
