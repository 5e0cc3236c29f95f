import Foundation
import Logging
import Metrics
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

/// What the rollups need of one event: read from its record once (possibly on another thread than
/// the aggregator's), so that adding it costs no parsing and no hashing of strings.
struct RollupFacts: Sendable {
    var receivedMicros: Int64
    var timestampMicros: Int64
    var position: Double
    var durationSeconds: Int64
    /// Hashes of the session (`session_id`, else `device_id`), `user_id` and `content_id`.
    var session: UInt64
    var user: UInt64
    var content: UInt64
    var isPlay: Bool
    /// A `play` or `heartbeat`: the position advances until the session's next event.
    var isPlaying: Bool

    init(_ record: EventRecordView) {
        receivedMicros = record.receivedAtMicros
        timestampMicros = record.timestampMicros
        position = record.currentTimestamp
        durationSeconds = record.durationSeconds
        session = hash64(record.sessionIDBytes ?? record.deviceIDBytes)
        user = hash64(record.userIDBytes)
        content = hash64(record.contentIDBytes)
        isPlay = record.eventTypeIs("play")
        isPlaying = isPlay || record.eventTypeIs("heartbeat")
    }
}

/// Per-hour, per-content aggregates of one log partition, kept for the hours still open.
///
/// An hour closes when a record arrives more than `grace` after its end; its last rollup file is
/// then final and its state is dropped. Records of an hour that has already closed are not counted
/// (they are rare: `received_at` is the server's clock and the log is in arrival order) and are
/// reported by `lateRecords`.
///
/// Used by one thread at a time (hence no dynamic exclusivity checks on its state, which cost a few
/// per cent of an import).
final class RollupAggregator: @unchecked Sendable {
    static let hourMicros: Int64 = 3_600_000_000
    /// The longest gap between two events of a session that still counts as watching.
    static let maxWatchGapSeconds = 60.0

    private struct Cell {
        var contentID: String
        var contentType: String
        var title: String
        var events: Int64 = 0
        var plays: Int64 = 0
        var watchTime: Double = 0
        /// Exact up to 65,536 values each, then estimates (``DistinctCount``).
        var sessions = DistinctCount()
        var viewers = DistinctCount()
        var completed = DistinctCount()

        init(_ names: (contentID: String, contentType: String, title: String)) {
            contentID = names.contentID
            contentType = names.contentType
            title = names.title
        }
    }

    private struct Hour {
        var firstOffset: Int64
        /// Where a rebuild starts reading the sessions' recent events before this hour's first
        /// record (``primeFrom``).
        var primeFrom: Int64
        var cells: [Cell] = []
        /// The cell of each content, by the hash of `content_id` (no String made per event).
        var cellIndex: [UInt64: Int] = [:]
    }

    /// One of a session's recent events, as watch time needs it: where it is in event time, and
    /// the cell that the interval ending at it was counted in.
    private struct Moment {
        var timestampMicros: Int64
        var position: Double
        var contentHash: UInt64
        /// The hour of the cell (hours since 1970, by `received_at`).
        var hour: Int32
        /// The cell's index in its hour, and in the top bit whether the event is `play` or `heartbeat`.
        private var cellAndPlaying: UInt32

        init(_ event: RollupFacts, hour: Int32, cell: Int) {
            timestampMicros = event.timestampMicros
            position = event.position
            contentHash = event.content
            self.hour = hour
            cellAndPlaying = UInt32(truncatingIfNeeded: cell) & 0x7FFF_FFFF | (event.isPlaying ? 0x8000_0000 : 0)
        }

        var playing: Bool { cellAndPlaying & 0x8000_0000 != 0 }
        var cell: Int { Int(cellAndPlaying & 0x7FFF_FFFF) }
        /// An event a rebuild read only for its session's history (``RollupAggregator/prime(_:offset:)``):
        /// it has no cell (``RollupAggregator/primedCell``).
        var primed: Bool { cell == RollupAggregator.primedCell }
        var hourStartMicros: Int64 { Int64(hour) * RollupAggregator.hourMicros }

        /// Seconds watched between this event and a later one of the session (docs/lake.md): the
        /// position's advance while playing, at most the time between the two and the gap cap.
        @inline(__always)
        func watched(until later: Moment) -> Double {
            guard playing, later.contentHash == contentHash else { return 0 }
            let advance = max(later.position - position, 0)
            let wall = Double(later.timestampMicros - timestampMicros) / 1e6
            return min(advance, wall, RollupAggregator.maxWatchGapSeconds)
        }
    }

    private struct Cursor {
        /// The session's last `historyLength` events by `timestamp`, oldest first (`count` of them).
        var history: [2 of Moment]
        /// When the server received the session's last event (for dropping silent sessions).
        var receivedMicros: Int64
        /// The cell the session last counted in (its hour, its content and index; the session is in
        /// its `sessions`), the viewer it last added there, and whether it added its completion. The
        /// next event of the session in that cell needs no lookup and no set insert. (Narrow fields:
        /// the table holds a cursor per session seen in the last hour.)
        var contentHash: UInt64 = 0
        var viewer: UInt64 = 0
        /// Hours since 1970.
        var hour: Int32 = .min
        var cellIndex: Int32 = 0
        var count: Int8 = 0
        /// Whether older events were dropped from `history`: an event older than all of it cannot be
        /// placed.
        var truncated = false
        var hasViewer = false
        var completed = false

        init(receivedMicros: Int64, placeholder: Moment) {
            history = .init(repeating: placeholder)
            self.receivedMicros = receivedMicros
        }

        var cell: Int { Int(cellIndex) }

        /// When the session was last heard from: its last `received_at`, then its latest event
        /// time (an import gives every event one `received_at`). Ordered, for forgetting the longest silent.
        var lastSeen: (received: Int64, event: Int64) {
            (receivedMicros, count > 0 ? history[Int(count) - 1].timestampMicros : .min)
        }
    }

    /// How many of a session's latest events (by `timestamp`) are kept to place an event that
    /// arrives after later ones of its session.
    static var historyLength: Int { 2 }

    /// The cell of a primed event's ``Moment``: none (no hour has that many contents).
    static let primedCell = 0x7FFF_FFFF

    let grace: Int64
    @exclusivity(unchecked) private var hours: [Int64: Hour] = [:]
    /// Where the hour of the last event sits in `hours` (valid until an hour is added or removed).
    @exclusivity(unchecked) private var currentHour: (hour: Int64, index: Dictionary<Int64, Hour>.Index)?
    @exclusivity(unchecked) private var closedBefore: Int64 = .min
    /// The last events of each session, for watch time. Bounded: sessions silent for longer than
    /// ``forgetSilentAfterMicros`` (10 minutes) are dropped at each minute of `received_at`, and sessions silent
    /// for longer than the gap cap when an hour closes.
    @exclusivity(unchecked) private var cursors = HashTable<Cursor>()
    /// Sessions silent (by `received_at`) for longer than this are forgotten: the table then holds the
    /// sessions of the last minutes, not of the whole open hours (at 5,000 events/s of short sessions
    /// it grew past 700 MB within an hour, a probe). An event after such a silence counts no watch
    /// time for the gap (the SQL over `events/` counts up to 60 s); the distinct counts do not
    /// change, being kept per cell.
    let forgetSilentAfterMicros: Int64
    /// The most sessions remembered for watch time, whatever the load: at 260,000 the table is at
    /// most 2^19 slots of 112 bytes (56 MiB). A new session past it makes the half of the table
    /// that has been silent longest forgotten (by `received_at`, then by event time), with the same
    /// cost as a silence of 10 minutes (docs/lake.md, "Memory"). Counted in
    /// `playhead_lake_rollup_sessions_forgotten_total`.
    let maxRememberedSessions: Int
    /// The most content-hours (rows of the open hours' rollup files) kept, whatever the load: about
    /// 350 bytes each with their distinct counts' first values, so about 35 MiB. An event of a
    /// content with no row yet in its hour, past it, is not counted in the rollups (it is in
    /// `events/`, as an event of an hour already final is); counted in
    /// `playhead_lake_rollup_events_uncounted_total`. A catalogue has far fewer contents; a client
    /// that sends a new `content_id` with every event does not grow the lake writer without end.
    let maxCells: Int
    /// Rows of the open hours.
    @exclusivity(unchecked) private var cellCount = 0
    /// Events not counted because of ``maxCells``.
    @exclusivity(unchecked) private(set) var uncountedEvents = 0
    private let uncountedCounter = Counter(label: "playhead_lake_rollup_events_uncounted_total")
    /// Sessions forgotten to stay within ``maxRememberedSessions``.
    @exclusivity(unchecked) private(set) var forgottenSessions = 0
    private let forgottenCounter = Counter(label: "playhead_lake_rollup_sessions_forgotten_total")
    /// The minute of `received_at` (since 1970) in which silent sessions were last dropped.
    @exclusivity(unchecked) private var sweptMinute: Int64 = .min
    @exclusivity(unchecked) private(set) var lateRecords = 0
    /// Set while a restart's warm-up reads again events an earlier run counted: those it leaves
    /// out were counted in `playhead_lake_rollup_events_uncounted_total` and said then.
    @exclusivity(unchecked) var replaying = false
    /// Hours changed since the last `takeChanges()`.
    @exclusivity(unchecked) private var touched = Set<Int64>()
    /// The first offset of each minute of `received_at` seen in the last ``minutesKept`` minutes,
    /// oldest first: where an hour's ``Hour/primeFrom`` is found.
    @exclusivity(unchecked) private var minuteStarts: [(minute: Int64, offset: Int64)] = []
    /// Open hours reach about 65 minutes back (an hour and the grace), and priming 11 minutes
    /// before the oldest.
    private static let minutesKept: Int64 = 150

    init(
        graceMicros: Int64 = 300_000_000, forgetSilentAfterMicros: Int64 = 600_000_000, maxRememberedSessions: Int = 260_000,
        maxCells: Int = 100_000, logger: Logger = Logger(label: "playhead.lake")
    ) {
        self.logger = logger
        grace = graceMicros
        self.forgetSilentAfterMicros = forgetSilentAfterMicros
        self.maxRememberedSessions = max(2, maxRememberedSessions)
        self.maxCells = max(1, maxCells)
    }

    /// Where a rebuild after a restart must start counting: the first offset of the oldest open hour.
    var rebuildFrom: Int64? { hours.values.map(\.firstOffset).min() }

    /// Where a rebuild must start reading the sessions' recent events (``prime(_:offset:)``), before
    /// ``rebuildFrom``: the first record of the minute that starts ``primeMicros`` before the oldest
    /// open hour, as far back as this aggregator has seen. The watch time of a session's first
    /// event in an hour is measured from its event before, often in the hour before: a rebuild
    /// that started at the hour's first record lost one interval per session (4 % of an hour's
    /// watch time, an outside review, 2026-12-05).
    var primeFrom: Int64? { hours.values.map(\.primeFrom).min() }

    /// The start of the oldest open hour (microseconds since 1970, by `received_at`).
    var oldestOpenHour: Int64? { hours.keys.min() }

    /// How long before an hour a session's last event can still count for its next one: sessions
    /// silent for longer are forgotten (``forgetSilentAfterMicros``), at minute boundaries.
    var primeMicros: Int64 { forgetSilentAfterMicros + 60_000_000 }

    func add(_ record: EventRecordView, offset: Int64) {
        add(RollupFacts(record), offset: offset) { (record.contentID, record.contentType, record.title) }
    }

    /// Starts loading the session's state that `add` will read (call it a few events ahead).
    @inline(__always)
    func prefetch(_ event: RollupFacts) {
        cursors.prefetch(event.session)
    }

    /// Counts one event. `names` gives the content's id, type and title; it is called only for the
    /// first event of a content in an hour.
    func add(_ event: RollupFacts, offset: Int64, names: () -> (String, String, String)) {
        let received = event.receivedMicros
        sweep(received, offset: offset)
        // Hours this event closes first (never its own: its hour starts at or after the limit), so
        // that their rows leave room under `maxCells` for the event's own.
        closeHours(before: received - grace)
        let hour = received - ((received % Self.hourMicros) + Self.hourMicros) % Self.hourMicros
        guard hour >= closedBefore else {
            lateRecords += 1
            uncountedEvents += 1
            if !replaying {
                uncountedCounter.increment()
                reportLate(hour: hour)
            }
            return
        }
        let session = event.session
        let hourIndex = index(of: hour, firstOffset: offset)
        if cellCount >= maxCells && hours.values[hourIndex].cellIndex[event.content] == nil {
            uncountedEvents += 1
            if !replaying { uncountedCounter.increment() }
            return
        }
        let completes = Completion.reached(position: event.position, duration: event.durationSeconds)
        if cursors.count >= maxRememberedSessions && cursors.value(session) == nil { forgetLongestSilentHalf() }
        // One lookup of the session's cursor, changed in place.
        cursors.update(session) { stored in
            if stored == nil { stored = Cursor(receivedMicros: received, placeholder: Moment(event, hour: 0, cell: 0)) }
            // In place: the cursor holds the session's history, too big to copy out and back per event.
            record(event, session: session, hour: hour, hourIndex: hourIndex, completes: completes, names: names, cursor: &stored!)
        }
    }

    /// Reads an event that a rebuild meets before the first record of the open hours
    /// (``primeFrom`` up to ``rebuildFrom``): into its session's history only, as the run that
    /// counted it had it, so that the session's next event measures its watch time from it.
    /// Nothing is counted, and no hour is made.
    func prime(_ record: EventRecordView, offset: Int64) {
        let event = RollupFacts(record)
        sweep(event.receivedMicros, offset: offset)
        closeHours(before: event.receivedMicros - grace)
        // As ``add``: an event of an hour already final touched no history.
        let hour = LakePaths.hourStart(event.receivedMicros)
        guard hour >= closedBefore else { return }
        let session = event.session
        if cursors.count >= maxRememberedSessions && cursors.value(session) == nil { forgetLongestSilentHalf() }
        cursors.update(session) { stored in
            if stored == nil { stored = Cursor(receivedMicros: event.receivedMicros, placeholder: Moment(event, hour: 0, cell: 0)) }
            stored!.receivedMicros = max(stored!.receivedMicros, event.receivedMicros)
            _ = place(Moment(event, hour: Int32(truncatingIfNeeded: hour / Self.hourMicros), cell: Self.primedCell), in: &stored!)
        }
    }

    /// At each new minute of the stream's time: forgets the sessions silent since before the cut at
    /// the minute's start (the same events give the same cuts, whenever the writer reads them: a
    /// rebuild from the log after a restart), and notes the minute's first offset.
    @inline(__always)
    private func sweep(_ received: Int64, offset: Int64) {
        let minute = received / 60_000_000
        guard minute > sweptMinute else { return }
        if sweptMinute != .min { forgetSilentSessions(before: minute * 60_000_000 - forgetSilentAfterMicros) }
        sweptMinute = minute
        minuteStarts.append((minute, offset))
        if let first = minuteStarts.first, first.minute < minute - Self.minutesKept {
            minuteStarts.removeAll { $0.minute < minute - Self.minutesKept }
        }
    }

    /// Counts `event` in its cell and its session's history.
    @inline(__always)
    private func record(
        _ event: RollupFacts, session: UInt64, hour: Int64, hourIndex: Dictionary<Int64, Hour>.Index, completes: Bool,
        names: () -> (String, String, String), cursor: inout Cursor
    ) {
        // The session's cell in this hour: remembered by its cursor, else looked up (or made).
        let hourNumber = Int32(truncatingIfNeeded: hour / Self.hourMicros)
        if cursor.hour != hourNumber || cursor.contentHash != event.content {
            let cell = cellIndex(hourIndex, content: event.content, names: names)
            hours.values[hourIndex].cells[cell].sessions.insert(session)
            cursor.hour = hourNumber
            cursor.contentHash = event.content
            cursor.cellIndex = Int32(truncatingIfNeeded: cell)
            cursor.hasViewer = false
            cursor.completed = false
        }
        cursor.receivedMicros = max(cursor.receivedMicros, event.receivedMicros)
        let watched = place(Moment(event, hour: hourNumber, cell: cursor.cell), in: &cursor)
        // Mutated in place (no copy of the hour or the cell out of its container): a copy would
        // make every event copy the hour's cells and the cell's sets (copy-on-write).
        Self.count(
            event, watched: watched, session: session, completes: completes,
            in: &hours.values[hourIndex].cells[cursor.cell], cursor: &cursor
        )
    }

    /// Puts an event in its session's history, in `timestamp` order, and returns the seconds watched
    /// in the interval it ends (from the session's previous event by `timestamp`).
    ///
    /// Usually the event is the session's latest and goes last. One that arrives after later events
    /// of its session splits the interval between its neighbours: what that interval counted, in the
    /// hour of the later neighbour, is replaced by what the later part counts now, as the SQL over
    /// `events/` has it. That needs both neighbours in the history and the later one's hour still
    /// open; otherwise the event counts no watch time and changes nothing else (docs/lake.md).
    @inline(__always)
    private func place(_ moment: Moment, in cursor: inout Cursor) -> Double {
        let count = Int(cursor.count)
        if count == 0 || moment.timestampMicros >= cursor.history[count - 1].timestampMicros {
            let watched = count == 0 ? 0 : cursor.history[count - 1].watched(until: moment)
            Self.insert(moment, at: count, in: &cursor)
            return watched
        }
        var place = count - 1
        while place > 0 && cursor.history[place - 1].timestampMicros > moment.timestampMicros { place -= 1 }
        // Older than every remembered event, with older ones forgotten: its predecessor is unknown.
        if place == 0 && cursor.truncated { return 0 }
        let later = cursor.history[place]
        let earlier: Moment? = place > 0 ? cursor.history[place - 1] : nil
        let laterHour = later.hourStartMicros
        if later.primed {
            // Its interval was counted in an hour before the rebuild's (no cell here): the run that
            // counted it placed this event while that hour was open, and corrected there only.
            guard laterHour >= closedBefore else { return 0 }
            Self.insert(moment, at: place, in: &cursor)
            return earlier?.watched(until: moment) ?? 0
        }
        guard let hourIndex = hours.index(forKey: laterHour) else { return 0 }
        let correction = moment.watched(until: later) - (earlier?.watched(until: later) ?? 0)
        if correction != 0 {
            let watch = hours.values[hourIndex].cells[later.cell].watchTime + correction
            // Never below zero through rounding: the split parts add up to at most the whole.
            hours.values[hourIndex].cells[later.cell].watchTime = max(watch, 0)
            touched.insert(laterHour)
        }
        Self.insert(moment, at: place, in: &cursor)
        return earlier?.watched(until: moment) ?? 0
    }

    /// Inserts at `place` of the history; when it is full, the oldest event is dropped.
    @inline(__always)
    private static func insert(_ moment: Moment, at place: Int, in cursor: inout Cursor) {
        let count = Int(cursor.count)
        if count < historyLength {
            var index = count
            while index > place {
                cursor.history[index] = cursor.history[index - 1]
                index -= 1
            }
            cursor.history[place] = moment
            cursor.count += 1
            return
        }
        cursor.truncated = true
        // Full: the events before `place` move down one, over the oldest (which is `moment` itself
        // when it goes first).
        guard place > 0 else { return }
        for index in 0..<(place - 1) { cursor.history[index] = cursor.history[index + 1] }
        cursor.history[place - 1] = moment
    }

    /// The index of the cell of `content` in the hour at `hourIndex`, made if new.
    private func cellIndex(_ hourIndex: Dictionary<Int64, Hour>.Index, content: UInt64, names: () -> (String, String, String)) -> Int {
        if let known = hours.values[hourIndex].cellIndex[content] { return known }
        let cell = hours.values[hourIndex].cells.count
        hours.values[hourIndex].cells.append(Cell(names()))
        hours.values[hourIndex].cellIndex[content] = cell
        cellCount += 1
        return cell
    }

    @inline(__always)
    private static func count(
        _ event: RollupFacts, watched: Double, session: UInt64, completes: Bool, in cell: inout Cell, cursor: inout Cursor
    ) {
        cell.events += 1
        if event.isPlay { cell.plays += 1 }
        cell.watchTime += watched
        if !cursor.hasViewer || cursor.viewer != event.user {
            cell.viewers.insert(event.user)
            cursor.viewer = event.user
            cursor.hasViewer = true
        }
        if completes && !cursor.completed {
            cell.completed.insert(session)
            cursor.completed = true
        }
    }

    /// The index of `hour` in `hours`, adding it if new.
    private func index(of hour: Int64, firstOffset: Int64) -> Dictionary<Int64, Hour>.Index {
        if let currentHour, currentHour.hour == hour { return currentHour.index }
        if hours[hour] == nil {
            // The first minute at or after `primeMicros` before the hour; else the oldest seen.
            let primeMinute = (hour - primeMicros) / 60_000_000
            let primeFrom = minuteStarts.first { $0.minute >= primeMinute }?.offset ?? minuteStarts.first?.offset ?? firstOffset
            hours[hour] = Hour(firstOffset: firstOffset, primeFrom: min(primeFrom, firstOffset))
        }
        let index = hours.index(forKey: hour)!
        currentHour = (hour, index)
        touched.insert(hour)
        return index
    }

    /// Closes every hour that ended before `time`.
    private func closeHours(before time: Int64) {
        let limit = time - ((time % Self.hourMicros) + Self.hourMicros) % Self.hourMicros
        guard limit > closedBefore else { return }
        closedBefore = limit
        // The rows of closed hours stay until `takeChanges` writes them for the last time, but no
        // longer count against `maxCells`.
        cellCount = hours.reduce(0) { $0 + ($1.key >= limit ? $1.value.cells.count : 0) }
    }

    /// The rows of every hour changed since the last call, and the hours now final (their state
    /// is dropped after this call).
    func takeChanges() -> [(hourStartMicros: Int64, rows: [RollupRow])] {
        sayLate()
        var result: [(Int64, [RollupRow])] = []
        for hour in touched.sorted() {
            guard let state = hours[hour] else { continue }
            let rows = state.cells.sorted { $0.contentID < $1.contentID }.map { cell in
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
        // The next event marks its hour as touched again.
        currentHour = nil
        // Drop the state of closed hours (their files were just written for the last time) and of
        // sessions silent for longer than any gap that still counts.
        let closed = hours.keys.filter { $0 < closedBefore }
        if !closed.isEmpty {
            for hour in closed { hours.removeValue(forKey: hour) }
            currentHour = nil
            let silentBefore = closedBefore - Int64(Self.maxWatchGapSeconds * 1e6) - grace
            cursors.filter { $0.receivedMicros >= silentBefore }
        }
        return result
    }

    /// Forgets the half of the remembered sessions silent longest: ordered by the last `received_at`,
    /// then by the last event time (an import gives every event one `received_at`), the sessions at
    /// or before the median go.
    private func forgetLongestSilentHalf() {
        var lastSeen: [(received: Int64, event: Int64)] = []
        lastSeen.reserveCapacity(cursors.count)
        cursors.forEach { lastSeen.append($0.lastSeen) }
        lastSeen.sort { $0 < $1 }
        let median = lastSeen[lastSeen.count / 2]
        let before = cursors.count
        cursors.filter { $0.lastSeen > median }
        forgottenSessions += before - cursors.count
        // Not during a restart's warm-up: the run before counted those already.
        if !replaying { forgottenCounter.increment(by: before - cursors.count) }
    }

    private func forgetSilentSessions(before silentBefore: Int64) {
        cursors.filter { $0.receivedMicros >= silentBefore }
    }

    /// When records of a final hour were last reported, how many came since, and the hours they
    /// are of (the first and the last).
    private var lateReported: ContinuousClock.Instant?
    private var lateSinceReported = 0
    private var lateHours: ClosedRange<Int64>?
    private let logger: Logger

    /// A record of an hour whose rollup file is already final: only after the server's clock stepped
    /// back by more than `grace` (or a restart with an earlier clock), since `received_at` is the
    /// server's and the log is in arrival order. Said at most once a minute (a probe: a step back of
    /// an hour left 36,000 events out of the rollups without a word).
    ///
    /// Counted here, and said when the batch's rollups are taken (``takeChanges()``), with every such
    /// event since the last warning: said at the first event, the warning read `events=1` for a
    /// batch that left out thousands (a review of time in events).
    private func reportLate(hour: Int64) {
        lateSinceReported += 1
        lateHours = lateHours.map { min($0.lowerBound, hour)...max($0.upperBound, hour) } ?? hour...hour
    }

    /// Says the events of final hours counted since the last warning, at most once a minute.
    private func sayLate() {
        guard lateSinceReported > 0, let hours = lateHours else { return }
        let now = ContinuousClock.now
        if let last = lateReported, last.duration(to: now) < .seconds(60) { return }
        lateReported = now
        func start(_ hour: Int64) -> String { "\(Date(timeIntervalSince1970: Double(hour) / 1e6))" }
        let events = lateSinceReported
        logger.warning("lake writer: \(events) events of an hour whose rollups are final (the server's clock stepped back?), since the last such warning: written to events/ but not counted in rollups/; use the SQL over events/ for that hour (docs/lake.md); playhead_lake_rollup_events_uncounted_total counts them all", metadata: [
            "hour_start": "\(start(hours.lowerBound))", "last_hour_start": "\(start(hours.upperBound))", "events": .stringConvertible(events),
        ])
        lateSinceReported = 0
        lateHours = nil
    }

    /// Sessions remembered for watch time (for tests).
    var rememberedSessions: Int { cursors.count }

    func reset() {
        sweptMinute = .min
        minuteStarts.removeAll()
        hours.removeAll()
        cellCount = 0
        cursors.removeAll()
        touched.removeAll()
        currentHour = nil
        closedBefore = .min
        lateRecords = 0
        uncountedEvents = 0
        forgottenSessions = 0
    }
}
