import CompressNIO
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PlayheadLog
import PlayheadTestSupport
import Testing

@testable import PlayheadIngest

/// A log that keeps every append waiting until the test completes it: a request stays in flight
/// for as long as a test needs.
private final class HeldLog: LogProducer {
    private let held = NIOLockedValueBox<[@Sendable (Result<LogAppendResult, LogError>) -> Void]>([])
    private let appended = NIOLockedValueBox(0)
    let batches = NIOLockedValueBox<[LogRecordBatch]>([])
    let usesKeys: Bool

    init(usesKeys: Bool = true) { self.usesKeys = usesKeys }

    func append(_ batch: LogRecordBatch, completion: @escaping @Sendable (Result<LogAppendResult, LogError>) -> Void) {
        held.withLockedValue { $0.append(completion) }
        batches.withLockedValue { $0.append(batch) }
        appended.withLockedValue { $0 += 1 }
    }

    func append(
        _ batch: LogRecordBatch, executor: some LogCompletionExecutor,
        completion: @escaping @Sendable (Result<LogAppendResult, LogError>) -> Void
    ) {
        append(batch, completion: completion)
    }

    var unavailableReason: String? { nil }

    /// Waits until `count` appends have arrived in all. (Up to 60 s: at the start of the suite the
    /// server's thread and the test's tasks wait behind hundreds of tests starting at once, and a
    /// CI run once took over 10 s to get a request through.)
    func waitForAppends(_ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while appended.withLockedValue({ $0 }) < count {
            guard ContinuousClock.now < deadline else { throw TestSupportError("\(count) appends did not arrive") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Completes every waiting append successfully.
    func completeAll() {
        let waiting = held.withLockedValue { held in defer { held = [] }; return held }
        for completion in waiting { completion(.success(LogAppendResult(partition: 0, firstOffset: 0, count: 1))) }
    }

    /// Fails every waiting append with `error`.
    func failAll(_ error: LogError) {
        let waiting = held.withLockedValue { held in defer { held = [] }; return held }
        for completion in waiting { completion(.failure(error)) }
    }

    var appends: Int { appended.withLockedValue { $0 } }
}

@Suite("Back-pressure on the bytes of requests in flight")
struct InFlightBytesTests {
    @Test("the limit holds, a request alone is always let in, and concurrent reserve/release do not drift")
    func accounting() async {
        let bytes = InFlightBytes(limit: 100)
        #expect(bytes.reserve(60))
        #expect(!bytes.reserve(50))
        #expect(bytes.reserve(40))
        #expect(!bytes.reserve(1))
        bytes.release(60)
        #expect(bytes.reserve(50))
        bytes.release(50)
        bytes.release(40)
        #expect(bytes.reserve(1_000), "a request over the limit is let in when nothing else is in flight")
        #expect(!bytes.reserve(1))
        bytes.release(1_000)

        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<20_000 where bytes.reserve(3) { bytes.release(3) }
                }
            }
        }
        #expect(bytes.reserve(100), "back at zero, the whole limit fits")
        #expect(!bytes.reserve(1))
    }

    static let body = Array(#"{"event_id":"bp-1","event_type":"play","timestamp":"2024-05-01T12:00:00Z","user_id":"user_1","device_id":"device_1","session_id":"session_1","ip_address":"192.168.1.77","content_id":"media_123","content_type":"movie","title":"The Long Night","genre":["drama","thriller"],"duration_seconds":7260,"language":"en","current_timestamp":120.5,"event_source":"web_app","padding":"\#(String(repeating: "x", count: 150))"}"#.utf8)
    static let gzipped: [UInt8] = {
        var raw = ByteBuffer(bytes: body)
        return Array(try! raw.compress(with: .gzip()).readableBytesView)
    }()

    @Test("records keep their keys (session, else device) only for a log that uses keys")
    func keysOnlyWhenUsed() async throws {
        for usesKeys in [true, false] {
            let log = HeldLog(usesKeys: usesKeys)
            try await withServer(log, configure: { _ in }) { url in
                let two = "[" + String(decoding: Self.body, as: UTF8.self) + "," + String(decoding: Self.body, as: UTF8.self)
                    .replacingOccurrences(of: #""session_id":"session_1","#, with: "") + "]"
                let answer = Task { try await TestHTTP.request(url, method: .POST, headers: [("Content-Type", "application/json")], body: Array(two.utf8)) }
                try await log.waitForAppends(1)
                log.completeAll()
                #expect(try await answer.value.status == 202)
            }
            let batch = try #require(log.batches.withLockedValue { $0.first })
            #expect(batch.count == 2)
            var keys: [String] = []
            batch.forEachRecord { _, key, _ in keys.append(String(decoding: key, as: UTF8.self)) }
            #expect(keys == (usesKeys ? ["session_1", "device_1"] : ["", ""]), "usesKeys \(usesKeys)")
        }
    }

    /// Runs `body` with the events URL of a server on `log` (rejected events go there too, unless
    /// `rejected` is given).
    private func withServer(
        _ log: HeldLog, rejected: HeldLog? = nil, configure: (inout IngestConfiguration) -> Void, _ body: (String) async throws -> Void
    ) async throws {
        var configuration = IngestConfiguration()
        configuration.port = 0
        configuration.eventLoopThreads = 1
        configure(&configuration)
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let endpoint = EventsEndpoint(
            configuration: configuration, events: log, rejected: rejected ?? log, threadPool: pool, logger: Logger(label: "test")
        )
        let server = IngestServer(configuration: configuration, events: endpoint, logger: Logger(label: "test"))
        let running = Task { try await server.run() }
        do {
            try await body("http://127.0.0.1:\(try await server.localAddress.port!)/v1/events")
        } catch {
            Issue.record(error)
        }
        log.completeAll()
        rejected?.completeAll()
        running.cancel()
        _ = try? await running.value
        try await pool.shutdownGracefully()
    }

    @Test("a request with accepted and rejected events stores its rejected ones only once the accepted ones are stored: a 503 leaves nothing that its retry stores again, and once the accepted ones are stored the answer is 202")
    func rejectedAfterAccepted() async throws {
        let events = HeldLog(), rejected = HeldLog()
        try await withServer(events, rejected: rejected, configure: { _ in }) { url in
            let bad = #"{"event_id":"bad-1","event_type":"jump"}"#
            let mixed = Array(("[" + String(decoding: Self.body, as: UTF8.self) + "," + bad + "]").utf8)
            func post() -> Task<TestHTTPResponse, any Error> {
                Task { try await TestHTTP.request(url, method: .POST, headers: [("Content-Type", "application/json")], body: mixed) }
            }
            // The disk is full for the accepted events: 503, and the rejected one is not stored either
            // (the two appends ran at once, and a retried request left a copy of it each time).
            let refused = post()
            try await events.waitForAppends(1)
            try await Task.sleep(for: .milliseconds(200))
            #expect(rejected.appends == 0, "the rejected event is held back while the accepted one is being stored")
            events.failAll(LogError(code: .full, message: "no space left"))
            let refusal = try await refused.value
            #expect(refusal.status == 503 && refusal.text.contains("log_full"), "\(refusal.status) \(refusal.text)")
            try await Task.sleep(for: .milliseconds(200))
            #expect(rejected.appends == 0, "nothing of a request answered 503 is stored")

            // The retry: both stored, in that order, then 202 with the rejection.
            let retried = post()
            try await events.waitForAppends(2)
            events.completeAll()
            try await rejected.waitForAppends(1)
            let record = try #require(rejected.batches.withLockedValue { $0.first })
            #expect(record.count == 1)
            rejected.completeAll()
            let answer = try await retried.value
            #expect(answer.status == 202 && answer.text.contains(#""accepted":1,"rejected":1"#) && answer.text.contains("bad-1"), "\(answer.status) \(answer.text)")

            // A failure of the rejected append after the accepted ones are stored: 202, with the
            // rejection, since the accepted ones are durable (a 503 had the client store them again).
            let third = post()
            try await events.waitForAppends(3)
            events.completeAll()
            try await rejected.waitForAppends(2)
            rejected.failAll(LogError(code: .unavailable, message: "broker down"))
            let stored = try await third.value
            #expect(stored.status == 202 && stored.text.contains(#""accepted":1,"rejected":1"#), "\(stored.status) \(stored.text)")
        }
    }

    @Test("over HTTP: a request's bytes are released once it is answered, with and without gzip")
    func releasedWhenAnswered() async throws {
        let log = HeldLog()
        // The smallest limit that refuses a second request beside either one held.
        try await withServer(log, configure: { $0.maxInFlightBytes = Self.body.count + Self.gzipped.count - 1 }) { url in
            try await exercise(url, log)
        }
    }

    @Test("over HTTP: a gzip body counts with its decoded bytes, not only its compressed ones (a flood of gzip bodies under an 8 MiB budget held 510 MB)")
    func gzipCountsDecoded() async throws {
        let log = HeldLog()
        // Room for a held gzip request (compressed + decoded) and another compressed body, not its decoded bytes.
        try await withServer(log, configure: { $0.maxInFlightBytes = Self.body.count + 2 * Self.gzipped.count + 10 }) { url in
            let headers = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
            let held = Task { try await TestHTTP.request(url, method: .POST, headers: headers, body: Self.gzipped) }
            try await log.waitForAppends(1)
            let refused = try await TestHTTP.request(url, method: .POST, headers: headers, body: Self.gzipped)
            #expect(refused.status == 503 && refused.text.contains("overloaded") && refused.text.contains("--max-in-flight-bytes"), "\(refused.status) \(refused.text)")
            log.completeAll()
            #expect(try await held.value.status == 202)
            // Answered, both kinds of bytes are given back.
            let again = Task { try await TestHTTP.request(url, method: .POST, headers: headers, body: Self.gzipped) }
            try await log.waitForAppends(2)
            log.completeAll()
            #expect(try await again.value.status == 202)
        }
    }

    @Test("over HTTP: bodies still arriving count against the limit, chunk by chunk; one past it gets 503 at once, and a finished body gives its bytes back")
    func bodiesBeingReceived() async throws {
        let log = HeldLog()
        try await withServer(log, configure: { $0.maxInFlightBytes = 100_000 }) { url in
            let port = Int(url.split(separator: ":").last!.split(separator: "/").first!)!
            func head(_ length: Int) -> String {
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(length)\r\n\r\n"
            }
            // Most of a 90,000-byte body, then nothing: its 80,000 bytes are held.
            let slow = try RawConnection(port: port)
            #expect(slow.send(head(90_000) + String(repeating: " ", count: 80_000)))
            // (Time for the server to read them: 300 ms once, a second for a loaded machine.)
            try await Task.sleep(for: .milliseconds(1000))
            // Another body of 30,000 bytes would go past 100,000 while the first one waits.
            let second = try RawConnection(port: port)
            #expect(second.send(head(90_000) + String(repeating: " ", count: 30_000)))
            let refused = String(decoding: await second.readSome(timeout: .seconds(30)), as: UTF8.self)
            #expect(refused.hasPrefix("HTTP/1.1 503") && refused.contains("overloaded") && refused.contains("Retry-After"), "\(refused)")
            // The first body arrives whole (blanks: a malformed body, kept in the rejected stream and
            // answered 400): its bytes are given back.
            #expect(slow.send(String(repeating: " ", count: 10_000)))
            try await log.waitForAppends(1)
            log.completeAll()
            let answered = String(decoding: await slow.readSome(timeout: .seconds(30)), as: UTF8.self)
            #expect(answered.hasPrefix("HTTP/1.1 400"), "\(answered)")
            let third = try RawConnection(port: port)
            #expect(third.send(head(90_000) + String(repeating: " ", count: 90_000)))
            try await log.waitForAppends(2)
            log.completeAll()
            let taken = String(decoding: await third.readSome(timeout: .seconds(30)), as: UTF8.self)
            #expect(taken.hasPrefix("HTTP/1.1 400"), "\(taken)")
        }
    }

    private func exercise(_ url: String, _ log: HeldLog) async throws {
        let body = Self.body, gzipped = Self.gzipped
        let json = [("Content-Type", "application/json")]
        @Sendable func post(_ bytes: [UInt8], gzip: Bool = false) async throws -> TestHTTPResponse {
            try await TestHTTP.request(url, method: .POST, headers: json + (gzip ? [("Content-Encoding", "gzip")] : []), body: bytes)
        }

        var appends = 0
        for (name, first) in [("plain", body), ("gzip", gzipped)] {
            let held = Task { try await post(first, gzip: first == gzipped) }
            appends += 1
            try await log.waitForAppends(appends)
            let refused = try await post(body)
            #expect(refused.status == 503, "\(name): \(refused.text)")
            #expect(refused.text.contains("overloaded"), "\(name): \(refused.text)")
            log.completeAll()
            #expect(try await held.value.status == 202, "\(name)")
        }
        // Both answered requests gave their bytes back: another one is let in.
        let last = Task { try await post(body) }
        try await log.waitForAppends(appends + 1)
        log.completeAll()
        #expect(try await last.value.status == 202)
    }
}

@Suite("Answers to requests the log did not store")
struct NotStoredAnswerTests {
    @Test("a failure a retry can mend is 503 'retry later'; one it cannot (a record too large for the log, an I/O error) is 500 that says so, logged at most once a minute with the count")
    func retriableOrNot() {
        let captured = CapturedLogs()
        let failures = PermanentFailures(logger: Logger(label: "ingest-test") { _ in CapturingLogHandler(captured: captured) })
        let full = EventsEndpoint.notStored(LogError(code: .full, message: "the disk is full"), retryAfter: 3, failures: failures)
        #expect(full.status == .serviceUnavailable && full.headers.first(name: "retry-after") == "3")
        #expect(String(buffer: full.body).contains("retry later"), "\(String(buffer: full.body))")
        #expect(captured.all.isEmpty)
        // Before, this said "retry later" too (a Kafka record over the producer's message size), and nothing was logged.
        let tooLarge = LogError(code: .tooLarge, message: "append to events.rejected: MSG_SIZE_TOO_LARGE")
        for _ in 0..<3 {
            let answer = EventsEndpoint.notStored(tooLarge, retryAfter: 3, failures: failures)
            // With Retry-After, as docs/openapi.yaml requires of a 500 (sent as with 503).
            #expect(answer.status == .internalServerError && answer.headers.first(name: "retry-after") == "3", "\(answer.headers)")
            let text = String(buffer: answer.body)
            #expect(text.contains("a retry is not expected to succeed") && text.contains("MSG_SIZE_TOO_LARGE") && !text.contains("retry later"), "\(text)")
        }
        #expect(captured.count(containing: "a retry does not mend") == 1, "\(captured.all)")
        #expect(captured.count(containing: "MSG_SIZE_TOO_LARGE") == 1, "\(captured.all)")
    }

    @Test("an error that names the server's files (the embedded log's I/O) reaches the client without them, and the server's log with them")
    func serverFilesStayInTheServer() {
        let captured = CapturedLogs()
        let failures = PermanentFailures(logger: Logger(label: "ingest-test") { _ in CapturingLogHandler(captured: captured) })
        var io = LogError(code: .io, message: "cannot write /var/lib/playhead/log/events/00000000000000000000.log: Input/output error")
        io.clientMessage = "the log's disk: Input/output error"
        let answer = String(buffer: EventsEndpoint.notStored(io, retryAfter: 3, failures: failures).body)
        #expect(answer.contains("a retry is not expected to succeed: the log's disk: Input/output error") && !answer.contains("/var/lib"), "\(answer)")
        #expect(captured.count(containing: "/var/lib/playhead/log/events") == 1, "\(captured.all)")
    }
}

@Suite("The default connection limit")
struct ConnectionLimitTests {
    @Test("three quarters of the descriptors left at bind, keeping at least 128 (or half of what is left) for the log, the lake and the runtime; a --max-connections given is taken as it is")
    func fromWhatIsLeft() {
        let configuration = IngestConfiguration()
        #expect(configuration.connectionLimit(openFiles: 1024, inUse: 30) == 746)
        #expect(configuration.connectionLimit(openFiles: 524_288, inUse: 40) == 393_186)
        // 64 event loops (three descriptors each) under 256: 44 left, 22 for connections (it was 128).
        #expect(configuration.connectionLimit(openFiles: 256, inUse: 212) == 22)
        #expect(configuration.connectionLimit(openFiles: 80, inUse: 23) == 29)
        #expect(configuration.connectionLimit(openFiles: 24, inUse: 24) == 1)
        #expect(configuration.connectionLimit(openFiles: nil, inUse: 30) == nil)
        var given = IngestConfiguration()
        given.maxConnections = 10_000
        #expect(given.connectionLimit(openFiles: 256, inUse: 212) == 10_000)
        let inUse = IngestConfiguration.openFilesInUse()
        #expect(inUse.map { $0 >= 3 } == true, "stdin, stdout and stderr at least: \(String(describing: inUse))")
    }
}
