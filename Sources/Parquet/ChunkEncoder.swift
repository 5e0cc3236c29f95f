/// Parquet's encoding and page type numbers (parquet.thrift).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

enum Encoding: Int32, Comparable {
    case plain = 0
    case rle = 3
    case deltaBinaryPacked = 5
    case rleDictionary = 8

    static func < (a: Encoding, b: Encoding) -> Bool { a.rawValue < b.rawValue }

    var name: String {
        switch self {
        case .plain: "PLAIN"
        case .rle: "RLE"
        case .deltaBinaryPacked: "DELTA_BINARY_PACKED"
        case .rleDictionary: "RLE_DICTIONARY"
        }
    }
}

enum PageType: Int32 {
    case dataPage = 0
    case dictionaryPage = 2
}

/// The metadata of one written column chunk; offsets relative to the chunk's start.
struct ChunkMetadata {
    var encodings: [Encoding]
    var numValues: Int64
    var uncompressedBytes: Int64
    var compressedBytes: Int64
    var dictionaryPageOffset: Int64?
    var dataPageOffset: Int64
    var nullCount: Int64
    var minValue: [UInt8]?
    var maxValue: [UInt8]?
    /// (page type, encoding, count)
    var encodingStats: [(PageType, Encoding, Int32)]
}

/// Scratch shared by all columns of a writer: page buffers, the compressor, index buffers.
final class EncodingContext {
    let configuration: ParquetWriterConfiguration
    let compressor: PageCompressor
    let page = ByteSink(capacity: 1 << 20)
    let header = ByteSink(capacity: 256)
    /// The dictionary page (header + body) of the chunk being encoded.
    let dictionaryChunk = ByteSink(capacity: 1 << 16)
    /// The data pages (headers + bodies) of the chunk being encoded.
    let dataChunk = ByteSink(capacity: 1 << 20)
    @exclusivity(unchecked) private var indexBuffer = UnsafeMutablePointer<UInt32>.allocate(capacity: 1024)
    @exclusivity(unchecked) private var indexCapacity = 1024
    @exclusivity(unchecked) var delta = DeltaBinaryPackedEncoder()
    let sample = ByteSink(capacity: 1 << 16)

    init(configuration: ParquetWriterConfiguration) throws(ParquetError) {
        self.configuration = configuration
        compressor = try PageCompressor(configuration.compression)
    }

    deinit { indexBuffer.deallocate() }

    /// Scratch for `n` dictionary indexes.
    func indexStorage(_ n: Int) -> UnsafeMutablePointer<UInt32> {
        if n > indexCapacity {
            indexBuffer.deallocate()
            indexCapacity = max(n, indexCapacity * 2)
            indexBuffer = .allocate(capacity: indexCapacity)
        }
        return indexBuffer
    }
}

/// One page's slice of a column's buffers.
struct PageSlice {
    var levels: Range<Int>
    var values: Range<Int>
}

enum ValueMode {
    case plain
    case dictionary
    case delta
}

extension ParquetColumnWriter {
    /// The level and value positions after `rows` more rows starting at `levelStart`/`valueStart`.
    func advance(levelStart: Int, valueStart: Int, rows: Int) -> (levelEnd: Int, valueEnd: Int) {
        if isList {
            return repetitionLevels.withUnsafeBufferPointer { rep in
                definitionLevels.withUnsafeBufferPointer { def in
                    var l = levelStart
                    var v = valueStart
                    var seen = 0
                    while l < rep.count {
                        if rep[l] == 0 {
                            if seen == rows { break }
                            seen += 1
                        }
                        if def[l] == maxDefinitionLevel { v += 1 }
                        l += 1
                    }
                    return (l, v)
                }
            }
        }
        if maxDefinitionLevel > 0 {
            let levelEnd = levelStart + rows
            var v = valueStart
            definitionLevels.withUnsafeBufferPointer { def in
                for l in levelStart..<levelEnd where def[l] != 0 { v += 1 }
            }
            return (levelEnd, v)
        }
        return (levelStart + rows, valueStart + rows)
    }

    /// The PLAIN size of value `i`.
    @inline(__always)
    private func plainSize(_ i: Int, _ ends: UnsafeBufferPointer<UInt32>) -> Int {
        switch physicalType {
        case .byteArray:
            let start = i == 0 ? 0 : Int(ends[i - 1])
            return Int(ends[i]) - start + 4
        case .boolean: return 1
        default: return fixedLength > 0 ? fixedLength : (physicalType.fixedWidth ?? 1)
        }
    }

    /// Splits a chunk into pages of about `pageBytes` (PLAIN size), each starting at a row boundary.
    func pageSlices(levels: Range<Int>, values: Range<Int>, pageBytes: Int) -> [PageSlice] {
        var slices: [PageSlice] = []
        let hasLevels = maxDefinitionLevel > 0 || isList
        if !hasLevels && physicalType != .byteArray {
            let width = physicalType == .boolean ? 1 : (physicalType.fixedWidth ?? 1)
            let perPage = max(1, pageBytes / width)
            var start = values.lowerBound
            while start < values.upperBound {
                let end = min(values.upperBound, start + perPage)
                slices.append(PageSlice(levels: start..<end, values: start..<end))
                start = end
            }
            return slices
        }
        if !hasLevels {
            ends.withUnsafeBufferPointer { ends in
                var pageStart = values.lowerBound
                var previousEnd = pageStart == 0 ? 0 : Int(ends[pageStart - 1])
                var accumulated = 0
                for i in values {
                    let end = Int(ends[i])
                    accumulated += end - previousEnd + 4
                    previousEnd = end
                    if accumulated >= pageBytes {
                        slices.append(PageSlice(levels: pageStart..<(i + 1), values: pageStart..<(i + 1)))
                        pageStart = i + 1
                        accumulated = 0
                    }
                }
                if pageStart < values.upperBound {
                    slices.append(PageSlice(levels: pageStart..<values.upperBound, values: pageStart..<values.upperBound))
                }
            }
            return slices
        }
        ends.withUnsafeBufferPointer { ends in
            repetitionLevels.withUnsafeBufferPointer { rep in
                definitionLevels.withUnsafeBufferPointer { def in
                    var pageLevel = levels.lowerBound
                    var pageValue = values.lowerBound
                    var v = values.lowerBound
                    var accumulated = 0
                    for l in levels {
                        let rowStart = !isList || rep[l] == 0
                        if rowStart && accumulated >= pageBytes && l > pageLevel {
                            slices.append(PageSlice(levels: pageLevel..<l, values: pageValue..<v))
                            pageLevel = l
                            pageValue = v
                            accumulated = 0
                        }
                        if !hasLevels || def[l] == maxDefinitionLevel {
                            accumulated += plainSize(v, ends)
                            v += 1
                        } else {
                            accumulated += 1
                        }
                    }
                    if levels.upperBound > pageLevel {
                        slices.append(PageSlice(levels: pageLevel..<levels.upperBound, values: pageValue..<v))
                    }
                }
            }
        }
        return slices
    }

    // MARK: Choosing an encoding

    func chooseMode(values: Range<Int>, context: EncodingContext) -> ValueMode {
        switch column.encoding {
        case .plain: return .plain
        case .dictionary: return .dictionary
        case .deltaBinaryPacked: return .delta
        case .automatic: break
        }
        if physicalType == .boolean || values.isEmpty { return .plain }
        let limit = context.configuration.dictionaryPageLimitBytes
        switch physicalType {
        case .byteArray, .fixedLenByteArray:
            // Dictionary (with its PLAIN fallback) unless a sample says the values are unique.
            let sample = values.lowerBound..<min(values.upperBound, values.lowerBound + 4096)
            let dictionary = bytesDictionary
            dictionary.reset()
            forEachBytes(sample) { p, count in
                var isNew = false
                _ = dictionary.index(of: p, count: count, isNew: &isNew)
            }
            let distinct = dictionary.count
            dictionary.reset()
            // All distinct (ids, UUIDs): a dictionary would only grow to its limit and fall back.
            return distinct == sample.count && sample.count >= 64 ? .plain : .dictionary
        default:
            // Numbers: measured on a prefix of up to 64 Ki values. A dictionary when its estimate is the
            // smallest (and it fits its limit on the prefix), DELTA_BINARY_PACKED for integers when it
            // beats PLAIN, else PLAIN.
            let width = physicalType.fixedWidth!
            let sample = values.lowerBound..<min(values.upperBound, values.lowerBound + 65536)
            let dictionary = wordDictionary
            dictionary.reset()
            var fits = true
            forEachWord(sample) { word in
                guard fits else { return }
                var isNew = false
                _ = dictionary.index(of: word, isNew: &isNew)
                if isNew && dictionary.count * width > limit { fits = false }
            }
            let distinct = dictionary.count
            dictionary.reset()
            let n = values.count
            let scale = Double(n) / Double(sample.count)
            // Distinct values keep appearing past the prefix, at most in proportion.
            let distinctEstimate = min(n, Int(Double(distinct) * (distinct * 10 > sample.count * 9 ? scale : max(1, scale.squareRoot()))))
            let indexBits = max(1, bitsNeeded(UInt64(max(distinctEstimate - 1, 0))))
            let dictionaryBytes = fits && distinctEstimate * width <= limit
                ? distinctEstimate * width + (n * indexBits + 7) / 8 : Int.max
            let plainBytes = n * width
            var deltaBytes = Int.max
            if physicalType == .int32 || physicalType == .int64 {
                context.sample.removeAll()
                if physicalType == .int32 {
                    int32s.withUnsafeBufferPointer { context.delta.encode(UnsafeBufferPointer(rebasing: $0[sample]), into: context.sample) }
                } else {
                    int64s.withUnsafeBufferPointer { context.delta.encode(UnsafeBufferPointer(rebasing: $0[sample]), into: context.sample) }
                }
                deltaBytes = Int(Double(context.sample.count) * scale)
            }
            if dictionaryBytes != Int.max && dictionaryBytes <= deltaBytes && dictionaryBytes * 4 < plainBytes * 3 { return .dictionary }
            return deltaBytes != Int.max && deltaBytes * 4 < plainBytes * 3 ? .delta : .plain
        }
    }

    @inline(__always)
    func forEachBytes(_ range: Range<Int>, _ body: (UnsafeRawPointer, Int) -> Void) {
        let base = UnsafeRawPointer(bytes.base)
        if physicalType == .byteArray {
            ends.withUnsafeBufferPointer { ends in
                for i in range {
                    let start = i == 0 ? 0 : Int(ends[i - 1])
                    body(base + start, Int(ends[i]) - start)
                }
            }
        } else {
            for i in range { body(base + i * fixedLength, fixedLength) }
        }
    }

    @inline(__always)
    func forEachWord(_ range: Range<Int>, _ body: (UInt64) -> Void) {
        switch physicalType {
        case .int32: int32s.withUnsafeBufferPointer { for i in range { body(UInt64(UInt32(bitPattern: $0[i]))) } }
        case .int64: int64s.withUnsafeBufferPointer { for i in range { body(UInt64(bitPattern: $0[i])) } }
        case .float: floats.withUnsafeBufferPointer { for i in range { body(UInt64($0[i].bitPattern)) } }
        case .double: doubles.withUnsafeBufferPointer { for i in range { body($0[i].bitPattern) } }
        default: break
        }
    }

    // MARK: Writing a chunk

    /// Encodes the chunk's pages into `context.dictionaryChunk` and `context.dataChunk`.
    func encodeChunk(levels: Range<Int>, values: Range<Int>, context: EncodingContext) throws(ParquetError) -> ChunkMetadata {
        let configuration = context.configuration
        context.dictionaryChunk.removeAll()
        context.dataChunk.removeAll()
        var mode = chooseMode(values: values, context: context)
        if mode == .dictionary {
            if physicalType == .byteArray || fixedLength > 0 { bytesDictionary.reset() } else { wordDictionary.reset() }
        }
        let usesDictionary = mode == .dictionary
        var statistics = ChunkStatistics()
        var uncompressed: Int64 = 0
        var compressed: Int64 = 0
        var pageCounts: [Encoding: Int32] = [:]
        var encodings: Set<Encoding> = []
        let slices = pageSlices(levels: levels, values: values, pageBytes: configuration.pageBytes)
        var nullCount: Int64 = 0
        for slice in slices {
            let page = context.page
            page.removeAll()
            if isList {
                repetitionLevels.withUnsafeBufferPointer {
                    RLEHybrid.encodeLevels(UnsafeBufferPointer(rebasing: $0[slice.levels]), maxLevel: Int(maxRepetitionLevel), into: page)
                }
            }
            if maxDefinitionLevel > 0 {
                definitionLevels.withUnsafeBufferPointer {
                    RLEHybrid.encodeLevels(UnsafeBufferPointer(rebasing: $0[slice.levels]), maxLevel: Int(maxDefinitionLevel), into: page)
                }
                encodings.insert(.rle)
            }
            nullCount += Int64(slice.levels.count - slice.values.count)
            let encoding: Encoding
            switch mode {
            case .plain:
                encodePlain(slice.values, into: page, statistics: &statistics, configuration: configuration)
                encoding = .plain
            case .delta:
                if physicalType == .int32 {
                    int32s.withUnsafeBufferPointer { context.delta.encode(UnsafeBufferPointer(rebasing: $0[slice.values]), into: page) }
                } else {
                    int64s.withUnsafeBufferPointer { context.delta.encode(UnsafeBufferPointer(rebasing: $0[slice.values]), into: page) }
                }
                encoding = .deltaBinaryPacked
            case .dictionary:
                encodeDictionaryIndices(slice.values, into: page, context: context, statistics: &statistics, configuration: configuration)
                encoding = .rleDictionary
                let dictionaryBytes = physicalType == .byteArray || fixedLength > 0
                    ? bytesDictionary.plainBytes : wordDictionary.count * (physicalType.fixedWidth ?? 8)
                if dictionaryBytes > configuration.dictionaryPageLimitBytes { mode = .plain }
            }
            encodings.insert(encoding)
            pageCounts[encoding, default: 0] += 1
            let (u, c) = try writePage(
                type: .dataPage, numValues: slice.levels.count, encoding: encoding, body: page,
                into: context.dataChunk, context: context)
            uncompressed += u
            compressed += c
        }
        if physicalType != .byteArray && fixedLength == 0 {
            computeNumericStatistics(values, &statistics)
        }
        var dictionaryPageOffset: Int64? = nil
        var encodingStats: [(PageType, Encoding, Int32)] = []
        if usesDictionary {
            let page = context.page
            page.removeAll()
            let entries: Int
            if physicalType == .byteArray || fixedLength > 0 {
                bytesDictionary.writePlain(into: page)
                entries = bytesDictionary.count
            } else {
                writePlainWords(wordDictionary.values, into: page)
                entries = wordDictionary.count
            }
            let (u, c) = try writePage(
                type: .dictionaryPage, numValues: entries, encoding: .plain, body: page,
                into: context.dictionaryChunk, context: context)
            uncompressed += u
            compressed += c
            dictionaryPageOffset = 0
            encodings.insert(.plain)
            encodingStats.append((.dictionaryPage, .plain, 1))
        }
        for (encoding, count) in pageCounts.sorted(by: { $0.key < $1.key }) {
            encodingStats.append((.dataPage, encoding, count))
        }
        if encodings.isEmpty { encodings.insert(.plain) }
        let (minValue, maxValue) = statistics.encoded(column: self, limit: configuration.statisticsMaxValueBytes)
        return ChunkMetadata(
            encodings: encodings.sorted(), numValues: Int64(levels.count), uncompressedBytes: uncompressed,
            compressedBytes: compressed, dictionaryPageOffset: dictionaryPageOffset,
            dataPageOffset: Int64(context.dictionaryChunk.count), nullCount: nullCount,
            minValue: minValue, maxValue: maxValue, encodingStats: encodingStats)
    }

    /// Compresses a page and appends its header and body to `chunk`; returns (uncompressed, compressed)
    /// sizes including the header.
    private func writePage(
        type: PageType, numValues: Int, encoding: Encoding, body: ByteSink, into chunk: ByteSink, context: EncodingContext
    ) throws(ParquetError) -> (Int64, Int64) {
        guard body.count < Int(Int32.max) else {
            throw ParquetError(.tooLarge, "column '\(column.name)': a page of \(body.count) bytes is larger than 2 GiB")
        }
        let compressedBody = try context.compressor.compress(body)
        let header = context.header
        header.removeAll()
        var thrift = ThriftCompactWriter(into: header)
        thrift.beginStructValue()
        thrift.field(1, i32: type.rawValue)
        thrift.field(2, i32: Int32(body.count))
        thrift.field(3, i32: Int32(compressedBody.count))
        switch type {
        case .dataPage:
            thrift.beginStruct(5)
            thrift.field(1, i32: Int32(numValues))
            thrift.field(2, i32: encoding.rawValue)
            thrift.field(3, i32: Encoding.rle.rawValue)
            thrift.field(4, i32: Encoding.rle.rawValue)
            thrift.endStruct()
        case .dictionaryPage:
            thrift.beginStruct(7)
            thrift.field(1, i32: Int32(numValues))
            thrift.field(2, i32: Encoding.plain.rawValue)
            thrift.endStruct()
        }
        thrift.endStruct()
        chunk.append(header)
        chunk.append(compressedBody)
        return (Int64(header.count + body.count), Int64(header.count + compressedBody.count))
    }

    private func writePlainWords(_ words: [UInt64], into page: ByteSink) {
        switch physicalType {
        case .int32, .float:
            page.reserve(words.count * 4)
            for w in words { page.appendLittleEndian(UInt32(truncatingIfNeeded: w)) }
        default:
            page.reserve(words.count * 8)
            for w in words { page.appendLittleEndian(w) }
        }
    }

    private func encodePlain(
        _ range: Range<Int>, into page: ByteSink, statistics: inout ChunkStatistics, configuration: ParquetWriterConfiguration
    ) {
        switch physicalType {
        case .boolean:
            booleans.withUnsafeBufferPointer { encodePlainBooleans(UnsafeBufferPointer(rebasing: $0[range]), into: page) }
        case .int32:
            int32s.withUnsafeBytes { page.append(UnsafeRawBufferPointer(rebasing: $0[(range.lowerBound * 4)..<(range.upperBound * 4)])) }
        case .int64:
            int64s.withUnsafeBytes { page.append(UnsafeRawBufferPointer(rebasing: $0[(range.lowerBound * 8)..<(range.upperBound * 8)])) }
        case .float:
            floats.withUnsafeBytes { page.append(UnsafeRawBufferPointer(rebasing: $0[(range.lowerBound * 4)..<(range.upperBound * 4)])) }
        case .double:
            doubles.withUnsafeBytes { page.append(UnsafeRawBufferPointer(rebasing: $0[(range.lowerBound * 8)..<(range.upperBound * 8)])) }
        case .fixedLenByteArray(let length):
            page.append(UnsafeRawPointer(bytes.base + range.lowerBound * length), count: range.count * length)
            if configuration.writeStatistics { observeRange(range, &statistics) }
        case .byteArray:
            let base = UnsafeRawPointer(bytes.base)
            ends.withUnsafeBufferPointer { ends in
                guard !range.isEmpty else { return }
                let first = range.lowerBound == 0 ? 0 : Int(ends[range.lowerBound - 1])
                page.reserve(Int(ends[range.upperBound - 1]) - first + 4 * range.count)
                var start = first
                for i in range {
                    let end = Int(ends[i])
                    page.appendLittleEndian(UInt32(end - start))
                    page.append(base + start, count: end - start)
                    start = end
                }
            }
            if configuration.writeStatistics { observeRange(range, &statistics) }
        }
    }

    /// Folds values `range` of a byte-string column into the min/max (unsigned byte order).
    private func observeRange(_ range: Range<Int>, _ statistics: inout ChunkStatistics) {
        guard !range.isEmpty else { return }
        if statistics.minIndex < 0 {
            statistics.minIndex = range.lowerBound
            statistics.maxIndex = range.lowerBound
        }
        let base = UnsafeRawPointer(bytes.base)
        var minIndex = statistics.minIndex
        var maxIndex = statistics.maxIndex
        if physicalType == .byteArray {
            ends.withUnsafeBufferPointer { ends in
                @inline(__always) func start(_ i: Int) -> Int { i == 0 ? 0 : Int(ends[i - 1]) }
                var minStart = start(minIndex)
                var minLength = Int(ends[minIndex]) - minStart
                var maxStart = start(maxIndex)
                var maxLength = Int(ends[maxIndex]) - maxStart
                var valueStart = start(range.lowerBound)
                for i in range {
                    let end = Int(ends[i])
                    let length = end - valueStart
                    if compareBytes(base + valueStart, length, base + minStart, minLength) < 0 {
                        minIndex = i
                        minStart = valueStart
                        minLength = length
                    } else if compareBytes(base + valueStart, length, base + maxStart, maxLength) > 0 {
                        maxIndex = i
                        maxStart = valueStart
                        maxLength = length
                    }
                    valueStart = end
                }
            }
        } else {
            let length = fixedLength
            for i in range {
                let value = base + i * length
                if memcmp(value, base + minIndex * length, length) < 0 {
                    minIndex = i
                } else if memcmp(value, base + maxIndex * length, length) > 0 {
                    maxIndex = i
                }
            }
        }
        statistics.minIndex = minIndex
        statistics.maxIndex = maxIndex
    }

    private func encodeDictionaryIndices(
        _ range: Range<Int>, into page: ByteSink, context: EncodingContext, statistics: inout ChunkStatistics,
        configuration: ParquetWriterConfiguration
    ) {
        let indices = context.indexStorage(range.count)
        var k = 0
        let collectStatistics = configuration.writeStatistics
        switch physicalType {
        case .byteArray, .fixedLenByteArray:
            let dictionary = bytesDictionary
            var i = range.lowerBound
            // Sorted data repeats a value row after row: the same bytes as the previous value get its
            // index without hashing.
            var previous: (p: UnsafeRawPointer, n: Int, index: UInt32)?
            forEachBytes(range) { p, n in
                if let last = previous, last.n == n, bytesEqual(last.p, p, n) {
                    indices[k] = last.index
                } else {
                    var isNew = false
                    indices[k] = dictionary.index(of: p, count: n, isNew: &isNew)
                    if isNew && collectStatistics { statistics.observeBytes(i, self) }
                    previous = (p, n, indices[k])
                }
                k += 1
                i += 1
            }
        default:
            let dictionary = wordDictionary
            var previous: (word: UInt64, index: UInt32)?
            forEachWord(range) { word in
                if let last = previous, last.word == word {
                    indices[k] = last.index
                } else {
                    var isNew = false
                    indices[k] = dictionary.index(of: word, isNew: &isNew)
                    previous = (word, indices[k])
                }
                k += 1
            }
        }
        let entries = physicalType == .byteArray || fixedLength > 0 ? bytesDictionary.count : wordDictionary.count
        let bitWidth = max(1, bitsNeeded(UInt64(max(entries - 1, 0))))
        page.append(byte: UInt8(bitWidth))
        RLEHybrid.encode(UnsafeBufferPointer(start: indices, count: k), bitWidth: bitWidth, into: page)
    }

    private func computeNumericStatistics(_ range: Range<Int>, _ statistics: inout ChunkStatistics) {
        guard !range.isEmpty else { return }
        switch physicalType {
        case .boolean:
            var sawFalse = false
            var sawTrue = false
            booleans.withUnsafeBufferPointer { for i in range { if $0[i] { sawTrue = true } else { sawFalse = true } } }
            statistics.minWord = sawFalse ? 0 : 1
            statistics.maxWord = sawTrue ? 1 : 0
        case .int32:
            int32s.withUnsafeBufferPointer { values in
                if unsignedOrder {
                    var lo = UInt32.max
                    var hi = UInt32.min
                    for i in range {
                        let v = UInt32(bitPattern: values[i])
                        lo = min(lo, v)
                        hi = max(hi, v)
                    }
                    statistics.minWord = UInt64(lo)
                    statistics.maxWord = UInt64(hi)
                } else {
                    var lo = Int32.max
                    var hi = Int32.min
                    for i in range {
                        lo = min(lo, values[i])
                        hi = max(hi, values[i])
                    }
                    statistics.minWord = UInt64(UInt32(bitPattern: lo))
                    statistics.maxWord = UInt64(UInt32(bitPattern: hi))
                }
            }
        case .int64:
            int64s.withUnsafeBufferPointer { values in
                if unsignedOrder {
                    var lo = UInt64.max
                    var hi = UInt64.min
                    for i in range {
                        let v = UInt64(bitPattern: values[i])
                        lo = min(lo, v)
                        hi = max(hi, v)
                    }
                    statistics.minWord = lo
                    statistics.maxWord = hi
                } else {
                    var lo = Int64.max
                    var hi = Int64.min
                    for i in range {
                        lo = min(lo, values[i])
                        hi = max(hi, values[i])
                    }
                    statistics.minWord = UInt64(bitPattern: lo)
                    statistics.maxWord = UInt64(bitPattern: hi)
                }
            }
        case .float:
            floats.withUnsafeBufferPointer { values in
                var lo = Float.infinity
                var hi = -Float.infinity
                var any = false
                for i in range where !values[i].isNaN {
                    lo = min(lo, values[i])
                    hi = max(hi, values[i])
                    any = true
                }
                guard any else { return }
                if lo == 0 { lo = -0.0 }
                if hi == 0 { hi = 0.0 }
                statistics.minWord = UInt64(lo.bitPattern)
                statistics.maxWord = UInt64(hi.bitPattern)
            }
        case .double:
            doubles.withUnsafeBufferPointer { values in
                var lo = Double.infinity
                var hi = -Double.infinity
                var any = false
                for i in range where !values[i].isNaN {
                    lo = min(lo, values[i])
                    hi = max(hi, values[i])
                    any = true
                }
                guard any else { return }
                if lo == 0 { lo = -0.0 }
                if hi == 0 { hi = 0.0 }
                statistics.minWord = lo.bitPattern
                statistics.maxWord = hi.bitPattern
            }
        default: break
        }
    }

    /// Value `i` of a BYTE_ARRAY or FIXED_LEN_BYTE_ARRAY column.
    @inline(__always)
    func bytesValue(_ i: Int) -> UnsafeRawBufferPointer {
        if physicalType == .byteArray {
            let start = i == 0 ? 0 : Int(ends[i - 1])
            return UnsafeRawBufferPointer(start: bytes.base + start, count: Int(ends[i]) - start)
        }
        return UnsafeRawBufferPointer(start: bytes.base + i * fixedLength, count: fixedLength)
    }
}

/// Min and max of a chunk: word bit patterns for numbers, value indexes for byte strings.
struct ChunkStatistics {
    var minWord: UInt64?
    var maxWord: UInt64?
    var minIndex = -1
    var maxIndex = -1

    @inline(__always)
    mutating func observeBytes(_ i: Int, _ column: ParquetColumnWriter) {
        if minIndex < 0 {
            minIndex = i
            maxIndex = i
            return
        }
        let v = column.bytesValue(i)
        let lo = column.bytesValue(minIndex)
        if compareBytes(v.baseAddress ?? UnsafeRawPointer(column.bytes.base), v.count, lo.baseAddress ?? UnsafeRawPointer(column.bytes.base), lo.count) < 0 {
            minIndex = i
            return
        }
        let hi = column.bytesValue(maxIndex)
        if compareBytes(v.baseAddress ?? UnsafeRawPointer(column.bytes.base), v.count, hi.baseAddress ?? UnsafeRawPointer(column.bytes.base), hi.count) > 0 {
            maxIndex = i
        }
    }

    func encoded(column: ParquetColumnWriter, limit: Int) -> ([UInt8]?, [UInt8]?) {
        switch column.physicalType {
        case .byteArray, .fixedLenByteArray:
            guard minIndex >= 0 else { return (nil, nil) }
            let lo = column.bytesValue(minIndex)
            let hi = column.bytesValue(maxIndex)
            guard lo.count <= limit, hi.count <= limit else { return (nil, nil) }
            return (Array(lo), Array(hi))
        case .boolean:
            guard let minWord, let maxWord else { return (nil, nil) }
            return ([UInt8(minWord)], [UInt8(maxWord)])
        case .int32, .float:
            guard let minWord, let maxWord else { return (nil, nil) }
            return (littleEndianBytes(UInt32(truncatingIfNeeded: minWord)), littleEndianBytes(UInt32(truncatingIfNeeded: maxWord)))
        case .int64, .double:
            guard let minWord, let maxWord else { return (nil, nil) }
            return (littleEndianBytes(minWord), littleEndianBytes(maxWord))
        }
    }
}

func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}
