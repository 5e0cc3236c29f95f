import Foundation
import Parquet
import PlayheadTestSupport

/// Generates random columns: values of every kind with nulls, empty and non-ASCII strings, long
/// strings, empty and null lists, repetitive and sorted runs (to exercise dictionary and delta).
struct RandomData {
    var rng: SeededRandom

    init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }

    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &rng)] }

    private static let alphabet: [Character] = Array("abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789-_./:") + ["é", "ß", "日", "本", "語", "🎬", "ü", "\u{0}", "\n", "\"", "\\", "Ω"]

    mutating func text(maxLength: Int) -> String {
        let length = Int.random(in: 0...maxLength, using: &rng)
        return String((0..<length).map { _ in pick(Self.alphabet) })
    }

    mutating func bytes(_ length: Int) -> [UInt8] { (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) } }

    enum Shape: CaseIterable { case random, repetitive, sorted }

    /// A non-null leaf value of `kind`; `i` is the value's position (for sorted shapes).
    mutating func leaf(_ kind: Kind, shape: Shape, pool: inout [TestValue], i: Int) -> TestValue {
        if shape == .repetitive {
            if pool.isEmpty || (pool.count < 20 && chance(0.05)) {
                pool.append(leaf(kind, shape: .random, pool: &pool, i: i))
            }
            return pick(pool)
        }
        let sorted = shape == .sorted
        switch kind {
        case .string:
            if chance(0.01) { return .text(text(maxLength: 20_000)) }
            return .text(pick(["", "play", "pause", "naïve café", "日本語のタイトル", "🎬🍿"]) + (sorted ? String(format: "%08d", i) : text(maxLength: 24)))
        case .json:
            return .text("{\"n\":\(Int.random(in: -1000...1000, using: &rng)),\"s\":\(jsonString(text(maxLength: 12)))}")
        case .binary:
            return .bytes(bytes(Int.random(in: 0...(chance(0.02) ? 5000 : 40), using: &rng)))
        case .fixed:
            return .bytes(bytes(Kind.fixedLength))
        case .uuid:
            return .bytes(bytes(16))
        case .int64:
            if sorted { return .int(1_700_000_000_000 + Int64(i) * 37 + Int64.random(in: 0...5, using: &rng)) }
            return .int(chance(0.3) ? Int64.random(in: Int64.min...Int64.max, using: &rng) : Int64.random(in: -1000...1000, using: &rng))
        case .uint64:
            return .uint(UInt64.random(in: 0...UInt64.max, using: &rng))
        case .int8: return .int(Int64.random(in: -128...127, using: &rng))
        case .uint8: return .int(Int64.random(in: 0...255, using: &rng))
        case .int16: return .int(Int64.random(in: -32768...32767, using: &rng))
        case .uint16: return .int(Int64.random(in: 0...65535, using: &rng))
        case .int32:
            if sorted { return .int(Int64(i) * 3 - 1000) }
            return .int(Int64.random(in: Int64(Int32.min)...Int64(Int32.max), using: &rng))
        case .uint32: return .int(Int64.random(in: 0...Int64(UInt32.max), using: &rng))
        case .double:
            if chance(0.1) { return .double(pick([0.0, -0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -1.5])) }
            return .double(Double.random(in: -1e6...1e6, using: &rng))
        case .float:
            if chance(0.1) { return .float(pick([Float(0), -0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, 3.25])) }
            return .float(Float.random(in: -1e4...1e4, using: &rng))
        case .bool:
            return .bool(chance(0.5))
        case .date:
            if sorted { return .int(19_000 + Int64(i / 100)) }
            return .int(Int64.random(in: -100_000...100_000, using: &rng))
        case .timestampMs:
            if sorted { return .int(1_700_000_000_000 + Int64(i) * 250 + Int64.random(in: 0...100, using: &rng)) }
            return .int(Int64.random(in: -2_000_000_000_000...4_000_000_000_000, using: &rng))
        case .timestampUs:
            if sorted { return .int(1_700_000_000_000_000 + Int64(i) * 250_000 + Int64.random(in: 0...1000, using: &rng)) }
            return .int(Int64.random(in: -2_000_000_000_000_000...4_000_000_000_000_000, using: &rng))
        case .timestampNs:
            if sorted { return .int(1_700_000_000_000_000_000 + Int64(i) * 250_000_001) }
            return .int(Int64.random(in: -2_000_000_000_000_000_000...4_000_000_000_000_000_000, using: &rng))
        }
    }

    /// A random column of `rows` values.
    mutating func column(_ name: String, rows: Int, kind: Kind? = nil, list: Bool? = nil) -> TestColumn {
        let kind = kind ?? pick(Kind.allCases)
        let isList = list ?? chance(0.25)
        let optional = chance(0.6)
        let elementOptional = chance(0.5)
        let nullRate = optional ? pick([0.0, 0.1, 0.5, 1.0]) : 0
        let shape = pick(Shape.allCases)
        var pool: [TestValue] = []
        var values: [TestValue] = []
        var position = 0
        for _ in 0..<rows {
            if optional && chance(nullRate) {
                values.append(.null)
                continue
            }
            if isList {
                var items: [TestValue] = []
                for _ in 0..<Int.random(in: 0...4, using: &rng) {
                    if elementOptional && chance(0.2) {
                        items.append(.null)
                    } else {
                        items.append(leaf(kind, shape: shape, pool: &pool, i: position))
                        position += 1
                    }
                }
                values.append(.list(items))
            } else {
                values.append(leaf(kind, shape: shape, pool: &pool, i: position))
                position += 1
            }
        }
        var column = kind.column(isList ? "element" : name, optional: isList ? elementOptional : optional)
        if isList { column = .list(name, of: column, optional: optional) }
        var encodings: [String]? = nil
        let choices: [ParquetEncodingChoice] = kind == .bool ? [.automatic, .plain]
            : kind.isInteger ? [.automatic, .plain, .dictionary, .deltaBinaryPacked] : [.automatic, .plain, .dictionary]
        let encoding = pick(choices)
        column.encoding = encoding
        let levels = column.optional || isList
        switch encoding {
        case .plain: encodings = ["PLAIN"] + (levels ? ["RLE"] : [])
        case .deltaBinaryPacked: encodings = ["DELTA_BINARY_PACKED"] + (levels ? ["RLE"] : [])
        case .dictionary, .automatic: encodings = nil
        }
        return TestColumn(kind: kind, column: column, values: values, encodings: encodings)
    }

    /// A random file: random columns, row count, batches, and configuration.
    mutating func file(_ name: String) -> TestFile {
        let rows = pick([0, 1, 2, 7, 100, 1000, 3000])
        let columns = (0..<Int.random(in: 1...7, using: &rng)).map { column("c\($0)", rows: rows) }
        var configuration = ParquetWriterConfiguration(statisticsMaxValueBytes: 1 << 30)
        configuration.compression = pick([.zstd(level: 1), .zstd(level: 3), .uncompressed, .snappy, .zstd(level: -5)])
        configuration.pageBytes = pick([1 << 20, 4096, 300])
        configuration.rowGroupRows = pick([1_000_000, 500, 64])
        configuration.dictionaryPageLimitBytes = pick([1 << 20, 2000, 64])
        if chance(0.3) { configuration.keyValueMetadata = ["seed": name, "note": "héllo"] }
        var batches: [Int] = []
        var total = 0
        while total < rows && chance(0.7) {
            let size = Int.random(in: 1...max(1, rows / 3), using: &rng)
            batches.append(size)
            total += size
        }
        let flushAfter = Set(batches.indices.filter { _ in chance(0.3) })
        return TestFile(name: name, columns: columns, rows: rows, configuration: configuration, batches: batches, flushAfter: flushAfter)
    }
}
