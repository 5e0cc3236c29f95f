import ArgumentParser
import Foundation
import Logging
import PlayheadEvents
import PlayheadLake
import PlayheadLog

/// `playhead log …`: operator tools for the log.
struct LogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Inspect the log.",
        subcommands: [LogDumpCommand.self, LogGroupsCommand.self, LogSalvageCommand.self]
    )
}

/// `playhead log dump`: the log's records as NDJSON (what kcat is for Kafka).
struct LogDumpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print the log's records as NDJSON, one JSON object per line, on standard output.",
        discussion: """
            Safe while a server writes to the same log: it reads what is durable and commits nothing. \
            A folder that holds no log (no id file, no segments) is an error, exit status 1, unless \
            --follow, which waits for a writer and says so (without making the folder). \
            Accepted events print as the event's fields plus received_at and the log position \
            (_partition, _offset), these three last: an event that carried unknown fields of those \
            names prints them too, before, so the key appears twice and readers that keep a repeated \
            key's last value (jq, Python) read the server's (DuckDB's read_json refuses such a line); \
            rejected ones as received_at, index (the event's place in its request, \
            request_index in the lake), reason, field, message, event_id and the bytes that were sent: \
            as text in raw, or in raw_base64 when they are not valid UTF-8. Without --follow it stops at \
            the end of the log (on Kafka, once every partition has reported its end); a log that shows \
            neither records nor its end for 15 s (a broker that cannot be reached) is an error, exit \
            status 1. The embedded log's damage (docs/log-format.md) is stepped past as the lake writer \
            steps past it, with a warning on standard error for each: records that cannot be read \
            (exit status 1 at the end, after every other record: `playhead log salvage <segment file>` \
            reads on past the damage), and records missing between segments (a gap the log's recovery \
            or a deleted segment left: counted, exit status 0). An unreadable record in the last \
            segment is taken for a write in progress (a running writer may be writing it): the dump \
            ends before it, saying so, exit status 0, and asks nothing of the writer (salvage names \
            damaged bytes). With --follow it waits there, and after 2 s asks the writing process to \
            close the segment if the record is damage (the log's roll-request file), then steps past it.
            """
    )

    @OptionGroup(title: "Storage") var storage: LogLocationOptions

    @Option(name: .long, help: "The topic to print: events (accepted events) or rejected.")
    var topic: String = "events"

    @Option(name: .long, parsing: .unconditional, help: "Print at most this many records. Default: all.")
    var limit: Int?

    @Option(name: .long, parsing: .unconditional, help: "Start at this offset (the _offset field) of --partition, and print only that partition. Default: every record from the earliest kept.")
    var offset: Int64?

    @Option(name: .long, parsing: .unconditional, help: "The partition --offset applies to: 0 for the embedded log, which has one; 0 to N-1 for a Kafka topic of N. (default: 0)")
    var partition: Int32?

    @Flag(name: .long, help: "Print each accepted event alone, as it goes back in with `playhead import`: without received_at and the fields this command adds (_partition, _offset). Numbers and unknown fields are printed as stored, so no jq filter is needed (Debian 12's jq 1.6 rounds numbers of 2^53 and more). Not for --topic rejected, whose records are what was sent, in raw.")
    var forImport = false

    @Flag(name: .long, help: "Keep waiting for new records instead of stopping at the end of the log, until SIGINT or SIGTERM (then exit 0). On Kafka it creates no topics: a topic not made yet is waited for (the first ingest or serve makes it, with its partitions=).")
    var follow = false

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func validate() throws {
        try storage.checkDataDirUsed()
        guard topic == "events" || topic == "rejected" else {
            throw ValidationError("--topic must be events or rejected, not '\(topic)'")
        }
        if forImport, topic == "rejected" { throw ValidationError(Self.forImportRejected) }
        if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
        if let offset, offset < 0 { throw ValidationError("--offset must not be negative") }
        if let partition {
            guard offset != nil else { throw ValidationError("--partition needs --offset: without it every partition is printed") }
            guard partition >= 0 else { throw ValidationError("--partition must not be negative") }
        }
    }

    static let forImportRejected = "--for-import prints accepted events; a rejected record is what was sent, in raw (docs/runbook.md, RejectRatioHigh, says how to replay them)"

    func run() async throws {
        // Under --log-format json every line on standard error is a log line, and an error that
        // ends the dump a critical one with its exit_code, as the help says (it wrote plain text:
        // an outside review of the logs).
        try await logging.running(Self.self) { try await dump() }
    }

    /// A line on standard error: plain text (`warning: ` before a warning's when `prefixed`), or
    /// under --log-format json a log line of `level`.
    private func say(_ level: Logger.Level, _ text: String, prefixed: Bool = false) {
        if logging.logFormat == .json {
            Logger(label: "playhead.log").log(level: level, "\(text)")
        } else {
            FileHandle.standardError.write(Data(((prefixed ? "warning: " : "") + text + "\n").utf8))
        }
    }

    private func dump() async throws {
        let logger = Logger(label: "playhead.log")
        // --follow runs until SIGINT or SIGTERM, which end it as they end the servers: what was
        // read is printed and it exits 0 (it died by the signal, status 130 or 143, a contract
        // review). A second signal ends it at once.
        let stop = Interruption()
        let interrupts = follow ? await Signals.onInterrupt { stop.request(signal: $0) } : []
        defer { for source in interrupts { source.cancel() } }
        // --follow on a folder no writer has made a log in waits, and says so (a typo waited
        // silently). It waits for the folder too, rather than make it: a mistyped path left an
        // empty folder behind (until 2026-12-05).
        var waited = false
        if follow, !storage.logLocation.hasPrefix("kafka://") {
            let folder = try OpenedLog.embeddedDirectory(storage.logLocation)
            while !FileManager.default.fileExists(atPath: folder) {
                if stop.signal != nil { return }
                if !waited {
                    logger.warning("no log has been written at \(folder) yet (the folder does not exist): waiting for a writer (`playhead ingest` with this --data-dir or --log); check the path")
                    waited = true
                }
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        let log = try storage.open(readOnly: true, mustExist: !follow, waitsForLog: follow, readsOnce: !follow, logger: logger)
        if follow && !waited { _ = log.waitingForWriter(logger: logger) }
        let consumer = try log.backend.consumer(for: LogTopic(topic), group: nil)
        // Where to start: a seek, and a filter, since a Kafka reader sent past the end of a
        // partition starts again at its beginning (`auto.offset.reset`).
        let start = offset.map { (partition: partition ?? 0, offset: $0) }
        if let start { try await consumer.seek(partition: start.partition, to: start.offset) }
        let rejected = topic == "rejected"
        var printed = 0
        var line: [UInt8] = []
        var output: [UInt8] = []
        output.reserveCapacity(1 << 20)
        // Without --follow the dump ends where the log ends (for Kafka, where every partition reported
        // its end); a log that shows neither records nor its end for this long is an error.
        let patience = Duration.seconds(15)
        var lastProgress = ContinuousClock.now
        var skipped = 0
        // Records stepped past: missing (a gap the log's recovery or a deleted segment left) and
        // unreadable (damage). The dump stopped at the first, with advice that found nothing to
        // salvage in a gap (an outside review); it now reads on, as the lake writer does.
        var missing: Int64 = 0, unreadable: Int64 = 0, strayBytes = 0
        var next: [Int32: Int64] = [:]
        do {
            loop: while limit.map({ printed < $0 }) ?? true {
                if stop.signal != nil { break }
                let poll: LogPoll
                switch try await Self.read(consumer, timeout: .milliseconds(follow ? 1000 : 300)) {
                case .records(let records):
                    poll = records
                case .damaged(let damaged, let error):
                    FileHandle.standardOutput.write(Data(output))
                    output.removeAll(keepingCapacity: true)
                    let from = max(damaged.offset, start.map { $0.partition == damaged.partition ? $0.offset : 0 } ?? 0)
                    let end = damaged.offset + damaged.records
                    let message: String
                    next[damaged.partition] = max(next[damaged.partition] ?? 0, end)
                    if damaged.records == 0 {
                        strayBytes += 1
                        message = "\(damaged.bytes.count) bytes after the last record of a closed segment hold no record (\(error.message)); skipped: `playhead log salvage <segment file>` reads them"
                    } else if damaged.bytes.isEmpty {
                        missing += damaged.missed
                        message = "records \(from)..<\(end) are missing from the log (\(error.message)); the dump goes on at offset \(end)"
                    } else {
                        unreadable += damaged.missed
                        message = "records \(from)..<\(end) cannot be read (\(error.message)); skipped: `playhead log salvage <segment file>` reads on past the damage (docs/runbook.md, LogRecordDamaged)"
                    }
                    say(.warning, "partition \(damaged.partition): \(message)", prefixed: true)
                    lastProgress = .now
                    continue
                }
                if !poll.batches.isEmpty { lastProgress = .now }
                for batch in poll.batches {
                    if let start, batch.partition != start.partition { continue }
                    var stop = false
                    try batch.forEachRecord { offset, value in
                        guard !stop, offset >= start?.offset ?? 0 else { return }
                        next[batch.partition] = offset + 1
                        do {
                            try LogRecordJSON.write(value, rejected: rejected, adding: #","_partition":\#(batch.partition),"_offset":\#(offset)"#, forImport: forImport, into: &line)
                        } catch let error as RecordFormatError {
                            // Not a Playhead record (on Kafka, a message another producer wrote to the
                            // topic): said on standard error and passed; the dump stopped there before.
                            skipped += 1
                            if skipped <= 10 {
                                say(.warning, "partition \(batch.partition) offset \(offset): not a Playhead record (\(error)); skipped")
                            }
                            return
                        }
                        output.append(contentsOf: line)
                        output.append(UInt8(ascii: "\n"))
                        printed += 1
                        if let limit, printed >= limit { stop = true }
                    }
                    if output.count >= 1 << 20 || follow {
                        FileHandle.standardOutput.write(Data(output))
                        output.removeAll(keepingCapacity: true)
                    }
                    if stop { break loop }
                }
                if follow { continue }
                if await consumer.caughtUp() { break }
                if lastProgress.duration(to: .now) > patience {
                    throw StartFailure("\(log.backend.displayName): no records and no end of the log in \(patience) (is the broker reachable?)")
                }
            }
        } catch {
            // What was read before the error is printed: with a damaged record, the records before it.
            FileHandle.standardOutput.write(Data(output))
            await consumer.close()
            if let error = error as? LogError, error.code == .corrupt {
                throw StartFailure("a record of the log cannot be read: \(error.message). `playhead log salvage <segment file>` reads a damaged file's records on past the damage (docs/runbook.md, LogRecordDamaged).")
            }
            throw error
        }
        FileHandle.standardOutput.write(Data(output))
        // An offset past the end printed nothing, without a word (a review): say where the log ends.
        if printed == 0, skipped == 0, let start, let end = await consumer.endOffsetAsLastRead(partition: start.partition), start.offset >= end {
            say(.notice, "nothing at or after offset \(start.offset): partition \(start.partition) of \(log.backend.storedName(of: LogTopic(topic))) ends at offset \(end)")
        }
        // Stopped before the embedded log's end at a record of its last segment that cannot be read
        // (a write in progress, or damage): said, so that a dump that ends early is not taken for
        // the whole log.
        if !follow, stop.signal == nil, limit.map({ printed < $0 }) ?? true, log.backend.identity != nil,
           case let reached = next[0] ?? start?.offset ?? 0, let end = await consumer.endOffsetAsLastRead(partition: 0), reached < end {
            say(.warning, "the dump stopped at offset \(reached), before the log's end at \(end): the record there cannot be read yet (a write in progress, or damage in the last segment: `playhead log salvage <segment file>` tells; a running writer closes the segment when a reader follows with --follow)", prefixed: true)
        }
        await consumer.close()
        if skipped > 0 {
            say(.warning, "\(skipped) records that are not Playhead records were skipped")
        }
        if missing > 0 {
            say(.warning, "\(missing) records are missing from the log (above); every record it holds was printed")
        }
        if unreadable > 0 || strayBytes > 0 {
            let what = [
                unreadable > 0 ? "\(unreadable) records of the log cannot be read" : nil,
                strayBytes > 0 ? "\(strayBytes) closed segments hold bytes after their last record" : nil,
            ].compactMap { $0 }.joined(separator: ", and ")
            throw StartFailure("\(what) (above); every other record was printed")
        }
    }

    /// A poll, or the damage it stopped at, stepped past where the records after it are certain.
    enum Read {
        case records(LogPoll)
        case damaged(DamagedLogRecord, LogError)
    }

    static func read(_ consumer: any LogConsumer, timeout: Duration) async throws -> Read {
        do {
            return .records(try await consumer.poll(maxRecords: 10_000, timeout: timeout))
        } catch {
            guard error.code == .corrupt, let damaged = try await consumer.skipDamagedRecord() else { throw error }
            return .damaged(damaged, error)
        }
    }
}

/// `playhead log salvage`: the records of damaged log bytes as NDJSON, read past the damage.
struct LogSalvageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "salvage",
        abstract: "Print the records of a damaged log file as NDJSON, reading on past the damage.",
        discussion: """
            For the files damage leaves behind (docs/runbook.md): a segment of the embedded log \
            (<data-dir>/log/<topic>/<first offset>.log), the tail a log saved when it opened \
            (<segment>.damaged-at-<byte>), or what the lake writer kept of a damaged segment \
            (<lake>/_playhead/damaged/<dataset>/p<partition>-<offset>[-<last offset>].record[s]). Where a \
            record cannot be read, the bytes after it are searched for the next record whose length fits \
            and whose checksum holds, and reading goes on from there. Records print as `log dump` prints \
            them, with `_byte` (where the record starts in the file) and, where it is certain, `_offset`: \
            counted on from the file's first offset before the first damaged place, and back from its \
            end offset after the last one. Offsets are taken from the file's name when it is one of the \
            names above (the end of a segment from the next segment's name), or given with \
            --first-offset and --end-offset. A `.record` file in which no framed record is found is \
            read whole, as one record's value: so the lake writer keeps a record whose value its build \
            could not read (on Kafka, a message another producer wrote; a record of a newer release's \
            schema), and a newer build reads it. Standard error ends with a summary: records, damaged byte \
            ranges, and records that could not be decoded. Exit status 0 when the file could be read.
            """
    )

    @Argument(help: "The file to read.")
    var file: String

    @Option(name: .long, help: "The records' kind: events or rejected. Default: rejected when the file's folder is named rejected, else events.")
    var topic: String?

    @Flag(name: .long, help: "Print each accepted event alone, as it goes back in with `playhead import`: without received_at and the fields this command adds (_byte, _offset). Numbers and unknown fields are printed as stored, so no jq filter is needed (Debian 12's jq 1.6 rounds numbers of 2^53 and more). Not for --topic rejected, whose records are what was sent, in raw.")
    var forImport = false

    @Option(name: .long, parsing: .unconditional, help: "The offset of the file's first record. Default: from the file's name, where it gives one.")
    var firstOffset: Int64?

    @Option(name: .long, parsing: .unconditional, help: "The offset after the file's last record. Default: from the file's name (for a segment, the next segment's name), where it gives one.")
    var endOffset: Int64?

    func validate() throws {
        if let topic, topic != "events" && topic != "rejected" {
            throw ValidationError("--topic must be events or rejected, not '\(topic)'")
        }
        if forImport, topic == "rejected" { throw ValidationError(LogDumpCommand.forImportRejected) }
        if let firstOffset, firstOffset < 0 { throw ValidationError("--first-offset must not be negative") }
        if let endOffset, endOffset < 0 { throw ValidationError("--end-offset must not be negative") }
        if let firstOffset, let endOffset, endOffset <= firstOffset {
            throw ValidationError("--end-offset (\(endOffset)) must be more than --first-offset (\(firstOffset)): it is the offset after the file's last record")
        }
    }

    func run() throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            // Said with the system's reason ("cannot read /x" alone left a user guessing, a review).
            let reason = FileManager.default.fileExists(atPath: file) ? "it cannot be read (permissions? a folder?)" : "no such file"
            FileHandle.standardError.write(Data("Error: cannot read \(file): \(reason)\n".utf8))
            throw ExitCode.failure
        }
        let bytes = [UInt8](data)
        let url = URL(fileURLWithPath: file)
        let folder = url.deletingLastPathComponent().lastPathComponent
        let rejected = (topic ?? (folder == "rejected" ? "rejected" : "events")) == "rejected"
        if forImport, rejected {
            throw ValidationError(LogDumpCommand.forImportRejected + "; this file is in a folder named rejected: give --topic events if it holds events")
        }
        let named = Self.offsets(fromName: url)
        var result = LogSalvage.scan(bytes)
        // A `.record` the lake writer kept because its value is not a record this build reads (on
        // Kafka, a message another producer wrote; or a record of a newer release's schema) holds
        // the value alone, without a frame: read it whole. A newer build reads what an older one kept.
        // (A damaged record of the embedded log is kept framed: its length then gives the file's size.)
        let framedLength = bytes.count >= 8 ? bytes.withUnsafeBytes { Int(LogFraming.readUInt32($0, at: 0)) } : -1
        let bareValue = result.records.isEmpty && url.pathExtension == "record" && !bytes.isEmpty && framedLength != bytes.count - 8
        if bareValue {
            result = LogSalvage.wholeValue(bytes.count)
        }
        let offsets = result.offsets(firstOffset: firstOffset ?? named.first, endOffset: endOffset ?? named.end)
        var output: [UInt8] = []
        var line: [UInt8] = []
        var undecodable: [Int] = []
        for (record, offset) in zip(result.records, offsets) {
            let fields = ",\"_byte\":\(record.byte)" + (offset.map { ",\"_offset\":\($0)" } ?? "")
            let decoded = bytes.withUnsafeBytes { raw -> Bool in
                (try? LogRecordJSON.write(UnsafeRawBufferPointer(rebasing: raw[record.value]), rejected: rejected, adding: fields, forImport: forImport, into: &line)) != nil
            }
            guard decoded else {
                undecodable.append(record.byte)
                continue
            }
            output.append(contentsOf: line)
            output.append(UInt8(ascii: "\n"))
            if output.count >= 1 << 20 {
                FileHandle.standardOutput.write(Data(output))
                output.removeAll(keepingCapacity: true)
            }
        }
        FileHandle.standardOutput.write(Data(output))

        let printed = result.records.count - undecodable.count
        var summary = "\(file): \(bytes.count) bytes, \(printed) records printed"
        let unprinted = Set(undecodable)
        let withOffsets = zip(result.records, offsets).filter { $0.1 != nil && !unprinted.contains($0.0.byte) }.count
        summary += " (\(withOffsets) with an offset)"
        if bareValue {
            summary += printed == 1
                ? " (read whole, as one record's value without a frame or checksum: a record the lake writer kept because the build that wrote the lake could not read it)"
                : " (neither framed records nor, read whole, one record's value: the bytes are not \(rejected ? "rejected input" : "an event"); look at them, they may say who wrote them)"
        }
        if bareValue {
            // One value read whole: no frame, so no damage to speak of.
        } else if result.damaged.isEmpty {
            summary += "; no damage"
        } else {
            let ranges = result.damaged.prefix(20).map { "\($0.lowerBound)..<\($0.upperBound)" }.joined(separator: ", ")
            summary += "; \(result.damaged.count) damaged byte ranges, \(result.damaged.reduce(0) { $0 + $1.count }) bytes: \(ranges)"
            if result.damaged.count > 20 { summary += ", …" }
        }
        if let zeros = result.zeroFilled {
            // A segment that another follows was cut to its records when the writer closed it: zeros
            // after them are not space kept ahead (the message said so of any file: an outside review).
            let closedSegment = url.pathExtension == "log" && named.end != nil
            summary += closedSegment
                ? "; \(zeros.count) zero bytes at the end, which a closed segment should not hold (the writer cut it to its records before the next one began): damage"
                : "; \(zeros.count) zero bytes at the end (a writing log's space ahead, not damage)"
        }
        if !undecodable.isEmpty, !bareValue {
            summary += "; \(undecodable.count) records whose checksum holds but that are not \(rejected ? "rejected input" : "events") (at bytes \(undecodable.prefix(20).map(String.init).joined(separator: ", ")))"
        }
        if result.damaged.isEmpty, let first = firstOffset ?? named.first, let end = endOffset ?? named.end, first + Int64(result.records.count) != end {
            summary += "; the file holds \(result.records.count) records, but its offsets \(first)..<\(end) say \(end - first), so none is given an offset"
        } else if !result.damaged.isEmpty, result.impossible(firstOffset: firstOffset ?? named.first, endOffset: endOffset ?? named.end) {
            let first = (firstOffset ?? named.first).map { "first offset \($0), " } ?? ""
            summary += "; the offsets given (\(first)end offset \(endOffset ?? named.end ?? 0)) cannot hold the records read, so none is given an offset"
        }
        FileHandle.standardError.write(Data((summary + "\n").utf8))
    }

    /// The first offset and the end offset a damaged file's name gives: a segment
    /// (`<first offset>.log`, its end from the next segment's name beside it), or a lake's kept
    /// bytes (`p<partition>-<offset>.record`, `p<partition>-<offset>-<last offset>.records`).
    static func offsets(fromName url: URL) -> (first: Int64?, end: Int64?) {
        let name = url.lastPathComponent
        if name.hasSuffix(".log"), let first = Int64(name.dropLast(4)) {
            let folder = url.deletingLastPathComponent().path
            let next = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
                .compactMap { $0.hasSuffix(".log") ? Int64($0.dropLast(4)) : nil }
                .filter { $0 > first }
                .min()
            return (first, next)
        }
        for suffix in [".record", ".records"] where name.hasPrefix("p") && name.hasSuffix(suffix) {
            let parts = name.dropFirst().dropLast(suffix.count).split(separator: "-").map { Int64($0) }
            guard parts.allSatisfy({ $0 != nil }) else { break }
            if suffix == ".record", parts.count == 2, let offset = parts[1] { return (offset, offset + 1) }
            if suffix == ".records", parts.count == 3, let from = parts[1], let last = parts[2] { return (from, last + 1) }
        }
        return (nil, nil)
    }
}

/// A record of the log as `log dump` and `log salvage` print it: the event's (or rejected input's)
/// JSON object, with `fields` (`,"name":value…`) added as its last members; with `forImport`, an
/// accepted event alone, as `playhead import` reads it (no `received_at`, no `fields`).
enum LogRecordJSON {
    static func write(_ value: UnsafeRawBufferPointer, rejected: Bool, adding fields: String, forImport: Bool = false, into line: inout [UInt8]) throws {
        line.removeAll(keepingCapacity: true)
        if rejected {
            try RejectedRecordView(value).appendJSON(to: &line)
        } else {
            try EventRecordView(value).appendJSON(to: &line, receivedAt: !forImport)
        }
        if forImport { return }
        guard line.last == UInt8(ascii: "}") else { throw RecordFormatError("not a JSON object") }
        line.removeLast()
        line.append(contentsOf: Array(fields.utf8))
        line.append(UInt8(ascii: "}"))
    }
}

/// `playhead log groups`: where each consumer group of the embedded log stands, and what of the
/// log it keeps from retention (what `kafka-consumer-groups.sh --describe` is for Kafka).
struct LogGroupsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "groups",
        abstract: "List the embedded log's consumer groups: their committed offsets, how far behind they are, and what of the log they keep.",
        discussion: """
            One line per group and topic: the committed offset (the next record the group reads), the \
            topic's durable end as its writer last published it, the records between the two, and the \
            bytes and segments of the log from the group's offset on, which retention may not delete while \
            the group stays there (docs/log-format.md, "Retention"), with the time of its last commit. \
            Safe while a server runs: it reads the log's folder and changes nothing. `lake` is the lake \
            writer's group and `lake.rollups` its hold on the open hours: never remove either; `lake` \
            is listed before its first commit too (committed false), since serve and ingest keep every \
            segment for it until then. The bytes of the last segment are its records (a running \
            writer's file holds zero-filled space after them). A group that \
            no process runs any more holds the log for good: retire it as docs/runbook.md (DiskNearlyFull) \
            says. The embedded log only: for Kafka use the cluster's own tools \
            (kafka-consumer-groups.sh --describe --group lake) or playhead_consumer_lag_events. \
            A folder that holds no log is an error, exit status 1.
            """
    )

    @OptionGroup(title: "Storage") var storage: LogLocationOptions

    @Flag(name: .long, help: "Print one JSON object per line (group, topic, offset, end, behind, held_bytes, held_segments, last_commit, committed, role, problem) instead of a table.")
    var json = false

    func validate() throws {
        try storage.checkDataDirUsed()
        if storage.logLocation.hasPrefix("kafka://") {
            throw ValidationError("log groups reads the embedded log's folder; for Kafka use the cluster's tools (kafka-consumer-groups.sh --describe --group lake) or the metric playhead_consumer_lag_events")
        }
    }

    func run() throws {
        let folder = try OpenedLog.embeddedDirectory(storage.logLocation)
        guard FileManager.default.fileExists(atPath: folder + "/id") || FileManager.default.fileExists(atPath: folder + "/groups") else {
            let files = FileManager.default
            let inside = files.fileExists(atPath: folder + "/log/id") ? "; it holds a log in \(folder)/log" : ""
            let reason = files.fileExists(atPath: folder) ? "the folder holds no log (no id file, no groups/)\(inside)" : "the folder does not exist"
            FileHandle.standardError.write(Data("Error: no log at \(folder): \(reason); check --data-dir or --log\n".utf8))
            throw ExitCode.failure
        }
        // `lake` is listed before its first commit too: serve and ingest require it, so retention
        // keeps every segment for it until then.
        let standings = GroupStanding.all(inLog: folder, required: [LakeWriterConfiguration().group])
        let now = Date()
        var output = ""
        if json {
            for standing in standings {
                output += Self.jsonLine(standing) + "\n"
            }
        } else {
            var rows = [["GROUP", "TOPIC", "OFFSET", "END", "BEHIND", "HELD", "LAST COMMIT", "ROLE"]]
            for standing in standings {
                rows.append([
                    standing.group, standing.topic, standing.offset.map(String.init) ?? "unreadable",
                    standing.end.map(String.init) ?? "-", standing.behind.map(String.init) ?? "-",
                    "\(Self.bytes(standing.heldBytes)) in \(standing.heldSegments) segment\(standing.heldSegments == 1 ? "" : "s")",
                    standing.committed ? standing.lastCommit.map { GroupStanding.age(now.timeIntervalSince($0)) + " ago" } ?? "never" : "never",
                    (Self.role(standing.group) ?? "") + (standing.committed ? "" : " (nothing committed yet: holds every segment)"),
                ])
            }
            let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                let cells = zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }
                output += cells.joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
            }
            for standing in standings {
                if let problem = standing.problem {
                    output += "\(standing.group)/\(standing.topic): \(problem) (retention takes it as nothing committed)\n"
                }
            }
            if standings.isEmpty { output += "no consumer group has committed in \(folder) yet\n" }
        }
        FileHandle.standardOutput.write(Data(output.utf8))
    }

    /// What Playhead uses a group for, for the groups it makes.
    static func role(_ group: String) -> String? {
        switch group {
        case "lake": "the lake writer (serve, store): never remove"
        case "lake.rollups": "the lake writer's hold on the open hours: never remove"
        case "metrics": "the metrics consumer (serve, observe)"
        default: nil
        }
    }

    static func jsonLine(_ standing: GroupStanding) -> String {
        var object: [String: Any] = [
            "group": standing.group, "topic": standing.topic,
            "held_bytes": standing.heldBytes, "held_segments": standing.heldSegments,
        ]
        object["offset"] = standing.offset ?? NSNull()
        object["end"] = standing.end ?? NSNull()
        object["behind"] = standing.behind ?? NSNull()
        object["last_commit"] = standing.lastCommit.map { ISO8601DateFormatter.withFractionalSeconds.string(from: $0) } ?? NSNull()
        object["role"] = role(standing.group) ?? NSNull()
        object["problem"] = standing.problem ?? NSNull()
        object["committed"] = standing.committed
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func bytes(_ count: Int64) -> String {
        switch count {
        case ..<1024: "\(count) B"
        case ..<(1 << 20): String(format: "%.1f KiB", Double(count) / 1024)
        case ..<(1 << 30): String(format: "%.1f MiB", Double(count) / 1_048_576)
        default: String(format: "%.1f GiB", Double(count) / 1_073_741_824)
        }
    }
}
