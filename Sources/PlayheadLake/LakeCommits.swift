import Foundation

/// The lake's own record of what it holds, per dataset and log partition: the source of truth for
/// exactly-once delivery (the log group's committed offset only follows it, for retention and lag).
///
/// Objects under `_playhead/` (ignored by `read_parquet('<lake>/events/**/*.parquet')`):
/// - `_playhead/state/<dataset>/p<partition>.json`: `{"next_offset": B, "rollup_from": R}`: every
///   record before B is in the lake; R is where the rollup state of the open hours starts.
/// - `_playhead/log.json`: `{"log_id": L}`: the embedded log the lake is written from (none for Kafka).
/// - `_playhead/intents/<dataset>/p<partition>.json`: `{"from": A, "to": B, "files": [...]}`: a
///   batch that may be partly written. After a crash the writer redoes exactly `[A, B)`: same
///   records, same decisions, same file names, so the redo replaces the partial files.
///
/// See docs/lake.md for the argument.
struct LakeCommits: Sendable {
    let store: any LakeStore
    let dataset: String

    struct State: Codable, Equatable, Sendable {
        var nextOffset: Int64
        var rollupFrom: Int64?
        /// Where a rebuild starts reading the sessions' recent events before `rollupFrom` (states
        /// written before 2026-12-05 have none).
        var rollupPrimeFrom: Int64? = nil

        enum CodingKeys: String, CodingKey {
            case nextOffset = "next_offset"
            case rollupFrom = "rollup_from"
            case rollupPrimeFrom = "rollup_prime_from"
        }
    }

    struct Intent: Codable, Equatable, Sendable {
        var from: Int64
        var to: Int64
        var files: [String]
    }

    private func statePath(_ partition: Int32) -> String { "_playhead/state/\(dataset)/p\(partition).json" }
    private func intentPath(_ partition: Int32) -> String { "_playhead/intents/\(dataset)/p\(partition).json" }

    struct Claim: Codable, Equatable, Sendable {
        var logID: String
        /// The process that claimed the location last (a random id per start); nil in claims
        /// written before 2026-12-03, which any process of the log may take over.
        var run: String?

        enum CodingKeys: String, CodingKey {
            case logID = "log_id"
            case run
        }
    }

    private static let claimPath = "_playhead/log.json"

    /// The log that claimed the lake location, if one did, and the claim's bytes as stored (for
    /// ``writeClaim(_:replacing:)``).
    func claimAndBytes() async throws -> (claim: Claim?, bytes: [UInt8]?) {
        guard let bytes = try await store.get(Self.claimPath) else { return (nil, nil) }
        return (try decode(Claim.self, bytes, Self.claimPath), bytes)
    }

    /// Writes the claim only while the stored one is still `previous` (its bytes as read; nil:
    /// none); throws a ``LakeError`` with code `otherWriter` when another process has written it
    /// since. A plain write let a process that read "no claim", and then waited (its data folder's
    /// disk full, the store unreachable), write its claim over one another log had made and
    /// written batches under meanwhile: it took that log's state for its own, and its own records
    /// below that offset were never written (an outside review: 500 of 2,000 acknowledged events).
    func writeClaim(_ claim: Claim, replacing previous: [UInt8]?) async throws {
        try await store.put(Self.claimPath, try Self.encode(claim), ifStill: previous)
    }

    func state(_ partition: Int32) async throws -> State? {
        try await read(State.self, statePath(partition))
    }

    /// The state and its bytes as stored (nil, nil: none yet), for ``commit(_:partition:replacing:)``.
    func stateAndBytes(_ partition: Int32) async throws -> (state: State?, bytes: [UInt8]?) {
        guard let bytes = try await store.get(statePath(partition)) else { return (nil, nil) }
        return (try decode(State.self, bytes, statePath(partition)), bytes)
    }

    /// The partitions that have a state file, from one listing of `_playhead/state/<dataset>/`.
    func partitionsWithState() async throws -> [Int32] {
        try await store.list(prefix: "_playhead/state/\(dataset)/").compactMap { name in
            let file = name.split(separator: "/").last ?? ""
            guard file.hasPrefix("p"), file.hasSuffix(".json") else { return nil }
            return Int32(file.dropFirst().dropLast(5))
        }
    }

    func intent(_ partition: Int32) async throws -> Intent? {
        try await read(Intent.self, intentPath(partition))
    }

    func writeIntent(_ intent: Intent, partition: Int32) async throws {
        try await store.put(intentPath(partition), try Self.encode(intent))
    }

    /// Writes the state only while the stored one is still `previous` (its bytes as read; nil: none),
    /// and returns the bytes written. Throws a ``LakeError`` with code `otherWriter` when another
    /// process has written it since: a writer paused between its last check and this write (a
    /// SIGSTOP, a VM frozen, a swap storm) past its Kafka session, while the partition's new owner
    /// committed batches, moved the state back over them, and the new owner then wrote those
    /// records again (duplicate rows; KafkaPipelineTests under AddressSanitizer, 2026-12-06).
    @discardableResult
    func commit(_ state: State, partition: Int32, replacing previous: [UInt8]?) async throws -> [UInt8] {
        let bytes = try Self.encode(state)
        try await store.put(statePath(partition), bytes, ifStill: previous)
        return bytes
    }

    func clearIntent(partition: Int32) async throws {
        try await store.delete(intentPath(partition))
    }

    private func read<T: Decodable>(_ type: T.Type, _ path: String) async throws -> T? {
        guard let bytes = try await store.get(path) else { return nil }
        return try decode(type, bytes, path)
    }

    private func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], _ path: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch where path == Self.claimPath {
            // The claim holds only the log's id: deleting it is the remedy (docs/lake.md), not the
            // runbook's section on the state, which it named (an outside review).
            throw LakeError(.corruptState, """
                \(store.displayName)/\(path) is unreadable (\(error)): the lake writer cannot tell which log this lake \
                is written from. If only this log writes the lake, delete that object and start again: the next \
                start writes it (docs/lake.md, "One log per lake")
                """)
        } catch {
            throw LakeError(.corruptState, """
                \(store.displayName)/\(path) is unreadable (\(error)): the lake writer stops rather than guess \
                what the lake holds; restore the object or write it again (docs/runbook.md, "An unreadable lake state")
                """)
        }
    }

    private static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value))
    }
}

/// Drops an event whose `event_id` appeared in the previous `capacity` records of its partition
/// (client retries resend the same id).
///
/// The window holds the ids of every record at offsets `[x - capacity, x)`, kept or dropped, so a
/// decision depends only on the log's content: replaying the `capacity` records before a batch
/// rebuilds the exact window, and a redo after a crash makes the same decisions. Memory: about
/// about 40 bytes per slot (a ring of 64-bit hashes, and a counting table kept at most half full).
struct DedupWindow {
    let capacity: Int
    private var ring: [UInt64]
    private var counts = HashCounts()
    private var filled = 0
    private var head = 0

    init(capacity: Int) {
        self.capacity = max(0, capacity)
        ring = []
        ring.reserveCapacity(min(self.capacity, 1 << 20))
    }

    /// Starts loading what `observe(hash)` will read (call it a few events ahead).
    @inline(__always)
    func prefetch(_ hash: UInt64) {
        if capacity > 0 { counts.prefetch(hash) }
    }

    /// Records `hash` as the next offset; returns whether it was new within the window.
    mutating func observe(_ hash: UInt64) -> Bool {
        guard capacity > 0 else { return true }
        let isNew = counts.increment(hash)
        if filled < capacity {
            ring.append(hash)
            filled += 1
        } else {
            // Ids leave in the order they came: start loading the slot of the one that leaves a
            // few events from now (in a full window every event evicts one, read at random).
            if capacity > Self.evictionPrefetchDistance {
                let ahead = head + Self.evictionPrefetchDistance
                counts.prefetch(ring[ahead < capacity ? ahead : ahead - capacity])
            }
            counts.decrement(ring[head])
            ring[head] = hash
            head = head + 1 == capacity ? 0 : head + 1
        }
        return isNew
    }

    /// How many events ahead `observe` starts loading an evicted id's slot.
    static let evictionPrefetchDistance = 8

    /// Forgets everything (a partition was revoked).
    mutating func reset() {
        ring.removeAll(keepingCapacity: true)
        counts = HashCounts()
        filled = 0
        head = 0
    }
}

/// A 64-bit hash of ids for in-memory tables only (dedup window, rollups, sort keys): Swift's
/// `Hasher` (SipHash-1-3 keyed with a random seed per process), never written anywhere, so a
/// restart that rebuilds the tables from the log may hash differently.
///
/// Keyed, because clients choose the ids. Until 2026-12-06 this was an unkeyed multiply-xorshift
/// hash whose steps could each be inverted: an outside review made, in milliseconds, an id with
/// the same hash as any other, and so had an acknowledged event dropped as a repeat of one sent
/// before it, one content's plays counted in another content's rollup row, and 150,000 ids that
/// share their low bits (the slot the tables probe from) hold the lake writer for 14 CPU-seconds.
/// SipHash costs about 25 ns more per id than that hash did.
@inline(__always)
func hash64(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var hasher = Hasher()
    hasher.combine(bytes: bytes)
    return UInt64(bitPattern: Int64(hasher.finalize()))
}

/// FNV-1a over bytes: stable across versions, for names that are written down (import tags).
func stableHash64(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
        hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }
    return hash
}
