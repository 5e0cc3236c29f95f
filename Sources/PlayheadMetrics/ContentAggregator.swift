import Metrics
import PlayheadEvents
import Synchronization

/// What the content KPIs need of one event (decoded from the log by the caller's closure).
public struct ContentObservation: Sendable, Equatable {
    /// `play`, `pause`, `stop` (schema 1.0); later versions may add `seek`, `heartbeat`, `buffering`.
    public var eventType: String
    /// `movie`, `episode` or `ad`.
    public var contentType: String
    /// `session_id`, or `user_id` + `device_id` when the event has no session.
    public var sessionKey: SessionKey
    public var contentID: String
    /// The event's `timestamp` (client time), in microseconds since the Unix epoch.
    public var timestampMicros: Int64
    /// When the server received the event (`received_at`), in microseconds since the Unix epoch.
    public var receivedAtMicros: Int64
    /// The playback position in seconds (`current_timestamp`).
    public var currentTimestamp: Double
    /// The content's length in seconds (`duration_seconds`).
    public var durationSeconds: Int64
    /// The content's title, for the live page's top-content table (never a metric label).
    public var title: String?
    /// `event_source` (`web`, `ios`, …), a breakdown dimension.
    public var eventSource: String
    /// `language`, a breakdown dimension.
    public var language: String
    /// The first of the event's `genre` list (its primary genre), a breakdown dimension; empty when none.
    public var genre: String
    /// The log partition the event was read from (events are keyed by session, so a session stays
    /// in one), for ``ContentAggregator/forget(partitions:)``.
    public var partition: Int32 = 0

    public init(
        eventType: String,
        contentType: String,
        sessionKey: SessionKey,
        contentID: String,
        timestampMicros: Int64,
        receivedAtMicros: Int64,
        currentTimestamp: Double,
        durationSeconds: Int64,
        title: String? = nil,
        eventSource: String = "",
        language: String = "",
        genre: String = ""
    ) {
        self.eventType = eventType
        self.contentType = contentType
        self.sessionKey = sessionKey
        self.contentID = contentID
        self.timestampMicros = timestampMicros
        self.receivedAtMicros = receivedAtMicros
        self.currentTimestamp = currentTimestamp
        self.durationSeconds = durationSeconds
        self.title = title
        self.eventSource = eventSource
        self.language = language
        self.genre = genre
    }
}

/// The bounded dimensions that the content KPIs are broken down by (the labels of the
/// `playhead_breakdown_*` metrics). A value never seen before becomes `other` once its dimension
/// holds ``ContentAggregator/maxDimensionValues`` values, and a combination becomes
/// `other`/`other`/`other` (its content type kept) once ``ContentAggregator/maxBreakdownSeries``
/// combinations exist; an empty value is `none`.
///
/// Values are compared by their UTF-8 bytes, as the lake's columns and SQL compare them: Swift's
/// `String` compares by canonical equivalence, so "café" in NFC and in NFD were one value here
/// while the lake kept two (an outside review). The aggregator gives them in NFC
/// (``ContentAggregator/canonical(_:)``), since the Prometheus registry keeps one series for the
/// two spellings (an outside review, 2026-12-07).
public struct ContentDimensions: Hashable, Sendable, Comparable {
    public var contentType: String
    public var eventSource: String
    public var language: String
    public var genre: String

    public init(contentType: String, eventSource: String, language: String, genre: String) {
        self.contentType = contentType
        self.eventSource = eventSource
        self.language = language
        self.genre = genre
    }

    public static func == (a: Self, b: Self) -> Bool {
        ExactString.same(a.contentType, b.contentType) && ExactString.same(a.eventSource, b.eventSource)
            && ExactString.same(a.language, b.language) && ExactString.same(a.genre, b.genre)
    }

    public func hash(into hasher: inout Hasher) {
        ExactString.hash(contentType, into: &hasher)
        ExactString.hash(eventSource, into: &hasher)
        ExactString.hash(language, into: &hasher)
        ExactString.hash(genre, into: &hasher)
    }

    /// By bytes too, field by field, as `==` compares (String's order, by Unicode scalars after
    /// normalization, left two spellings of one value unordered).
    public static func < (a: Self, b: Self) -> Bool {
        for (x, y) in [(a.contentType, b.contentType), (a.eventSource, b.eventSource), (a.language, b.language), (a.genre, b.genre)]
        where !ExactString.same(x, y) {
            return x.utf8.lexicographicallyPrecedes(y.utf8)
        }
        return false
    }
}

/// A string as a key compared and hashed by its UTF-8 bytes (``ContentDimensions``).
struct ExactString: Hashable, Sendable {
    var string: String

    init(_ string: String) { self.string = string }

    static func == (a: Self, b: Self) -> Bool { same(a.string, b.string) }
    func hash(into hasher: inout Hasher) { Self.hash(string, into: &hasher) }

    static func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

    static func hash(_ value: String, into hasher: inout Hasher) {
        var value = value
        value.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        hasher.combine(value.utf8.count)
    }
}

/// The content KPIs of one combination of dimensions.
public struct ContentFigures: Sendable, Equatable {
    /// Sessions playing now.
    public var concurrentViewers: Int = 0
    public var playsStarted: Int = 0
    public var watchTimeSeconds: Double = 0
    public var completions: Int = 0

    public init(concurrentViewers: Int = 0, playsStarted: Int = 0, watchTimeSeconds: Double = 0, completions: Int = 0) {
        self.concurrentViewers = concurrentViewers
        self.playsStarted = playsStarted
        self.watchTimeSeconds = watchTimeSeconds
        self.completions = completions
    }
}

/// One row of the "what is being watched now" table.
public struct TopContent: Sendable, Equatable, Codable {
    public var contentID: String
    public var title: String?
    public var contentType: String
    /// Sessions currently playing this content.
    public var viewers: Int

    public init(contentID: String, title: String?, contentType: String, viewers: Int) {
        self.contentID = contentID
        self.title = title
        self.contentType = contentType
        self.viewers = viewers
    }

    enum CodingKeys: String, CodingKey {
        case contentID = "content_id"
        case title
        case contentType = "content_type"
        case viewers
    }
}

/// The content KPIs at one moment. Counters count since the aggregator started.
public struct ContentSnapshot: Sendable, Equatable {
    /// Sessions currently playing, by content type.
    public var concurrentViewers: [String: Int]
    /// Sessions seen within the session timeout and not stopped.
    public var activeSessions: Int
    /// Plays started (not resumes after a pause), by content type.
    public var playsStarted: [String: Int]
    /// Seconds watched, by content type.
    public var watchTimeSeconds: [String: Double]
    /// Stops at or beyond the completion ratio of the duration, by content type.
    public var completions: [String: Int]
    /// Plays started of content type `ad`.
    public var adPlays: Int
    /// Events observed, by event type.
    public var eventsByType: [String: Int]
    /// The most watched content right now, most viewers first.
    public var topContent: [TopContent]
    /// The same KPIs broken down by content type, event source, language and primary genre; the
    /// figures of every combination add up to the totals above.
    public var breakdown: [ContentDimensions: ContentFigures]

    /// Sessions currently playing, all content types together.
    public var totalConcurrentViewers: Int { concurrentViewers.values.reduce(0, +) }

    public init(
        concurrentViewers: [String: Int] = [:],
        activeSessions: Int = 0,
        playsStarted: [String: Int] = [:],
        watchTimeSeconds: [String: Double] = [:],
        completions: [String: Int] = [:],
        adPlays: Int = 0,
        eventsByType: [String: Int] = [:],
        topContent: [TopContent] = [],
        breakdown: [ContentDimensions: ContentFigures] = [:]
    ) {
        self.concurrentViewers = concurrentViewers
        self.activeSessions = activeSessions
        self.playsStarted = playsStarted
        self.watchTimeSeconds = watchTimeSeconds
        self.completions = completions
        self.adPlays = adPlays
        self.eventsByType = eventsByType
        self.topContent = topContent
        self.breakdown = breakdown
    }
}

/// Turns a stream of play/pause/stop events into live content KPIs (definitions in docs/metrics.md).
///
/// - A session starts with its first event and ends with a `stop`, or when it has had no event for
///   `sessionTimeout`: measured in event time when its next event arrives, and by ``expire(now:)``
///   (receive time) for sessions that go quiet.
/// - A session is a *viewer* while its last play-state event is `play`. A session whose first event
///   is a `heartbeat` is playing (it started before: a restart, a rebalance, its expiry between an
///   SDK's batches), without a play start, unless it stopped or left that content a moment ago.
/// - Watch time: while a session plays, each gap between consecutive events of the session (event
///   time) counts, capped at `gapCap`. A pause (or `buffering`) stops it; a play resumes it.
/// - A play *starts* when a session plays for the first time (a new session, after a stop, after a
///   timeout, or on other content). A resume after a pause is not a new play.
/// - A completion is a `stop` whose position is at or beyond `completionPercent` % of
///   `duration_seconds`, as SQL over the lake compares it (``Completion``).
/// - Events older than the session's latest event (out of order) are counted, but move neither the
///   session's clock nor its state, so that watch time never goes negative.
/// - Events whose `timestamp` is more than `liveWindow` before or after their `received_at` (an
///   offline queue sent days later, a device clock far ahead) are counted, but change nothing else:
///   they tell of another time than now (``outsideLiveWindow``).
///
/// Thread-safe: one lock. ``observe(_:)-(ContentObservation)`` costs the session's dictionary lookup
/// (and the content's, when a session starts or stops playing): a session keeps the places of its
/// content type's and breakdown combination's figures, found once when it starts, so that counting
/// an event hashes no label values (1.2–1.6× the events per CPU-second of dictionaries keyed by the
/// labels, `scripts/bench-content-aggregator.sh`).
public final class ContentAggregator: Sendable {
    public let sessionTimeoutMicros: Int64
    public let gapCapMicros: Int64
    public let completionPercent: Int
    /// Distinct values kept per label (content type, event type); more go to `other`.
    static let maxLabelValues = 32
    /// Distinct values kept per breakdown dimension (event source, language, genre); more go to `other`.
    public static let maxDimensionValues = 24
    /// Combinations of breakdown dimensions kept (series per `playhead_breakdown_*` metric). It was
    /// 500: `playhead loadgen`'s own catalogue (7 sources, 8 languages, 18 primary genres: about
    /// 1,000 combinations) filled it within seconds, and `other`/`other`/`other` held 36 % of the
    /// viewers (a probe, 2026-12-03). 2,000 × 4 families is about 8,000 series per process.
    public static let maxBreakdownSeries = 2_000
    /// The most sessions followed (and as many stopped ones remembered), whatever the load: about
    /// 250 bytes each with UUID ids and short content ids, so about 60 MiB each, and at most
    /// ``maxTableTextBytes`` more of text. A new session past it ends the half silent
    /// longest (by receive time, then event time), as a timeout would; counted in
    /// `playhead_content_sessions_forgotten_total` (docs/metrics.md).
    public let maxSessions: Int
    /// The most bytes of text (session ids, content ids, titles) that each of the two tables holds,
    /// on top of ``maxSessions``: with ids and titles of 1 KB, 250,000 sessions held about 2.9 KB
    /// each, 1.4 GiB in the two tables (an outside review). Past it, the same half is ended or
    /// forgotten as past ``maxSessions``. The tables' counts of bytes only grow between exact counts
    /// (a session that ends is not taken off at once); one made when a count passes the limit, and at
    /// every ``expire(now:)``, sets them right, and only a table above ¾ of the limit then gives up
    /// half its sessions.
    public let maxTableTextBytes: Int
    private let forgottenCounter = Counter(label: "playhead_content_sessions_forgotten_total")
    /// How far an event's `timestamp` may be from its `received_at` and still count as live
    /// (microseconds): 5 minutes by default, docs/metrics.md ("Events outside the live window").
    public let liveWindowMicros: Int64
    private let lateCounter = Counter(label: "playhead_content_events_outside_live_window_total", dimensions: [("reason", "late")])
    private let aheadCounter = Counter(label: "playhead_content_events_outside_live_window_total", dimensions: [("reason", "ahead")])

    /// A session's state. A class, so that an event costs one dictionary lookup and no copy-back;
    /// only touched under the aggregator's lock.
    final class Session {
        var contentID: String
        /// Its bounded content type, and where its figures are counted, fixed when it starts.
        /// Counting an event then hashes no label values.
        let slots: Slots
        var contentType: String { slots.contentType }
        var title: String?
        /// The latest event time seen (microseconds).
        var lastEventMicros: Int64
        /// The latest receive time seen (microseconds), for ``ContentAggregator/expire(now:)``.
        var lastReceivedMicros: Int64
        var playing = false
        var hasPlayed = false
        /// It started with a `heartbeat` (its play came before what this process read): playing,
        /// with no play start counted, so that its first `play` (one the heartbeat overtook, or one
        /// stamped as it) still counts as its play start, once.
        var joinedPlaying = false
        /// A late `stop` (one older than the session's latest event) completed it: its own `stop`
        /// then does not complete it again (an outside review counted two completions for one
        /// session whose late stop and stop both reached the ratio).
        var completed = false
        /// The log partition its events come from.
        let partition: Int32

        init(contentID: String, slots: Slots, title: String?, lastEventMicros: Int64, lastReceivedMicros: Int64, partition: Int32) {
            self.partition = partition
            self.contentID = contentID
            self.slots = slots
            self.title = title
            self.lastEventMicros = lastEventMicros
            self.lastReceivedMicros = lastReceivedMicros
        }
    }

    /// Where a session's figures go: its content type's entry in `State.types` and its breakdown
    /// combination's in `State.breakdown`.
    struct Slots {
        var contentType: String
        var type: Int
        var breakdown: Int
    }

    struct ContentViewers {
        var viewers: Int
        var title: String?
        var contentType: String
    }

    /// The figures of one content type. A figure is `nil` until something counts it, so that the
    /// snapshot's dictionaries hold the content types that each figure has seen, as before.
    struct TypeFigures {
        let name: String
        let isAd: Bool
        var viewers: Int?
        var plays: Int?
        var watchMicros: Int64?
        var completions: Int?
    }

    /// The figures of one breakdown combination, watch time in microseconds.
    struct BreakdownFigures {
        var viewers = 0
        var plays = 0
        var watchMicros: Int64 = 0
        var completions = 0
    }

    /// A session that ended with a `stop` (or left for other content, as stopped when that started),
    /// remembered for the session timeout so that its late or resent events (a client retrying)
    /// neither start it again nor complete it twice.
    struct Stopped {
        var contentID: String
        /// The `stop`'s event time, and when it was received.
        var stopMicros: Int64
        var receivedMicros: Int64
        var completed: Bool
        /// The contents the session stopped before this one, the latest last (at most
        /// ``maxEarlierContents``): a pre-roll ad's before the movie's. With the latest alone, a
        /// client's resend of a whole ad-then-movie batch counted the ad and the movie again, plays,
        /// watch time and completions (an outside review of the code).
        var earlier: [StoppedContent] = []

        /// What is remembered of the session's stop of `content`, or nil.
        func of(_ content: String) -> StoppedContent? {
            if ExactString.same(contentID, content) { return StoppedContent(contentID: contentID, stopMicros: stopMicros, completed: completed) }
            return earlier.last { ExactString.same($0.contentID, content) }
        }

        mutating func markCompleted(_ content: String) {
            if ExactString.same(contentID, content) {
                completed = true
            } else if let index = earlier.lastIndex(where: { ExactString.same($0.contentID, content) }) {
                earlier[index].completed = true
            }
        }
    }

    struct StoppedContent {
        var contentID: String
        var stopMicros: Int64
        var completed: Bool
    }

    static let maxEarlierContents = 3

    struct State {
        var sessions: [SessionKey: Session] = [:]
        var stopped: [SessionKey: Stopped] = [:]
        /// Content types by first appearance, and where each is in `types`.
        var types: [TypeFigures] = []
        var typeSlots: [String: Int] = [:]
        /// Content types with a play started (the bound of ``maxLabelValues`` counts these).
        var typesWithPlays = 0
        var viewersByContent: [ExactString: ContentViewers] = [:]
        var adPlays = 0
        /// Events by event type: a short list (at most ``maxLabelValues`` + `other`) searched in order.
        var eventTypes: [String] = []
        var eventCounts: [Int] = []
        /// The breakdown combinations, and where each is in `breakdown`.
        var breakdown: [BreakdownFigures] = []
        var breakdownSlots: [ContentDimensions: Int] = [:]
        var languages: Set<ExactString> = []
        var genres: Set<ExactString> = []
        /// Sessions ended or forgotten for ``ContentAggregator/maxSessions``.
        var forgotten = 0
        /// The text bytes of `sessions` and of `stopped` (``ContentAggregator/maxTableTextBytes``):
        /// never less than what they hold.
        var sessionBytes = 0
        var stoppedBytes = 0
        /// Events outside the live window: `timestamp` too long before `received_at`, or after it.
        var late = 0
        var ahead = 0
    }

    private let state = Mutex(State())

    public init(
        sessionTimeout: Duration = .seconds(90), gapCap: Duration = .seconds(60), completionPercent: Int = Completion.percent,
        maxSessions: Int = 250_000, maxTableTextBytes: Int = 256 << 20, liveWindow: Duration = .seconds(300),
        eventSources: EventSourceLabels = .standard
    ) {
        self.eventSources = eventSources
        self.liveWindowMicros = Self.micros(liveWindow)
        self.sessionTimeoutMicros = Self.micros(sessionTimeout)
        self.gapCapMicros = Self.micros(gapCap)
        self.completionPercent = completionPercent
        self.maxSessions = max(2, maxSessions)
        self.maxTableTextBytes = max(1, maxTableTextBytes)
    }

    /// The text a followed session holds: its key's, its content id and its title.
    static func textBytes(_ key: SessionKey, _ session: Session) -> Int {
        key.textBytes + session.contentID.utf8.count + (session.title?.utf8.count ?? 0)
    }

    /// The text a remembered stop holds: its key's, and the content ids.
    static func textBytes(_ key: SessionKey, _ stopped: Stopped) -> Int {
        stopped.earlier.reduce(key.textBytes + stopped.contentID.utf8.count) { $0 + $1.contentID.utf8.count }
    }

    /// Sessions ended, and stopped ones forgotten, to stay within ``maxSessions`` (for tests).
    public var forgottenSessions: Int { state.withLock { $0.forgotten } }

    /// Events left out of the live figures because their `timestamp` was more than ``liveWindowMicros``
    /// before their `received_at` (`late`) or after it (`ahead`).
    public var outsideLiveWindow: (late: Int, ahead: Int) { state.withLock { ($0.late, $0.ahead) } }

    static func micros(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }

    /// Applies one event.
    public func observe(_ observation: ContentObservation) {
        state.withLock { state in apply(observation, to: &state) }
    }

    /// Applies events in order, under one lock.
    public func observe(_ observations: [ContentObservation]) {
        guard !observations.isEmpty else { return }
        state.withLock { state in
            for observation in observations { apply(observation, to: &state) }
        }
    }

    /// Ends sessions whose last event was received more than `sessionTimeout` before `now`
    /// (microseconds since the Unix epoch). Watch time after a session's last event is not counted.
    ///
    /// A session last seen more than `sessionTimeout` after `now` was seen before the server's clock
    /// stepped back (`received_at` is the wall clock): it counts as seen `now`, and so ends one
    /// timeout later if nothing more comes. Before, it stayed until the clock caught up (a probe:
    /// 441 sessions and their viewers held for the hour of a step back).
    public func expire(now: Int64) {
        let cutoff = now - sessionTimeoutMicros
        let future = now + sessionTimeoutMicros
        state.withLock { state in
            var expired: [SessionKey] = []
            var stepped: [SessionKey] = []
            for (key, session) in state.sessions {
                if session.lastReceivedMicros < cutoff { expired.append(key) }
                else if session.lastReceivedMicros > future { stepped.append(key) }
            }
            for key in expired {
                if let session = state.sessions.removeValue(forKey: key) { end(session, in: &state) }
            }
            for key in stepped { state.sessions[key]?.lastReceivedMicros = now }
            state.stopped = state.stopped.filter { $0.value.receivedMicros >= cutoff }
            for (key, stop) in state.stopped where stop.receivedMicros > future { state.stopped[key]?.receivedMicros = now }
            countTextBytes(in: &state)
        }
    }

    /// Ends at once the sessions of `partitions`, which this process no longer reads (a Kafka
    /// rebalance gave them to another member of the group, which counts their sessions from their
    /// next events). Kept until the session timeout, they were counted by two members for 90 s
    /// after every rebalance, and summed viewers ran 20-30 % high through a rolling restart (an
    /// outside review, 2026-12-07). Watch time after a session's last event is not counted, as at
    /// the timeout.
    public func forget(partitions: some Collection<Int32>) {
        guard !partitions.isEmpty else { return }
        let gone = Set(partitions)
        state.withLock { state in
            let keys = state.sessions.compactMap { gone.contains($0.value.partition) ? $0.key : nil }
            for key in keys {
                if let session = state.sessions.removeValue(forKey: key) { end(session, in: &state) }
            }
        }
    }

    /// The KPIs now, with the `top` most watched contents.
    public func snapshot(top: Int = 10) -> ContentSnapshot {
        state.withLock { state in
            var snapshot = ContentSnapshot(activeSessions: state.sessions.count, adPlays: state.adPlays)
            for figures in state.types {
                if let viewers = figures.viewers { snapshot.concurrentViewers[figures.name] = viewers }
                if let plays = figures.plays { snapshot.playsStarted[figures.name] = plays }
                if let micros = figures.watchMicros { snapshot.watchTimeSeconds[figures.name] = Double(micros) / 1_000_000 }
                if let completions = figures.completions { snapshot.completions[figures.name] = completions }
            }
            for (index, name) in state.eventTypes.enumerated() { snapshot.eventsByType[name] = state.eventCounts[index] }
            snapshot.breakdown.reserveCapacity(state.breakdown.count)
            for (dimensions, slot) in state.breakdownSlots {
                let figures = state.breakdown[slot]
                snapshot.breakdown[dimensions] = ContentFigures(
                    concurrentViewers: figures.viewers, playsStarted: figures.plays,
                    watchTimeSeconds: Double(figures.watchMicros) / 1_000_000, completions: figures.completions
                )
            }
            if top > 0 {
                // The `top` best in one pass, kept in order, made into values only when kept. Every
                // content was made into a value and all of them sorted, O(n log n) and a value per
                // content with viewers, under the lock that every event takes, at each publish (4 a
                // second), to keep ten (left out by a review; not measured on its own).
                var best: [Dictionary<ExactString, ContentViewers>.Element] = []
                best.reserveCapacity(top + 1)
                func ranksBefore(_ a: Dictionary<ExactString, ContentViewers>.Element, _ b: Dictionary<ExactString, ContentViewers>.Element) -> Bool {
                    a.value.viewers != b.value.viewers ? a.value.viewers > b.value.viewers : a.key.string < b.key.string
                }
                for entry in state.viewersByContent {
                    if best.count == top, let last = best.last, !ranksBefore(entry, last) { continue }
                    best.insert(entry, at: best.firstIndex { ranksBefore(entry, $0) } ?? best.count)
                    if best.count > top { best.removeLast() }
                }
                snapshot.topContent = best.map {
                    TopContent(contentID: $0.key.string, title: $0.value.title, contentType: $0.value.contentType, viewers: $0.value.viewers)
                }
            }
            return snapshot
        }
    }

    /// `event_source` as the edge counts it in `playhead_events_accepted_total`: a known source (the
    /// built-in ones and the process's `--event-source` values), else `other`. It kept its first 24
    /// values like language and genre, so one request of 24 made-up sources took every slot and
    /// `fire_tv` showed as `other` until a restart (a review).
    let eventSources: EventSourceLabels

    /// The longest breakdown label value, in bytes: longer ones count as `other`.
    static let maxLabelValueBytes = 64

    /// Whether a client's value may be a label value: at most ``maxLabelValueBytes`` bytes, and no
    /// control character, quote or backslash. The number of values was bounded, but not their
    /// length: 24 values of 1 KiB of quotes per dimension, in 2,100 events from any client, made
    /// `/metrics` 50 MB (8,000 series whose values doubled in escaping) and kept a core a fifth busy
    /// rendering it every second, until a restart (a probe, 2026-12-04).
    static func isLabelValue(_ value: String) -> Bool {
        var count = 0
        var afterC2 = false
        for byte in value.utf8 {
            count += 1
            if count > maxLabelValueBytes || byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                return false
            }
            // The C1 controls, U+0080-U+009F, are 0xC2 0x80-0x9F in UTF-8 (U+009B is the 8-bit
            // terminal escape): they passed until 2026-12-07 (an outside review).
            if afterC2 && byte < 0xA0 { return false }
            afterC2 = byte == 0xC2
        }
        return true
    }

    /// `value` in Unicode's NFC, the form of a label value from event data in the breakdowns
    /// (content type, language, genre).
    /// swift-prometheus keys a series by its label values compared as Swift strings (canonical
    /// equivalence), so "café" in NFC and in NFD were one series there but two combinations here,
    /// each publishing into it: the last gauge written won, and the breakdown showed 0 viewers for a
    /// language whose NFC sessions played while its NFD ones paused (an outside review). NFC is the
    /// form in which `String`'s `==` and hashing compare, so the registry's keys and ours now agree;
    /// `_nfcCodeUnits` is the standard library's own normalization (no Foundation in this module).
    /// ASCII, almost every value, is NFC already and is not copied.
    static func canonical(_ value: String) -> String {
        if value.utf8.allSatisfy({ $0 < 0x80 }) { return value }
        return String(decoding: value._nfcCodeUnits, as: UTF8.self)
    }

    // MARK: - The state machine

    private func bounded(_ value: String, in seen: inout Set<ExactString>) -> String {
        let value = value.isEmpty ? "none" : value
        guard Self.isLabelValue(value) else { return "other" }
        let key = ExactString(value)
        if seen.contains(key) { return value }
        if seen.count < Self.maxDimensionValues {
            seen.insert(key)
            return value
        }
        return "other"
    }

    /// Counts one event of `eventType` (bounded: past ``maxLabelValues`` types, new ones count as `other`).
    private func countEvent(_ eventType: String, in state: inout State) {
        if let index = state.eventTypes.firstIndex(of: eventType) {
            state.eventCounts[index] += 1
            return
        }
        let name = state.eventTypes.count < Self.maxLabelValues ? eventType : "other"
        if let index = state.eventTypes.firstIndex(of: name) {
            state.eventCounts[index] += 1
        } else {
            state.eventTypes.append(name)
            state.eventCounts.append(1)
        }
    }

    /// The slots of a session that starts with `o`: its bounded content type (past ``maxLabelValues``
    /// content types with plays, a new one is `other`) and its bounded breakdown dimensions.
    private func slots(of o: ContentObservation, in state: inout State) -> Slots {
        let observed = Self.canonical(o.contentType)
        let contentType: String
        if state.typesWithPlays < Self.maxLabelValues {
            contentType = observed
        } else if let slot = state.typeSlots[observed], state.types[slot].plays != nil {
            contentType = observed
        } else {
            contentType = "other"
        }
        let typeSlot: Int
        if let slot = state.typeSlots[contentType] {
            typeSlot = slot
        } else {
            typeSlot = state.types.count
            state.types.append(TypeFigures(name: contentType, isAd: contentType == "ad"))
            state.typeSlots[contentType] = typeSlot
        }
        var dimensions = ContentDimensions(
            contentType: contentType,
            eventSource: eventSources.contains(o.eventSource) ? o.eventSource : "other",
            language: bounded(Self.canonical(o.language), in: &state.languages),
            genre: bounded(Self.canonical(o.genre), in: &state.genres)
        )
        if state.breakdownSlots[dimensions] == nil && state.breakdown.count >= Self.maxBreakdownSeries {
            dimensions = ContentDimensions(contentType: contentType, eventSource: "other", language: "other", genre: "other")
        }
        let breakdownSlot: Int
        if let slot = state.breakdownSlots[dimensions] {
            breakdownSlot = slot
        } else {
            breakdownSlot = state.breakdown.count
            state.breakdown.append(BreakdownFigures())
            state.breakdownSlots[dimensions] = breakdownSlot
        }
        return Slots(contentType: contentType, type: typeSlot, breakdown: breakdownSlot)
    }

    private func addWatchTime(_ micros: Int64, _ session: Session, in state: inout State) {
        state.types[session.slots.type].watchMicros = (state.types[session.slots.type].watchMicros ?? 0) + micros
        state.breakdown[session.slots.breakdown].watchMicros += micros
    }

    /// Titles longer than this many UTF-8 bytes are cut (they are only shown on the live page).
    static let maxTitleBytes = 200

    private func apply(_ o: ContentObservation, to state: inout State) {
        var title = o.title
        if let long = title, long.utf8.count > Self.maxTitleBytes {
            title = String(decoding: long.utf8.prefix(Self.maxTitleBytes), as: UTF8.self)
        }
        countEvent(o.eventType, in: &state)
        // An event of another time than now: a phone's offline queue sent days later (its session
        // counted as watching now, and its past watch time as this minute's), or a device clock far
        // ahead (the session's clock then ran ahead of every later event, which were all taken for
        // out of order: a session frozen until the clock caught up). An outside review, 2026-12-06.
        if o.timestampMicros < o.receivedAtMicros &- liveWindowMicros {
            state.late += 1
            lateCounter.increment()
            return
        }
        if o.timestampMicros > o.receivedAtMicros &+ liveWindowMicros {
            state.ahead += 1
            aheadCounter.increment()
            return
        }

        var found = state.sessions[o.sessionKey]
        if let existing = found, !ExactString.same(existing.contentID, o.contentID),
            o.timestampMicros < existing.lastEventMicros
                || (o.eventType == "stop" && o.timestampMicros - existing.lastEventMicros <= sessionTimeoutMicros)
        {
            // A late event of content the session played before (a pre-roll ad's stop that arrives
            // after the movie's play): counted, but it ends nothing. Taken for a switch of content,
            // it ended the movie's session, and the movie's watch time was lost (a probe). A `stop`
            // of other content is never a switch, whatever its time within the session timeout: an
            // SDK that stamps whole seconds stamps the ad's stop as the movie's play, and that stop,
            // taken for a switch, ended the movie's session (an outside review, 2026-12-07).
            if o.eventType == "stop",
                !(state.stopped[o.sessionKey]?.of(o.contentID)?.completed ?? false),
                countCompletion(o, slots(of: o, in: &state), in: &state)
            {
                // Remembered, so that the same stop resent (a client retrying) completes it no more.
                remember(stop: o, completed: true, in: &state)
            }
            return
        }
        if let existing = found,
            o.timestampMicros - existing.lastEventMicros > sessionTimeoutMicros || !ExactString.same(existing.contentID, o.contentID)
        {
            // Quiet for longer than the timeout (event time), or playing other content: a new session.
            // Switching content in time counts the gap as watch time of the content left.
            let switched = !ExactString.same(existing.contentID, o.contentID)
            let gap = o.timestampMicros - existing.lastEventMicros
            if existing.playing && gap > 0 && gap <= sessionTimeoutMicros {
                addWatchTime(min(gap, gapCapMicros), existing, in: &state)
            }
            end(existing, in: &state)
            state.sessions[o.sessionKey] = nil
            found = nil
            if switched || existing.completed {
                // The content left is remembered as a stopped one is, as stopped when the next one
                // started: a resend of its events (a client retrying a batch that went on to the
                // next episode without a stop) started it again, and the resent play of the next
                // one counted the gap again (an outside review, 2026-12-07). And a late stop that
                // completed it: its own stop, late now, must not complete it again.
                // Remembered from the switch (its receive time), not from the content's last
                // event: a resend soon after a late switch found it forgotten (a review).
                remember(
                    o.sessionKey, contentID: existing.contentID, stopMicros: switched ? o.timestampMicros : existing.lastEventMicros,
                    receivedMicros: switched ? o.receivedAtMicros : existing.lastReceivedMicros, completed: existing.completed, in: &state
                )
            }
        }

        if let stopped = state.stopped[o.sessionKey]?.of(o.contentID),
            o.timestampMicros < stopped.stopMicros || (o.timestampMicros == stopped.stopMicros && o.eventType != "play")
        {
            // An event from before the stop of a session of this content that has ended (late, or
            // resent): counted, but it starts nothing; a stop completes the session only if its
            // stop did not. So too beside a later session of the same content (a replay), whose
            // events all come after that stop: a resent stop of the first viewing completed the
            // replay (an outside review of the code). Resends are told by their time (no event id
            // is kept): an event stamped as the stop is the ended session's (its stop resent, its
            // last heartbeat), but a `play` then is a replay ("start over" within the stop's
            // second): it was taken for a resend, and the replay counted nothing (an outside
            // review, 2026-12-07). A resent play stamped as its own stop is counted again.
            if o.eventType == "stop" && !stopped.completed {
                let slots = slots(of: o, in: &state)
                if countCompletion(o, slots, in: &state) { state.stopped[o.sessionKey]?.markCompleted(o.contentID) }
            }
            return
        }

        guard let session = found else {
            // The first event of a session.
            let slots = slots(of: o, in: &state)
            if o.eventType == "stop" {
                // A stop we saw nothing before (the session started before we did): it only completes.
                let completed = countCompletion(o, slots, in: &state)
                remember(stop: o, completed: completed, in: &state)
                return
            }
            let new = Session(
                contentID: o.contentID, slots: slots, title: title,
                lastEventMicros: o.timestampMicros, lastReceivedMicros: o.receivedAtMicros, partition: o.partition
            )
            switch o.eventType {
            case "play":
                startPlaying(new, in: &state)
            case "heartbeat" where state.stopped[o.sessionKey]?.of(o.contentID) == nil:
                // It plays (an SDK sends heartbeats while playing, and the lake's rollups count them
                // so): it started before what we read, after a restart, a rebalance
                // (``forget(partitions:)``), or its expiry between an SDK's batches 100 s apart.
                // Left as it was, it never played until its next `play`, and its viewer and all its
                // watch time were lost (an outside review, 2026-12-07). Its play was not seen, so it
                // counts no play start, and a `play` after a pause is a resume. Not a `seek` (one
                // scrubs while paused, or on the end screen), and not a heartbeat of content this
                // session stopped or left a moment ago (its timer racing the stop): those made
                // viewers that were not there (a review of that change).
                new.hasPlayed = true
                new.joinedPlaying = true
                startPlaying(new, in: &state)
            default:
                break
            }
            makeRoomForASession(in: &state)
            state.sessions[o.sessionKey] = new
            state.sessionBytes += Self.textBytes(o.sessionKey, new)
            return
        }

        if o.receivedAtMicros > session.lastReceivedMicros { session.lastReceivedMicros = o.receivedAtMicros }
        if let title {
            // A title of another length is counted again (a longer one may take the session's
            // text past what was counted for it).
            if session.title?.utf8.count != title.utf8.count { state.sessionBytes += title.utf8.count }
            session.title = title
        }

        if o.timestampMicros < session.lastEventMicros {
            // Out of order: counted, but it moves neither the clock nor the state. A late play still
            // counts as the play start of a session that has not started one, or that started with a
            // heartbeat (which overtook the play).
            if o.eventType == "play" && (!session.hasPlayed || session.joinedPlaying) {
                session.hasPlayed = true
                session.joinedPlaying = false
                countPlayStart(session, in: &state)
            } else if o.eventType == "stop" && !session.completed {
                session.completed = countCompletion(o, session.slots, in: &state)
            }
            return
        }

        let sameTime = o.timestampMicros == session.lastEventMicros
        if session.playing {
            let gap = min(o.timestampMicros - session.lastEventMicros, gapCapMicros)
            if gap > 0 { addWatchTime(gap, session, in: &state) }
        }
        session.lastEventMicros = o.timestampMicros

        switch o.eventType {
        case "play":
            if session.joinedPlaying {
                // The first play of a session that a heartbeat started: its play start when stamped
                // as that heartbeat (the two sent together, the heartbeat delivered first), else a
                // resume; either way no later play, nor a resend of this one, counts again.
                session.joinedPlaying = false
                if sameTime && session.playing { countPlayStart(session, in: &state) }
            }
            if !session.playing { startPlaying(session, in: &state) }
        case "pause", "buffering":
            if session.playing { stopPlaying(session, in: &state) }
        case "stop":
            let completed = session.completed || countCompletion(o, session.slots, in: &state)
            if session.playing { stopPlaying(session, in: &state) }
            state.sessions[o.sessionKey] = nil
            remember(stop: o, completed: completed, in: &state)
        default:
            // seek, heartbeat, …: the session stays in its state.
            break
        }
    }

    private func startPlaying(_ session: Session, in state: inout State) {
        session.playing = true
        if !session.hasPlayed {
            session.hasPlayed = true
            countPlayStart(session, in: &state)
        }
        state.types[session.slots.type].viewers = (state.types[session.slots.type].viewers ?? 0) + 1
        state.breakdown[session.slots.breakdown].viewers += 1
        if let index = state.viewersByContent.index(forKey: ExactString(session.contentID)) {
            state.viewersByContent.values[index].viewers += 1
            if let title = session.title { state.viewersByContent.values[index].title = title }
        } else {
            state.viewersByContent[ExactString(session.contentID)] = ContentViewers(viewers: 1, title: session.title, contentType: session.contentType)
        }
    }

    private func stopPlaying(_ session: Session, in state: inout State) {
        session.playing = false
        if let count = state.types[session.slots.type].viewers {
            state.types[session.slots.type].viewers = count > 1 ? count - 1 : 0
        }
        if state.breakdown[session.slots.breakdown].viewers > 0 {
            state.breakdown[session.slots.breakdown].viewers -= 1
        }
        if let index = state.viewersByContent.index(forKey: ExactString(session.contentID)) {
            if state.viewersByContent.values[index].viewers <= 1 {
                state.viewersByContent.remove(at: index)
            } else {
                state.viewersByContent.values[index].viewers -= 1
            }
        }
    }

    /// A session leaves (timeout or new content) without a stop.
    private func end(_ session: Session, in state: inout State) {
        if session.playing { stopPlaying(session, in: &state) }
    }

    private func countPlayStart(_ session: Session, in state: inout State) {
        let slot = session.slots.type
        if let plays = state.types[slot].plays {
            state.types[slot].plays = plays + 1
        } else {
            state.types[slot].plays = 1
            state.typesWithPlays += 1
        }
        state.breakdown[session.slots.breakdown].plays += 1
        if state.types[slot].isAd { state.adPlays += 1 }
    }

    /// Counts `o` (a stop) as a completion if it reached the ratio; returns whether it did.
    @discardableResult
    private func countCompletion(_ o: ContentObservation, _ slots: Slots, in state: inout State) -> Bool {
        guard Completion.reached(position: o.currentTimestamp, duration: o.durationSeconds, percent: completionPercent) else { return false }
        state.types[slots.type].completions = (state.types[slots.type].completions ?? 0) + 1
        state.breakdown[slots.breakdown].completions += 1
        return true
    }

    /// Ends the half of the sessions silent longest (by receive time, then event time), as a timeout
    /// would: a later event of one starts a new session.
    /// Keeps a new session within ``maxSessions`` and ``maxTableTextBytes``.
    private func makeRoomForASession(in state: inout State) {
        if state.sessions.count >= maxSessions {
            endLongestSilentHalf(in: &state)
            countTextBytes(in: &state)
        }
        guard state.sessionBytes > maxTableTextBytes else { return }
        countTextBytes(in: &state)
        while state.sessionBytes > maxTableTextBytes / 4 * 3, state.sessions.count > 1 {
            endLongestSilentHalf(in: &state)
            countTextBytes(in: &state)
        }
    }

    /// Sets the tables' counts of text bytes to what they hold.
    private func countTextBytes(in state: inout State) {
        state.sessionBytes = state.sessions.reduce(0) { $0 + Self.textBytes($1.key, $1.value) }
        state.stoppedBytes = state.stopped.reduce(0) { $0 + Self.textBytes($1.key, $1.value) }
    }

    private func endLongestSilentHalf(in state: inout State) {
        var lastSeen = state.sessions.values.map { ($0.lastReceivedMicros, $0.lastEventMicros) }
        lastSeen.sort { $0 < $1 }
        let median = lastSeen[lastSeen.count / 2]
        let ending = state.sessions.filter { _, session in (session.lastReceivedMicros, session.lastEventMicros) <= median }
        for (key, session) in ending {
            end(session, in: &state)
            state.sessions[key] = nil
        }
        state.forgotten += ending.count
        forgottenCounter.increment(by: ending.count)
    }

    private func remember(stop o: ContentObservation, completed: Bool, in state: inout State) {
        remember(
            o.sessionKey, contentID: o.contentID, stopMicros: o.timestampMicros, receivedMicros: o.receivedAtMicros,
            completed: completed, in: &state
        )
    }

    /// Remembers a session that ended (with a stop, or left for other content), in the bounded
    /// table of stopped sessions.
    private func remember(
        _ key: SessionKey, contentID: String, stopMicros: Int64, receivedMicros: Int64, completed: Bool, in state: inout State
    ) {
        let earlier = state.stopped[key]
        if earlier == nil && state.stopped.count >= maxSessions {
            forgetLongestStoppedHalf(in: &state)
            countTextBytes(in: &state)
        }
        if earlier == nil && state.stoppedBytes > maxTableTextBytes {
            countTextBytes(in: &state)
            while state.stoppedBytes > maxTableTextBytes / 4 * 3, state.stopped.count > 1 {
                forgetLongestStoppedHalf(in: &state)
                countTextBytes(in: &state)
            }
        }
        guard let earlier else {
            let stopped = Stopped(contentID: contentID, stopMicros: stopMicros, receivedMicros: receivedMicros, completed: completed)
            state.stopped[key] = stopped
            state.stoppedBytes += Self.textBytes(key, stopped)
            return
        }
        // The contents stopped before, this one's earlier stop taken into it.
        var history = earlier.earlier
        if !ExactString.same(earlier.contentID, contentID) {
            history.append(StoppedContent(contentID: earlier.contentID, stopMicros: earlier.stopMicros, completed: earlier.completed))
        }
        let before = earlier.of(contentID)
        history.removeAll { ExactString.same($0.contentID, contentID) }
        if history.count > Self.maxEarlierContents { history.removeFirst(history.count - Self.maxEarlierContents) }
        let stopped = Stopped(
            contentID: contentID, stopMicros: max(stopMicros, before?.stopMicros ?? .min),
            receivedMicros: max(receivedMicros, earlier.receivedMicros), completed: completed || (before?.completed ?? false), earlier: history
        )
        state.stopped[key] = stopped
        state.stoppedBytes += Self.textBytes(key, stopped) - Self.textBytes(key, earlier)
    }

    /// Forgets the half of the stopped sessions stopped longest ago: a late event of one of those
    /// could start it again.
    private func forgetLongestStoppedHalf(in state: inout State) {
        var received = state.stopped.values.map(\.receivedMicros)
        received.sort()
        let median = received[received.count / 2]
        let before = state.stopped.count
        state.stopped = state.stopped.filter { $0.value.receivedMicros > median }
        state.forgotten += before - state.stopped.count
        forgottenCounter.increment(by: before - state.stopped.count)
    }
}
