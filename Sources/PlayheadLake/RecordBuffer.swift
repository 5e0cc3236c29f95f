/// The records of one open batch, copied out of the log's polls (or out of the decoder): bytes in
/// chunks of up to ``chunkBytes``, plus the place and log offset of each record.
///
/// Chunks, not one growing array: a batch of a million records is hundreds of megabytes, and an
/// array that doubles would copy it and hold both copies at once (the peak memory of `serve` is in
/// that moment). Chunks never move, so a record's view stays valid while the buffer is alive.
final class RecordBuffer: @unchecked Sendable {
    static let chunkBytes = 8 * 1024 * 1024
    static let firstChunkBytes = 64 * 1024

    private struct Place {
        var chunk: Int32
        var start: Int32
        var count: Int32
    }

    // Used by one thread at a time: no dynamic exclusivity checks.
    @exclusivity(unchecked) private var chunks: [UnsafeMutableRawBufferPointer] = []
    /// Bytes used in the last chunk.
    @exclusivity(unchecked) private var used = 0
    @exclusivity(unchecked) private var places: [Place] = []
    @exclusivity(unchecked) private(set) var offsets: [Int64] = []
    @exclusivity(unchecked) private(set) var byteCount = 0
    private let initialChunkBytes: Int

    var count: Int { offsets.count }
    var isEmpty: Bool { offsets.isEmpty }
    var firstOffset: Int64? { offsets.first }
    var lastOffset: Int64? { offsets.last }

    /// - Parameter reservingCapacity: the bytes expected (sizes the first chunk, up to a chunk).
    /// - Parameter records: the records expected.
    init(reservingCapacity: Int = 0, records: Int = 0) {
        initialChunkBytes = min(max(reservingCapacity, Self.firstChunkBytes), Self.chunkBytes)
        places.reserveCapacity(records)
        offsets.reserveCapacity(records)
    }

    deinit {
        for chunk in chunks { chunk.deallocate() }
    }

    func append(offset: Int64, _ value: UnsafeRawBufferPointer) {
        if chunks.isEmpty || used + value.count > chunks[chunks.count - 1].count {
            // The next chunk: twice the last one up to `chunkBytes`, and always room for the value.
            let size = chunks.last.map { min($0.count * 2, Self.chunkBytes) } ?? initialChunkBytes
            chunks.append(.allocate(byteCount: max(size, value.count), alignment: 16))
            used = 0
        }
        let chunk = chunks[chunks.count - 1]
        if let source = value.baseAddress, value.count > 0 {
            (chunk.baseAddress! + used).copyMemory(from: source, byteCount: value.count)
        }
        places.append(Place(chunk: Int32(chunks.count - 1), start: Int32(used), count: Int32(value.count)))
        offsets.append(offset)
        used += value.count
        byteCount += value.count
    }

    /// Views of every record, in log order (valid while this buffer is alive).
    private var views: [UnsafeRawBufferPointer] {
        places.map { place in
            UnsafeRawBufferPointer(start: chunks[Int(place.chunk)].baseAddress! + Int(place.start), count: Int(place.count))
        }
    }

    /// Calls `body` with a view of every record, in log order.
    func withRecords<T>(_ body: ([UnsafeRawBufferPointer]) throws -> T) rethrows -> T {
        try withExtendedLifetime(self) { try body(views) }
    }

    /// Calls `body` with a view of every record of `buffers`, in order.
    static func withRecords<T>(of buffers: [RecordBuffer], _ body: ([UnsafeRawBufferPointer]) throws -> T) rethrows -> T {
        try withExtendedLifetime(buffers) {
            var views: [UnsafeRawBufferPointer] = []
            views.reserveCapacity(buffers.reduce(0) { $0 + $1.count })
            for buffer in buffers { views += buffer.views }
            return try body(views)
        }
    }
}
