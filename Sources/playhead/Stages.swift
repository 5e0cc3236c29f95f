import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import PlayheadEvents
import PlayheadIngest
import PlayheadLake
import PlayheadLog
import PlayheadMetrics
import S3
import ServiceLifecycle

extension FlushOptions {
    var configuration: LakeWriterConfiguration {
        var configuration = LakeWriterConfiguration()
        configuration.flushEvents = flushEvents
        configuration.flushBytes = flushBytes
        configuration.flushInterval = .nanoseconds(Int64(flushInterval * 1e9))
        configuration.dedupWindow = dedupWindow
        return configuration
    }

    func validate() throws {
        // At most an hour: a lake's partitions are hours, and LakeFlushFailing (deploy/prometheus)
        // tells a writer that flushes so rarely from one that fails within its 2-hour window.
        try checkSeconds(flushInterval, flag: "--flush-interval", max: 3600)
        guard flushEvents > 0 else { throw ValidationError("--flush-events must be positive, not \(flushEvents)") }
        guard flushBytes > 0 else { throw ValidationError("--flush-bytes must be positive, not \(flushBytes)") }
        guard dedupWindow >= 0 else { throw ValidationError("--dedup-window must not be negative") }
    }
}

extension LakeLocationOptions {
    /// The lake's store, checked (``LakeStore/preflight()``: an S3 bucket that exists, credentials the
    /// store accepts); `threadPool` runs a folder lake's blocking file calls.
    func openLake(dataDir: String, threadPool: NIOThreadPool, logger: Logger) async throws -> any LakeStore {
        do {
            let store = try LakeLocation(parsing: lakeLocation(dataDir: dataDir))
                .openStore(s3Endpoint: s3Endpoint, s3Region: s3Region, threadPool: threadPool, logger: logger)
            try await store.preflight()
            return store
        } catch let error as LakeError where error.code == .invalidLocation {
            throw ValidationError("--lake: \(error.message)")
        } catch let error as LakeError {
            // Not a usage mistake (a folder that cannot be made, a store that cannot be reached):
            // said as an error, without the usage text, exit status 1. The lake under --data-dir
            // is said as such: "--lake" named a flag the user had not given (a review).
            let flag = lake == nil ? "--data-dir \(dataDir) (the lake in it)" : "--lake"
            throw StartFailure("\(flag): \(error.message)")
        } catch let error as S3Error where error.code == .missingCredentials || error.code == .invalidConfiguration {
            // Said for --lake, in the configuration's own words: it read "S3 Configure failed:
            // missing credentials: no S3 credentials: …" (an outside review).
            throw StartFailure("--lake \(lakeLocation(dataDir: dataDir)): \(error.message)")
        }
    }
}

extension PipelineParts {
    /// The lake writer (consumer group `lake`) over the log, writing to `store`.
    func lakeWriter(store: any LakeStore, flush: FlushOptions, threadPool: NIOThreadPool) -> LakeWriter {
        LakeWriter(
            log: log, store: store, configuration: flush.configuration, threadPool: threadPool,
            logger: Logger(label: "playhead.lake")
        )
    }

    /// The live content KPIs (consumer group `metrics`), the live page at `GET /` and its data at
    /// `GET /live.json`. Without metrics (`--metrics off`) there is nothing to show: no services.
    func contentMetrics() -> (services: [any Service], routes: [HTTPRoute], readiness: @Sendable () -> String?) {
        guard let registry = telemetry.registry else {
            let routes = ["/", "/live.json"].map { Telemetry.metricsOff($0, "the live page shows metrics, so there is none") }
            return ([], routes, { nil })
        }
        let aggregator = ContentAggregator(eventSources: eventSources)
        let consumer = ContentMetricsConsumer(
            log: log, topic: .events, group: "metrics",
            decode: { bytes in
                guard let record = try? EventRecordView(bytes) else { return nil }
                return ContentObservation(
                    eventType: record.eventType, contentType: record.contentType,
                    sessionKey: record.sessionIDBytes.map(SessionKey.init(utf8:)) ?? SessionKey(userID: record.userID, deviceID: record.deviceID),
                    contentID: record.contentID, timestampMicros: record.timestampMicros,
                    receivedAtMicros: record.receivedAtMicros, currentTimestamp: record.currentTimestamp,
                    durationSeconds: record.durationSeconds, title: record.title,
                    eventSource: record.eventSource, language: record.language, genre: record.firstGenre ?? ""
                )
            },
            aggregator: aggregator, logger: Logger(label: "playhead.observe")
        )
        let stats = LiveStats(registry: registry, aggregator: aggregator)
        let routes = [
            // Not to be framed by another site's page (clickjacking), nor kept by caches.
            HTTPRoute(.GET, "/") { _ in
                HTTPResponse(
                    status: .ok,
                    headers: [
                        "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": "frame-ancestors 'none'",
                        "X-Frame-Options": "DENY", "Cache-Control": "no-store",
                    ],
                    body: ByteBuffer(bytes: LivePage.html))
            },
            HTTPRoute(.GET, "/live.json") { _ in
                HTTPResponse(
                    status: .ok, headers: ["Content-Type": "application/json", "Cache-Control": "no-store"], body: ByteBuffer(bytes: stats.json()))
            },
        ]
        return ([consumer, LiveStatsSampler(stats: stats)], routes, { consumer.unavailableReason })
    }

    /// A server of `routes` only (no `POST /v1/events`): `playhead store` and `observe`;
    /// `readiness` is `nil` while the process does its job, else why not (`GET /readyz`).
    func plainServer(options: ServerOptions, routes: [HTTPRoute], readiness: @escaping @Sendable () -> String?) -> IngestServer {
        IngestServer(
            configuration: options.configuration, events: nil, routes: routes, readiness: readiness,
            logger: Logger(label: "playhead.http"))
    }
}

/// `playhead store`: the lake writer alone.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Run the lake writer alone: read the log as consumer group 'lake' and write Parquet to the lake.",
        discussion: """
            Several store processes on Kafka share the partitions of the topics (a consumer group); each \
            partition's batches are written exactly once (docs/lake.md, "Kafka rebalances", names the one \
            window left: a process paused inside a batch's writes). It also serves GET /metrics, \
            /healthz and /readyz on --port; /readyz answers 503 with the reason while writes to the lake \
            are failing (being retried) or the log cannot be read.
            """
    )

    @OptionGroup(title: "HTTP (metrics and health)") var http: ServerOptions
    @OptionGroup(title: "Storage") var storage: LogLocationOptions
    @OptionGroup(title: "Storage") var lake: LakeLocationOptions
    @OptionGroup(title: "Lake batches") var flush: FlushOptions
    @OptionGroup(title: "Metrics") var metrics: MetricsOptions
    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func validate() throws { try storage.checkDataDirUsed(lake: (lake.lake, true)) }

    func run() async throws {
        Allocator.configureForService()
        try await logging.serving(Self.self) { signals in
            try http.checkBeforeStart(command: "store")
            let logger = Logger(label: "playhead.store")
            let telemetry = Telemetry.bootstrap(metrics.metrics == .on)
            // The lake first, as serve: a lake refused at start leaves nothing in the log's folder.
            let threadPool = NIOThreadPool(numberOfThreads: 2)
            threadPool.start()
            let store = try await lake.openLake(dataDir: storage.dataDir, threadPool: threadPool, logger: Logger(label: "playhead.lake"))
            let log = try storage.open(readOnly: true, lakeWriter: true, logger: Logger(label: "playhead.log"))
            let parts = try PipelineParts(telemetry: telemetry, log: log.backend, logger: logger)
            let writer = parts.lakeWriter(store: store, flush: flush, threadPool: threadPool)
            let waiting = log.waitingForWriter(logger: logger)
            let server = parts.plainServer(options: http, routes: telemetry.routes, readiness: { waiting() ?? writer.unavailableReason })
            try await parts.run(signals: signals, services: [log.service] + telemetry.services + [writer, server], threadPools: [threadPool], logger: logger)
        }
    }
}

/// `playhead observe`: the live content KPIs and the live page alone.
struct ObserveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "observe",
        abstract: "Run the live metrics alone: read the log as consumer group 'metrics' and serve /metrics and the live page.",
        discussion: """
            Serves GET /metrics (Prometheus text), GET / (the live page), GET /live.json, /healthz and \
            /readyz on --port (503 with the reason while the log cannot be read). Content KPIs (concurrent viewers, watch time, completions...) are defined in \
            docs/metrics.md.
            """
    )

    @OptionGroup(title: "HTTP") var http: ServerOptions
    @OptionGroup(title: "Storage") var storage: LogLocationOptions
    @OptionGroup(title: "Metrics") var sources: EventSourceOptions
    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func validate() throws { try storage.checkDataDirUsed() }

    func run() async throws {
        Allocator.configureForService()
        try await logging.serving(Self.self) { signals in
            try http.checkBeforeStart(command: "observe")
            let logger = Logger(label: "playhead.observe")
            let telemetry = Telemetry.bootstrap(true)
            let log = try storage.open(readOnly: true, logger: Logger(label: "playhead.log"))
            let parts = try PipelineParts(telemetry: telemetry, log: log.backend, logger: logger, eventSources: try sources.labels())
            let content = parts.contentMetrics()
            let waiting = log.waitingForWriter(logger: logger)
            let server = parts.plainServer(options: http, routes: telemetry.routes + content.routes, readiness: { waiting() ?? content.readiness() })
            try await parts.run(signals: signals, services: [log.service] + telemetry.services + content.services + [server], threadPools: [], logger: logger)
        }
    }
}

/// `playhead import FILE…`: backfills NDJSON into the lake.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Backfill NDJSON files (plain or gzip) into the lake, through the same validation and Parquet writer as live events.",
        discussion: """
            Each event is validated as by POST /v1/events; invalid ones go to rejected/ with the reason and \
            their number in the file. Events get the import time (or --received-at) as received_at. Importing \
            the same file again replaces the files of the earlier imports, in whatever hour they landed, once \
            it is whole (names: import-<file tag>-<run>-<n>.parquet; _playhead/imports/<file tag>.json records \
            the hours). \
            The file tag is a hash of the file's resolved path, size and modification time: a file touched, \
            fetched again or appended to is another file, whose import keeps the earlier one's files unless \
            --replace-earlier-versions is given (the summary's earlier_versions_kept counts them). A file \
            moved or renamed (the same size and modification time under another path) is another file too: \
            its import is said in a warning and counted as same_file_elsewhere, and nothing is replaced. A pipe \
            (/dev/stdin, <(…)) is an import of its own each time: never replaced, never an earlier version. One import \
            of a file runs at a time; a second one is refused. A file cut off (gzip, or truncated while it is \
            read) or not NDJSON (Parquet, UTF-16, a JSON array, pretty-printed JSON, a first line that is not a \
            JSON object, such as CSV) fails with nothing of it left in the lake, as does the file being \
            imported on SIGINT, SIGTERM or SIGHUP (exit status 130, 143 or 129; files done before it stay). \
            Prints a JSON summary per file on \
            standard output, and a progress line to the log every 10 s.
            """
    )

    @Argument(help: "NDJSON files to import; gzip files are recognised by their content.")
    var files: [String]

    @OptionGroup(title: "Storage") var data: LakeDataDirOptions
    @OptionGroup(title: "Storage") var lake: LakeLocationOptions

    @Option(name: .long, parsing: .unconditional, help: "About this many events per Parquet file (per hour partition): a file closes at the end of the 8 MiB input chunk that reaches it, or that takes its records past 64 MiB (large events). At most 250,000 (a larger value is taken as 250,000), so that two files are encoded at once.")
    var batchEvents: Int = 250_000

    @Option(name: .long, help: "What is stored of ip_address: keep, truncate (IPv4 /24, IPv6 /48) or drop.")
    var ipPolicy: IPAddressPolicy = .keep

    @Option(name: .long, help: "The received_at of every imported event, an ISO 8601 date-time as event timestamps take (e.g. 2026-11-25T06:00:00Z; no offset is UTC); its UTC hour is the partition the import lands in. Default: the time of the import.")
    var receivedAt: String?

    @Option(name: .long, parsing: .unconditional, help: "Drop an event whose event_id appeared within the last N events of the same file; 0 turns it off.")
    var dedupWindow: Int = 2_000_000

    @Option(name: .long, parsing: .unconditional, help: "The largest single event in bytes of JSON, as serve's and ingest's flag of this name: give the server's value to import what it accepted (log dump --for-import) or to replay events it refused as too large after raising it.")
    var maxEventBytes: Int = 32 * 1024

    @Flag(name: .long, help: "Once a file's import is whole, also remove the files of imports of the same path when it had another size or modification time (touched, fetched again, appended to). Without it they are kept, with a warning, and counted as earlier_versions_kept.")
    var replaceEarlierVersions = false

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("name at least one NDJSON file to import") }
        guard batchEvents > 0 else { throw ValidationError("--batch-events must be positive") }
        guard dedupWindow >= 0 else { throw ValidationError("--dedup-window must not be negative") }
        guard maxEventBytes > 0 else { throw ValidationError("--max-event-bytes must be positive, not \(maxEventBytes)") }
        if let receivedAt, EventTimestamp.parseMicros(receivedAt) == nil {
            // The same words as for an event's timestamp (an out-of-range year is not a bad form).
            throw ValidationError("--received-at: '\(receivedAt)' \(EventTimestamp.problem(with: receivedAt)) (for example 2026-11-25T06:00:00Z)")
        }
    }

    func run() async throws {
        Allocator.configureForBatch()
        try await logging.running(Self.self) {
            let logger = Logger(label: "playhead.import")
            // Decoding and encoding keep both cores busy on `threadPool`; the store's writes (which wait
            // for fsync) run on their own threads so that they never hold up a core's work.
            let threadPool = NIOThreadPool(numberOfThreads: 2)
            let ioPool = NIOThreadPool(numberOfThreads: 2)
            threadPool.start()
            ioPool.start()
            do {
                try await importFiles(threadPool: threadPool, ioPool: ioPool, logger: logger)
            } catch {
                try? await threadPool.shutdownGracefully()
                try? await ioPool.shutdownGracefully()
                throw error
            }
            try? await threadPool.shutdownGracefully()
            try? await ioPool.shutdownGracefully()
        }
    }

    private func importFiles(threadPool: NIOThreadPool, ioPool: NIOThreadPool, logger: Logger) async throws {
        let store = try await lake.openLake(dataDir: data.dataDir, threadPool: ioPool, logger: Logger(label: "playhead.lake"))
        var configuration = LakeWriterConfiguration()
        configuration.flushEvents = batchEvents
        configuration.dedupWindow = dedupWindow
        var decoder = EventDecoderConfiguration()
        decoder.ipPolicy = ipPolicy
        decoder.maxEventBytes = maxEventBytes
        let importer = LakeImporter(store: store, configuration: configuration, decoder: decoder, threadPool: threadPool, logger: logger)
        // SIGINT, SIGTERM or SIGHUP: the file being imported stops and is taken out of the lake again (its
        // part written stayed, with no rollups, an outside review); files done before it stay, and
        // the rest are not started. A second signal ends the process at once.
        // The store's requests end 15 s after the signal at the latest (an S3 store that does not
        // answer held the import for a request's five attempts, about 2.5 minutes, past a service
        // manager's stop timeout: an outside review); those 15 s let the import take its files
        // out of the lake again while the store answers.
        let interrupts = await Signals.onInterrupt {
            importer.interruption.request(signal: $0)
            store.giveUp(after: .seconds(15))
        }
        defer {
            for source in interrupts { source.cancel() }
            Signals.restoreDefaults()
        }
        var failed = 0
        var interrupted = false
        // One received_at for the whole run (the files of one run land in one hour).
        let now = receivedAt.flatMap(EventTimestamp.parseMicros) ?? WallClock.micros()
        for (index, file) in files.enumerated() {
            if let signal = importer.interruption.signal {
                let left = files[index...].map { "'\($0)'" }.joined(separator: ", ")
                logger.error("import interrupted: not started: \(left)")
                throw ExitCode(128 + signal)
            }
            let started = ContinuousClock.now
            do {
                let summary = try await importer.importFile(file, receivedAt: now, replaceEarlierVersions: replaceEarlierVersions)
                let elapsed = ContinuousClock.now - started
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                print(
                    #"{"file":"\#(jsonEscaped(file))","events":\#(summary.events),"accepted":\#(summary.accepted),"#
                        + #""rejected":\#(summary.rejected),"duplicates":\#(summary.duplicates),"files":\#(summary.files),"#
                        + #""parquet_bytes":\#(summary.bytes),"input_bytes":\#(summary.inputBytes),"replaced_files":\#(summary.replaced),"#
                        + #""seconds":\#(seconds),"events_per_second":\#(seconds > 0 ? Int(Double(summary.events) / seconds) : 0),"#
                        + #""earlier_versions_kept":\#(summary.earlierVersionsKept),"same_file_elsewhere":\#(summary.sameFileElsewhere)}"#
                )
            } catch {
                failed += 1
                if importer.interruption.signal != nil { interrupted = true }
                logger.error("import of \(file) failed", metadata: ["error": "\(error)"])
            }
        }
        // An import interrupted exits as the signal would have it (130, 143); one that ended whole
        // before the signal counted does not fail for it.
        if interrupted, let signal = importer.interruption.signal { throw ExitCode(128 + signal) }
        // An error, so that under --log-format json the last line is a critical one with its
        // exit_code, as for the other commands (an outside review of the logs).
        if failed > 0 { throw StartFailure("the import of \(failed) of \(files.count) file\(files.count == 1 ? "" : "s") failed (above); files imported whole stay in the lake") }
    }
}

/// `text` as the inside of a JSON string.
func jsonEscaped(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out
}
