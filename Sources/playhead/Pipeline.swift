import ArgumentParser
import Logging
import Metrics
import NIOCore
import NIOPosix
import PlayheadEvents
import PlayheadIngest
import PlayheadLog
import PlayheadMetrics
import Prometheus
import ServiceLifecycle

/// Metrics collection for the process: the Prometheus registry behind `GET /metrics`, or nothing.
struct Telemetry {
    var registry: PrometheusCollectorRegistry?
    var routes: [HTTPRoute]
    var services: [any Service]

    /// Bootstraps swift-metrics once for the process. With `enabled == false` every instrument is a
    /// no-op and `/metrics` answers 404 (to measure what metrics cost).
    static func bootstrap(_ enabled: Bool) -> Telemetry {
        guard enabled else {
            // Said as off, not as a path that does not exist ("no route for GET /metrics", a review).
            return Telemetry(registry: nil, routes: [metricsOff("/metrics", "it exports none")], services: [])
        }
        let registry = PlayheadTelemetry.bootstrap()
        let metrics = HTTPRoute(.GET, "/metrics") { _ in
            HTTPResponse(
                status: .ok, contentType: PlayheadTelemetry.contentType,
                body: ByteBuffer(bytes: PlayheadTelemetry.render(registry))
            )
        }
        return Telemetry(registry: registry, routes: [metrics], services: [ProcessMetricsService()])
    }

    /// A `GET` route that answers 404 `metrics_off`: what `path` would show needs metrics.
    static func metricsOff(_ path: String, _ consequence: String) -> HTTPRoute {
        HTTPRoute(.GET, path) { _ in
            .error(.notFound, code: "metrics_off", message: "metrics are off in this process (--metrics off): \(consequence)")
        }
    }
}

/// Builds the parts of the pipeline that the commands combine.
struct PipelineParts {
    let telemetry: Telemetry
    let log: any LogBackend
    let logger: Logger
    /// The `event_source` values that keep their own label (`--event-source`).
    let eventSources: EventSourceLabels

    init(telemetry: Telemetry, log: any LogBackend, logger: Logger, eventSources: EventSourceLabels = .standard) throws {
        self.telemetry = telemetry
        self.log = log
        self.logger = logger
        self.eventSources = eventSources
    }

    /// The HTTP edge over the log's `events` and `rejected` topics.
    func ingestServer(options: IngestOptions, routes: [HTTPRoute]) throws -> (server: IngestServer, threadPool: NIOThreadPool) {
        let threadPool = NIOThreadPool(numberOfThreads: 2)
        var configuration = try options.configuration()
        configuration.eventSources = eventSources
        let clientAddresses = try options.clientAddresses()
        for warning in options.warnings(clientAddresses: clientAddresses) { logger.warning("\(warning)") }
        if let clientAddresses {
            let proxies = clientAddresses.trustedProxies.map(\.description).joined(separator: ",")
            logger.info(
                "events with an empty ip_address get their client's address",
                metadata: [
                    "ingest.trusted_proxies": "\(proxies.isEmpty ? "none (\(clientAddresses.header) ignored)" : proxies)",
                    "ingest.forwarded_header": "\(clientAddresses.header)",
                    "ingest.ip_policy": "\(options.ipPolicy.rawValue)",
                ]
            )
        }
        let endpoint = EventsEndpoint(
            configuration: configuration,
            ipPolicy: options.ipPolicy,
            clientAddresses: clientAddresses,
            events: try log.producer(for: .events),
            rejected: try log.producer(for: .rejected),
            threadPool: threadPool,
            logger: Logger(label: "playhead.ingest")
        )
        let server = IngestServer(
            configuration: configuration,
            events: endpoint,
            routes: routes,
            readiness: { endpoint.unavailableReason },
            logger: Logger(label: "playhead.ingest")
        )
        return (server, threadPool)
    }

    /// Runs `services` in order (each stops in reverse order on SIGTERM, SIGINT or SIGHUP, which
    /// `signals` hears). `threadPools` are started here (if they are not yet) and shut down after
    /// the services stop.
    func run(signals: ServerSignals, services: [any Service], threadPools: [NIOThreadPool], logger: Logger) async throws {
        for pool in threadPools { pool.start() }
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup) },
                // None trapped by the group: ``ServerSignals`` hears SIGTERM, SIGINT and SIGHUP (SIGHUP
                // too: closing the terminal of a `serve` run by hand ended it at once, unlogged, probe M).
                gracefulShutdownSignals: [],
                logger: logger
            )
        )
        signals.stop(group)
        do {
            try await group.run()
        } catch {
            for pool in threadPools { try? await pool.shutdownGracefully() }
            // Critical, with the exit status, as an error at start is with --log-format json
            // (LoggingOptions.running): the process's last line says why it ended.
            logger.critical("stopped on an error", metadata: ["error": "\(error)", "exit_code": .stringConvertible(1)])
            throw ExitCode.failure
        }
        for pool in threadPools { try? await pool.shutdownGracefully() }
        logger.info("stopped")
    }
}
