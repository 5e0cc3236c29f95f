import Gzip
import NIOCore

extension FuzzChecks {
    /// The edge's gzip body decoding on any bytes. The first byte chooses the limit on the decoded
    /// size (64 bytes, 4 KiB or 1 MiB, so that bodies reach it); the rest is the body.
    ///
    /// - Nothing decoded is longer than the limit.
    /// - libdeflate (the fast path) and zlib's streaming decoder (which explains a refusal) agree:
    ///   a body libdeflate decodes, zlib decodes to the same bytes; one libdeflate finds too large,
    ///   zlib does not accept either. (zlib may take what libdeflate refuses: that is what the
    ///   second decoder is for.)
    /// - A refusal says why (a message that is not empty).
    public static func gzip(_ input: UnsafeRawBufferPointer) -> [String] {
        guard let options = input.first else { return [] }
        let body = UnsafeRawBufferPointer(rebasing: input.dropFirst())
        let maxBytes = [64, 4096, 1 << 20][Int(options) % 3]
        let whole = Result { () throws(GzipBody.Failure) in try GzipBody.decodeWhole(body, maxBytes: maxBytes) }
        let explained = Result { () throws(GzipBody.Failure) in try GzipBody.decodeExplaining(body, maxBytes: maxBytes) }
        var problems: [String] = []
        for (name, result) in [("libdeflate", whole.map { $0 }), ("zlib", explained.map { Optional($0) })] {
            switch result {
            case .success(let buffer?) where buffer.readableBytes > maxBytes:
                problems.append("\(name) decoded \(buffer.readableBytes) bytes, over the limit of \(maxBytes)")
            case .failure(let failure) where failure.message.isEmpty:
                problems.append("\(name) refused the body without a reason")
            default:
                break
            }
        }
        switch (whole, explained) {
        case (.success(let fast?), .success(let slow)) where fast != slow:
            problems.append("libdeflate and zlib decode the body differently: \(fast.readableBytes) and \(slow.readableBytes) bytes")
        case (.success(let fast?), .failure(let failure)):
            problems.append("libdeflate decodes the body (\(fast.readableBytes) bytes), zlib refuses it: \(failure.message)")
        case (.failure(let failure), .success(let slow)) where failure.tooLarge:
            problems.append("libdeflate finds the body over \(maxBytes) bytes, zlib decodes it to \(slow.readableBytes)")
        default:
            break
        }
        // What the edge calls: one of the two answers.
        switch Result(catching: { () throws(GzipBody.Failure) in try GzipBody.decode(body, maxBytes: maxBytes) }) {
        case .success(let buffer) where buffer.readableBytes > maxBytes:
            problems.append("decode gave \(buffer.readableBytes) bytes, over the limit of \(maxBytes)")
        default:
            break
        }
        return problems
    }
}
