/// A fixed catalogue of content for synthetic events.
public struct ContentCatalogue: Sendable {
    public struct Item: Sendable, Hashable {
        public var contentID: String
        public var title: String
        public var genres: [String]
        public var durationSeconds: Int
        /// movie, episode or ad.
        public var contentType: String

        public init(contentID: String, title: String, genres: [String], durationSeconds: Int, contentType: String) {
            self.contentID = contentID
            self.title = title
            self.genres = genres
            self.durationSeconds = durationSeconds
            self.contentType = contentType
        }
    }

    public var items: [Item]

    public init(items: [Item]) { self.items = items }

    /// 50 items: 24 movies, 20 episodes, 6 ads. A few titles hold non-ASCII letters and quotes.
    public static let standard: ContentCatalogue = {
        let movies: [(String, [String], Int)] = [
            ("The Long Night", ["drama", "thriller"], 7260), ("Paper Moons", ["romance", "comedy"], 5880),
            ("Iron Harbor", ["action"], 8100), ("A Quiet Field", ["drama"], 6420),
            ("Orbit Nine", ["sci-fi", "adventure"], 7740), ("The \"Last\" Heist", ["crime", "thriller"], 6960),
            ("Amélie's Garden", ["romance", "drama"], 6300), ("Northern Lights", ["documentary"], 5400),
            ("Red Canyon", ["western", "action"], 7020), ("Glass Houses", ["drama", "mystery"], 6600),
            ("Tiny Giants", ["animation", "family"], 5520), ("The Deep End", ["horror"], 5760),
            ("Borrowed Time", ["sci-fi", "drama"], 7500), ("Salt & Pepper", ["comedy"], 5640),
            ("Kōbe Nights", ["drama", "crime"], 6840), ("Parallel Lines", ["thriller", "sci-fi"], 7080),
            ("The Cartographer", ["adventure", "history"], 8400), ("Small Hours", ["drama"], 6120),
            ("Wildfire", ["action", "disaster"], 7380), ("Moon River Blues", ["music", "drama"], 6240),
            ("Chasing Summer", ["comedy", "romance"], 5940), ("The Archive", ["mystery"], 6780),
            ("Über Alles", ["history", "war"], 9000), ("Second Wind", ["sports", "drama"], 6480),
        ]
        let shows: [(String, [String], Int)] = [
            ("Harbor Police", ["crime", "drama"], 2640), ("Kitchen Wars", ["reality", "food"], 2580),
            ("Starfall", ["sci-fi"], 3300), ("The Firm Next Door", ["comedy"], 1320),
            ("Ancient Roads", ["documentary", "history"], 2940),
        ]
        var items: [Item] = []
        for (k, movie) in movies.enumerated() {
            items.append(
                Item(
                    contentID: "movie_\(1000 + k)", title: movie.0, genres: movie.1, durationSeconds: movie.2,
                    contentType: "movie"
                )
            )
        }
        for (s, show) in shows.enumerated() {
            for e in 1...4 {
                items.append(
                    Item(
                        contentID: "ep_\(2000 + s * 10 + e)", title: "\(show.0) S1E\(e)", genres: show.1,
                        durationSeconds: show.2 + e * 37, contentType: "episode"
                    )
                )
            }
        }
        for a in 0..<6 {
            items.append(
                Item(
                    contentID: "ad_\(3000 + a)", title: ["Soda Fizz", "Car Deal", "Phone X", "Bank Smart", "Pizza Now", "Travel Far"][a],
                    genres: ["advertising"], durationSeconds: [15, 30, 20, 15, 30, 45][a], contentType: "ad"
                )
            )
        }
        return ContentCatalogue(items: items)
    }()
}

/// Realistic synthetic playback sessions: each session plays one item, pauses and resumes, and ends
/// with `stop` (about one in eight abandons without a stop). Events of `concurrentSessions`
/// sessions interleave; positions advance with simulated time while playing. Deterministic for a
/// seed. Events follow schema 1.0 with a `session_id`.
public struct SyntheticSessions: Sendable {
    private struct Session: Sendable {
        var sessionID: [UInt8]
        var userID: [UInt8]
        var deviceID: [UInt8]
        var ip: [UInt8]
        var source: Int
        var language: Int
        var item: Int
        var position: Double
        var lastMicros: Int64
        var playing: Bool
        var started: Bool
        var abandonAfter: Int
        var events: Int
    }

    /// Pre-rendered JSON fragments of each catalogue item.
    private struct ItemJSON: Sendable {
        var fragment: [UInt8]  // ,"content_id":…,"content_type":…,"title":…,"genre":[…],"duration_seconds":N
        var duration: Double
    }

    private var rng: UInt64
    /// The stream of the events' ids, of its own: drawn from exactly twice per event, so that the
    /// n-th event of a seed has the same event_id whatever the clock did. Drawn from `rng`, they
    /// parted between `loadgen --output` and a sending run of the same seed once a title ended at
    /// another time (a session's position follows the wall clock when sending), and every later
    /// id differed (an outside review).
    private var idRNG: UInt64
    private var now: Int64
    private var sessions: [Session] = []
    private let items: [ItemJSON]
    private let stepMicros: Int64
    private var sessionCounter: UInt64 = 0
    /// The last event's time, when held to ``wallClock``: events never go back in time.
    private var lastWall: Int64 = 0

    static let sources = ["web_app", "ios_app", "android_app", "tv_app", "smart_tv", "roku", "chromecast"]
    static let languages = ["en", "en", "en", "es", "fr", "de", "pt", "ja", "hi"]

    /// When set, the simulated clock never runs ahead of it (microseconds since the Unix epoch,
    /// read at each event). Each session emits an event about every 40 s of simulated time, so a
    /// load generator sending faster than that pace ran the clock ahead of the wall clock (at
    /// 5,000 events/s over 10,000 sessions, 5 minutes ahead within 16 s), and its events then told
    /// of the future: the live metrics leave such events out (docs/metrics.md, "Events outside the
    /// live window"), so the live page went quiet under load (a code review, 2026-12-06). Held to
    /// the wall clock, a session's events come closer together in simulated time instead. Nor does
    /// it fall behind: sending slower than that pace (100 events/s over 10,000 sessions) ran the
    /// clock at 0.4 × the wall clock, so after 8 minutes most events were more than 5 minutes old
    /// when they arrived, and LiveEventsOutsideWindow fired with no clock wrong (a review of the
    /// alerts). So when set, each event is of the wall clock's time, never before the time the last
    /// event read (a session's next event may take the millisecond after its last one's, which
    /// can put it up to a millisecond past the others).
    /// Unset (the default), the events depend only on the seed (`loadgen --output`).
    public var wallClock: (@Sendable () -> Int64)?

    public init(seed: UInt64, concurrentSessions: Int, startTime: Int64) {
        rng = seed ^ 0x6A09_E667_F3BC_C908
        idRNG = seed ^ 0xBB67_AE85_84CA_A73B
        now = startTime
        // Each session emits about one event every 40 s of simulated time.
        stepMicros = max(1, 40_000_000 / Int64(max(1, concurrentSessions)))
        items = ContentCatalogue.standard.items.map { item in
            var f: [UInt8] = []
            f.append(contentsOf: #","content_id":"#.utf8)
            JSONWriter.appendString(item.contentID, to: &f)
            f.append(contentsOf: #","content_type":"#.utf8)
            JSONWriter.appendString(item.contentType, to: &f)
            f.append(contentsOf: #","title":"#.utf8)
            JSONWriter.appendString(item.title, to: &f)
            f.append(contentsOf: #","genre":["#.utf8)
            for (k, g) in item.genres.enumerated() {
                if k > 0 { f.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(g, to: &f)
            }
            f.append(contentsOf: #"],"duration_seconds":"#.utf8)
            JSONWriter.appendInt(Int64(item.durationSeconds), to: &f)
            return ItemJSON(fragment: f, duration: Double(item.durationSeconds))
        }
        let count = max(1, concurrentSessions)
        sessions.reserveCapacity(count)
        for _ in 0..<count { sessions.append(newSession()) }
    }

    @inline(__always)
    private mutating func next() -> UInt64 { Self.splitMix(&rng) }

    @inline(__always)
    private static func splitMix(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    private mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    private mutating func uuid(into out: inout [UInt8]) {
        let a = next(), b = next()
        Self.appendUUID(a, b, to: &out)
    }

    private static func appendUUID(_ a: UInt64, _ b: UInt64, to out: inout [UInt8]) {
        var bytes = [UInt8](repeating: 0, count: 16)
        for k in 0..<8 {
            bytes[k] = UInt8(truncatingIfNeeded: a >> (8 * k))
            bytes[8 + k] = UInt8(truncatingIfNeeded: b >> (8 * k))
        }
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        for (k, byte) in bytes.enumerated() {
            if k == 4 || k == 6 || k == 8 || k == 10 { out.append(UInt8(ascii: "-")) }
            out.append(JSONWriter.hex[Int(byte >> 4)])
            out.append(JSONWriter.hex[Int(byte & 15)])
        }
    }

    private mutating func newSession() -> Session {
        sessionCounter += 1
        var sid: [UInt8] = []
        uuid(into: &sid)
        let user = below(200_000)
        var userID = Array("user_".utf8)
        JSONWriter.appendPadded(user, width: 6, to: &userID)
        var deviceID = Array("device_".utf8)
        JSONWriter.appendPadded(user, width: 6, to: &deviceID)
        deviceID.append(UInt8(ascii: "_"))
        JSONWriter.appendInt(Int64(below(3)), to: &deviceID)
        var ip: [UInt8] = []
        if below(10) == 0 {
            ip.append(contentsOf: "2001:db8:".utf8)
            for k in 0..<3 {
                let v = below(0x10000)
                for shift in stride(from: 12, through: 0, by: -4) { ip.append(JSONWriter.hex[v >> shift & 15]) }
                ip.append(contentsOf: (k < 2 ? ":" : "::1").utf8)
            }
        } else {
            for k in 0..<4 {
                JSONWriter.appendInt(Int64(k == 0 ? 1 + below(223) : below(256)), to: &ip)
                if k < 3 { ip.append(UInt8(ascii: ".")) }
            }
        }
        let item = below(items.count)
        // Episodes and movies sometimes resume part-way in.
        let resume = items[item].duration > 300 && below(4) == 0 ? Double(below(Int(items[item].duration / 2))) : 0
        return Session(
            sessionID: sid, userID: userID, deviceID: deviceID, ip: ip, source: below(Self.sources.count),
            language: below(Self.languages.count), item: item, position: resume, lastMicros: now, playing: false,
            started: false, abandonAfter: below(8) == 0 ? 1 + below(6) : Int.max, events: 0
        )
    }

    /// Appends one event as a JSON object (no newline). Its first member is `"event_id":"<uuid>"`.
    public mutating func appendNextEvent(to out: inout [UInt8]) {
        // The step is drawn either way, so that the sessions' choices stay the seed's.
        now += 1 + Int64(next() % UInt64(2 * stepMicros))
        if let wallClock { now = max(lastWall, wallClock()); lastWall = now }
        var slot = below(sessions.count)
        // Abandoned sessions vanish silently and are replaced.
        if sessions[slot].events >= sessions[slot].abandonAfter {
            sessions[slot] = newSession()
            slot = below(sessions.count)
            if sessions[slot].events >= sessions[slot].abandonAfter { sessions[slot] = newSession() }
        }
        var s = sessions[slot]
        // Timestamps are written in milliseconds: a session's next event gets a later millisecond
        // than its last, as a player's events do. (Two events of a session at the same millisecond
        // have no order a query over the lake can follow; docs/lake.md, "Rollups".)
        if s.started && now / 1000 <= s.lastMicros / 1000 { now = (s.lastMicros / 1000 + 1) * 1000 }
        let duration = items[s.item].duration
        if s.playing {
            s.position = min(duration, s.position + Double(now - s.lastMicros) / 1e6)
        }
        // Drawn whenever it may decide, before the position is looked at: the position depends on
        // the wall clock when sending, so that the draws do not depend on it here (an outside
        // review). A session not started has no events yet, so nothing is drawn for it.
        let stopsHere = s.events >= 3 && below(6) == 0
        let type: StaticString
        var isStop = false
        if !s.started {
            type = "play"
            s.started = true
            s.playing = true
        } else if s.position >= duration || stopsHere {
            type = "stop"
            isStop = true
            s.playing = false
        } else if s.playing {
            type = "pause"
            s.playing = false
        } else {
            type = "play"
            s.playing = true
        }
        s.lastMicros = now
        s.events += 1

        out.append(contentsOf: #"{"event_id":""#.utf8)
        let a = Self.splitMix(&idRNG), b = Self.splitMix(&idRNG)
        Self.appendUUID(a, b, to: &out)
        out.append(contentsOf: #"","event_type":""#.utf8)
        out.append(contentsOf: UnsafeRawBufferPointer(start: type.utf8Start, count: type.utf8CodeUnitCount))
        out.append(contentsOf: #"","timestamp":"#.utf8)
        appendMillisTimestamp(now, to: &out)
        out.append(contentsOf: #","user_id":""#.utf8)
        out.append(contentsOf: s.userID)
        out.append(contentsOf: #"","device_id":""#.utf8)
        out.append(contentsOf: s.deviceID)
        out.append(contentsOf: #"","session_id":""#.utf8)
        out.append(contentsOf: s.sessionID)
        out.append(contentsOf: #"","ip_address":""#.utf8)
        out.append(contentsOf: s.ip)
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: items[s.item].fragment)
        out.append(contentsOf: #","language":""#.utf8)
        out.append(contentsOf: Self.languages[s.language].utf8)
        out.append(contentsOf: #"","current_timestamp":"#.utf8)
        let millis = Int64(s.position * 1000)  // positions are ≥ 0: truncation is floor
        JSONWriter.appendInt(millis / 1000, to: &out)
        out.append(UInt8(ascii: "."))
        JSONWriter.appendPadded(Int(millis % 1000), width: 3, to: &out)
        out.append(contentsOf: #","event_source":""#.utf8)
        out.append(contentsOf: Self.sources[s.source].utf8)
        out.append(contentsOf: "\"}".utf8)

        if isStop {
            sessions[slot] = newSession()
        } else {
            sessions[slot] = s
        }
    }

    /// `"YYYY-MM-DDTHH:MM:SS.mmmZ"`.
    private func appendMillisTimestamp(_ micros: Int64, to out: inout [UInt8]) {
        let start = out.count
        JSONWriter.appendTimestamp(micros, to: &out)
        // appendTimestamp writes 6 fraction digits; keep 3.
        let z = out.count - 2  // index of Z
        out.removeSubrange((z - 3)..<z)
        _ = start
    }
}
