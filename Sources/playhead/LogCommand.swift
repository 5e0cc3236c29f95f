import ArgumentParser
import Foundation
import Logging
import PlayheadEvents
import PlayheadLog

/// `playhead log …`: operator tools for the log.
struct LogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Inspect the log.",
        subcommands: [LogDumpCommand.self]
    )
}

/// `playhead log dump`: the log's records as NDJSON (what kcat is for Kafka).
struct LogDumpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print the log's records as NDJSON, one JSON object per line, on standard output.",
        discussion: """
            Safe while a server writes to the same log: it reads what is durable and commits nothing. \
            Accepted events print as the event's fields plus received_at and the log position \
            (_partition, _offset); rejected ones as received_at, index, reason, field, message, event_id \
            and the raw bytes that were sent. Without --follow it stops at the end of the log (on Kafka, \
            once every partition has reported its end); a log that shows neither records nor its end for \
            15 s (a broker that cannot be reached) is an error, exit status 1. A record that cannot be \
            read (a damaged segment) ends the dump with an error, after the records before it.
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

    @Flag(name: .long, help: "Keep waiting for new records instead of stopping at the end of the log.")
    var follow = false

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func validate() throws {
        guard topic == "events" || topic == "rejected" else {
            throw ValidationError("--topic must be events or rejected, not '\(topic)'")
        }
        if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
        if let offset, offset < 0 { throw ValidationError("--offset must not be negative") }
        if let partition {
            guard offset != nil else { throw ValidationError("--partition needs --offset: without it every partition is printed") }
            guard partition >= 0 else { throw ValidationError("--partition must not be negative") }
        }
    }

    func run() async throws {
        logging.bootstrap()
        let log = try OpenedLog.open(storage.logLocation, readOnly: true, mustExist: !follow, logger: Logger(label: "playhead.log"))
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
        do {
            loop: while limit.map({ printed < $0 }) ?? true {
                let poll = try await consumer.poll(maxRecords: 10_000, timeout: .milliseconds(follow ? 1000 : 300))
                if !poll.batches.isEmpty { lastProgress = .now }
                for batch in poll.batches {
                    if let start, batch.partition != start.partition { continue }
                    var stop = false
                    try batch.forEachRecord { offset, value in
                        guard !stop, offset >= start?.offset ?? 0 else { return }
                        line.removeAll(keepingCapacity: true)
                        if rejected {
                            try RejectedRecordView(value).appendJSON(to: &line)
                        } else {
                            try EventRecordView(value).appendJSON(to: &line)
                        }
                        // Add the log position as the last fields of the object.
                        if line.last == UInt8(ascii: "}") {
                            line.removeLast()
                            line.append(contentsOf: Array(#","_partition":\#(batch.partition),"_offset":\#(offset)}"#.utf8))
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
                    FileHandle.standardError.write(Data(
                        "Error: \(log.backend.displayName): no records and no end of the log in \(patience) (is the broker reachable?)\n".utf8
                    ))
                    throw ExitCode.failure
                }
            }
        } catch {
            // What was read before the error is printed: with a damaged record, the records before it.
            FileHandle.standardOutput.write(Data(output))
            await consumer.close()
            throw error
        }
        FileHandle.standardOutput.write(Data(output))
        await consumer.close()
    }
}
