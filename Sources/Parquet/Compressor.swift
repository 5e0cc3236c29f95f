import CZstd

/// Compresses pages into a reused buffer.
final class PageCompressor {
    let compression: ParquetCompression
    private var zstd: OpaquePointer?
    let output = ByteSink(capacity: 1 << 16)
    private var snappy = SnappyCompressor()

    init(_ compression: ParquetCompression) throws(ParquetError) {
        self.compression = compression
        if case .zstd = compression {
            guard let context = ZSTD_createCCtx() else { throw ParquetError(.compression, "ZSTD_createCCtx failed") }
            zstd = context
        }
    }

    deinit {
        if let zstd { ZSTD_freeCCtx(zstd) }
    }

    /// Compresses `input`; the result is in ``output`` (or is `input` itself when uncompressed).
    func compress(_ input: ByteSink) throws(ParquetError) -> UnsafeRawBufferPointer {
        switch compression {
        case .uncompressed:
            return input.bytes
        case .zstd(let level):
            let bound = ZSTD_compressBound(input.count)
            output.removeAll()
            let destination = output.unsafeTail(reserving: bound)
            let written = ZSTD_compressCCtx(zstd, destination, bound, input.base, input.count, Int32(level))
            if ZSTD_isError(written) != 0 {
                throw ParquetError(.compression, "zstd: \(String(cString: ZSTD_getErrorName(written)))")
            }
            output.count = written
            return output.bytes
        case .snappy:
            output.removeAll()
            snappy.compress(input.bytes, into: output)
            return output.bytes
        }
    }
}
