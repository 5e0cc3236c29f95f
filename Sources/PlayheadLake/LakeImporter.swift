import Foundation
import CompressNIO
import Logging
import NIOCore
import NIOPosix
import PlayheadEvents

#if canImport(Glibc)
import Glibc
#endif

/// What one `playhead import` of a file did.
public struct LakeImportSummary: Sendable, Equatable {
    /// Events read from the file (accepted + rejected).
    public var events = 0
    /// Events written to `events/`.
    public var accepted = 0
    /// Events written to `rejected/`, with the reason.
    public var rejected = 0
    /// Events dropped because their `event_id` was already imported from this file.
    public var duplicates = 0
    /// Parquet files written.
    public var files = 0
    /// Bytes of Parquet written.
    public var bytes = 0
    /// Bytes of NDJSON read (after gzip decoding).
    public var inputBytes = 0
    /// Files of an earlier import of the same file removed (not rewritten by this one).
    public var replaced = 0

    public init() {}
}

/// Backfills NDJSON files (plain or gzip) into the lake, through the same decoder and validation as
/// `POST /v1/events` and the same Parquet tables as the lake writer. The log is not involved: the
/// files themselves are the durable source, and importing a file again writes the same file names,
/// replacing the earlier import instead of duplicating it.
///
/// Work runs on `threadPool` (never on the cooperative pool): while one batch is being encoded and
/// compressed, the next one is decoded, so two cores are kept busy.
public final class LakeImporter: Sendable {
    private let store: any LakeStore
    private let configuration: LakeWriterConfiguration
    private let decoder: EventDecoder
    private let threadPool: NIOThreadPool
    private let logger: Logger

    /// The bytes of NDJSON decoded at a time.
    static let chunkBytes = 8 * 1024 * 1024
    /// Events per file of an import (at most `--flush-events`): small enough that a file of 1M events
    /// is encoded as four batches in parallel rather than one batch on one core at the end.
    static let encodeBatchEvents = 250_000
    /// Batches encoded at once, while the next chunk is decoded.
    static let maxEncodesInFlight = 2

    public init(
        store: any LakeStore, configuration: LakeWriterConfiguration, decoder: EventDecoderConfiguration,
        threadPool: NIOThreadPool, logger: Logger
    ) {
        var decoderConfiguration = decoder
        decoderConfiguration.maxEventsPerRequest = Int.max
        self.store = store
        self.configuration = configuration
        self.decoder = EventDecoder(configuration: decoderConfiguration)
        self.threadPool = threadPool
        self.logger = logger
    }

    /// Imports the NDJSON file at `path`. Every event gets `receivedAt` (µs since the epoch) as its
    /// `received_at`, so a backfill lands in the partition of the hour it was imported in.
    public func importFile(_ path: String, receivedAt: Int64) async throws -> LakeImportSummary {
        let file = try ImportFile(path: path)
        defer { file.close() }
        var state = ImportState(tag: file.tag, dedupWindow: configuration.dedupWindow)
        // The file's rollups: one aggregator fed in file order by the decode step (watch time needs
        // each session's events in order), written once at the end as `rollups/…/import-<tag>.parquet`.
        state.rollups = configuration.rollups ? RollupAggregator() : nil
        var pending: [UInt8] = []
        pending.reserveCapacity(Self.chunkBytes * 2)
        var writing: [Task<EncodedBatch, any Error>] = []
        var summary = LakeImportSummary()
        let batchEvents = max(1, min(configuration.flushEvents, Self.encodeBatchEvents))

        var written = Set<String>()

        func tally(_ files: [LakeFile]) {
            summary.files += files.count
            summary.bytes += files.reduce(0) { $0 + $1.bytes.count }
            for file in files { written.insert(file.path) }
        }

        func collect(_ task: Task<EncodedBatch, any Error>) async throws {
            tally(try await task.value.files)
        }

        // Every hour this file's imports have written to, recorded before writing: a re-import
        // (in another hour, or with other batch sizes) removes what the earlier ones left.
        let manifest = ImportManifest.path(tag: state.tag)
        var hours = try await ImportManifest.read(store, manifest)
        hours.insert(LakePaths.hourStart(receivedAt))
        try await ImportManifest.write(store, manifest, hours: hours)

        func startWrite(events: RecordBuffer, rejected: RecordBuffer, sequence: Int) async throws {
            // At most `maxEncodesInFlight` batches being encoded, while the next chunk is decoded.
            while writing.count >= Self.maxEncodesInFlight { try await collect(writing.removeFirst()) }
            let store = self.store
            let configuration = self.configuration
            let tag = state.tag
            let pool = threadPool
            writing.append(Task {
                var batch = EncodedBatch()
                for (kind, records) in [(DatasetKind.events, events), (.rejected, rejected)] where !records.isEmpty {
                    let encoded = try await pool.runIfActive {
                        var noDedup = DedupWindow(capacity: 0)
                        return try LakeBatchEncoder.encode(
                            kind: kind, records: records, dedup: &noDedup, rollups: nil, configuration: configuration,
                            dataPath: { LakePaths.importFile(dataset: kind.name, hourStart: $0, tag: tag, sequence: sequence) },
                            rollupPath: { _ in "" }
                        )
                    }
                    for file in encoded.files { try await store.put(file.path, file.bytes) }
                    batch.files += encoded.files
                    batch.rows += encoded.rows
                }
                return batch
            })
        }

        var endOfFile = false
        while !endOfFile {
            let chunk = try await threadPool.runIfActive { try file.read(maxBytes: Self.chunkBytes) }
            endOfFile = chunk == nil
            if let chunk { pending += chunk }
            summary.inputBytes += chunk?.count ?? 0
            // Decode every complete line (all of it at the end of the file).
            let cut = endOfFile ? pending.count : (pending.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0)
            if cut > 0 {
                let lines = Array(pending[..<cut])
                pending.removeSubrange(..<cut)
                let decoder = self.decoder
                state = try await threadPool.runIfActive { [state] in
                    var state = state
                    state.decode(lines, decoder: decoder, receivedAt: receivedAt)
                    return state
                }
            }
            if state.events.count >= batchEvents || state.events.byteCount >= configuration.flushBytes || endOfFile {
                let (events, rejected, sequence) = state.takeBatch()
                if !events.isEmpty || !rejected.isEmpty {
                    try await startWrite(events: events, rejected: rejected, sequence: sequence)
                }
            }
        }
        for task in writing { try await collect(task) }
        writing.removeAll()
        if let rollups = state.rollups {
            let configuration = self.configuration
            let tag = state.tag
            let files = try await threadPool.runIfActive {
                try LakeBatchEncoder.rollupFiles(rollups, configuration: configuration) {
                    LakePaths.importRollupFile(hourStart: $0, tag: tag)
                }
            }
            for file in files { try await store.put(file.path, file.bytes) }
            tally(files)
        }
        // This import is whole: remove the files of earlier imports of the same file that it did not
        // rewrite, then record that only this hour holds its files.
        for hour in hours.sorted() {
            for dataset in ["events", "rejected", "rollups"] {
                let prefix = "\(dataset)/\(LakePaths.partition(hourStart: hour))/import-\(state.tag)"
                for path in try await store.list(prefix: prefix) where !written.contains(path) {
                    try await store.delete(path)
                    summary.replaced += 1
                }
            }
        }
        try await ImportManifest.write(store, manifest, hours: [LakePaths.hourStart(receivedAt)])
        summary.events = state.accepted + state.rejected + state.duplicates
        summary.accepted = state.accepted
        summary.rejected = state.rejected
        summary.duplicates = state.duplicates
        logger.info("import: \(path) done", metadata: [
            "import.events": "\(summary.events)", "import.accepted": "\(summary.accepted)",
            "import.rejected": "\(summary.rejected)", "import.files": "\(summary.files)",
        ])
        return summary
    }
}

/// The decoder's output for an import, carried between decode steps.
struct ImportState: @unchecked Sendable {
    let tag: String
    var events = RecordBuffer()
    var rejectedRecords = RecordBuffer()
    /// In a class: the state is copied into each decode step and back, and a struct holding the
    /// window's dictionary would be copied whole (copy-on-write) at the first event of every chunk.
    let dedup: DedupBox
    /// Events seen before the current chunk (so rejections name the event's number in the file).
    var base = 0
    var accepted = 0
    var rejected = 0
    var duplicates = 0
    var sequence = 0
    /// The import's rollups, fed in file order (a class shared by the copies of this state; the
    /// decode steps run one after another).
    var rollups: RollupAggregator?

    init(tag: String, dedupWindow: Int) {
        self.tag = tag
        dedup = DedupBox(DedupWindow(capacity: dedupWindow))
    }

    mutating func decode(_ lines: [UInt8], decoder: EventDecoder, receivedAt: Int64) {
        var sink = ImportSink(state: self, receivedAt: receivedAt)
        let outcome = lines.withUnsafeBytes { decoder.decode($0, format: .ndjson, receivedAt: receivedAt, into: &sink) }
        self = sink.state
        base += outcome.accepted + outcome.rejected
    }

    mutating func takeBatch() -> (RecordBuffer, RecordBuffer, Int) {
        defer {
            events = RecordBuffer()
            rejectedRecords = RecordBuffer()
            sequence += 1
        }
        return (events, rejectedRecords, sequence)
    }
}

/// `_playhead/imports/<tag>.json`: the hours (UTC, µs) where imports of one file wrote files.
enum ImportManifest {
    struct Body: Codable {
        var hours: [Int64]
    }

    static func path(tag: String) -> String { "_playhead/imports/\(tag).json" }

    static func read(_ store: any LakeStore, _ path: String) async throws -> Set<Int64> {
        guard let bytes = try await store.get(path) else { return [] }
        do {
            return Set(try JSONDecoder().decode(Body.self, from: Data(bytes)).hours)
        } catch {
            throw LakeError(.io, "cannot read the import manifest \(path): \(error)")
        }
    }

    static func write(_ store: any LakeStore, _ path: String, hours: Set<Int64>) async throws {
        let bytes = try JSONEncoder().encode(Body(hours: hours.sorted()))
        try await store.put(path, Array(bytes))
    }
}

/// A dedup window shared by reference (used by one decode step at a time).
final class DedupBox: @unchecked Sendable {
    var window: DedupWindow
    init(_ window: DedupWindow) { self.window = window }
}

/// Collects accepted and rejected records of an import, dropping repeated `event_id`s.
struct ImportSink: EventSink {
    var state: ImportState
    let receivedAt: Int64
    private var scratch: [UInt8] = []

    init(state: ImportState, receivedAt: Int64) {
        self.state = state
        self.receivedAt = receivedAt
    }

    mutating func accepted(index: Int, key: UnsafeRawBufferPointer, dimensions: EventDimensions, record: UnsafeRawBufferPointer) {
        let view = try? EventRecordView(record)
        if let view, !state.dedup.window.observe(hash64(view.eventIDBytes)) {
            state.duplicates += 1
            return
        }
        if let view { state.rollups?.add(view, offset: Int64(state.base + index)) }
        state.events.append(offset: Int64(state.base + index), record)
        state.accepted += 1
    }

    mutating func rejected(_ error: EventValidationError, record: UnsafeRawBufferPointer) {
        state.rejected += 1
        // Renumber: the decoder counts events within the chunk; operators want the number in the file.
        guard error.index >= 0, let view = try? RejectedRecordView(record) else {
            state.rejectedRecords.append(offset: Int64(state.base), record)
            return
        }
        scratch.removeAll(keepingCapacity: true)
        RejectedRecordEncoder.encode(
            receivedAt: receivedAt, index: Int32(clamping: state.base + error.index), reason: error.reason,
            field: error.field, message: error.message, eventID: error.eventID, raw: view.raw, into: &scratch
        )
        scratch.withUnsafeBytes { state.rejectedRecords.append(offset: Int64(state.base + error.index), $0) }
    }
}

/// A file being imported: plain NDJSON, or gzip (recognised by its magic bytes).
final class ImportFile: @unchecked Sendable {
    private let fd: Int32
    /// Names the files of this import: the same file imported again gets the same names.
    let tag: String
    private var gzip: (any NIODecompressor)?
    private var first = true
    private var finished = false

    init(path: String) throws {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw LakeError(.io, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        fstat(fd, &info)
        var identity = "\(path)|\(info.st_size)|\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        let hash = identity.withUTF8 { hash64(UnsafeRawBufferPointer($0)) }
        let hex = String(hash, radix: 16)
        tag = String(repeating: "0", count: 16 - hex.count) + hex
    }

    func close() { _ = Glibc.close(fd) }

    /// Up to about `maxBytes` of NDJSON, or nil at the end of the file.
    func read(maxBytes: Int) throws -> [UInt8]? {
        guard !finished else { return nil }
        var raw = [UInt8](repeating: 0, count: gzip == nil && !first ? maxBytes : maxBytes / 4)
        let count = raw.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count >= 0 else { throw LakeError(.io, "read failed: \(String(cString: strerror(errno)))") }
        raw.removeSubrange(count...)
        if first {
            first = false
            if raw.count >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
                let decompressor = CompressionAlgorithm.gzip().decompressor
                try decompressor.startStream()
                decompressor.window = ByteBufferAllocator().buffer(capacity: 4 * 1024 * 1024)
                gzip = decompressor
            }
        }
        guard let gzip else {
            if count == 0 { finished = true; return nil }
            return raw
        }
        if count == 0 {
            finished = true
            try gzip.finishStream()
            return nil
        }
        var input = ByteBuffer(bytes: raw)
        var output: [UInt8] = []
        do {
            try input.decompressStream(with: gzip) { window in
                output.append(contentsOf: window.readableBytesView)
            }
        } catch {
            throw LakeError(.io, "the gzip data is corrupt: \(error)")
        }
        return output
    }
}
