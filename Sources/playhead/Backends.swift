import ArgumentParser
import Foundation
import Logging
import PlayheadKafka
import PlayheadLake
import PlayheadLog
import ServiceLifecycle

/// A log opened from its location (`file:<dir>` or `kafka://…`), with the service that runs it.
struct OpenedLog {
    var backend: any LogBackend
    var service: any Service

    /// - Parameter readOnly: open the embedded log as a reader beside a writer in another process
    ///   (`playhead store` and `playhead observe` next to `playhead ingest`).
    /// - Parameter mustExist: the log must be there already (a reader that is not waiting for a
    ///   writer): an embedded log's directory (a missing one is a wrong path, not an empty log); on
    ///   Kafka no topics are created, and a missing topic is an error when it is read.
    /// - Parameter waitsForLog: a reader that waits for a writer (`log dump --follow`): on Kafka it
    ///   creates no topics either, and waits for a missing topic to be made.
    /// - Parameter writer: the embedded log's writer settings (`serve`, `ingest`); nil for readers.
    /// - Parameter lakeWriter: this process writes the lake from the log (`serve`, `store`): an
    ///   embedded log takes its lake-writer lock (``EmbeddedLog/lockForLakeWriter()``).
    /// - Parameter requestBytes: the edge's body limit (`serve`, `ingest`): a rejected record holds
    ///   up to that many bytes as sent, and a Kafka log's messages must fit it.
    static func open(
        _ location: String, readOnly: Bool, mustExist: Bool = false, waitsForLog: Bool = false, readsOnce: Bool = false,
        writer: LogWriterOptions? = nil,
        requestBytes: Int? = nil,
        lakeWriter: Bool = false, logger: Logger
    ) throws -> OpenedLog {
        if location.hasPrefix("kafka://") {
            var configuration = try KafkaLogConfiguration(url: location)
            if let requestBytes { configuration = configuration.fitting(recordsOf: requestBytes) }
            // `log dump` without --follow: a typo in the topic made two empty topics of 12
            // partitions, and printed nothing (a probe).
            if mustExist { configuration.createTopics = false }
            // `store` and `observe` leave the topics to `ingest`, and wait for them: a typo in
            // their URL made two topics and a reader that said it was ready (an outside review).
            // An `ingest` told not to make them (create_topics=false) waits for them too, rather
            // than produce into a topic the broker makes with its own defaults.
            if readOnly && !mustExist { configuration.createTopics = false }
            if !configuration.createTopics && !mustExist { configuration.waitForTopics = true }
            // `log dump --follow` started before the first `ingest` made the topics with 12
            // partitions, which `ingest --log …?partitions=4` then used as they were.
            if waitsForLog {
                configuration.createTopics = false
                configuration.waitForTopics = true
            }
            let log = try KafkaLog(configuration: configuration, logger: logger)
            return OpenedLog(backend: log, service: log)
        }
        let directory = try embeddedDirectory(location)
        if mustExist && !FileManager.default.fileExists(atPath: directory) {
            throw LogError(
                code: .invalidArgument,
                message: "no log at \(directory): the directory does not exist (check --data-dir or --log; --follow waits for a writer)"
            )
        }
        var configuration = EmbeddedLogConfiguration(directory: directory)
        // The lake must see every event, even before its first flush (or before `store` starts):
        // writers keep its records. Readers know it too: a lake group that never committed had its
        // records kept, so records missing before its position were deleted by hand.
        configuration.requiredGroups = [LakeWriterConfiguration().group]
        writer?.apply(to: &configuration)
        // A reader that reads once (`log dump` without --follow) stops at an unreadable record of
        // the last segment; it asked the writer to close the segment, as a follower does, and a
        // dump of a stopped log waited 15 s and failed (an outside review).
        if readsOnce { configuration.readOnlyRollRequestAfter = nil }
        let log = readOnly
            ? try EmbeddedLog.openReadOnly(configuration, logger: logger)
            : try EmbeddedLog.open(configuration, logger: logger)
        if mustExist && log.isNeverWritten {
            log.close()
            let nested = directory + "/log"
            let hint = FileManager.default.fileExists(atPath: nested + "/id")
                ? "; it holds a log in \(nested): a --data-dir keeps its log in <dir>/log (--data-dir \(directory), or --log \(nested))"
                : " (check --data-dir or --log; --follow waits for a writer)"
            throw LogError(code: .invalidArgument, message: "no log at \(directory): the folder holds no log's id file and no segments\(hint)")
        }
        if lakeWriter {
            do {
                try log.lockForLakeWriter()
            } catch {
                log.close()
                throw error
            }
        }
        return OpenedLog(backend: log, service: log)
    }

    /// For `store` and `observe` beside a writer: says at start (warning) when no writer has made
    /// the embedded log yet, and gives `/readyz` the reason until one has (nil for Kafka).
    func waitingForWriter(logger: Logger) -> @Sendable () -> String? {
        guard let log = backend as? EmbeddedLog else { return { nil } }
        if let reason = log.waitingForWriter { logger.warning("\(reason)") }
        return { log.waitingForWriter }
    }

    /// The folder of an embedded log's location (a `file:` URL or a path); throws for a scheme
    /// Playhead does not know. Not for `kafka://` locations.
    static func embeddedDirectory(_ location: String) throws -> String {
        let directory: String
        if let folder = try folder(location) {
            directory = folder
        } else if let message = unsupportedScheme(location) {
            throw ValidationError(message)
        } else {
            directory = location
        }
        guard !directory.isEmpty else { throw ValidationError("--log file: needs a directory, e.g. file:./data/log") }
        return directory
    }

    /// The folder of a `file:` location, or nil for any other (``FileLocation/folder(_:)``).
    static func folder(_ location: String) throws -> String? {
        do {
            return try FileLocation.folder(location)
        } catch {
            throw ValidationError("--log: \(error.description)")
        }
    }

    /// Why `location` names no log Playhead knows (a scheme other than `file:` and `kafka://`), or nil.
    static func unsupportedScheme(_ location: String) -> String? {
        // `kafka:host:9092/topic` (no `//`) once made a folder of that name and wrote the events there.
        let kafkaWithoutSlashes = location.lowercased().hasPrefix("kafka:") && !location.hasPrefix("kafka://")
        guard location.contains("://") || kafkaWithoutSlashes, !location.hasPrefix("kafka://"), !location.hasPrefix("file://") else {
            return nil
        }
        // Its parameters' values hidden, as a Kafka URL's are (a mistyped scheme showed a password).
        return "--log must be file:<dir>, a plain path, or kafka://host:port/topic, not '\(KafkaLogConfiguration.redacted(location))'"
    }
}
