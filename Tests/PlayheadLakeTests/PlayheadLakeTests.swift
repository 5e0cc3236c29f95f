import Foundation
import Logging
import NIOPosix
import Synchronization
import Testing
import PlayheadEvents
import PlayheadTestSupport
@testable import PlayheadLake

@Suite("The lake's in-memory tables")
struct InMemoryTableTests {
    @Test("HashCounts agrees with a Dictionary under random increments and decrements, long probe runs included")
    func hashCountsMatchesDictionary() {
        var random = SeededRandom(state: 42)
        var table = HashCounts(initialSlots: 16)
        var reference: [UInt64: UInt32] = [:]
        // Keys with the same low bits (long probe runs, wrapping around the table) and the key 0.
        let keys: [UInt64] = (0..<3000).map { k in k % 3 == 0 ? UInt64(k) << 40 : random.next() } + [0]
        for step in 0..<200_000 {
            let key = keys[Int(random.next() % UInt64(keys.count))]
            if random.next() % 5 < 3 {
                let wasNew = table.increment(key)
                #expect(wasNew == (reference[key, default: 0] == 0), "step \(step)")
                reference[key, default: 0] += 1
            } else {
                table.decrement(key)
                if let count = reference[key] { reference[key] = count > 1 ? count - 1 : nil }
            }
            if step % 10_000 == 0 {
                for key in keys { #expect(table.count(of: key) == reference[key, default: 0], "step \(step)") }
            }
        }
        #expect(table.count == reference.count)
        for key in keys { #expect(table.count(of: key) == reference[key, default: 0]) }
    }

    @Test("HashTable keeps values in place, removes by setting nil, and filters")
    func hashTableUpdatesAndFilters() {
        var random = SeededRandom(state: 3)
        var table = HashTable<[Int]>(initialSlots: 16)
        var reference: [UInt64: [Int]] = [:]
        for step in 0..<20_000 {
            let key = (random.next() % 700) << 20  // shared low bits: long probe runs
            let roll = random.next() % 10
            let old = table.update(key) { value -> [Int]? in
                defer {
                    if roll < 7 { value = (value ?? []) + [step] } else { value = nil }
                }
                return value
            }
            #expect(old == reference[key], "step \(step)")
            reference[key] = roll < 7 ? (reference[key] ?? []) + [step] : nil
        }
        table.filter { $0.count % 2 == 0 }
        reference = reference.filter { $0.value.count % 2 == 0 }
        #expect(table.count == reference.count)
        for key in (0..<700).map({ UInt64($0) << 20 }) { #expect(table.value(key) == reference[key]) }
    }

    @Test("The dedup window drops an id seen in the previous N records, kept or dropped, and forgets it after")
    func dedupWindowMatchesDefinition() {
        var random = SeededRandom(state: 7)
        // Windows smaller than, equal to and larger than the distance at which evictions are
        // prefetched (ids leave in order, read ahead from the ring).
        for capacity in [3, DedupWindow.evictionPrefetchDistance, DedupWindow.evictionPrefetchDistance + 1, 500] {
            var window = DedupWindow(capacity: capacity)
            var history: [UInt64] = []
            let ids = UInt64(capacity * 4)
            for step in 0..<50_000 {
                let id = random.next() % ids
                let expected = !history.suffix(capacity).contains(id)
                #expect(window.observe(hash(id)) == expected, "capacity \(capacity), step \(step)")
                history.append(id)
            }
        }
        var off = DedupWindow(capacity: 0)
        #expect(off.observe(1) && off.observe(1))
    }

    private func hash(_ id: UInt64) -> UInt64 {
        withUnsafeBytes(of: id) { hash64($0) }
    }

    @Test("hash64 keeps ids apart that differ only in trailing NUL bytes or length: every string of up to 3 bytes over NUL, A, B, a, b; every id with up to 16 NULs appended")
    func hash64SeparatesLengthsAndNULs() {
        func hash(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { hash64($0) } }
        // A probe found "B" and "A\0" equal: the length and the zero-padded tail met in the same bits.
        #expect(hash(Array("B".utf8)) != hash(Array("A".utf8) + [0]))
        let alphabet: [UInt8] = [0, 0x41, 0x42, 0x61, 0x62]
        var strings: [[UInt8]] = [[]]
        var level: [[UInt8]] = [[]]
        for _ in 0..<3 {
            level = level.flatMap { prefix in alphabet.map { prefix + [$0] } }
            strings += level
        }
        for prefix in ["e-1", "session-0123456789", "0123456", "01234567"] {
            for zeros in 1...16 { strings.append(Array(prefix.utf8) + [UInt8](repeating: 0, count: zeros)) }
            strings.append(Array(prefix.utf8))
        }
        var seen: [UInt64: [UInt8]] = [:]
        for string in strings {
            let h = hash(string)
            #expect(seen[h] == nil, "\(string) and \(seen[h] ?? []) share a hash")
            seen[h] = string
        }
    }
}

@Suite("Rollups")
struct RollupTests {
    /// The definitions of docs/lake.md, computed the plain way, as the SQL over `events/` does: each
    /// session's events ordered by `timestamp` (then arrival), watch time from each event's
    /// predecessor in that order, counted in the hour of the later event; sets for distinct counts.
    struct Reference {
        struct Key: Hashable { var hour: Int64; var content: String }
        struct Cell { var events = 0; var plays = 0; var watch = 0.0; var sessions = Set<String>(); var viewers = Set<String>(); var completed = Set<String>() }
        var events: [EventRecordFields] = []

        mutating func add(_ e: EventRecordFields) { events.append(e) }

        static func hour(_ e: EventRecordFields) -> Int64 { e.receivedAtMicros - e.receivedAtMicros % RollupAggregator.hourMicros }

        var cells: [Key: Cell] {
            var watched = [Double](repeating: 0, count: events.count)
            let sessions = Dictionary(grouping: events.indices) { events[$0].sessionID ?? events[$0].deviceID }
            for arrivals in sessions.values {
                let ordered = arrivals.sorted { (events[$0].timestampMicros, $0) < (events[$1].timestampMicros, $1) }
                for (previous, next) in zip(ordered, ordered.dropFirst()) {
                    let p = events[previous], e = events[next]
                    guard p.contentID == e.contentID, p.eventType == "play" || p.eventType == "heartbeat" else { continue }
                    watched[next] = min(max(e.currentTimestamp - p.currentTimestamp, 0),
                                        Double(e.timestampMicros - p.timestampMicros) / 1e6, RollupAggregator.maxWatchGapSeconds)
                }
            }
            var cells: [Key: Cell] = [:]
            for (index, e) in events.enumerated() {
                let key = Key(hour: Self.hour(e), content: e.contentID)
                let session = e.sessionID ?? e.deviceID
                cells[key, default: Cell()].events += 1
                if e.eventType == "play" { cells[key]!.plays += 1 }
                cells[key]!.watch += watched[index]
                cells[key]!.sessions.insert(session)
                cells[key]!.viewers.insert(e.userID)
                if Completion.reached(position: e.currentTimestamp, duration: e.durationSeconds) {
                    cells[key]!.completed.insert(session)
                }
            }
            return cells
        }
    }

    /// Feeds `events` in order, taking the rows as the writer does at every flush (the latest rows
    /// of an hour replace its file).
    static func rollups(_ events: [EventRecordFields], aggregator: RollupAggregator, flushEvery: Int = 4_999) throws -> [Int64: [RollupRow]] {
        var rows: [Int64: [RollupRow]] = [:]
        for (index, event) in events.enumerated() {
            var bytes: [UInt8] = []
            EventRecordEncoder.encode(event, into: &bytes)
            try bytes.withUnsafeBytes { aggregator.add(try EventRecordView($0), offset: Int64(index)) }
            if index % flushEvery == 0 { for (hour, hourRows) in aggregator.takeChanges() { rows[hour] = hourRows } }
        }
        for (hour, hourRows) in aggregator.takeChanges() { rows[hour] = hourRows }
        return rows
    }

    static func event(
        _ id: String, _ type: String, session: String, content: String = "c", timestamp: Int64, received: Int64,
        position: Double, user: String? = nil, useDevice: Bool = false
    ) -> EventRecordFields {
        EventRecordFields(
            eventID: id, eventType: type, timestampMicros: timestamp, receivedAtMicros: received,
            userID: user ?? "u-\(session)", deviceID: "d-\(session)", sessionID: useDevice ? nil : session,
            ipAddress: "10.0.0.1", contentID: content, contentType: "movie", title: "T", genres: ["drama"],
            durationSeconds: 600, language: "en", currentTimestamp: position, eventSource: "web"
        )
    }

    static let base: Int64 = 1_764_000_000_000_000 - 1_764_000_000_000_000 % RollupAggregator.hourMicros

    @Test("The aggregator equals the plain definitions: content switches, events out of order, shared sessions, several hours")
    func aggregatorMatchesDefinitions() throws {
        var random = SeededRandom(state: 99)
        let types = ["play", "pause", "heartbeat", "seek", "stop", "play", "heartbeat"]
        // Each session's events in event time (strictly increasing, no ties), with content switches.
        var clock = Self.base
        var made: [(session: String, event: EventRecordFields)] = []
        for index in 0..<20_000 {
            clock += 1 + Int64(random.next() % 2_000_000)
            let session = "s\(random.next() % 300)"
            let content = "c\(random.next() % 4 == 0 ? random.next() % 12 : UInt64(session.hashValue & 7))"
            let user = random.next() % 10 == 0 ? "u\(random.next() % 120)" : nil
            made.append((session, Self.event(
                "e\(index)", types[Int(random.next() % UInt64(types.count))], session: session, content: content,
                timestamp: clock, received: 0, position: Double(random.next() % 640), user: user,
                useDevice: session.hashValue % 10 == 0
            )))
        }
        // They arrive in blocks of `historyLength` events of a session, each block in a random order:
        // an event arrives after at most `historyLength - 1` later ones of its session. Arrival sets
        // `received_at`.
        var arrivals: [EventRecordFields] = []
        var blocks: [String: [EventRecordFields]] = [:]
        var received = Self.base
        func deliver(_ block: [EventRecordFields]) {
            for var event in block.shuffled(using: &random) {
                received += 1 + Int64(random.next() % 2_000_000)
                event.receivedAtMicros = received
                arrivals.append(event)
            }
        }
        for (session, event) in made {
            blocks[session, default: []].append(event)
            if blocks[session]!.count == RollupAggregator.historyLength {
                deliver(blocks.removeValue(forKey: session)!)
            }
        }
        for session in blocks.keys.sorted() { deliver(blocks[session]!) }
        let outOfOrder = zip(arrivals, arrivals.dropFirst()).count(where: { $0.timestampMicros > $1.timestampMicros })
        #expect(outOfOrder > 500)

        var reference = Reference()
        arrivals.forEach { reference.add($0) }
        // Nothing forgotten (hours close late, silent sessions stay): the definitions hold exactly.
        let rows = try Self.rollups(
            arrivals, aggregator: RollupAggregator(graceMicros: Int64(3_600) * 1_000_000 * 10, forgetSilentAfterMicros: .max / 2))
        let cells = reference.cells
        #expect(rows.values.reduce(0) { $0 + $1.count } == cells.count)
        #expect(rows.count > 3, "the events should span several hours")
        for (key, cell) in cells {
            let row = rows[key.hour]?.first { $0.contentID == key.content }
            #expect(row?.events == Int64(cell.events), "\(key)")
            #expect(row?.plays == Int64(cell.plays), "\(key)")
            #expect(row?.sessions == Int64(cell.sessions.count), "\(key)")
            #expect(row?.uniqueViewers == Int64(cell.viewers.count), "\(key)")
            #expect(row?.completions == Int64(cell.completed.count), "\(key)")
            #expect(abs((row?.watchTimeSeconds ?? -1) - cell.watch) < 1e-6, "\(key)")
        }
    }

    @Test("A rebuild after a restart gives the open hour the rows of a run that never stopped: the sessions' events before the hour are primed from primeFrom (without them each session lost its first interval of the hour, 4 % of the watch time)")
    func rebuildPrimesSessions() throws {
        let second: Int64 = 1_000_000
        var random = SeededRandom(state: 7)
        // 200 sessions, each a heartbeat every 15–25 s, from 40 minutes before the hour to 20 after;
        // some sessions stop for a while (2–12 minutes) and come back, and one event in eight
        // arrives just after the session's next one (out of order).
        var events: [EventRecordFields] = []
        var next = (0..<200).map { _ in Self.base - 40 * 60 * second + Int64(random.next() % 20) * second }
        var position = [Double](repeating: 0, count: 200)
        var held: [Int: EventRecordFields] = [:]
        var id = 0
        while true {
            guard let session = next.indices.min(by: { next[$0] < next[$1] }), next[session] < Self.base + 20 * 60 * second else { break }
            let time = next[session]
            position[session] += 20
            let event = Self.event("e\(id)", "heartbeat", session: "s\(session)", content: "c\(session % 7)", timestamp: time, received: time, position: position[session])
            if var late = held.removeValue(forKey: session) {
                events.append(event)
                late.receivedAtMicros = time + 1
                events.append(late)
            } else if random.next() % 8 == 0 {
                held[session] = event
            } else {
                events.append(event)
            }
            id += 1
            let pause = random.next() % 40 == 0 ? Int64(120 + random.next() % 600) : Int64(15 + random.next() % 10)
            next[session] = time + pause * second
        }
        for (_, var late) in held.sorted(by: { $0.key < $1.key }) {
            late.receivedAtMicros = max(late.receivedAtMicros, events.last!.receivedAtMicros)
            events.append(late)
        }
        #expect(zip(events, events.dropFirst()).count(where: { $0.timestampMicros > $1.timestampMicros && $0.sessionID == $1.sessionID }) > 100)
        let uninterrupted = try Self.rollups(events, aggregator: RollupAggregator())
        let expected = try #require(uninterrupted[Self.base])

        // The run that stops: its last commit 10 minutes into the hour.
        let stop = try #require(events.firstIndex { $0.receivedAtMicros >= Self.base + 10 * 60 * second })
        let stopped = RollupAggregator()
        _ = try Self.rollups(Array(events[..<stop]), aggregator: stopped)
        let rebuildFrom = try #require(stopped.rebuildFrom), primeFrom = try #require(stopped.primeFrom)
        let firstOfHour = try #require(events.firstIndex { $0.receivedAtMicros >= Self.base })
        #expect(rebuildFrom == Int64(firstOfHour))
        // The first event of the minute 11 minutes before the hour.
        let primeMinute = try #require(events.firstIndex { $0.receivedAtMicros >= Self.base - 11 * 60 * second })
        #expect(primeFrom == Int64(primeMinute), "\(primeFrom) \(primeMinute)")
        // The log's retention is held there while the open hour is recent by the wall clock; not
        // for an hour more than 2 hours old (an idle pipeline) or in the future (a clock that ran
        // ahead, then was put back), which pinned the log past its limits (a regression review).
        let lakeNext = Int64(stop)
        #expect(stopped.oldestOpenHour == Self.base)
        for (minutes, held) in [(10, primeFrom), (-4, primeFrom), (119, primeFrom), (121, lakeNext), (-6, lakeNext), (-24 * 60, lakeNext)] {
            let now = Self.base + Int64(minutes) * 60 * second
            #expect(DatasetWriter.retentionHold(rollups: stopped, next: lakeNext, now: now) == held, "\(minutes) minutes after the hour's start")
        }
        #expect(DatasetWriter.retentionHold(rollups: RollupAggregator(), next: lakeNext, now: Self.base) == lakeNext, "no open hour")

        func rebuilt(priming: Bool) throws -> [RollupRow] {
            let aggregator = RollupAggregator()
            aggregator.replaying = true
            var rows: [Int64: [RollupRow]] = [:]
            for (offset, event) in events.enumerated() where offset >= (priming ? Int(primeFrom) : Int(rebuildFrom)) {
                var bytes: [UInt8] = []
                EventRecordEncoder.encode(event, into: &bytes)
                try bytes.withUnsafeBytes { raw in
                    let view = try EventRecordView(raw)
                    if offset < Int(rebuildFrom) { aggregator.prime(view, offset: Int64(offset)) } else { aggregator.add(view, offset: Int64(offset)) }
                }
                if offset == stop { aggregator.replaying = false }
                if offset % 997 == 0 { for (hour, hourRows) in aggregator.takeChanges() { rows[hour] = hourRows } }
            }
            for (hour, hourRows) in aggregator.takeChanges() { rows[hour] = hourRows }
            return rows[Self.base] ?? []
        }
        let watch = expected.reduce(0) { $0 + $1.watchTimeSeconds }
        #expect(try rebuilt(priming: true) == expected)
        // Without the priming, the hour's first interval of every session is lost: the test can fail.
        let unprimed = try rebuilt(priming: false).reduce(0) { $0 + $1.watchTimeSeconds }
        #expect(unprimed < watch - 100 * 15, "\(unprimed) of \(watch)")
    }

    @Test("Sessions silent for 10 minutes are forgotten once a minute: the table shrinks, a returning session counts no watch time for its gap, and the distinct counts stay exact")
    func silentSessionsForgotten() throws {
        let second: Int64 = 1_000_000
        let aggregator = RollupAggregator()
        var events: [EventRecordFields] = []
        // 1,000 sessions play once at the hour's start; session "back" plays at +1 s, is silent for
        // 11 minutes while another session sends a heartbeat every 30 s, then sends one more play.
        for index in 0..<1_000 {
            events.append(Self.event("a\(index)", "play", session: "s\(index)", timestamp: Self.base, received: Self.base, position: 0))
        }
        events.append(Self.event("b1", "play", session: "back", timestamp: Self.base + second, received: Self.base + second, position: 10))
        for step in 1...22 {
            let time = Self.base + Int64(step) * 30 * second
            events.append(Self.event("k\(step)", "heartbeat", session: "keep", timestamp: time, received: time, position: Double(step * 30)))
        }
        let back = Self.base + 11 * 60 * second + 2 * second
        events.append(Self.event("b2", "play", session: "back", timestamp: back, received: back, position: 50))
        let rows = try Self.rollups(events, aggregator: aggregator, flushEvery: 1_000_000)
        // Left: "keep" and "back" (both heard from in the last 10 minutes).
        #expect(aggregator.rememberedSessions == 2, "\(aggregator.rememberedSessions)")
        let row = try #require(rows[Self.base]?.first)
        #expect(row.sessions == 1_002 && row.uniqueViewers == 1_002 && row.events == 1_024, "\(row)")
        // The keep session's 21 intervals of 30 s count; "back"'s gap (40 s of position, capped at 60 s) does not.
        #expect(abs(row.watchTimeSeconds - 21 * 30) < 1e-9, "\(row.watchTimeSeconds)")
    }

    @Test("Past maxRememberedSessions, the half of the sessions silent longest is forgotten: the table stays bounded, a recent session keeps counting its watch time, a forgotten one counts none for its gap, the distinct counts stay exact")
    func rememberedSessionsBounded() throws {
        let second: Int64 = 1_000_000
        let aggregator = RollupAggregator(maxRememberedSessions: 100)
        var events: [EventRecordFields] = []
        // "old" plays first; then 1,000 one-event sessions, one per 10 ms, while "recent" sends a
        // heartbeat every 10 new sessions; then both "old" and "recent" send one more heartbeat.
        events.append(Self.event("o1", "play", session: "old", timestamp: Self.base, received: Self.base, position: 0))
        var time = Self.base
        for index in 0..<1_000 {
            time += 10_000
            events.append(Self.event("n\(index)", "play", session: "s\(index)", timestamp: time, received: time, position: 0))
            if index % 10 == 0 {
                events.append(Self.event("r\(index)", "heartbeat", session: "recent", timestamp: time, received: time, position: Double(time - Self.base) / 1e6))
            }
        }
        time += second
        events.append(Self.event("o2", "heartbeat", session: "old", timestamp: time, received: time, position: 11))
        events.append(Self.event("r-last", "heartbeat", session: "recent", timestamp: time, received: time, position: Double(time - Self.base) / 1e6))
        var most = 0
        var rows: [Int64: [RollupRow]] = [:]
        for event in events {
            rows.merge(try Self.rollups([event], aggregator: aggregator, flushEvery: 1)) { $1 }
            most = max(most, aggregator.rememberedSessions)
        }
        #expect(most <= 100, "\(most)")
        #expect(aggregator.forgottenSessions >= 900, "\(aggregator.forgottenSessions)")
        let row = try #require(rows[Self.base]?.first)
        // Every session counted once, though most were forgotten and "old" came back after it was.
        #expect(row.sessions == 1_002 && row.uniqueViewers == 1_002 && row.events == 1_000 + 100 + 3, "\(row)")
        // "recent" was never forgotten: its watch time from its first heartbeat to its last (about
        // 10.99 s). "old" was: its 11 s of position advance count nothing.
        let recentStart = Double(10_000) / 1e6
        let recentEnd = Double(time - Self.base) / 1e6
        #expect(abs(row.watchTimeSeconds - (recentEnd - recentStart)) < 1e-6, "\(row.watchTimeSeconds)")
    }

    @Test("Past maxCells content-hours, events of a content new to its hour are not counted in the rollups (and are counted as such); contents already there still are; a closed hour gives its room back")
    func contentHoursBounded() throws {
        let second: Int64 = 1_000_000
        let aggregator = RollupAggregator(graceMicros: 60 * second, maxCells: 10)
        var events: [EventRecordFields] = []
        for index in 0..<100 {
            let time = Self.base + Int64(index) * second
            events.append(Self.event("e\(index)", "play", session: "s\(index)", content: "c\(index)", timestamp: time, received: time, position: 0))
        }
        // Content c3 again: it has its row, so it counts.
        let again = Self.base + 200 * second
        events.append(Self.event("again", "heartbeat", session: "s3", content: "c3", timestamp: again, received: again, position: 10))
        var rows = try Self.rollups(events, aggregator: aggregator, flushEvery: 1)
        var hour = try #require(rows[Self.base])
        #expect(hour.count == 10, "\(hour.count)")
        #expect(aggregator.uncountedEvents == 90)
        #expect(hour.first { $0.contentID == "c3" }?.events == 2)
        // The next hour, once this one closes (its end + 60 s): new contents have room again.
        let next = Self.base + RollupAggregator.hourMicros + 2 * 60 * second
        rows = try Self.rollups(
            (0..<5).map { Self.event("n\($0)", "play", session: "t\($0)", content: "d\($0)", timestamp: next, received: next, position: 0) },
            aggregator: aggregator, flushEvery: 1)
        hour = try #require(rows[Self.base + RollupAggregator.hourMicros])
        #expect(hour.count == 5 && aggregator.uncountedEvents == 90, "\(hour.count) \(aggregator.uncountedEvents)")
    }

    @Test("Events received in an hour that is already final (the server's clock stepped back) are counted as left out of the rollups, and the final hour is not written again")
    func eventsOfAFinalHourAreCountedAsLeftOut() throws {
        let second: Int64 = 1_000_000
        let captured = CapturedLogs()
        let aggregator = RollupAggregator(graceMicros: 60 * second, logger: Logger(label: "rollups-test") { _ in CapturingLogHandler(captured: captured) })
        let nextHour = Self.base + RollupAggregator.hourMicros
        // The next hour, two minutes on: the first hour is final.
        var rows = try Self.rollups([
            Self.event("a", "play", session: "s", timestamp: Self.base, received: Self.base, position: 0),
            Self.event("b", "play", session: "t", timestamp: nextHour + 120 * second, received: nextHour + 120 * second, position: 0),
        ], aggregator: aggregator, flushEvery: 1)
        #expect(aggregator.uncountedEvents == 0)
        // The clock steps back into the first hour.
        let back = Self.base + 30 * 60 * second
        // One batch of 7: added, then its rollups taken once, as the lake writer does.
        for index in 0..<7 {
            var bytes: [UInt8] = []
            EventRecordEncoder.encode(Self.event("late\(index)", "play", session: "u\(index)", timestamp: back, received: back, position: 0), into: &bytes)
            try bytes.withUnsafeBytes { aggregator.add(try EventRecordView($0), offset: Int64(10 + index)) }
        }
        rows = Dictionary(uniqueKeysWithValues: aggregator.takeChanges().map { ($0.hourStartMicros, $0.rows) })
        #expect(aggregator.uncountedEvents == 7 && aggregator.lateRecords == 7)
        #expect(rows[Self.base] == nil, "a final hour is not written again")
        // One warning for the batch, with all 7 (it said events=1, at the first, a review).
        let warnings = captured.all.filter { $0.contains("events of an hour whose rollups are final") }
        #expect(warnings.count == 1 && warnings[0].contains("lake writer: 7 events of an hour") && warnings[0].contains("events=7"), "\(warnings)")
        // Within the minute: counted, said at the next warning.
        _ = try Self.rollups([Self.event("late-again", "play", session: "v", timestamp: back, received: back, position: 0)], aggregator: aggregator)
        #expect(aggregator.uncountedEvents == 8 && captured.count(containing: "events of an hour whose rollups are final") == 1)
    }

    @Test("DistinctCount: exact up to 65,536 values, then a HyperLogLog estimate within 2 % (standard error 0.81 %), the same whatever the order")
    func distinctCountEstimates() {
        var count = DistinctCount()
        for value in 0..<UInt64(DistinctCount.exactLimit) {
            count.insert(value &* 0x9E37_79B9_7F4A_7C15)
            count.insert(value &* 0x9E37_79B9_7F4A_7C15)
        }
        #expect(count.count == DistinctCount.exactLimit && !count.isEstimate)
        var random = SeededRandom(seed: 7)
        for target in [70_000, 250_000, 1_000_000] {
            var forward = DistinctCount()
            var values: [UInt64] = (0..<target).map { _ in random.next() }
            for value in values { forward.insert(value) }
            #expect(forward.isEstimate)
            let error = abs(Double(forward.count) - Double(target)) / Double(target)
            #expect(error < 0.02, "\(target): \(forward.count)")
            values.shuffle(using: &random)
            var shuffled = DistinctCount()
            for value in values + values.prefix(1_000) { shuffled.insert(value) }
            #expect(shuffled.count == forward.count, "\(target)")
        }
        // Sequential hashes (small integers, as a poor hash would give) are mixed before use.
        var sequential = DistinctCount()
        for value in 0..<UInt64(300_000) { sequential.insert(value) }
        #expect(abs(Double(sequential.count) - 300_000) / 300_000 < 0.02, "\(sequential.count)")
    }

    @Test("A stop that overtakes its play: the interval between them is counted, in the stop's hour, once the play arrives")
    func stopBeforePlay() throws {
        // (Received 5 minutes apart: a session silent for 10 is forgotten, `silentSessionsForgotten`.)
        let t = Self.base + 55 * 60_000_000
        let aggregator = RollupAggregator()
        var rows = try Self.rollups([Self.event("stop", "stop", session: "s", timestamp: t + 50_000_000, received: t, position: 150)], aggregator: aggregator)
        #expect(rows[Self.base]?.first?.watchTimeSeconds == 0)
        // The play arrives in the next hour; the watch time belongs to the stop's hour.
        let nextHour = Self.base + RollupAggregator.hourMicros + 1_000_000
        rows = try Self.rollups([Self.event("play", "play", session: "s", timestamp: t + 10_000_000, received: nextHour, position: 100)], aggregator: aggregator)
        #expect(rows[Self.base]?.first?.watchTimeSeconds == 40)
        #expect(rows[Self.base + RollupAggregator.hourMicros]?.first?.watchTimeSeconds == 0)
    }

    @Test("Where an overtaken event cannot be placed it counts no watch time and changes nothing: older than the remembered events, or its later neighbour's hour final")
    func unplaceableLateEvents() throws {
        let t = Self.base + 10 * 60_000_000
        let second: Int64 = 1_000_000
        // Play at 0 s and heartbeats every 10 s to 50 s: 50 s watched. Then a pause at 5 s arrives,
        // older than every remembered event (at most the last four): the SQL would count 5 + 0 + 40 = 45 s.
        var events = [Self.event("p", "play", session: "s", timestamp: t, received: t, position: 0)]
        for step in 1...5 {
            events.append(Self.event("h\(step)", "heartbeat", session: "s", timestamp: t + Int64(step) * 10 * second, received: t + Int64(step) * second, position: Double(step * 10)))
        }
        events.append(Self.event("late", "pause", session: "s", timestamp: t + 5 * second, received: t + 6 * second, position: 5))
        var rows = try Self.rollups(events, aggregator: RollupAggregator())
        #expect(rows[Self.base]?.first?.watchTimeSeconds == 50)
        #expect(rows[Self.base]?.first?.events == 7)

        // A play arrives after its stop, but the stop's hour is final by then: nothing changes there
        // and the play counts no watch time in its own hour. (The stop is recent enough for the
        // session to be remembered: silent sessions are forgotten 60 s + the grace before the limit.)
        let aggregator = RollupAggregator(graceMicros: 60 * second)
        let nextHour = Self.base + RollupAggregator.hourMicros
        let stop = Self.event("stop", "stop", session: "s", timestamp: t + 50 * second, received: nextHour - 10 * second, position: 150)
        let later = Self.event("other", "play", session: "o", timestamp: nextHour + 5 * 60 * second, received: nextHour + 5 * 60 * second, position: 0)
        let play = Self.event("play", "play", session: "s", timestamp: t + 10 * second, received: nextHour + 6 * 60 * second, position: 100)
        rows = try Self.rollups([stop, later], aggregator: aggregator)
        #expect(rows[Self.base]?.first?.watchTimeSeconds == 0)
        rows = try Self.rollups([play], aggregator: aggregator)
        #expect(rows[Self.base] == nil, "a final hour is not written again")
        #expect(rows[nextHour]?.first { $0.contentID == "c" }?.watchTimeSeconds == 0)
    }

    @Test("Ties in timestamp keep arrival order, and an event between two of a paused session adds nothing")
    func tiesAndPauses() throws {
        let t = Self.base + 10 * 60_000_000
        let second: Int64 = 1_000_000
        // play 0 s → pause 20 s (arrives first) → play 30 s (arrives last, pos 20) → stop 40 s.
        let events = [
            Self.event("a", "play", session: "s", timestamp: t, received: t, position: 0),
            Self.event("b", "pause", session: "s", timestamp: t + 20 * second, received: t + 1, position: 20),
            Self.event("d", "stop", session: "s", timestamp: t + 40 * second, received: t + 2, position: 30),
            Self.event("c", "play", session: "s", timestamp: t + 30 * second, received: t + 3, position: 20),
            // Same timestamp as the stop, after it: the stop is its predecessor (not playing).
            Self.event("e", "heartbeat", session: "s", timestamp: t + 40 * second, received: t + 4, position: 35),
        ]
        var reference = Reference()
        events.forEach { reference.add($0) }
        let rows = try Self.rollups(events, aggregator: RollupAggregator())
        #expect(rows[Self.base]?.first?.watchTimeSeconds == 30)
        #expect(reference.cells.first?.value.watch == 30)
    }
}

@Suite("The folder lake")
struct FolderLakeTests {
    @Test("a write removes the temporary files a crash left (in _playhead/tmp, or beside the files as releases before 2026-12-05 wrote them), and leaves recent ones (another writer's) alone")
    func staleTemporariesGo() throws {
        let directory = try TemporaryDirectory(prefix: "lake")
        let root = directory.url.path
        try FileLakeStore.writeDurably(root: root, path: "events/date=2026-12-03/hour=10/a.parquet", bytes: [1, 2, 3])
        let folder = "\(root)/events/date=2026-12-03/hour=10"
        let temporaries = "\(root)/_playhead/tmp"
        let stale = ["\(folder)/.tmp-STALE", "\(temporaries)/.tmp-STALE"], fresh = ["\(folder)/.tmp-FRESH", "\(temporaries)/.tmp-FRESH"]
        for path in stale + fresh { #expect(FileManager.default.createFile(atPath: path, contents: Data([0]))) }
        // An hour old, as after a kill -9 during a flush.
        for path in stale {
            var times = [timeval(tv_sec: time(nil) - 3600, tv_usec: 0), timeval(tv_sec: time(nil) - 3600, tv_usec: 0)]
            #expect(utimes(path, &times) == 0)
        }
        try FileLakeStore.writeDurably(root: root, path: "events/date=2026-12-03/hour=10/b.parquet", bytes: [4])
        for path in stale { #expect(!FileManager.default.fileExists(atPath: path), "\(path)") }
        for path in fresh { #expect(FileManager.default.fileExists(atPath: path), "\(path)") }
        #expect(FileManager.default.fileExists(atPath: "\(folder)/a.parquet") && FileManager.default.fileExists(atPath: "\(folder)/b.parquet"))
    }

    @Test("a dataset folder on another file system than _playhead (a mount point in the lake) is written through a temporary beside its files")
    func datasetOnAnotherFileSystem() async throws {
        let directory = try TemporaryDirectory(prefix: "lake")
        guard let mounted = try await mountTmpfs(in: directory, options: "size=4m", for: "datasetOnAnotherFileSystem") else { return }
        defer { try? runUnmount(mounted) }
        // The lake is `directory`, and its events/ the tmpfs at <directory>/mnt, linked as events.
        let root = directory.url.path
        #expect(symlink(mounted, "\(root)/events") == 0)
        try FileLakeStore.writeDurably(root: root, path: "events/date=2026-12-03/hour=12/p0-0-1.parquet", bytes: [9, 9])
        #expect(FileManager.default.contents(atPath: "\(mounted)/date=2026-12-03/hour=12/p0-0-1.parquet") == Data([9, 9]))
        let left = try FileManager.default.contentsOfDirectory(atPath: "\(mounted)/date=2026-12-03/hour=12")
        #expect(left == ["p0-0-1.parquet"], "\(left)")
    }

    @Test("a folder of the lake never holds a file being written: a reader listing it sees whole Parquet files only (polars refused a folder with a temporary file in it)")
    func noTemporaryInDatasetFolders() async throws {
        let directory = try TemporaryDirectory(prefix: "lake")
        let root = directory.url.path
        let folder = "\(root)/events/date=2026-12-03/hour=11"
        try FileLakeStore.makeFolders(folder, root: root)
        let writing = Task.detached {
            let bytes = [UInt8](repeating: 7, count: 512 << 10)
            for index in 0..<100 {
                try FileLakeStore.writeDurably(root: root, path: "events/date=2026-12-03/hour=11/p0-\(index).parquet", bytes: bytes)
            }
        }
        var listings = 0
        var others: Set<String> = []
        while !writing.isCancelled {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            listings += 1
            others.formUnion(names.filter { !$0.hasSuffix(".parquet") })
            if names.count == 100 { break }
        }
        try await writing.value
        #expect(others.isEmpty, "\(others) in \(listings) listings")
        #expect(listings > 100, "too few listings to tell: \(listings)")
    }

    @Test("a read that fails says the system's reason, not Foundation's error domain and code")
    func readErrorsSayWhy() async throws {
        let directory = try TemporaryDirectory(prefix: "lake")
        let root = directory.url.path
        try FileManager.default.createDirectory(atPath: "\(root)/_playhead/state/events/p0.json", withIntermediateDirectories: true)
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        let store = try FileLakeStore(root: root, threadPool: threadPool)
        do {
            _ = try await store.get("_playhead/state/events/p0.json")
            Issue.record("a folder read as a file")
        } catch {
            #expect("\(error)".contains("cannot read \(root)/_playhead/state/events/p0.json: Is a directory") && !"\(error)".contains("Domain"), "\(error)")
        }
        try await threadPool.shutdownGracefully()
    }
}

@Suite("The lake's documentation")
struct LakeDocumentationTests {
    @Test("docs/lake.md's table of the events/ columns names every column of the files, in order, and says which are optional")
    func eventsTableIsDocumented() throws {
        let text = try String(contentsOf: TestEnvironment.repoRoot.appendingPathComponent("docs/lake.md"), encoding: .utf8)
        let section = try #require(text.components(separatedBy: "## The `events/` table").dropFirst().first?
            .components(separatedBy: "\n## ").first)
        var documented: [(name: String, optional: Bool)] = []
        for line in section.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let optional = cells[2].contains("optional")
            for name in cells[1].split(separator: ",") {
                documented.append((name.trimmingCharacters(in: CharacterSet(charactersIn: " `")), optional))
            }
        }
        let columns = EventsTable.schema.columns
        #expect(documented.map(\.name) == columns.map(\.name))
        #expect(documented.map(\.optional) == columns.map(\.optional), "\(documented.filter(\.optional).map(\.name))")
    }
}

@Suite("playhead import's format check")
struct ImportFormatCheckTests {
    static func bytes(_ text: String, _ encoding: String.Encoding) -> [UInt8] {
        Array(text.data(using: encoding)!)
    }

    @Test("UTF-16 and UTF-32 are named as iconv names them, with or without a byte order mark; UTF-8 is not wide")
    func wideEncodings() {
        let line = #"{"event_id":"e1"}"#
        #expect(ImportFile.wideEncoding(Self.bytes(line, .utf16LittleEndian)) == "UTF-16LE")
        #expect(ImportFile.wideEncoding(Self.bytes(line, .utf16BigEndian)) == "UTF-16BE")
        #expect(ImportFile.wideEncoding(Self.bytes(line, .utf32LittleEndian)) == "UTF-32LE")
        #expect(ImportFile.wideEncoding(Self.bytes(line, .utf32BigEndian)) == "UTF-32BE")
        #expect(ImportFile.wideEncoding([0xFF, 0xFE] + Self.bytes(line, .utf16LittleEndian)) == "UTF-16LE")
        #expect(ImportFile.wideEncoding([0xFE, 0xFF] + Self.bytes(line, .utf16BigEndian)) == "UTF-16BE")
        #expect(ImportFile.wideEncoding([0xFF, 0xFE, 0, 0] + Self.bytes(line, .utf32LittleEndian)) == "UTF-32LE")
        #expect(ImportFile.wideEncoding([0, 0, 0xFE, 0xFF] + Self.bytes(line, .utf32BigEndian)) == "UTF-32BE")
        #expect(ImportFile.wideEncoding(Array(line.utf8)) == nil)
        #expect(ImportFile.wideEncoding([0xEF, 0xBB, 0xBF] + Array(line.utf8)) == nil)
    }

    @Test("the refusal names the encoding for iconv, and says to gunzip a gzip file first")
    func wideRefusalMessage() {
        #expect(throws: ImportInputError.self) { try ImportFile.checkIsNDJSON(Self.bytes("{}", .utf32LittleEndian)) }
        do {
            try ImportFile.checkIsNDJSON(Self.bytes(#"{"a":1}"#, .utf32BigEndian), gzip: true)
            Issue.record("not refused")
        } catch {
            let message = "\(error)"
            #expect(message.contains("iconv -f UTF-32BE -t UTF-8") && message.contains("gunzip -c FILE"), "\(message)")
        }
    }

    @Test("a regular file empty when opened holds nothing, though written to before it is read (it was read to its end, under the empty file's tag), and it is said to have grown")
    func emptyWhenOpened() throws {
        let directory = try TemporaryDirectory(prefix: "import-empty")
        defer { withExtendedLifetime(directory) {} }
        let path = directory.appending("export.ndjson").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        let file = try ImportFile(path: path)
        defer { file.close() }
        try Data(#"{"event_id":"late"}\#n"#.utf8).write(to: URL(fileURLWithPath: path))
        let read = try file.read(after: [], maxBytes: 1 << 20)
        #expect(read.bytes.isEmpty && read.added == 0 && read.end, "\(read)")
        #expect(file.grownSize() == 20)
    }

    @Test("a file that starts with zero bytes is said to, with how to take them out (it was called UTF-16BE, and the iconv advised garbled it)")
    func zeroBytesFirst() {
        for head in [[UInt8](repeating: 0, count: 64), [0, 0, 0, 0, 0x0A] + Array(#"{"a":1}"#.utf8)] {
            do {
                try ImportFile.checkIsNDJSON(head)
                Issue.record("not refused")
            } catch {
                let message = "\(error)"
                #expect(message.hasPrefix("it starts with zero bytes (") && message.contains("tr -d '\\000'") && !message.contains("UTF-16"), "\(message)")
            }
        }
        // UTF-32BE text, which starts with three zero bytes, is still named.
        #expect(ImportFile.wideEncoding(Self.bytes(#"{"a":1}"#, .utf32BigEndian)) == "UTF-32BE")
    }

    @Test("JSON printed with its first key beside the brace is refused; a first line cut short before NDJSON lines is not")
    func multiLineObjects() {
        let pretty = Array("{\"event_id\": \"e1\",\n  \"event_type\": \"play\"\n}\n".utf8)
        #expect(throws: ImportInputError.self) { try ImportFile.checkIsNDJSON(pretty) }
        let braceInString = Array("{\"x\": \"}{\", \"event_id\": \"e1\",\n  \"event_type\": \"play\"\n}\n".utf8)
        #expect(throws: ImportInputError.self) { try ImportFile.checkIsNDJSON(braceInString) }
        let cutShort = Array("{\"event_id\": \"e1\", \"ev\n{\"event_id\": \"e2\"}\n".utf8)
        #expect(throws: Never.self) { try ImportFile.checkIsNDJSON(cutShort) }
        let whole = Array("{\"event_id\": \"e1\", \"genre\": [\"a\", \"}\"]}\n  \n".utf8)
        #expect(throws: Never.self) { try ImportFile.checkIsNDJSON(whole) }
    }
}

@Suite("An import's hold on its file")
struct LeaseKeeperTests {
    /// A lease whose first renewal takes `firstRenewal` (an S3 PUT answered at a later attempt),
    /// counting renewals.
    final class SlowLease: LakeLease {
        let firstRenewal: Duration
        let renewals = Mutex(0)
        init(firstRenewal: Duration) { self.firstRenewal = firstRenewal }
        func renew() async throws {
            if renewals.withLock({ $0 += 1; return $0 }) == 1 { try await Task.sleep(for: firstRenewal) }
        }
        func release() async -> Bool { true }
    }

    @Test("a renewal that lands late (its write sent again by the S3 client's retries) counts from when it started, since its stamp was taken then: the next write renews again in time (it counted from the return, and another import could take over a lease this one took for fresh)")
    func slowRenewalCountsFromItsStart() async throws {
        let lease = SlowLease(firstRenewal: .milliseconds(1500))
        let keeper = LeaseKeeper(lease: lease, logger: Logger(label: "test"), renewAfter: .seconds(1))
        try await keeper.confirm()
        #expect(lease.renewals.withLock { $0 } == 1)
        // At once after the slow renewal: its stamp is already 1.5 s old, past the renewal age.
        try await keeper.ensureHeld()
        #expect(lease.renewals.withLock { $0 } == 2, "the write after a late renewal renews again")
        // A fast renewal just now: no other.
        try await keeper.ensureHeld()
        #expect(lease.renewals.withLock { $0 } == 2)
        _ = await keeper.stop()
    }
}
