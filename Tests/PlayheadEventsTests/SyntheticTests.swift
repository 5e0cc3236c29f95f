import Testing
import PlayheadEvents

@Suite struct SyntheticSessionsTests {
    func generate(seed: UInt64, sessions: Int, count: Int) -> [[UInt8]] {
        var s = SyntheticSessions(seed: seed, concurrentSessions: sessions, startTime: 1_714_564_800_000_000)
        return (0..<count).map { _ in
            var e: [UInt8] = []
            s.appendNextEvent(to: &e)
            return e
        }
    }

    @Test func everyEventIsAcceptedAndStartsWithEventID() throws {
        let events = generate(seed: 42, sessions: 50, count: 5000)
        var body: [UInt8] = []
        for e in events {
            #expect(e.starts(with: Array(#"{"event_id":""#.utf8)))
            #expect(!e.contains(UInt8(ascii: "\n")))
            body += e
            body.append(UInt8(ascii: "\n"))
        }
        var config = EventDecoderConfiguration()
        config.maxEventsPerRequest = 10_000
        let (outcome, sink) = decode(body, format: .ndjson, configuration: config)
        #expect(outcome.rejected == 0, "\(outcome.errors.prefix(3))")
        #expect(outcome.accepted == 5000)
        let fields = try sink.fields()
        #expect(Set(fields.map(\.eventID)).count == 5000)
        #expect(fields.allSatisfy { $0.sessionID != nil })
    }

    @Test("a session's events have later and later timestamps to the millisecond, as written, even when two fall in one millisecond of simulated time")
    func millisecondTimestampsIncreaseWithinASession() {
        // One event per 0-40 s of simulated time over two sessions: the 42,004th event (of this seed) came
        // within the same millisecond as its session's previous one, so its written timestamp was
        // equal (docs/lake.md, "Rollups": such pairs have no order a query can follow).
        var s = SyntheticSessions(seed: 3, concurrentSessions: 2, startTime: 1_714_564_800_000_000)
        let sessionKey = Array(#""session_id":""#.utf8), timestampKey = Array(#""timestamp":""#.utf8)
        func value(after key: [UInt8], in event: [UInt8]) -> ArraySlice<UInt8> {
            guard let start = event.firstRange(of: key)?.upperBound,
                  let end = event[start...].firstIndex(of: UInt8(ascii: "\"")) else { return [] }
            return event[start..<end]
        }
        var last: [ArraySlice<UInt8>: String] = [:]
        var equal = 0, events = 0
        var event: [UInt8] = []
        for _ in 0..<50_000 {
            event.removeAll(keepingCapacity: true)
            s.appendNextEvent(to: &event)
            // Fixed-width ISO 8601 in UTC: text order is time order.
            let session = value(after: sessionKey, in: event), time = String(decoding: value(after: timestampKey, in: event), as: UTF8.self)
            if let previous = last[session], previous >= time { equal += 1 }
            last[session] = time
            events += 1
        }
        #expect(events == 50_000 && last.count > 100)
        #expect(equal == 0, "\(equal) events with their session's previous timestamp")
    }

    @Test("with a wall clock, the simulated clock never runs ahead of it (but for a session's millisecond steps); without one it runs at the sessions' pace, here more than 10 minutes in 5,000 events")
    func wallClockHoldsTheClockBack() throws {
        let start: Int64 = 1_714_564_800_000_000
        func lastTimestamp(wall: Int64?) throws -> Int64 {
            var s = SyntheticSessions(seed: 7, concurrentSessions: 10, startTime: start)
            if let wall { s.wallClock = { wall } }
            var body: [UInt8] = []
            for _ in 0..<5000 {
                s.appendNextEvent(to: &body)
                body.append(UInt8(ascii: "\n"))
            }
            var config = EventDecoderConfiguration()
            config.maxEventsPerRequest = 10_000
            let (outcome, sink) = decode(body, format: .ndjson, configuration: config)
            #expect(outcome.accepted == 5000)
            return try sink.fields().map(\.timestampMicros).max() ?? 0
        }
        // 10 sessions, an event each about every 40 s: 5,000 events span about 20,000 s.
        #expect(try lastTimestamp(wall: nil) - start > 600_000_000)
        // Held at one second past the start (a wall clock that stands still): every event within
        // it, but for the millisecond by which each event of a session follows its last (about 500
        // events per session here, so at most 0.5 s past it).
        #expect(try lastTimestamp(wall: start + 1_000_000) <= start + 1_000_000 + 510_000)
    }

    @Test("with a wall clock, the simulated clock does not fall behind it either: a wall clock far ahead of the sessions' pace (a low rate over many sessions) gives events of the wall clock's time")
    func wallClockHoldsTheClockUp() throws {
        let start: Int64 = 1_714_564_800_000_000
        // 10,000 sessions, 100 events: about 0.4 s of the sessions' time. The wall clock reads one
        // hour later (sending at 100 events/s for an hour ran 0.4 × behind it: a review).
        var s = SyntheticSessions(seed: 7, concurrentSessions: 10_000, startTime: start)
        let wall = start + 3_600_000_000
        s.wallClock = { wall }
        var body: [UInt8] = []
        for _ in 0..<100 {
            s.appendNextEvent(to: &body)
            body.append(UInt8(ascii: "\n"))
        }
        let (outcome, sink) = decode(body, format: .ndjson)
        #expect(outcome.accepted == 100)
        let stamps = try sink.fields().map(\.timestampMicros)
        #expect(stamps.allSatisfy { $0 >= wall - 1000 && $0 <= wall + 1_000 }, "\(stamps.prefix(5))")
    }

    @Test func deterministicForASeed() {
        #expect(generate(seed: 3, sessions: 10, count: 300) == generate(seed: 3, sessions: 10, count: 300))
        #expect(generate(seed: 3, sessions: 10, count: 300) != generate(seed: 4, sessions: 10, count: 300))
    }

    @Test("the n-th event of a seed has the same event_id whatever the clock: with a wall clock (as loadgen sends) titles end at other times, and the ids parted from there (an outside review)")
    func eventIDsDoNotDependOnTheClock() {
        let start: Int64 = 1_714_564_800_000_000
        func ids(wall: Int64?) -> [String] {
            // One session, so that titles end often without a wall clock (about 40 s per event).
            var s = SyntheticSessions(seed: 11, concurrentSessions: 1, startTime: start)
            if let wall { s.wallClock = { wall } }
            return (0..<500).map { _ in
                var event: [UInt8] = []
                s.appendNextEvent(to: &event)
                return String(decoding: event.dropFirst(#"{"event_id":""#.utf8.count).prefix(36), as: UTF8.self)
            }
        }
        let simulated = ids(wall: nil), held = ids(wall: start)
        #expect(Set(simulated).count == 500)
        #expect(simulated == held, "first difference at \(Array(zip(simulated, held)).firstIndex { $0.0 != $0.1 } ?? -1)")
    }

    @Test func sessionsAreRealistic() throws {
        let events = generate(seed: 9, sessions: 20, count: 20_000)
        var body: [UInt8] = []
        for e in events { body += e + [UInt8(ascii: "\n")] }
        var config = EventDecoderConfiguration()
        config.maxEventsPerRequest = 100_000
        let fields = try decode(body, format: .ndjson, configuration: config).sink.fields()
        var bySession: [String: [EventRecordFields]] = [:]
        var order: [String] = []
        for f in fields {
            if bySession[f.sessionID!] == nil { order.append(f.sessionID!) }
            bySession[f.sessionID!, default: []].append(f)
        }
        // Interleaved: consecutive events usually belong to different sessions.
        var switches = 0
        for k in 1..<fields.count where fields[k].sessionID != fields[k - 1].sessionID { switches += 1 }
        #expect(switches > fields.count / 2)
        var finished = 0, stopped = 0
        for id in order.dropLast(40) {  // sessions still running at the end are not judged
            let s = bySession[id]!
            #expect(s[0].eventType == "play")
            #expect(Set(s.map(\.contentID)).count == 1)
            #expect(Set(s.map(\.userID)).count == 1)
            for k in 1..<s.count {
                #expect(s[k].timestampMicros > s[k - 1].timestampMicros)
                #expect(s[k].currentTimestamp >= s[k - 1].currentTimestamp, "positions go forward within a session")
                #expect(s[k - 1].eventType != "stop", "stop ends a session")
                if s[k - 1].eventType == "pause" {
                    #expect(s[k].currentTimestamp == s[k - 1].currentTimestamp, "a paused position stays")
                }
                #expect(s[k].currentTimestamp <= Double(s[k].durationSeconds))
            }
            finished += 1
            if s.last!.eventType == "stop" { stopped += 1 }
        }
        #expect(finished > 100)
        // Most sessions end with stop; some are abandoned.
        #expect(Double(stopped) / Double(finished) > 0.6)
        #expect(stopped < finished)
        // Positions advance with simulated time while playing.
        var advanced = 0
        for s in bySession.values {
            for k in 1..<max(1, s.count) where s[k - 1].eventType == "play" && s[k].currentTimestamp > s[k - 1].currentTimestamp {
                let wall = Double(s[k].timestampMicros - s[k - 1].timestampMicros) / 1e6
                #expect(s[k].currentTimestamp - s[k - 1].currentTimestamp <= wall + 0.002)
                advanced += 1
            }
        }
        #expect(advanced > 100)
    }

    @Test func catalogue() {
        let items = ContentCatalogue.standard.items
        #expect(items.count == 50)
        #expect(Set(items.map(\.contentID)).count == 50)
        #expect(Set(items.map(\.contentType)) == ["movie", "episode", "ad"])
        #expect(items.allSatisfy { $0.durationSeconds > 0 && !$0.genres.isEmpty })
    }
}
