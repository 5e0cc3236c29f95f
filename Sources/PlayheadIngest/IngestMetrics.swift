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
    private let accepted = NIOLockedValueBox<[Int: Counter]>([:])
    private let rejected = NIOLockedValueBox<[String: Counter]>([:])
    private let shedCounters = NIOLockedValueBox<[String: Counter]>([:])
    private let durations = NIOLockedValueBox<[RequestKey: Metrics.Timer]>([:])
    private let inFlightGauge = Gauge(label: "playhead_ingest_in_flight_bytes")
    private let factory: (any MetricsFactory)?

    private struct RequestKey: Hashable {
        var route: String
        var method: String
        var status: Int
    }

    /// The routes that get their own label value; every other path is `other`.
    static let knownRoutes: Set<String> = ["/v1/events", "/healthz", "/readyz", "/metrics", "/openapi.json", "/", "/live.json"]

    /// - Parameter factory: the metrics factory; `nil` uses the one bootstrapped in `MetricsSystem`.
    public init(factory: (any MetricsFactory)? = nil) {
        self.factory = factory
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        if let factory { return Counter(label: label, dimensions: dimensions, factory: factory) }
        return Counter(label: label, dimensions: dimensions)
    }

    /// - Parameter accepted: accepted events by the `code` of their `EventDimensions`.
    func decoded(_ accepted: [Int: Int], rejectedReasons: [String: Int]) {
        for (code, count) in accepted {
            let handle = self.accepted.withLockedValue { cache in
                if let handle = cache[code] { return handle }
                let labels = EventDimensions(code: code)
                let handle = counter("playhead_events_accepted_total", [
                    ("event_type", labels.eventType), ("content_type", labels.contentType), ("event_source", labels.eventSource),
                ])
                cache[code] = handle
                return handle
            }
            handle.increment(by: count)
        }
        for (reason, count) in rejectedReasons { self.rejected(reason: reason, count: count) }
    }

    func rejected(reason: String, count: Int) {
        let handle = rejected.withLockedValue { cache in
            if let handle = cache[reason] { return handle }
            let handle = counter("playhead_events_rejected_total", [("reason", reason)])
            cache[reason] = handle
            return handle
        }
        handle.increment(by: count)
    }

    /// A request refused before its events were read (rate limit, back-pressure, size).
    func shed(reason: String) {
        let handle = shedCounters.withLockedValue { cache in
            if let handle = cache[reason] { return handle }
            let handle = counter("playhead_ingest_requests_refused_total", [("reason", reason)])
            cache[reason] = handle
            return handle
        }
        handle.increment()
    }

    func inFlightBytes(_ bytes: Int) {
        inFlightGauge.record(bytes)
    }

    func requestCompleted(path: Substring, method: HTTPMethod, status: HTTPResponseStatus, since start: NIODeadline) {
        let route = Self.knownRoutes.contains(String(path)) ? String(path) : "other"
        let key = RequestKey(route: route, method: method.rawValue, status: Int(status.code))
        let timer = durations.withLockedValue { cache in
            if let timer = cache[key] { return timer }
            let dimensions = [("route", key.route), ("method", key.method), ("status", String(key.status))]
            let timer = factory.map { Metrics.Timer(label: "playhead_http_server_request_duration_seconds", dimensions: dimensions, factory: $0) }
                ?? Metrics.Timer(label: "playhead_http_server_request_duration_seconds", dimensions: dimensions)
            cache[key] = timer
            return timer
        }
        timer.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
    }
}
