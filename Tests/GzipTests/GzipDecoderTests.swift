import CompressNIO
import Gzip
import NIOCore
import Testing

@Suite("Gzip decoder")
struct GzipDecoderTests {
    /// One gzip member of `bytes`, made by another implementation (CompressNIO's deflate).
    static func member(_ bytes: [UInt8]) throws -> [UInt8] {
        var input = ByteBuffer(bytes: bytes)
        let compressed = try input.compress(with: .gzip())
        return Array(compressed.readableBytesView)
    }

    /// Text that compresses: lines of NDJSON-like bytes, `count` of them.
    static func text(_ count: Int, tag: String) -> [UInt8] {
        Array((0..<count).map { #"{"event_id":"\#(tag)-\#($0)","n":\#($0 * 7919 % 1000)}"# + "\n" }.joined().utf8)
    }

    /// Decodes `data` fed in pieces of `piece` bytes, with a window of `chunk` bytes.
    static func decode(_ data: [UInt8], piece: Int, chunk: Int) throws -> [UInt8] {
        let decoder = try GzipDecoder(chunkBytes: chunk)
        var output: [UInt8] = []
        var start = 0
        while start < data.count {
            let end = min(data.count, start + piece)
            try data[start..<end].withUnsafeBytes { bytes in
                try decoder.decode(bytes) { decoded in
                    #expect(decoded.count <= chunk, "a run longer than the window")
                    output.append(contentsOf: decoded)
                }
            }
            start = end
        }
        try decoder.finish()
        return output
    }

    @Test("one member, fed and drained in pieces of every kind of size, gives back the bytes")
    func oneMember() throws {
        let original = Self.text(3000, tag: "a")
        let compressed = try Self.member(original)
        for (piece, chunk) in [(1, 7), (3, 1), (1000, 64), (compressed.count, 256 << 10), (4096, 1 << 20)] {
            #expect(try Self.decode(compressed, piece: piece, chunk: chunk) == original, "pieces of \(piece), chunks of \(chunk)")
        }
    }

    @Test("with a limit, a call hands on at most the limit and one window more, takes only the input it needed, and what zlib holds back comes at the next call, with no new input; the bytes are the same")
    func limitedOutput() throws {
        // 4 MiB of newlines then text, in two members: a few KB that decode to megabytes.
        let original = [UInt8](repeating: 0x0A, count: 4 << 20) + Self.text(2000, tag: "a")
        let compressed = try Self.member(original) + Self.member(Self.text(10, tag: "b"))
        for (limit, chunk, piece) in [(1 << 20, 64 << 10, compressed.count), (100_000, 4096, 1000), (1, 4096, 37)] {
            let decoder = try GzipDecoder(chunkBytes: chunk)
            var output: [UInt8] = []
            var pending: [UInt8] = []
            var start = 0
            var calls = 0
            while start < compressed.count || !pending.isEmpty || decoder.holdsOutput {
                if pending.isEmpty && !decoder.holdsOutput {
                    let end = min(compressed.count, start + piece)
                    pending = Array(compressed[start..<end])
                    start = end
                }
                var handed = 0
                let taken = try pending.withUnsafeBytes { bytes in
                    try decoder.decode(bytes, limit: limit) { decoded in
                        handed += decoded.count
                        output.append(contentsOf: decoded)
                    }
                }
                #expect(handed <= limit + chunk, "a call handed on \(handed) bytes past its limit of \(limit)")
                pending.removeFirst(taken)
                calls += 1
            }
            try decoder.finish()
            #expect(output == original + Self.text(10, tag: "b"), "limit \(limit), window \(chunk), pieces of \(piece)")
            #expect(calls >= (4 << 20) / (limit + chunk), "\(calls) calls")
        }
    }

    @Test("members one after another decode as one stream, an empty member included")
    func severalMembers() throws {
        let parts = [Self.text(500, tag: "a"), [], Self.text(1, tag: "b"), Self.text(2000, tag: "c")]
        let compressed = try parts.flatMap { try Self.member($0) }
        for (piece, chunk) in [(1, 5), (17, 4096), (compressed.count, 1 << 16)] {
            #expect(try Self.decode(compressed, piece: piece, chunk: chunk) == parts.flatMap { $0 })
        }
    }

    @Test("data cut off anywhere inside a member is an error, never a shorter result")
    func cutOff() throws {
        let original = Self.text(40, tag: "t")
        let compressed = try Self.member(original) + Self.member(original)
        let memberLength = try Self.member(original).count
        for length in 0..<compressed.count where length != memberLength {
            do {
                let decoded = try Self.decode(Array(compressed.prefix(length)), piece: 64, chunk: 100)
                Issue.record("\(length) of \(compressed.count) bytes decoded to \(decoded.count) bytes without an error")
            } catch let error as GzipDecoder.Error {
                #expect(error.message.contains(length == 0 ? "no gzip data" : "cut off"), "\(length): \(error.message)")
            }
        }
    }

    @Test("bytes after the last member that are not another member, and corrupt data, are errors")
    func trailingAndCorrupt() throws {
        let compressed = try Self.member(Self.text(100, tag: "x"))
        for trailer in [[UInt8]("JUNK".utf8), [0], [0x1f, 0x00]] {
            #expect(throws: GzipDecoder.Error.self, "trailer \(trailer)") { try Self.decode(compressed + trailer, piece: 1000, chunk: 4096) }
        }
        // A flipped bit in the deflate data or in the trailer's CRC.
        for position in [compressed.count / 2, compressed.count - 6] {
            var corrupt = compressed
            corrupt[position] ^= 0x10
            #expect(throws: GzipDecoder.Error.self, "bit flipped at \(position)") { try Self.decode(corrupt, piece: 1000, chunk: 4096) }
        }
        #expect(throws: GzipDecoder.Error.self) { try Self.decode(Array("not gzip at all".utf8), piece: 100, chunk: 100) }
    }
}

@Suite("Gzip request bodies")
struct GzipBodyTests {
    /// CRC-32 (gzip's), bit by bit.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    /// `member` with a header CRC-16 (FHCRC), right or wrong.
    static func withHeaderCRC(_ member: [UInt8], right: Bool) -> [UInt8] {
        var header = Array(member[0..<10])
        #expect(header[3] == 0, "the member has no optional header fields")
        header[3] |= 0x02
        let crc = UInt16(truncatingIfNeeded: crc32(header)) ^ (right ? 0 : 0x1234)
        return header + [UInt8(crc & 0xFF), UInt8(crc >> 8)] + member[10...]
    }

    static func decode(_ body: [UInt8]) -> Result<[UInt8], GzipBody.Failure> {
        body.withUnsafeBytes { bytes in
            do throws(GzipBody.Failure) {
                var decoded = try GzipBody.decode(bytes, maxBytes: 1 << 20)
                return .success(decoded.readBytes(length: decoded.readableBytes) ?? [])
            } catch {
                return .failure(error)
            }
        }
    }

    @Test("a header CRC-16 (FHCRC) is checked, as zlib, gzip -d and import check it: a wrong one is refused (libdeflate skipped it, and the edge accepted what import refuses); a right one decodes")
    func headerCRC() throws {
        let text = GzipDecoderTests.text(100, tag: "h")
        let member = try GzipDecoderTests.member(text)
        #expect(try Self.decode(Self.withHeaderCRC(member, right: true)).get() == text)
        switch Self.decode(member + Self.withHeaderCRC(member, right: false)) {
        case .success: Issue.record("a wrong header CRC was accepted")
        case .failure(let failure): #expect(!failure.tooLarge && failure.message.contains("header crc mismatch"), "\(failure.message)")
        }
    }

    @Test("a body of one byte that cannot start gzip is said not to be gzip (it was said to be cut off); one that can is cut off")
    func oneByte() {
        guard case .failure(let failure) = Self.decode([0x78]) else {
            Issue.record("one byte decoded")
            return
        }
        #expect(failure.message == "the body is not gzip: it starts with the byte 78, not gzip's 1f 8b (sent uncompressed with Content-Encoding: gzip?)", "\(failure.message)")
        guard case .failure(let cut) = Self.decode([0x1F]) else {
            Issue.record("one byte decoded")
            return
        }
        #expect(cut.message.contains("cut off"), "\(cut.message)")
    }
}
