import Gzip
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import PlayheadEvents
import PlayheadLog

/// `POST /v1/events`: checks the request, decodes and validates its events, appends the accepted
/// events and the rejected ones to the log, and answers once both appends are durable.
///
/// Decoding runs on the connection's event loop: it is bounded CPU work (a 5 MiB body at the
/// decoder's speed is a few milliseconds) and a thread hop would cost more than it saves at the
/// usual batch sizes. Gzip decoding runs on a thread pool.
public final class EventsEndpoint: Sendable {
    static let path = "/v1/events"

    private let configuration: IngestConfiguration
    private let decoder: EventDecoder
    private let events: any LogProducer
    private let rejected: any LogProducer
    private let writeKeys: WriteKeyCheck
    private let rateLimiter: RateLimiter?
    private let inFlightBytes: InFlightBytes
    private let threadPool: NIOThreadPool
    let metrics: IngestMetrics
    private let logger: Logger
    private let failures: PermanentFailures
    private let unkeptRejections: ThrottledLogLine
    /// Finds who sent a request, for events whose `ip_address` is `""` (`--fill-ip-address`); nil: off.
    let clientAddresses: ClientAddressResolver?

    /// - Parameters:
    ///   - configuration: limits, keys and back-pressure settings.
    ///   - ipPolicy: what is stored of the sender's `ip_address`.
    ///   - clientAddresses: when set, an event whose `ip_address` is `""` is stored with the address
    ///     of the client that sent it (then the IP policy applies); nil: as sent.
    ///   - events: where accepted events go (topic `events`).
    ///   - rejected: where rejected events go, byte for byte with the reason (topic `rejected`).
    ///   - threadPool: runs gzip decoding off the event loops. The caller starts and stops it.
    public init(
        configuration: IngestConfiguration,
        ipPolicy: IPAddressPolicy = .keep,
        clientAddresses: ClientAddressResolver? = nil,
        events: any LogProducer,
        rejected: any LogProducer,
        threadPool: NIOThreadPool,
        metrics: IngestMetrics? = nil,
        logger: Logger
    ) {
        self.configuration = configuration
        var decoding = EventDecoderConfiguration()
        decoding.maxEventBytes = configuration.maxEventBytes
        decoding.maxEventsPerRequest = configuration.maxEventsPerRequest
        decoding.ipPolicy = ipPolicy
        decoding.eventSources = configuration.eventSources
        decoder = EventDecoder(configuration: decoding)
        self.events = events
        self.rejected = rejected
        writeKeys = WriteKeyCheck(keys: configuration.writeKeys)
        rateLimiter = configuration.rateLimitEventsPerSecond.map { RateLimiter(eventsPerSecond: $0) }
        inFlightBytes = InFlightBytes(limit: configuration.maxInFlightBytes)
        self.threadPool = threadPool
        self.metrics = metrics ?? IngestMetrics(eventSources: configuration.eventSources)
        self.logger = logger
        failures = PermanentFailures(logger: logger)
        unkeptRejections = ThrottledLogLine(
            logger: logger, level: .warning,
            message: "ingest: a request's rejected events could not be kept in the log after its accepted events were stored; answered 202 with their errors (the accepted events are durable), and the rejected ones are not kept",
            hint: "the log refused them after it took the accepted ones (see the error): the disk below --log-min-free-bytes or full (docs/runbook.md, DiskNearlyFull), or on Kafka a broker that failed or refused the records")
        self.clientAddresses = clientAddresses
    }

    /// Body bytes being decoded or waiting for the log now.
    var processingBytes: Int { inFlightBytes.bytes }

    /// Why the endpoint cannot take events now, or nil (for `GET /readyz`).
    public var unavailableReason: String? {
        events.unavailableReason ?? rejected.unavailableReason
    }

    // MARK: The head

    /// The answer that the head alone decides (auth, content type and encoding), or nil to read the body.
    func checkHead(_ request: HTTPRequest) -> HTTPResponse? {
        if let denied = writeKeys.check(request) { return denied }
        // From the head, before the body is read (and before `100 Continue`): until 2026-12-06 the
        // limit was checked once the whole body had arrived (a review).
        if let limiter = rateLimiter, let wait = limiter.refusal() { return rateLimited(limiter, retryIn: wait) }
        guard Self.bodyFormat(request.head.headers) != nil else {
            let given = request.head.headers.first(name: "content-type") ?? "(none)"
            return .error(
                .unsupportedMediaType, code: "unsupported_media_type",
                message: "Content-Type \(given) is not supported; send application/json, application/x-ndjson or text/plain"
            )
        }
        switch Self.contentEncoding(request.head.headers) {
        case .some: return nil
        case .none:
            let given = request.head.headers[canonicalForm: "content-encoding"].joined(separator: ", ")
            var refused = HTTPResponse.error(
                .unsupportedMediaType, code: "unsupported_content_encoding",
                message: "Content-Encoding \(given) is not supported; send gzip or no encoding"
            )
            // What the server takes, so that a client can tell this 415 from the media type's
            // (RFC 9110 §12.5.3; an outside review).
            refused.headers.add(name: "Accept-Encoding", value: "gzip")
            return refused
        }
    }

    /// The body format named by `Content-Type` (parameters such as `charset=utf-8` are ignored).
    static func bodyFormat(_ headers: HTTPHeaders) -> EventBodyFormat? {
        guard let value = headers.first(name: "content-type") else { return .sniff }
        // The usual values, compared without allocating (this runs for every request).
        switch value {
        case "application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8": return .json
        case "application/x-ndjson": return .ndjson
        case "text/plain", "text/plain;charset=UTF-8", "text/plain; charset=utf-8": return .sniff
        default: break
        }
        let mediaType = String(value.split(separator: ";", maxSplits: 1).first ?? "").trimmed().lowercased()
        switch mediaType {
        case "application/json": return .json
        case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-lines": return .ndjson
        case "text/plain", "": return .sniff
        default: return nil
        }
    }

    private enum Encoding { case identity, gzip }

    private static func contentEncoding(_ headers: HTTPHeaders) -> Encoding? {
        if !headers.contains(name: "content-encoding") { return .identity }
        let values = headers[canonicalForm: "content-encoding"].map { $0.lowercased() }
        if values.isEmpty || values == ["identity"] { return .identity }
        if values == ["gzip"] || values == ["x-gzip"] { return .gzip }
        return nil
    }

    // MARK: The body

    func handle(_ request: HTTPRequest, on eventLoop: any EventLoop) -> EventLoopFuture<HTTPResponse> {
        let wireBytes = request.body.readableBytes
        guard inFlightBytes.reserve(wireBytes) else {
            return eventLoop.makeSucceededFuture(overloaded())
        }
        let receivedAt = WallClock.micros()
        let format = Self.bodyFormat(request.head.headers) ?? .sniff
        let client = request.peer.flatMap { clientAddresses?.clientAddress(peer: $0, headers: request.head.headers) }
        if Self.contentEncoding(request.head.headers) == .gzip {
            let maxBodyBytes = configuration.maxBodyBytes
            let compressed = request.body
            return threadPool.runIfActive(eventLoop: eventLoop) {
                try compressed.withUnsafeReadableBytes { try GzipBody.decode($0, maxBytes: maxBodyBytes) }
            }.flatMap { body in
                // The decoded body counts too: only the compressed bytes did, and a flood of gzip
                // bodies under an 8 MiB budget held 510 MB (a probe, 2026-12-04; 97 MB plain).
                let decoded = body.readableBytes
                guard self.inFlightBytes.reserve(decoded, holding: wireBytes) else {
                    return eventLoop.makeSucceededFuture(self.overloaded())
                }
                return self.process(body, format: format, receivedAt: receivedAt, client: client, on: eventLoop, releasing: decoded)
            }.flatMapError { error in
                guard let failure = error as? GzipBody.Failure else { return eventLoop.makeFailedFuture(error) }
                return self.gzipFailed(failure, raw: compressed, receivedAt: receivedAt, on: eventLoop)
            }.always { _ in self.inFlightBytes.release(wireBytes) }
        }
        // The bytes are released as the answer is made, not in a second callback on the future: a
        // future with two callbacks costs NIO four more allocations per request.
        return process(request.body, format: format, receivedAt: receivedAt, client: client, on: eventLoop, releasing: wireBytes)
    }

    /// 503 `overloaded`: the bytes of requests being decoded or waiting for the log are at the budget.
    private func overloaded() -> HTTPResponse {
        metrics.shed(reason: "overloaded")
        return .error(
            .serviceUnavailable, code: "overloaded",
            message: "the server's budget of \(configuration.maxInFlightBytes) bytes for requests being decoded or stored is used up (--max-in-flight-bytes); retry later",
            retryAfterSeconds: configuration.retryAfterSeconds
        )
    }

    private func gzipFailed(
        _ failure: GzipBody.Failure, raw: ByteBuffer, receivedAt: Int64, on eventLoop: any EventLoop
    ) -> EventLoopFuture<HTTPResponse> {
        // A body that could not be read as events is one rejection for the rate limit, as a malformed
        // JSON body is: it was decoded (up to the size cap) and a corrupt one is stored. Neither
        // was counted until 2026-12-07, so corrupt gzip bodies went past --rate-limit, each stored
        // (an outside review: 10 MB of rejected records in a second under a limit of 2 events/s).
        rateLimiter?.consume(1)
        if failure.tooLarge {
            metrics.shed(reason: "body_too_large")
            return eventLoop.makeSucceededFuture(.error(.payloadTooLarge, code: "body_too_large", message: failure.message))
        }
        // A corrupt body is kept, as sent, in the rejected stream; the client hears why once it is stored.
        var record: [UInt8] = []
        raw.withUnsafeReadableBytes { bytes in
            RejectedRecordEncoder.encode(
                receivedAt: receivedAt, index: -1, reason: RejectionReason(rawValue: "invalid_gzip"), field: nil,
                message: failure.message, eventID: nil, raw: bytes, into: &record
            )
        }
        var batch = LogRecordBatch()
        record.withUnsafeBytes { batch.appendRecord(key: EmptyCollection<UInt8>(), value: $0) }
        let promise = eventLoop.makePromise(of: HTTPResponse.self)
        let retryAfter = configuration.retryAfterSeconds
        let metrics = self.metrics, failures = self.failures
        rejected.append(batch) { result in
            switch result {
            case .success:
                metrics.rejected(reason: "invalid_gzip", count: 1)
                promise.succeed(.error(.badRequest, code: "invalid_gzip", message: failure.message))
            case .failure(let error):
                promise.succeed(Self.notStored(error, retryAfter: retryAfter, failures: failures))
            }
        }
        return promise.futureResult
    }

    /// Decodes, appends and answers; `wireBytes` of ``inFlightBytes`` are released when the answer is ready.
    /// `client`: what an empty `ip_address` is stored as (nil: "" stays).
    private func process(
        _ body: ByteBuffer, format: EventBodyFormat, receivedAt: Int64, client: String?, on eventLoop: any EventLoop,
        releasing wireBytes: Int
    ) -> EventLoopFuture<HTTPResponse> {
        var sink = BatchingSink(expectedBytes: body.readableBytes, keys: events.usesKeys)
        let outcome = body.withUnsafeReadableBytes { bytes in
            decoder.decode(bytes, format: format, receivedAt: receivedAt, clientAddress: client, into: &sink)
        }
        // Rejected events count too: judging and keeping them costs what accepting does, and a
        // flood of invalid events went past the limit (a review: 262,000 rejections in 15 s under
        // `--rate-limit 50`, 1.3 GB of rejected records). A request the bucket has no room for
        // stores nothing (``RateLimiter/take(_:)``).
        if let limiter = rateLimiter, let wait = limiter.take(outcome.accepted + outcome.rejected) {
            if wireBytes > 0 { inFlightBytes.release(wireBytes) }
            return eventLoop.makeSucceededFuture(rateLimited(limiter, retryIn: wait))
        }

        let promise = eventLoop.makePromise(of: HTTPResponse.self)
        // A value, captured by the one closure the log calls (a closure calling another closure
        // would be two allocations per request). Accepted and rejected events are counted when they
        // are answered as stored, not when a failed append answers 503 (rejected ones whose append
        // failed after the accepted ones were stored are counted too: they were answered).
        let answer = Answer(
            promise: promise, outcome: outcome, retryAfter: configuration.retryAfterSeconds,
            inFlightBytes: inFlightBytes, wireBytes: wireBytes, failures: failures,
            counts: Counts(metrics: metrics, accepted: sink.dimensionCounts, rejectedReasons: sink.rejectedReasons)
        )
        if sink.accepted.isEmpty && sink.rejected.isEmpty {
            // An empty array: nothing to store, nothing accepted.
            answer.finish(nil)
            return promise.futureResult
        }
        let loop = EventLoopCompletions(loop: eventLoop)
        if sink.accepted.isEmpty || sink.rejected.isEmpty {
            // One append (the usual case): its result is the answer, no countdown needed.
            let single: @Sendable (Result<LogAppendResult, LogError>) -> Void = { result in
                if case .failure(let error) = result { answer.finish(error) } else { answer.finish(nil) }
            }
            if sink.rejected.isEmpty {
                events.append(sink.accepted, executor: loop, completion: single)
            } else {
                rejected.append(sink.rejected, executor: loop, completion: single)
            }
            return promise.futureResult
        }
        // Both: the accepted events first, and the rejected ones only once those are stored. A
        // request answered 503 must have stored nothing its retry stores again: the lake drops a
        // retried event by its id, but keeps every copy of a rejected one. (The two appends ran at
        // once until 2026-12-05: on a full disk the rejected ones were stored while the events
        // failed, and a request retried five times left six copies of its rejections, a probe.)
        // It costs such a request a second group commit's wait; most requests are one kind.
        // Once the accepted events are stored, the answer says so whatever befalls the rejected
        // ones: a 503 there (the disk crossing --log-min-free-bytes between the two appends) had
        // clients send again events that were stored and went to the lake (an outside review: with
        // --dedup-window 0, every row twice). Their rejections are answered, but not kept: said at
        // warning level, at most once a minute, and counted in playhead_events_rejected_unkept_total.
        let rejectedLog = rejected, rejectedRecords = sink.rejected, unkept = unkeptRejections, metrics = metrics
        events.append(sink.accepted, executor: loop) { result in
            if case .failure(let error) = result {
                answer.finish(error)
                return
            }
            rejectedLog.append(rejectedRecords, executor: loop) { result in
                if case .failure(let error) = result {
                    unkept.report(error, count: rejectedRecords.count)
                    metrics.rejectedNotKept(count: rejectedRecords.count)
                }
                answer.finish(nil)
            }
        }
        return promise.futureResult
    }

    /// 429, counted as shed. The connection is closed after it, whether the head or the body was
    /// refused: a client told to wait holds no connection meanwhile, and requests it pipelined behind
    /// are not taken (the 429 for a body the bucket had no room for kept its connection open until
    /// 2026-12-07, while the one from the head closed it: a fuzz-http seed found the difference).
    private func rateLimited(_ limiter: RateLimiter, retryIn wait: Int) -> HTTPResponse {
        metrics.shed(reason: "rate_limited")
        var response = HTTPResponse.error(
            .tooManyRequests, code: "rate_limited",
            message: "the server takes at most \(limiter.rateDescription) events per second; retry in \(wait) s",
            retryAfterSeconds: wait
        )
        response.headers.replaceOrAdd(name: "Connection", value: "close")
        return response
    }

    /// What answers a request once its appends are durable (or failed).
    private struct Answer: Sendable {
        var promise: EventLoopPromise<HTTPResponse>
        var outcome: DecodeOutcome
        var retryAfter: Int
        var inFlightBytes: InFlightBytes
        /// Released from ``inFlightBytes`` with the answer.
        var wireBytes: Int
        var failures: PermanentFailures
        var counts: Counts

        func finish(_ failure: LogError?) {
            if wireBytes > 0 { inFlightBytes.release(wireBytes) }
            if failure == nil { counts.metrics.decoded(counts.accepted, rejectedReasons: counts.rejectedReasons) }
            if let failure {
                promise.succeed(EventsEndpoint.notStored(failure, retryAfter: retryAfter, failures: failures))
            } else if outcome.accepted == 1 && outcome.rejected == 0 {
                // The usual answer to a single event: made once, shared (a ByteBuffer is copy-on-write).
                promise.succeed(EventsEndpoint.oneAccepted)
            } else {
                let status: HTTPResponseStatus =
                    outcome.accepted > 0 ? .accepted : outcome.refusedForTooManyEvents ? .payloadTooLarge : .badRequest
                var buffer = ByteBuffer()
                buffer.writeBytes(outcome.responseJSON())
                promise.succeed(HTTPResponse(status: status, contentType: "application/json", body: buffer))
            }
        }
    }

    /// What a request adds to the metrics once its events are stored.
    private struct Counts: Sendable {
        var metrics: IngestMetrics
        var accepted: DimensionCounts
        var rejectedReasons: [String: Int]
    }

    /// `202 {"accepted":1,"rejected":0,"errors":[]}`, encoded once (see ``HTTPResponse/encodedOnce()``).
    static let oneAccepted: HTTPResponse = {
        var outcome = DecodeOutcome()
        outcome.accepted = 1
        let body = ByteBuffer(bytes: outcome.responseJSON())
        return HTTPResponse(status: .accepted, contentType: "application/json", body: body).encodedOnce()
    }()

    /// The answer to a request whose records the log did not store: 503 when a retry can succeed
    /// (and for a full log), 500 when it cannot, which the message says and the server's log
    /// reports (until 2026-12-04 both said "retry later", and nothing was logged: a Kafka record
    /// over the producer's message size failed the same way on every retry, a probe).
    static func notStored(_ failure: LogError, retryAfter: Int, failures: PermanentFailures) -> HTTPResponse {
        let retriable = failure.isRetriable || failure.code == .full
        if !retriable { failures.report(failure) }
        // Not the server's file names (the log's writer logs the whole error).
        let reason = failure.clientMessage ?? failure.message
        return .error(
            retriable ? .serviceUnavailable : .internalServerError, code: errorCode(failure),
            message: retriable
                ? "the events could not be stored durably, retry later: \(reason)"
                : "the events could not be stored durably, and a retry is not expected to succeed: \(reason)",
            retryAfterSeconds: failure.retryAfterSeconds ?? retryAfter
        )
    }

    /// The `error.code` of a 503 caused by the log.
    static func errorCode(_ error: LogError) -> String {
        switch error.code {
        case .full: "log_full"
        case .overloaded: "overloaded"
        default: "log_unavailable"
        }
    }
}

/// Collects what the decoder produces into the two log batches of a request.
struct BatchingSink: EventSink {
    var accepted: LogRecordBatch
    var rejected = LogRecordBatch()
    /// Accepted events counted by their bounded dimensions (by `EventDimensions.code`, a small
    /// integer: no strings hashed per event), for the metrics.
    private(set) var dimensionCounts = DimensionCounts()
    var rejectedReasons: [String: Int] = [:]

    /// Whether the accepted batch keeps each record's key (not for the embedded log, which does not
    /// store keys: two allocations per request saved).
    let keys: Bool

    init(expectedBytes: Int, keys: Bool) {
        accepted = LogRecordBatch(reservingCapacity: expectedBytes)
        self.keys = keys
    }

    mutating func accepted(index: Int, key: UnsafeRawBufferPointer, dimensions: EventDimensions, record: UnsafeRawBufferPointer) {
        accepted.appendRecord(key: keys ? key : UnsafeRawBufferPointer(start: nil, count: 0), value: record)
        dimensionCounts.add(dimensions.code)
    }

    mutating func rejected(_ error: EventValidationError, record: UnsafeRawBufferPointer) {
        rejected.appendRecord(key: EmptyCollection<UInt8>(), value: record)
        rejectedReasons[error.reason.rawValue, default: 0] += 1
    }
}

/// Counts by `EventDimensions.code`. The first code is counted in place; a dictionary is made only
/// when a second one appears (a single event, or a batch of one kind, allocates nothing).
struct DimensionCounts: Sendable {
    private var firstCode = -1
    private var firstCount = 0
    private var others: [Int: Int] = [:]

    mutating func add(_ code: Int) {
        if code == firstCode {
            firstCount += 1
        } else if firstCode < 0 {
            firstCode = code
            firstCount = 1
        } else {
            others[code, default: 0] += 1
        }
    }

    func forEach(_ body: (_ code: Int, _ count: Int) -> Void) {
        if firstCode >= 0 { body(firstCode, firstCount) }
        for (code, count) in others { body(code, count) }
    }
}

/// The request's event loop as the log's completion executor: the embedded log hands a group
/// commit's completions for one event loop over in one task, so the answers are written without a
/// hop per request.
struct EventLoopCompletions: LogCompletionExecutor {
    let loop: any EventLoop
    var key: ObjectIdentifier { ObjectIdentifier(loop) }

    func execute(_ work: @escaping @Sendable () -> Void) {
        loop.execute(work)
    }
}

/// Appends that failed in a way a retry does not mend (answered 500): logged at error level, at most
/// once a minute, with how many there were since the last line.
final class PermanentFailures: Sendable {
    private let line: ThrottledLogLine

    init(logger: Logger) {
        line = ThrottledLogLine(
            logger: logger, level: .error,
            message: "ingest: the log refused a request's records in a way a retry does not mend; answered 500",
            hint: "a record larger than the log takes (Kafka: the topic's max.message.bytes, the producer's message.max.bytes), or an I/O error: docs/runbook.md, IngestRequestsFailing")
    }

    func report(_ failure: LogError) { line.report(failure) }
}

/// A log line about failed appends, at most once a minute, with how many requests (and records)
/// there were since the last one.
final class ThrottledLogLine: Sendable {
    private let logger: Logger
    private let level: Logger.Level
    private let message: String
    private let hint: String
    private let state = NIOLockedValueBox<(last: NIODeadline?, requests: Int, records: Int)>((nil, 0, 0))

    init(logger: Logger, level: Logger.Level, message: String, hint: String) {
        self.logger = logger
        self.level = level
        self.message = message
        self.hint = hint
    }

    func report(_ failure: LogError, count records: Int? = nil) {
        let now = NIODeadline.now()
        let since: (requests: Int, records: Int)? = state.withLockedValue { state in
            state.requests += 1
            state.records += records ?? 0
            guard state.last.map({ now - $0 >= .seconds(60) }) ?? true else { return nil }
            defer { state = (now, 0, 0) }
            return (state.requests, state.records)
        }
        guard let since else { return }
        var metadata: Logger.Metadata = ["error": "\(failure)", "requests": .stringConvertible(since.requests), "hint": "\(hint)"]
        if records != nil { metadata["records"] = .stringConvertible(since.records) }
        logger.log(level: level, "\(message)", metadata: metadata)
    }
}
