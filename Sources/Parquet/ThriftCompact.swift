/// The Thrift compact protocol, write side only: just what Parquet's metadata needs.
///
/// Fields are written in increasing id order within a struct; a field header is one byte
/// `(delta << 4) | type` when the id delta from the previous field is 1...15, else the type byte
/// followed by the zigzag varint id. Structs end with a 0 (stop) byte.
struct ThriftCompactWriter {
    enum FieldType: UInt8 {
        case boolTrue = 1
        case boolFalse = 2
        case byte = 3
        case i16 = 4
        case i32 = 5
        case i64 = 6
        case double = 7
        case binary = 8
        case list = 9
        case set = 10
        case map = 11
        case `struct` = 12
    }

    let out: ByteSink
    private var lastFieldID: Int16 = 0
    private var stack: [Int16] = []

    init(into out: ByteSink) {
        self.out = out
    }

    mutating func fieldHeader(_ id: Int16, _ type: UInt8) {
        let delta = id - lastFieldID
        if delta > 0 && delta <= 15 {
            out.append(byte: UInt8(delta) << 4 | type)
        } else {
            out.append(byte: type)
            out.appendZigZag(Int64(id))
        }
        lastFieldID = id
    }

    mutating func field(_ id: Int16, bool value: Bool) {
        fieldHeader(id, value ? FieldType.boolTrue.rawValue : FieldType.boolFalse.rawValue)
    }

    mutating func field(_ id: Int16, byte value: Int8) {
        fieldHeader(id, FieldType.byte.rawValue)
        out.append(byte: UInt8(bitPattern: value))
    }

    mutating func field(_ id: Int16, i32 value: Int32) {
        fieldHeader(id, FieldType.i32.rawValue)
        out.appendZigZag(Int64(value))
    }

    mutating func field(_ id: Int16, i64 value: Int64) {
        fieldHeader(id, FieldType.i64.rawValue)
        out.appendZigZag(value)
    }

    mutating func field(_ id: Int16, binary value: UnsafeRawBufferPointer) {
        fieldHeader(id, FieldType.binary.rawValue)
        out.appendVarint(UInt64(value.count))
        out.append(value)
    }

    mutating func field(_ id: Int16, binary value: [UInt8]) {
        value.withUnsafeBytes { field(id, binary: $0) }
    }

    mutating func field(_ id: Int16, string value: String) {
        field(id, binary: Array(value.utf8))
    }

    /// Starts a struct-typed field; end it with ``endStruct()``.
    mutating func beginStruct(_ id: Int16) {
        fieldHeader(id, FieldType.struct.rawValue)
        beginStructValue()
    }

    /// Starts a struct value (a list element or the top-level struct).
    mutating func beginStructValue() {
        stack.append(lastFieldID)
        lastFieldID = 0
    }

    mutating func endStruct() {
        out.append(byte: 0)
        lastFieldID = stack.removeLast()
    }

    /// An empty struct field (the members of unions such as LogicalType are mostly empty structs).
    mutating func emptyStruct(_ id: Int16) {
        beginStruct(id)
        endStruct()
    }

    /// Starts a list field of `count` elements of `type`; then write the elements.
    mutating func beginList(_ id: Int16, _ type: FieldType, count: Int) {
        fieldHeader(id, FieldType.list.rawValue)
        listHeader(type, count: count)
    }

    private func listHeader(_ type: FieldType, count: Int) {
        if count < 15 {
            out.append(byte: UInt8(count) << 4 | type.rawValue)
        } else {
            out.append(byte: 0xF0 | type.rawValue)
            out.appendVarint(UInt64(count))
        }
    }

    // List elements.
    func element(i32 value: Int32) { out.appendZigZag(Int64(value)) }
    func element(string value: String) {
        let utf8 = Array(value.utf8)
        out.appendVarint(UInt64(utf8.count))
        utf8.withUnsafeBytes { out.append($0) }
    }
}

extension ThriftCompactWriter {
    mutating func field(_ id: Int16, i16 value: Int16) {
        fieldHeader(id, FieldType.i16.rawValue)
        out.appendZigZag(Int64(value))
    }
}
