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
}

@Suite("Rollups")
struct RollupTests {
    /// The definitions of docs/lake.md, computed the plain way: every event in log order, the
    /// session's previous event (same content, not older) for watch time, sets for distinct counts.
    struct Reference {
        struct Key: Hashable { var hour: Int64; var content: String }
        struct Cell { var events = 0; var plays = 0; var watch = 0.0; var sessions = Set<String>(); var viewers = Set<String>(); var completed = Set<String>() }
        var cells: [Key: Cell] = [:]
        var last: [String: EventRecordFields] = [:]

        mutating func add(_ e: EventRecordFields) {
            let hour = e.receivedAtMicros - e.receivedAtMicros % RollupAggregator.hourMicros
            let session = e.sessionID ?? e.deviceID
            var watched = 0.0
            var replace = true
            if let previous = last[session], previous.contentID == e.contentID {
                if e.timestampMicros >= previous.timestampMicros {
                    if previous.eventType == "play" || previous.eventType == "heartbeat" {
                        watched = min(max(e.currentTimestamp - previous.currentTimestamp, 0),
                                      Double(e.timestampMicros - previous.timestampMicros) / 1e6, RollupAggregator.maxWatchGapSeconds)
                    }
                } else {
                    replace = false
                }
            }
            if replace { last[session] = e }
            let key = Key(hour: hour, content: e.contentID)
            cells[key, default: Cell()].events += 1
            if e.eventType == "play" { cells[key]!.plays += 1 }
            cells[key]!.watch += watched
            cells[key]!.sessions.insert(session)
            cells[key]!.viewers.insert(e.userID)
            if e.durationSeconds > 0 && e.currentTimestamp >= RollupAggregator.completionRatio * Double(e.durationSeconds) {
                cells[key]!.completed.insert(session)
            }
        }
    }

    @Test("The aggregator equals the plain definitions: content switches, late and out-of-order events, shared sessions, several hours")
    func aggregatorMatchesDefinitions() throws {
        var random = SeededRandom(state: 99)
        let aggregator = RollupAggregator(graceMicros: Int64(3_600) * 1_000_000 * 10)
        var reference = Reference()
        let base: Int64 = 1_764_000_000_000_000 - 1_764_000_000_000_000 % RollupAggregator.hourMicros
        let types = ["play", "pause", "heartbeat", "seek", "stop", "play", "heartbeat"]
        var clock = base
        var rows: [Int64: [RollupRow]] = [:]
        for index in 0..<20_000 {
            clock += Int64(random.next() % 2_000_000)  // received_at advances, up to 2 s per event
            let session = "s\(random.next() % 300)"
            let useDevice = random.next() % 10 == 0
            let event = EventRecordFields(
                eventID: "e\(index)", eventType: types[Int(random.next() % UInt64(types.count))],
                // Event time jitters around the receive time: some events arrive out of order.
                timestampMicros: clock - Int64(random.next() % 20_000_000), receivedAtMicros: clock,
                userID: random.next() % 10 == 0 ? "u\(random.next() % 120)" : "u-\(session)", deviceID: "d-\(session)", sessionID: useDevice ? nil : session,
                ipAddress: "10.0.0.1", contentID: "c\(random.next() % 4 == 0 ? random.next() % 12 : UInt64(session.hashValue & 7))",
                contentType: "movie", title: "T", genres: ["drama"], durationSeconds: 600,
                language: "en", currentTimestamp: Double(random.next() % 640), eventSource: "web"
            )
            var bytes: [UInt8] = []
            EventRecordEncoder.encode(event, into: &bytes)
            try bytes.withUnsafeBytes { aggregator.add(try EventRecordView($0), offset: Int64(index)) }
            reference.add(event)
            // As the writer does at every flush: the latest rows of an hour replace its file.
            if index % 4_999 == 0 { for (hour, hourRows) in aggregator.takeChanges() { rows[hour] = hourRows } }
        }
        for (hour, hourRows) in aggregator.takeChanges() { rows[hour] = hourRows }
        #expect(rows.values.reduce(0) { $0 + $1.count } == reference.cells.count)
        #expect(rows.count > 3, "the events should span several hours")
        for (key, cell) in reference.cells {
            let row = rows[key.hour]?.first { $0.contentID == key.content }
            #expect(row?.events == Int64(cell.events), "\(key)")
            #expect(row?.plays == Int64(cell.plays), "\(key)")
            #expect(row?.sessions == Int64(cell.sessions.count), "\(key)")
            #expect(row?.uniqueViewers == Int64(cell.viewers.count), "\(key)")
            #expect(row?.completions == Int64(cell.completed.count), "\(key)")
            #expect(abs((row?.watchTimeSeconds ?? -1) - cell.watch) < 1e-6, "\(key)")
        }
    }
}
