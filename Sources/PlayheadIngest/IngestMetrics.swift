import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import PlayheadEvents

/// The ingest edge's instruments (names in docs/metrics.md). Handles are made once per label set
/// and cached, so that the hot path does one dictionary lookup under a lock per request, not a
/// metrics-factory lookup per event.
public final class IngestMetrics: Sendable {
    /// By `EventDimensions.code`.
    private let accepted = HandleCache<Int, Counter>()
    private let rejected = HandleCache<String, Counter>()
    private let shedCounters = HandleCache<String, Counter>()
    /// By ``requestKey(route:method:status:)``.
    private let durations = HandleCache<Int, Metrics.Timer>()
    private let receivingGauge: Gauge?
    private let processingGauge: Gauge?
    private let unkeptCounter: Counter?
    private let factory: (any MetricsFactory)?
    /// The decoder's: what the codes of accepted events' dimensions stand for.
    let eventSources: EventSourceLabels

    /// The routes that get their own label value; every other path is `other`.
    static let knownRoutes: [String] = ["/v1/events", "/healthz", "/readyz", "/metrics", "/openapi.json", "/", "/live.json"]
    /// `/v1/events` in ``knownRoutes``.
    static let eventsRoute = routeIndex("/v1/events")
    /// The methods that get their own label value: RFC 9110's and PATCH. Any other method the
    /// parser takes (WebDAV's, `PURGE`, `M-SEARCH`, a token of the client's own) is `other`, as
    /// OpenTelemetry folds them into `_OTHER`: each made a series of its own, from any client,
    /// with no write key (a probe).
    static let knownMethods: [HTTPMethod] = [.POST, .GET, .HEAD, .OPTIONS, .PUT, .DELETE, .PATCH, .CONNECT, .TRACE]

    /// A method's label value and its index among the label values: a known method, `unknown` for a
    /// request that could not be parsed as HTTP, `other` for the rest.
    static func methodLabel(_ method: HTTPMethod) -> (value: String, index: Int) {
        if let index = knownMethods.firstIndex(of: method) { return (method.rawValue, index) }
        if case .RAW(let value) = method, value == "unknown" { return ("unknown", knownMethods.count) }
        return ("other", knownMethods.count + 1)
    }

    /// One integer for a route (index in `knownRoutes`, or its count for `other`), a method and a
    /// status, so that the per-request lookup hashes no strings.
    private static func requestKey(route: Int, method: Int, status: UInt) -> Int {
        (route * (knownMethods.count + 2) + method) * 1000 + Int(status % 1000)
    }

    /// - Parameter factory: the metrics factory; `nil` uses the one bootstrapped in `MetricsSystem`.
    /// - Parameter edge: whether the server takes events (`serve`, `ingest`). The HTTP server of
    ///   `store` and `observe` (metrics and probes only) makes no edge series: they exported the
    ///   rejection and refusal counters and the in-flight gauges at 0 for good (a probe).
    /// - Parameter eventSources: the decoder's `event_source` labels.
    public init(factory: (any MetricsFactory)? = nil, edge: Bool = true, eventSources: EventSourceLabels = .standard) {
        self.factory = factory
        self.eventSources = eventSources
        guard edge else {
            receivingGauge = nil
            processingGauge = nil
            unkeptCounter = nil
            return
        }
        receivingGauge = Gauge(label: "playhead_ingest_in_flight_bytes", dimensions: [("stage", "receiving")])
        processingGauge = Gauge(label: "playhead_ingest_in_flight_bytes", dimensions: [("stage", "processing")])
        unkeptCounter = factory.map { Counter(label: "playhead_events_rejected_unkept_total", factory: $0) }
            ?? Counter(label: "playhead_events_rejected_unkept_total")
        // The series of every reason exist from the start, at 0: a counter that appears at its first
        // value hides that increment from `rate()` and `increase()` (a burst of a new rejection
        // reason would never show in the reject ratio or its alert).
        for reason in RejectionReason.all.map(\.rawValue) + ["invalid_gzip"] {
            _ = rejected.handle(reason) { counter("playhead_events_rejected_total", [("reason", reason)]) }
        }
        for reason in ["rate_limited", "overloaded", "body_too_large"] {
            _ = shedCounters.handle(reason) { counter("playhead_ingest_requests_refused_total", [("reason", reason)]) }
        }
        // So do the accepted events' series whose labels are known in advance (every event type and
        // content type of the schema with every known source and `other`), and the request durations
        // of `POST /v1/events` for the statuses the recording rules and alerts read. Born at their
        // first increment, they hid it from `rate()`: 20 events and one rejected on a fresh process
        // read as a reject ratio of 1 and an accepted rate of 0 (an outside review).
        for eventType in EventDimensions.eventTypes {
            for contentType in EventDimensions.contentTypes {
                for source in eventSources.names + ["other"] {
                    let labels = EventDimensions(eventType: eventType, contentType: contentType, eventSource: source, sources: eventSources)
                    _ = accepted.handle(labels.code) { acceptedCounter(labels) }
                }
            }
        }
        let post = Self.methodLabel(.POST)
        for status in Self.eventsStatusesAtStart {
            _ = durations.handle(Self.requestKey(route: Self.eventsRoute, method: post.index, status: status)) {
                durationTimer(route: Self.knownRoutes[Self.eventsRoute], method: post.value, status: status)
            }
        }
    }

    /// The statuses of `POST /v1/events` whose duration series exist from the start, at 0: the
    /// answer to events taken (202) and to events all rejected (400), and the failures alert
    /// IngestRequestsFailing counts (429, 500, 503). The others (401, 408, 413, 415) appear at their first.
    static let eventsStatusesAtStart: [UInt] = [202, 400, 429, 500, 503]

    private func acceptedCounter(_ labels: EventDimensions) -> Counter {
        counter("playhead_events_accepted_total", [
            ("event_type", labels.eventType), ("content_type", labels.contentType), ("event_source", labels.eventSource),
        ])
    }

    private func durationTimer(route: String, method: String, status: UInt) -> Metrics.Timer {
        let dimensions = [("route", route), ("method", method), ("status", String(status))]
        if let factory { return Metrics.Timer(label: "playhead_http_server_request_duration_seconds", dimensions: dimensions, factory: factory) }
        return Metrics.Timer(label: "playhead_http_server_request_duration_seconds", dimensions: dimensions)
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        if let factory { return Counter(label: label, dimensions: dimensions, factory: factory) }
        return Counter(label: label, dimensions: dimensions)
    }

    /// - Parameter accepted: accepted events by the `code` of their `EventDimensions`, made with
    ///   ``eventSources``.
    func decoded(_ accepted: DimensionCounts, rejectedReasons: [String: Int]) {
        accepted.forEach { code, count in
            self.accepted.handle(code) { acceptedCounter(EventDimensions(code: code, sources: eventSources)) }.increment(by: count)
        }
        for (reason, count) in rejectedReasons { self.rejected(reason: reason, count: count) }
    }

    func rejected(reason: String, count: Int) {
        rejected.handle(reason) { counter("playhead_events_rejected_total", [("reason", reason)]) }.increment(by: count)
    }

    /// Rejected events answered to their client but not kept in the log (which refused them after it
    /// stored the same request's accepted events; `EventsEndpoint`).
    func rejectedNotKept(count: Int) {
        unkeptCounter?.increment(by: count)
    }

    /// A request refused before its events were read (rate limit, back-pressure, size).
    func shed(reason: String) {
        shedCounters.handle(reason) { counter("playhead_ingest_requests_refused_total", [("reason", reason)]) }.increment()
    }

    /// Request-body bytes held by the edge: still arriving, and being decoded or waiting for the log
    /// (each stage has its own budget of ``IngestConfiguration/maxInFlightBytes``). Sampled every second.
    func inFlightBytes(receiving: Int, processing: Int) {
        receivingGauge?.record(receiving)
        processingGauge?.record(processing)
    }

    /// The index of `path` in `knownRoutes`, or its count for any other path. Compares the bytes
    /// in place: a generic `elementsEqual` over two UTF-8 views, stepped one index at a time for
    /// every route, showed up under single-event load.
    static func routeIndex(_ path: Substring) -> Int {
        var path = path
        return path.withUTF8 { bytes in
            knownRoutes.firstIndex { route in
                var route = route
                return route.withUTF8 { $0.count == bytes.count && $0.elementsEqual(bytes) }
            } ?? knownRoutes.count
        }
    }

    func requestCompleted(path: Substring, method: HTTPMethod, status: HTTPResponseStatus, since start: NIODeadline) {
        let routeIndex = Self.routeIndex(path)
        let route = routeIndex < Self.knownRoutes.count ? Self.knownRoutes[routeIndex] : "other"
        let methodLabel = Self.methodLabel(method)
        let timer = durations.handle(Self.requestKey(route: routeIndex, method: methodLabel.index, status: status.code)) {
            durationTimer(route: route, method: methodLabel.value, status: status.code)
        }
        timer.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
    }
}

/// Metric handles made once per label set, found by a small key under a lock.
private final class HandleCache<Key: Hashable & Sendable, Handle: Sendable>: Sendable {
    private let handles = NIOLockedValueBox<[Key: Handle]>([:])

    /// The handle for `key`, made by `make` the first time.
    func handle(_ key: Key, _ make: () -> Handle) -> Handle {
        handles.withLockedValue { cache in
            if let handle = cache[key] { return handle }
            let handle = make()
            cache[key] = handle
            return handle
        }
    }
}
