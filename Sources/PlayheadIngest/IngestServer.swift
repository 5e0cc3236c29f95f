import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Counts requests being processed, so that a graceful shutdown can wait for them. An atomic, not a
/// lock: both event loops count every request, twice.
final class InFlightRequests: Sendable {
    private let count = Atomic<Int>(0)
    func begin() { count.wrappingAdd(1, ordering: .relaxed) }
    func end() { count.wrappingSubtract(1, ordering: .relaxed) }
    var current: Int { count.load(ordering: .relaxed) }
}

/// The HTTP edge: `POST /v1/events`, health and readiness, the OpenAPI document, and any routes
/// other modules add (metrics, the live page).
///
/// Run it in a `ServiceGroup` after the log, so that it starts after the log and stops before it.
/// On graceful shutdown it stops accepting connections, finishes the requests in flight (their
/// events are already on their way to the log), closes idle connections and returns.
public final class IngestServer: Service, Sendable {
    /// The most bytes NIO's HTTP decoder may hold unparsed for a connection: a request head being
    /// received (at most 80 KiB) and one read after it. Past it the parser has stopped on bytes it
    /// will never parse (after a request that switches protocols, which the handler closes anyway),
    /// and the connection is closed: a backstop against holding them without bound.
    static let maxUnparsedBytes = 512 << 10
    public let configuration: IngestConfiguration
    private let router: Router
    private let inFlight = InFlightRequests()
    private let logger: Logger
    /// How its log lines begin: `ingest` with `POST /v1/events`, `http` without.
    private let role: String
    private let state = NIOLockedValueBox<LifecycleState>(.idle)
    private let boundAddress = NIOLockedValueBox<SocketAddress?>(nil)
    private let addressWaiters = NIOLockedValueBox<[CheckedContinuation<SocketAddress, any Error>]>([])

    private enum LifecycleState { case idle, running, draining, stopped }

    /// - Parameters:
    ///   - configuration: limits, keys, CORS, timeouts.
    ///   - events: what `POST /v1/events` does with a request; nil for a server of `routes` only.
    ///   - routes: extra routes (for example `GET /metrics`).
    ///   - readiness: `nil` when the pipeline can take events, else the reason why not (for `/readyz`).
    public init(
        configuration: IngestConfiguration,
        events: EventsEndpoint?,
        routes: [HTTPRoute] = [],
        readiness: @escaping @Sendable () -> String? = { nil },
        logger: Logger
    ) {
        self.configuration = configuration
        self.logger = logger
        // `store` and `observe` run this server too, for their metrics and health: their logs say `http:`.
        role = events == nil ? "http" : "ingest"
        let state = self.state
        let builtIn = [
            HTTPRoute(.GET, "/healthz") { _ in .json(.ok, #"{"status":"ok"}"#) },
            HTTPRoute(.GET, "/readyz") { _ in
                let draining = state.withLockedValue { $0 != .running }
                if let reason = draining ? "shutting down" : readiness() {
                    return .error(.serviceUnavailable, code: "not_ready", message: reason, retryAfterSeconds: configuration.retryAfterSeconds)
                }
                return .json(.ok, #"{"status":"ready"}"#)
            },
            HTTPRoute(.GET, "/openapi.json") { _ in
                HTTPResponse(status: .ok, contentType: "application/json", body: ByteBuffer(string: OpenAPIDocument.json))
            },
        ]
        // `GET /metrics` first sets `playhead_ready` to what `/readyz` would say: a `store` or
        // `observe` that cannot read Kafka (or write the lake) showed it only in `/readyz`, which no
        // alert reads, and no lag moved (a Kafka review, 2026-12-06).
        let ready = Gauge(label: "playhead_ready")
        let withReadiness = routes.map { route -> HTTPRoute in
            guard route.method == .GET, route.path == "/metrics" else { return route }
            let render = route.handler
            return HTTPRoute(.GET, "/metrics") { request in
                let draining = state.withLockedValue { $0 != .running }
                ready.record(draining || readiness() != nil ? 0 : 1)
                return render(request)
            }
        }
        router = Router(
            events: events,
            routes: builtIn + withReadiness,
            cors: CORSPolicy(origins: configuration.corsAllowedOrigins),
            maxBodyBytes: configuration.maxBodyBytes,
            maxReceivingBytes: configuration.maxInFlightBytes,
            retryAfterSeconds: configuration.retryAfterSeconds
        )
    }

    /// The address the server listens on, once it is bound (useful with port 0).
    public var localAddress: SocketAddress {
        get async throws {
            if let address = boundAddress.withLockedValue({ $0 }) { return address }
            return try await withCheckedThrowingContinuation { continuation in
                let ready: SocketAddress? = boundAddress.withLockedValue { address in
                    if let address { return address }
                    addressWaiters.withLockedValue { $0.append(continuation) }
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }

    public func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
        do {
            try await serve(on: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        // Only now: the quiescing helper of `serve` completes a promise on the group when it goes.
        if inFlight.current == 0 {
            try? await group.shutdownGracefully()
        } else {
            // Requests still in flight after the grace period (a stalled log) are answered later, on
            // their connection's event loop, when the log fails or completes their append (a stopping
            // Kafka producer fails what it holds). The loops must still run then: NIO calls a task
            // scheduled on a stopped loop a misuse ("Cannot schedule tasks on an EventLoop that has
            // already shut down", a crash with SWIFTNIO_STRICT). The group stops after the last one,
            // or with the process.
            let inFlight = self.inFlight
            Task.detached {
                while inFlight.current > 0 { try? await Task.sleep(for: .milliseconds(100)) }
                try? await Task.sleep(for: .milliseconds(100))  // the rest of the last answer's callback
                try? await group.shutdownGracefully()
            }
        }
        logger.info("\(role): stopped")
    }

    private func serve(on group: MultiThreadedEventLoopGroup) async throws {
        let logger = self.logger
        let quiesce = ServerQuiescingHelper(group: group)
        let connections = OpenConnections()
        let router = self.router
        let inFlight = self.inFlight
        let configuration = self.configuration
        let openFiles = IngestConfiguration.openFilesLimit()
        let openFilesInUse = IngestConfiguration.openFilesInUse()
        let maxConnections = configuration.connectionLimit(openFiles: openFiles, inUse: openFilesInUse ?? 0)
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                // One accept per turn, so that the connection limit holds exactly: NIO accepts up to
                // this many connections per readable event whatever `autoRead` says.
                .serverChannelOption(.maxMessagesPerRead, value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AcceptPause(logger: logger, maxConnections: maxConnections))
                        try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                    }
                }
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                // At most 4 reads (of up to 64 KiB) from a connection per turn of its event loop.
                // Once pipelined requests wait, nothing more is read until they are answered, but a
                // turn's reads are all parsed first: with 16, each connection that pipelined small
                // requests held about 2.4 MB of parsed requests (a probe: 1,000 such connections,
                // 2.4 GB). A body of 500 events (220 KB) still arrives in one turn.
                .childChannelOption(.maxMessagesPerRead, value: 4)
                // A client's half-close reaches IngestHTTPHandler, which answers what was sent first.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { channel in
                    connections.add(channel)
                    return channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        let connectionGuard = ConnectionGuard(requestTimeout: configuration.requestTimeout, idleTimeout: configuration.idleTimeout)
                        try sync.addHandler(connectionGuard)
                        // No outbound header validation (8 % of the CPU under single-event load): every
                        // response header is a constant or a number of ours, or an Origin echoed from
                        // a request header that the HTTP parser already refused to hold CR or LF.
                        // No pipelining assistance and no protocol error handler: IngestHTTPHandler orders
                        // pipelined requests itself, handles quiescing, and answers bytes that are not
                        // HTTP after the requests before them (see there why).
                        // Not `configureHTTPServerPipeline`: its decoder tells the encoder every request's
                        // method, and the encoder takes one off its queue for each response it encodes,
                        // to leave the body out of answers to HEAD. IngestHTTPHandler writes the answer to
                        // one accepted event below the encoder (``HTTPResponse/encoded``), so that queue
                        // would grow by one method per such answer for as long as the connection lives,
                        // and a later encoded answer would take an earlier request's method for its own:
                        // after a HEAD, a GET's body was dropped. The handler leaves HEAD bodies out itself.
                        try sync.addHandler(HTTPResponseEncoder())
                        try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes), maximumBufferSize: Self.maxUnparsedBytes))
                        try sync.addHandler(IngestHTTPHandler(router: router, inFlight: inFlight, connectionGuard: connectionGuard))
                    }
                }
                .bind(host: configuration.host, port: configuration.port)
                .get()
        } catch {
            let error = ListenError(host: configuration.host, port: configuration.port, error: error)
            logger.error("cannot listen", metadata: ["http.address": "\(configuration.host):\(configuration.port)", "error": "\(error)"])
            let waiters = addressWaiters.withLockedValue { waiters in defer { waiters = [] }; return waiters }
            for waiter in waiters { waiter.resume(throwing: error) }
            throw error
        }
        // After NIO's accept handler, which the bootstrap puts behind ours: a connection it accepted
        // but could not set up (an option the kernel refuses) reaches only handlers after it.
        // Made and added on the channel's event loop, where the handler's state lives.
        try? await channel.eventLoop.submit { [logger] in
            try channel.pipeline.syncOperations.addHandler(ConnectionSetupFailureLog(logger: logger))
        }.get()
        let address = channel.localAddress!
        boundAddress.withLockedValue { $0 = address }
        let waiters = addressWaiters.withLockedValue { waiters in defer { waiters = [] }; return waiters }
        for waiter in waiters { waiter.resume(returning: address) }
        state.withLockedValue { $0 = .running }
        logger.info(
            "listening on http://\(ListenAddress.urlHost(configuration.host)):\(address.port ?? configuration.port)",
            metadata: [
                "http.port": .stringConvertible(address.port ?? configuration.port), "max_connections": "\(maxConnections.map(String.init) ?? "unlimited")",
                "open_files.limit": "\(openFiles.map(String.init) ?? "unlimited")", "open_files.in_use": "\(openFilesInUse.map(String.init) ?? "unknown")",
            ]
        )

        // The bytes the edge holds, sampled: counted at every reserve and release, two event loops
        // could record them out of order and leave a stale figure until the next request.
        let sampling = group.next().scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(1)) { _ in router.recordInFlightBytes() }
        defer {
            sampling.cancel()
            router.recordInFlightBytes()
        }

        // Completed once, when every connection has closed after a graceful shutdown or when the
        // grace period is over.
        let allClosed = group.next().makePromise(of: Void.self)
        let completed = NIOLockedValueBox(false)
        let finish: @Sendable () -> Void = {
            if completed.withLockedValue({ done in defer { done = true }; return !done }) { allClosed.succeed(()) }
        }
        // Completed by the quiescing helper once the listening socket and every connection have
        // closed after a graceful shutdown began.
        let quiesced = group.next().makePromise(of: Void.self)
        quiesced.futureResult.whenComplete { _ in finish() }
        let quiescing = NIOLockedValueBox(false)
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                try? await allClosed.futureResult.get()
            } onCancel: {
                finish()
            }
        } onGracefulShutdown: {
            self.state.withLockedValue { $0 = .draining }
            self.logger.info(
                "\(self.role): stopping: no new connections; finishing requests in flight, and those still being received on open connections, for up to the grace (a second signal stops at once)",
                metadata: [
                    // Requests whose body has all arrived; one still arriving counts among the
                    // connections only ("requests=0" read as nothing to wait for, a review).
                    "requests_being_answered": .stringConvertible(inFlight.current), "connections": .stringConvertible(connections.all.count),
                    "grace": "\(configuration.shutdownGracePeriod)",
                ]
            )
            // Stop accepting, and close every connection once its current response is out.
            quiescing.withLockedValue { $0 = true }
            quiesce.initiateShutdown(promise: quiesced)
            group.next().scheduleTask(in: TimeAmount(configuration.shutdownGracePeriod)) { finish() }
        }
        if inFlight.current > 0 {
            logger.warning("\(role): grace period over with requests in flight", metadata: ["requests_being_answered": .stringConvertible(inFlight.current)])
        }
        // Connections still open (a client in the middle of sending a request, say) are closed here,
        // while the event loops run, and the quiescing helper is waited for: it completes its promise
        // from the loop of the connection that closed last, so left to the group's shutdown (or not
        // waited for), that would reach a loop that had already stopped.
        let open = connections.all
        if !open.isEmpty {
            logger.warning("\(role): grace period over: closing connections still open", metadata: ["connections": .stringConvertible(open.count)])
            for connection in open { try? await connection.close() }
        }
        if quiescing.withLockedValue({ $0 }) {
            // Bounded, in case a connection's close never reaches the helper.
            group.next().scheduleTask(in: .seconds(2)) { quiesced.succeed(()) }
            try? await quiesced.futureResult.get()
        } else {
            quiesced.succeed(())  // cancelled without a graceful shutdown: nothing is quiescing
        }
        state.withLockedValue { $0 = .stopped }
    }
}

/// The server's open connections, so that those still open when the grace period is over can be
/// closed before the event loops stop.
final class OpenConnections: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in self.channels.withLockedValue { _ = $0.removeValue(forKey: id) } }
    }

    var all: [any Channel] { channels.withLockedValue { Array($0.values) } }
}

/// Says, at most every 10 s, that accepted connections could not be set up and were closed: the
/// client sees only a reset. (TCP_NODELAY set as SO_DEBUG, which needs CAP_NET_ADMIN, closed every
/// connection of a non-root server, and nothing said so.)
final class ConnectionSetupFailureLog: ChannelInboundHandler {
    typealias InboundIn = any Channel

    private let logger: Logger
    private var lastLogged: NIODeadline?
    private var since = 0

    init(logger: Logger) { self.logger = logger }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        since += 1
        let now = NIODeadline.now()
        if let last = lastLogged, now - last < .seconds(10) { return }
        logger.error("ingest: an accepted connection could not be set up and was closed", metadata: [
            "error": "\(error)", "connections": .stringConvertible(since),
        ])
        lastLogged = now
        since = 0
    }
}

/// Controls accepting: pauses for a second when `accept` fails for want of resources (no file
/// descriptor left: EMFILE, ENFILE; or kernel memory: ENOBUFS, ENOMEM), and while `maxConnections`
/// are open (new clients wait in the listen queue, then in their SYN retries, until one closes).
///
/// A failed connection stays in the listen queue, so the socket stays readable, and NIO clears
/// its pending read only when an accept succeeds: it calls `accept` again at once, and the event
/// loop spun a whole core until some connection closed (3 s of CPU in 3 s with `ulimit -n 80` and
/// 120 connections), starving the connections it already had. NIO's `AcceptBackoffHandler` waits
/// for a `read` that never comes in that state; turning `autoRead` off clears the pending read and
/// stops watching the socket, and turning it on again watches it again.
///
/// The limit keeps descriptors for the rest of the process: out of them, the log's and the lake's
/// I/O failed, and libdispatch's thread-pool monitor, which reads `/proc`, stopped the process
/// with SIGILL (a probe: 20,000 idle connections against a limit of 20,000 killed `serve` in three
/// runs of five).
final class AcceptPause: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let logger: Logger
    private let maxConnections: Int?
    /// Open connections (closed ones are taken off from their own event loops).
    private let open = NIOLockedValueBox(0)
    /// `playhead_http_connections_open`; `playhead_http_accept_waits_total{reason}`: how often
    /// accepting stopped, at the limit or out of descriptors (until 2026-12-04 only log lines said
    /// so, and `/readyz` cannot: its own request waits in the listen queue too).
    private let openGauge = Gauge(label: "playhead_http_connections_open")
    private let limitWaits = Counter(label: "playhead_http_accept_waits_total", dimensions: [("reason", "connection_limit")])
    private let descriptorWaits = Counter(label: "playhead_http_accept_waits_total", dimensions: [("reason", "out_of_descriptors")])
    private var paused = false
    private var atLimit = false
    private var lastLimitLogged: NIODeadline?
    private var lastPauseLogged: NIODeadline?
    private var pausesSinceLogged = 0

    init(logger: Logger, maxConnections: Int?) {
        self.logger = logger
        self.maxConnections = maxConnections
        Gauge(label: "playhead_http_connections_max").record(maxConnections ?? 0)
        openGauge.record(0)
        limitWaits.increment(by: 0)
        descriptorWaits.increment(by: 0)
    }

    private func updateAutoRead(_ context: ChannelHandlerContext) {
        try? context.channel.syncOptions?.setOption(.autoRead, value: !paused && !atLimit)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        let gauge = openGauge
        let count = open.withLockedValue { count in
            count += 1
            gauge.record(count)  // under the lock: records from two loops stay in order
            return count
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let counter = open
        let maxConnections = self.maxConnections
        child.closeFuture.whenComplete { _ in
            let count = counter.withLockedValue { count in
                count -= 1
                gauge.record(count)
                return count
            }
            guard let maxConnections, count < maxConnections else { return }
            loopBound.eventLoop.execute {
                let (handler, context) = loopBound.value
                guard handler.atLimit, handler.open.withLockedValue({ $0 }) < maxConnections else { return }
                handler.atLimit = false
                handler.updateAutoRead(context)
            }
        }
        if let maxConnections, count >= maxConnections && !atLimit {
            atLimit = true
            limitWaits.increment()
            updateAutoRead(context)
            let now = NIODeadline.now()
            if lastLimitLogged.map({ now - $0 >= .seconds(60) }) ?? true {
                lastLimitLogged = now
                logger.warning("ingest: at the connection limit: new connections wait until others close", metadata: [
                    "connections": .stringConvertible(count), "max_connections": "\(maxConnections)",
                    "hint": "--max-connections, or raise the open-files limit (ulimit -n, LimitNOFILE=); its default is three quarters of the descriptors left when the server started",
                ])
            }
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let ioError = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(ioError.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        guard !paused else { return }
        paused = true
        descriptorWaits.increment()
        // Once a minute, with the pauses since, as the connection limit's warning: once a second
        // it was 86,400 lines a day while the condition lasted (a probe).
        pausesSinceLogged += 1
        let now = NIODeadline.now()
        if lastPauseLogged.map({ now - $0 >= .seconds(60) }) ?? true {
            logger.warning("ingest: cannot accept connections: pausing for 1 s", metadata: [
                "error": "\(ioError)", "pauses": .stringConvertible(pausesSinceLogged),
                "hint": "raise the open-files limit (ulimit -n, LimitNOFILE=), or lower --max-connections; said at most once a minute",
            ])
            lastPauseLogged = now
            pausesSinceLogged = 0
        }
        updateAutoRead(context)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: .seconds(1)) {
            let (handler, context) = loopBound.value
            handler.paused = false
            handler.updateAutoRead(context)
        }
    }
}
