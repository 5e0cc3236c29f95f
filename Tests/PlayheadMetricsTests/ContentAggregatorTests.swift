import Foundation
@testable import PlayheadMetrics
import PlayheadTestSupport
import PlayheadEvents
import Prometheus
import Testing

/// Builds observations in seconds (converted to microseconds); receive time = event time unless given.
func event(
    _ type: String,
    at seconds: Double,
    session: String = "s1",
    content: String = "c1",
    contentType: String = "movie",
    position: Double = 0,
    duration: Int64 = 3600,
    received: Double? = nil,
    title: String? = nil,
    source: String = "web",
    language: String = "en",
    genre: String = "drama"
) -> ContentObservation {
    ContentObservation(
        eventType: type,
        contentType: contentType,
        sessionKey: SessionKey(session),
        contentID: content,
        timestampMicros: Int64(seconds * 1_000_000),
        receivedAtMicros: Int64((received ?? seconds) * 1_000_000),
        currentTimestamp: position,
        durationSeconds: duration,
        title: title,
        eventSource: source,
        language: language,
        genre: genre
    )
}

@Suite("ContentAggregator")
struct ContentAggregatorTests {
    @Test("content ids and session ids are told apart by their bytes, as the lake and SQL tell them (Swift's String equality made two spellings one), an event source added in NFC does not take an event's NFD spelling; a genre and a language are taken in NFC (one label value, as the registry keeps one series)")
    func valuesComparedByBytes() throws {
        let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
        #expect(nfc == nfd)  // to Swift's String
        let aggregator = ContentAggregator(eventSources: try EventSourceLabels(adding: [nfc]))
        aggregator.observe(event("play", at: 1000, session: "a", content: nfc, source: nfc, language: nfc, genre: nfc))
        aggregator.observe(event("play", at: 1000, session: "b", content: nfd, source: nfd, language: nfd, genre: nfd))
        aggregator.observe(event("play", at: 1000, session: "c", content: nfd, source: nfd, language: nfd, genre: nfd))
        let snapshot = aggregator.snapshot(top: 10)
        let rows = snapshot.breakdown.map { ($0.key, $0.value.playsStarted) }
        func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
        // One value in NFC: swift-prometheus keeps one series for both spellings (breakdownLabelsInNFC).
        #expect(Set(rows.map { bytes($0.0.genre) }) == [bytes(nfc)], "\(rows)")
        #expect(Set(rows.map { bytes($0.0.language) }) == [bytes(nfc)], "\(rows)")
        // The NFD spelling is not the added label: 'other', as the decoder's series count it.
        #expect(rows.first { bytes($0.0.eventSource) == bytes(nfc) }?.1 == 1 && rows.first { $0.0.eventSource == "other" }?.1 == 2, "\(rows)")
        #expect(snapshot.topContent.map { (bytes($0.contentID), $0.viewers) }.sorted { $0.1 < $1.1 }.map(\.1) == [1, 2], "\(snapshot.topContent)")
        // Both spellings cannot be listed: the registry would keep one series for the two.
        #expect(throws: EventSourceLabels.Invalid.self) { try EventSourceLabels(adding: [nfc, nfd]) }
        // Sessions and content switches too: two session ids spelled so are two viewers, and a
        // session that goes from one content id to the other starts a second play.
        let sessions = ContentAggregator()
        sessions.observe(event("play", at: 1000, session: "s-" + nfc))
        sessions.observe(event("play", at: 1000, session: "s-" + nfd))
        sessions.observe(event("play", at: 1000, session: "x1", content: "c-" + nfc))
        sessions.observe(event("play", at: 1010, session: "x1", content: "c-" + nfd))
        let played = sessions.snapshot()
        #expect(played.playsStarted["movie"] == 4 && played.totalConcurrentViewers == 3, "\(played.playsStarted) \(played.totalConcurrentViewers)")
    }

    @Test("a breakdown value in NFC and in NFD is one series, as the registry keeps it (swift-prometheus compares label values as Swift strings): its viewers gauge is the sum of both spellings' sessions, not the last one published (an outside review)")
    func breakdownLabelsInNFC() throws {
        let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
        let registry = PrometheusCollectorRegistry()
        let instruments = ContentInstruments(factory: PlayheadTelemetry.makeFactory(registry: registry), consumer: "metrics")
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 1000, session: "a", language: nfc, genre: nfd))
        aggregator.observe(event("play", at: 1000, session: "b", language: nfd, genre: nfc))
        instruments.publish(aggregator.snapshot())
        var f = ExpositionSamples(PlayheadTelemetry.render(registry))
        #expect(f.sum("playhead_concurrent_viewers") == 2)
        #expect(f.sum("playhead_breakdown_concurrent_viewers") == 2)
        // The session in NFD pauses: only its combination changes, and with one gauge for both
        // spellings it set the NFC session's viewer to 0 (the total said 1).
        aggregator.observe(event("pause", at: 1010, session: "b", language: nfd, genre: nfc))
        instruments.publish(aggregator.snapshot())
        f = ExpositionSamples(PlayheadTelemetry.render(registry))
        #expect(f.sum("playhead_concurrent_viewers") == 1)
        #expect(f.sum("playhead_breakdown_concurrent_viewers") == 1)
        #expect(f.sum("playhead_breakdown_watch_time_seconds_total") == f.sum("playhead_watch_time_seconds_total"))
        // The label is written in NFC, whichever spelling came first.
        let languages = Set((f.samples["playhead_breakdown_concurrent_viewers"] ?? []).compactMap { $0.labels["language"].map { Array($0.utf8) } })
        let genres = Set((f.samples["playhead_breakdown_concurrent_viewers"] ?? []).compactMap { $0.labels["genre"].map { Array($0.utf8) } })
        #expect(languages == [Array(nfc.utf8)] && genres == [Array(nfc.utf8)], "\(languages) \(genres)")
        #expect(aggregator.snapshot().breakdown.count == 1, "\(aggregator.snapshot().breakdown)")
        // Two spellings of one source cannot both be given to --event-source (they were one series
        // in the registry, written as the first listed).
        #expect(throws: EventSourceLabels.Invalid.self) { try EventSourceLabels(adding: [nfd, nfc]) }
    }

    @Test("past maxSessions, the half of the sessions silent longest ends as a timeout would: the table stays bounded, viewers stay consistent, a recent session keeps counting; stopped sessions are bounded too")
    func sessionsBounded() {
        let aggregator = ContentAggregator(maxSessions: 100)
        var most = 0
        for index in 0..<1_000 {
            let time = 1_000 + Double(index) * 0.01
            aggregator.observe(event("play", at: time, session: "n\(index)"))
            if index % 10 == 0 { aggregator.observe(event("heartbeat", at: time, session: "recent", position: time - 1_000)) }
            most = max(most, aggregator.snapshot(top: 0).activeSessions)
        }
        #expect(most <= 100, "\(most)")
        #expect(aggregator.forgottenSessions >= 900, "\(aggregator.forgottenSessions)")
        var snapshot = aggregator.snapshot()
        // Every session followed is playing, "recent" too (heartbeats only: it plays from its first,
        // with no play start): the viewers are exactly the sessions still followed, none left
        // counted for an ended one.
        #expect(snapshot.totalConcurrentViewers == snapshot.activeSessions, "\(snapshot.totalConcurrentViewers) \(snapshot.activeSessions)")
        #expect(snapshot.playsStarted["movie"] == 1_000)
        // "recent" was never ended: a heartbeat every 0.1 s, every gap counted from its first at
        // 1,000 s (ended and started again by its next heartbeat, it would have lost a gap); a play
        // then is not a play start.
        aggregator.observe(event("play", at: 1_011, session: "recent", position: 11))
        aggregator.observe(event("heartbeat", at: 1_012, session: "recent", position: 12))
        snapshot = aggregator.snapshot()
        #expect(snapshot.watchTimeSeconds["movie"] == 12, "\(snapshot.watchTimeSeconds)")
        #expect(snapshot.playsStarted["movie"] == 1_000)

        let stops = ContentAggregator(maxSessions: 50)
        for index in 0..<500 {
            stops.observe(event("stop", at: 2_000 + Double(index), session: "x\(index)", position: 3_500))
        }
        #expect(stops.forgottenSessions >= 450, "\(stops.forgottenSessions)")
        #expect(stops.snapshot().completions["movie"] == 500)
    }

    @Test("the top contents are those a full sort gives: most viewers first, ties by content id, any count asked for")
    func topContentAsSorted() {
        let aggregator = ContentAggregator()
        var generator = SystemRandomNumberGenerator()
        var sessions = 0
        var watched = 0
        for content in 0..<300 {
            // 0-7 viewers each, so that many tie; a content with none left (a pause) is not listed.
            let viewers = Int.random(in: 0...7, using: &generator)
            if viewers > 0 { watched += 1 }
            for viewer in 0...viewers {
                sessions += 1
                aggregator.observe(event("play", at: 1_000, session: "s\(content)-\(viewer)", content: "c\(content)"))
                if viewer == viewers { aggregator.observe(event("pause", at: 1_001, session: "s\(content)-\(viewer)", content: "c\(content)")) }
            }
        }
        let all = aggregator.snapshot(top: 100_000).topContent
        #expect(all.count == watched, "\(all.count) \(watched)")
        let sorted = all.sorted { $0.viewers != $1.viewers ? $0.viewers > $1.viewers : $0.contentID < $1.contentID }
        #expect(all.map(\.contentID) == sorted.map(\.contentID))
        #expect(all.reduce(0) { $0 + $1.viewers } + 300 == sessions)
        for top in [1, 10, watched - 1, watched, watched + 1] {
            #expect(aggregator.snapshot(top: top).topContent.map(\.contentID) == Array(sorted.prefix(top)).map(\.contentID), "top \(top)")
        }
    }

    @Test("the session tables' text is bounded in bytes too: sessions with 1 KB ids, content ids and titles end (as by a timeout) or are forgotten before maxSessions is reached, the text held stays under the limit, and UUID sessions count no key text")
    func sessionTextBounded() {
        let limit = 300_000
        let aggregator = ContentAggregator(maxSessions: 10_000, maxTableTextBytes: limit)
        let long = String(repeating: "x", count: 1_000)
        var most = 0
        for index in 0..<1_000 {
            let time = 1_000 + Double(index) * 0.01
            aggregator.observe(event("play", at: time, session: long + "\(index)", content: long + "c\(index)", title: long))
            most = max(most, aggregator.snapshot(top: 0).activeSessions)
        }
        // About 2.2 KB a session (a title is cut to 200 bytes): at most 136 fit under the limit,
        // and the count's bound ended none.
        #expect(most <= 137, "\(most)")
        #expect(aggregator.forgottenSessions >= 850, "\(aggregator.forgottenSessions)")
        let snapshot = aggregator.snapshot()
        #expect(snapshot.totalConcurrentViewers == snapshot.activeSessions && snapshot.playsStarted["movie"] == 1_000, "\(snapshot.totalConcurrentViewers)")
        // A title that grows counts: four sessions of 1,003 bytes whose titles become 200 bytes
        // long (4,812 bytes) under a limit of 4,500.
        let grows = ContentAggregator(maxSessions: 10_000, maxTableTextBytes: 4_500)
        for index in 0..<4 { grows.observe(event("play", at: 1_000, session: "g\(index)", content: long, title: "t")) }
        for index in 0..<4 { grows.observe(event("heartbeat", at: 1_001, session: "g\(index)", content: long, position: 1, title: long)) }
        grows.observe(event("play", at: 1_002, session: "new"))
        #expect(grows.forgottenSessions >= 2, "\(grows.forgottenSessions)")
        // Stopped sessions: bounded in bytes as well.
        let stops = ContentAggregator(maxSessions: 10_000, maxTableTextBytes: limit)
        for index in 0..<500 {
            stops.observe(event("stop", at: 2_000 + Double(index), session: long + "\(index)", content: long, position: 3_500))
        }
        #expect(stops.forgottenSessions >= 350, "\(stops.forgottenSessions)")
        #expect(stops.snapshot().completions["movie"] == 500)
        // UUID keys hold no text: 1,000 sessions with short content ids stay within a small limit.
        let uuids = ContentAggregator(maxSessions: 10_000, maxTableTextBytes: 10_000)
        for index in 0..<1_000 {
            uuids.observe(event("play", at: 1_000, session: UUID().uuidString.lowercased(), content: "c\(index % 10)"))
        }
        #expect(uuids.forgottenSessions == 0 && uuids.snapshot(top: 0).activeSessions == 1_000, "\(uuids.forgottenSessions)")
        #expect(SessionKey(UUID().uuidString.lowercased()).textBytes == 0 && SessionKey("abc").textBytes == 3)
    }

    @Test("events whose timestamp is more than 5 minutes before or after their received_at (an offline queue sent days later, a device clock ahead) are counted as events and change no live figure; a session whose clock was ahead counts watch time once its events are on time")
    func eventsOutsideTheLiveWindow() {
        let aggregator = ContentAggregator()
        let now = 1_800_000_000.0
        // A phone's offline queue, three days old: a play and two more events 30 s apart.
        let old = now - 3 * 86_400
        for (index, type) in ["play", "play", "stop"].enumerated() {
            aggregator.observe(event(type, at: old + Double(index) * 30, session: "offline", position: Double(index) * 30, duration: 60, received: now))
        }
        // Within the window (a batch sent 4 minutes late): live as before.
        aggregator.observe(event("play", at: now - 240, session: "batched", received: now))
        aggregator.observe(event("play", at: now - 210, session: "batched", position: 30, received: now))
        var snapshot = aggregator.snapshot()
        #expect(snapshot.totalConcurrentViewers == 1, "only the batched session: \(snapshot.concurrentViewers)")
        #expect(snapshot.playsStarted["movie"] == 1)
        #expect(snapshot.watchTimeSeconds["movie"] == 30)
        #expect(snapshot.completions["movie"] == nil, "the offline session's stop at 100 % completes nothing live")
        #expect(snapshot.eventsByType["play"] == 4 && snapshot.eventsByType["stop"] == 1, "every event is counted as read")
        #expect(aggregator.outsideLiveWindow.late == 3 && aggregator.outsideLiveWindow.ahead == 0)

        // A device clock 10 minutes ahead, then put right: its first two events are left out, and
        // the session counts from its first event on time (it froze until the clock caught up).
        let ahead = 600.0
        aggregator.observe(event("play", at: now + ahead, session: "skewed", content: "c2", received: now))
        aggregator.observe(event("play", at: now + ahead + 20, session: "skewed", content: "c2", position: 20, received: now + 20))
        for step in 2..<8 {
            let time = now + Double(step) * 20
            aggregator.observe(event("play", at: time, session: "skewed", content: "c2", position: Double(step) * 20, received: time))
        }
        aggregator.observe(event("pause", at: now + 160, session: "skewed", content: "c2", position: 160, received: now + 160))
        snapshot = aggregator.snapshot()
        #expect(snapshot.watchTimeSeconds["movie"] == 150, "six gaps of 20 s from the first event on time: \(snapshot.watchTimeSeconds)")
        #expect(snapshot.totalConcurrentViewers == 1, "the paused session is no viewer; the batched one still is")
        #expect(aggregator.outsideLiveWindow.ahead == 2)
        // Exactly 5 minutes either way is still live.
        aggregator.observe(event("play", at: now - 300, session: "edge-late", received: now))
        aggregator.observe(event("play", at: now + 300, session: "edge-ahead", received: now))
        #expect(aggregator.snapshot().totalConcurrentViewers == 3)
        #expect(aggregator.outsideLiveWindow.late == 3 && aggregator.outsideLiveWindow.ahead == 2)
    }

    @Test("a client that resends events after the stop (retries) neither completes the session twice nor brings its viewer back")
    func resentEventsAfterStop() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 1000, position: 0, duration: 1000))
        aggregator.observe(event("pause", at: 1030, position: 30, duration: 1000))
        aggregator.observe(event("stop", at: 1100, position: 960, duration: 1000))
        var snapshot = aggregator.snapshot()
        #expect(snapshot.completions["movie"] == 1 && snapshot.playsStarted["movie"] == 1 && snapshot.activeSessions == 0)
        // The stop and the first play again, with their own times (a retry after a lost answer).
        aggregator.observe(event("stop", at: 1100, position: 960, duration: 1000, received: 1105))
        aggregator.observe(event("play", at: 1000, position: 0, duration: 1000, received: 1106))
        aggregator.observe(event("pause", at: 1030, position: 30, duration: 1000, received: 1106))
        snapshot = aggregator.snapshot()
        #expect(snapshot.completions["movie"] == 1, "a resent stop completed the session again")
        #expect(snapshot.playsStarted["movie"] == 1, "a resent play started the session again")
        #expect(snapshot.totalConcurrentViewers == 0 && snapshot.activeSessions == 0, "a resent play brought a viewer back")
        #expect(snapshot.eventsByType["stop"] == 2 && snapshot.eventsByType["play"] == 2, "every event is still counted as an event")
        // A late stop of a session whose stop did not complete it still can (docs/metrics.md).
        aggregator.observe(event("play", at: 2000, session: "s2", duration: 1000))
        aggregator.observe(event("stop", at: 2100, session: "s2", position: 100, duration: 1000))
        aggregator.observe(event("stop", at: 2090, session: "s2", position: 990, duration: 1000))
        aggregator.observe(event("stop", at: 2090, session: "s2", position: 990, duration: 1000))
        #expect(aggregator.snapshot().completions["movie"] == 2)
        // Watching again after the stop is a new play.
        aggregator.observe(event("play", at: 1200, position: 0, duration: 1000))
        snapshot = aggregator.snapshot()
        #expect(snapshot.playsStarted["movie"] == 3 && snapshot.totalConcurrentViewers == 1)
        // The memory of stopped sessions goes with the session timeout.
        // (Received within the live window of its timestamp: a stop received half an hour later is
        // left out of the live figures altogether, eventsOutsideTheLiveWindow.)
        aggregator.expire(now: 1300 * 1_000_000)
        aggregator.observe(event("stop", at: 1100, position: 960, duration: 1000, received: 1301))
        #expect(aggregator.snapshot().completions["movie"] == 3)
    }

    @Test("a resend of a whole batch of a session that played an ad and then the movie counts nothing again; a resent stop of a first viewing does not complete its replay (a code review counted both again)")
    func resentPreRollAndMovie() {
        let aggregator = ContentAggregator()
        let batch = [
            event("play", at: 1000, content: "ad", contentType: "ad", position: 0, duration: 30),
            event("stop", at: 1030, content: "ad", contentType: "ad", position: 30, duration: 30),
            event("play", at: 1031, content: "m", position: 0, duration: 40),
            event("stop", at: 1071, content: "m", position: 40, duration: 40),
        ]
        aggregator.observe(batch)
        let first = aggregator.snapshot()
        #expect(first.playsStarted == ["ad": 1, "movie": 1] && first.completions == ["ad": 1, "movie": 1], "\(first.playsStarted) \(first.completions)")
        // The whole batch again (a lost answer), then each event alone.
        aggregator.observe(batch.map { var resent = $0; resent.receivedAtMicros += 5_000_000; return resent })
        for resent in batch { aggregator.observe(resent) }
        let again = aggregator.snapshot()
        #expect(again.playsStarted == first.playsStarted && again.completions == first.completions, "\(again.playsStarted) \(again.completions)")
        #expect(again.watchTimeSeconds == first.watchTimeSeconds, "\(again.watchTimeSeconds) \(first.watchTimeSeconds)")
        #expect(again.totalConcurrentViewers == 0 && again.activeSessions == 0)
        // Three ads before the movie are remembered too.
        let pod = ["a1", "a2", "a3"].enumerated().flatMap { index, ad in
            [event("play", at: 2000 + Double(index) * 10, session: "pod", content: ad, contentType: "ad", duration: 10),
             event("stop", at: 2009 + Double(index) * 10, session: "pod", content: ad, contentType: "ad", position: 10, duration: 10)]
        } + [event("play", at: 2031, session: "pod", content: "m", duration: 40), event("stop", at: 2071, session: "pod", content: "m", position: 40, duration: 40)]
        aggregator.observe(pod)
        let withPod = aggregator.snapshot()
        aggregator.observe(pod)
        #expect(aggregator.snapshot().playsStarted == withPod.playsStarted && aggregator.snapshot().completions == withPod.completions)

        // Completed, watched again (a replay), paused; the first viewing's stop resent.
        aggregator.observe(event("play", at: 3000, session: "r", contentType: "episode", position: 0, duration: 20))
        aggregator.observe(event("stop", at: 3020, session: "r", contentType: "episode", position: 20, duration: 20))
        aggregator.observe(event("play", at: 3030, session: "r", contentType: "episode", position: 0, duration: 20))
        aggregator.observe(event("pause", at: 3034, session: "r", contentType: "episode", position: 4, duration: 20))
        aggregator.observe(event("stop", at: 3020, session: "r", contentType: "episode", position: 20, duration: 20, received: 3040))
        let replay = aggregator.snapshot()
        #expect(replay.completions["episode"] == 1 && replay.playsStarted["episode"] == 2, "\(replay.completions) \(replay.playsStarted)")
    }

    @Test("a late stop that completes a session, then its own stop: one completion (an outside review counted two)")
    func lateStopThenStop() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 1000, contentType: "episode", position: 0, duration: 100))
        aggregator.observe(event("heartbeat", at: 1060, contentType: "episode", position: 96, duration: 100))
        aggregator.observe(event("stop", at: 1030, contentType: "episode", position: 97, duration: 100))
        #expect(aggregator.snapshot().completions["episode"] == 1, "a late stop still counts its completion")
        aggregator.observe(event("stop", at: 1090, contentType: "episode", position: 99, duration: 100))
        aggregator.observe(event("stop", at: 1050, contentType: "episode", position: 98, duration: 100))
        var snapshot = aggregator.snapshot()
        #expect(snapshot.completions["episode"] == 1 && snapshot.activeSessions == 0, "\(snapshot.completions)")
        // A late stop that did not reach the ratio leaves the session's own stop to complete it.
        aggregator.observe(event("play", at: 2000, session: "s2", contentType: "episode", position: 0, duration: 100))
        aggregator.observe(event("heartbeat", at: 2060, session: "s2", contentType: "episode", position: 60, duration: 100))
        aggregator.observe(event("stop", at: 2030, session: "s2", contentType: "episode", position: 30, duration: 100))
        aggregator.observe(event("stop", at: 2090, session: "s2", contentType: "episode", position: 99, duration: 100))
        snapshot = aggregator.snapshot()
        #expect(snapshot.completions["episode"] == 2, "\(snapshot.completions)")
        // The session left for other content before its own stop came (late now): still one.
        aggregator.observe(event("play", at: 3000, session: "s3", contentType: "episode", position: 0, duration: 100))
        aggregator.observe(event("heartbeat", at: 3060, session: "s3", contentType: "episode", position: 96, duration: 100))
        aggregator.observe(event("stop", at: 3030, session: "s3", contentType: "episode", position: 97, duration: 100))
        aggregator.observe(event("play", at: 3070, session: "s3", content: "c2", contentType: "movie", duration: 100))
        aggregator.observe(event("stop", at: 3065, session: "s3", contentType: "episode", position: 99, duration: 100))
        #expect(aggregator.snapshot().completions["episode"] == 3, "\(aggregator.snapshot().completions)")
        // A pre-roll's late stop, resent: one completion.
        aggregator.observe(event("play", at: 4000, session: "s4", content: "ad", contentType: "ad", position: 0, duration: 30))
        aggregator.observe(event("play", at: 4031, session: "s4", content: "c3", contentType: "movie", duration: 100))
        aggregator.observe(event("stop", at: 4030, session: "s4", content: "ad", contentType: "ad", position: 30, duration: 30))
        aggregator.observe(event("stop", at: 4030, session: "s4", content: "ad", contentType: "ad", position: 30, duration: 30, received: 4040))
        snapshot = aggregator.snapshot()
        #expect(snapshot.completions["ad"] == 1 && snapshot.concurrentViewers["movie"] == 2, "\(snapshot.completions)")
    }

    @Test("after the server's clock steps back an hour, quiet sessions still end 90 s later, not when the clock has caught up")
    func sessionExpiryAfterClockStepBack() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 10_000))
        aggregator.observe(event("play", at: 10_000, session: "s2", contentType: "episode"))
        let back = Int64(10_000 - 3600)
        aggregator.expire(now: (back + 10) * 1_000_000)
        #expect(aggregator.snapshot().activeSessions == 2, "ended at once")
        aggregator.expire(now: (back + 80) * 1_000_000)
        #expect(aggregator.snapshot().activeSessions == 2)
        aggregator.expire(now: (back + 110) * 1_000_000)  // 100 s after the step was noticed
        #expect(aggregator.snapshot().activeSessions == 0)
        #expect(aggregator.snapshot().totalConcurrentViewers == 0)
    }

    @Test("a session starts with its first event and expires after 90 s without one")
    func sessionExpiry() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 1000))
        aggregator.observe(event("play", at: 1000, session: "s2", contentType: "episode"))
        aggregator.observe(event("pause", at: 1010, session: "s2", contentType: "episode"))
        var snapshot = aggregator.snapshot()
        #expect(snapshot.activeSessions == 2)
        #expect(snapshot.concurrentViewers["movie"] == 1)
        #expect(snapshot.concurrentViewers["episode", default: 0] == 0)
        #expect(snapshot.playsStarted == ["movie": 1, "episode": 1])

        aggregator.expire(now: 1089 * 1_000_000)  // s1 quiet for 89 s, s2 for 79 s
        #expect(aggregator.snapshot().activeSessions == 2)
        aggregator.expire(now: 1095 * 1_000_000)  // s1: 95 s (gone), s2: 85 s (kept)
        snapshot = aggregator.snapshot()
        #expect(snapshot.activeSessions == 1)
        #expect(snapshot.totalConcurrentViewers == 0)
        aggregator.expire(now: 1101 * 1_000_000)
        #expect(aggregator.snapshot().activeSessions == 0)
        // A timed-out session that comes back is a new play; the silent time is not watch time.
        aggregator.observe(event("play", at: 1200))
        snapshot = aggregator.snapshot()
        #expect(snapshot.playsStarted["movie"] == 2)
        #expect(snapshot.watchTimeSeconds["movie", default: 0] == 0)
    }

    @Test("an event more than 90 s (event time) after the last one starts a new session")
    func eventTimeGap() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 0))
        aggregator.observe(event("play", at: 89))  // same session, still playing: 60 s (capped)
        #expect(aggregator.snapshot().playsStarted["movie"] == 1)
        aggregator.observe(event("play", at: 180))  // 91 s later: a new session
        let snapshot = aggregator.snapshot()
        #expect(snapshot.playsStarted["movie"] == 2)
        #expect(snapshot.watchTimeSeconds["movie"] == 60)
        #expect(snapshot.activeSessions == 1)
        #expect(snapshot.concurrentViewers["movie"] == 1)
    }

    @Test("watch time counts gaps between play-state events, each capped at 60 s")
    func watchTimeCap() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 0, position: 0))
        aggregator.observe(event("pause", at: 30, position: 30))  // +30
        aggregator.observe(event("play", at: 40, position: 30))  // paused: +0
        aggregator.observe(event("pause", at: 115, position: 105))  // 75 s gap: +60
        aggregator.observe(event("play", at: 120, position: 105))
        aggregator.observe(event("stop", at: 132.5, position: 117.5))  // +12.5
        let snapshot = aggregator.snapshot()
        #expect(snapshot.watchTimeSeconds["movie"] == 102.5)
        #expect(snapshot.playsStarted["movie"] == 1)
        #expect(snapshot.activeSessions == 0)
        #expect(snapshot.totalConcurrentViewers == 0)
        #expect(snapshot.eventsByType == ["play": 3, "pause": 2, "stop": 1])
    }

    @Test("a pause stops watch time until the next play")
    func pauseStopsWatchTime() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 0, contentType: "episode"))
        aggregator.observe(event("pause", at: 10, contentType: "episode"))
        #expect(aggregator.snapshot().concurrentViewers["episode"] == 0)
        #expect(aggregator.snapshot().activeSessions == 1)
        aggregator.observe(event("play", at: 50, contentType: "episode"))  // 40 s paused: not counted
        #expect(aggregator.snapshot().concurrentViewers["episode"] == 1)
        aggregator.observe(event("stop", at: 55, contentType: "episode"))
        let snapshot = aggregator.snapshot()
        #expect(snapshot.watchTimeSeconds["episode"] == 15)
        #expect(snapshot.playsStarted["episode"] == 1)  // the resume is not a new play
    }

    @Test("a completion is a stop at or beyond 95 % of duration_seconds")
    func completions() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 0, session: "a", duration: 100))
        aggregator.observe(event("stop", at: 10, session: "a", position: 94.9, duration: 100))
        #expect(aggregator.snapshot().completions["movie", default: 0] == 0)
        aggregator.observe(event("play", at: 0, session: "b", duration: 100))
        aggregator.observe(event("stop", at: 10, session: "b", position: 95, duration: 100))
        #expect(aggregator.snapshot().completions["movie"] == 1)
        aggregator.observe(event("play", at: 0, session: "c", contentType: "episode", duration: 1800))
        aggregator.observe(event("stop", at: 10, session: "c", contentType: "episode", position: 1800, duration: 1800))
        // A stop of a session never seen still completes; a zero duration never does.
        aggregator.observe(event("stop", at: 10, session: "d", position: 2000, duration: 2000))
        aggregator.observe(event("stop", at: 10, session: "e", position: 5, duration: 0))
        let snapshot = aggregator.snapshot()
        #expect(snapshot.completions == ["movie": 2, "episode": 1])
        #expect(snapshot.activeSessions == 0)
    }

    @Test("ad plays count plays started of content type ad")
    func adPlays() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 0, session: "x", content: "ad-1", contentType: "ad", duration: 30))
        aggregator.observe(event("pause", at: 5, session: "x", content: "ad-1", contentType: "ad", duration: 30))
        aggregator.observe(event("play", at: 6, session: "x", content: "ad-1", contentType: "ad", duration: 30))  // resume
        aggregator.observe(event("stop", at: 30, session: "x", content: "ad-1", contentType: "ad", position: 30, duration: 30))
        aggregator.observe(event("play", at: 31, session: "x", content: "ad-2", contentType: "ad", duration: 15))  // after stop: new
        aggregator.observe(event("play", at: 47, session: "x", content: "m-1", contentType: "movie"))  // other content: new
        let snapshot = aggregator.snapshot()
        #expect(snapshot.adPlays == 2)
        #expect(snapshot.playsStarted == ["ad": 2, "movie": 1])
        #expect(snapshot.completions == ["ad": 1])
        #expect(snapshot.watchTimeSeconds["ad"] == Double(5 + 24 + 16))
        #expect(snapshot.concurrentViewers == ["ad": 0, "movie": 1])
    }

    @Test("a late event of the content played before (a pre-roll ad's stop after the movie's play) ends nothing: the movie's watch time and viewer are the same as in order")
    func lateEventOfPreviousContent() {
        func run(adStopLate: Bool) -> ContentSnapshot {
            let aggregator = ContentAggregator()
            aggregator.observe(event("play", at: 0, content: "ad", contentType: "ad", position: 0, duration: 15))
            if !adStopLate { aggregator.observe(event("stop", at: 15, content: "ad", contentType: "ad", position: 15, duration: 15)) }
            aggregator.observe(event("play", at: 16, content: "movie", position: 0))
            if adStopLate { aggregator.observe(event("stop", at: 15, content: "ad", contentType: "ad", position: 15, duration: 15)) }
            aggregator.observe(event("heartbeat", at: 46, content: "movie", position: 30))
            aggregator.observe(event("heartbeat", at: 76, content: "movie", position: 60))
            #expect(aggregator.snapshot().concurrentViewers["movie"] == 1, "late: \(adStopLate)")
            aggregator.observe(event("stop", at: 100, content: "movie", position: 84))
            return aggregator.snapshot()
        }
        let inOrder = run(adStopLate: false), late = run(adStopLate: true)
        #expect(inOrder.watchTimeSeconds["movie"] == 84)
        #expect(late.watchTimeSeconds["movie"] == 84)
        #expect(late.completions["ad"] == inOrder.completions["ad"] && inOrder.completions["ad"] == 1)
        #expect(late.playsStarted == inOrder.playsStarted)
    }

    @Test("a pre-roll ad's stop stamped the same second as the movie's play (SDKs that stamp whole seconds) ends nothing: it is a late event of the ad, not a switch of content, and the movie keeps its viewer and watch time (an outside review)")
    func adStopAtTheMoviesPlayTime() {
        func run(adStopAt: Double) -> ContentSnapshot {
            let aggregator = ContentAggregator()
            aggregator.observe(event("play", at: 0, content: "ad", contentType: "ad", position: 0, duration: 30))
            aggregator.observe(event("play", at: 30, content: "movie", position: 0))
            aggregator.observe(event("stop", at: adStopAt, content: "ad", contentType: "ad", position: 30, duration: 30))
            aggregator.observe(event("heartbeat", at: 40, content: "movie", position: 10))
            aggregator.observe(event("heartbeat", at: 50, content: "movie", position: 20))
            return aggregator.snapshot()
        }
        let before = run(adStopAt: 29.999)
        #expect(before.concurrentViewers["movie"] == 1 && before.watchTimeSeconds["movie"] == 20)
        // Stamped as the movie's play, or after it (a clock that stepped): the same figures.
        for time in [30.0, 31] {
            let snapshot = run(adStopAt: time)
            #expect(snapshot.concurrentViewers["movie"] == 1, "\(time): \(snapshot.concurrentViewers)")
            #expect(snapshot.watchTimeSeconds["movie"] == 20, "\(time): \(snapshot.watchTimeSeconds)")
            #expect(snapshot.playsStarted == before.playsStarted && snapshot.completions == ["ad": 1], "\(time): \(snapshot.playsStarted) \(snapshot.completions)")
            #expect(snapshot.watchTimeSeconds["ad"] == 30 && snapshot.activeSessions == 1, "\(time): \(snapshot.watchTimeSeconds)")
        }
    }

    @Test("a resend of a batch that goes from one content to the next without a stop counts nothing again: the content left is remembered as a stopped one is (an outside review counted its play and the gap again)")
    func resentSwitchWithoutStop() {
        let aggregator = ContentAggregator()
        let batch = [
            event("play", at: 1000, content: "ep1", contentType: "episode", position: 0),
            event("heartbeat", at: 1030, content: "ep1", contentType: "episode", position: 30),
            event("play", at: 1040, content: "ep2", contentType: "episode", position: 0),
            event("stop", at: 1050, content: "ep2", contentType: "episode", position: 10),
        ]
        aggregator.observe(batch)
        let first = aggregator.snapshot()
        #expect(first.playsStarted == ["episode": 2] && first.watchTimeSeconds == ["episode": 50], "\(first.playsStarted) \(first.watchTimeSeconds)")
        aggregator.observe(batch.map { var resent = $0; resent.receivedAtMicros += 5_000_000; return resent })
        for resent in batch { aggregator.observe(resent) }
        let again = aggregator.snapshot()
        #expect(again.playsStarted == first.playsStarted && again.watchTimeSeconds == first.watchTimeSeconds, "\(again.playsStarted) \(again.watchTimeSeconds)")
        #expect(again.totalConcurrentViewers == 0 && again.activeSessions == 0)
        // Going back to the first episode later is a new play.
        aggregator.observe(event("play", at: 1060, content: "ep1", contentType: "episode", position: 30))
        #expect(aggregator.snapshot().playsStarted == ["episode": 3] && aggregator.snapshot().totalConcurrentViewers == 1)
    }

    @Test("a play stamped the same as the stop of the same content (start over) is a new play; a resent stop or heartbeat at that time is not (an outside review: no play, no viewer, no watch time)")
    func replayAtTheStopsTime() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 1000, position: 0, duration: 100))
        aggregator.observe(event("heartbeat", at: 1020, position: 20, duration: 100))
        aggregator.observe(event("stop", at: 1050, position: 50, duration: 100))
        aggregator.observe(event("play", at: 1050, position: 0, duration: 100))
        aggregator.observe(event("heartbeat", at: 1060, position: 10, duration: 100))
        var snapshot = aggregator.snapshot()
        #expect(snapshot.playsStarted["movie"] == 2 && snapshot.totalConcurrentViewers == 1, "\(snapshot.playsStarted) \(snapshot.concurrentViewers)")
        // The first viewing's stop and last heartbeat resent: the replay goes on.
        aggregator.observe(event("stop", at: 1050, position: 50, duration: 100, received: 1065))
        aggregator.observe(event("heartbeat", at: 1050, position: 50, duration: 100, received: 1065))
        aggregator.observe(event("heartbeat", at: 1070, position: 20, duration: 100))
        snapshot = aggregator.snapshot()
        #expect(snapshot.playsStarted["movie"] == 2 && snapshot.totalConcurrentViewers == 1, "\(snapshot.playsStarted) \(snapshot.concurrentViewers)")
        #expect(snapshot.watchTimeSeconds["movie"] == 70, "\(snapshot.watchTimeSeconds)")
        #expect(snapshot.completions["movie", default: 0] == 0 && snapshot.activeSessions == 1)
    }

    @Test("a session whose first event is a heartbeat (after a restart or a rebalance, or its receive-time expiry between an SDK's batches) plays: its viewer and watch time count, with no play start (they were lost); not a seek, nor a heartbeat racing its session's stop")
    func sessionStartedByHeartbeatPlays() {
        // A restart: the new process's first event of the session is a heartbeat.
        let restarted = ContentAggregator()
        for time in [1040.0, 1060, 1080] { restarted.observe(event("heartbeat", at: time, position: time - 1000)) }
        var snapshot = restarted.snapshot()
        #expect(snapshot.concurrentViewers["movie"] == 1 && snapshot.watchTimeSeconds["movie"] == 40, "\(snapshot.concurrentViewers) \(snapshot.watchTimeSeconds)")
        #expect(snapshot.playsStarted.isEmpty && snapshot.activeSessions == 1, "\(snapshot.playsStarted)")
        // A pause takes it out, and the play after it is a resume.
        restarted.observe(event("pause", at: 1090, position: 90))
        #expect(restarted.snapshot().totalConcurrentViewers == 0)
        restarted.observe(event("play", at: 1100, position: 90))
        restarted.observe(event("heartbeat", at: 1110, position: 100))
        snapshot = restarted.snapshot()
        #expect(snapshot.playsStarted.isEmpty && snapshot.totalConcurrentViewers == 1 && snapshot.watchTimeSeconds["movie"] == 60, "\(snapshot)")

        // A rebalance: the partition comes back, its session's next event is a heartbeat.
        let rebalanced = ContentAggregator()
        rebalanced.observe(event("play", at: 1000, contentType: "episode"))
        rebalanced.observe(event("heartbeat", at: 1020, contentType: "episode", position: 20))
        rebalanced.forget(partitions: [Int32(0)])
        rebalanced.observe(event("heartbeat", at: 1040, contentType: "episode", position: 600))
        rebalanced.observe(event("heartbeat", at: 1060, contentType: "episode", position: 620))
        snapshot = rebalanced.snapshot()
        #expect(snapshot.concurrentViewers["episode"] == 1 && snapshot.watchTimeSeconds["episode"] == 40 && snapshot.playsStarted["episode"] == 1, "\(snapshot)")

        // An SDK that sends a batch every 100 s: the receive-time expiry ends its session between them.
        let batched = ContentAggregator()
        // Every 10 s, received with its batch (the first at 1100 with the play at 1000, the next at 1200).
        func sent(_ index: Int) -> ContentObservation {
            let time = 1000 + Double(index) * 10
            return event(index == 0 ? "play" : "heartbeat", at: time, position: time - 1000, received: 1000 + Double(index / 10 + 1) * 100)
        }
        batched.observe((0..<10).map(sent))
        batched.expire(now: 1191 * 1_000_000)
        #expect(batched.snapshot().activeSessions == 0 && batched.snapshot().watchTimeSeconds["movie"] == 90)
        batched.observe((10..<20).map(sent))
        snapshot = batched.snapshot()
        #expect(snapshot.concurrentViewers["movie"] == 1 && snapshot.watchTimeSeconds["movie"] == 180 && snapshot.playsStarted["movie"] == 1, "\(snapshot)")

        // A heartbeat that overtook its session's play: the late play is still its play start, once.
        let overtaken = ContentAggregator()
        overtaken.observe(event("heartbeat", at: 1010, position: 10))
        overtaken.observe(event("play", at: 1000, position: 0))
        overtaken.observe(event("play", at: 1005, position: 5))
        snapshot = overtaken.snapshot()
        #expect(snapshot.playsStarted["movie"] == 1 && snapshot.totalConcurrentViewers == 1, "\(snapshot)")
        // Sent together, the heartbeat delivered first, both stamped alike: the play is its start.
        let together = ContentAggregator()
        together.observe(event("heartbeat", at: 1000))
        together.observe(event("play", at: 1000))
        #expect(together.snapshot().playsStarted["movie"] == 1)
        // A resume after a pause, then its resend: no play start (the session's play came before).
        let resumed = ContentAggregator()
        resumed.observe(event("heartbeat", at: 1000))
        resumed.observe(event("pause", at: 1010))
        resumed.observe(event("play", at: 1020))
        resumed.observe(event("heartbeat", at: 1030))
        resumed.observe(event("play", at: 1020))
        #expect(resumed.snapshot().playsStarted.isEmpty && resumed.snapshot().totalConcurrentViewers == 1, "\(resumed.snapshot())")

        // Not a seek: one scrubs while paused, or on the end screen, and a rewatch's play after it
        // is a play start (a review: the seek made a viewer, and the play counted nothing).
        let scrubbed = ContentAggregator()
        scrubbed.observe(event("play", at: 1000))
        scrubbed.observe(event("stop", at: 1040))
        scrubbed.observe(event("seek", at: 1050))
        #expect(scrubbed.snapshot().totalConcurrentViewers == 0)
        scrubbed.observe(event("play", at: 1060))
        #expect(scrubbed.snapshot().playsStarted["movie"] == 2 && scrubbed.snapshot().totalConcurrentViewers == 1, "\(scrubbed.snapshot())")
        // Nor a heartbeat whose timer raced its session's stop (it made a viewer for 90 s).
        let raced = ContentAggregator()
        raced.observe(event("play", at: 1000))
        raced.observe(event("stop", at: 1010))
        raced.observe(event("heartbeat", at: 1010.2))
        #expect(raced.snapshot().totalConcurrentViewers == 0 && raced.snapshot().playsStarted["movie"] == 1, "\(raced.snapshot())")
    }

    @Test("out-of-order events never make watch time negative")
    func outOfOrder() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 100))
        aggregator.observe(event("pause", at: 90))  // late: ignored for state and time
        aggregator.observe(event("play", at: 80))  // late duplicate
        var snapshot = aggregator.snapshot()
        #expect(snapshot.watchTimeSeconds["movie", default: 0] == 0)
        #expect(snapshot.concurrentViewers["movie"] == 1)
        #expect(snapshot.playsStarted["movie"] == 1)
        #expect(snapshot.eventsByType == ["play": 2, "pause": 1])
        aggregator.observe(event("stop", at: 110))
        snapshot = aggregator.snapshot()
        #expect(snapshot.watchTimeSeconds["movie"] == 10)

        // A pause that overtakes its play: the late play still counts as the play start.
        aggregator.observe(event("pause", at: 30, session: "s9"))
        aggregator.observe(event("play", at: 0, session: "s9"))
        snapshot = aggregator.snapshot()
        #expect(snapshot.playsStarted["movie"] == 2)
        #expect(snapshot.watchTimeSeconds.values.allSatisfy { $0 >= 0 })
        #expect(snapshot.concurrentViewers["movie", default: 0] == 0)
    }

    @Test("top content ranks contents by sessions playing them now")
    func topContent() {
        let aggregator = ContentAggregator()
        for index in 0..<3 { aggregator.observe(event("play", at: 0, session: "a\(index)", content: "A", title: "Alpha")) }
        aggregator.observe(event("play", at: 0, session: "b0", content: "B", contentType: "episode", title: "Beta"))
        aggregator.observe(event("play", at: 0, session: "b1", content: "B", contentType: "episode", title: "Beta"))
        aggregator.observe(event("pause", at: 5, session: "b1", content: "B", contentType: "episode"))
        aggregator.observe(event("play", at: 0, session: "c0", content: "C"))
        aggregator.observe(event("stop", at: 5, session: "c0", content: "C"))
        let snapshot = aggregator.snapshot()
        #expect(snapshot.topContent == [
            TopContent(contentID: "A", title: "Alpha", contentType: "movie", viewers: 3),
            TopContent(contentID: "B", title: "Beta", contentType: "episode", viewers: 1),
        ])
        #expect(aggregator.snapshot(top: 1).topContent.count == 1)
        #expect(snapshot.totalConcurrentViewers == 4)
        #expect(snapshot.activeSessions == 5)
    }
}

@Suite("ContentAggregator throughput")
struct ContentAggregatorThroughputTests {
    @Test("observes a realistic mix quickly (prints events/s; asserts only a very low floor)")
    func throughput() {
        let sessions = 8_000
        let perSession = 25
        var observations: [ContentObservation] = []
        observations.reserveCapacity(sessions * perSession)
        let types = ["movie", "episode", "ad"]
        for step in 0..<perSession {
            let kind = step == perSession - 1 ? "stop" : (step % 5 == 3 ? "pause" : "play")
            for session in 0..<sessions {
                observations.append(event(
                    kind, at: Double(step * 10), session: "session-\(session)", content: "content-\(session % 500)",
                    contentType: types[session % 3], position: Double(step * 10), duration: Int64(perSession * 10),
                    title: "Title \(session % 500)"
                ))
            }
        }
        let aggregator = ContentAggregator()
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            var index = 0
            while index < observations.count {
                let end = min(index + 5_000, observations.count)
                aggregator.observe(Array(observations[index..<end]))
                index = end
            }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = Double(observations.count) / seconds
        print("ContentAggregator: \(observations.count) events, \(sessions) sessions in \(seconds) s = \(Int(rate)) events/s (debug build)")
        let snapshot = aggregator.snapshot()
        #expect(snapshot.eventsByType.values.reduce(0, +) == observations.count)
        #expect(snapshot.activeSessions == 0)
        #expect(snapshot.playsStarted.values.reduce(0, +) == sessions)
        #expect(snapshot.completions.values.reduce(0, +) == sessions)
        #expect(rate > 20_000)
    }

    @Test("long titles are cut to 200 bytes")
    func longTitles() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 0, title: String(repeating: "é", count: 500)))
        let title = aggregator.snapshot().topContent.first?.title ?? ""
        #expect(title.utf8.count <= 200)
        #expect(title.hasPrefix("éé"))
    }

    @Test("the breakdown by content type, event source, language and primary genre adds up to the totals")
    func breakdownAddsUp() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 0, session: "a", source: "ios", language: "fr", genre: "comedy"))
        aggregator.observe(event("play", at: 0, session: "b", source: "web", language: "en", genre: "drama"))
        aggregator.observe(event("play", at: 0, session: "c", contentType: "episode", source: "web", language: "", genre: ""))
        aggregator.observe(event("pause", at: 30, session: "a", source: "ios", language: "fr", genre: "comedy"))
        aggregator.observe(event("stop", at: 40, session: "b", position: 3500, source: "web", language: "en", genre: "drama"))
        let snapshot = aggregator.snapshot()
        let comedy = ContentDimensions(contentType: "movie", eventSource: "ios", language: "fr", genre: "comedy")
        let drama = ContentDimensions(contentType: "movie", eventSource: "web", language: "en", genre: "drama")
        let unknown = ContentDimensions(contentType: "episode", eventSource: "web", language: "none", genre: "none")
        #expect(snapshot.breakdown[comedy] == ContentFigures(concurrentViewers: 0, playsStarted: 1, watchTimeSeconds: 30, completions: 0))
        #expect(snapshot.breakdown[drama] == ContentFigures(concurrentViewers: 0, playsStarted: 1, watchTimeSeconds: 40, completions: 1))
        #expect(snapshot.breakdown[unknown] == ContentFigures(concurrentViewers: 1, playsStarted: 1, watchTimeSeconds: 0, completions: 0))
        #expect(snapshot.breakdown.count == 3)
        for contentType in ["movie", "episode"] {
            let rows = snapshot.breakdown.filter { $0.key.contentType == contentType }.map(\.value)
            #expect(rows.map(\.concurrentViewers).reduce(0, +) == snapshot.concurrentViewers[contentType, default: 0])
            #expect(rows.map(\.playsStarted).reduce(0, +) == snapshot.playsStarted[contentType, default: 0])
            #expect(rows.map(\.watchTimeSeconds).reduce(0, +) == snapshot.watchTimeSeconds[contentType, default: 0])
            #expect(rows.map(\.completions).reduce(0, +) == snapshot.completions[contentType, default: 0])
        }
    }

    @Test("breakdown dimensions are bounded: new values become 'other' past the limit per dimension and per combination")
    func breakdownIsBounded() {
        let aggregator = ContentAggregator()
        let limit = ContentAggregator.maxDimensionValues
        for index in 0..<(limit + 10) {
            aggregator.observe(event("play", at: 0, session: "g\(index)", genre: "genre-\(index)"))
        }
        var snapshot = aggregator.snapshot()
        let genres = Set(snapshot.breakdown.keys.map(\.genre))
        #expect(genres.count == limit + 1)
        #expect(genres.contains("other"))
        let other = ContentDimensions(contentType: "movie", eventSource: "web", language: "en", genre: "other")
        #expect(snapshot.breakdown[other]?.playsStarted == 10)
        #expect(snapshot.breakdown.values.map(\.concurrentViewers).reduce(0, +) == limit + 10)

        // Combinations: 16 sources × 24 languages × 6 genres would be 2,304 series; the limit holds.
        let many = ContentAggregator()
        let genreCount = 6
        let sources = EventSourceLabels.builtIn
        for source in sources {
            for language in 0..<limit {
                for genre in 0..<genreCount {
                    many.observe(event(
                        "play", at: 0, session: "s\(source)-\(language)-\(genre)", source: source, language: "l\(language)",
                        genre: "g\(genre)"))
                }
            }
        }
        snapshot = many.snapshot()
        let combinations = sources.count * limit * genreCount
        #expect(combinations > ContentAggregator.maxBreakdownSeries)
        #expect(snapshot.breakdown.count <= ContentAggregator.maxBreakdownSeries + 1)
        #expect(snapshot.breakdown.values.map(\.playsStarted).reduce(0, +) == combinations)
        let collapsed = ContentDimensions(contentType: "movie", eventSource: "other", language: "other", genre: "other")
        #expect(snapshot.breakdown[collapsed]?.playsStarted == combinations - ContentAggregator.maxBreakdownSeries)
    }

    @Test("the sessions of partitions revoked in a rebalance end at once (another member counts them now): they stayed until the session timeout, counted twice, and summed viewers ran 20-30 % high through a rolling restart")
    func revokedPartitionsEndTheirSessions() {
        let aggregator = ContentAggregator()
        var observations: [ContentObservation] = []
        for (index, partition) in [Int32(0), 0, 1, 1, 1].enumerated() {
            var play = event("play", at: 0, session: "s\(index)", content: "c\(index)")
            play.partition = partition
            observations.append(play)
        }
        aggregator.observe(observations)
        #expect(aggregator.snapshot().activeSessions == 5 && aggregator.snapshot().concurrentViewers["movie"] == 5)
        aggregator.forget(partitions: [Int32(1)])
        let after = aggregator.snapshot()
        #expect(after.activeSessions == 2 && after.concurrentViewers["movie"] == 2, "\(after)")
        // Counters already counted stay: the plays happened.
        #expect(after.playsStarted["movie"] == 5)
        aggregator.forget(partitions: [Int32]())
        #expect(aggregator.snapshot().activeSessions == 2)
    }

    @Test("a breakdown value longer than 64 bytes, or with a quote, backslash or control character, is 'other': a client cannot make /metrics huge with long label values")
    func labelValuesAreShort() {
        let aggregator = ContentAggregator()
        let long = String(repeating: "\"", count: 1024)
        aggregator.observe(event("play", at: 0, session: "a", source: long, language: "x" + String(repeating: "y", count: 64), genre: "a\\b"))
        aggregator.observe(event("play", at: 0, session: "b", source: "tv\napp", language: "pt-BR", genre: "Comédie & Drame"))
        aggregator.observe(event("play", at: 0, session: "c", source: "ios", language: String(repeating: "s", count: 64), genre: "drama"))
        // C1 controls too (U+0085, and U+009B, the 8-bit terminal escape): they passed (an outside
        // review); the letters just past them (U+00A0 on) are taken, as "Comédie" shows.
        aggregator.observe(event("play", at: 0, session: "d", source: "ios", language: "nel\u{85}x", genre: "csi\u{9B}31m"))
        let keys = Set(aggregator.snapshot().breakdown.keys)
        #expect(keys == [
            ContentDimensions(contentType: "movie", eventSource: "other", language: "other", genre: "other"),
            ContentDimensions(contentType: "movie", eventSource: "other", language: "pt-BR", genre: "Comédie & Drame"),
            ContentDimensions(contentType: "movie", eventSource: "ios", language: String(repeating: "s", count: 64), genre: "drama"),
            ContentDimensions(contentType: "movie", eventSource: "ios", language: "other", genre: "other"),
        ], "\(keys)")
    }

    @Test("event_source in the breakdowns is the edge's: a known source, else 'other'; made-up sources take no slot from real ones")
    func eventSourcesAreTheEdges() {
        let aggregator = ContentAggregator()
        // One request of made-up sources took every slot, and fire_tv then showed as 'other' (a review).
        for index in 0..<30 {
            aggregator.observe(event("play", at: 0, session: "junk-\(index)", source: "junk-src-\(index)", language: "en", genre: "drama"))
        }
        for source in ["fire_tv", "WEB_APP", " web ", ""] {
            aggregator.observe(event("play", at: 0, session: "real-\(source)", source: source, language: "en", genre: "drama"))
        }
        let plays = aggregator.snapshot().breakdown.reduce(into: [String: Int]()) { $0[$1.key.eventSource, default: 0] += $1.value.playsStarted }
        #expect(plays == ["other": 33, "fire_tv": 1], "\(plays)")
    }

    @Test("a value added with --event-source is a source of the breakdowns too; without it, 'other'")
    func addedEventSources() throws {
        let sources = try EventSourceLabels(adding: ["samsung_tizen"])
        for (aggregator, want) in [(ContentAggregator(eventSources: sources), "samsung_tizen"), (ContentAggregator(), "other")] {
            aggregator.observe(event("play", at: 0, session: "a", source: "samsung_tizen", language: "en", genre: "drama"))
            aggregator.observe(event("play", at: 0, session: "b", source: "lg_webos", language: "en", genre: "drama"))
            let plays = aggregator.snapshot().breakdown.reduce(into: [String: Int]()) { $0[$1.key.eventSource, default: 0] += $1.value.playsStarted }
            #expect(plays == (want == "other" ? ["other": 2] : ["samsung_tizen": 1, "other": 1]), "\(plays)")
        }
    }

    @Test("content types and event types are bounded at 32 values; a figure appears only for the types it counted")
    func labelsAreBounded() {
        let aggregator = ContentAggregator()
        // A content type seen only in a pause counts no play: it does not use up the bound, and it
        // appears in no figure (its session is not playing).
        aggregator.observe(event("pause", at: 0, session: "paused", contentType: "trailer"))
        for index in 0..<40 {
            aggregator.observe(event("play", at: 0, session: "t\(index)", contentType: "type-\(index)"))
        }
        // Another session of a content type that got in before the bound keeps its own label.
        aggregator.observe(event("play", at: 0, session: "again", contentType: "type-3"))
        // The early pause-only type now starts a play: the bound is reached, so it becomes 'other'.
        aggregator.observe(event("play", at: 0, session: "late", contentType: "trailer"))
        var snapshot = aggregator.snapshot()
        #expect(snapshot.playsStarted.count == 33)
        #expect(snapshot.playsStarted["other"] == 9)
        #expect(snapshot.playsStarted["type-3"] == 2)
        #expect(snapshot.playsStarted["trailer"] == nil)
        #expect(snapshot.concurrentViewers["other"] == 9)
        #expect(snapshot.concurrentViewers["trailer"] == nil)
        #expect(snapshot.completions.isEmpty)
        #expect(snapshot.watchTimeSeconds.isEmpty)
        #expect(snapshot.concurrentViewers.values.reduce(0, +) == 42)

        // A completion creates its content type's completion figure, and nothing else.
        aggregator.observe(event("stop", at: 10, session: "t0", contentType: "type-0", position: 3500))
        snapshot = aggregator.snapshot()
        #expect(snapshot.completions == ["type-0": 1])
        #expect(snapshot.watchTimeSeconds == ["type-0": 10])
        #expect(snapshot.concurrentViewers["type-0"] == 0)

        let events = ContentAggregator()
        for index in 0..<40 {
            events.observe(event("kind-\(index)", at: Double(index), session: "e"))
        }
        events.observe(event("kind-0", at: 50, session: "e"))
        events.observe(event("kind-39", at: 51, session: "e"))
        let byType = events.snapshot().eventsByType
        #expect(byType.count == 33)
        #expect(byType["kind-0"] == 2)
        #expect(byType["kind-31"] == 1)
        #expect(byType["kind-32"] == nil)
        #expect(byType["other"] == 9)
    }
}

@Suite("SessionKey")
struct SessionKeyTests {
    func fromBytes(_ text: String) -> SessionKey {
        Array(text.utf8).withUnsafeBytes { SessionKey(utf8: $0) }
    }

    @Test("a lowercase UUID is kept as 128 bits and gives its text back")
    func lowercaseUUID() {
        let text = "8f14e45f-ceea-467f-a0e6-0123456789ab"
        let key = SessionKey(text)
        #expect(key.isUUID)
        #expect(key == fromBytes(text))
        #expect(key.description == text)
        #expect(key.hashValue == fromBytes(text).hashValue)
        #expect(key != SessionKey("8f14e45f-ceea-467f-a0e6-0123456789ac"))
        #expect(SessionKey("00000000-0000-0000-0000-000000000000").description == "00000000-0000-0000-0000-000000000000")
        #expect(SessionKey("ffffffff-ffff-ffff-ffff-ffffffffffff").description == "ffffffff-ffff-ffff-ffff-ffffffffffff")
    }

    @Test("keys are equal exactly when their texts are", arguments: [
        "8F14E45F-CEEA-467F-A0E6-0123456789AB",  // uppercase: text, not the lowercase UUID's bits
        "8f14e45f-ceea-467f-a0e6-0123456789a",  // 35 characters
        "8f14e45f-ceea-467f-a0e6-0123456789abc",  // 37
        "8f14e45fceea-467f-a0e6-0123456789ab-",  // a dash out of place
        "8f14e45g-ceea-467f-a0e6-0123456789ab",  // not hexadecimal
        "user_123/web_browser_xyz",
        "",
        "séance-🎬",
    ])
    func textKeys(text: String) {
        let lowercase = SessionKey("8f14e45f-ceea-467f-a0e6-0123456789ab")
        let key = SessionKey(text)
        #expect(!key.isUUID)
        #expect(key == fromBytes(text))
        #expect(key.description == text)
        #expect(key != lowercase)
        #expect(key != SessionKey(text + "x"))
    }

    /// The plain reading of a lowercase UUID, a byte at a time, to check the word-at-a-time one against.
    static func referenceUUID(_ bytes: [UInt8]) -> (UInt64, UInt64)? {
        guard bytes.count == 36 else { return nil }
        var words: [UInt64] = [0, 0]
        var digits = 0
        for (index, byte) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(index) {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            guard let value = "0123456789abcdef".utf8.firstIndex(of: byte) else { return nil }
            let nibble = UInt64("0123456789abcdef".utf8.distance(from: "0123456789abcdef".utf8.startIndex, to: value))
            words[digits / 16] = words[digits / 16] << 4 | nibble
            digits += 1
        }
        return (words[0], words[1])
    }

    @Test("every byte value at every position of a UUID reads as the plain byte-at-a-time reading does")
    func uuidBytes() {
        // Seeded, so that a failure can be replayed.
        var generator = SeededRandom(seed: 2026)
        var samples = ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
                       "8f14e45f-ceea-467f-a0e6-0123456789ab", "09afaf90-9a0f-f09a-a9f0-0f9aa9f00f9a"]
        for _ in 0..<4 {
            let bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
            samples.append(UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                                       bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
                .uuidString.lowercased())
        }
        for sample in samples {
            let valid = Array(sample.utf8)
            let expected = Self.referenceUUID(valid)
            #expect(expected != nil)
            let got = valid.withUnsafeBytes { SessionKey.lowercaseUUID($0) }
            #expect(got?.0 == expected?.0 && got?.1 == expected?.1, "\(sample)")
            for position in 0..<36 {
                for value in 0...255 {
                    var bytes = valid
                    bytes[position] = UInt8(value)
                    let want = Self.referenceUUID(bytes)
                    let have = bytes.withUnsafeBytes { SessionKey.lowercaseUUID($0) }
                    if want?.0 != have?.0 || want?.1 != have?.1 {
                        Issue.record("\(sample) with byte \(value) at \(position): \(String(describing: have)) against \(String(describing: want))")
                        return
                    }
                }
            }
            // Two changed bytes, at random, many times.
            for _ in 0..<2_000 {
                var bytes = valid
                for _ in 0..<2 { bytes[Int.random(in: 0..<36, using: &generator)] = UInt8.random(in: 0...255, using: &generator) }
                let want = Self.referenceUUID(bytes)
                let have = bytes.withUnsafeBytes { SessionKey.lowercaseUUID($0) }
                #expect(want?.0 == have?.0 && want?.1 == have?.1, "\(bytes)")
            }
        }
    }

    @Test("events without a session_id are the session of their user and device, apart from every other pair and every session_id, whatever characters the ids hold")
    func userDeviceKeys() {
        #expect(SessionKey(userID: "a/b", deviceID: "c") != SessionKey(userID: "a", deviceID: "b/c"))
        #expect(SessionKey(userID: "a", deviceID: "b") != SessionKey("a/b"))
        #expect(SessionKey(userID: "a", deviceID: "b") == SessionKey(userID: "a", deviceID: "b"))
        #expect(SessionKey(userID: "a", deviceID: "b") != SessionKey(userID: "b", deviceID: "a"))
        #expect(SessionKey(userID: "1:a", deviceID: "b") != SessionKey(userID: "1", deviceID: ":ab"))
        #expect(SessionKey(userID: "ab", deviceID: "") != SessionKey(userID: "a", deviceID: "b"))
        #expect(SessionKey(userID: "é/x", deviceID: "d:1").description == "user_id é/x, device_id d:1")
        #expect(MemoryLayout<SessionKey>.size <= 17)
        // A viewer's pause does not end another's play (user x/y on z against user x on y/z).
        let aggregator = ContentAggregator()
        var play = event("play", at: 1000)
        play.sessionKey = SessionKey(userID: "x/y", deviceID: "z")
        var pause = event("pause", at: 1010)
        pause.sessionKey = SessionKey(userID: "x", deviceID: "y/z")
        aggregator.observe(play)
        aggregator.observe(pause)
        let snapshot = aggregator.snapshot()
        #expect(snapshot.playsStarted["movie"] == 1 && snapshot.concurrentViewers["movie"] == 1 && snapshot.activeSessions == 2, "\(snapshot)")
        #expect(snapshot.watchTimeSeconds["movie"] ?? 0 == 0, "\(snapshot.watchTimeSeconds)")
    }

    @Test("the aggregator tells sessions apart by key")
    func sessionsByKey() {
        let aggregator = ContentAggregator()
        aggregator.observe(event("play", at: 1000, session: "8f14e45f-ceea-467f-a0e6-0123456789ab"))
        aggregator.observe(event("play", at: 1001, session: "8F14E45F-CEEA-467F-A0E6-0123456789AB"))
        aggregator.observe(event("pause", at: 1002, session: "8f14e45f-ceea-467f-a0e6-0123456789ab"))
        let snapshot = aggregator.snapshot()
        #expect(snapshot.activeSessions == 2)
        #expect(snapshot.concurrentViewers["movie"] == 1)
    }
}
