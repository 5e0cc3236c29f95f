import ArgumentParser
import Logging
import NIOPosix
import PlayheadIngest
import PlayheadLog
import ServiceLifecycle

/// `playhead serve`: the whole pipeline in one process.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run everything in one process: the HTTP edge, the log, the lake writer and the metrics consumer.",
        discussion: """
            SIGTERM and SIGINT shut down gracefully: stop accepting, answer the requests in flight, \
            write what was acknowledged to the lake, then exit 0. (What the lake writer cannot write \
            within 20 s, or at all, such as a lake that refuses writes, stays in the log for the next \
            start, and a warning says so: docs/lake.md.)
            """
    )

    @OptionGroup(title: "HTTP") var ingest: IngestOptions
    @OptionGroup(title: "Storage") var storage: LogLocationOptions
    @OptionGroup(title: "Storage") var logWriter: LogWriterOptions
    @OptionGroup(title: "Storage") var lake: LakeLocationOptions
    @OptionGroup(title: "Lake batches") var flush: FlushOptions
    @OptionGroup(title: "Metrics") var metrics: MetricsOptions
    @OptionGroup(title: "Metrics") var sources: EventSourceOptions
    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func validate() throws {
        try logWriter.check(for: storage, maxBodyBytes: ingest.maxBodyBytes)
        try storage.checkDataDirUsed(lake: (lake.lake, true))
    }

    func run() async throws {
        Allocator.configureForService()
        try await logging.serving(Self.self) { signals in
            try ingest.server.checkBeforeStart(command: "serve")
            let logger = Logger(label: "playhead.serve")
            let telemetry = Telemetry.bootstrap(metrics.metrics == .on)
            // The lake first: a lake that cannot be used (no credentials, no bucket) stops the start
            // before the log makes its folder under --data-dir (it was left behind, an outside review).
            let lakePool = NIOThreadPool(numberOfThreads: 2)
            lakePool.start()
            let store = try await lake.openLake(dataDir: storage.dataDir, threadPool: lakePool, logger: Logger(label: "playhead.lake"))
            let log = try storage.open(
                readOnly: false, writer: logWriter, requestBytes: ingest.maxBodyBytes, lakeWriter: true, logger: Logger(label: "playhead.log"))
            let parts = try PipelineParts(telemetry: telemetry, log: log.backend, logger: logger, eventSources: try sources.labels())
            let writer = parts.lakeWriter(store: store, flush: flush, threadPool: lakePool)
            let content = parts.contentMetrics()
            let edge = try parts.ingestServer(options: ingest, routes: telemetry.routes + content.routes)
            // Started in this order and stopped in reverse: the edge stops taking events first, then the
            // consumers drain what was acknowledged, then the log closes.
            try await parts.run(
                signals: signals,
                services: [log.service] + telemetry.services + [writer] + content.services + [edge.server],
                threadPools: [edge.threadPool, lakePool],
                logger: logger
            )
        }
    }
}

/// `playhead ingest`: the HTTP edge alone, appending to the log.
struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Run the HTTP edge alone: validate events and append them to the log (embedded or Kafka)."
    )

    @OptionGroup(title: "HTTP") var ingest: IngestOptions
    @OptionGroup(title: "Storage") var storage: LogLocationOptions
    @OptionGroup(title: "Storage") var logWriter: LogWriterOptions
    @OptionGroup(title: "Metrics") var metrics: MetricsOptions
    @OptionGroup(title: "Metrics") var sources: EventSourceOptions
    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func validate() throws {
        try logWriter.check(for: storage, maxBodyBytes: ingest.maxBodyBytes)
        try storage.checkDataDirUsed()
    }

    func run() async throws {
        Allocator.configureForService()
        try await logging.serving(Self.self) { signals in
            try ingest.server.checkBeforeStart(command: "ingest")
            let logger = Logger(label: "playhead.ingest")
            let telemetry = Telemetry.bootstrap(metrics.metrics == .on)
            let log = try storage.open(
                readOnly: false, writer: logWriter, requestBytes: ingest.maxBodyBytes, logger: Logger(label: "playhead.log"))
            let parts = try PipelineParts(telemetry: telemetry, log: log.backend, logger: logger, eventSources: try sources.labels())
            let edge = try parts.ingestServer(options: ingest, routes: telemetry.routes)
            try await parts.run(signals: signals, services: [log.service] + telemetry.services + [edge.server], threadPools: [edge.threadPool], logger: logger)
        }
    }
}
