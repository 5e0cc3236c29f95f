import NIOCore

/// Protects the server from slow and idle clients, before any HTTP parsing.
///
/// - A request must arrive whole within `requestTimeout` of its first byte. A client that trickles
///   bytes (slowloris) is answered 408 and disconnected when the deadline passes, whatever its pace.
/// - A connection with no request in progress is closed after `idleTimeout`.
///
/// Requests only record timestamps; one timer per connection checks them. It is never further
/// away than the shorter timeout, and at each firing it closes the connection or moves to the
/// next deadline. So a request costs a clock read, not a timer scheduled and cancelled twice
/// (which showed in profiles of single-event load).
///
/// - After an answer that closes the connection, ``closeLingering()`` shuts the output and reads and
///   drops what the client still sends, until it closes its side (see there why).
///
/// The HTTP handler of the same connection calls ``requestReceived()``, ``responseSent()`` and
/// ``closeLingering()`` directly, on the connection's event loop (user events sent down the
/// pipeline cost two dynamic casts and an allocation per request).
final class ConnectionGuard: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let requestTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    /// When the first byte of the request being received arrived; nil between requests.
    private var requestStarted: NIODeadline?
    /// Since when the connection has had nothing in progress; nil while a request or response is.
    private var idleSince: NIODeadline?
    private var check: Scheduled<Void>?
    private var responsesPending = 0
    /// Bytes of a request came while answers were still due: its deadline runs from the moment the
    /// last of them is out, when it can be served. (It ran from the bytes' arrival: a whole request
    /// pipelined behind a slow answer, one waiting on Kafka, was closed at --request-timeout with no
    /// answer to the request before it, whose events were stored; an outside review.)
    private var bytesBehindAnswers = false
    private var context: ChannelHandlerContext?
    /// While lingering: when it started, and when the last byte (dropped) arrived.
    private var lingering: (since: NIODeadline, lastByte: NIODeadline)?

    /// Set by the connection's HTTP handler: called when a request has not arrived whole within
    /// `requestTimeout`; true when the handler answered 408 and closes the connection itself.
    var requestTimedOut: (() -> Bool)?

    /// How long a lingering connection waits for the client's next byte, at most.
    static let lingerQuiet = TimeAmount.seconds(5)

    /// When the first byte of the request being received arrived; nil between requests. The 408's
    /// duration runs from here: a request whose head never completed has no other start.
    var requestFirstByte: NIODeadline? { requestStarted }

    /// `requestTimeout` in seconds, for the 408's message.
    var requestTimeoutSeconds: Double { Double(requestTimeout.nanoseconds) / 1e9 }

    init(requestTimeout: Duration, idleTimeout: Duration) {
        self.requestTimeout = TimeAmount(requestTimeout)
        self.idleTimeout = TimeAmount(idleTimeout)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { becomeIdle(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        becomeIdle(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if lingering != nil {
            lingering!.lastByte = .now()
            return  // dropped: the answer that closes the connection is out
        }
        if requestStarted == nil {
            if Self.onlyLineEnds(unwrapInboundIn(data)) {
                // Empty lines between requests, which the parser skips (RFC 9112 §2.2): no request
                // has begun, and the connection stays idle (or waits for its answers). They started
                // a request's deadline: an idle connection got 408 after a client's stray CRLF,
                // and the next request inherited the clock; so did one sent after a POST's body
                // while its answer was due (outside reviews).
                context.fireChannelRead(data)
                return
            } else if responsesPending > 0 {
                bytesBehindAnswers = true
            } else {
                let now = NIODeadline.now()
                requestStarted = now
                ensureCheck(context: context, now: now)
            }
        }
        idleSince = nil
        context.fireChannelRead(data)
    }

    private static func onlyLineEnds(_ bytes: ByteBuffer) -> Bool {
        bytes.readableBytes <= 4 && bytes.readableBytesView.allSatisfy { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }
    }

    /// The HTTP handler takes the head of a request: its deadline runs from now if no byte of it
    /// started one (the first byte of a read does). A request pipelined in the same read as the one
    /// before it had none once that one arrived whole: a body that then stalled was closed at the
    /// idle timeout, without the 408 (an outside review of the code).
    func requestBegan(at now: NIODeadline) {
        guard lingering == nil, requestStarted == nil, let context else { return }
        idleSince = nil
        if responsesPending > 0 {
            bytesBehindAnswers = true
            return
        }
        requestStarted = now
        ensureCheck(context: context, now: now)
    }

    /// A request has arrived whole (its deadline no longer applies); its response is pending.
    func requestReceived() {
        requestStarted = nil
        bytesBehindAnswers = false
        responsesPending += 1
    }

    /// A response has been written; the connection is idle once no request or response is in progress.
    func responseSent() {
        responsesPending -= 1
        guard responsesPending == 0, requestStarted == nil, let context else { return }
        if bytesBehindAnswers {
            bytesBehindAnswers = false
            let now = NIODeadline.now()
            requestStarted = now
            ensureCheck(context: context, now: now)
        } else {
            becomeIdle(context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A lingering connection closes when the client has closed its side, and at once when the
        // server shuts down.
        if lingering != nil, (event as? ChannelEvent) == .inputClosed || event is ChannelShouldQuiesceEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Closes the connection after the answer written last, without a reset: that answer goes out,
    /// then end of stream, while what the client still sends is read and dropped (nothing more is
    /// parsed or answered). The connection closes when the client closes its side, when no byte
    /// has come for ``lingerQuiet``, or `requestTimeout` after this call.
    ///
    /// Closing at once while bytes the client sent are unread makes the kernel send a reset. A
    /// client still sending its body (an upload over the size limit, answered 413 from its
    /// `Content-Length`) then gets "connection reset" in place of the answer that says why:
    /// Python's `urllib` did so for every such upload. HTTP/1.1 (RFC 9112 §9.6) asks servers to
    /// close this way; nginx calls it a lingering close.
    func closeLingering() {
        guard let context, lingering == nil else { return }
        let now = NIODeadline.now()
        lingering = (since: now, lastByte: now)
        requestStarted = nil
        idleSince = nil
        let shut = context.eventLoop.makePromise(of: Void.self)
        // The output closes once the answers already written are out.
        context.close(mode: .output, promise: shut)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        shut.futureResult.whenFailure { _ in loopBound.value.close(promise: nil) }
        check?.cancel()
        check = nil
        ensureCheck(context: context, now: now)
    }

    private func becomeIdle(context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        idleSince = now
        ensureCheck(context: context, now: now)
    }

    /// The earliest deadline of what is in progress, or nil.
    private var nextDeadline: NIODeadline? {
        if let lingering { return min(lingering.since + requestTimeout, lingering.lastByte + Self.lingerQuiet) }
        return [requestStarted.map { $0 + requestTimeout }, idleSince.map { $0 + idleTimeout }].compactMap { $0 }.min()
    }

    /// `now` is the time the caller just read (one clock read per request, not two).
    private func ensureCheck(context: ChannelHandlerContext, now: NIODeadline) {
        guard check == nil, let deadline = nextDeadline else { return }
        // Never further than the shorter timeout: a state that starts later has a deadline at least
        // that far away, so the timer fires before it.
        let at = min(deadline, now + min(requestTimeout, idleTimeout))
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleTask(deadline: at) {
            let (handler, context) = loopBound.value
            handler.fire(context: context)
        }
    }

    private func fire(context: ChannelHandlerContext) {
        check = nil
        let now = NIODeadline.now()
        if let deadline = nextDeadline, deadline <= now {
            // A request that did not arrive whole in time: the HTTP handler answers 408 and closes
            // the connection (lingering) when that can be the connection's next answer.
            if lingering == nil, requestStarted != nil, let requestTimedOut, requestTimedOut() { return }
            // The connection was idle too long, a lingering close has waited long enough, or an
            // unfinished request follows answers still due.
            context.close(promise: nil)
            return
        }
        ensureCheck(context: context, now: now)
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
