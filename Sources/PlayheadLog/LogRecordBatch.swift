/// A batch of records to append to a log topic, in one contiguous buffer.
///
/// Every record is a value (opaque bytes; Playhead stores its binary event encoding here) with an
/// optional partitioning key. Values are framed as `[UInt32 little-endian length][bytes]`, one after
/// another, so that the embedded log can write ``values`` to disk as it is and a consumer can walk it
/// without copying. Keys are kept beside the values: the embedded log (one partition) does not store
/// them; the Kafka log sends them as message keys.
///
/// Producers build a batch per request, so that a whole request shares one append and one
/// durability wait (group commit on disk, one delivery wait on Kafka).
public struct LogRecordBatch: Sendable {
    /// The framed values: `[UInt32 LE length][value]` repeated ``count`` times.
    public private(set) var values: [UInt8]
    /// The concatenated keys. Empty when no record has a key.
    public private(set) var keys: [UInt8]
    /// End offset in ``keys`` of each record's key (count entries once any key was set).
    public private(set) var keyEnds: [Int32]
    /// The number of records.
    public private(set) var count: Int
    /// The length of the batch's largest value, which a log may refuse (the embedded log's
    /// `maxRecordBytes`).
    public private(set) var largestValue: Int = 0

    public init(reservingCapacity bytes: Int = 0) {
        self.values = []
        self.values.reserveCapacity(bytes)
        self.keys = []
        self.keyEnds = []
        self.count = 0
    }

    public var isEmpty: Bool { count == 0 }

    /// Appends one record whose value is written by `body` straight into the batch buffer.
    ///
    /// - Parameters:
    ///   - key: the partitioning key (session, falling back to device); may be empty.
    ///   - body: appends the value's bytes to the buffer it is given. It must only append.
    public mutating func appendRecord<Key: Collection<UInt8>>(
        key: Key,
        _ body: (inout [UInt8]) throws -> Void
    ) rethrows {
        let lengthAt = values.count
        values.append(contentsOf: [0, 0, 0, 0] as [UInt8])
        try body(&values)
        let length = UInt32(values.count - lengthAt - 4)
        largestValue = max(largestValue, Int(length))
        values[lengthAt] = UInt8(truncatingIfNeeded: length)
        values[lengthAt + 1] = UInt8(truncatingIfNeeded: length >> 8)
        values[lengthAt + 2] = UInt8(truncatingIfNeeded: length >> 16)
        values[lengthAt + 3] = UInt8(truncatingIfNeeded: length >> 24)
        appendKey(key)
    }

    /// Records the key of the record just appended (keys are stored only once one is not empty).
    private mutating func appendKey<Key: Collection<UInt8>>(_ key: Key) {
        if !key.isEmpty || !keyEnds.isEmpty {
            if keyEnds.isEmpty && count > 0 {
                keyEnds = Array(repeating: 0, count: count)
            }
            keys.append(contentsOf: key)
            keyEnds.append(Int32(keys.count))
        }
        count += 1
    }

    /// Appends one record with the given value bytes.
    public mutating func appendRecord<Key: Collection<UInt8>, Value: Collection<UInt8>>(key: Key, value: Value) {
        appendRecord(key: key) { $0.append(contentsOf: value) }
    }

    /// Appends one record (the hot path of the edge: not generic, so nothing is looked up at run
    /// time across the module boundary).
    public mutating func appendRecord(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        var length = UInt32(value.count).littleEndian
        largestValue = max(largestValue, value.count)
        withUnsafeBytes(of: &length) { values.append(contentsOf: $0) }
        values.append(contentsOf: value)
        appendKey(key)
    }

    /// Calls `body` with each record's index, key (empty if none) and value.
    public func forEachRecord(
        _ body: (_ index: Int, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Void
    ) rethrows {
        try values.withUnsafeBytes { valueBytes in
            try keys.withUnsafeBytes { keyBytes in
                var position = 0
                var keyStart = 0
                for index in 0..<count {
                    let length = Int(LogFraming.readUInt32(valueBytes, at: position))
                    let value = UnsafeRawBufferPointer(rebasing: valueBytes[(position + 4)..<(position + 4 + length)])
                    position += 4 + length
                    var key = UnsafeRawBufferPointer(rebasing: keyBytes[0..<0])
                    if !keyEnds.isEmpty {
                        let keyEnd = Int(keyEnds[index])
                        key = UnsafeRawBufferPointer(rebasing: keyBytes[keyStart..<keyEnd])
                        keyStart = keyEnd
                    }
                    try body(index, key, value)
                }
            }
        }
    }
}

/// Helpers for the `[UInt32 LE length][bytes]` framing shared by batches, the disk format and consumers.
public enum LogFraming {
    @inlinable
    public static func readUInt32(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
            | UInt32(bytes[offset + 3]) << 24
    }

    /// Calls `body` with each framed value in `bytes`. Throws ``LogError`` if the framing is broken.
    public static func forEachValue(
        in bytes: UnsafeRawBufferPointer,
        _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var position = 0
        while position < bytes.count {
            guard position + 4 <= bytes.count else { throw LogError.corrupt("truncated record length") }
            let length = Int(readUInt32(bytes, at: position))
            guard position + 4 + length <= bytes.count else { throw LogError.corrupt("truncated record value") }
            try body(UnsafeRawBufferPointer(rebasing: bytes[(position + 4)..<(position + 4 + length)]))
            position += 4 + length
        }
    }
}
