import PlayheadEvents

/// One row of `rollups/`: what one content did in one hour (by `received_at`, like `events/`).
/// Definitions in docs/lake.md; the SQL that gives the same figures over `events/` is there too.
struct RollupRow: Sendable, Equatable {
    var hourStartMicros: Int64
    var contentID: String
    var contentType: String
    var title: String
    /// Events of the content in the hour.
    var events: Int64
    /// `play` events.
    var plays: Int64
    /// Distinct sessions (`session_id`, else `device_id`).
    var sessions: Int64
    /// Distinct `user_id`s.
    var uniqueViewers: Int64
    /// Seconds watched: position advances between consecutive events of a session while playing.
    var watchTimeSeconds: Double
    /// Distinct sessions that reached 95 % of `duration_seconds`.
    var completions: Int64
}

/// Per-hour, per-content aggregates of one log partition, kept for the hours still open.
///
/// An hour closes when a record arrives more than `grace` after its end; its last rollup file is
/// then final and its state is dropped. Records of an hour that has already closed are not counted
/// (they are rare: `received_at` is the server's clock and the log is in arrival order) and are
/// reported by `lateRecords`.
final class RollupAggregator: @unchecked Sendable {
    static let hourMicros: Int64 = 3_600_000_000
    /// The longest gap between two events of a session that still counts as watching.
    static let maxWatchGapSeconds = 60.0
    static let completionRatio = 0.95

    private struct Cell {
        var contentID: String
        var contentType: String
        var title: String
        var events: Int64 = 0
        var plays: Int64 = 0
        var watchTime: Double = 0
        var sessions = Set<UInt64>()
        var viewers = Set<UInt64>()
        var completed = Set<UInt64>()

        mutating func count(isPlay: Bool, watched: Double, session: UInt64, user: UInt64, completes: Bool) {
            events += 1
            if isPlay { plays += 1 }
            watchTime += watched
            sessions.insert(session)
            viewers.insert(user)
            if completes { completed.insert(session) }
        }
    }

    private struct Hour {
        var firstOffset: Int64
        /// By the hash of `content_id` (no String made per event); the cell keeps the id itself.
        var cells: [UInt64: Cell] = [:]
    }

    private struct Cursor {
        var timestampMicros: Int64
        var position: Double
        var playing: Bool
        var contentHash: UInt64
        /// When the server received the session's last event (for dropping silent sessions).
        var receivedMicros: Int64
    }

    let grace: Int64
    private var hours: [Int64: Hour] = [:]
    private var closedBefore: Int64 = .min
    /// The last event of each session, for watch time. Bounded: sessions silent for longer than the
    /// gap cap are dropped when an hour closes.
    private var cursors: [UInt64: Cursor] = [:]
    private(set) var lateRecords = 0
    /// Hours changed since the last `takeChanges()`.
    private var touched = Set<Int64>()

    init(graceMicros: Int64 = 300_000_000) {
        grace = graceMicros
    }

    /// Where a rebuild after a restart must start reading: the first offset of the oldest open hour.
    var rebuildFrom: Int64? { hours.values.map(\.firstOffset).min() }

    func add(_ record: EventRecordView, offset: Int64) {
        let received = record.receivedAtMicros
        let hour = received - ((received % Self.hourMicros) + Self.hourMicros) % Self.hourMicros
        guard hour >= closedBefore else {
            lateRecords += 1
            return
        }
        let sessionBytes = record.sessionIDBytes ?? record.deviceIDBytes
        let session = hash64(sessionBytes)
        let user = hash64(record.userIDBytes)
        let contentHash = hash64(record.contentIDBytes)
        let isPlay = record.eventTypeBytes.elementsEqual("play".utf8)
        var watched = 0.0
        if let cursor = cursors[session], cursor.contentHash == contentHash, record.timestampMicros >= cursor.timestampMicros {
            if cursor.playing {
                let advance = max(record.currentTimestamp - cursor.position, 0)
                let wall = Double(record.timestampMicros - cursor.timestampMicros) / 1e6
                watched = min(advance, wall, Self.maxWatchGapSeconds)
            }
        }
        if let cursor = cursors[session], cursor.contentHash == contentHash, record.timestampMicros < cursor.timestampMicros {
            // An event older than the session's last one: counted, but not for watch time.
        } else {
            cursors[session] = Cursor(
                timestampMicros: record.timestampMicros, position: record.currentTimestamp,
                playing: isPlay || record.eventTypeBytes.elementsEqual("heartbeat".utf8), contentHash: contentHash,
                receivedMicros: received
            )
        }
        // Mutated in place (no copy of the hour or the cell out of its dictionary): a copy would make
        // every event copy the hour's cells and the cell's sets (copy-on-write).
        let completes = record.durationSeconds > 0 && record.currentTimestamp >= Self.completionRatio * Double(record.durationSeconds)
        hours[hour, default: Hour(firstOffset: offset)]
            .cells[contentHash, default: Cell(contentID: record.contentID, contentType: record.contentType, title: record.title)]
            .count(isPlay: isPlay, watched: watched, session: session, user: user, completes: completes)
        touched.insert(hour)
        closeHours(before: received - grace)
    }

    /// Closes every hour that ended before `time`.
    private func closeHours(before time: Int64) {
        let limit = time - ((time % Self.hourMicros) + Self.hourMicros) % Self.hourMicros
        guard limit > closedBefore else { return }
        closedBefore = limit
    }

    /// The rows of every hour changed since the last call, and the hours now final (their state
    /// is dropped after this call).
    func takeChanges() -> [(hourStartMicros: Int64, rows: [RollupRow])] {
        var result: [(Int64, [RollupRow])] = []
        for hour in touched.sorted() {
            guard let state = hours[hour] else { continue }
            let rows = state.cells.values.sorted { $0.contentID < $1.contentID }.map { cell in
                RollupRow(
                    hourStartMicros: hour, contentID: cell.contentID, contentType: cell.contentType, title: cell.title,
                    events: cell.events, plays: cell.plays, sessions: Int64(cell.sessions.count),
                    uniqueViewers: Int64(cell.viewers.count), watchTimeSeconds: cell.watchTime,
                    completions: Int64(cell.completed.count)
                )
            }
            result.append((hour, rows))
        }
        touched.removeAll()
        // Drop the state of closed hours (their files were just written for the last time) and of
        // sessions silent for longer than any gap that still counts.
        let closed = hours.keys.filter { $0 < closedBefore }
        if !closed.isEmpty {
            for hour in closed { hours.removeValue(forKey: hour) }
            let silentBefore = closedBefore - Int64(Self.maxWatchGapSeconds * 1e6) - grace
            cursors = cursors.filter { $0.value.receivedMicros >= silentBefore }
        }
        return result
    }

    func reset() {
        hours.removeAll()
        cursors.removeAll()
        touched.removeAll()
        closedBefore = .min
        lateRecords = 0
    }
}
