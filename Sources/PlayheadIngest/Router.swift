import NIOCore
import NIOHTTP1

/// Decides what answers a request. Immutable and shared by every connection.
struct Router: Sendable {
    /// `POST /v1/events`, or nil on a server that only serves `routes` (`playhead observe`).
    let events: EventsEndpoint?
    let metrics: IngestMetrics
    let routes: [String: [String: HTTPRoute]]
    let cors: CORSPolicy
    let maxBodyBytes: Int
    /// Body bytes being received, over every connection, up to the same limit as the bytes being
    /// decoded (``IngestConfiguration/maxInFlightBytes``). Without it, clients that send most of a
    /// large body and then wait held memory without bound: 600 connections with 5 MB each held 3.4 GB
    /// while `playhead_ingest_in_flight_bytes` read 0 (a probe).
    let receiving: InFlightBytes
    let retryAfterSeconds: Int

    init(events: EventsEndpoint?, routes: [HTTPRoute], cors: CORSPolicy, maxBodyBytes: Int, maxReceivingBytes: Int = 256 << 20, retryAfterSeconds: Int = 1) {
        self.events = events
        metrics = events?.metrics ?? IngestMetrics(edge: false)
        var table: [String: [String: HTTPRoute]] = [:]
        for route in routes { table[route.path, default: [:]][route.method.rawValue] = route }
        self.routes = table
        self.cors = cors
        self.maxBodyBytes = maxBodyBytes
        receiving = InFlightBytes(limit: maxReceivingBytes)
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// Whether a request's body is read: only `POST /v1/events`'s, where the server takes events.
    /// Every other request's body is read and dropped (IngestHTTPHandler.droppedBodyBytes).
    func readsBody(_ head: HTTPRequestHead) -> Bool {
        events != nil && head.method == .POST && HTTPRequest.split(uri: head.uri).path == EventsEndpoint.path
    }

    /// A Content-Length's value as a number, `Int.max` for digits past it: the parser takes any
    /// 64-bit length, and one of 2^63 or more was read up to the limit, after a 100 Continue,
    /// before its 413 (an outside review).
    static func contentLength(_ value: String) -> Int? {
        if let length = Int(value) { return length }
        return !value.isEmpty && value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) ? Int.max : nil
    }

    /// An answer that can be given from the head alone (before reading a body), or nil to read on.
    /// `readsBody`: ``readsBody(_:)`` of the head.
    func answerEarly(_ head: HTTPRequestHead, readsBody: Bool) -> HTTPResponse? {
        if let refusal = Self.refuseWithoutHost(head) { return refusal }
        // On every path: a body announced over the limit is refused before it is read (and before
        // `100 Continue`). Paths other than /v1/events read and dropped it up to the limit, after
        // telling the client to go on (an outside review).
        let contentLength = head.headers.first(name: "content-length")
        let announced = contentLength.flatMap(Self.contentLength)
        if let value = contentLength, let length = announced, length > maxBodyBytes {
            return .error(
                .payloadTooLarge, code: "body_too_large",
                message: "the body has \(value) bytes; the limit is \(maxBodyBytes)"
            )
        }
        if readsBody, let events {
            let request = HTTPRequest(head: head, body: ByteBuffer())
            // A body with a Content-Length (within the limit, checked above) is framed by it.
            if announced == nil, case let codings = head.headers[canonicalForm: "transfer-encoding"],
                let coding = codings.first(where: { $0.lowercased() != "chunked" })
            {
                if codings.last?.lowercased() != "chunked" {
                    // Without `chunked` last the body's length cannot be known: RFC 9112 §6.3 has
                    // a server answer 400 and close the connection (until 2026-12-07 this got 501,
                    // found by scripts/fuzz-http's contract check: the other paths answered 400).
                    return .error(
                        .badRequest, code: "malformed_http",
                        message: "Transfer-Encoding \(codings.joined(separator: ", ")) does not end with chunked, so the body's length cannot be known (RFC 9112 §6.3); send Content-Length or Transfer-Encoding: chunked, and compress with Content-Encoding: gzip"
                    )
                }
                // The parser takes the body's framing from the final `chunked` and would hand over
                // the bytes still in that coding (`gzip, chunked`): RFC 9112 §6.1 asks for 501.
                return .error(
                    .notImplemented, code: "unsupported_transfer_encoding",
                    message: "Transfer-Encoding \(coding) is not supported; send the body chunked or with Content-Length, and compress it with Content-Encoding: gzip"
                )
            }
            if !cors.allowsEveryOrigin, let origin = head.headers.first(name: "origin"), !cors.allows(origin: origin) {
                // CORS alone only hides the answer from the page: a `sendBeacon` or a `no-cors`
                // fetch of text/plain needs no preflight, so any page could make its visitors'
                // browsers send events (a probe, 2026-12-04). Clients that send no Origin (apps,
                // servers) are not affected.
                return .error(
                    .forbidden, code: "origin_not_allowed",
                    message: "origin \(origin) may not send events here: it is not one of the server's --cors-origin values"
                )
            }
            return events.checkHead(request)
        }
        return nil
    }

    /// RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request with no `Host` header, or
    /// more than one. (A version other than 1.0 and 1.1 never gets here: the parser refuses it,
    /// and `answerUnparseable` answers 505.)
    static func refuseWithoutHost(_ head: HTTPRequestHead) -> HTTPResponse? {
        guard head.version.minor >= 1 else { return nil }  // HTTP/1.0 has no Host requirement
        var hosts = 0
        for (name, _) in head.headers where isHost(name) { hosts += 1 }
        guard hosts != 1 else { return nil }
        return .error(
            .badRequest, code: "malformed_http",
            message: "an HTTP/1.1 request must have exactly one Host header (RFC 9112 §3.2); this one has \(hosts)"
        )
    }

    /// `name == "host"`, ignoring ASCII case, without allocating: it runs for every request.
    private static func isHost(_ name: String) -> Bool {
        var bytes = name.utf8.makeIterator()
        for expected in "host".utf8 {
            guard let byte = bytes.next(), byte | 0x20 == expected else { return false }
        }
        return bytes.next() == nil
    }

    /// The answer to a complete request.
    func respond(to request: HTTPRequest, on eventLoop: any EventLoop) -> EventLoopFuture<HTTPResponse> {
        if request.path == EventsEndpoint.path, let events {
            if request.head.method == .OPTIONS {
                return eventLoop.makeSucceededFuture(cors.preflight(request))
            }
            guard request.head.method == .POST else {
                return eventLoop.makeSucceededFuture(methodNotAllowed(request, allow: "POST, OPTIONS"))
            }
            return events.handle(request, on: eventLoop)
        }
        if request.path == "*" {
            // The asterisk form names the server, not a resource, and is for OPTIONS only (RFC 9112 §3.2.4,
            // RFC 9110 §9.3.7): it is answered with every method some path of this server takes.
            guard request.head.method == .OPTIONS else {
                // Closed after, as every other malformed_http is (it was kept open: an outside review).
                var refusal = HTTPResponse.error(.badRequest, code: "malformed_http", message: "the request target * is for OPTIONS only (RFC 9112 §3.2.4); the connection is closed")
                refusal.headers.replaceOrAdd(name: "Connection", value: "close")
                return eventLoop.makeSucceededFuture(refusal)
            }
            return eventLoop.makeSucceededFuture(HTTPResponse(status: .noContent, headers: ["Allow": serverMethods, "Content-Length": "0"]))
        }
        guard let byMethod = routes[String(request.path)] else {
            if request.head.method == .OPTIONS && request.head.headers.contains(name: "access-control-request-method") {
                // A preflight for a path the server does not serve is answered as /v1/events' is,
                // so that the request it clears gets its 404 (which carries CORS headers) and the
                // page sees the status. A fetch with JSON or a write key is preflighted, and its
                // mistyped path (`//v1/events`) showed as a CORS error, the preflight's 404 not
                // being "ok" (an outside review with headless Chromium).
                return eventLoop.makeSucceededFuture(cors.preflight(request))
            }
            return eventLoop.makeSucceededFuture(
                .error(.notFound, code: "not_found", message: "no route for \(request.head.method.rawValue) \(request.path)")
            )
        }
        let method = request.head.method == .HEAD ? HTTPMethod.GET : request.head.method
        // HEAD is answered wherever GET is (RFC 9110 §9.3.2), so it is listed too.
        let allow = (Array(byMethod.keys) + (byMethod["GET"] == nil ? [] : ["HEAD"]) + ["OPTIONS"]).sorted().joined(separator: ", ")
        if method == .OPTIONS {
            // Not a CORS preflight: only /v1/events is offered to other origins. The methods, as RFC 9110 §9.3.7 has it.
            return eventLoop.makeSucceededFuture(HTTPResponse(status: .noContent, headers: ["Allow": allow, "Content-Length": "0"]))
        }
        guard let route = byMethod[method.rawValue] else {
            return eventLoop.makeSucceededFuture(methodNotAllowed(request, allow: allow))
        }
        return eventLoop.makeSucceededFuture(route.handler(request))
    }

    /// Every method some path takes, for `OPTIONS *`.
    private var serverMethods: String {
        var methods = Set(routes.values.flatMap(\.keys)).union(["OPTIONS"])
        if methods.contains("GET") { methods.insert("HEAD") }
        if events != nil { methods.insert("POST") }
        return methods.sorted().joined(separator: ", ")
    }

    /// Records `playhead_ingest_in_flight_bytes` from both budgets.
    func recordInFlightBytes() {
        metrics.inFlightBytes(receiving: receiving.bytes, processing: events?.processingBytes ?? 0)
    }

    private func methodNotAllowed(_ request: HTTPRequest, allow: String) -> HTTPResponse {
        var response = HTTPResponse.error(
            .methodNotAllowed, code: "method_not_allowed",
            message: "\(request.path) does not accept \(request.head.method.rawValue); allowed: \(allow)"
        )
        response.headers.replaceOrAdd(name: "Allow", value: allow)
        return response
    }
}

/// One per connection: gathers a request, asks the router, writes the answer.
///
/// It also does what NIO's `HTTPServerPipelineHandler` would: answers pipelined requests in order
/// and closes the connection when the server quiesces. That handler stops reading from the socket
/// while every response is pending, which costs two `epoll_ctl` calls per request when responses
/// wait for an fsync; this one holds reads only when a pipelined request is actually waiting, or
/// when answers pile up unsent (a client that sends requests but does not read the answers).
final class IngestHTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer)
        /// An early answer was sent; the rest of this request is ignored and the connection closes.
        case discarding
        case responding
    }

    private let router: Router
    private let inFlight: InFlightRequests
    private let connectionGuard: ConnectionGuard
    private var state = State.idle
    private var requestStarted = NIODeadline.now()
    /// Parts of pipelined requests that arrived while a response was pending, in order.
    private var waiting = CircularBuffer<HTTPServerRequestPart>()
    /// ``answerWaiting(context:)`` is taking requests from ``waiting``: a request answered at once
    /// (any route but the events POST, or a refusal) calls it again from inside its answer, which
    /// then leaves the queue to the loop already running. Each such answer recursed one level
    /// deeper: 20,000 small requests pipelined behind a POST overflowed the event loop's stack, and
    /// the server died (an outside review of the code).
    private var answeringWaiting = false
    /// A read held back while pipelined requests wait or the connection is not writable (issued
    /// once they are answered and it is).
    private var readHeld = false
    /// The answer that closes the connection is written: nothing more is read into a request.
    private var closing = false
    /// The channel's writability as last reported (`channelWritabilityChanged`): false while the
    /// answers written are over the outbound buffer's high-water mark.
    private var writable = true
    /// The server is shutting down: close once the current response is out.
    private var quiescing = false
    /// The client closed its side (half-close, as `nc -N` and some HTTP/1.0 clients do): answer
    /// the requests it sent, then close.
    private var inputClosed = false
    /// Bytes after the requests read so far are not HTTP: once those requests are answered, the
    /// connection gets a 400 and is closed.
    private var unparseable: HTTPParserError?
    /// The HTTP encoder's context: bytes written there go out as they are (``HTTPResponse/encoded``).
    private var encoderContext: ChannelHandlerContext?
    /// Bytes of the body being received, reserved in ``Router/receiving``; released when the body is
    /// whole (the endpoint then reserves what it decodes), refused, or the connection goes away.
    private var reservedBodyBytes = 0
    /// Bytes of a body that no route reads (any request but `POST /v1/events`), read and dropped:
    /// counted only against `--max-body-bytes`. Kept and counted in the shared budget until
    /// 2026-12-07, they let a client with no write key (an `OPTIONS /v1/events`, a `GET /healthz`
    /// with a body) use up that budget, and every keyed POST got 503 `overloaded` (an outside review).
    private var droppedBodyBytes: Int?
    /// The connection's peer as `--fill-ip-address` needs it: looked up at its first request.
    private var peer: ClientPeer?
    /// The head read last asks for another protocol (``HTTPRequestHead/handsOverConnection``).
    private var lastHeadHandsOver = false
    /// NIO's parser has read the end of a request that hands the connection over: it parses
    /// nothing more and would keep every later byte in memory, so nothing more is read until the
    /// answer that closes the connection is out (from then on the connection guard drops what
    /// comes). Reading on let one client fill memory at the speed of loopback, 1 GB in 0.9 s, and
    /// left the requests behind it unanswered until a timeout (a probe, 2026-12-05).
    private var parserStopped = false

    private func releaseBodyBytes() {
        if reservedBodyBytes > 0 {
            router.receiving.release(reservedBodyBytes)
            reservedBodyBytes = 0
        }
    }

    init(router: Router, inFlight: InFlightRequests, connectionGuard: ConnectionGuard) {
        self.router = router
        self.inFlight = inFlight
        self.connectionGuard = connectionGuard
    }

    func handlerAdded(context: ChannelHandlerContext) {
        encoderContext = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
        connectionGuard.requestTimedOut = { [unowned self] in self.requestTimedOut(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        encoderContext = nil
        connectionGuard.requestTimedOut = nil
        releaseBodyBytes()
    }

    /// The connection guard's request deadline passed before the request arrived whole. When its
    /// answer can be the connection's next one (nothing being answered, waiting or refused), answers
    /// 408 (RFC 9110 §15.5.9; the connection was closed with no answer before 2026-12-03) and closes
    /// the connection as after any answer that closes, and returns true; otherwise the guard closes it.
    private func requestTimedOut(context: ChannelHandlerContext) -> Bool {
        guard !closing, waiting.isEmpty, unparseable == nil else { return false }
        let head: HTTPRequestHead?
        switch state {
        case .idle: head = nil  // the head itself did not arrive whole
        case .receiving(let received, _): head = received
        case .responding, .discarding: return false
        }
        releaseBodyBytes()
        state = .discarding
        var response = HTTPResponse.error(
            .requestTimeout, code: "request_timeout",
            message: "the request did not arrive whole within \(connectionGuard.requestTimeoutSeconds) s of its first byte (--request-timeout); the connection is closed"
        )
        response.headers.replaceOrAdd(name: "Connection", value: "close")
        response.headers.replaceOrAdd(name: "Content-Length", value: String(response.body.readableBytes))
        Self.addAnswerHeaders(&response.headers)
        // A page's request to /v1/events that timed out sees the 408, not a CORS error.
        if let head { addCORS(&response.headers, for: head, status: response.status) }
        // Counted under its route and method when its head came, else as the parser's refusals are,
        // and timed from the request's first byte (the request timeout's start).
        router.metrics.requestCompleted(
            path: head.map { HTTPRequest.split(uri: $0.uri).path } ?? "", method: head?.method ?? .RAW(value: "unknown"),
            status: response.status, since: connectionGuard.requestFirstByte ?? requestStarted
        )
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: response.headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        endAndClose(context: context)
        return true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After the answer that closes the connection, requests that were pipelined behind it are
        // not read: their clients get no answer, so their events must not be stored either (the
        // clients send them again).
        if closing { return }
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let head): lastHeadHandsOver = head.handsOverConnection
        case .end: if lastHeadHandsOver { parserStopped = true }
        case .body: break
        }
        if !waiting.isEmpty || mustWait(part) {
            waiting.append(part)
        } else {
            receive(part, context: context)
        }
    }

    /// Whether `part` must wait: a response is pending (answers go out in order), or it starts a
    /// request while the answers written have not drained. One read can hold a thousand small
    /// pipelined requests; answering them all while the client reads nothing piled up their
    /// answers in memory (20,000 pipelined `GET /openapi.json`, under 1 MB, made 290 MB of answers).
    private func mustWait(_ part: HTTPServerRequestPart) -> Bool {
        if case .responding = state { return true }
        if writable { return false }
        guard case .head = part else { return false }
        return true
    }

    func read(context: ChannelHandlerContext) {
        // Back-pressure: while answers wait in the outbound buffer (over its high-water mark), the
        // client is sending faster than it reads, and reading on would store its events and pile
        // up their answers in memory without bound. A closing connection reads on (and drops what
        // it reads, `ConnectionGuard.closeLingering`).
        if closing || (waiting.isEmpty && writable && !parserStopped) {
            context.read()
        } else {
            readHeld = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        if writable { answerWaiting(context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// Issues a held read once no pipelined request waits and the answers have drained.
    private func resumeReading(context: ChannelHandlerContext) {
        guard readHeld, waiting.isEmpty, writable, !parserStopped else { return }
        readHeld = false
        context.read()
    }

    /// What NIO's `HTTPServerProtocolErrorHandler` would do, in order: that handler answers a parse
    /// error at once, so with pipelined requests the 400 went out ahead of the answers to the
    /// requests before the bad bytes (a client took it for the first request's answer, though that
    /// request's events were stored), and the connection stayed open after `Connection: close`.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parseError = error as? HTTPParserError else {
            if error is ByteToMessageDecoderError.PayloadTooLargeError {
                // More unparsed bytes than a request head can be (``IngestServer/maxUnparsedBytes``):
                // the parser has stopped on something ``HTTPRequestHead/handsOverConnection`` did
                // not foresee. Closed rather than buffered without bound.
                context.close(promise: nil)
                return
            }
            context.fireErrorCaught(error)
            return
        }
        if closing { return }
        // The decoder reads nothing more from this connection.
        if unparseable == nil { unparseable = parseError }
        answerUnparseable(context: context)
    }

    /// Answers the bad bytes once every request before them is answered.
    private func answerUnparseable(context: ChannelHandlerContext) {
        guard let parseError = unparseable, waiting.isEmpty else { return }
        switch state {
        case .responding:
            return  // after this answer (`answerWaiting`)
        case .discarding:
            // An answer that closes the connection is already out: nothing more is said.
            unparseable = nil
            return
        case .idle, .receiving:
            break
        }
        unparseable = nil
        state = .discarding
        // The body read so far is dropped: its bytes leave the receiving budget now, as at a 413 or
        // a 408. They stayed counted until the lingering close ended (up to --request-timeout),
        // and other clients got 503 meanwhile (an outside review of the code).
        releaseBodyBytes()
        // The parser takes HTTP/1.0 and HTTP/1.1 only: any other version (`HTTP/2.0` in a request
        // line, or none at all as in HTTP/0.9) is one the server does not speak (RFC 9110 §15.6.6).
        // A head over the parser's limit is well-formed HTTP that is too large: 431 (RFC 6585 §5).
        let (status, code): (HTTPResponseStatus, String) = switch parseError {
        case .invalidVersion: (.httpVersionNotSupported, "http_version_not_supported")
        case .headerOverflow: (.requestHeaderFieldsTooLarge, "headers_too_large")
        default: (.badRequest, "malformed_http")
        }
        var response = HTTPResponse.error(
            status, code: code,
            message: "the request could not be parsed as HTTP (\(Self.explain(parseError))); the connection is closed"
        )
        response.headers.replaceOrAdd(name: "Connection", value: "close")
        response.headers.replaceOrAdd(name: "Content-Length", value: String(response.body.readableBytes))
        Self.addAnswerHeaders(&response.headers)
        // Counted like every answer, under route `other` and method `unknown` (nothing was parsed).
        router.metrics.requestCompleted(path: "", method: .RAW(value: "unknown"), status: response.status, since: .now())
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: response.headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        endAndClose(context: context)
    }

    /// CORS is for browser SDKs sending events: the answers of `/v1/events` carry its headers, and
    /// the read-only routes (`/metrics`, `/live.json`, `/openapi.json`, the health checks) stay
    /// unreadable to pages of other origins, which could otherwise read a server on an internal
    /// network through a visitor's browser. A 404 too (no route: it says nothing a page could use):
    /// a mistyped path (`//v1/events` from a base URL with a trailing slash) showed in the browser
    /// as a CORS error without the status, and the developer looked for a CORS setting instead of
    /// the typo (a probe).
    private func addCORS(_ headers: inout HTTPHeaders, for head: HTTPRequestHead, status: HTTPResponseStatus) {
        if HTTPRequest.split(uri: head.uri).path == EventsEndpoint.path || status == .notFound {
            router.cors.decorate(&headers, requestHeaders: head.headers)
            // Such an answer differs with the Origin sent (an allowed one is echoed), so it says so
            // even to a request without one: a 404 or 405 may be cached (RFC 9111 §4.2.2), and a
            // shared cache handed the copy without CORS headers to a page (an outside review).
            if !headers.contains(name: "vary") { headers.add(name: "Vary", value: "Origin") }
        }
    }

    /// What every answer but the shared one to a single accepted event carries: it says what it is
    /// (Content-Type), and a browser must not guess otherwise. The 408 and the parser's answers
    /// (400, 431, 505) lacked it until 2026-12-07 (an outside review).
    static func addAnswerHeaders(_ headers: inout HTTPHeaders) {
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
    }

    /// NIO's words for a parse error, except where they would puzzle a client.
    static func explain(_ error: HTTPParserError) -> String {
        switch error {
        case .paused:
            // llhttp stops at `PRI * HTTP/2.0`, the preface of HTTP/2 with prior knowledge
            // (`curl --http2-prior-knowledge`); NIO calls that "paused (swift-http-parser error)".
            "HTTP/2 is not supported, with prior knowledge (h2c) or otherwise; send HTTP/1.1"
        case .invalidVersion:
            "the request line has an HTTP version other than HTTP/1.1 and HTTP/1.0, the only ones spoken here, or does not end with CRLF"
        case .unexpectedContentLength:
            // llhttp: HPE_UNEXPECTED_CONTENT_LENGTH, "Duplicate Content-Length".
            "more than one Content-Length header; send exactly one"
        case .unknown:
            // What NIO maps llhttp's HPE_INVALID_TRANSFER_ENCODING and HPE_CR_EXPECTED to: a
            // Transfer-Encoding after a Content-Length falls here too.
            "a Transfer-Encoding that cannot be taken (sent with Content-Length, or with a coding after chunked) or a line not ended by CRLF; send either Content-Length or Transfer-Encoding: chunked, and end every line with CRLF"
        case .invalidContentLength:
            // llhttp also says so of a Content-Length after a Transfer-Encoding.
            "Content-Length is not one decimal number, or is sent with Transfer-Encoding (a request has one or the other)"
        case .invalidChunkSize:
            "a chunk size is not a hexadecimal number"
        case .invalidHeaderToken:
            "a header name or value has a character HTTP does not allow there (a space before the colon, a control character)"
        case .lfExpected, .strictModeAssertion:
            // llhttp: HPE_LF_EXPECTED after a header value; HPE_STRICT for a CR without LF after the
            // request line, at the end of the headers, or around a chunk.
            "a CR not followed by LF, or a line not ended by CRLF; end every line with CRLF"
        case .headerOverflow:
            "the request line and headers, or the trailers after a chunked body, are longer than 80 KiB, the most taken"
        case .invalidConstant:
            // llhttp: HPE_INVALID_CONSTANT, "invalid constant string", as for `http/1.1`.
            "a fixed part of the request line is not spelt as HTTP spells it (the version is `HTTP/1.1` or `HTTP/1.0`, in capitals)"
        case .invalidEOFState:
            // NIO: "stream ended at an unexpected time", after a half-close in the middle of a request.
            "the client closed its side of the connection before the request was whole (a body shorter than its Content-Length, or a chunked body without its last chunk); nothing of it was stored"
        case .invalidMethod:
            // The parser stops at the first byte no method it knows starts with, so a method token
            // it does not know (`FOO`, `get`) and bytes that are not HTTP (a TLS hello) look alike:
            // both are 400 rather than 501 (RFC 9110 §15.6.2). The message said "not a token HTTP
            // allows", which FOO is (an outside review).
            "the method is not one this server knows, or the bytes are not HTTP: methods are case-sensitive, and it takes GET, HEAD, POST and OPTIONS"
        case .invalidURL:
            "the request target is not a valid URL path"
        default:
            "\(error)"
        }
    }

    /// Ends the answer being written and closes the connection once it is out: nothing more is
    /// read into a request or answered on it.
    private func endAndClose(context: ChannelHandlerContext) {
        closing = true
        waiting.removeAll()
        if inputClosed || quiescing {
            // Nothing more comes from the client, or the server is stopping.
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                loopBound.value.close(promise: nil)
            }
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        connectionGuard.closeLingering()
        if readHeld {
            readHeld = false
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // Without remote half-closure NIO would close the connection at once, and the answer to
            // a request already sent (its events stored) would never reach the client.
            inputClosed = true
            closeIfNothingToAnswer(context: context)
            return
        }
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        quiescing = true
        if case .idle = state, waiting.isEmpty { context.close(promise: nil) }
    }

    /// After the client's half-close: closes when no request is being answered or waits to be (a
    /// request that is only partly received cannot be completed any more).
    private func closeIfNothingToAnswer(context: ChannelHandlerContext) {
        guard inputClosed, waiting.isEmpty else { return }
        switch state {
        case .idle, .receiving: context.close(promise: nil)
        case .responding, .discarding: break  // the answer closes the connection (`write`)
        }
    }

    private func receive(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            requestStarted = .now()
            connectionGuard.requestBegan(at: requestStarted)
            let kept = router.readsBody(head)
            if let early = router.answerEarly(head, readsBody: kept) {
                state = .discarding
                connectionGuard.requestReceived()
                write(early, for: head, keepAlive: false, context: context)
                return
            }
            // Room for the announced body up to 64 KiB; a larger one grows the buffer as it arrives.
            // Reserving all of it from the head let 10,000 connections that announced 5 MiB and sent
            // a byte reserve 89 GB of address space, counted by no budget (a probe).
            let expected = head.headers.first(name: "content-length").flatMap(Int.init) ?? 0
            droppedBodyBytes = kept ? nil : 0
            state = .receiving(head, context.channel.allocator.buffer(capacity: kept ? min(expected, router.maxBodyBytes, 64 << 10) : 0))
            if head.version.major == 1 && head.version.minor >= 1,
                let expect = head.headers.first(name: "expect"), expect.lowercased() == "100-continue"
            {
                // The client waits for this before it sends the body (curl waits a second, then
                // sends it anyway). A request refused from its head got its final answer above.
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(var chunk):
            guard case .receiving(let head, var body) = state else { return }
            state = .idle  // drop the reference so the buffer is written in place
            let dropped = droppedBodyBytes.map { $0 + chunk.readableBytes }
            if (dropped ?? (body.readableBytes + chunk.readableBytes)) > router.maxBodyBytes {
                releaseBodyBytes()
                state = .discarding
                connectionGuard.requestReceived()
                let response = HTTPResponse.error(
                    .payloadTooLarge, code: "body_too_large",
                    message: "the body is larger than the limit of \(router.maxBodyBytes) bytes"
                )
                write(response, for: head, keepAlive: false, context: context)
                return
            }
            if let dropped {
                droppedBodyBytes = dropped
                state = .receiving(head, body)
                return
            }
            // A request is always let in when nothing else is being received, whatever its size.
            guard router.receiving.reserve(chunk.readableBytes) else {
                releaseBodyBytes()
                state = .discarding
                connectionGuard.requestReceived()
                router.metrics.shed(reason: "overloaded")
                let response = HTTPResponse.error(
                    .serviceUnavailable, code: "overloaded",
                    message: "the server's budget of \(router.receiving.limit) bytes for request bodies being received is used up (--max-in-flight-bytes); retry later",
                    retryAfterSeconds: router.retryAfterSeconds
                )
                write(response, for: head, keepAlive: false, context: context)
                return
            }
            reservedBodyBytes += chunk.readableBytes
            body.writeBuffer(&chunk)
            state = .receiving(head, body)
        case .end:
            releaseBodyBytes()
            switch state {
            case .receiving(let head, let body):
                state = .responding
                connectionGuard.requestReceived()
                var request = HTTPRequest(head: head, body: body)
                if let resolver = router.events?.clientAddresses {
                    if peer == nil { peer = resolver.peer(context.channel.remoteAddress) }
                    request.peer = peer
                }
                inFlight.begin()
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                router.respond(to: request, on: context.eventLoop).whenComplete { result in
                    let (handler, context) = loopBound.value
                    handler.inFlight.end()
                    var response: HTTPResponse
                    switch result {
                    case .success(let value): response = value
                    case .failure(let error):
                        // With Retry-After, as every 500 of the API has (docs/openapi.yaml).
                        response = .error(.internalServerError, code: "internal_error", message: "\(error)")
                        response.headers.replaceOrAdd(name: "Retry-After", value: "1")
                    }
                    handler.state = .idle
                    handler.write(response, for: head, keepAlive: head.isKeepAlive, context: context)
                    handler.answerWaiting(context: context)
                }
            case .discarding:
                state = .idle
            case .idle, .responding:
                break
            }
        }
    }

    /// Goes on with pipelined requests once a response is out (or the answers have drained), and
    /// reads again when none waits.
    private func answerWaiting(context: ChannelHandlerContext) {
        // After the answer that closes the connection nothing more is answered (not even bytes
        // that are not HTTP, seen before it went out).
        if closing || answeringWaiting { return }
        answeringWaiting = true
        while !waiting.isEmpty && !closing {
            if mustWait(waiting.first!) {
                answeringWaiting = false
                return
            }
            receive(waiting.removeFirst(), context: context)
        }
        answeringWaiting = false
        if closing { return }
        if unparseable != nil {
            answerUnparseable(context: context)
            return
        }
        closeIfNothingToAnswer(context: context)
        resumeReading(context: context)
    }

    private func write(_ response: HTTPResponse, for head: HTTPRequestHead, keepAlive requested: Bool, context: ChannelHandlerContext) {
        // An HTTP/1.0 message with Transfer-Encoding has faulty framing: answered, then the connection
        // is closed (RFC 9112 §6.1), so that a proxy that framed it otherwise cannot smuggle a request
        // behind it. (It was kept open: a probe, 2026-12-04.)
        let faultyFraming = head.version.minor == 0 && head.headers.contains(name: "transfer-encoding")
        // A request that hands the connection over (`Upgrade`, `CONNECT`) is answered as HTTP/1.1,
        // without switching (RFC 9110 §7.8), and the connection is closed after the answer: NIO's
        // parser reads no request after it. (Only a connection whose parser has stopped can hold
        // one: its headers are not scanned again for every answer.)
        let handsOver = parserStopped && head.handsOverConnection
        // An answer that says `Connection: close` (the router's malformed_http for `GET *`) closes it.
        // (One encoded once never does: not looked for on the single-event path.)
        let closes = response.encoded == nil && response.headers.first(name: "connection")?.lowercased() == "close"
        let keepAlive = requested && !quiescing && !(inputClosed && waiting.isEmpty) && !faultyFraming && !handsOver && !closes
        router.metrics.requestCompleted(path: HTTPRequest.split(uri: head.uri).path, method: head.method, status: response.status, since: requestStarted)
        if let encoded = response.encoded, let encoderContext, keepAlive, head.version == .http1_1,
            head.method != .HEAD, !head.headers.contains(name: "origin")
        {
            // An answer encoded once, with nothing to add (no CORS headers, no Connection: close):
            // written as bytes below the HTTP encoder. The encoder keeps no state across a whole
            // response, so bypassing it changes nothing for the responses before and after. (That
            // holds because the server adds the encoder itself: `configureHTTPServerPipeline` would
            // have it queue every request's method; see IngestServer.) About 5 % of the CPU under
            // single-event load.
            encoderContext.writeAndFlush(NIOAny(IOData.byteBuffer(encoded)), promise: nil)
            connectionGuard.responseSent()
            return
        }
        var headers = response.headers
        addCORS(&headers, for: head, status: response.status)
        if !headers.contains(name: "content-length") {
            headers.add(name: "Content-Length", value: String(response.body.readableBytes))
        }
        Self.addAnswerHeaders(&headers)
        if !keepAlive {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if head.version.major == 1 && head.version.minor == 0 {
            // An HTTP/1.0 client (`ab -k`) keeps the connection only if the answer says so.
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        let responseHead = HTTPResponseHead(version: head.version, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if head.method != .HEAD && response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        if !keepAlive {
            endAndClose(context: context)
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        connectionGuard.responseSent()
    }
}

extension HTTPRequestHead {
    /// Whether NIO's parser (llhttp) takes the bytes after this request for another protocol and
    /// parses no further request on the connection: a `CONNECT`, or an `Upgrade` header with
    /// `upgrade` among the `Connection` options (as `curl --http2` sends for `h2c`, or a WebSocket
    /// handshake). llhttp reads `Proxy-Connection` as `Connection` (a code review found the bypass).
    /// This errs towards true (an empty `Upgrade` too): such a connection is only closed after its
    /// answer.
    var handsOverConnection: Bool {
        if method == .CONNECT { return true }
        guard headers.contains(name: "upgrade") else { return false }
        return (headers[canonicalForm: "connection"] + headers[canonicalForm: "proxy-connection"]).contains { $0.lowercased() == "upgrade" }
    }
}
