import Foundation
import Logging
import NIOPosix
import PlayheadEvents
import PlayheadLog
import PlayheadTestSupport
import ServiceLifecycle
import Synchronization
import Testing
import PlayheadLake

/// The real embedded log underneath, with its consumers wrapped to behave as a Kafka log's can.
final class WrappedLog: LogBackend {
    let base: EmbeddedLog
    let wrap: @Sendable (_ consumer: any LogConsumer, _ group: String?) -> any LogConsumer
    /// Without an identity, as the topic of a Kafka log is to its `store` processes, each with its
    /// own lake writer: no claim of the lake (a run per writer) stops the second writer.
    let hidesIdentity: Bool
    /// Run once, before the first note is written (the lake writer notes its run after it read the
    /// lake's claim and before it writes its own).
    let beforeFirstNote: Mutex<(@Sendable () throws -> Void)?>
    init(
        _ base: EmbeddedLog, hidesIdentity: Bool = false, beforeFirstNote: (@Sendable () throws -> Void)? = nil,
        wrap: @escaping @Sendable (_ consumer: any LogConsumer, _ group: String?) -> any LogConsumer
    ) {
        self.base = base
        self.hidesIdentity = hidesIdentity
        self.beforeFirstNote = Mutex(beforeFirstNote)
        self.wrap = wrap
    }
    var displayName: String { base.displayName }
    var identity: String? { hidesIdentity ? nil : base.identity }
    var awaitsIdentity: Bool { hidesIdentity ? false : base.awaitsIdentity }
    func producer(for topic: LogTopic) throws(LogError) -> any LogProducer { try base.producer(for: topic) }
    func consumer(for topic: LogTopic, group: String?) throws(LogError) -> any LogConsumer {
        wrap(try base.consumer(for: topic, group: group), group)
    }
    func readNote(_ name: String) throws(LogError) -> [UInt8]? { try base.readNote(name) }
    func writeNote(_ name: String, _ contents: [UInt8]) throws(LogError) {
        if let hook = beforeFirstNote.withLock({ hook in defer { hook = nil }; return hook }) { try? hook() }
        try base.writeNote(name, contents)
    }
}

/// A log that hands a partition over together with records fetched from the group's committed
/// offset, in one poll, as Kafka does (the embedded log reports the assignment alone): the real
/// embedded log underneath, with its first two polls of a group merged.
enum AssignmentWithRecordsLog {
    static func over(_ base: EmbeddedLog) -> WrappedLog {
        WrappedLog(base) { consumer, group in
            group == nil ? consumer : PollWrapped(consumer) { base, maxRecords, timeout throws(LogError) in
                var poll = try await base.poll(maxRecords: maxRecords, timeout: timeout)
                if !poll.assigned.isEmpty && poll.batches.isEmpty {
                    poll.batches = try await base.poll(maxRecords: maxRecords, timeout: timeout).batches
                }
                return poll
            }
        }
    }
}

/// A group's reader whose polls go through `poll`; the rest goes to the real reader.
final class PollWrapped: LogConsumer {
    let base: any LogConsumer
    let wrapped: @Sendable (_ base: any LogConsumer, _ maxRecords: Int, _ timeout: Duration) async throws(LogError) -> LogPoll
    init(_ base: any LogConsumer, poll: @escaping @Sendable (_ base: any LogConsumer, _ maxRecords: Int, _ timeout: Duration) async throws(LogError) -> LogPoll) {
        self.base = base
        wrapped = poll
    }
    var group: String? { base.group }
    func poll(maxRecords: Int, timeout: Duration) async throws(LogError) -> LogPoll { try await wrapped(base, maxRecords, timeout) }
    func seek(partition: Int32, to offset: Int64) async throws(LogError) { try await base.seek(partition: partition, to: offset) }
    func commit(_ offsets: [Int32: Int64]) async throws(LogError) { try await base.commit(offsets) }
    func committed() async throws(LogError) -> [Int32: Int64] { try await base.committed() }
    func lag() async -> Int64? { await base.lag() }
    func endOffset(partition: Int32) async -> Int64? { await base.endOffset(partition: partition) }
    func caughtUp() async -> Bool { await base.caughtUp() }
    func close() async { await base.close() }
}

/// A log whose readers (the lake writer's warm-up) first find no broker, then a stalled one, as a
/// Kafka reader does while its broker is down and then paused: `unavailable` polls, then empty ones
/// (and not at the log's end), before the real embedded log's records come.
enum StallingReadersLog {
    static func over(_ base: EmbeddedLog, failures: Int, emptyPolls: Int) -> WrappedLog {
        WrappedLog(base) { consumer, group in group == nil ? Stalling(consumer, failures: failures, emptyPolls: emptyPolls) : consumer }
    }

    final class Stalling: LogConsumer, @unchecked Sendable {
        let base: any LogConsumer
        private let polls = Mutex<(failures: Int, empty: Int)>((0, 0))
        init(_ base: any LogConsumer, failures: Int, emptyPolls: Int) {
            self.base = base
            polls.withLock { $0 = (failures, emptyPolls) }
        }
        var group: String? { base.group }
        func poll(maxRecords: Int, timeout: Duration) async throws(LogError) -> LogPoll {
            let step = polls.withLock { state -> Int in
                if state.failures > 0 { state.failures -= 1; return 0 }
                if state.empty > 0 { state.empty -= 1; return 1 }
                return 2
            }
            switch step {
            case 0: throw LogError(code: .unavailable, message: "Kafka metadata of the topic: _TIMED_OUT (a test's broker)")
            case 1: return LogPoll()
            default: return try await base.poll(maxRecords: maxRecords, timeout: timeout)
            }
        }
        func seek(partition: Int32, to offset: Int64) async throws(LogError) { try await base.seek(partition: partition, to: offset) }
        func commit(_ offsets: [Int32: Int64]) async throws(LogError) { try await base.commit(offsets) }
        func committed() async throws(LogError) -> [Int32: Int64] { try await base.committed() }
        func lag() async -> Int64? { await base.lag() }
        func endOffset(partition: Int32) async -> Int64? { await base.endOffset(partition: partition) }
        func caughtUp() async -> Bool { polls.withLock { $0.empty > 0 } ? false : await base.caughtUp() }
        func close() async { await base.close() }
    }
}

/// A real lake store whose first put (or delete) of a path that `matches` waits until `meanwhile`
/// has run: a write held up by S3 retries through an outage, or a process paused there, while
/// another process goes on (takes the partition, or the import's lease).
final class PausingStore: LakeStore {
    enum Operation { case put, delete }
    let base: any LakeStore
    let operation: Operation
    let matches: @Sendable (String) -> Bool
    let meanwhile: @Sendable () async throws -> Void
    private let paused = Mutex(false)
    init(
        _ base: any LakeStore, at operation: Operation, of matches: @escaping @Sendable (String) -> Bool,
        meanwhile: @escaping @Sendable () async throws -> Void
    ) {
        self.base = base
        self.operation = operation
        self.matches = matches
        self.meanwhile = meanwhile
    }
    private func pause(_ operation: Operation, _ path: String) async throws {
        if operation == self.operation, matches(path), paused.withLock({ let first = !$0; $0 = true; return first }) { try await meanwhile() }
    }
    var displayName: String { base.displayName }
    func put(_ path: String, _ bytes: [UInt8]) async throws {
        try await pause(.put, path)
        try await base.put(path, bytes)
    }
    func get(_ path: String) async throws -> [UInt8]? { try await base.get(path) }
    func list(prefix: String) async throws -> [String] { try await base.list(prefix: prefix) }
    func delete(_ path: String) async throws {
        try await pause(.delete, path)
        try await base.delete(path)
    }
    func lease(_ path: String, holder: String) async throws -> LakeLeaseAttempt { try await base.lease(path, holder: holder) }
    func getVersioned(_ path: String) async throws -> (bytes: [UInt8], version: String?)? { try await base.getVersioned(path) }
    func put(_ path: String, _ bytes: [UInt8], ifVersion version: String?) async throws -> String? {
        try await pause(.put, path)
        return try await base.put(path, bytes, ifVersion: version)
    }
    func delete(_ path: String, ifVersion version: String) async throws {
        try await pause(.delete, path)
        try await base.delete(path, ifVersion: version)
    }
}

/// A real lake store whose conditional writes of the lake's claim always fail as if another process
/// had written it, while its reads show none.
final class RefusingClaimStore: LakeStore {
    let base: any LakeStore
    let claimWrites = Mutex(0)
    init(_ base: any LakeStore) { self.base = base }
    var displayName: String { base.displayName }
    func put(_ path: String, _ bytes: [UInt8]) async throws { try await base.put(path, bytes) }
    func get(_ path: String) async throws -> [UInt8]? { try await base.get(path) }
    func list(prefix: String) async throws -> [String] { try await base.list(prefix: prefix) }
    func delete(_ path: String) async throws { try await base.delete(path) }
    func lease(_ path: String, holder: String) async throws -> LakeLeaseAttempt { try await base.lease(path, holder: holder) }
    func getVersioned(_ path: String) async throws -> (bytes: [UInt8], version: String?)? { try await base.getVersioned(path) }
    func put(_ path: String, _ bytes: [UInt8], ifVersion version: String?) async throws -> String? {
        try await base.put(path, bytes, ifVersion: version)
    }
    func delete(_ path: String, ifVersion version: String) async throws { try await base.delete(path, ifVersion: version) }
    func put(_ path: String, _ bytes: [UInt8], ifStill expected: [UInt8]?) async throws {
        guard path == "_playhead/log.json" else { return try await base.put(path, bytes, ifStill: expected) }
        claimWrites.withLock { $0 += 1 }
        throw LakeError(.otherWriter, "\(displayName)/\(path) was changed by another process since this one read it")
    }
}

@Suite("The lake writer takes a partition from the lake's state")
struct LakeWriterAssignmentTests {
    @Test("records handed over with the partition from a group offset ahead of the lake (another consumer in the group, offsets reset by hand) are read again from the lake's next offset: every event in the lake once")
    func recordsDeliveredWithTheAssignment() async throws {
        try await Self.withLog { log, folder, logger in
            let events = 3_000
            let producer = try log.producer(for: .events)
            for chunk in stride(from: 0, to: events, by: 500) {
                var batch = LogRecordBatch()
                for n in chunk..<(chunk + 500) { Self.append(Self.event(n), to: &batch) }
                _ = try await producer.append(batch)
            }
            // The group `lake` is at 2,000; the new lake has nothing.
            let other = try log.consumer(for: .events, group: "lake")
            _ = try await other.poll(maxRecords: 1, timeout: .milliseconds(100))
            try await other.commit([0: 2_000])
            await other.close()
            try await Self.write(AssignmentWithRecordsLog.over(log), to: folder, until: 3_000, logger: logger)

            let counts = try await Self.lakeQuery(folder, "count(*), count(distinct event_id)")
            #expect(counts == "(3000, 3000)", "rows, distinct event ids: \(counts)")
        }
    }

    /// A new embedded log in a folder of its own (removed at the end), and a quiet logger.
    static func withLog(
        segmentBytes: Int64? = nil, logger: Logger? = nil, _ body: (EmbeddedLog, String, Logger) async throws -> Void
    ) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lake-writer-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var logger = logger ?? Logger(label: "test")
        if logger.logLevel < .critical && !(logger.handler is CapturingLogHandler) { logger.logLevel = .critical }
        var configuration = EmbeddedLogConfiguration(directory: folder + "/log")
        if let segmentBytes { configuration.segmentBytes = segmentBytes }
        let log = try EmbeddedLog.open(configuration, logger: logger)
        defer { log.close() }
        try await body(log, folder, logger)
    }

    /// `SELECT <columns>` over the events of `<folder>/lake`, by DuckDB, as Python prints the row.
    static func lakeQuery(_ folder: String, _ columns: String) async throws -> String {
        try await runPython(
            """
            import duckdb, sys
            print(duckdb.sql(f"select {sys.argv[2]} from read_parquet('{sys.argv[1]}/lake/events/**/*.parquet')").fetchall()[0])
            """, arguments: [folder, columns]
        ).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func event(_ n: Int) -> EventRecordFields {
        let micros = Int64(1_700_000_000_000_000) + Int64(n) * 1_000
        return EventRecordFields(
            eventID: "e\(n)", eventType: "play", timestampMicros: micros, receivedAtMicros: micros, userID: "u",
            deviceID: "d", sessionID: "s\(n % 7)", ipAddress: "1.2.3.4", contentID: "c\(n % 3)", contentType: "movie",
            title: "T", genres: ["drama"], durationSeconds: 600, language: "en", currentTimestamp: Double(n),
            eventSource: "web"
        )
    }

    static func append(_ fields: EventRecordFields, to batch: inout LogRecordBatch) {
        batch.appendRecord(key: Array((fields.sessionID ?? fields.deviceID).utf8), value: EventRecordEncoder.encode(fields))
    }

    /// Appends the events numbered `numbers` (``event(_:)``) as one batch.
    static func appendEvents(_ numbers: Range<Int>, to producer: any LogProducer) async throws {
        var batch = LogRecordBatch()
        for n in numbers { append(event(n), to: &batch) }
        _ = try await producer.append(batch)
    }

    /// Runs a lake writer over `log` and the store `makeStore` makes, until it stops on its own (or
    /// `within` has passed: then stopped, as the old code of a test ran on), and says why it stopped.
    static func stopReason(
        _ log: any LogBackend, store makeStore: (NIOThreadPool) throws -> any LakeStore, within: Duration, logger: Logger
    ) async throws -> String {
        let threadPool = NIOThreadPool(numberOfThreads: 2)
        threadPool.start()
        let writer = LakeWriter(log: log, store: try makeStore(threadPool), configuration: LakeWriterConfiguration(), threadPool: threadPool, logger: logger)
        let group = ServiceGroup(services: [writer], logger: logger)
        let running = Task { try await group.run() }
        let watchdog = Task {
            try await Task.sleep(for: within)
            await group.triggerGracefulShutdown()
        }
        var stopped: (any Error)?
        do { try await running.value } catch { stopped = error }
        watchdog.cancel()
        try await threadPool.shutdownGracefully()
        return stopped.map { "\($0)" } ?? "ran on"
    }

    /// Runs a lake writer over `log` into `<folder>/lake` until its events state reaches `next` (and
    /// `done` holds).
    static func write(
        _ log: any LogBackend, to folder: String, until next: Int, logger: Logger, flushEvents: Int = 1_000,
        store makeStore: (FileLakeStore) -> any LakeStore = { $0 }, done: () -> Bool = { true }
    ) async throws {
        let threadPool = NIOThreadPool(numberOfThreads: 2)
        threadPool.start()
        let store = makeStore(try FileLakeStore(root: folder + "/lake", threadPool: threadPool))
        var configuration = LakeWriterConfiguration()
        configuration.flushEvents = flushEvents
        configuration.flushInterval = .milliseconds(300)
        let writer = LakeWriter(log: log, store: store, configuration: configuration, threadPool: threadPool, logger: logger)
        let group = ServiceGroup(services: [writer], logger: logger)
        let running = Task { try await group.run() }
        let state = folder + "/lake/_playhead/state/events/p0.json"
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: state, encoding: .utf8), text.contains("\"next_offset\":\(next)"), done() { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        await group.triggerGracefulShutdown()
        try await running.value
        try await threadPool.shutdownGracefully()
    }

    @Test("records in the events layout with values no event has (timestamps at the ends of Int64, invalid UTF-8, an extra that is not JSON, an unknown event type), as another producer can write to a Kafka topic, are kept as damaged; the writer goes on, and DuckDB reads the lake")
    func recordsWithImpossibleValues() async throws {
        try await Self.withLog { log, folder, logger in
            var batch = LogRecordBatch()
            var bad: [EventRecordFields] = []
            var f = Self.event(1_000)
            f.receivedAtMicros = .min
            bad.append(f)
            f = Self.event(1_001)
            f.timestampMicros = -(1 << 62)
            bad.append(f)
            f = Self.event(1_002)
            f.timestampMicros = 1 << 62
            bad.append(f)
            f = Self.event(1_003)
            f.extra = "not json{"
            bad.append(f)
            f = Self.event(1_004)
            f.eventType = "zzz"
            bad.append(f)
            for n in 0..<100 {
                Self.append(Self.event(n), to: &batch)
                if n % 20 == 10 { Self.append(bad[n / 20], to: &batch) }
            }
            var invalidUTF8 = EventRecordEncoder.encode(Self.event(1_005))
            invalidUTF8[invalidUTF8.firstRange(of: Array("drama".utf8))!.lowerBound] = 0xFF
            batch.appendRecord(key: Array("s".utf8), value: invalidUTF8)
            _ = try await log.producer(for: .events).append(batch)
            try await Self.write(log, to: folder, until: 106, logger: logger)

            let damaged = try FileManager.default.contentsOfDirectory(atPath: folder + "/lake/_playhead/damaged/events")
            #expect(damaged.count == 6, "\(damaged)")
            let counts = try await Self.lakeQuery(folder, "count(*), count(distinct event_id), count(distinct title), count(distinct genre[1]), max(extra)")
            #expect(counts == "(100, 100, 1, 1, None)", "\(counts)")

            // `log salvage` reads a kept value whole; these six are no event to any build.
            for name in damaged {
                let salvage = try await runCommand(TestEnvironment.playheadExecutable, ["log", "salvage", folder + "/lake/_playhead/damaged/events/" + name])
                #expect(salvage.status == 0 && salvage.stdout.isEmpty && salvage.stderr.contains("0 records printed (0 with an offset) (neither framed records nor, read whole, one record's value"), "\(name): \(salvage.stderr)")
            }
            // A value a build can read (as a newer build reads a record of its schema that an older
            // build kept): printed with the offset the file's name gives.
            let kept = folder + "/p0-42.record"
            _ = FileManager.default.createFile(atPath: kept, contents: Data(EventRecordEncoder.encode(Self.event(7))))
            let salvage = try await runCommand(TestEnvironment.playheadExecutable, ["log", "salvage", kept])
            #expect(salvage.status == 0 && salvage.stderr.contains("1 records printed (1 with an offset) (read whole"), "\(salvage.stderr)")
            let line = try #require(try JSONSerialization.jsonObject(with: Data(salvage.stdout.utf8)) as? [String: Any])
            #expect(line["event_id"] as? String == Self.event(7).eventID && line["_offset"] as? Int == 42 && line["_byte"] as? Int == 0, "\(salvage.stdout)")
        }
    }

    @Test("a redo whose batch is split otherwise than the unfinished attempt's (another --dedup-window) deletes the attempt's files it does not write again: every event in the lake once")
    func redoDeletesTheAttemptsOtherFiles() async throws {
        try await Self.withLog { log, folder, logger in
            var batch = LogRecordBatch()
            for n in 0..<100 { Self.append(Self.event(n), to: &batch) }
            _ = try await log.producer(for: .events).append(batch)
            try await Self.write(log, to: folder, until: 100, logger: logger)
            // As if the first attempt had split the batch in two files and stopped before its state:
            // its file under the name of a split part, its intent, no state.
            let lake = folder + "/lake/"
            let file = try #require(FileManager.default.subpaths(atPath: lake + "events")?.first { $0.hasSuffix(".parquet") })
            let part = "events/" + file.replacingOccurrences(of: ".parquet", with: "-1.parquet")
            try FileManager.default.moveItem(atPath: lake + "events/" + file, toPath: lake + part)
            try FileManager.default.removeItem(atPath: lake + "_playhead/state/events/p0.json")
            try FileManager.default.createDirectory(atPath: lake + "_playhead/intents/events", withIntermediateDirectories: true)
            try Data(#"{"from":0,"to":100,"files":["\#(part)"]}"#.utf8).write(to: URL(fileURLWithPath: lake + "_playhead/intents/events/p0.json"))

            try await Self.write(log, to: folder, until: 100, logger: logger)
            #expect(!FileManager.default.fileExists(atPath: lake + part), "the attempt's file is gone")
            #expect(FileManager.default.fileExists(atPath: lake + "events/" + file), "the redo's file is there")
            let counts = try await Self.lakeQuery(folder, "count(*), count(distinct event_id)")
            #expect(counts == "(100, 100)", "\(counts)")
        }
    }

    @Test("an intent above the lake's state (the state went back or away since it was written) has its files deleted when it is cleared: the partition is written again from the state under other names (its files stayed: every row of them twice)")
    func intentAboveTheStateDeletesItsFiles() async throws {
        try await Self.withLog { log, folder, logger in
            let producer = try log.producer(for: .events)
            try await Self.appendEvents(0..<100, to: producer)
            try await Self.write(log, to: folder, until: 100, logger: logger)
            try await Self.appendEvents(100..<200, to: producer)
            // A batch [150, 200) of an attempt over a state that has since gone back to 100: its file
            // (the bytes do not matter: 100 rows) and its intent.
            let lake = folder + "/lake/"
            let file = try #require(FileManager.default.subpaths(atPath: lake + "events")?.first { $0.hasSuffix(".parquet") })
            let folderName = (file as NSString).deletingLastPathComponent
            let above = "events/\(folderName)/p0-\(String(repeating: "0", count: 17))150-\(String(repeating: "0", count: 17))200.parquet"
            try FileManager.default.copyItem(atPath: lake + "events/" + file, toPath: lake + above)
            try FileManager.default.createDirectory(atPath: lake + "_playhead/intents/events", withIntermediateDirectories: true)
            try Data(#"{"from":150,"to":200,"files":["\#(above)"]}"#.utf8).write(to: URL(fileURLWithPath: lake + "_playhead/intents/events/p0.json"))

            try await Self.write(log, to: folder, until: 200, logger: logger)
            #expect(!FileManager.default.fileExists(atPath: lake + above), "the intent's file is gone")
            let counts = try await Self.lakeQuery(folder, "count(*), count(distinct event_id)")
            #expect(counts == "(200, 200)", "rows, distinct event ids: \(counts)")
        }
    }

    @Test("a lake emptied under a batch's writes (its intent held up, then written into the empty lake): the batch's files are deleted at the check before its state, and the writer writes the partition again from offset 0, every event once (its files stayed beside the new ones: every row of them twice)")
    func lakeEmptiedUnderABatch() async throws {
        try await Self.withLog { log, folder, logger in
            let producer = try log.producer(for: .events)
            try await Self.appendEvents(0..<100, to: producer)
            try await Self.write(log, to: folder, until: 100, logger: logger)
            try await Self.appendEvents(100..<200, to: producer)
            let lake = folder + "/lake/"
            try await Self.write(
                log, to: folder, until: 200, logger: logger,
                store: { base in
                    PausingStore(base, at: .put, of: { $0 == "_playhead/intents/events/p0.json" }) {
                        for path in ["events", "rollups", "_playhead/state", "_playhead/intents", "_playhead/log.json"] {
                            try? FileManager.default.removeItem(atPath: lake + path)
                        }
                    }
                }
            )
            let counts = try await Self.lakeQuery(folder, "count(*), count(distinct event_id)")
            #expect(counts == "(200, 200)", "rows, distinct event ids: \(counts)")
        }
    }

    @Test("a graceful stop that comes before a redo has read its whole range writes nothing of it (it wrote the part read under the range's name, and the state moved to the range's end: the rest was lost); the next start redoes it whole")
    func redoCutShortByAStopWritesNothing() async throws {
        try await Self.withLog { log, folder, logger in
            var batch = LogRecordBatch()
            for n in 0..<2_000 { Self.append(Self.event(n), to: &batch) }
            _ = try await log.producer(for: .events).append(batch)
            // The intent of a first attempt cut short by a crash before any file: the redo must
            // write offsets 0..<2000 as one batch.
            let lake = folder + "/lake/"
            try FileManager.default.createDirectory(atPath: lake + "_playhead/intents/events", withIntermediateDirectories: true)
            try Data(#"{"from":0,"to":2000,"files":[]}"#.utf8).write(to: URL(fileURLWithPath: lake + "_playhead/intents/events/p0.json"))
            // A slow log (a loaded host, a Kafka fetch): 50 records per poll, one poll each 200 ms,
            // so the 5 s of reading at a stop cannot reach the intent's end.
            let slow = WrappedLog(log) { consumer, group in
                group == nil ? consumer : PollWrapped(consumer) { base, maxRecords, timeout throws(LogError) in
                    try? await Task.sleep(for: .milliseconds(200))
                    return try await base.poll(maxRecords: min(maxRecords, 50), timeout: timeout)
                }
            }
            let threadPool = NIOThreadPool(numberOfThreads: 2)
            threadPool.start()
            let store = try FileLakeStore(root: lake, threadPool: threadPool)
            let writer = LakeWriter(log: slow, store: store, configuration: LakeWriterConfiguration(), threadPool: threadPool, logger: logger)
            let group = ServiceGroup(services: [writer], logger: logger)
            let running = Task { try await group.run() }
            try await Task.sleep(for: .seconds(1))
            await group.triggerGracefulShutdown()
            try await running.value
            try await threadPool.shutdownGracefully()
            let state = try? String(contentsOfFile: lake + "_playhead/state/events/p0.json", encoding: .utf8)
            #expect(state == nil, "the state moved: \(state ?? "")")
            #expect(FileManager.default.fileExists(atPath: lake + "_playhead/intents/events/p0.json"), "the intent is kept for the next start")

            try await Self.write(log, to: folder, until: 2_000, logger: logger)
            let counts = try await Self.lakeQuery(folder, "count(*), count(distinct event_id)")
            #expect(counts == "(2000, 2000)", "\(counts)")
        }
    }


    @Test("another log that claims the lake while this writer starts (between its read of the claim and its write: its folder's disk full, the store unreachable), and commits a batch, refuses this writer before it writes anything; the claim it wrote over took the other log's state for its own, and its own records below that offset were never written")
    func claimRacedAtStartRefuses() async throws {
        try await Self.withLog { log, folder, logger in
            var batch = LogRecordBatch()
            for n in 0..<2_000 { Self.append(Self.event(n), to: &batch) }
            _ = try await log.producer(for: .events).append(batch)
            let lake = folder + "/lake/"
            // While this writer notes its run (after it read "no claim"), another log claims the
            // lake and commits 500 events of its own.
            let racing = WrappedLog(log, beforeFirstNote: {
                try FileManager.default.createDirectory(atPath: lake + "_playhead/state/events", withIntermediateDirectories: true)
                try Data(#"{"log_id":"another-log","run":"another-run"}"#.utf8).write(to: URL(fileURLWithPath: lake + "_playhead/log.json"))
                try Data(#"{"next_offset":500}"#.utf8).write(to: URL(fileURLWithPath: lake + "_playhead/state/events/p0.json"))
            }) { consumer, _ in consumer }
            // A writer that took the lake runs on: stopped after 10 s (a refused one ends at once).
            let stopped = try await Self.stopReason(racing, store: { try FileLakeStore(root: lake, threadPool: $0) }, within: .seconds(10), logger: logger)
            #expect(stopped.contains("is written from another log"), "\(stopped)")
            let claim = try String(contentsOfFile: lake + "_playhead/log.json", encoding: .utf8)
            #expect(claim.contains("another-log"), "the other log's claim was written over: \(claim)")
            let state = try String(contentsOfFile: lake + "_playhead/state/events/p0.json", encoding: .utf8)
            #expect(state == #"{"next_offset":500}"#, "\(state)")
        }
    }

    @Test("a store whose conditional writes of the claim always fail while its reads show none (a proxy that does not keep them consistent): the writer stops after a few passes with an error that says so, and notes its run once (it looped for ever, at full speed and past a stop, noting its run at every pass)")
    func claimThatNeverSticksStops() async throws {
        try await Self.withLog { log, folder, logger in
            let store = Mutex<RefusingClaimStore?>(nil)
            // Its passes pause 3 s in all; the watchdog is for the old code, which looped on (a whole
            // test run's load once stretched this past 30 s).
            let stopped = try await Self.stopReason(log, store: { pool in
                let made = RefusingClaimStore(try FileLakeStore(root: folder + "/lake", threadPool: pool))
                store.withLock { $0 = made }
                return made
            }, within: .seconds(120), logger: logger)
            #expect(stopped.contains("changed under each of this writer's 5 conditional writes"), "\(stopped)")
            let claimStore = try #require(store.withLock { $0 })
            #expect(claimStore.claimWrites.withLock { $0 } == 5)
            let runs = try #require(try log.readNote("lake-runs.json"))
            let listed = try #require(try JSONSerialization.jsonObject(with: Data(runs)) as? [String: Any])["runs"] as? [String]
            #expect(listed?.count == 1, "\(String(describing: listed))")
        }
    }

    @Test("a batch whose writes the store held up while another writer took the partition and wrote the same records in other batches: its files are deleted once its state check finds the state moved (they stayed: every row twice)")
    func heldUpBatchAfterAnotherWriterIsDeleted() async throws {
        let captured = CapturedLogs()
        let logger = Logger(label: "test") { _ in CapturingLogHandler(captured: captured) }
        try await Self.withLog(logger: logger) { log, folder, logger in
            var batch = LogRecordBatch()
            for n in 0..<100 { Self.append(Self.event(n), to: &batch) }
            _ = try await log.producer(for: .events).append(batch)
            // Two `store` processes of one topic, as it were: the first one's intent for its batch
            // [0, 100) is held up until the second has taken the partition and written it in batches
            // of 40 (its names end at 40, 80 and 100), and committed its state.
            let shared = WrappedLog(log, hidesIdentity: true) { consumer, _ in consumer }
            let lake = folder + "/lake/"
            func batchFiles() -> [String] {
                (FileManager.default.subpaths(atPath: lake + "events") ?? []).filter { $0.hasSuffix(".parquet") }.sorted()
            }
            let overlapping = "p0-\(String(repeating: "0", count: 20))-\(String(repeating: "0", count: 17))100.parquet"
            try await Self.write(
                shared, to: folder, until: 100, logger: logger,
                store: { base in
                    PausingStore(base, at: .put, of: { $0 == "_playhead/intents/events/p0.json" }) {
                        try await Self.write(shared, to: folder, until: 100, logger: logger, flushEvents: 40)
                    }
                },
                done: { captured.count(containing: "deleted the files of a batch whose writes ended after another writer") > 0 }
            )
            let files = batchFiles()
            #expect(files.count == 3, "the other writer's three files: \(files)")
            #expect(!files.contains { $0.hasSuffix(overlapping) }, "the held-up batch's file is gone: \(files)")
            let counts = try await Self.lakeQuery(folder, "count(*), count(distinct event_id)")
            #expect(counts == "(100, 100)", "rows, distinct event ids: \(counts)")
        }
    }

    @Test("a batch whose data file the store held up while another writer took the partition and wrote more of the hour: its rollup file is not written once its state check fails, so the hour keeps the other writer's counts (its older, smaller counts replaced them)")
    func heldUpBatchLeavesTheRollups() async throws {
        let captured = CapturedLogs()
        let logger = Logger(label: "test") { _ in CapturingLogHandler(captured: captured) }
        try await Self.withLog(logger: logger) { log, folder, logger in
            let producer = try log.producer(for: .events)
            var batch = LogRecordBatch()
            for n in 0..<60 { Self.append(Self.event(n), to: &batch) }
            _ = try await producer.append(batch)
            // The first writer's batch [0, 60) is held up at its data file until 40 more events of
            // the hour have come and a second writer has written all 100 (its rollups count 100).
            let shared = WrappedLog(log, hidesIdentity: true) { consumer, _ in consumer }
            try await Self.write(
                shared, to: folder, until: 100, logger: logger,
                store: { base in
                    PausingStore(base, at: .put, of: { $0.hasPrefix("events/") }) {
                        var more = LogRecordBatch()
                        for n in 60..<100 { Self.append(Self.event(n), to: &more) }
                        _ = try await producer.append(more)
                        try await Self.write(shared, to: folder, until: 100, logger: logger)
                    }
                },
                done: { captured.count(containing: "another writer has committed batches of this partition") > 0 }
            )
            let rollups = try await runPython(
                """
                import duckdb, sys
                print(duckdb.sql(f"select sum(events) from read_parquet('{sys.argv[1]}/lake/rollups/**/*.parquet')").fetchall()[0])
                """, arguments: [folder]
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(rollups == "(100,)", "the hour's events in the rollups: \(rollups)")
            let counts = try await Self.lakeQuery(folder, "count(*), count(distinct event_id)")
            #expect(counts == "(100, 100)", "rows, distinct event ids: \(counts)")
        }
    }

    @Test("a warm-up whose log is unavailable, then stalled for longer than 50 empty polls, waits for it (it stopped the writer, or ended with deduplication empty): client retries of events the lake holds are dropped after the restart")
    func warmUpWaitsForAStalledLog() async throws {
        try await Self.withLog { log, folder, logger in
            let producer = try log.producer(for: .events)
            func append(_ range: Range<Int>) async throws {
                var batch = LogRecordBatch()
                for n in range { Self.append(Self.event(n), to: &batch) }
                _ = try await producer.append(batch)
            }
            try await append(0..<1_000)
            try await Self.write(log, to: folder, until: 1_000, logger: logger)
            // The same events again (clients that did not see their 202), read by a restarted writer
            // whose warm-up first finds the log unavailable, then stalled.
            try await append(0..<1_000)
            try await Self.write(StallingReadersLog.over(log, failures: 4, emptyPolls: 120), to: folder, until: 2_000, logger: logger)
            let counts = try await Self.lakeQuery(folder, "count(*), count(distinct event_id)")
            #expect(counts == "(1000, 1000)", "rows, distinct event ids: \(counts)")
        }
    }

    @Test("a lake restored from a copy older than what the log keeps: the warm-up ends at the log's first record (it waited 10 s), the error names that record as the first kept (it named the lake's offset), and the writer goes on from there")
    func lakeOlderThanTheLog() async throws {
        let captured = CapturedLogs()
        let logger = Logger(label: "test") { _ in CapturingLogHandler(captured: captured) }
        try await Self.withLog(segmentBytes: 4096, logger: logger) { log, folder, logger in
            let producer = try log.producer(for: .events)
            func append(_ range: Range<Int>) async throws {
                for chunk in stride(from: range.lowerBound, to: range.upperBound, by: 10) {
                    var batch = LogRecordBatch()
                    for n in chunk..<(chunk + 10) { Self.append(Self.event(n), to: &batch) }
                    _ = try await producer.append(batch)  // segments of 4 KiB roll between appends
                }
            }
            try await append(0..<100)
            try await Self.write(log, to: folder, until: 100, logger: logger)
            let lake = folder + "/lake/"
            let state = lake + "_playhead/state/events/p0.json"
            let copy = try Data(contentsOf: URL(fileURLWithPath: state))
            try await append(100..<200)
            try await Self.write(log, to: folder, until: 200, logger: logger)
            // The log keeps its last segment (of four); the lake goes back to the copy at 100; a restart.
            log.close()
            let segments = try FileManager.default.contentsOfDirectory(atPath: folder + "/log/events").filter { $0.hasSuffix(".log") }.sorted()
            for name in segments.dropLast() { try FileManager.default.removeItem(atPath: folder + "/log/events/" + name) }
            let firstKept = try #require(segments.last.flatMap { Int64($0.dropLast(4)) })
            try #require(firstKept > 100, "\(segments)")
            try copy.write(to: URL(fileURLWithPath: state))
            for file in FileManager.default.subpaths(atPath: lake + "events") ?? [] where file.contains("-00000000000000000100-") {
                try FileManager.default.removeItem(atPath: lake + "events/" + file)
            }
            var logOfWriter = logger
            logOfWriter.logLevel = .debug
            var configuration = EmbeddedLogConfiguration(directory: folder + "/log")
            configuration.segmentBytes = 4096
            configuration.requiredGroups = ["lake"]  // as `serve` and `store` open it
            let reopened = try EmbeddedLog.open(configuration, logger: logger)
            defer { reopened.close() }
            try await Self.write(reopened, to: folder, until: 200, logger: logOfWriter)
            #expect(captured.count(containing: "the log no longer holds the open hours' first records") == 1)
            #expect(captured.count(containing: "log.first_kept=\(firstKept)") >= 1, "\(captured.all.filter { $0.contains("first_kept") })")
            #expect(captured.count(containing: "records 100..<\(firstKept) are missing from the log: group lake had read them (into this lake or another)") == 1)
            let counts = try await Self.lakeQuery(folder, "count(*), min(event_id)")
            #expect(counts == "(\(100 + 200 - firstKept), 'e0')", "\(counts)")
        }
    }
}
