/// Appends one column's values for the rows being buffered. Get it from ``ParquetWriter/column(_:)``.
///
/// Every append is one row of a flat column; a LIST column takes ``appendList(count:)`` followed by
/// exactly `count` element appends (``append(_:)-…`` or ``appendNull()``), or ``appendEmptyList()``,
/// or ``appendNullList()``. A failed append changes nothing.
public final class ParquetColumnWriter {
    /// The column's definition.
    public let column: ParquetColumn
    /// The column's position in the schema.
    public let index: Int

    let maxDefinitionLevel: UInt8
    let maxRepetitionLevel: UInt8
    let isList: Bool
    let elementOptional: Bool
    let physicalType: ParquetPhysicalType
    let fixedLength: Int
    /// Range of INT32 values allowed (by INTEGER bit width and sign).
    let int32Range: ClosedRange<Int64>
    let unsignedOrder: Bool
    /// Fast-path flags for the per-value appends.
    let isFlatByteArray: Bool
    let isFlatInt64: Bool

    // Buffers for the rows not yet written.
    let definitionLevels = ValueBuffer<UInt8>()
    let repetitionLevels = ValueBuffer<UInt8>()
    @exclusivity(unchecked) var int32s: [Int32] = []
    let int64s = ValueBuffer<Int64>()
    @exclusivity(unchecked) var floats: [Float] = []
    let doubles = ValueBuffer<Double>()
    @exclusivity(unchecked) var booleans: [Bool] = []
    /// BYTE_ARRAY and FIXED_LEN_BYTE_ARRAY values, concatenated.
    let bytes = ByteSink(capacity: 1024)
    /// End offset in `bytes` of each BYTE_ARRAY value.
    let ends = ValueBuffer<UInt32>()

    /// Rows (top-level values) buffered.
    @exclusivity(unchecked) public private(set) var rows = 0
    /// Elements still expected by the open list.
    @exclusivity(unchecked) private var listRemaining = 0
    @exclusivity(unchecked) private var listFirst = false
    @exclusivity(unchecked) var closed = false

    // Per-column encoding state, reused across chunks.
    lazy var bytesDictionary = BytesDictionary(fixedLength: physicalType == .byteArray ? nil : fixedLength)
    lazy var wordDictionary = WordDictionary()

    init(column: ParquetColumn, index: Int) {
        self.column = column
        self.index = index
        maxDefinitionLevel = UInt8(column.maxDefinitionLevel)
        maxRepetitionLevel = UInt8(column.maxRepetitionLevel)
        isList = column.isList
        elementOptional = column.listElementOptional ?? false
        physicalType = column.physicalType
        if case .fixedLenByteArray(let length) = column.physicalType { fixedLength = length } else { fixedLength = 0 }
        switch column.logicalType {
        case .integer(8, true)?: int32Range = -128...127
        case .integer(8, false)?: int32Range = 0...255
        case .integer(16, true)?: int32Range = -32768...32767
        case .integer(16, false)?: int32Range = 0...65535
        case .integer(32, false)?: int32Range = 0...Int64(UInt32.max)
        default: int32Range = Int64(Int32.min)...Int64(Int32.max)
        }
        if case .integer(_, false)? = column.logicalType { unsignedOrder = true } else { unsignedOrder = false }
        isFlatByteArray = column.physicalType == .byteArray && !column.isList
        isFlatInt64 = column.physicalType == .int64 && !column.isList
    }

    /// The number of non-null leaf values buffered.
    var valueCount: Int {
        switch physicalType {
        case .boolean: booleans.count
        case .int32: int32s.count
        case .int64: int64s.count
        case .float: floats.count
        case .double: doubles.count
        case .byteArray: ends.count
        case .fixedLenByteArray: fixedLength == 0 ? 0 : bytes.count / fixedLength
        }
    }

    /// Levels buffered (one per row of a flat column; one per element, empty or null list of a list column).
    var levelCount: Int {
        if isList { return repetitionLevels.count }
        return maxDefinitionLevel > 0 ? definitionLevels.count : valueCount
    }

    /// Bytes buffered (an estimate of the uncompressed PLAIN size).
    var bufferedBytes: Int {
        let levels = definitionLevels.count + repetitionLevels.count
        switch physicalType {
        case .boolean: return levels + booleans.count / 8
        case .int32: return levels + int32s.count * 4
        case .int64: return levels + int64s.count * 8
        case .float: return levels + floats.count * 4
        case .double: return levels + doubles.count * 8
        case .byteArray: return levels + bytes.count + ends.count * 4
        case .fixedLenByteArray: return levels + bytes.count
        }
    }

    /// True when a list was opened and not all of its elements were appended.
    var hasOpenList: Bool { listRemaining > 0 }

    func resetBuffers() {
        definitionLevels.removeAll(keepingCapacity: true)
        repetitionLevels.removeAll(keepingCapacity: true)
        int32s.removeAll(keepingCapacity: true)
        int64s.removeAll(keepingCapacity: true)
        floats.removeAll(keepingCapacity: true)
        doubles.removeAll(keepingCapacity: true)
        booleans.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        bytes.removeAll()
        rows = 0
    }

    // MARK: Errors

    private func mismatch(_ what: String) -> ParquetError {
        ParquetError(.valueDoesNotFitSchema, "column '\(column.name)' (\(describeType())): \(what)")
    }

    private func describeType() -> String {
        var text = "\(physicalType)"
        if let logical = column.logicalType { text += " \(logical)" }
        if isList { text = "list<\(text)>" }
        return (column.optional ? "optional " : "required ") + text
    }

    // MARK: Levels

    /// Records the levels of one present value; call after the value is known to fit.
    @inline(__always)
    private func presentValue() throws(ParquetError) {
        if isList {
            guard listRemaining > 0 else {
                throw mismatch("a list column takes appendList(count:) before its elements")
            }
            repetitionLevels.append(listFirst ? 0 : 1)
            listFirst = false
            listRemaining -= 1
            definitionLevels.append(maxDefinitionLevel)
        } else {
            if maxDefinitionLevel > 0 { definitionLevels.append(1) }
            rows += 1
        }
    }

    @inline(__always)
    private func checkOpen() throws(ParquetError) {
        if closed { throw ParquetError(.writeAfterClose, "column '\(column.name)': the writer is closed") }
    }

    @inline(__always)
    private func checkType(_ expected: ParquetPhysicalType, _ what: String) throws(ParquetError) {
        if physicalType != expected { throw mismatch("can't append \(what)") }
    }

    // MARK: Appends

    /// Appends a null: a null row of an optional flat column; inside a list, a null element (if
    /// elements are optional); otherwise on a list column, a null list.
    public func appendNull() throws(ParquetError) {
        try checkOpen()
        if isList {
            if listRemaining > 0 {
                guard elementOptional else { throw mismatch("list elements are required, not null") }
                repetitionLevels.append(listFirst ? 0 : 1)
                listFirst = false
                listRemaining -= 1
                definitionLevels.append(maxDefinitionLevel - 1)
            } else {
                try appendNullList()
            }
        } else {
            guard column.optional else { throw mismatch("a required column can't hold null") }
            definitionLevels.append(0)
            rows += 1
        }
    }

    /// Starts a list of `count` elements; append them next. `count` 0 appends an empty list.
    public func appendList(count: Int) throws(ParquetError) {
        try checkOpen()
        guard isList else { throw mismatch("not a list column") }
        guard listRemaining == 0 else { throw mismatch("the previous list still expects \(listRemaining) elements") }
        guard count >= 0 else { throw ParquetError(.invalidArgument, "column '\(column.name)': negative list count \(count)") }
        if count == 0 {
            repetitionLevels.append(0)
            definitionLevels.append(column.optional ? 1 : 0)
        } else {
            listRemaining = count
            listFirst = true
        }
        rows += 1
    }

    /// Appends an empty list.
    public func appendEmptyList() throws(ParquetError) {
        try appendList(count: 0)
    }

    /// Appends a null list (the list column must be optional).
    public func appendNullList() throws(ParquetError) {
        try checkOpen()
        guard isList else { throw mismatch("not a list column") }
        guard column.optional else { throw mismatch("a required list can't be null") }
        guard listRemaining == 0 else { throw mismatch("the previous list still expects \(listRemaining) elements") }
        repetitionLevels.append(0)
        definitionLevels.append(0)
        rows += 1
    }

    /// Appends a BYTE_ARRAY value (string, JSON, binary) or a FIXED_LEN_BYTE_ARRAY value (UUID,
    /// fixed bytes: must be exactly the column's length). The bytes are copied.
    public func append(_ value: UnsafeRawBufferPointer) throws(ParquetError) {
        if isFlatByteArray && !closed {
            let end = bytes.count + value.count
            if end <= Int(UInt32.max) {
                if maxDefinitionLevel > 0 { definitionLevels.append(1) }
                rows += 1
                bytes.append(value)
                ends.append(UInt32(truncatingIfNeeded: end))
                return
            }
        }
        try checkOpen()
        switch physicalType {
        case .byteArray:
            let end = bytes.count + value.count
            guard end <= Int(UInt32.max) else {
                throw ParquetError(.tooLarge, "column '\(column.name)': more than 4 GiB buffered; flush row groups more often")
            }
            try presentValue()
            bytes.append(value)
            ends.append(UInt32(end))
        case .fixedLenByteArray(let length):
            guard value.count == length else { throw mismatch("a value of \(value.count) bytes, expected \(length)") }
            try presentValue()
            bytes.append(value)
        default:
            throw mismatch("can't append bytes")
        }
    }

    /// Appends bytes (see ``append(_:)-(UnsafeRawBufferPointer)``).
    public func append(_ value: [UInt8]) throws(ParquetError) {
        var failure: ParquetError?
        value.withUnsafeBytes { buffer in
            do { try append(buffer) } catch { failure = error as? ParquetError ?? ParquetError(.io, "\(error)") }
        }
        if let failure { throw failure }
    }

    /// Appends a string's UTF-8 bytes (BYTE_ARRAY columns).
    public func append(_ value: String) throws(ParquetError) {
        guard physicalType == .byteArray else { throw mismatch("can't append a string") }
        var value = value
        var failure: ParquetError?
        value.withUTF8 { utf8 in
            do { try append(UnsafeRawBufferPointer(utf8)) } catch { failure = error as? ParquetError ?? ParquetError(.io, "\(error)") }
        }
        if let failure { throw failure }
    }

    /// Appends a UUID from its text form ("8-4-4-4-12" hex digits) to a UUID column.
    public func append(uuidString: String) throws(ParquetError) {
        guard physicalType == .fixedLenByteArray(16) else { throw mismatch("can't append a UUID") }
        var raw = [UInt8](repeating: 0, count: 16)
        var nibbles = 0
        for unit in uuidString.utf8 {
            let digit: UInt8
            switch unit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = unit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = unit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = unit - UInt8(ascii: "A") + 10
            case UInt8(ascii: "-"): continue
            default: throw mismatch("'\(uuidString)' is not a UUID")
            }
            guard nibbles < 32 else { throw mismatch("'\(uuidString)' is not a UUID") }
            raw[nibbles / 2] |= nibbles % 2 == 0 ? digit << 4 : digit
            nibbles += 1
        }
        guard nibbles == 32 else { throw mismatch("'\(uuidString)' is not a UUID") }
        try append(raw)
    }

    /// Appends an INT64 value (INT64 columns: integers, timestamps), or an INT32 column's value if it
    /// fits the column's integer width.
    public func append(_ value: Int64) throws(ParquetError) {
        if isFlatInt64 && !closed {
            if maxDefinitionLevel > 0 { definitionLevels.append(1) }
            rows += 1
            int64s.append(value)
            return
        }
        try checkOpen()
        switch physicalType {
        case .int64:
            try presentValue()
            int64s.append(value)
        case .int32:
            guard int32Range.contains(value) else { throw mismatch("\(value) is out of range \(int32Range)") }
            try presentValue()
            int32s.append(Int32(truncatingIfNeeded: value))
        default:
            throw mismatch("can't append an integer")
        }
    }

    /// Appends an integer (see ``append(_:)-(Int64)``).
    public func append(_ value: Int) throws(ParquetError) {
        try append(Int64(value))
    }

    /// Appends an unsigned 64-bit value to an INT64 column (stored as its bit pattern).
    public func append(_ value: UInt64) throws(ParquetError) {
        try checkOpen()
        try checkType(.int64, "an unsigned integer")
        if !unsignedOrder && value > UInt64(Int64.max) { throw mismatch("\(value) is out of range for a signed INT64") }
        try presentValue()
        int64s.append(Int64(bitPattern: value))
    }

    /// Appends an INT32 value (INT32 columns: integers of 8/16/32 bits, dates), or an INT64 column's value.
    public func append(_ value: Int32) throws(ParquetError) {
        try checkOpen()
        switch physicalType {
        case .int32:
            if unsignedOrder || int32Range.lowerBound > Int64(Int32.min) || int32Range.upperBound < Int64(Int32.max) {
                guard int32Range.contains(Int64(value)) else { throw mismatch("\(value) is out of range \(int32Range)") }
            }
            try presentValue()
            int32s.append(value)
        case .int64:
            try presentValue()
            int64s.append(Int64(value))
        default:
            throw mismatch("can't append an integer")
        }
    }

    /// Appends a DOUBLE value.
    public func append(_ value: Double) throws(ParquetError) {
        try checkOpen()
        try checkType(.double, "a Double")
        try presentValue()
        doubles.append(value)
    }

    /// Appends a FLOAT value.
    public func append(_ value: Float) throws(ParquetError) {
        try checkOpen()
        try checkType(.float, "a Float")
        try presentValue()
        floats.append(value)
    }

    /// Appends a BOOLEAN value.
    public func append(_ value: Bool) throws(ParquetError) {
        try checkOpen()
        try checkType(.boolean, "a Bool")
        try presentValue()
        booleans.append(value)
    }

    /// Appends a list of strings (a LIST<STRING> column).
    public func appendList(_ values: some Collection<String>) throws(ParquetError) {
        guard physicalType == .byteArray else { throw mismatch("can't append strings") }
        try appendList(count: values.count)
        for value in values { try append(value) }
    }

    // MARK: Bulk appends (flat columns)

    private func beginBulk(_ n: Int, _ expected: ParquetPhysicalType, _ what: String) throws(ParquetError) {
        try checkOpen()
        if physicalType != expected { throw mismatch("can't append \(what)") }
        if isList { throw mismatch("bulk appends are for flat columns; append list elements one by one") }
        if maxDefinitionLevel > 0 { definitionLevels.append(repeating: 1, count: n) }
        rows += n
    }

    /// Appends `offsets.count - 1` BYTE_ARRAY values laid out as in Arrow: value `i` is
    /// `bytes[offsets[i] ..< offsets[i + 1]]`. One copy for all the values.
    public func append(contentsOf bytes: UnsafeRawBufferPointer, offsets: UnsafeBufferPointer<Int>) throws(ParquetError) {
        let n = max(0, offsets.count - 1)
        // (Empty values over a buffer with no address, Arrow's for all-empty data, are values too:
        // they were dropped without a word, a review.)
        guard n > 0 else { return }
        let first = offsets[0]
        let last = offsets[n]
        guard first >= 0, last <= bytes.count, first <= last else {
            throw ParquetError(.invalidArgument, "column '\(column.name)': offsets \(first)..<\(last) outside \(bytes.count) bytes")
        }
        for i in 0..<n where offsets[i] > offsets[i + 1] {
            throw ParquetError(.invalidArgument, "column '\(column.name)': offsets decrease at \(i)")
        }
        let shift = self.bytes.count - first
        guard self.bytes.count + (last - first) <= Int(UInt32.max) else {
            throw ParquetError(.tooLarge, "column '\(column.name)': more than 4 GiB buffered; flush row groups more often")
        }
        try beginBulk(n, .byteArray, "strings")
        if last > first, let base = bytes.baseAddress { self.bytes.append(base + first, count: last - first) }
        ends.reserveCapacity(ends.count + n)
        for i in 1...n { ends.append(UInt32(truncatingIfNeeded: offsets[i] + shift)) }
    }

    /// Appends INT64 values (INT64 columns).
    public func append(contentsOf values: UnsafeBufferPointer<Int64>) throws(ParquetError) {
        try beginBulk(values.count, .int64, "Int64 values")
        int64s.append(contentsOf: values)
    }

    /// Appends DOUBLE values.
    public func append(contentsOf values: UnsafeBufferPointer<Double>) throws(ParquetError) {
        try beginBulk(values.count, .double, "Double values")
        doubles.append(contentsOf: values)
    }

    /// Appends FLOAT values.
    public func append(contentsOf values: UnsafeBufferPointer<Float>) throws(ParquetError) {
        try beginBulk(values.count, .float, "Float values")
        floats.append(contentsOf: values)
    }

    /// Appends BOOLEAN values.
    public func append(contentsOf values: UnsafeBufferPointer<Bool>) throws(ParquetError) {
        try beginBulk(values.count, .boolean, "Bool values")
        booleans.append(contentsOf: values)
    }

    /// Appends INT32 values (checked against the column's integer width).
    public func append(contentsOf values: UnsafeBufferPointer<Int32>) throws(ParquetError) {
        if physicalType == .int32 {
            for value in values where !int32Range.contains(Int64(value)) {
                throw mismatch("\(value) is out of range \(int32Range)")
            }
        }
        try beginBulk(values.count, .int32, "Int32 values")
        int32s.append(contentsOf: values)
    }

    /// Appends values from an array (see the `UnsafeBufferPointer` overloads).
    public func append(contentsOf values: [Int64]) throws(ParquetError) {
        try withBuffer(values) { (buffer) throws(ParquetError) in try append(contentsOf: buffer) }
    }

    /// Appends values from an array.
    public func append(contentsOf values: [Double]) throws(ParquetError) {
        try withBuffer(values) { (buffer) throws(ParquetError) in try append(contentsOf: buffer) }
    }

    /// Appends values from an array.
    public func append(contentsOf values: [Int32]) throws(ParquetError) {
        try withBuffer(values) { (buffer) throws(ParquetError) in try append(contentsOf: buffer) }
    }

    private func withBuffer<T>(_ values: [T], _ body: (UnsafeBufferPointer<T>) throws(ParquetError) -> Void) throws(ParquetError) {
        var failure: ParquetError?
        values.withUnsafeBufferPointer { buffer in
            do { try body(buffer) } catch { failure = error as? ParquetError ?? ParquetError(.io, "\(error)") }
        }
        if let failure { throw failure }
    }

    /// Appends an optional string: the string, or null.
    public func append(_ value: String?) throws(ParquetError) {
        if let value { try append(value) } else { try appendNull() }
    }

    /// Appends an optional integer: the value, or null.
    public func append(_ value: Int64?) throws(ParquetError) {
        if let value { try append(value) } else { try appendNull() }
    }

    /// Appends an optional double: the value, or null.
    public func append(_ value: Double?) throws(ParquetError) {
        if let value { try append(value) } else { try appendNull() }
    }
}
