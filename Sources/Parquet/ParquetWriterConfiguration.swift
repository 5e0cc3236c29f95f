/// How pages are compressed.
public enum ParquetCompression: Sendable, Hashable {
    /// No compression.
    case uncompressed
    /// Zstandard (libzstd) at `level` (1–22; negative levels are faster). Level 1 (pyarrow's default
    /// too) is the default: on event data it is both faster and smaller than 3 (docs/benchmarks.md).
    case zstd(level: Int = 1)
    /// Snappy (a pure-Swift compressor; the format, not the best ratios).
    case snappy

    var codec: Int32 {
        switch self {
        case .uncompressed: 0
        case .snappy: 1
        case .zstd: 6
        }
    }
}

/// Options of a ``ParquetWriter``.
public struct ParquetWriterConfiguration: Sendable {
    /// Page compression. Default: `.zstd(level: 1)`.
    public var compression: ParquetCompression
    /// A row group is written when this many rows are buffered (checked at `endRows`; a flush splits
    /// larger buffers into row groups of at most this many rows). Default: 1,000,000.
    public var rowGroupRows: Int
    /// A row group is written when the buffered (uncompressed) values reach this many bytes. Default: 128 MiB.
    public var rowGroupBytes: Int
    /// Target size of a data page before compression. Default: 1 MiB.
    public var pageBytes: Int
    /// A dictionary that grows past this many bytes stops growing: the column chunk's next pages are
    /// PLAIN. Default: 1 MiB.
    public var dictionaryPageLimitBytes: Int
    /// Key-value metadata stored in the footer (written sorted by key). Default: empty.
    public var keyValueMetadata: [String: String]
    /// The footer's `created_by`. Default: "parquet-swift version 0.1.0 (build playhead)".
    public var createdBy: String
    /// Whether to write min/max/null-count statistics per column chunk. Default: true.
    public var writeStatistics: Bool
    /// Min/max values longer than this many bytes are not written (the null count still is). Default: 4096.
    public var statisticsMaxValueBytes: Int

    public init(
        compression: ParquetCompression = .zstd(level: 1),
        rowGroupRows: Int = 1_000_000,
        rowGroupBytes: Int = 128 << 20,
        pageBytes: Int = 1 << 20,
        dictionaryPageLimitBytes: Int = 1 << 20,
        keyValueMetadata: [String: String] = [:],
        createdBy: String = "parquet-swift version 0.1.0 (build playhead)",
        writeStatistics: Bool = true,
        statisticsMaxValueBytes: Int = 4096
    ) {
        self.compression = compression
        self.rowGroupRows = rowGroupRows
        self.rowGroupBytes = rowGroupBytes
        self.pageBytes = pageBytes
        self.dictionaryPageLimitBytes = dictionaryPageLimitBytes
        self.keyValueMetadata = keyValueMetadata
        self.createdBy = createdBy
        self.writeStatistics = writeStatistics
        self.statisticsMaxValueBytes = statisticsMaxValueBytes
    }

    func validate() throws(ParquetError) {
        guard rowGroupRows > 0 else { throw ParquetError(.invalidArgument, "rowGroupRows must be positive") }
        guard rowGroupBytes > 0 else { throw ParquetError(.invalidArgument, "rowGroupBytes must be positive") }
        guard pageBytes > 0, pageBytes < Int(Int32.max) / 2 else {
            throw ParquetError(.invalidArgument, "pageBytes must be in 1..<1 GiB")
        }
        guard dictionaryPageLimitBytes >= 0 else { throw ParquetError(.invalidArgument, "dictionaryPageLimitBytes must not be negative") }
    }
}
