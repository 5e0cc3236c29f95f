import Foundation
import Gzip
import Logging
import NIOCore
import NIOPosix
import PlayheadEvents
import Synchronization

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
    /// Files of an earlier import of the same file removed (not rewritten by this one), and with
    /// `replaceEarlierVersions`, the files of imports of the same path when it had another size or
    /// modification time.
    public var replaced = 0
    /// Imports of the same path when it had another size or modification time, whose files were
    /// kept (without `replaceEarlierVersions`): a file touched, fetched again or appended to is
    /// another file, and its events may now be in the lake twice.
    public var earlierVersionsKept = 0
    /// Imports of other paths whose file had this one's size and modification time, to the
    /// nanosecond: this file moved, renamed, or copied with its time kept, so its events may now be
    /// in the lake twice (a warning names them).
    public var sameFileElsewhere = 0

    public init() {}
}

/// Backfills NDJSON files (plain or gzip) into the lake, through the same decoder and validation as
/// `POST /v1/events` and the same Parquet tables as the lake writer. The log is not involved: the
/// files themselves are the durable source, and importing a file again removes the earlier import's
/// files once it is whole, instead of duplicating them.
///
/// Work runs on `threadPool` (never on the cooperative pool): while one batch is being encoded and
/// compressed, the next one is decoded, so two cores are kept busy.
public final class LakeImporter: Sendable {
    private let store: any LakeStore
    private let configuration: LakeWriterConfiguration
    private let decoder: EventDecoder
    /// A line longer than this is not held whole (``LongLine``).
    private let lineLimit: Int
    private let threadPool: NIOThreadPool
    private let logger: Logger
    /// Set from a signal handler (`playhead import` on SIGINT or SIGTERM): the file being imported
    /// stops at its next chunk and is taken out of the lake again, as a file cut off is.
    public let interruption = Interruption()

    /// The bytes of NDJSON decoded at a time.
    static let chunkBytes = 8 * 1024 * 1024
    /// Events per file of an import (at most `--flush-events`): small enough that a file of 1M events
    /// is encoded as four batches in parallel rather than one batch on one core at the end.
    static let encodeBatchEvents = 250_000
    /// Batches encoded at once, while the next chunks are decoded.
    static let maxEncodesInFlight = 2
    /// Chunks decoded at once (each on its own thread), ahead of the step that takes them in order.
    static let maxDecodesInFlight = 3
    /// How often a long import logs how far it has come.
    static let progressEvery: Duration = .seconds(10)
    /// The last batch of a file is encoded as two files at once when it has this many events (so
    /// the end of an import does not leave a core idle).
    static let splitLastBatchRows = 20_000

    public init(
        store: any LakeStore, configuration: LakeWriterConfiguration, decoder: EventDecoderConfiguration,
        threadPool: NIOThreadPool, logger: Logger
    ) {
        var decoderConfiguration = decoder
        decoderConfiguration.maxEventsPerRequest = Int.max
        self.store = store
        self.configuration = configuration
        self.decoder = EventDecoder(configuration: decoderConfiguration)
        lineLimit = LongLine.limit(maxEventBytes: decoder.maxEventBytes)
        self.threadPool = threadPool
        self.logger = logger
    }

    /// Imports the NDJSON file at `path`. Every event gets `receivedAt` (µs since the epoch) as its
    /// `received_at`, so a backfill lands in the partition of the hour it was imported in. With
    /// `replaceEarlierVersions`, the imports of the same path when it had another size or
    /// modification time are removed once this one is whole (else they are kept, and counted).
    ///
    /// One import of a file runs at a time: a second one, in this process or another, is refused
    /// (a lease on the file's path in the lake, `_playhead/imports/paths/<key>.lock`).
    public func importFile(_ path: String, receivedAt: Int64, replaceEarlierVersions: Bool = false) async throws -> LakeImportSummary {
        let file = try ImportFile(path: path)
        file.interruption = interruption
        defer { file.close() }
        // The first chunk is read, and its format checked, before anything is written in the lake:
        // a file that is not NDJSON leaves no trace there (it left its path's index, emptied, and
        // its lease, a probe).
        let first: ImportChunk
        do {
            first = try await threadPool.runIfActive { try Self.completeLines(file, after: []) }
            if let head = ImportFile.firstContent(first.lines.complete, then: first.lines.rest) {
                try ImportFile.checkIsNDJSON(head, gzip: file.isGzip)
            }
        } catch let error as ImportInputError {
            throw LakeError(.io, "\(path): \(error.message); nothing of it was imported")
        }
        if first.end && ImportPiece.isBlank(first.lines.complete) && ImportPiece.isBlank(first.lines.rest) && !replaceEarlierVersions {
            // Nothing to import, and nothing written: recorded as an import of its path, an empty
            // file made the import of the next version warn that the events of both were in the
            // lake twice (a probe). (With --replace-earlier-versions it runs as any import: an
            // empty version replaces the earlier ones, as asked.)
            // A stream that ended after a stop was asked for: interrupted, not empty (it exited 0).
            if let signal = interruption.signal { throw ImportInterrupted(signal: signal) }
            logger.warning("import: \(path) holds no event (it is empty, or only blank lines); nothing was written", metadata: [
                "import.input_bytes": .stringConvertible(first.added),
            ])
            var summary = LakeImportSummary()
            summary.inputBytes = first.added
            return summary
        }
        let leasePath = ImportManifest.leasePath(file.pathKey)
        let keeper: LeaseKeeper
        // The manifests are written only while they are as this import left them, where the store
        // can say so (conditional writes: those the lease needs).
        var guarded = true
        // A stream shares its path with no other import (``ImportFile/isStream``): no hold to take
        // (a lock file per pipe was left in a folder lake for good).
        if file.isStream {
            keeper = LeaseKeeper(lease: NoLakeLease(), logger: logger)
        } else {
        switch try await store.lease(leasePath, holder: LakeLeases.holderDescription()) {
        case .held(let lease):
            keeper = LeaseKeeper(lease: lease, logger: logger)
            if let previous = lease.takenOverFrom {
                // That process may only be paused: when it comes back, it finds the lease gone at its
                // next write and deletes what it wrote (its files have their own names).
                logger.warning("import: took over the hold on \(file.canonicalPath) from an import that did not renew it (\(previous)); if that process is only paused, it stops at its next write and deletes its own files", metadata: [
                    "import.lease": "\(store.displayName)/\(leasePath)",
                ])
            }
        case .unsupported(let why):
            logger.warning("import: \(why): nothing keeps a second import of \(path) from running at the same time, which would delete this one's files; run one at a time")
            keeper = LeaseKeeper(lease: NoLakeLease(), logger: logger)
            guarded = false
        case .heldByOther(let who):
            throw LakeError(
                .otherWriter,
                "another import of \(file.canonicalPath) into \(store.displayName) is running (\(who)): two imports of one file at once delete each other's files, so this one did not start. Wait for that one to end. "
                    + (store is FileLakeStore
                        ? "(An import that was killed holds \(leasePath) no longer: the lock is the kernel's.)"
                        : "(The hold of an import that was killed goes stale \(LakeLeases.staleAfter.components.seconds) s after it was last renewed.)")
            )
        }
        }
        keeper.start()
        do {
            let summary = try await importHeld(
                file, first: first, path: path, receivedAt: receivedAt, replaceEarlierVersions: replaceEarlierVersions,
                keeper: keeper, guarded: guarded
            )
            guard await keeper.stop() else {
                // Taken over while this import ended (paused past the stale time after its last
                // renewal): the other import may have removed this one's files, and this one may
                // have written the manifest over the other's. It ended with exit 0 and a full
                // summary (a probe).
                throw LakeError(
                    .otherWriter,
                    "\(path): another import of the file took its hold over while this one was ending (this process was paused for \(LakeLeases.staleAfter.components.seconds) s or more): what is in the lake for the file is in doubt. Import the file again once no other import of it runs"
                )
            }
            return summary
        } catch {
            _ = await keeper.stop()
            throw error
        }
    }

    private func importHeld(
        _ file: ImportFile, first: ImportChunk, path: String, receivedAt: Int64, replaceEarlierVersions: Bool,
        keeper: LeaseKeeper, guarded: Bool
    ) async throws -> LakeImportSummary {
        var state = ImportState(tag: file.tag, dedupWindow: configuration.dedupWindow)
        // This run's files have names of their own (`import-<tag>-<run>-<n>`): an import that lost its
        // lease while paused, and comes back, writes beside the files of the import that took over
        // and not over them (the same names once made a mix of both, events missing and others
        // twice), and deletes exactly its own when it finds the lease gone.
        let stem = "\(state.tag)-\(String(UInt32.random(in: 0x1000_0000...UInt32.max), radix: 16))"
        // The file's rollups: one aggregator fed in file order by the decode step (watch time needs
        // each session's events in order), written once at the end as `rollups/…/import-<tag>-<run>.parquet`.
        // Every content of the file gets its row: an import is one run over a file the operator chose
        // (a catalogue's worth of rows is a few hundred MB at most), not a stream with no end, so the
        // bound on content rows that keeps `serve` within its memory whatever it is sent does not apply.
        state.rollups = configuration.rollups ? RollupAggregator(maxCells: .max) : nil
        var pending: [UInt8] = []
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
        var (hours, manifestVersion) = try await ImportManifest.readVersioned(store, tag: state.tag, logger: logger)
        let newManifest = hours.isEmpty
        hours.insert(LakePaths.hourStart(receivedAt))
        do {
            manifestVersion = try await ImportManifest.write(store, manifest, hours: hours, ifVersion: manifestVersion, guarded: guarded)
        } catch let error as LakeError where error.code == .otherWriter {
            throw LakeError(.otherWriter, "\(path): \(error.message); this import stopped before writing anything, and the other one stands")
        }
        // The imports of this path when it was another file (touched, fetched again, appended to).
        // A stream has none (``ImportFile/isStream``), and is recorded as no path's version.
        let index = ImportManifest.pathIndexPath(file.pathKey)
        var (versions, indexVersion) = file.isStream
            ? (ImportManifest.PathIndex(path: file.canonicalPath, tags: [state.tag]), nil)
            : try await ImportManifest.readPathIndex(store, index, path: file.canonicalPath, logger: logger)
        let earlier = versions.tags.filter { $0 != state.tag }
        // The earlier versions whose events the lake holds, told of below. The index is written
        // before the first file, so an import killed between the two (kill -9, a crash) left a tag
        // with no files, and the next version was told its events were in the lake twice (an
        // outside review, 2026-12-08). A listing of each such version's hours: a few per tag. One
        // that cannot be made (the store unreachable now) counts the version as kept, as before.
        var earlierKept: [String] = []
        if !replaceEarlierVersions {
            for tag in earlier {
                // A manifest that cannot be read counts the version as kept too (read as no hours,
                // it was counted as holding no file: a review).
                guard let otherHours = try? await ImportManifest.read(store, tag: tag, logger: logger) else {
                    earlierKept.append(tag)
                    continue
                }
                let files = try? await earlierImportFiles(tag: tag, hours: otherHours, keeping: [], datasets: ["events", "rejected"])
                if files.map({ !$0.isEmpty }) ?? true { earlierKept.append(tag) }
            }
        }
        let newTag = !versions.tags.contains(state.tag)
        if newTag {
            versions.tags.append(state.tag)
            do {
                indexVersion = try await ImportManifest.writePathIndex(store, index, versions, ifVersion: indexVersion, guarded: guarded)
            } catch let error as LakeError where error.code == .otherWriter {
                throw LakeError(.otherWriter, "\(path): \(error.message); this import stopped before writing any event, and the other one stands")
            }
        }
        /// Takes this import out of the path's index and its manifest out of the lake, when this run
        /// made them: an import that leaves nothing (refused, interrupted, or of no event) is no
        /// earlier version of the next file at its path (the next import warned that the events of
        /// both were in the lake twice, a probe).
        /// The index is written back, not deleted, and only while it is as read: another import of
        /// a good copy, which took the lease over while this one was paused, may have written it (a
        /// plain delete removed its entry, and its version's files were never replaced, a probe).
        func forgetThisImport() async {
            if newTag, let read = try? await ImportManifest.readPathIndex(store, index, path: file.canonicalPath, logger: logger) {
                var now = read.index
                now.tags.removeAll { $0 == state.tag }
                if now.tags.isEmpty {
                    // The path has no other import: the index goes (left emptied, it was a trace of a
                    // file refused past its first chunk, a probe).
                    _ = try? await ImportManifest.deletePathIndex(store, index, ifVersion: read.version, guarded: guarded)
                } else {
                    _ = try? await ImportManifest.writePathIndex(store, index, now, ifVersion: read.version, guarded: guarded)
                }
            }
            if newManifest { try? await store.delete(manifest) }
        }
        var startMetadata: Logger.Metadata = ["import.tag": "\(state.tag)"]
        if !file.isStream { startMetadata["import.file_bytes"] = .stringConvertible(file.size) }
        logger.info("import: \(path): started", metadata: startMetadata)
        if !earlierKept.isEmpty {
            summary.earlierVersionsKept = earlierKept.count
        }
        // Imports of this file under another path (moved, renamed, copied with its time): their
        // events and this one's are the same, and nothing replaces either (until 2026-12-07 no word
        // was said: each path is a file of its own to the tag).
        var sameFileElsewhere: [ImportManifest.SameFile.Entry] = []
        if let fingerprint = file.fingerprint {
            sameFileElsewhere = await ImportManifest.readSameFile(store, fingerprint).filter {
                $0.path != file.canonicalPath && $0.head == file.headHash
            }
        }

        func startWrite(_ batch: ImportBatch, last: Bool) async throws {
            // At most `maxEncodesInFlight` batches being encoded, while the next chunks are decoded.
            while writing.count >= Self.maxEncodesInFlight { try await collect(writing.removeFirst()) }
            let store = self.store
            let configuration = self.configuration
            let pool = threadPool
            let hour = LakePaths.hourStart(receivedAt)
            writing.append(Task {
                let files = try await pool.runIfActive {
                    try Self.encode(batch, last: last, hour: hour, tag: stem, configuration: configuration)
                }
                try await keeper.ensureHeld()
                for file in files { try await store.put(file.path, file.bytes) }
                return EncodedBatch(files: files, rows: files.reduce(0) { $0 + $1.rows })
            })
        }

        // Chunks are read in order and decoded in parallel (`decoding`, in file order); each decoded
        // chunk then goes through one in-order step (deduplication, rollups, numbering) into the batch.
        var decoding: [Task<ImportPiece, any Error>] = []
        defer { for task in decoding { task.cancel() } }
        let decoder = self.decoder
        let pool = threadPool
        /// The decode of `complete` lines starting at `byteBase`, on the pool; none for blank lines
        /// alone, as in a request body: a chunk (or the file's tail) of nothing else holds no event,
        /// and is not an empty body to reject.
        func decodeTask(_ complete: [UInt8], at byteBase: Int) -> Task<ImportPiece, any Error>? {
            guard !ImportPiece.isBlank(complete) else { return nil }
            return Task {
                try await pool.runIfActive { ImportPiece.decode(complete, byteBase: byteBase, decoder: decoder, receivedAt: receivedAt) }
            }
        }
        var endOfFile = false
        // Where the next chunk starts in the file's NDJSON (after gzip decoding).
        var chunkStart = 0
        // The first chunk was checked before the lease was taken, when it held more than blank lines.
        var formatChecked = ImportFile.firstContent(first.lines.complete, then: first.lines.rest) != nil
        var lastProgress = ContinuousClock.now
        var firstChunk: ImportChunk? = first
        do {
        while true {
            if let signal = interruption.signal { throw ImportInterrupted(signal: signal) }
            while !endOfFile && decoding.count < Self.maxDecodesInFlight {
                let (lines, added, end): ImportChunk
                if let chunk = firstChunk {
                    (lines, added, end) = chunk
                    firstChunk = nil
                } else {
                    (lines, added, end) = try await threadPool.runIfActive { [pending] in
                        try Self.completeLines(file, after: pending)
                    }
                }
                endOfFile = end
                summary.inputBytes += added
                pending = lines.rest
                let byteBase = chunkStart
                if !formatChecked, let head = ImportFile.firstContent(lines.complete, then: lines.rest) {
                    try ImportFile.checkIsNDJSON(head, gzip: file.isGzip)
                    formatChecked = true
                }
                chunkStart += lines.complete.count
                if let task = decodeTask(lines.complete, at: byteBase) { decoding.append(task) }
                if !endOfFile && pending.count > lineLimit {
                    // A line past the limit is read past, not held whole (a line of 150 MB took
                    // 2.2 GB and 12 s, a code review): one rejection, its first bytes kept.
                    let (lineStart, limit) = (chunkStart, lineLimit)
                    let skipped = try await threadPool.runIfActive { [pending] in
                        try LongLine.skip(file, head: pending, lineStart: lineStart, limit: limit, receivedAt: receivedAt)
                    }
                    if let rejection = skipped.rejection { decoding.append(Task { rejection }) }
                    summary.inputBytes += skipped.added
                    chunkStart += skipped.lineBytes
                    endOfFile = skipped.end
                    pending = skipped.after.rest
                    if let task = decodeTask(skipped.after.complete, at: chunkStart) { decoding.append(task) }
                    chunkStart += skipped.after.complete.count
                }
            }
            guard !decoding.isEmpty else { break }
            let piece = try await decoding.removeFirst().value
            state = try await threadPool.runIfActive { [state] in
                var state = state
                state.absorb(piece)
                return state
            }
            let last = endOfFile && decoding.isEmpty
            // Rejections count too: a file of lines mostly rejected (an export with a new event
            // type) held every rejection until its end, 1.4 GB for 264 MB (an outside review).
            let rejected = state.rejectedRecords
            if state.sortKeys.count >= batchEvents || state.batchBytes >= configuration.flushBytes || last
                || rejected.count >= batchEvents || rejected.byteCount >= configuration.flushBytes {
                let batch = state.takeBatch()
                if !batch.sortKeys.isEmpty || !batch.rejected.isEmpty { try await startWrite(batch, last: last) }
            }
            if ContinuousClock.now - lastProgress >= Self.progressEvery {
                lastProgress = ContinuousClock.now
                var metadata: Logger.Metadata = ["import.read_bytes": .stringConvertible(file.bytesRead)]
                // A stream's size is not known: no share of it (it said 100 % of 0 bytes).
                if !file.isStream {
                    metadata["import.file_bytes"] = .stringConvertible(file.size)
                    metadata["import.percent"] = .stringConvertible(file.size > 0 ? file.bytesRead * 100 / file.size : 100)
                }
                logger.info("import: \(path): \(state.accepted + state.rejected + state.duplicates) events read", metadata: metadata)
            }
        }
        for task in writing { try await collect(task) }
        writing.removeAll()
        if let rollups = state.rollups {
            let configuration = self.configuration
            let files = try await threadPool.runIfActive {
                try LakeBatchEncoder.rollupFiles(rollups, configuration: configuration) {
                    LakePaths.importRollupFile(hourStart: $0, tag: stem)
                }
            }
            try await keeper.ensureHeld()
            for file in files { try await store.put(file.path, file.bytes) }
            tally(files)
        }
        // This import is whole: the files of earlier imports of the same file that it did not write
        // are removed, and the manifest reduced to this hour. Only while this process still holds
        // the file's lease: one that lost it, paused past its renewal, must not delete what the
        // import that took over wrote. And the files to delete are listed before the lease is
        // confirmed, so that an import that takes it over later (this process paused in its
        // cleanup) never has its files among them: listed as they were deleted, they were, and a
        // paused import that came back left 0 of 600,000 events in the lake, both exiting 0 (a probe).
        let earlierFiles = try await earlierImportFiles(tag: state.tag, hours: hours, keeping: written)
        var otherVersions: [(manifest: String, files: [String])] = []
        if replaceEarlierVersions {
            for tag in earlier {
                let otherHours = try await ImportManifest.read(store, tag: tag, logger: logger)
                otherVersions.append((ImportManifest.path(tag: tag), try await earlierImportFiles(tag: tag, hours: otherHours, keeping: [])))
            }
        }
        try await keeper.confirm()
        for path in earlierFiles { try await store.delete(path) }
        summary.replaced = earlierFiles.count
        // Once more before the manifest: one taken over meanwhile must not name this hour alone
        // while the other import's files are in another (a later re-import would not find them).
        try await keeper.confirm()
        _ = try await ImportManifest.write(store, manifest, hours: [LakePaths.hourStart(receivedAt)], ifVersion: manifestVersion, guarded: guarded)
        if replaceEarlierVersions && !earlier.isEmpty {
            for version in otherVersions {
                for path in version.files { try await store.delete(path) }
                summary.replaced += version.files.count
                try await store.delete(version.manifest)
            }
            versions.tags = [state.tag]
            _ = try await ImportManifest.writePathIndex(store, index, versions, ifVersion: indexVersion, guarded: guarded)
        }
        } catch {
            // What is being written finishes first, so that every file this import wrote is known.
            for task in decoding { task.cancel() }
            for task in writing { if let files = try? await task.value.files { tally(files) } }
            /// Deletes this run's files (names of its own); says how many, and how many could not be.
            func deleteWritten() async -> String {
                var removed = 0
                for written in written.sorted() where (try? await store.delete(written)) != nil { removed += 1 }
                let left = written.count - removed
                return written.isEmpty ? "" : " (the \(removed) file\(removed == 1 ? "" : "s") this import had written \(removed == 1 ? "was" : "were") deleted\(left > 0 ? "; \(left) could not be, and stay until this file is imported again" : ""))"
            }
            if let error = error as? LakeError, error.code == .otherWriter {
                // Another import took the file over while this one was paused: its files are the
                // lake's now, and this run's, written beside them, would double their events.
                throw LakeError(.otherWriter, "\(path): \(error.message); this import stopped, and the other one's files stand" + (await deleteWritten()))
            }
            // The file itself cannot be imported (cut off, or not NDJSON), and never will be as it
            // is: what came before the damage is taken out again, rather than left in the lake to be
            // doubled by the import of a good copy (another file, so not replaced by it). The same
            // for an import interrupted (SIGINT, SIGTERM): it left part of the file in events/, with
            // no rollups, until the file was imported again (an outside review).
            let inputError = error as? ImportInputError, interrupted = error as? ImportInterrupted
            if inputError != nil || interrupted != nil {
                let deleted = await deleteWritten()
                // Nor is the file left named as an import of its path.
                await forgetThisImport()
                if let interrupted { throw LakeError(.io, "\(path): \(interrupted.description); nothing of it was imported" + deleted) }
                throw LakeError(.io, "\(path): \(inputError!.message); nothing of it was imported" + deleted)
            }
            if !written.isEmpty {
                logger.error(
                    file.isStream
                        ? "import: \(path) (a stream) failed after writing \(written.count) files; they stay in the lake (import-\(state.tag)-* in the hour's events/, rejected/ and rollups/): a stream is never imported again as the same file, so remove them by hand before importing it again"
                        : "import: \(path) failed after writing \(written.count) files; they stay in the lake until this file is imported again unchanged, which replaces them",
                    metadata: ["import.tag": "\(state.tag)"]
                )
            }
            throw error
        }
        if state.unreadable > 0 {
            logger.error("import: \(state.unreadable) decoded records of \(path) could not be read back and were not written")
        }
        if let grown = file.grownSize() {
            logger.warning("import: \(path) grew while it was imported; this import holds its first \(file.size) bytes (the size it had when it was opened, but a line that size cuts), and the rest is the next version of the file: import it again when it is complete (with --replace-earlier-versions, to replace this one)", metadata: [
                "import.file_bytes": .stringConvertible(file.size), "import.file_bytes_now": .stringConvertible(grown),
            ])
        }
        summary.events = state.accepted + state.rejected + state.duplicates
        if state.accepted == 0 && state.rejected > 0 {
            logger.warning("import: none of the \(state.rejected) events of \(path) was accepted (rejected/ holds each with its reason): is it NDJSON of playback events, one object per line?")
        }
        if summary.events == 0 {
            // Nothing written (past the first chunk, or gzip: the early return only sees a first
            // chunk that is the whole plain file): nor is the import recorded, as for a small file
            // of blank lines (a review). With --replace-earlier-versions it stands: it replaced the
            // earlier versions, as asked.
            let forgotten = written.isEmpty && !replaceEarlierVersions
            if forgotten { await forgetThisImport() }
            logger.warning("import: \(path) holds no event (it is empty, or only blank lines)\(forgotten ? "; nothing was written" : "")", metadata: ["import.input_bytes": .stringConvertible(summary.inputBytes)])
        }
        if summary.earlierVersionsKept > 0 {
            // Said once this import is whole (it was said at the start, and then again by an import
            // refused as cut off or not NDJSON, which keeps nothing, a probe).
            logger.warning(
                "import: \(file.canonicalPath) was imported before when it had another size or modification time; those imports are kept, so events in both versions are in the lake twice. Import it with --replace-earlier-versions to remove them",
                metadata: ["import.earlier_tags": "\(earlierKept.joined(separator: ","))", "import.tag": "\(state.tag)"]
            )
        }
        if let fingerprint = file.fingerprint, summary.events > 0 {
            await ImportManifest.noteSameFile(store, fingerprint, .init(path: file.canonicalPath, tag: state.tag, head: file.headHash), logger: logger)
            if !sameFileElsewhere.isEmpty {
                summary.sameFileElsewhere = sameFileElsewhere.count
                let others = sameFileElsewhere.map { "\($0.path) (its files: import-\($0.tag)-*)" }.joined(separator: ", ")
                logger.warning(
                    "import: \(file.canonicalPath) has the size and modification time, to the nanosecond, of a file imported before from \(others): if it is that file moved, renamed or copied with its time kept, its events are now in the lake twice (the lake's dedup is per file). Delete one import's files from the hours' events/, rejected/ and rollups/ (docs/lake.md, \"The same file under another path\")",
                    metadata: ["import.tag": "\(state.tag)", "import.same_file_tags": "\(sameFileElsewhere.map { $0.tag }.joined(separator: ","))"]
                )
            }
        }
        summary.accepted = state.accepted
        summary.rejected = state.rejected
        summary.duplicates = state.duplicates
        logger.info("import: \(path) done", metadata: [
            "import.events": .stringConvertible(summary.events), "import.accepted": .stringConvertible(summary.accepted),
            "import.rejected": .stringConvertible(summary.rejected), "import.files": .stringConvertible(summary.files),
        ])
        return summary
    }

    /// The events and rejected files of one batch: the events of an import all have the same
    /// `received_at` (one hour), and their sort keys were taken while decoding.
    static func encode(
        _ batch: ImportBatch, last: Bool, hour: Int64, tag: String, configuration: LakeWriterConfiguration
    ) throws -> [LakeFile] {
        var files: [LakeFile] = []
        if !batch.sortKeys.isEmpty {
            files += try RecordBuffer.withRecords(of: batch.pieces) { views in
                try LakeBatchEncoder.encodeHour(
                    views, keys: batch.sortKeys, configuration: configuration, parts: last ? 2 : 1,
                    splitRows: splitLastBatchRows,
                    path: LakePaths.importFile(dataset: "events", hourStart: hour, tag: tag, sequence: batch.sequence)
                )
            }
        }
        if !batch.rejected.isEmpty {
            var noDedup = DedupWindow(capacity: 0)
            files += try LakeBatchEncoder.encode(
                kind: .rejected, records: batch.rejected, dedup: &noDedup, rollups: nil, configuration: configuration,
                dataPath: { LakePaths.importFile(dataset: "rejected", hourStart: $0, tag: tag, sequence: batch.sequence) },
                rollupPath: { _ in "" },
                damagedPath: { "_playhead/damaged/rejected/import-\(tag)-\(batch.sequence)-\($0).record" }
            ).files
        }
        return files
    }

    /// Reads the next chunk after `pending` (the incomplete line the last read left) and splits it
    /// after its last newline (all of it at the end of the file); `added` counts the bytes read.
    static func completeLines(_ file: ImportFile, after pending: [UInt8]) throws -> ImportChunk {
        let (bytes, added, end) = try file.read(after: pending, maxBytes: chunkBytes)
        return (split(bytes, end: end, file: file), added, end)
    }

    /// `bytes` split after their last newline (all of them complete at the end of the file).
    static func split(_ bytes: [UInt8], end: Bool, file: ImportFile) -> (complete: [UInt8], rest: [UInt8]) {
        var bytes = bytes
        var cut = end ? bytes.count : (bytes.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0)
        if end, bytes.last != UInt8(ascii: "\n"), file.grownSize() != nil {
            // The size at open cut a line being written: it belongs to the next version of the file
            // (it was kept as a rejection, a probe).
            cut = bytes.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
            bytes.removeSubrange(cut...)
        }
        let rest = Array(bytes[cut...])
        bytes.removeSubrange(cut...)
        return (bytes, rest)
    }

    /// A chunk of the file read by ``completeLines(_:after:)``: its complete lines, the incomplete
    /// one after them, the bytes read, and whether the file ended.
    typealias ImportChunk = (lines: (complete: [UInt8], rest: [UInt8]), added: Int, end: Bool)

    /// The files of `tag`'s imports in `hours` (of `datasets`), but those in `keeping`.
    private func earlierImportFiles(
        tag: String, hours: Set<Int64>, keeping: Set<String>, datasets: [String] = ["events", "rejected", "rollups"]
    ) async throws -> [String] {
        var found: [String] = []
        for hour in hours.sorted() {
            for dataset in datasets {
                let prefix = "\(dataset)/\(LakePaths.partition(hourStart: hour))/import-\(tag)"
                found += try await store.list(prefix: prefix).filter { !keeping.contains($0) }
            }
        }
        return found
    }
}

/// The decoder's output for an import, carried between decode steps.
struct ImportState: @unchecked Sendable {
    let tag: String
    /// The batch being gathered: the decoded chunks' records (kept where they are, not copied),
    /// and the sort key of each event to write, whose index counts the records of `pieces` in order.
    var pieces: [RecordBuffer] = []
    var sortKeys: [EventsTable.SortKey] = []
    var batchRecords = 0
    var batchBytes = 0
    var rejectedRecords = RecordBuffer()
    /// In a class: the state is copied into each decode step and back, and a struct holding the
    /// window's dictionary would be copied whole (copy-on-write) at the first event of every chunk.
    let dedup: DedupBox
    /// Events seen before the current chunk (so rejections name the event's number in the file).
    var base = 0
    var accepted = 0
    var rejected = 0
    var duplicates = 0
    /// Records the decoder wrote that do not read back (never expected).
    var unreadable = 0
    var sequence = 0
    /// The import's rollups, fed in file order (a class shared by the copies of this state; the
    /// decode steps run one after another).
    var rollups: RollupAggregator?

    init(tag: String, dedupWindow: Int) {
        self.tag = tag
        dedup = DedupBox(DedupWindow(capacity: dedupWindow))
    }

    /// Takes a decoded chunk, in file order: drops repeated `event_id`s, feeds the rollups, and
    /// numbers records and rejections by their place in the file.
    mutating func absorb(_ piece: ImportPiece) {
        // The window out of its box for the loop (moved, not copied), back in after.
        var window = dedup.take()
        defer { dedup.window = window }
        piece.events.withRecords { views in
            let decoded = piece.accepted
            for (k, event) in decoded.enumerated() {
                // The tables are large and read at random: start loading the slots of an event
                // ahead while this one is counted.
                if k + 8 < decoded.count, let ahead = decoded[k + 8].facts {
                    window.prefetch(ahead.eventID)
                    rollups?.prefetch(ahead.rollup)
                }
                let offset = Int64(base + event.index)
                guard let facts = event.facts else {
                    // The decoder wrote a record it cannot read back: a bug, reported at the end.
                    unreadable += 1
                    continue
                }
                if !window.observe(facts.eventID) {
                    duplicates += 1
                    continue
                }
                rollups?.add(facts.rollup, offset: offset) {
                    let view = try? EventRecordView(views[k])
                    return (view?.contentID ?? "", view?.contentType ?? "", view?.title ?? "")
                }
                sortKeys.append(EventsTable.sortKey(facts.rollup, index: batchRecords + k))
                accepted += 1
            }
        }
        pieces.append(piece.events)
        batchRecords += piece.events.count
        batchBytes += piece.events.byteCount
        for (error, record) in piece.rejections {
            rejected += 1
            record.withUnsafeBytes { record in
                // Renumber: the decoder counts events within the chunk; operators want the number in the file.
                guard error.index >= 0, let view = try? RejectedRecordView(record) else {
                    rejectedRecords.append(offset: Int64(base), record)
                    return
                }
                var renumbered: [UInt8] = []
                // Byte positions are only in a malformed line's message (and a long line's): other
                // messages quote the event's values, and a timestamp "at byte 12" became "at byte
                // 10485404" (an outside review).
                let positioned = error.reason == .malformedJSON || error.reason == .eventTooLarge
                RejectedRecordEncoder.encode(
                    receivedAt: view.receivedAtMicros, index: Int32(clamping: base + error.index), reason: error.reason,
                    field: error.field, message: positioned ? ImportPiece.fileMessage(error.message, byteBase: piece.byteBase) : error.message,
                    eventID: error.eventID, raw: view.raw, into: &renumbered
                )
                renumbered.withUnsafeBytes { rejectedRecords.append(offset: Int64(base + error.index), $0) }
            }
        }
        base += piece.count
    }

    mutating func takeBatch() -> ImportBatch {
        defer {
            pieces = []
            sortKeys = []
            sortKeys.reserveCapacity(batchRecords)
            batchRecords = 0
            batchBytes = 0
            rejectedRecords = RecordBuffer()
            sequence += 1
        }
        return ImportBatch(pieces: pieces, sortKeys: sortKeys, rejected: rejectedRecords, sequence: sequence)
    }
}

/// One batch of an import, to be encoded as one file (two for the last) of `events/` and one of `rejected/`.
struct ImportBatch: @unchecked Sendable {
    /// The records (duplicates included: only the rows of `sortKeys` are written).
    var pieces: [RecordBuffer]
    var sortKeys: [EventsTable.SortKey]
    var rejected: RecordBuffer
    var sequence: Int
}

/// `_playhead/imports/<tag>.json`: the hours (UTC, µs) where imports of one file wrote files.
enum ImportManifest {
    struct Body: Codable {
        var hours: [Int64]
    }

    static func path(tag: String) -> String { "_playhead/imports/\(tag).json" }

    /// The imports of one path (every size and modification time it was imported with), by the
    /// hash of the path.
    struct PathIndex: Codable {
        var path: String
        var tags: [String]
    }

    static func pathIndexPath(_ key: String) -> String { "_playhead/imports/paths/\(key).json" }

    /// The imports of files with one size and modification time (``ImportFile/fingerprint``), by
    /// path: `_playhead/imports/files/<fingerprint>.json`.
    struct SameFile: Codable {
        struct Entry: Codable, Equatable {
            var path: String
            var tag: String
            /// ``ImportFile/headHash``.
            var head: String?
        }
        var imports: [Entry]
    }

    static func sameFilePath(_ fingerprint: String) -> String { "_playhead/imports/files/\(fingerprint).json" }

    /// The imports listed for `fingerprint`; none when there is no list or it cannot be read (it
    /// only feeds a warning).
    static func readSameFile(_ store: any LakeStore, _ fingerprint: String) async -> [SameFile.Entry] {
        guard let bytes = try? await store.get(sameFilePath(fingerprint)) else { return [] }
        return (try? JSONDecoder().decode(SameFile.self, from: Data(bytes)).imports) ?? []
    }

    /// Adds this import to the list of `fingerprint` (the last 100 kept), best effort: a lost update
    /// (two imports of such files at once) loses a warning, nothing else.
    static func noteSameFile(_ store: any LakeStore, _ fingerprint: String, _ entry: SameFile.Entry, logger: Logger) async {
        var imports = await readSameFile(store, fingerprint).filter { $0.path != entry.path }
        imports.append(entry)
        do {
            try await store.put(sameFilePath(fingerprint), Array(try JSONEncoder().encode(SameFile(imports: Array(imports.suffix(100))))))
        } catch {
            logger.debug("import: could not note the file's size and time in the lake", metadata: ["error": "\(error)"])
        }
    }
    static func leasePath(_ key: String) -> String { "_playhead/imports/paths/\(key).lock" }

    /// The index of `path`'s imports; one that cannot be read (as a manifest can be cut short) is
    /// started again, with a warning: it only tells of earlier versions, and an import goes on.
    static func readPathIndex(
        _ store: any LakeStore, _ location: String, path: String, logger: Logger
    ) async throws -> (index: PathIndex, version: String?) {
        guard let (bytes, version) = try await store.getVersioned(location) else { return (PathIndex(path: path, tags: []), nil) }
        do {
            return (try JSONDecoder().decode(PathIndex.self, from: Data(bytes)), version)
        } catch {
            logger.warning("import: the index \(location) of \(path)'s imports cannot be read (\(error)); it starts again with this import, and earlier versions of the file it listed are not told of")
            return (PathIndex(path: path, tags: []), version)
        }
    }

    /// Writes the index only while it is at `version` (what this import read or wrote), when
    /// `guarded`; returns its new version.
    static func writePathIndex(
        _ store: any LakeStore, _ location: String, _ index: PathIndex, ifVersion version: String?, guarded: Bool
    ) async throws -> String? {
        try await put(store, location, Array(try JSONEncoder().encode(index)), ifVersion: version, guarded: guarded)
    }

    /// Removes the index only while it is at `version` (what this import read), when `guarded`.
    static func deletePathIndex(_ store: any LakeStore, _ location: String, ifVersion version: String?, guarded: Bool) async throws {
        if guarded, let version {
            try await store.delete(location, ifVersion: version)
        } else {
            try await store.delete(location)
        }
    }

    /// Writes `bytes` only while the object is at `version` when `guarded` (a lease that another
    /// import may take over), else as it is; returns its new version.
    private static func put(
        _ store: any LakeStore, _ path: String, _ bytes: [UInt8], ifVersion version: String?, guarded: Bool
    ) async throws -> String? {
        guard guarded else {
            try await store.put(path, bytes)
            return nil
        }
        return try await store.put(path, bytes, ifVersion: version)
    }

    /// The hours of the manifest of `tag`. One that cannot be read (an import killed while it
    /// was being written: a SeaweedFS gateway stored an empty object for a PUT whose client died
    /// between its head and its body, before PUTs carried `Content-MD5`)
    /// is rebuilt from the names of the lake's files, with a warning: every hour that holds a file
    /// of the tag (a listing of the whole lake, once).
    static func read(_ store: any LakeStore, tag: String, logger: Logger) async throws -> Set<Int64> {
        try await readVersioned(store, tag: tag, logger: logger).hours
    }

    /// The hours of the manifest of `tag` and its version (nil when there is none, on S3).
    static func readVersioned(_ store: any LakeStore, tag: String, logger: Logger) async throws -> (hours: Set<Int64>, version: String?) {
        let path = path(tag: tag)
        guard let (bytes, version) = try await store.getVersioned(path) else { return ([], nil) }
        do {
            return (Set(try JSONDecoder().decode(Body.self, from: Data(bytes)).hours), version)
        } catch {
            logger.warning("import: the manifest \(path) cannot be read (\(error)); finding the hours of its files from the lake's file names", metadata: ["import.tag": "\(tag)"])
        }
        var hours = Set<Int64>()
        for dataset in ["events", "rejected", "rollups"] {
            for file in try await store.list(prefix: "\(dataset)/") where file.contains("/import-\(tag)") {
                if let hour = LakePaths.hourStart(ofPartitionIn: file) { hours.insert(hour) }
            }
        }
        return (hours, version)
    }

    /// Writes the manifest only while it is at `version` (what this import read or wrote), when
    /// `guarded`; returns its new version. Written plainly, a manifest that an import paused past its
    /// lease's stale time wrote when it came back named its hour alone, while the import that had
    /// taken over had its files in another: a later re-import left them, every event twice (a probe).
    static func write(
        _ store: any LakeStore, _ path: String, hours: Set<Int64>, ifVersion version: String?, guarded: Bool
    ) async throws -> String? {
        try await put(store, path, Array(try JSONEncoder().encode(Body(hours: hours.sorted()))), ifVersion: version, guarded: guarded)
    }
}

/// A dedup window shared by reference (used by one decode step at a time).
final class DedupBox: @unchecked Sendable {
    var window: DedupWindow
    init(_ window: DedupWindow) { self.window = window }

    /// The window, leaving an empty one in its place (no copy of the tables).
    func take() -> DedupWindow {
        var taken = DedupWindow(capacity: 0)
        swap(&taken, &window)
        return taken
    }
}

/// One chunk of an import file (its complete lines), decoded on any thread: the accepted records
/// with what the in-order step needs of each, and the rejections.
final class ImportPiece: @unchecked Sendable {
    struct Accepted {
        /// The event's number in the chunk.
        var index: Int
        /// The hash of its `event_id` and what rollups and sorting need (nil only if the record
        /// cannot be read back, which the encoder then reports as unreadable).
        var facts: (eventID: UInt64, rollup: RollupFacts)?
    }

    let events: RecordBuffer
    /// Where the chunk starts in the file's NDJSON: the decoder's byte positions count from the
    /// chunk, messages must count from the file.
    let byteBase: Int
    @exclusivity(unchecked) private(set) var accepted: [Accepted] = []
    @exclusivity(unchecked) private(set) var rejections: [(error: EventValidationError, record: [UInt8])] = []
    /// Events in the chunk, accepted or rejected.
    private(set) var count = 0

    /// Sized for `inputBytes` of NDJSON (records are smaller than their JSON): no growing.
    private init(inputBytes: Int, byteBase: Int) {
        events = RecordBuffer(reservingCapacity: inputBytes, records: inputBytes / 256)
        self.byteBase = byteBase
        accepted.reserveCapacity(inputBytes / 256)
    }

    /// True when `lines` hold nothing but NDJSON's blank-line bytes (space, tab, CR, LF).
    static func isBlank(_ lines: [UInt8]) -> Bool {
        lines.allSatisfy(isBlankByte)
    }

    /// Space, tab, CR or LF: what blank lines, and JSON between its tokens, are made of.
    static func isBlankByte(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A
    }

    /// A decoder's message as it reads for the file: byte positions from the file's start, and
    /// without the line number the decoder gives a malformed line ("line N is not valid JSON"),
    /// which counts from the chunk's first line (lines are not counted across chunks: the byte
    /// where the line starts, which the message gives, finds it in the file).
    static func fileMessage(_ message: String, byteBase: Int) -> String {
        var message = message
        if message.hasPrefix("line "), let end = message.range(of: " is not valid JSON: ") {
            message = "the line" + message[end.lowerBound...]
        }
        return shiftingBytePositions(in: message, by: byteBase)
    }

    /// `message` with every "at byte N" moved on by `base` (the decoder counts from the chunk).
    static func shiftingBytePositions(in message: String, by base: Int) -> String {
        guard base > 0, message.contains("at byte ") else { return message }
        var result = ""
        var rest = Substring(message)
        while let marker = rest.range(of: "at byte ") {
            result += rest[..<marker.upperBound]
            rest = rest[marker.upperBound...]
            let digits = rest.prefix(while: \.isASCII).prefix(while: \.isNumber)
            if let position = Int(digits) {
                result += String(position + base)
                rest = rest.dropFirst(digits.count)
            }
        }
        return result + rest
    }

    static func decode(_ lines: [UInt8], byteBase: Int, decoder: EventDecoder, receivedAt: Int64) -> ImportPiece {
        let piece = ImportPiece(inputBytes: lines.count, byteBase: byteBase)
        var sink = Sink(piece: piece)
        let outcome = lines.withUnsafeBytes { decoder.decode($0, format: .ndjson, receivedAt: receivedAt, into: &sink) }
        piece.count = outcome.accepted + outcome.rejected
        return piece
    }

    /// The rejection of a line over the import's line limit (``LongLine``), of which only `head` was
    /// held; numbered as the next event, its message's byte position counted from the file's start.
    static func longLine(head: ArraySlice<UInt8>, lineBytes: Int, limit: Int, byteBase: Int, receivedAt: Int64) -> ImportPiece {
        let piece = ImportPiece(inputBytes: 0, byteBase: byteBase)
        let message = "the line at byte 0 is \(lineBytes) bytes, over the import's limit of \(limit) on a line: it was read past, not decoded, and its first \(head.count) bytes are kept as its raw bytes"
        let error = EventValidationError(index: 0, reason: .eventTooLarge, message: message)
        var record: [UInt8] = []
        head.withUnsafeBytes {
            RejectedRecordEncoder.encode(
                receivedAt: receivedAt, index: 0, reason: error.reason, field: nil, message: message, eventID: nil, raw: $0, into: &record
            )
        }
        piece.rejections.append((error, record))
        piece.count = 1
        return piece
    }

    private struct Sink: EventSink {
        let piece: ImportPiece

        mutating func accepted(index: Int, key: UnsafeRawBufferPointer, dimensions: EventDimensions, record: UnsafeRawBufferPointer) {
            let view = try? EventRecordView(record)
            piece.accepted.append(Accepted(index: index, facts: view.map(LookAhead.keys)))
            piece.events.append(offset: Int64(index), record)
        }

        mutating func rejected(_ error: EventValidationError, record: UnsafeRawBufferPointer) {
            piece.rejections.append((error, Array(record)))
        }
    }
}

/// A line of an import longer than the limit: read past rather than held whole until its newline
/// (a stretch of NUL bytes that a crash left in a file, or JSON of megabytes on one line, took
/// memory and time in proportion, copied again at each read). It is one rejection,
/// `event_too_large`, whose raw bytes are the line's first ``keptBytes``.
enum LongLine {
    /// The bytes of a line's start kept in its rejection.
    static let keptBytes = 64 * 1024

    /// Over the embedded log's record limit, and twice the event limit (a line holds one event,
    /// and blanks around it).
    static func limit(maxEventBytes: Int) -> Int {
        max(16 << 20, maxEventBytes.multipliedReportingOverflow(by: 2).overflow ? .max : 2 * maxEventBytes)
    }

    /// Reads on past the line that `head` begins (no newline in it) to its newline: the line's
    /// length (its newline included), its rejection (none for a line of blanks), what was read
    /// after it split as ``LakeImporter/split(_:end:file:)`` splits a chunk, the bytes read, and
    /// whether the file ended.
    static func skip(
        _ file: ImportFile, head: [UInt8], lineStart: Int, limit: Int, receivedAt: Int64
    ) throws -> (lineBytes: Int, rejection: ImportPiece?, after: (complete: [UInt8], rest: [UInt8]), added: Int, end: Bool) {
        var length = head.count
        var blank = ImportPiece.isBlank(head)
        var added = 0
        while true {
            // A hole of gigabytes takes a while: SIGINT and SIGTERM are heard at each chunk (they
            // waited for the line's end, 25 s for 8 GiB, a review).
            if let signal = file.interruption?.signal { throw ImportInterrupted(signal: signal) }
            let (bytes, count, end) = try file.read(after: [], maxBytes: LakeImporter.chunkBytes)
            added += count
            let newline = bytes.firstIndex(of: UInt8(ascii: "\n"))
            let lineEnd = newline ?? bytes.count
            if blank { blank = bytes[..<lineEnd].allSatisfy(ImportPiece.isBlankByte) }
            length += lineEnd
            if newline != nil || end {
                let after = newline.map { Array(bytes[($0 + 1)...]) } ?? []
                // A last line cut off by the size at open belongs to the next version of the file,
                // as ``LakeImporter/split(_:end:file:)`` leaves a short one.
                let torn = newline == nil && file.grownSize() != nil
                let rejection = blank || torn ? nil : ImportPiece.longLine(
                    head: head.prefix(keptBytes), lineBytes: length, limit: limit, byteBase: lineStart, receivedAt: receivedAt
                )
                return (length + (newline == nil ? 0 : 1), rejection, LakeImporter.split(after, end: end, file: file), added, end)
            }
        }
    }
}

/// A file being imported: plain NDJSON, or gzip (recognised by its magic bytes).
final class ImportFile: @unchecked Sendable {
    private let fd: Int32
    private let path: String
    /// Names the files of this import: the same file imported again gets the same names.
    let tag: String
    /// The path, absolute, with symbolic links followed.
    let canonicalPath: String
    /// Not a regular file: a pipe (`/dev/stdin` from `zcat f.gz |`, `<(…)`), a socket or a
    /// device, whose path names no content. Each import of one is an import of its own: it is
    /// neither an earlier version of another (which `--replace-earlier-versions` would delete) nor
    /// replaced by another, and runs beside any other. Until 2026-12-07 every pipe's import counted
    /// as a version of "/dev/fd/63" or "/dev/stdin", and following the warning's advice deleted an
    /// unrelated import's events (an outside review).
    let isStream: Bool
    /// Names the path's lease and index in the lake (a hash of `canonicalPath`).
    let pathKey: String
    /// A hash of the file's size and modification time alone (nil for a stream): `mv`, and a copy
    /// that keeps the time (`cp -p`, `rsync -t`), keep both, so another path with this one's tells
    /// of the same file imported before under another name.
    let fingerprint: String?
    /// A hash of the file's first 64 KiB, for files with one ``fingerprint``.
    let headHash: String?
    /// The file's size, and how much of it has been read (before gzip decoding).
    let size: Int
    private(set) var bytesRead = 0
    private var gzip: GzipDecoder?
    /// Compressed bytes read and not yet decoded: a read decodes up to its `maxBytes` of output
    /// (2 MiB of gzip can hold 2 GB of NDJSON: read whole, 400 KB made an 800 MB chunk, a review).
    private var compressed: [UInt8] = []
    /// Whether the file is gzip (known once its first bytes are read).
    var isGzip: Bool { gzip != nil }
    private var first = true
    private var finished = false

    /// A pipe or FIFO: opened without blocking, and waited on with `poll` (``waitForInput()``), so
    /// that a stop is heard while no writer writes. Its `open` and its reads blocked a thread until
    /// a writer came, and SIGTERM was ignored until then; a second signal then ended the process
    /// with part of the stream in the lake (an outside review of the code).
    private let waitsWithPoll: Bool
    /// The importer's, heard while a pipe is waited on.
    var interruption: Interruption?

    init(path: String) throws {
        var before = stat()
        waitsWithPoll = stat(path, &before) == 0 && before.st_mode & S_IFMT == S_IFIFO
        fd = open(path, O_RDONLY | O_CLOEXEC | (waitsWithPoll ? O_NONBLOCK : 0))
        guard fd >= 0 else {
            throw LakeError(.io, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        fstat(fd, &info)
        if info.st_mode & S_IFMT == S_IFDIR {
            _ = Glibc.close(fd)
            throw LakeError(.io, "cannot import \(path): it is a directory, not an NDJSON file")
        }
        self.path = path
        // The file, not how its path was typed: `f.ndjson`, `./f.ndjson`, `/abs/f.ndjson` and a
        // symbolic link to it are one file (as typed, they were four imports of the same events).
        var canonical = path
        if let resolved = realpath(path, nil) {
            canonical = String(cString: resolved)
            free(resolved)
        }
        canonicalPath = canonical
        isStream = info.st_mode & S_IFMT != S_IFREG
        if isStream {
            size = 0
            tag = Self.hexHash("stream|\(canonical)|\(UUID().uuidString)")
            pathKey = tag
            fingerprint = nil
        } else {
            size = Int(info.st_size)
            tag = Self.hexHash("\(canonical)|\(info.st_size)|\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)")
            pathKey = Self.hexHash(canonical)
            // An empty file's size and time tell nothing of its content.
            fingerprint = info.st_size > 0 ? Self.hexHash("\(info.st_size)|\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)") : nil
        }
        // The first 64 KiB's hash, told with the size and time: two files given one fixed time (as
        // some archivers do) were taken for one (an outside review of the diff).
        headHash = fingerprint == nil ? nil : Self.headHash(of: fd)
    }

    /// A hash of the first 64 KiB of the file `fd` (read with `pread`: the file's offset stays).
    static func headHash(of fd: Int32) -> String? {
        var head = [UInt8](repeating: 0, count: 1 << 16)
        let got = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard got > 0 else { return nil }
        return head.withUnsafeBytes { String(stableHash64(UnsafeRawBufferPointer(rebasing: $0[0..<got])), radix: 16) }
    }

    static func hexHash(_ text: String) -> String {
        var text = text
        let hex = String(text.withUTF8 { stableHash64(UnsafeRawBufferPointer($0)) }, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Up to 64 bytes from the first that is not blank (space, tab, CR, LF) in `first` and then
    /// `second`, or nil when all are blank: a file may start with blank lines, and its format shows
    /// after them (the check looked at its first 64 bytes, and a JSON array after 64 blank bytes was
    /// imported line by line as rejections, a probe). Text with zero bytes among its first two
    /// (UTF-16 or UTF-32, whose blank characters are not these bytes alone) is taken from its start.
    static func firstContent(_ first: [UInt8], then second: [UInt8]) -> [UInt8]? {
        let both = first.prefix(2) + second.prefix(2)
        if both.count >= 2 && (both[both.startIndex] == 0 || both[both.startIndex + 1] == 0) {
            return Array((first.prefix(64) + second.prefix(64)).prefix(64))
        }
        if let start = first.firstIndex(where: { !ImportPiece.isBlankByte($0) }) {
            return Array((first[start...].prefix(headBytes) + second.prefix(headBytes)).prefix(headBytes))
        }
        return second.firstIndex { !ImportPiece.isBlankByte($0) }.map { Array(second[$0...].prefix(headBytes)) }
    }

    /// How much of the file's start ``checkIsNDJSON(_:)`` looks at: a first line of the largest
    /// event (32 KiB by default) and the start of the next.
    static let headBytes = 64 * 1024

    /// Whether the first line of `bytes` (from a `{`) leaves an object or array open at its end,
    /// outside strings (the first line of JSON printed over several lines, such as
    /// `{"event_id": "e1",`), and where that line ends. Nil when `bytes` ends before the line does.
    static func leavesObjectOpen(_ bytes: ArraySlice<UInt8>) -> (open: Bool, end: Int)? {
        var depth = 0, inString = false, escaped = false
        for index in bytes.indices {
            let byte = bytes[index]
            if byte == 0x0A || byte == 0x0D { return (depth > 0, index) }
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            default: break
            }
        }
        return nil
    }

    /// UTF-16 or UTF-32 (as iconv names them) from a byte order mark, or from where the zero
    /// bytes of the first characters fall (ASCII in a wide encoding); nil when not wide.
    static func wideEncoding(_ head: [UInt8]) -> String? {
        if head.starts(with: [0xFF, 0xFE, 0, 0]) { return "UTF-32LE" }
        if head.starts(with: [0, 0, 0xFE, 0xFF]) { return "UTF-32BE" }
        if head.starts(with: [0xFF, 0xFE]) { return "UTF-16LE" }
        if head.starts(with: [0xFE, 0xFF]) { return "UTF-16BE" }
        guard head.count >= 2, head[0] == 0 || head[1] == 0 else { return nil }
        if head.count >= 4 {
            if head[0] != 0 && head[1] == 0 && head[2] == 0 && head[3] == 0 { return "UTF-32LE" }
            if head[0] == 0 && head[1] == 0 && head[2] == 0 && head[3] != 0 { return "UTF-32BE" }
        }
        return head[0] == 0 ? "UTF-16BE" : "UTF-16LE"
    }

    /// Refuses, from its first bytes (after gzip decoding), a file that is not NDJSON in a way that
    /// would make every line a rejection (exit status 0 and `rejected/` filled with its bytes): a
    /// Parquet file, UTF-16 or UTF-32 text, a JSON array, pretty-printed JSON, or a first line that
    /// is not an object.
    static func checkIsNDJSON(_ head: [UInt8], gzip: Bool = false) throws {
        var i = 0
        if head.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        if head.starts(with: Array("PAR1".utf8)) {
            throw ImportInputError(message: "it is a Parquet file (it starts with PAR1), not NDJSON")
        }
        // Other compressions, by their magic bytes (after gzip's decoding: gzip inside gzip). They
        // were refused as text whose first line is not a JSON object, shown as binary bytes, and
        // asked whether they were CSV (an outside review).
        let compressions: [(magic: [UInt8], name: String, command: String)] = [
            ([0x1F, 0x8B], "gzip", "gunzip -c"), ([0x28, 0xB5, 0x2F, 0xFD], "zstd", "zstd -dc"),
            ([0x42, 0x5A, 0x68], "bzip2", "bzip2 -dc"), ([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00], "xz", "xz -dc"),
            ([0x50, 0x4B, 0x03, 0x04], "zip", "unzip -p"),
        ]
        if let found = compressions.first(where: { head.starts(with: $0.magic) }) {
            let inside = gzip ? "gzip holding \(found.name) data" : "\(found.name)-compressed"
            throw ImportInputError(message: "it is \(inside), not NDJSON: import reads plain or gzip NDJSON; decompress it first (\(gzip ? "gunzip -c FILE | " : "")\(found.command)\(gzip ? "" : " FILE") > FILE.ndjson)")
        }
        if head.count >= 4 && head.prefix(4).allSatisfy({ $0 == 0 }) {
            // Zero bytes first: no UTF-16 or UTF-32 text starts so. It was called UTF-16BE, and the
            // iconv advised garbled the file (a review); the usual cause is a crash's hole.
            let zeros = head.prefix { $0 == 0 }.count
            throw ImportInputError(message: "it starts with zero bytes (\(zeros == head.count ? "all" : "\(zeros)") of its first \(head.count) bytes), not text: a stretch a crash or a preallocating writer left? Take the zero bytes out first (tr -d '\\000' < FILE > FILE.ndjson)")
        }
        if let encoding = wideEncoding(head) {
            // The encoding named, for iconv: `-f UTF-16` alone read UTF-32 and BOM-less UTF-16BE
            // as something else, whose import was refused again (a probe).
            throw ImportInputError(message: "it is UTF-16 or UTF-32 text (\(encoding), by its first bytes), not UTF-8: convert it first (iconv -f \(encoding) -t UTF-8 FILE > FILE.ndjson\(gzip ? "; it is gzip: gunzip -c FILE | iconv … first" : ""))")
        }
        while i < head.count, ImportPiece.isBlankByte(head[i]) { i += 1 }
        if i < head.count, head[i] == UInt8(ascii: "[") {
            throw ImportInputError(message: "it is a JSON array, not NDJSON (one event object per line): convert it first (jq -c '.[]' FILE > FILE.ndjson, with jq 1.7 or later: jq 1.6 rounds integers of 2^53 and more)")
        }
        // `{` alone on its first line: JSON printed over several lines (`jq .` without `-c`), every
        // line of which was a rejection (a probe).
        if i < head.count, head[i] == UInt8(ascii: "{") {
            var j = i + 1
            while j < head.count, head[j] == 0x20 || head[j] == 0x09 { j += 1 }
            if j < head.count, head[j] == 0x0A || head[j] == 0x0D {
                throw ImportInputError(message: "it is JSON printed over several lines (its first line is a lone {), not NDJSON (one event object per line): convert it first (jq -c . FILE > FILE.ndjson, with jq 1.7 or later: jq 1.6 rounds integers of 2^53 and more)")
            }
            // A first line that opens an object and does not close it, followed by a line that is
            // not an object (`{"event_id": "e1",` then `  "event_type": "play",`): the same, printed
            // with its first key beside the brace (every line was a rejection, a probe). A first
            // line cut short among NDJSON lines (each next line a `{`) is one rejection, as before.
            if let (open, end) = leavesObjectOpen(head[i...]), open {
                var next = end
                while next < head.count, ImportPiece.isBlankByte(head[next]) { next += 1 }
                if next < head.count, head[next] != UInt8(ascii: "{") {
                    let line = head[i..<end].prefix(40)
                    throw ImportInputError(message: "it is JSON printed over several lines (its first line, \(String(decoding: line, as: UTF8.self).debugDescription), leaves its object open), not NDJSON (one event object per line): convert it first (jq -c . FILE > FILE.ndjson, with jq 1.7 or later: jq 1.6 rounds integers of 2^53 and more)")
                }
            }
        }
        // Anything else first (a CSV header, an HTML error page saved as the export, a log): every
        // line a rejection, with exit status 0 and rejected/ filled with the file (a probe's CSV).
        if i < head.count, head[i] != UInt8(ascii: "{") {
            let line = head[i...].prefix { $0 != 0x0A && $0 != 0x0D }.prefix(40)
            let shown = String(decoding: line, as: UTF8.self).debugDescription
            throw ImportInputError(message: "its first line starts with \(shown), not a JSON object: it is not NDJSON (one event object per line; a CSV or other text file?)")
        }
    }

    func close() { _ = Glibc.close(fd) }

    /// The file's size now (it may have grown since it was opened).
    func currentSize() -> Int {
        var info = stat()
        return fstat(fd, &info) == 0 ? Int(info.st_size) : size
    }

    /// The size the file has grown to since it was opened, or nil when it has not.
    func grownSize() -> Int? {
        let now = currentSize()
        return !isStream && now > size ? now : nil
    }

    /// Waits until a pipe or FIFO has bytes or has ended, hearing ``interruption`` every 200 ms.
    private func waitForInput() throws {
        while true {
            if let signal = interruption?.signal { throw ImportInterrupted(signal: signal) }
            var waiting = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&waiting, 1, 200)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw LakeError(.io, "cannot wait for \(path): \(String(cString: strerror(errno)))") }
        }
    }

    /// `leftover` followed by up to about `maxBytes` of NDJSON read next, in one new buffer (read
    /// straight into it: no zeroing, no second copy); `added` counts the new bytes, and `end` is
    /// true once the file is exhausted.
    func read(after leftover: [UInt8], maxBytes: Int) throws -> (bytes: [UInt8], added: Int, end: Bool) {
        guard !finished else { return (leftover, 0, true) }
        if let gzip, !compressed.isEmpty || gzip.holdsOutput {
            // What the last read left undecoded (it stopped at its limit) comes first.
            return try decodeGzip(gzip, after: leftover, maxBytes: maxBytes)
        }
        // No further than the size the file had when it was opened, which its tag names: what is
        // appended meanwhile (a torn last line too) belongs to the next version of the file (it was
        // read on, and the tag named files holding events it did not cover, a probe).
        // (A regular file empty when opened too: it was read to its end, what an exporter had
        // written meanwhile imported under the empty file's tag with no word of it, a review.)
        let remaining = isStream ? Int.max : max(0, size - bytesRead)
        let want = min(gzip == nil && !first ? maxBytes : maxBytes / 4, remaining)
        var count = 0
        if want > 0 && waitsWithPoll { try waitForInput() }
        var raw = [UInt8](unsafeUninitializedCapacity: leftover.count + want) { buffer, initialized in
            _ = buffer.initialize(from: leftover)
            count = want == 0 ? 0 : Glibc.read(fd, buffer.baseAddress! + leftover.count, want)
            initialized = leftover.count + max(count, 0)
        }
        guard count >= 0 else { throw LakeError(.io, "cannot read \(path): \(String(cString: strerror(errno)))") }
        bytesRead += count
        if first && count == 1 && want > 1 {
            // A pipe's first read may hold one byte: gzip's magic is two (a stream whose writer
            // sent one byte first was refused as text starting with "\u{1F}", a review).
            var byte: UInt8 = 0
            if waitsWithPoll { try waitForInput() }
            let more = Glibc.read(fd, &byte, 1)
            guard more >= 0 else { throw LakeError(.io, "cannot read \(path): \(String(cString: strerror(errno)))") }
            if more == 1 {
                raw.append(byte)
                count += 1
                bytesRead += 1
            }
        }
        if first {
            first = false
            if raw.count >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
                gzip = try GzipDecoder(chunkBytes: 4 << 20)
            }
        }
        if count == 0 && bytesRead < size {
            // Cut short while it was read (truncated, or rewritten by another program): what is
            // left is not the file the import started on, and its end is lost (a probe: exit 0
            // and 843,082 of 1,500,000 events, with no word of it).
            finished = true
            throw ImportInputError(message: "it ended after \(bytesRead) bytes, short of the \(size) it had when the import opened it: it was cut short while it was read")
        }
        guard let gzip else {
            // A regular file ends at the size it had when it was opened: said with its last bytes,
            // not one read later, so that a first chunk that holds the whole file knows it (a file
            // of one blank line was recorded as an import of its path, and the next version of the
            // file was then said to be in the lake twice, an outside review).
            let end = count == 0 || (!isStream && bytesRead >= size)
            if end { finished = true }
            return (raw, count, end)
        }
        if count == 0 {
            finished = true
            // A file cut off inside a member is an error, not a shorter import.
            do { try gzip.finish() } catch { throw corrupt(error) }
            return (leftover, 0, true)
        }
        compressed.append(contentsOf: raw[leftover.count...])
        return try decodeGzip(gzip, after: leftover, maxBytes: maxBytes)
    }

    /// `leftover` followed by what ``compressed`` decodes to, up to about `maxBytes`.
    private func decodeGzip(_ gzip: GzipDecoder, after leftover: [UInt8], maxBytes: Int) throws -> (bytes: [UInt8], added: Int, end: Bool) {
        var output = leftover
        do {
            let taken = try compressed.withUnsafeBytes { try gzip.decode($0, limit: maxBytes) { output.append(contentsOf: $0) } }
            compressed.removeFirst(taken)
        } catch {
            throw corrupt(error)
        }
        return (output, output.count - leftover.count, false)
    }

    private func corrupt(_ error: any Error) -> ImportInputError {
        // A gzip file still being written ends inside a member at the size it had at open:
        // said as such, not only as corrupt (a probe).
        let growing = grownSize().map { "; the file grew from \(size) to \($0) bytes while it was read: is it still being written? Import it once it is complete" } ?? ""
        return ImportInputError(message: "the gzip data is corrupt: \(error)\(growing)")
    }
}

/// The file itself cannot be imported as it is (cut off, or not NDJSON).
struct ImportInputError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Renews an import's lease while it runs, and remembers when it was lost.
final class LeaseKeeper: Sendable {
    private let lease: any LakeLease
    private let logger: Logger
    private let lost = Mutex<LakeError?>(nil)
    private let renewal = Mutex<Task<Void, Never>?>(nil)
    /// When the lease was last known to be this process's (taken, or renewed): for a renewal, the
    /// instant it started, which is no later than the `renewed_at` it wrote.
    private let confirmed = Mutex(ContinuousClock.now)
    /// How long after ``confirmed`` a write renews the lease first: half its stale time.
    private let renewAfter: Duration

    init(lease: any LakeLease, logger: Logger, renewAfter: Duration = LakeLeases.staleAfter / 2) {
        self.lease = lease
        self.logger = logger
        self.renewAfter = renewAfter
    }

    func start() {
        let task = Task { [self] in
            while true {
                do { try await Task.sleep(for: LakeLeases.renewEvery) } catch { return }
                do {
                    try await renew()
                } catch {
                    if lost.withLock({ $0 }) != nil { return }
                }
            }
        }
        renewal.withLock { $0 = task }
    }

    /// Renews the lease now; throws once another process has taken it over. A store that cannot be
    /// reached now is said and not thrown: the writes that follow fail or wait on it too.
    /// With `strict`, a lease that cannot be renewed now throws that error too.
    /// The lease is good until its stamp plus the stale time, and the stamp is taken when the
    /// renewal's write is made, not when it lands: the S3 client sends the same body again for up
    /// to 5 attempts of 30 s. Counted from the call's return, a renewal that landed at its 4th or
    /// 5th attempt left a stamp about 2 minutes old taken for a fresh one: another import took the
    /// lease over at once while this one wrote on for a minute before renewing (an outside review,
    /// 2026-12-08). So it counts from the renewal's start.
    private func renew(strict: Bool = false) async throws {
        let started = ContinuousClock.now
        do {
            try await lease.renew()
            confirmed.withLock { $0 = max($0, started) }
        } catch let error as LakeError where error.code == .otherWriter {
            lost.withLock { $0 = error }
            throw error
        } catch where !strict && !(error is CancellationError) && !Task.isCancelled {
            logger.warning("import: cannot renew the hold on the file now; trying again", metadata: ["error": "\(error)"])
        }
    }

    /// Before each write: throws when the lease is known to be lost, and renews it first when it was
    /// last confirmed half its stale time ago or more. A process paused past the stale time (a
    /// stopped VM or container, SIGSTOP) resumed writing for up to the renewal period before its
    /// renewal found the lease taken over, over the files of the import that took it (a probe:
    /// 38,110 events missing and 714,078 twice, the other import having exited 0).
    func ensureHeld() async throws {
        if let error = lost.withLock({ $0 }) { throw error }
        if ContinuousClock.now - confirmed.withLock({ $0 }) >= renewAfter { try await renew() }
    }

    /// Renews the lease now, and throws when another process has taken it over, or when that cannot
    /// be known (the store unreachable): before the end of an import, which deletes what earlier
    /// imports left, and must not unless the lease is this process's.
    func confirm() async throws {
        if let error = lost.withLock({ $0 }) { throw error }
        try await renew(strict: true)
    }

    /// Stops renewing and releases the lease; false when it was no longer this process's.
    func stop() async -> Bool {
        renewal.withLock { $0 }?.cancel()
        return await lease.release()
    }
}

/// A request to stop, from a signal handler: an import's (``LakeImporter/interruption``), and
/// `log dump --follow`'s.
public final class Interruption: Sendable {
    private let received = Mutex<Int32?>(nil)

    public init() {}

    /// Asks what runs to stop (the first signal is kept).
    public func request(signal: Int32) {
        received.withLock { if $0 == nil { $0 = signal } }
    }

    /// The signal that asked for a stop, if one did.
    public var signal: Int32? { received.withLock { $0 } }
}

/// An import stopped by ``Interruption``.
struct ImportInterrupted: Error, CustomStringConvertible {
    var signal: Int32
    var description: String {
        "interrupted by \(signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : signal == SIGHUP ? "SIGHUP" : "signal \(signal)")"
    }
}
