import ArgumentParser
import Foundation
import Synchronization
import Logging

/// Options for the process's own logs (swift-log).
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "The lowest level logged: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(name: .long, help: "How logs are written to standard error: 'text' (one line, key=value metadata) or 'json' (one JSON object per line: ts, level, logger, source, message, and each metadata key as a field: counts, offsets, partitions and exit_code as JSON numbers, the rest as strings; an error that stops the command, such as a port in use, is such a line too, level critical, with its exit status in exit_code). Mistakes in the flags themselves are printed as plain text with the usage, before logging starts.")
    var logFormat: LogFormat = .text

    enum LogFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    /// Installs the log handler once for the whole process.
    func bootstrap() {
        let level = logLevel
        switch logFormat {
        case .text:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        case .json:
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}

extension LoggingOptions {
    /// Installs the log handler (``bootstrap()``), then runs a command's `body`. With `--log-format
    /// json`, an error that stops the command (a port in use, a lake that cannot be reached, the
    /// open-files limit, a log that cannot be opened) is written as one JSON log line like every
    /// other (level `critical`, logger `playhead`, the message that `Error: ` would have printed,
    /// and `exit_code`), and the process exits with the status swift-argument-parser would have
    /// given it; until 2026-12-07 it was plain `Error: …` text among JSON lines (an outside review),
    /// which a log shipper parsing each line as JSON drops or flags. With `text`, the error goes on
    /// to swift-argument-parser as before.
    func running<Command: ParsableCommand>(_ command: Command.Type, _ body: () async throws -> Void) async throws {
        bootstrap()
        do {
            try await body()
        } catch let error where logFormat == .json && !(error is ExitCode) {
            let code = command.exitCode(for: error)
            Logger(label: "playhead").critical(
                "\(command.message(for: error))", metadata: ["exit_code": .stringConvertible(code.rawValue), "command": "\(command._commandName)"])
            throw code
        } catch let code as ExitCode where logFormat == .json && code.rawValue != 0 {
            // A command that said why in its own lines (an import interrupted, a refusal) and then
            // exits: its last line says so too, as the help promises (an outside review).
            let why = code.rawValue > 128 ? "stopped by signal \(code.rawValue - 128)" : "failed"
            Logger(label: "playhead").critical(
                "\(command._commandName) \(why)", metadata: ["exit_code": .stringConvertible(code.rawValue), "command": "\(command._commandName)"])
            throw code
        }
    }
}

extension LoggingOptions {
    /// ``running(_:_:)`` for a server (`serve`, `ingest`, `store`, `observe`): its signals are heard
    /// from its first step on (``ServerSignals``, which `body` hands to
    /// ``PipelineParts/run(signals:services:threadPools:logger:)``).
    func serving<Command: ParsableCommand>(_ command: Command.Type, _ body: (ServerSignals) async throws -> Void) async throws {
        try await running(command) {
            try await body(await ServerSignals.start(command: command._commandName, logger: Logger(label: "playhead"), json: logFormat == .json))
        }
    }
}

/// An error that stops a command at start, in its own words: swift-argument-parser prints it as
/// `Error: <message>` and exits with status 1; with `--log-format json` it is a log line
/// (``LoggingOptions/running(_:_:)``).
struct StartFailure: LocalizedError {
    let message: String
    init(_ message: String) { self.message = message }
    var errorDescription: String? { message }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Writes each log record as one JSON object per line on standard error, for log shippers.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: Any] = [
            "level": "\(event.level)",
            "logger": label,
            "message": "\(event.message)",
            // The module that logged it (`RdKafka` for librdkafka's lines; text lines show it in brackets).
            "source": event.source,
        ]
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for (key, value) in merged { fields[key] = Self.plain(value) }
        Self.write(fields)
    }

    /// Serialises the lines of every thread (one longer than a pipe's 4 KiB atomic write could
    /// interleave with another's) and the shared date formatter, which is not thread-safe.
    private static let output = Mutex(())

    /// Writes `fields`, stamped with the time, as a line to standard error, ignoring failures as the
    /// text format's `fwrite` does: `FileHandle.write(_:)` traps on one, and a full disk under a
    /// redirected log (`2>file`), a closed terminal or a log reader gone (EPIPE with SIGPIPE
    /// ignored, as systemd does) crashed the process with SIGILL, mid-drain or before it listened
    /// (an outside review).
    static func write(_ fields: [String: Any]) {
        output.withLock { _ in
            var fields = fields
            fields["ts"] = ISO8601DateFormatter.withFractionalSeconds.string(from: Date())
            guard var data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
            data.append(0x0A)
            data.withUnsafeBytes { raw in
                var done = 0
                while done < raw.count {
                    let n = Glibc.write(2, raw.baseAddress! + done, raw.count - done)
                    if n > 0 {
                        done += n
                    } else if n < 0 && errno == EINTR {
                        continue
                    } else {
                        return
                    }
                }
            }
        }
    }

    /// A metadata value as JSON: counts, offsets, partitions and exit codes (logged as
    /// `.stringConvertible` integers) as JSON numbers, so that a log pipeline (Loki, Elasticsearch,
    /// `jq`) compares and sums them without parsing; everything else as the text format prints it.
    /// Until 2026-12-08 every value was a string (`"exit_code":"1"`).
    static func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let string): return string
        case .stringConvertible(let convertible):
            switch convertible {
            case let number as Int: return number
            case let number as Int64: return number
            case let number as Int32: return number
            case let number as UInt64: return number
            case let number as UInt32: return number
            case let number as Double where number.isFinite: return number
            case let flag as Bool: return flag
            default: return convertible.description
            }
        case .array(let values): return values.map(plain)
        case .dictionary(let dictionary): return dictionary.mapValues(plain)
        }
    }
}

extension ISO8601DateFormatter {
    nonisolated(unsafe) static let withFractionalSeconds: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()
}
