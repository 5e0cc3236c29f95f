import CZlib

/// Decodes gzip data (RFC 1952) as it arrives, with zlib.
///
/// Unlike a decoder that stops at the end of the first member:
/// - several members one after another (`cat a.gz b.gz`, and what bgzip and `pigz --independent`
///   write) decode as one stream, as `gzip -d` does;
/// - data that ends inside a member (a cut-off file or body) is an error at ``finish()``;
/// - bytes after a member that are not another member are an error.
public final class GzipDecoder {
    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    private var stream = z_stream()
    /// Inside a member: its header has started and its trailer has not been read.
    private var inMember = false
    /// Members decoded to their end.
    public private(set) var members = 0
    /// Compressed bytes taken so far (error positions count from the start of the data).
    public private(set) var consumed = 0
    private var window: [UInt8]
    /// The last call stopped at its output limit with zlib's window full: zlib may hold more
    /// output, which the next call hands on (with new input or none).
    public private(set) var holdsOutput = false

    /// - Parameter chunkBytes: the most decoded bytes handed to `output` at a time.
    public init(chunkBytes: Int = 256 << 10) throws(Error) {
        // Not zeroed: zlib writes every byte that is read back.
        window = [UInt8](unsafeUninitializedCapacity: max(1, chunkBytes)) { _, initialized in initialized = max(1, chunkBytes) }
        let status = playhead_inflate_init_gzip(&stream)
        guard status == Z_OK else { throw Error(message: "zlib could not start a gzip stream (status \(status))") }
    }

    deinit { inflateEnd(&stream) }

    /// Decodes `input`, the next bytes of the compressed data, handing each run of decoded bytes to
    /// `output`, until all of it is taken or `limit` decoded bytes were handed on (then by up to one
    /// window more); returns the bytes of `input` taken. What is not taken must be offered again,
    /// first, at the next call. (A gzip file's 2 MiB can decode to 2 GB: `import` reads with a limit.)
    @discardableResult
    public func decode(_ input: UnsafeRawBufferPointer, limit: Int = .max, output: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        var next = input.baseAddress ?? UnsafeRawPointer(Self.nothing)
        var remaining = input.count
        var handed = 0
        while true {
            if handed >= limit { return input.count - remaining }
            if !inMember {
                guard remaining > 0 else { return input.count }
                if members > 0 {
                    // Another member, or trailing bytes that are not gzip.
                    let first = next.load(as: UInt8.self)
                    let second: UInt8? = remaining > 1 ? (next + 1).load(as: UInt8.self) : nil
                    guard first == 0x1f && (second == nil || second == 0x8b) else {
                        throw Error(message: "\(remaining) bytes after the end of the gzip data (at byte \(consumed)) are not another gzip member")
                    }
                    inflateReset(&stream)
                }
                inMember = true
            }
            let offered = min(remaining, Int(UInt32.max))
            stream.next_in = UnsafeMutablePointer(mutating: next.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = UInt32(offered)
            let (status, produced) = window.withUnsafeMutableBytes { buffer -> (Int32, Int) in
                stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = UInt32(buffer.count)
                let status = inflate(&stream, Z_NO_FLUSH)
                return (status, buffer.count - Int(stream.avail_out))
            }
            let used = offered - Int(stream.avail_in)
            next += used
            remaining -= used
            consumed += used
            holdsOutput = status == Z_OK && produced == window.count
            if produced > 0 {
                handed += produced
                try window.withUnsafeBytes { try output(UnsafeRawBufferPointer(rebasing: $0[..<produced])) }
            }
            switch status {
            case Z_STREAM_END:
                inMember = false
                members += 1
            case Z_OK:
                // Input is left, or the window filled and zlib may hold more output: go on.
                if remaining == 0 && produced < window.count { return input.count }
            case Z_BUF_ERROR:
                // No progress was possible: all input is taken and no output is pending.
                holdsOutput = false
                guard remaining == 0 else { throw Error(message: "zlib made no progress at byte \(consumed)") }
                return input.count
            case Z_DATA_ERROR:
                let reason = stream.msg.map { String(cString: $0) } ?? "corrupt data"
                throw Error(message: "not valid gzip at byte \(consumed): \(reason)")
            case Z_MEM_ERROR:
                throw Error(message: "zlib ran out of memory")
            default:
                throw Error(message: "zlib failed with status \(status) at byte \(consumed)")
            }
        }
    }

    /// Where zlib is pointed when there is no input (it reads none).
    nonisolated(unsafe) private static let nothing = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)

    /// The compressed data has ended: it must have ended with a whole member.
    public func finish() throws(Error) {
        if inMember {
            throw Error(message: "the gzip data ends inside member \(members + 1), after \(consumed) bytes: it is cut off")
        }
        if members == 0 { throw Error(message: "no gzip data") }
    }
}
