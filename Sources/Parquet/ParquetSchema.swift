/// The physical (storage) types of Parquet.
public enum ParquetPhysicalType: Sendable, Hashable {
    case boolean
    case int32
    case int64
    case float
    case double
    case byteArray
    case fixedLenByteArray(Int)

    var thriftValue: Int32 {
        switch self {
        case .boolean: 0
        case .int32: 1
        case .int64: 2
        case .float: 4
        case .double: 5
        case .byteArray: 6
        case .fixedLenByteArray: 7
        }
    }

    /// The width of a value in PLAIN encoding, or nil for BYTE_ARRAY (and BOOLEAN, which is bit-packed).
    var fixedWidth: Int? {
        switch self {
        case .boolean, .byteArray: nil
        case .int32, .float: 4
        case .int64, .double: 8
        case .fixedLenByteArray(let length): length
        }
    }
}

/// Logical types: how to interpret the physical values.
public enum ParquetLogicalType: Sendable, Hashable {
    /// UTF-8 text on BYTE_ARRAY.
    case string
    /// JSON text on BYTE_ARRAY.
    case json
    /// A UUID on FIXED_LEN_BYTE_ARRAY(16), big-endian bytes.
    case uuid
    /// Days since 1970-01-01 on INT32.
    case date
    /// A point in time on INT64, since 1970-01-01T00:00:00Z.
    case timestamp(unit: ParquetColumn.TimeUnit, isAdjustedToUTC: Bool)
    /// An integer of `bitWidth` (8, 16, 32 or 64) bits on INT32 or INT64.
    case integer(bitWidth: Int8, signed: Bool)
}

/// How a column's values are encoded.
public enum ParquetEncodingChoice: Sendable, Hashable {
    /// Per column chunk, from a sample of its values: dictionary (with a fallback to PLAIN past
    /// ``ParquetWriterConfiguration/dictionaryPageLimitBytes``) when values repeat, DELTA_BINARY_PACKED
    /// for integers when it is smaller, PLAIN otherwise. Booleans are always PLAIN.
    case automatic
    /// PLAIN for every page.
    case plain
    /// RLE_DICTIONARY, falling back to PLAIN once the dictionary passes its size limit.
    case dictionary
    /// DELTA_BINARY_PACKED (INT32 and INT64 columns only).
    case deltaBinaryPacked
}

/// A top-level column: a leaf, or a three-level LIST of leaves.
public struct ParquetColumn: Sendable, Hashable {
    /// Units of ``ParquetColumn/timestamp(_:unit:optional:)``.
    public enum TimeUnit: Sendable, Hashable {
        case milliseconds
        case microseconds
        case nanoseconds
    }

    /// The column's name.
    public var name: String
    /// The leaf's physical type.
    public var physicalType: ParquetPhysicalType
    /// The leaf's logical type, if any.
    public var logicalType: ParquetLogicalType?
    /// Whether the column (for a list: the list itself) may be null.
    public var optional: Bool
    /// Non-nil for a `LIST`: whether list elements may be null.
    public var listElementOptional: Bool?
    /// How values are encoded. Default: ``ParquetEncodingChoice/automatic``.
    public var encoding: ParquetEncodingChoice = .automatic

    public init(
        name: String, physicalType: ParquetPhysicalType, logicalType: ParquetLogicalType? = nil,
        optional: Bool = false, listElementOptional: Bool? = nil, encoding: ParquetEncodingChoice = .automatic
    ) {
        self.name = name
        self.physicalType = physicalType
        self.logicalType = logicalType
        self.optional = optional
        self.listElementOptional = listElementOptional
        self.encoding = encoding
    }

    /// Whether this column is a LIST.
    public var isList: Bool { listElementOptional != nil }

    /// BYTE_ARRAY annotated STRING (UTF-8).
    public static func string(_ name: String, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .byteArray, logicalType: .string, optional: optional)
    }

    /// BYTE_ARRAY annotated JSON.
    public static func json(_ name: String, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .byteArray, logicalType: .json, optional: optional)
    }

    /// BYTE_ARRAY with no annotation (raw bytes).
    public static func binary(_ name: String, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .byteArray, optional: optional)
    }

    /// INT64 (signed 64-bit integer; annotated INTEGER(64, signed)).
    public static func int64(_ name: String, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .int64, logicalType: .integer(bitWidth: 64, signed: true), optional: optional)
    }

    /// INT64 annotated INTEGER(64, unsigned); append the bit pattern as `Int64` or a `UInt64`.
    public static func uint64(_ name: String, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .int64, logicalType: .integer(bitWidth: 64, signed: false), optional: optional)
    }

    /// INT32 annotated INTEGER(bitWidth, signed); `bitWidth` is 8, 16 or 32. Values outside the
    /// width's range are rejected on append.
    public static func int32(_ name: String, optional: Bool = false, bitWidth: Int8 = 32, signed: Bool = true) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .int32, logicalType: .integer(bitWidth: bitWidth, signed: signed), optional: optional)
    }

    /// DOUBLE.
    public static func double(_ name: String, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .double, optional: optional)
    }

    /// FLOAT.
    public static func float(_ name: String, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .float, optional: optional)
    }

    /// BOOLEAN.
    public static func boolean(_ name: String, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .boolean, optional: optional)
    }

    /// INT32 annotated DATE: days since 1970-01-01.
    public static func date(_ name: String, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .int32, logicalType: .date, optional: optional)
    }

    /// FIXED_LEN_BYTE_ARRAY(16) annotated UUID: append the 16 bytes (big-endian, as in the text form).
    public static func uuid(_ name: String, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .fixedLenByteArray(16), logicalType: .uuid, optional: optional)
    }

    /// FIXED_LEN_BYTE_ARRAY(length) with no annotation.
    public static func fixedBytes(_ name: String, length: Int, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .fixedLenByteArray(length), optional: optional)
    }

    /// INT64 annotated TIMESTAMP(isAdjustedToUTC=true, unit): append the count of `unit`s since the epoch.
    public static func timestamp(_ name: String, unit: TimeUnit = .microseconds, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(name: name, physicalType: .int64, logicalType: .timestamp(unit: unit, isAdjustedToUTC: true), optional: optional)
    }

    /// A three-level LIST<STRING>: `<optional|required> group name (LIST) { repeated group list {
    /// <optional|required> binary element (STRING) } }`.
    public static func stringList(_ name: String, optional: Bool = false, elementsOptional: Bool = false) -> ParquetColumn {
        list(name, of: .string("element", optional: elementsOptional), optional: optional)
    }

    /// A three-level LIST of `element`'s type; `element.optional` says whether elements may be null
    /// (its name is ignored: the leaf is called `element`).
    public static func list(_ name: String, of element: ParquetColumn, optional: Bool = false) -> ParquetColumn {
        ParquetColumn(
            name: name, physicalType: element.physicalType, logicalType: element.logicalType, optional: optional,
            listElementOptional: element.optional, encoding: element.encoding)
    }

    /// The same column with another encoding choice.
    public func encoded(_ encoding: ParquetEncodingChoice) -> ParquetColumn {
        var copy = self
        copy.encoding = encoding
        return copy
    }

    // MARK: Levels

    /// The maximum definition level of the leaf.
    var maxDefinitionLevel: Int {
        var level = optional ? 1 : 0
        if let elementOptional = listElementOptional {
            level += 1 + (elementOptional ? 1 : 0)
        }
        return level
    }

    /// The maximum repetition level of the leaf.
    var maxRepetitionLevel: Int { isList ? 1 : 0 }

    /// The leaf's path in the schema.
    var path: [String] { isList ? [name, "list", "element"] : [name] }

    func validate() throws(ParquetError) {
        if name.isEmpty { throw ParquetError(.invalidSchema, "a column has an empty name") }
        if case .fixedLenByteArray(let length) = physicalType, length <= 0 {
            throw ParquetError(.invalidSchema, "column '\(name)': FIXED_LEN_BYTE_ARRAY length must be positive, not \(length)")
        }
        switch logicalType {
        case .string?, .json?:
            guard physicalType == .byteArray else { throw ParquetError(.invalidSchema, "column '\(name)': STRING/JSON need BYTE_ARRAY") }
        case .uuid?:
            guard physicalType == .fixedLenByteArray(16) else { throw ParquetError(.invalidSchema, "column '\(name)': UUID needs FIXED_LEN_BYTE_ARRAY(16)") }
        case .date?:
            guard physicalType == .int32 else { throw ParquetError(.invalidSchema, "column '\(name)': DATE needs INT32") }
        case .timestamp?:
            guard physicalType == .int64 else { throw ParquetError(.invalidSchema, "column '\(name)': TIMESTAMP needs INT64") }
        case .integer(let bitWidth, _)?:
            switch (physicalType, bitWidth) {
            case (.int32, 8), (.int32, 16), (.int32, 32), (.int64, 64): break
            default:
                throw ParquetError(.invalidSchema, "column '\(name)': INTEGER(\(bitWidth)) doesn't fit \(physicalType)")
            }
        case nil: break
        }
        switch encoding {
        case .deltaBinaryPacked:
            guard physicalType == .int32 || physicalType == .int64 else {
                throw ParquetError(.invalidSchema, "column '\(name)': DELTA_BINARY_PACKED needs INT32 or INT64")
            }
        case .dictionary:
            guard physicalType != .boolean else {
                throw ParquetError(.invalidSchema, "column '\(name)': BOOLEAN columns can't be dictionary encoded")
            }
        case .automatic, .plain: break
        }
    }
}

/// The schema of a file: a flat list of top-level columns (leaves and lists of leaves).
public struct ParquetSchema: Sendable, Hashable {
    /// The top-level columns, in file order.
    public var columns: [ParquetColumn]

    public init(_ columns: [ParquetColumn]) {
        self.columns = columns
    }

    func validate() throws(ParquetError) {
        var names = Set<String>()
        for column in columns {
            try column.validate()
            guard names.insert(column.name).inserted else {
                throw ParquetError(.invalidSchema, "two columns are named '\(column.name)'")
            }
        }
    }
}
