import ArgumentParser
import Foundation
import Logging
import Synchronization
import PlayheadEvents
import PlayheadIngest
import PlayheadKafka
import PlayheadLake
import PlayheadLog

/// Where the log lives: `--data-dir` and `--log`, for every command that reads or writes the log.
struct LogLocationOptions: ParsableArguments {
    // Optional, so that one given where neither the log nor the lake is under it is refused
    // (``checkDataDirUsed(lake:)``) rather than taken silently.
    @Option(name: .customLong("data-dir"), help: Self.dataDirHelp)
    var dataDirGiven: String?

    static let dataDirHelp = ArgumentHelp(
        "The data directory of the embedded defaults: the log in <data-dir>/log (and, for the commands that write the lake, the lake in <data-dir>/lake). Refused when --log (and --lake) name other places. Default: ./data.",
        valueName: "data-dir")

    var dataDir: String { dataDirGiven ?? "./data" }

    @Option(name: .long, help: "The log: 'file:<dir>' (or a plain path; 'file:///abs/path' also works, 'file://<host>/…' is refused) for the embedded log, or 'kafka://host:port[,host:port][/topic][?key=value...]' (events go to <topic>, rejected input to <topic>.rejected; default topics playhead.events and playhead.rejected; docs/kafka.md). Default: file:<data-dir>/log.")
    var log: String?

    var logLocation: String { log ?? "file:\(dataDir)/log" }

    /// Opens the log at ``logLocation`` (``OpenedLog/open``), naming the flag when its folder cannot
    /// be made, as the lake's error does: "cannot create directory …" alone did not say whether
    /// --log or --data-dir had named it (an outside review of the logs).
    func open(
        readOnly: Bool, mustExist: Bool = false, waitsForLog: Bool = false, readsOnce: Bool = false, writer: LogWriterOptions? = nil,
        requestBytes: Int? = nil, lakeWriter: Bool = false, logger: Logger
    ) throws -> OpenedLog {
        do {
            return try OpenedLog.open(
                logLocation, readOnly: readOnly, mustExist: mustExist, waitsForLog: waitsForLog, readsOnce: readsOnce, writer: writer,
                requestBytes: requestBytes, lakeWriter: lakeWriter, logger: logger)
        } catch let error as LogError where error.message.hasPrefix("cannot create directory") {
            throw StartFailure("\(log == nil ? "--data-dir \(dataDir) (the log in it)" : "--log"): \(error.message)")
        }
    }

    /// Refuses a `--data-dir` that nothing is read from: `--log` names the log, and the command
    /// writes no lake (`lake` nil) or `--lake` names it. Taken silently, it suggested a local copy
    /// that was not there (`ingest --log kafka://… --data-dir /srv/playhead` kept nothing in it).
    func checkDataDirUsed(lake: (given: String?, written: Bool) = (nil, false)) throws {
        guard let dataDirGiven, let log else { return }
        if lake.written, lake.given == nil { return }
        let place = log.hasPrefix("kafka://") ? "a Kafka log" : "the log's folder"
        let rest = lake.written ? " and --lake the lake" : ", and this command writes no lake"
        throw ValidationError("--data-dir \(dataDirGiven) is not read: --log names \(place)\(rest); drop --data-dir")
    }

    func validate() throws {
        try checkDataDir(dataDir)
        if log == nil, FileManager.default.fileExists(atPath: dataDir), !isDirectory(dataDir) {
            throw ValidationError("--data-dir \(dataDir) is a file, not a folder: give the folder that holds (or is to hold) log/ and lake/")
        }
        // The scheme is checked here, so that a mistake gets this command's usage, not the top level's.
        if let log, let message = OpenedLog.unsupportedScheme(log) { throw ValidationError(message) }
        if let log { _ = try OpenedLog.folder(log) }
        // A Kafka URL that cannot be parsed is a usage mistake too (it was exit status 1, without usage).
        if let log, log.hasPrefix("kafka://") {
            do {
                _ = try KafkaLogConfiguration(url: log)
            } catch {
                throw ValidationError("--log: \(error.message)")
            }
        }
    }
}

/// The embedded log's writer settings, for the commands that append to the log (`serve`, `ingest`):
/// its free-space floor, segment size and retention (docs/log-format.md).
struct LogWriterOptions: ParsableArguments {
    // Optional, with their defaults below, so that one given with a Kafka log (which would ignore
    // it) is refused rather than taken silently (an outside review).
    @Option(name: .long, parsing: .unconditional, help: "Embedded log: refuse appends (503 with Retry-After) while the disk has less free space than this many bytes. Default: 268435456 (256 MiB).")
    var logMinFreeBytes: Int64?

    @Option(name: .long, parsing: .unconditional, help: "Embedded log: start a new segment file once one holds this many bytes (at least 65536). Retention deletes whole segments. Default: 134217728 (128 MiB).")
    var logSegmentBytes: Int64?

    @Option(name: .long, parsing: .unconditional, help: "Embedded log: delete segments older than this many hours (by the clock) once every consumer group has read them, except the open hours' (the lake writer rebuilds their rollups from them at a restart). Default: 168 (7 days).")
    var logRetentionHours: Double?

    @Option(name: .long, parsing: .unconditional, help: "Embedded log: also delete the oldest segments every consumer group has read while a topic holds more than this many bytes. The open hours' segments, which a restart of the lake writer reads again for their rollups (about the last 75 minutes, at most 2 h 11 min), are kept above it (docs/log-format.md, Retention). Default: no size limit.")
    var logRetentionBytes: Int64?

    /// The settings given, on top of the embedded log's defaults (which --help states).
    func apply(to configuration: inout EmbeddedLogConfiguration) {
        if let logMinFreeBytes { configuration.minimumFreeBytes = logMinFreeBytes }
        if let logSegmentBytes { configuration.segmentBytes = logSegmentBytes }
        if let logRetentionHours { configuration.retentionAge = .milliseconds(Int64(logRetentionHours * 3_600_000)) }
        if let logRetentionBytes { configuration.retentionBytes = logRetentionBytes }
    }

    func validate() throws {
        if let logMinFreeBytes, logMinFreeBytes < 0 { throw ValidationError("--log-min-free-bytes must not be negative") }
        if let logSegmentBytes, logSegmentBytes < 65536 { throw ValidationError("--log-segment-bytes must be at least 65536, not \(logSegmentBytes)") }
        if let logRetentionHours { try checkSeconds(logRetentionHours, flag: "--log-retention-hours", unit: "hours", max: 10 * 365 * 24) }
        if let logRetentionBytes, logRetentionBytes <= 0 { throw ValidationError("--log-retention-bytes must be positive") }
    }

    /// Refuses these flags with a Kafka log, whose segments and retention are the topics' settings;
    /// and with the embedded log, a body limit past what it takes in one record.
    func check(for storage: LogLocationOptions, maxBodyBytes: Int) throws {
        guard storage.logLocation.hasPrefix("kafka://") else {
            // A rejected body is kept whole, as one record: a body limit past the log's record
            // limit (less 1 MiB for the rejection's other fields) let records through that every
            // reader then took for damage, stepping past the acknowledged events after them (an
            // outside review of the code). The log's writer refuses such records too.
            let recordBytes = EmbeddedLogConfiguration(directory: "").maxRecordBytes
            if maxBodyBytes > recordBytes - (1 << 20) {
                throw ValidationError(
                    "--max-body-bytes \(maxBodyBytes) is more than the embedded log takes: a rejected body is kept whole as one record, and a record holds at most \(recordBytes) bytes, so the limit is at most \(recordBytes - (1 << 20)) (15 MiB); a Kafka log (--log kafka://…) takes larger bodies")
            }
            return
        }
        let given = [
            ("--log-min-free-bytes", logMinFreeBytes != nil), ("--log-segment-bytes", logSegmentBytes != nil),
            ("--log-retention-hours", logRetentionHours != nil), ("--log-retention-bytes", logRetentionBytes != nil),
        ]
        if let flag = given.first(where: { $0.1 })?.0 {
            throw ValidationError("\(flag) is only read for the embedded log, and --log is a Kafka log: its segments and retention are the topics' settings (retention.ms, retention.bytes, segment.bytes: docs/kafka.md); drop \(flag)")
        }
    }
}

/// Where the lake lives, for the commands that write it (`serve`, `store`, `import`). Its default
/// folder is under the command's `--data-dir`.
struct LakeLocationOptions: ParsableArguments {
    @Option(name: .long, help: "The lake: 'file:<dir>' (or a plain path; 'file:///abs/path' also works, 'file://<host>/…' is refused) or 's3://bucket/prefix'. Default: file:<data-dir>/lake.")
    var lake: String?

    @Option(name: .long, help: "The S3 endpoint URL for an s3:// lake, e.g. http://127.0.0.1:8333 (SeaweedFS, MinIO). Default: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS for the region (a variable left from a MinIO or LocalStack setup redirects the lake: the start-up log names the endpoint). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; a CA bundle from AWS_CA_BUNDLE.")
    var s3Endpoint: String?

    @Option(name: .long, help: "The S3 region (signing scope). Default: AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1.")
    var s3Region: String?

    func lakeLocation(dataDir: String) -> String { lake ?? "file:\(dataDir)/lake" }

    func validate() throws {
        let location: LakeLocation
        do {
            location = try LakeLocation(parsing: lake ?? "file:./data/lake")
        } catch let error as LakeError where error.code == .invalidLocation {
            throw ValidationError("--lake: \(error.message)")
        }
        // Taken silently, they suggested an S3 lake that was not there (a review).
        if case .folder = location {
            for (flag, value) in [("--s3-endpoint", s3Endpoint), ("--s3-region", s3Region)] where !(value ?? "").isEmpty {
                throw ValidationError("\(flag) is only read for an s3:// lake, and --lake is \(lake ?? "the default folder (<data-dir>/lake)"): give --lake s3://bucket/prefix, or drop \(flag)")
            }
        }
    }
}

/// `--data-dir` alone, for `import`, which writes the lake and has no log.
struct LakeDataDirOptions: ParsableArguments {
    @Option(name: .long, help: "The data directory of the embedded defaults: the lake in <data-dir>/lake.")
    var dataDir: String = "./data"

    func validate() throws { try checkDataDir(dataDir) }
}

/// Refuses an empty `--data-dir`: `<data-dir>/log` would be `/log`, at the file system's root (an
/// outside review: what `--data-dir "$DATA_DIR"` gives with the variable unset).
func checkDataDir(_ dataDir: String) throws {
    if dataDir.isEmpty {
        throw ValidationError("--data-dir is empty: the log and the lake would go to /log and /lake, at the file system's root. Give a folder, or leave --data-dir out for ./data")
    }
    // A URL is not a folder: `--data-dir s3://bucket/x` made ./s3:/bucket/x/{log,lake}, and
    // `file:/srv/data` a folder named file: beside the process (an outside review).
    if let scheme = urlScheme(dataDir) {
        throw ValidationError("--data-dir takes a local folder, not '\(dataDir)' (\(scheme):): for a lake on S3 give --lake s3://bucket/prefix, for Kafka --log kafka://host:port/topic; --data-dir then holds only what stays local")
    }
}

/// The scheme of a text that reads as a URL (`s3://…`, `s3:bucket`, `file:/x`, `kafka:…`), or nil
/// for a path. A path whose first segment has a colon (`a:b/c`) reads as one only for the schemes
/// Playhead or its users' tools write.
func urlScheme(_ text: String) -> String? {
    guard let colon = text.firstIndex(of: ":") else { return nil }
    let scheme = text[..<colon].lowercased()
    guard !scheme.isEmpty, scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }), scheme.first!.isLetter else { return nil }
    return text[colon...].hasPrefix("://") || ["s3", "s3a", "file", "kafka", "gs", "http", "https"].contains(scheme) ? String(scheme) : nil
}

private func isDirectory(_ path: String) -> Bool {
    var directory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &directory) && directory.boolValue
}

/// How the lake writer batches.
struct FlushOptions: ParsableArguments {
    @Option(name: .long, parsing: .unconditional, help: "Close a lake batch after this many seconds, whatever its size (at most 3600).")
    var flushInterval: Double = 10

    @Option(name: .long, parsing: .unconditional, help: "Close a lake batch after this many events.")
    var flushEvents: Int = 1_000_000

    @Option(name: .long, parsing: .unconditional, help: "Close a lake batch after this many bytes of records (keeps memory bounded).")
    var flushBytes: Int = 64 * 1024 * 1024

    @Option(name: .long, parsing: .unconditional, help: "Drop an event whose event_id was already written within the last N events of its partition (client retries); 0 turns deduplication off.")
    var dedupWindow: Int = 2_000_000
}

/// The HTTP server of every long-running command: where it listens and its connection timeouts.
struct ServerOptions: ParsableArguments {
    @Option(name: .long, help: "The address to listen on (an IPv6 address with or without brackets: ::1 or [::1]).")
    var host: String = "127.0.0.1"

    /// `--host` without the brackets of a URL's IPv6 literal (`[::1]` was refused as an unknown host).
    var listenHost: String { unbracketed(host) }

    @Option(name: .long, parsing: .unconditional, help: "The TCP port (0 picks a free one; the bound port is logged).")
    var port: Int = 8080

    @Option(name: .long, parsing: .unconditional, help: "HTTP event-loop threads, 1 to 256 (three file descriptors each). Default: the number of cores.")
    var threads: Int?

    @Option(name: .long, parsing: .unconditional, help: "Seconds a request may take to arrive whole after its first byte (or, pipelined behind answers still due, after the last of them is out); slower clients get 408 and are disconnected.")
    var requestTimeout: Double = 30

    @Option(name: .long, parsing: .unconditional, help: "Seconds an idle keep-alive connection stays open.")
    var idleTimeout: Double = 75

    @Option(name: .long, parsing: .unconditional, help: "Seconds a graceful shutdown (SIGTERM, SIGINT, SIGHUP) waits for requests in flight; a second signal stops at once.")
    var shutdownGrace: Double = 30

    @Option(name: .long, parsing: .unconditional, help: "The most connections open at once; past it new clients wait (in the listen queue) until one closes. Default: three quarters of the file descriptors left when the server starts (the open-files limit, which it raises to its hard limit, less those it holds then), keeping the rest for the log and the lake.")
    var maxConnections: Int?

    /// What is checked before anything is opened: raises the open-files limit and refuses one too
    /// low for the event loops (``OpenFiles/require(threads:command:)``), and refuses an address that
    /// cannot be bound now (``ListenAddress/check(host:port:)``).
    func checkBeforeStart(command: String) throws {
        try OpenFiles.require(threads: configuration.eventLoopThreads, command: command)
        try ListenAddress.check(host: listenHost, port: port)
    }

    var configuration: IngestConfiguration {
        var configuration = IngestConfiguration()
        configuration.host = listenHost
        configuration.port = port
        if let threads { configuration.eventLoopThreads = threads }
        // To the nanosecond: whole milliseconds made 0.0004 s, taken as more than 0, a timeout of
        // 0 (an outside review).
        configuration.shutdownGracePeriod = .nanoseconds(Int64(shutdownGrace * 1e9))
        configuration.requestTimeout = .nanoseconds(Int64(requestTimeout * 1e9))
        configuration.idleTimeout = .nanoseconds(Int64(idleTimeout * 1e9))
        configuration.maxConnections = maxConnections
        return configuration
    }

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535, not \(port)") }
        try checkSeconds(requestTimeout, flag: "--request-timeout")
        try checkSeconds(idleTimeout, flag: "--idle-timeout")
        try checkSeconds(shutdownGrace, flag: "--shutdown-grace", allowZero: true)
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        // Each loop is a thread with three descriptors; past a few hundred they only contend.
        if let threads, threads > 256 { throw ValidationError("--threads must be at most 256, not \(threads)") }
        if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
    }
}

/// The HTTP edge's settings (`serve`, `ingest`): the server's, and what `POST /v1/events` accepts.
struct IngestOptions: ParsableArguments {
    @OptionGroup var server: ServerOptions

    @Option(name: .long, parsing: .unconditional, help: "The largest request body in bytes, measured on the wire and again after gzip decoding. With the embedded log at most 15728640 (15 MiB): a rejected body is kept whole as one record of at most 16 MiB.")
    var maxBodyBytes: Int = 5 * 1024 * 1024

    @Option(name: .long, parsing: .unconditional, help: "The most bytes of request bodies being received at once, and again of those being decoded or waiting for the log (two budgets of this size); past either, requests get 503 with Retry-After. At least --max-body-bytes. Lower it under a small memory limit.")
    var maxInFlightBytes: Int = 256 * 1024 * 1024

    @Option(name: .long, parsing: .unconditional, help: "The largest single event in bytes of JSON.")
    var maxEventBytes: Int = 32 * 1024

    @Option(name: .long, parsing: .unconditional, help: "The most events in one request.")
    var maxEventsPerRequest: Int = 1000

    @Option(name: .long, parsing: .singleValue, help: "A write key that POST /v1/events must present (Authorization: Bearer <key>, or ?write_key=<key>): printable ASCII without spaces. Repeat for several. Default: none, no key needed.")
    var writeKey: [String] = []

    @Option(name: .long, help: "A file of write keys, one per line (blank lines and lines starting with # are skipped), taken with any --write-key: keys on the command line are visible to every local user in ps. Read at start. Default: none.")
    var writeKeyFile: String?

    @Option(name: .long, parsing: .singleValue, help: "An origin allowed by CORS, as browsers send it: scheme://host[:port], no path or trailing slash (or null). Repeat for several. Default: * (every origin).")
    var corsOrigin: [String] = []

    @Option(name: .long, parsing: .unconditional, help: "The most events per second over all clients, accepted and rejected alike; more gets 429 with Retry-After. Default: no limit.")
    var rateLimit: Double?

    @Option(name: .long, help: "What is stored of ip_address: keep, truncate (IPv4 /24, IPv6 /48) or drop.")
    var ipPolicy: IPAddressPolicy = .keep

    @Flag(name: .long, help: "Store the client's address in events whose ip_address is \"\" (browsers cannot know theirs): the connection's peer, or behind --trusted-proxy, the address the proxies received the request from. --ip-policy then applies. Default: off, ip_address is stored as sent.")
    var fillIPAddress = false

    @Option(name: .long, parsing: .singleValue, help: "A proxy or load balancer in front of the server, as an address or a CIDR range (10.0.0.0/8, 2001:db8::/32), whose X-Forwarded-For header (or --forwarded-header) --fill-ip-address believes: the client is the nearest address in it that is not a trusted proxy. Repeat, or separate with commas, for several. Default: none, X-Forwarded-For is ignored.")
    var trustedProxy: [String] = []

    @Option(name: .long, help: "The header in which the --trusted-proxy proxies write the addresses they received a request from: X-Forwarded-For, Forwarded (RFC 7239: its for= parameters), or a header that holds one address (X-Real-IP, CF-Connecting-IP, True-Client-IP), read as X-Forwarded-For is (a comma-separated list, walked from its right end). Any case. Default: X-Forwarded-For.")
    var forwardedHeader: String?

    /// How `--fill-ip-address` finds a request's client, nil when it is off.
    func clientAddresses() throws -> ClientAddressResolver? {
        // Blank elements are none (`10.0.0.0/8, ` was refused as "'' is not an IP address").
        let entries = trustedProxy.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let networks = try entries.map { entry in
            do {
                return try IPNetwork(parsing: entry)
            } catch {
                throw ValidationError("--trusted-proxy: \(error)")
            }
        }
        let header: ForwardedHeader
        do {
            header = try forwardedHeader.map(ForwardedHeader.init(parsing:)) ?? .xForwardedFor
        } catch {
            throw ValidationError("--forwarded-header: \(error)")
        }
        if !fillIPAddress {
            if !networks.isEmpty { throw ValidationError("--trusted-proxy is only read by --fill-ip-address, which is off: add --fill-ip-address, or drop --trusted-proxy") }
            if forwardedHeader != nil { throw ValidationError("--forwarded-header is only read by --fill-ip-address, which is off: add --fill-ip-address and --trusted-proxy, or drop --forwarded-header") }
            return nil
        }
        if forwardedHeader != nil && networks.isEmpty {
            throw ValidationError("--forwarded-header is read only from a --trusted-proxy peer, and none is given: add --trusted-proxy with your proxies' addresses, or drop --forwarded-header")
        }
        return ClientAddressResolver(trustedProxies: networks, header: header)
    }

    /// The edge's settings. Reads `--write-key-file` (again: validate() read it first), and fails
    /// if it cannot: a server whose key file went missing must not start without keys.
    func configuration() throws -> IngestConfiguration {
        var configuration = server.configuration
        configuration.maxBodyBytes = maxBodyBytes
        configuration.maxInFlightBytes = maxInFlightBytes
        configuration.maxEventBytes = maxEventBytes
        configuration.maxEventsPerRequest = maxEventsPerRequest
        let fromFile = try keysFromFile()
        if let writeKeyFile, fromFile.isEmpty { throw ValidationError("--write-key-file \(writeKeyFile) holds no key: one key per line") }
        configuration.writeKeys = Set(writeKey + fromFile)
        if !corsOrigin.isEmpty { configuration.corsAllowedOrigins = corsOrigin }
        configuration.rateLimitEventsPerSecond = rateLimit
        return configuration
    }

    func validate() throws {
        for (flag, value) in [("--max-body-bytes", maxBodyBytes), ("--max-event-bytes", maxEventBytes), ("--max-events-per-request", maxEventsPerRequest)] where value <= 0 {
            throw ValidationError("\(flag) must be positive, not \(value)")
        }
        if maxInFlightBytes < maxBodyBytes {
            throw ValidationError("--max-in-flight-bytes (\(maxInFlightBytes)) must be at least --max-body-bytes (\(maxBodyBytes)): a body of the largest size must fit")
        }
        if let rateLimit, !(rateLimit > 0 && rateLimit.isFinite) { throw ValidationError("--rate-limit must be a finite number of events per second more than 0, not \(rateLimit)") }
        for origin in corsOrigin {
            if let problem = CORSOrigin.problem(with: origin) { throw ValidationError("--cors-origin '\(origin)' \(problem)") }
        }
        for (number, key) in writeKey.enumerated() where !Self.isWriteKey(key) {
            // Named by its place, not shown: it is a secret (it was echoed until 2026-12-06, a review).
            throw ValidationError("--write-key number \(number + 1) (of \(writeKey.count) given) must be non-empty printable ASCII without spaces (its value is not shown)")
        }
        _ = try configuration()
        _ = try clientAddresses()
    }

    /// A bearer token (RFC 6750) is visible ASCII; anything else no client could present.
    private static func isWriteKey(_ key: String) -> Bool {
        !key.isEmpty && !key.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7F })
    }

    /// Settings that work but are unsafe, each with why, logged as warnings at start (a review,
    /// 2026-12-06: each was accepted without a word). `clientAddresses`: what ``clientAddresses()``
    /// gave.
    func warnings(clientAddresses: ClientAddressResolver?) -> [String] {
        var warnings: [String] = []
        if let writeKeyFile {
            var info = stat()
            if stat(writeKeyFile, &info) == 0 {
                // Readable by every user, or writable by others (who could add a key of their own,
                // an outside review): one warning that says which.
                var problems: [String] = []
                if info.st_mode & 0o004 != 0 { problems.append("can be read by every user") }
                if info.st_mode & 0o022 != 0 { problems.append("can be written by users other than its owner, who could add keys of their own") }
                if !problems.isEmpty {
                    warnings.append("--write-key-file \(writeKeyFile) \(problems.joined(separator: " and ")) (mode \(String(info.st_mode & 0o777, radix: 8))): chmod 600 it (or 640 for a group that needs to read it)")
                }
            }
        }
        if corsOrigin.contains("null") {
            warnings.append("--cors-origin null lets any site send events: every sandboxed iframe and data: page sends Origin: null; list the sites' real origins instead")
        }
        if let proxies = clientAddresses?.trustedProxies, let every = IPNetwork.coverage(of: proxies) {
            let named = proxies.map(\.description).joined(separator: ",")
            warnings.append("--trusted-proxy \(named) trusts \(every): any such client can name its own address in its forwarded header; give the proxies' addresses")
        }
        return warnings
    }

    /// The text of a key file, read once per process: validation reads the keys and the server's
    /// configuration reads them again, and a pipe (`--write-key-file <(vault kv get …)`) gives its
    /// bytes once. Read as a stream, so that a pipe or a FIFO works: read as a whole file, any of
    /// them was "not UTF-8 text", and so was `/dev/null` (an outside review of the logs).
    private static func keyFileText(_ path: String) throws -> String {
        if let text = keyFilesRead.withLock({ $0[path] }) { return text }
        // In the system's words (Foundation's said "NSCocoaErrorDomain error 256" for a folder).
        func failure(_ reason: String) -> ValidationError {
            ValidationError("--write-key-file \(path) cannot be read: \(reason)")
        }
        var info = stat()
        guard stat(path, &info) == 0 else { throw failure(String(cString: strerror(errno))) }
        guard info.st_mode & S_IFMT != S_IFDIR else { throw failure("it is a folder, not a file of keys") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw failure(String(cString: strerror(errno))) }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.readToEnd() ?? Data()
        } catch {
            throw failure("\(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw failure("not UTF-8 text") }
        keyFilesRead.withLock { $0[path] = text }
        return text
    }

    private static let keyFilesRead = Mutex<[String: String]>([:])

    /// The keys of `--write-key-file`, none without it. A bad line is named by its number, not
    /// shown: it may be a key.
    private func keysFromFile() throws -> [String] {
        guard let writeKeyFile else { return [] }
        let text = try Self.keyFileText(writeKeyFile)
        var keys: [String] = []
        // By line ends of any kind: "\r\n" is one Character, which splitting at "\n" does not split.
        for (number, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let key = line.trimmingCharacters(in: .whitespaces)
            if key.isEmpty || key.hasPrefix("#") { continue }
            guard Self.isWriteKey(key) else {
                throw ValidationError("--write-key-file \(writeKeyFile), line \(number + 1): a key must be printable ASCII without spaces")
            }
            keys.append(key)
        }
        return keys
    }
}

/// The `event_source` values that keep their own label (`serve`, `ingest`, `observe`).
struct EventSourceOptions: ParsableArguments {
    @Option(
        name: .customLong("event-source"), parsing: .singleValue,
        help: ArgumentHelp(
            "An event_source value to count under its own label in playhead_events_accepted_total and the content metrics, added to the built-in ones (\(EventSourceLabels.builtIn.joined(separator: ", "))); any other value counts as 'other'. Repeat, or separate with commas, for several; at most \(EventSourceLabels.maxCount) values in all, each at most \(EventSourceLabels.maxValueBytes) bytes. Each value adds 18 series (6 event types × 3 content types) to playhead_events_accepted_total, at 0 from the start. Give the same list to every ingest and observe process. Default: none, the built-in ones alone.",
            valueName: "value"
        )
    )
    var eventSources: [String] = []

    /// The labels, checked.
    func labels() throws -> EventSourceLabels {
        let values = eventSources.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        do {
            return try EventSourceLabels(adding: values)
        } catch {
            throw ValidationError("--event-source: \(error.message)")
        }
    }

    func validate() throws {
        _ = try labels()
    }
}

/// Whether metrics are collected.
struct MetricsOptions: ParsableArguments {
    @Option(name: .long, help: "Collect metrics and serve GET /metrics, and (serve, observe) the live page at / and /live.json: on or off (off is for measuring their cost; off leaves no metrics consumer, so / , /live.json and /metrics answer 404).")
    var metrics: Toggle = .on

    enum Toggle: String, ExpressibleByArgument, CaseIterable { case on, off }
}

extension IPAddressPolicy: ExpressibleByArgument {}

/// A host as given to `--host`, without the brackets of a URL's IPv6 literal (`[::1]` is `::1`).
func unbracketed(_ host: String) -> String {
    host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
}

/// Checks a flag given in seconds (or hours): a finite number in `range`. Past about 292 years a
/// duration in nanoseconds overflows (a deadline of now + `--idle-timeout 1e10` stopped the server
/// with SIGILL at the first connection, `inf` at start), so every such flag stops at 10 years.
func checkSeconds(_ value: Double, flag: String, unit: String = "seconds", allowZero: Bool = false, max: Double = 10 * 365 * 86_400) throws {
    guard value.isFinite, allowZero ? value >= 0 : value > 0, value <= max else {
        let low = allowZero ? "at least 0" : "more than 0"
        let limit = max == 10 * 365 * 86_400 ? "\(Int(max)) (10 years)" : "\(Int(max))"
        throw ValidationError("\(flag) must be a number of \(unit) \(low) and at most \(limit), not \(value)")
    }
}
