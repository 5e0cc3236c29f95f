import CDeflate
import NIOCore

/// A whole gzip request body, decoded in one go (the HTTP edge's `Content-Encoding: gzip`).
///
/// Every member of the body (a client may concatenate them), and an error for a body cut off inside
/// one or followed by bytes that are not gzip: nothing the client sent is dropped silently.
///
/// libdeflate decodes the body in one go, at about 1.7 times zlib's speed (it also checks each
/// member's CRC-32 and length). It says only that bad data is bad, so a body it refuses is decoded
/// again by zlib's streaming decoder (``GzipDecoder``), which says where and why. `scripts/fuzz
/// gzip` checks that the two agree (docs/fuzzing.md).
public enum GzipBody {
    public struct Failure: Error, Sendable {
        /// The decoded bytes would pass `maxBytes` (HTTP 413); else the body is not valid gzip.
        public var tooLarge: Bool
        public var message: String
    }

    /// The decoded body, at most `maxBytes` long.
    public static func decode(_ input: UnsafeRawBufferPointer, maxBytes: Int) throws(Failure) -> ByteBuffer {
        if let output = try decodeWhole(input, maxBytes: maxBytes) { return output }
        return try decodeExplaining(input, maxBytes: maxBytes)
    }

    /// The body decoded by libdeflate, nil when it is not valid gzip.
    package static func decodeWhole(_ input: UnsafeRawBufferPointer, maxBytes: Int) throws(Failure) -> ByteBuffer? {
        guard let decompressor = libdeflate_alloc_decompressor() else { return nil }
        defer { libdeflate_free_decompressor(decompressor) }
        // No bytes at all is not gzip either ("no gzip data").
        guard let base = input.baseAddress, !input.isEmpty else { return nil }
        // A member ends with its decoded length (mod 2^32): with one member, the exact size.
        var trailerSize = 0
        if input.count >= 18 {
            trailerSize = (0..<4).reduce(0) { $0 | Int(input[input.count - 4 + $1]) << (8 * $1) }
        }
        let guess = trailerSize > 0 && trailerSize <= maxBytes ? trailerSize : input.count * 4
        var output = ByteBufferAllocator().buffer(capacity: min(maxBytes, max(4096, guess)))
        var position = 0
        while position < input.count {
            // libdeflate skips a header's CRC-16 (FHCRC) without checking it; zlib checks it, as
            // `gzip -d` and `import` do: such a member (rare) is left to zlib. A bad one was
            // accepted here and refused by `import` (an outside review).
            if input.count - position > 3 && input[position + 3] & 0x02 != 0 { return nil }
            var result = LIBDEFLATE_SUCCESS
            var used = 0
            let room = maxBytes - output.readableBytes
            var offered = 0
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { space in
                var produced = 0
                offered = min(space.count, room)
                result = libdeflate_gzip_decompress_ex(
                    decompressor, base + position, input.count - position, space.baseAddress, offered, &used, &produced
                )
                return result == LIBDEFLATE_SUCCESS ? produced : 0
            }
            switch result {
            case LIBDEFLATE_SUCCESS:
                position += used
            case LIBDEFLATE_INSUFFICIENT_SPACE:
                if offered >= room {
                    throw Failure(tooLarge: true, message: "the body is larger than \(maxBytes) bytes once gzip-decoded")
                }
                // Decoded again from the member's start, with room for more, up to the limit.
                output.reserveCapacity(min(maxBytes, max(output.capacity * 4, 4096)))
            default:
                return nil
            }
        }
        return output
    }

    /// The body decoded by zlib's streaming decoder, or the reason it is not valid gzip.
    package static func decodeExplaining(_ input: UnsafeRawBufferPointer, maxBytes: Int) throws(Failure) -> ByteBuffer {
        // The usual mistake: a body sent as it is with `Content-Encoding: gzip`. zlib's words for it
        // ("incorrect header check at byte 2") pointed nowhere near it (an outside review).
        // (One byte that cannot start gzip is said so too: it was "cut off", a review.)
        if let first = input.first, first != 0x1F || (input.count >= 2 && input[1] != 0x8B) {
            let shown = input.prefix(2).map { ($0 < 0x10 ? "0" : "") + String($0, radix: 16) }
            let bytes = shown.count == 1 ? "the byte \(shown[0])" : "the bytes \(shown.joined(separator: " "))"
            throw Failure(
                tooLarge: false,
                message: "the body is not gzip: it starts with \(bytes), not gzip's 1f 8b (sent uncompressed with Content-Encoding: gzip?)")
        }
        var output = ByteBufferAllocator().buffer(capacity: min(maxBytes, max(4096, input.count * 4)))
        do {
            let decoder = try GzipDecoder(chunkBytes: 64 << 10)  // under malloc's mmap threshold
            try decoder.decode(input) { chunk in
                guard output.readableBytes + chunk.count <= maxBytes else {
                    throw Failure(tooLarge: true, message: "the body is larger than \(maxBytes) bytes once gzip-decoded")
                }
                output.writeBytes(chunk)
            }
            try decoder.finish()
        } catch let error as GzipDecoder.Error {
            throw Failure(tooLarge: false, message: "the body is not valid gzip: \(error.message)")
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(tooLarge: false, message: "the body is not valid gzip: \(error)")
        }
        return output
    }
}
