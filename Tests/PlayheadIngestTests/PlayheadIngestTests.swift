import NIOCore
import NIOHTTP1
import PlayheadEvents
import Prometheus
import Testing

@testable import PlayheadIngest

@Suite("Ingest metrics")
struct IngestMetricsTests {
    /// The exposition text of a registry.
    func text(_ registry: PrometheusCollectorRegistry) -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    /// The value of the sample whose line starts with `prefix` (name and labels), or nil.
    func sample(_ text: String, _ prefix: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(prefix + " ") {
            return Double(line.dropFirst(prefix.count + 1))
        }
        return nil
    }

    @Test("request durations are labelled by route (unknown paths: other), method and status")
    func requestLabels() {
        let registry = PrometheusCollectorRegistry()
        let metrics = IngestMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let start = NIODeadline.now()
        metrics.requestCompleted(path: "/v1/events", method: .POST, status: .accepted, since: start)
        metrics.requestCompleted(path: "/v1/events", method: .POST, status: .accepted, since: start)
        metrics.requestCompleted(path: "/v1/events", method: .POST, status: .badRequest, since: start)
        metrics.requestCompleted(path: "/healthz", method: .GET, status: .ok, since: start)
        metrics.requestCompleted(path: "/v1/eventsX", method: .GET, status: .notFound, since: start)
        metrics.requestCompleted(path: "/", method: .HEAD, status: .ok, since: start)
        metrics.requestCompleted(path: "/healthz", method: .RAW(value: "PROPFIND"), status: .methodNotAllowed, since: start)
        metrics.requestCompleted(path: "/v1/events", method: .MKCALENDAR, status: .methodNotAllowed, since: start)
        metrics.requestCompleted(path: "/v1/events", method: .PURGE, status: .methodNotAllowed, since: start)
        metrics.requestCompleted(path: "/v1/events", method: .TRACE, status: .methodNotAllowed, since: start)
        metrics.requestCompleted(path: "", method: .RAW(value: "unknown"), status: .badRequest, since: start)
        let exposition = text(registry)
        let name = "playhead_http_server_request_duration_seconds_count"
        #expect(sample(exposition, #"\#(name){route="/v1/events",method="POST",status="202"}"#) == 2, "\(exposition)")
        #expect(sample(exposition, #"\#(name){route="/v1/events",method="POST",status="400"}"#) == 1)
        #expect(sample(exposition, #"\#(name){route="/healthz",method="GET",status="200"}"#) == 1)
        #expect(sample(exposition, #"\#(name){route="other",method="GET",status="404"}"#) == 1)
        #expect(sample(exposition, #"\#(name){route="/",method="HEAD",status="200"}"#) == 1)
        // Methods outside RFC 9110 (and PATCH) are one label value: any client could make series.
        #expect(sample(exposition, #"\#(name){route="/healthz",method="other",status="405"}"#) == 1)
        #expect(sample(exposition, #"\#(name){route="/v1/events",method="other",status="405"}"#) == 2)
        #expect(sample(exposition, #"\#(name){route="/v1/events",method="TRACE",status="405"}"#) == 1)
        #expect(sample(exposition, #"\#(name){route="other",method="unknown",status="400"}"#) == 1)
        #expect(!exposition.contains("PROPFIND") && !exposition.contains("MKCALENDAR") && !exposition.contains("PURGE"))
    }

    @Test("a route is matched by its exact bytes, also from a path sliced out of a longer target")
    func routeMatching() {
        let count = IngestMetrics.knownRoutes.count
        #expect(IngestMetrics.routeIndex(HTTPRequest.split(uri: "/v1/events?write_key=k").path) == 0)
        #expect(IngestMetrics.routeIndex(HTTPRequest.split(uri: "/metrics").path) == IngestMetrics.knownRoutes.firstIndex(of: "/metrics"))
        for other in ["/v1/event", "/v1/eventsX", "", "/V1/EVENTS", "/v1/événements"] {
            #expect(IngestMetrics.routeIndex(other[...]) == count, "\(other)")
        }
    }

    @Test("a request target splits at its first ?, by bytes, whatever characters come before it; an absolute-form target is reduced to its path")
    func targetSplitting() {
        func split(_ uri: String) -> [String] {
            let (path, query) = HTTPRequest.split(uri: uri)
            return [String(path), String(query)]
        }
        #expect(split("/v1/events") == ["/v1/events", ""])
        #expect(split("/v1/events?") == ["/v1/events", ""])
        #expect(split("/v1/events?write_key=a%20b&x=?") == ["/v1/events", "write_key=a%20b&x=?"])
        #expect(split("?only=query") == ["", "only=query"])
        // `e` and a combining accent make one Character; the split still lands right after them.
        #expect(split("/cafe\u{301}?q=1") == ["/cafe\u{301}", "q=1"])
        // The absolute form (RFC 9112, 3.2.2): scheme and authority dropped, "/" when there is no path.
        #expect(split("http://collector.example:8080/v1/events?write_key=k") == ["/v1/events", "write_key=k"])
        #expect(split("HTTPS://collector.example/healthz") == ["/healthz", ""])
        #expect(split("http://collector.example") == ["/", ""])
        #expect(split("http://collector.example?x=1") == ["/", "x=1"])
        // Not the absolute form of http(s): kept as it is (and so matches no route).
        #expect(split("ftp://x/v1/events") == ["ftp://x/v1/events", ""])
        #expect(split("*") == ["*", ""])
        let request = HTTPRequest(head: HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/events?write_key=s3cret"), body: ByteBuffer())
        #expect(request.path == "/v1/events")
        #expect(request.queryParameter("write_key") == "s3cret")
        func key(_ query: String) -> String? {
            HTTPRequest(head: HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/events?" + query), body: ByteBuffer())
                .queryParameter("write_key")
        }
        // A base64 key pasted unescaped keeps its `+` (it once became a space, and the key never matched).
        #expect(key("write_key=ab+c/d=") == "ab+c/d=")
        #expect(key("write_key=ab%2Bc%2Fd%3D") == "ab+c/d=")
        #expect(key("x=1&write_key=%41%62&write_key=z") == "Ab")
        // A `%` without two hex digits after it stays, with what follows (it once swallowed them).
        #expect(key("write_key=a%zzb") == "a%zzb")
        #expect(key("write_key=a%4") == "a%4")
        #expect(key("write_key=a%") == "a%")
        #expect(key("write_key=%e2%82%ac") == "\u{20AC}")
        #expect(key("write_key") == "")
        #expect(key("other=1") == nil)
    }

    @Test("accepted events are counted by their three labels, whatever the mix in a request")
    func acceptedByDimensions() {
        let registry = PrometheusCollectorRegistry()
        let metrics = IngestMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let kinds = Array(0..<EventDimensions.codeCount).filter { $0 % 7 == 3 }.prefix(3).map { EventDimensions(code: $0) }
        #expect(kinds.count == 3)
        // One kind only (counted in place), then three kinds (the first in place, the others spilled).
        var single = DimensionCounts()
        for _ in 0..<4 { single.add(kinds[0].code) }
        metrics.decoded(single, rejectedReasons: [:])
        var mixed = DimensionCounts()
        for (index, count) in [5, 2, 3].enumerated() { for _ in 0..<count { mixed.add(kinds[index].code) } }
        mixed.add(kinds[0].code)
        let last = EventDimensions(code: EventDimensions.codeCount - 1)
        mixed.add(last.code)
        metrics.decoded(mixed, rejectedReasons: ["invalid_value": 2])
        let exposition = text(registry)
        func accepted(_ labels: EventDimensions) -> Double? {
            sample(exposition, #"playhead_events_accepted_total{event_type="\#(labels.eventType)",content_type="\#(labels.contentType)",event_source="\#(labels.eventSource)"}"#)
        }
        #expect(accepted(kinds[0]) == 10, "\(exposition)")
        #expect(accepted(kinds[1]) == 2)
        #expect(accepted(kinds[2]) == 3)
        #expect(accepted(last) == 1)
        #expect(sample(exposition, #"playhead_events_rejected_total{reason="invalid_value"}"#) == 2)
    }
}
