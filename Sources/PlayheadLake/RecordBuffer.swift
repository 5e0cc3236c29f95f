/// The records of one open batch, copied out of the log's polls: contiguous bytes plus the range
/// and log offset of each record.
final class RecordBuffer: @unchecked Sendable {
    // Used by one thread at a time: no dynamic exclusivity checks.
    @exclusivity(unchecked) private(set) var bytes: [UInt8] = []
    @exclusivity(unchecked) private(set) var starts: [Int] = []
    @exclusivity(unchecked) private(set) var offsets: [Int64] = []

    var count: Int { offsets.count }
    var byteCount: Int { bytes.count }
    var isEmpty: Bool { offsets.isEmpty }
    var firstOffset: Int64? { offsets.first }
    var lastOffset: Int64? { offsets.last }

    init(reservingCapacity: Int = 0, records: Int = 0) {
        bytes.reserveCapacity(reservingCapacity)
        starts.reserveCapacity(records)
        offsets.reserveCapacity(records)
    }

    func append(offset: Int64, _ value: UnsafeRawBufferPointer) {
        starts.append(bytes.count)
        offsets.append(offset)
        bytes.append(contentsOf: value)
    }

    /// Calls `body` with a view of every record, in log order.
    func withRecords<T>(_ body: ([UnsafeRawBufferPointer]) throws -> T) rethrows -> T {
        try bytes.withUnsafeBytes { base in
            var views: [UnsafeRawBufferPointer] = []
            views.reserveCapacity(starts.count)
            for index in starts.indices {
                let end = index + 1 < starts.count ? starts[index + 1] : bytes.count
                views.append(UnsafeRawBufferPointer(rebasing: base[starts[index]..<end]))
            }
            return try body(views)
        }
    }

    /// Calls `body` with a view of every record of `buffers`, in order.
    static func withRecords<T>(of buffers: [RecordBuffer], _ body: ([UnsafeRawBufferPointer]) throws -> T) rethrows -> T {
        var views: [UnsafeRawBufferPointer] = []
        views.reserveCapacity(buffers.reduce(0) { $0 + $1.count })
        return try collect(buffers[...], into: &views, body)
    }

    /// Pins each buffer in turn (one nested access per buffer) while the views are gathered.
    private static func collect<T>(
        _ buffers: ArraySlice<RecordBuffer>, into views: inout [UnsafeRawBufferPointer], _ body: ([UnsafeRawBufferPointer]) throws -> T
    ) rethrows -> T {
        guard let first = buffers.first else { return try body(views) }
        return try first.withRecords { own in
            views += own
            return try collect(buffers.dropFirst(), into: &views, body)
        }
    }
}
