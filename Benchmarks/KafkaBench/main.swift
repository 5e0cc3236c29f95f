// kafka-bench: produces N records of S bytes through PlayheadKafka.KafkaLog (acks=all, idempotence,
// linger 5 ms, zstd by default) in batches of B records, keeping W batches in flight, and prints
// records/s counted from the first append to the last acknowledgement.
//
//   kafka-bench --bootstrap 127.0.0.1:9092 [--records 200000] [--batch 100] [--size 300]
//               [--in-flight 64] [--compression zstd] [--partitions 6] [--prefix bench.]
import Foundation
import Logging
import PlayheadKafka
import PlayheadLog
import RdKafka
import Synchronization

struct Options {
    var bootstrap = "127.0.0.1:9092"
    var records = 200_000
    var batch = 100
    var size = 300
    var inFlight = 64
    var compression = "zstd"
    var partitions = 6
    var prefix = "bench."
    var keys = 10_000

    init(_ arguments: [String]) {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            let value = iterator.next() ?? ""
            switch argument {
            case "--bootstrap": bootstrap = value
            case "--records": records = Int(value) ?? records
            case "--batch": batch = max(1, Int(value) ?? batch)
            case "--size": size = Int(value) ?? size
            case "--in-flight": inFlight = max(1, Int(value) ?? inFlight)
            case "--compression": compression = value
            case "--partitions": partitions = Int(value) ?? partitions
            case "--prefix": prefix = value
            case "--keys": keys = max(1, Int(value) ?? keys)
            default:
                FileHandle.standardError.write(Data("unknown option \(argument)\n".utf8))
                exit(2)
            }
        }
    }
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
var logger = Logger(label: "kafka-bench")
logger.logLevel = .warning

/// A 300-byte-ish JSON-like payload with varying content (so compression is realistic, not trivial).
func payload(_ index: Int, size: Int) -> [UInt8] {
    var text = "{\"event_id\":\"\(UUID().uuidString)\",\"session\":\"s-\(index % options.keys)\",\"n\":\(index),\"pad\":\""
    while text.utf8.count < size - 2 { text += String(UInt32.random(in: 0...UInt32.max), radix: 36) }
    text = String(text.utf8.prefix(size - 2))!
    text += "\"}"
    return Array(text.utf8)
}

let log = try KafkaLog(
    url: "kafka://\(options.bootstrap)/?prefix=\(options.prefix)&partitions=\(options.partitions)&compression=\(options.compression)",
    logger: logger
)
try await log.waitUntilReady(timeout: .seconds(30))
let producer = try log.producer(for: .events)

// Build the batches up front: the benchmark measures the log, not the payload generation.
var batches: [LogRecordBatch] = []
var index = 0
while index < options.records {
    let count = min(options.batch, options.records - index)
    var batch = LogRecordBatch(reservingCapacity: count * (options.size + 4))
    for offset in 0..<count {
        batch.appendRecord(key: Array("s-\((index + offset) % options.keys)".utf8), value: payload(index + offset, size: options.size))
    }
    batches.append(batch)
    index += count
}

// Warm up: connections, metadata, producer id.
_ = try await producer.append(batches[0])

let failures = Atomic<Int>(0)
let started = ContinuousClock.now
let allBatches = batches
try await withThrowingTaskGroup(of: Void.self) { group in
    let batches = allBatches
    var next = 0
    func launch() {
        let batch = batches[next]
        next += 1
        group.addTask {
            do {
                _ = try await producer.append(batch)
            } catch {
                failures.add(1, ordering: .relaxed)
            }
        }
    }
    while next < batches.count && next < options.inFlight { launch() }
    while try await group.next() != nil {
        if next < batches.count { launch() }
    }
}
let elapsed = started.duration(to: .now)
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
let rate = Double(options.records) / seconds
print(
    "{\"client\":\"playhead-rdkafka\",\"librdkafka\":\"\(RdKafka.versionString)\",\"records\":\(options.records),"
        + "\"batch\":\(options.batch),\"size\":\(options.size),\"compression\":\"\(options.compression)\","
        + "\"seconds\":\(String(format: "%.3f", seconds)),\"records_per_s\":\(Int(rate)),"
        + "\"mb_per_s\":\(String(format: "%.1f", rate * Double(options.size) / 1e6)),\"failed_batches\":\(failures.load(ordering: .relaxed))}"
)
await log.shutdown()
