import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// One request the load generator sends.
public struct LoadRequest {
    public var body: ByteBuffer
    /// The number of events in the body.
    public var events: Int
    /// The events' ids, when the run records which events were acknowledged.
    public var eventIDs: [String]

    public init(body: ByteBuffer, events: Int, eventIDs: [String] = []) {
        self.body = body
        self.events = events
        self.eventIDs = eventIDs
    }
}

/// Makes the requests of one connection. Used from that connection's event loop only.
public protocol LoadRequestSource: AnyObject {
    /// The next request, or nil when this source has nothing more to send.
    func next(allocator: ByteBufferAllocator) -> LoadRequest?
}

/// What to send, where, and how hard.
public struct LoadgenConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    public var path: String = "/v1/events"
    /// Concurrent keep-alive connections. Default: 64.
    public var connections: Int = 64
    /// Target events per second over all connections; `nil` sends as fast as acknowledgements come.
    public var eventsPerSecond: Double? = nil
    /// How long to run; `nil` runs until ``maxEvents`` are sent (or ``LoadGenerator/stop()``). Default: 10 s.
    public var duration: Duration? = .seconds(10)
    /// Events in each request (the sources' batch size), to spread the connections' first requests
    /// over one request interval when a rate is set. Default: 1.
    public var eventsPerRequest: Int = 1
    /// Stop after this many events, if set.
    public var maxEvents: Int? = nil
    /// `Content-Type` of the bodies. Default: `application/json`.
    public var contentType: String = "application/json"
    /// Sends bodies gzip-compressed (the source must compress them). Default: false.
    public var gzip: Bool = false
    /// Sent as `Authorization: Bearer <key>` when set.
    public var writeKey: String? = nil
    /// Reconnects after a connection fails (the server restarted) instead of stopping. Default: true.
    public var reconnect: Bool = true
    /// Event-loop threads. Default: 1, so that the generator leaves the other cores to the server.
    public var threads: Int = 1
    /// Where the ids of acknowledged events go (for exactly-once checks), as they are acknowledged.
    /// Default: none.
    public var acknowledgedIDs: AcknowledgedIDWriter? = nil
    /// Whether the sources must give each request's event ids.
    public var recordAcknowledgedIDs: Bool { acknowledgedIDs != nil }

    public init() {}
}

/// What a run measured.
public struct LoadgenReport: Sendable {
    public var elapsedSeconds: Double
    public var requests: Int
    public var acknowledgedRequests: Int
    public var acknowledgedEvents: Int
    public var rejectedEvents: Int
    /// Events of requests that no answer decided: answered with a status other than 202 or 400
    /// (401, 413, 415, 429, 503...), or never answered. They counted nowhere (an outside review).
    public var refusedEvents: Int
    public var failedRequests: Int
    public var connectionErrors: Int
    /// Requests due at the rate that were never sent before the run ended (the server stalled);
    /// each is in the latencies with its wait until the end.
    public var unsentRequests: Int
    /// The last failed connection attempt's error, to tell why no request reached the server.
    public var lastConnectionError: String?
    public var statusCounts: [Int: Int]
    /// Latency percentiles in microseconds: p50, p90, p99, p99.9, max. Of the requests whose
    /// answer decided their events (202, 400), those never answered (their wait until they were
    /// given up, a lower bound), and with a rate, those due and never sent (their wait until the end).
    public var latencyMicros: [String: UInt64]

    public var eventsPerSecond: Double { elapsedSeconds > 0 ? Double(acknowledgedEvents) / elapsedSeconds : 0 }
    public var requestsPerSecond: Double { elapsedSeconds > 0 ? Double(acknowledgedRequests) / elapsedSeconds : 0 }
}

/// A closed-loop HTTP load generator: each connection sends a request, waits for the answer, and
/// sends the next, paced when a target rate is set. Latency is measured from the moment a request
/// was due (not when it was sent), so that a stalled server is not hidden (coordinated omission).
public final class LoadGenerator: Sendable {
    public let configuration: LoadgenConfiguration
    private let makeSource: @Sendable (Int) -> any LoadRequestSource

    /// - Parameter makeSource: makes the request source of connection `index`.
    public init(configuration: LoadgenConfiguration, makeSource: @escaping @Sendable (Int) -> any LoadRequestSource) {
        self.configuration = configuration
        self.makeSource = makeSource
    }

    /// Stops for each running connection (run on its event loop), and whether ``stop()`` was called.
    private let stoppers = NIOLockedValueBox<(requested: Bool, stop: [@Sendable () -> Void])>((false, []))

    /// Ends the run early, as if its duration were over: each connection sends nothing more, waits
    /// for the answer to its request in flight (so that its acknowledgement is counted and its ids
    /// written), and the run's report comes back. For a SIGINT or SIGTERM.
    public func stop() {
        let stops = stoppers.withLockedValue { state -> [@Sendable () -> Void] in
            state.requested = true
            return state.stop
        }
        for stop in stops { stop() }
    }

    private func register(_ stop: @escaping @Sendable () -> Void) {
        let already = stoppers.withLockedValue { state -> Bool in
            state.stop.append(stop)
            return state.requested
        }
        if already { stop() }
    }

    public func run() async throws -> LoadgenReport {
        let configuration = self.configuration
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        do {
            let report = try await run(on: group)
            try? await group.shutdownGracefully()
            return report
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private func run(on group: MultiThreadedEventLoopGroup) async throws -> LoadgenReport {
        let configuration = self.configuration
        let budget = EventBudget(limit: configuration.maxEvents)
        let start = NIODeadline.now()
        let end = configuration.duration.map { start + TimeAmount($0) } ?? .distantFuture
        let interval: TimeAmount? = configuration.eventsPerSecond.map { rate in
            // Each connection sends its share of the rate; the interval is per request and is
            // scaled by the number of events in each request when it is sent.
            .nanoseconds(Int64(1e9 * Double(configuration.connections) / max(rate, 0.001)))
        }
        var futures: [EventLoopFuture<Void>] = []
        // One set of counts and one histogram (~190 KB) per event loop, shared by the connections it
        // drives (all on its thread): one per connection took 452 MB at 2000 connections (an outside review).
        var loopStats: [(loop: any EventLoop, stats: NIOLoopBoundBox<LoopStats?>)] = []
        for index in 0..<configuration.connections {
            let loop = group.next()
            let box: NIOLoopBoundBox<LoopStats?>
            if let known = loopStats.first(where: { $0.loop === loop }) {
                box = known.stats
            } else {
                box = NIOLoopBoundBox.makeEmptyBox(valueType: LoopStats.self, eventLoop: loop)
                loopStats.append((loop, box))
            }
            let promise = loop.makePromise(of: Void.self)
            let makeSource = self.makeSource
            loop.execute {
                let stats = box.value ?? LoopStats()
                box.value = stats
                // With a rate, connection i sends its first request i/N of a request interval
                // late, so that the rate holds from the start: all at once, 64 connections at
                // 10 events/s sent 64 events at once and then waited 6.4 s, past --duration.
                let firstDue = interval.map { interval in
                    // In floating point: the product overflows Int64 at extreme (accepted) settings.
                    let offset = Double(interval.nanoseconds) * Double(max(1, configuration.eventsPerRequest)) * Double(index) / Double(configuration.connections)
                    return start + .nanoseconds(Int64(min(offset, Double(Int64.max / 2))))
                } ?? start
                let driver = ConnectionDriver(
                    configuration: configuration, source: makeSource(index), eventLoop: loop,
                    deadline: end, perEventInterval: interval, firstDue: firstDue, budget: budget, stats: stats, done: promise
                )
                driver.start()
                let bound = NIOLoopBound(driver, eventLoop: loop)
                self.register { loop.execute { bound.value.stop() } }
            }
            futures.append(promise.futureResult)
        }
        for future in futures { try await future.get() }
        var total = ConnectionStats()
        for (loop, box) in loopStats {
            // Read on its loop, which owns it.
            total.merge(try await loop.submit { box.value?.stats ?? ConnectionStats() }.get())
        }
        let elapsed = Double((NIODeadline.now() - start).nanoseconds) / 1e9
        var latency: [String: UInt64] = [:]
        if total.histogram.totalCount > 0 {
            latency = [
                "p50": total.histogram.valueAtPercentile(50),
                "p90": total.histogram.valueAtPercentile(90),
                "p99": total.histogram.valueAtPercentile(99),
                "p99.9": total.histogram.valueAtPercentile(99.9),
                // The largest value recorded, not the top of its bucket (up to 0.1% more).
                "max": total.histogram.maxRecorded,
            ]
        }
        return LoadgenReport(
            elapsedSeconds: elapsed, requests: total.requests, acknowledgedRequests: total.acknowledgedRequests,
            acknowledgedEvents: total.acknowledgedEvents, rejectedEvents: total.rejectedEvents,
            refusedEvents: total.refusedEvents, failedRequests: total.failedRequests, connectionErrors: total.connectionErrors,
            unsentRequests: total.unsentRequests, lastConnectionError: total.lastConnectionError,
            statusCounts: total.statusCounts, latencyMicros: latency
        )
    }
}

/// A shared cap on the number of events sent.
final class EventBudget: Sendable {
    private let remaining: NIOLockedValueBox<Int?>
    init(limit: Int?) { remaining = NIOLockedValueBox(limit) }
    /// Takes `count` events from the budget; false when it is spent.
    func take(_ count: Int) -> Bool {
        remaining.withLockedValue { remaining in
            guard let left = remaining else { return true }
            guard left > 0 else { return false }
            remaining = left - count
            return true
        }
    }
}

/// What the connections of one event loop measured.
struct ConnectionStats: Sendable {
    var requests = 0
    var acknowledgedRequests = 0
    var acknowledgedEvents = 0
    var rejectedEvents = 0
    var refusedEvents = 0
    var failedRequests = 0
    var connectionErrors = 0
    var unsentRequests = 0
    var lastConnectionError: String?
    var statusCounts: [Int: Int] = [:]
    var histogram = Histogram<UInt64>(highestTrackableValue: Self.highestMicros, numberOfSignificantValueDigits: .three)
    /// The longest latency told apart: an hour (longer ones are counted as an hour).
    static let highestMicros: UInt64 = 3_600_000_000

    mutating func merge(_ other: ConnectionStats) {
        requests += other.requests
        acknowledgedRequests += other.acknowledgedRequests
        acknowledgedEvents += other.acknowledgedEvents
        rejectedEvents += other.rejectedEvents
        refusedEvents += other.refusedEvents
        failedRequests += other.failedRequests
        connectionErrors += other.connectionErrors
        unsentRequests += other.unsentRequests
        lastConnectionError = other.lastConnectionError ?? lastConnectionError
        for (status, count) in other.statusCounts { statusCounts[status, default: 0] += count }
        histogram.add(other.histogram)
    }

    /// Records a latency, clamped to the histogram's top (an hour): past 67 s a latency was
    /// dropped, so a run far past the server's capacity reported p50=0 (an outside review).
    mutating func record(_ wait: TimeAmount, count: UInt64 = 1) {
        let micros = UInt64(max(0, wait.nanoseconds / 1000))
        _ = histogram.record(min(micros, Self.highestMicros), count: count)
    }
}

/// The stats of the connections on one event loop, used on that loop only.
final class LoopStats {
    var stats = ConnectionStats()
}

/// Drives one connection on its event loop: connect, send, await, repeat; reconnect on failure.
final class ConnectionDriver {
    private let configuration: LoadgenConfiguration
    private let source: any LoadRequestSource
    private let eventLoop: any EventLoop
    private let deadline: NIODeadline
    private let perEventInterval: TimeAmount?
    private let budget: EventBudget
    private let done: EventLoopPromise<Void>
    /// Shared with the other connections on this event loop.
    private let shared: LoopStats
    /// The request made for the next send: made before the send time is read, so that no latency
    /// counts the generator's own work of making and compressing a body (it did; an outside review).
    private var prepared: LoadRequest?
    /// The request in flight is being given up by the generator (not a connection error).
    private var abandoning = false
    private var channel: (any Channel)?
    private var nextDue: NIODeadline
    /// The wait for `nextDue`, if one is scheduled: one at a time, cancelled when the connection
    /// closes (a reconnect starts its own), so that no second chain of sends runs beside it.
    private var pacing: Scheduled<Void>?
    private var current: (request: LoadRequest, due: NIODeadline)?
    private var finished = false
    /// ``stop()`` was called: nothing more is sent.
    private var stopRequested = false
    private var reconnectDelay = TimeAmount.milliseconds(20)
    /// The last answer said `Connection: close`: the next request is sent on a new connection.
    private var reopen = false
    /// Acknowledged ids not yet handed to the writer (one per line), and when they last were.
    private var pendingIDs: [UInt8] = []
    private var idsHandedAt = NIODeadline.now()
    private lazy var headers: HTTPHeaders = {
        var headers: HTTPHeaders = [
            // An IPv6 address in brackets (`Host: ::1:8080` is not a host and port; an outside review).
            "Host": configuration.host.contains(":") ? "[\(configuration.host)]:\(configuration.port)" : "\(configuration.host):\(configuration.port)",
            "Content-Type": configuration.contentType,
            "Connection": "keep-alive",
        ]
        if configuration.gzip { headers.add(name: "Content-Encoding", value: "gzip") }
        if let key = configuration.writeKey { headers.add(name: "Authorization", value: "Bearer \(key)") }
        return headers
    }()

    init(
        configuration: LoadgenConfiguration, source: any LoadRequestSource, eventLoop: any EventLoop,
        deadline: NIODeadline, perEventInterval: TimeAmount?, firstDue: NIODeadline, budget: EventBudget,
        stats: LoopStats, done: EventLoopPromise<Void>
    ) {
        self.shared = stats
        self.configuration = configuration
        self.source = source
        self.eventLoop = eventLoop
        self.deadline = deadline
        self.perEventInterval = perEventInterval
        self.budget = budget
        self.done = done
        self.nextDue = firstDue
    }

    func start() {
        // A request still unanswered 10 s after the end of the run is given up (counted failed):
        // a server that took it and never answered (paused, or a host gone without a reset) held
        // the run for ever, past --duration (an outside review of the code).
        if deadline.uptimeNanoseconds < UInt64(Int64.max) - 20_000_000_000 {
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            eventLoop.scheduleTask(deadline: deadline + Self.answerWait * 2) { bound.value.abandonInFlight() }
        }
        connect()
    }

    /// How long a stop waits for the answer to the request in flight.
    static let answerWait: TimeAmount = .seconds(5)

    /// Sends nothing more; finishes now, or once the answer to the request in flight has come, for
    /// at most ``answerWait`` (SIGINT's report waited for an answer that never came, and a second
    /// signal ended the run without one).
    func stop() {
        guard !finished else { return }
        stopRequested = true
        pacing?.cancel()
        pacing = nil
        if current == nil { return finish() }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        eventLoop.scheduleTask(in: Self.answerWait) { bound.value.abandonInFlight() }
    }

    /// Gives up the request in flight: its connection is closed, and the request counted failed.
    private func abandonInFlight() {
        guard !finished else { return }
        stopRequested = true
        if current != nil, let channel {
            abandoning = true
            channel.close(promise: nil)
        } else if current == nil {
            finish()
        }
    }

    private func connect() {
        guard !finished else { return }
        if NIODeadline.now() >= deadline || stopRequested { return finish() }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        ClientBootstrap(group: eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseHandler(driver: bound))
                }
            }
            .connect(host: configuration.host, port: configuration.port)
            .whenComplete { result in
                let driver = bound.value
                switch result {
                case .success(let channel):
                    driver.channel = channel
                    driver.reconnectDelay = .milliseconds(20)
                    channel.closeFuture.whenComplete { _ in bound.value.connectionClosed(channel) }
                    driver.sendNext()
                case .failure(let error):
                    driver.shared.stats.connectionErrors += 1
                    driver.shared.stats.lastConnectionError = Self.describe(error)
                    driver.retryConnect()
                }
            }
    }

    /// A failed connection attempt in a few words: the address's own error (`Connection refused`), or
    /// the name's (`Name or service not known`), rather than NIO's whole list of attempts.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? NIOConnectionError else { return "\(error)" }
        if let failure = error.connectionErrors.last { return "\(failure.error)" }
        if let dns = error.dnsAError ?? error.dnsAAAAError { return "\(dns)" }
        return "\(error)"
    }

    private func retryConnect() {
        guard configuration.reconnect, !finished, !stopRequested else { return finish() }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let delay = reconnectDelay
        reconnectDelay = min(reconnectDelay * 2, .milliseconds(500))
        eventLoop.scheduleTask(in: delay) { bound.value.connect() }
    }

    private func connectionClosed(_ closed: any Channel) {
        guard channel === closed else { return }
        channel = nil
        pacing?.cancel()
        pacing = nil
        if let (request, due) = current {
            // The answer never came: the request is not acknowledged. Its wait so far is a latency
            // (a lower bound), so that a server that stalls and drops connections does not look
            // fast (an outside review).
            shared.stats.failedRequests += 1
            shared.stats.refusedEvents += request.events
            shared.stats.record(NIODeadline.now() - due)
            // A request the generator gave up on is not a connection error (an outside review).
            if !abandoning { shared.stats.connectionErrors += 1 }
            current = nil
        }
        if !finished { retryConnect() }
    }

    private func sendNext() {
        guard !finished, let channel, current == nil else { return }
        if NIODeadline.now() >= deadline || stopRequested { return finish() }
        if prepared == nil {
            guard let request = source.next(allocator: channel.allocator), budget.take(request.events) else {
                return finish(owing: false)
            }
            prepared = request
        }
        if reopen {
            // The last answer closed the connection: the next request goes on a new one
            // (``connectionClosed(_:)`` opens it), once there is one to send (a run whose events
            // were all sent reconnected for ever to a server that had gone).
            reopen = false
            channel.close(promise: nil)
            return
        }
        // Not checked against the end of the run again: a request made in time is sent.
        let now = NIODeadline.now()
        if nextDue > now {
            // Not later than the end of the run, which the next request may lie beyond.
            guard pacing == nil else { return }
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            pacing = eventLoop.scheduleTask(deadline: min(nextDue, deadline)) {
                bound.value.pacing = nil
                bound.value.sendNext()
            }
            return
        }
        guard let request = prepared else { return }
        prepared = nil
        let due = perEventInterval == nil ? now : nextDue
        if let interval = perEventInterval {
            // In floating point, as the first request's offset: the product overflowed Int64 (SIGILL)
            // at extreme accepted settings (--rate 0.001 with batches of 100,000).
            let step = Double(interval.nanoseconds) * Double(request.events)
            nextDue = step < 1e17 ? nextDue + .nanoseconds(Int64(step)) : .distantFuture
        }
        current = (request, due)
        shared.stats.requests += 1
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: configuration.path, headers: headers)
        head.headers.add(name: "Content-Length", value: String(request.body.readableBytes))
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(request.body)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    /// - Parameter closes: the answer said `Connection: close` (every 429 does, and any error that
    ///   left the request's body unread): the connection is closed and another one opened, without
    ///   a send on the old one, which the server drops (a review: each 429 showed as a failed
    ///   request and a connection error too).
    fileprivate func received(status: HTTPResponseStatus, body: ByteBuffer, closes: Bool) {
        guard let (request, due) = current else { return }
        current = nil
        let waited = NIODeadline.now() - due
        shared.stats.statusCounts[Int(status.code), default: 0] += 1
        // Only answers that decided the events are latencies: a server shedding load with quick
        // 429s or 503s looked fast (an outside review). The others' events are counted refused.
        if status == .accepted || status == .badRequest {
            shared.stats.record(waited)
        } else {
            shared.stats.refusedEvents += request.events
        }
        if status == .accepted {
            let accepted = Self.integerField("accepted", in: body) ?? request.events
            shared.stats.acknowledgedRequests += 1
            shared.stats.acknowledgedEvents += accepted
            shared.stats.rejectedEvents += request.events - accepted
            if configuration.acknowledgedIDs != nil && !request.eventIDs.isEmpty {
                let rejected = accepted == request.events ? [] : Self.errorIndexes(in: body)
                for (index, id) in request.eventIDs.enumerated() where !rejected.contains(index) {
                    pendingIDs.append(contentsOf: id.utf8)
                    pendingIDs.append(UInt8(ascii: "\n"))
                }
                // Handed on at 64 KiB or after a second, so that memory stays flat over a long run and
                // a run stopped by a signal leaves the ids acknowledged until about then.
                if pendingIDs.count >= 1 << 16 || NIODeadline.now() - idsHandedAt >= .seconds(1) { handOverIDs() }
            }
        } else {
            shared.stats.failedRequests += 1
            if status == .badRequest { shared.stats.rejectedEvents += request.events }
        }
        if !(configuration.eventsPerSecond != nil) { nextDue = .now() }
        reopen = closes
        sendNext()
    }

    private func handOverIDs() {
        idsHandedAt = .now()
        guard let writer = configuration.acknowledgedIDs, !pendingIDs.isEmpty else { return }
        writer.write(pendingIDs)
        pendingIDs = []
    }

    /// - Parameter owing: whether requests due at the rate and never sent count (not when the
    ///   events to send are all sent).
    private func finish(owing: Bool = true) {
        guard !finished else { return }
        finished = true
        pacing?.cancel()
        pacing = nil
        if owing { recordUnsent() }
        handOverIDs()
        channel?.close(promise: nil)
        done.succeed(())
    }

    /// With a rate, records each request that was due before the end of the run (or its stop) and
    /// never sent, with its wait until now: a server that stalled until the end hid its stall, as
    /// those requests counted nowhere (a server paused for 2 s of 3 gave max=18 ms; an outside
    /// review). Past ``maxUnsentBuckets`` requests, they are recorded in that many groups, each
    /// at its middle request's wait.
    private func recordUnsent() {
        guard let interval = perEventInterval else { return }
        let now = NIODeadline.now()
        let end = min(now, deadline)
        guard nextDue < end else { return }
        let step = Double(interval.nanoseconds) * Double(max(1, configuration.eventsPerRequest))
        guard step >= 1 else { return }
        let span = Double((end - nextDue).nanoseconds)
        let owed = Int(min((span / step).rounded(.up), 1e12))
        shared.stats.unsentRequests += owed
        let groups = min(owed, Self.maxUnsentBuckets)
        for group in 0..<groups {
            let first = owed * group / groups, last = owed * (group + 1) / groups
            guard last > first else { continue }
            let middle = Double(first + last - 1) / 2
            let due = nextDue + .nanoseconds(Int64(middle * step))
            shared.stats.record(now - due, count: UInt64(last - first))
        }
    }

    static let maxUnsentBuckets = 10_000

    /// Reads `"name":<integer>` from a small JSON answer without a full parse.
    static func integerField(_ name: String, in body: ByteBuffer) -> Int? {
        let text = String(buffer: body)
        guard let range = text.range(of: "\"\(name)\":") else { return nil }
        let digits = text[range.upperBound...].prefix { $0.isNumber }
        return Int(digits)
    }

    /// The `"index"` values in an answer's `errors`.
    static func errorIndexes(in body: ByteBuffer) -> Set<Int> {
        let text = String(buffer: body)
        var result = Set<Int>()
        var rest = text[...]
        while let range = rest.range(of: "\"index\":") {
            rest = rest[range.upperBound...]
            if let value = Int(rest.prefix { $0.isNumber || $0 == "-" }) { result.insert(value) }
        }
        return result
    }
}

final class ResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let driver: NIOLoopBound<ConnectionDriver>
    private var status: HTTPResponseStatus = .ok
    private var closes = false
    private var body = ByteBuffer()

    init(driver: NIOLoopBound<ConnectionDriver>) { self.driver = driver }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
            closes = !head.isKeepAlive
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            driver.value.received(status: status, body: body, closes: closes)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// Writes the ids of acknowledged events to a file as connections hand them over, on a queue of its
/// own (file writes stay off the event loops), in the order they arrive.
public final class AcknowledgedIDWriter: Sendable {
    private let handle: FileHandle
    private let queue = DispatchQueue(label: "playhead.loadgen.acknowledged-ids")
    private let failure = NIOLockedValueBox<(any Error)?>(nil)

    /// - Parameter handle: open for writing; closed by ``finish()``.
    public init(handle: FileHandle) {
        self.handle = handle
    }

    func write(_ bytes: [UInt8]) {
        queue.async { [handle, failure] in
            guard failure.withLockedValue({ $0 == nil }) else { return }
            do {
                try handle.write(contentsOf: bytes)
            } catch {
                failure.withLockedValue { $0 = error }
            }
        }
    }

    /// Waits for every write handed over so far, closes the file, and reports the first write that failed.
    public func finish() async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async { [handle] in
                try? handle.close()
                continuation.resume()
            }
        }
        if let error = failure.withLockedValue({ $0 }) { throw error }
    }
}
