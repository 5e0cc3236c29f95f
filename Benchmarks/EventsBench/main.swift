// events-bench: decode throughput of PlayheadEvents' decoder against Foundation's JSONDecoder, in one run.
//
//   events-bench [--batches N] [--batch-size 500] [--runs 3] [--markdown]
import Foundation
import PlayheadEvents

struct Options {
    var batches = 2000
    var batchSize = 500
    var runs = 3
    var markdown = false

    init() {
        var args = CommandLine.arguments.dropFirst().makeIterator()
        while let arg = args.next() {
            switch arg {
            case "--batches": batches = Int(args.next() ?? "") ?? batches
            case "--batch-size": batchSize = Int(args.next() ?? "") ?? batchSize
            case "--runs": runs = Int(args.next() ?? "") ?? runs
            case "--markdown": markdown = true
            default:
                FileHandle.standardError.write("unknown option \(arg)\n".data(using: .utf8)!)
                exit(2)
            }
        }
    }
}

/// What a real sink does at least: look at every record.
struct CountingSink: EventSink {
    var bytes = 0
    var keys = 0
    var rejected = 0
    mutating func accepted(index: Int, key: UnsafeRawBufferPointer, dimensions: EventDimensions, record: UnsafeRawBufferPointer) {
        bytes &+= record.count
        keys &+= key.count
    }
    mutating func rejected(_ error: EventValidationError, record: UnsafeRawBufferPointer) { rejected += 1 }
}

/// The Codable baseline: the schema's fields (unknown fields are dropped, timestamps left as strings).
struct CodableEvent: Codable {
    var event_id: String
    var event_type: String
    var timestamp: String
    var user_id: String
    var device_id: String
    var session_id: String?
    var ip_address: String
    var content_id: String
    var content_type: String
    var title: String
    var genre: [String]
    var duration_seconds: Int
    var language: String
    var current_timestamp: Double
    var event_source: String
    var schema_version: String?
}

func now(_ clock: clockid_t = CLOCK_MONOTONIC) -> Double {
    var ts = timespec()
    clock_gettime(clock, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let options = Options()
// Distinct bodies (a bounded set, reused round-robin) so the benchmark measures decoding, not generation.
let distinct = min(options.batches, 200)
var sessions = SyntheticSessions(seed: 1, concurrentSessions: 1000, startTime: 1_714_564_800_000_000)
var arrays: [[UInt8]] = []
var ndjsons: [[UInt8]] = []
for _ in 0..<distinct {
    var array: [UInt8] = [UInt8(ascii: "[")]
    var nd: [UInt8] = []
    for k in 0..<options.batchSize {
        if k > 0 { array.append(UInt8(ascii: ",")) }
        let start = array.count
        sessions.appendNextEvent(to: &array)
        nd.append(contentsOf: array[start...])
        nd.append(UInt8(ascii: "\n"))
    }
    array.append(UInt8(ascii: "]"))
    arrays.append(array)
    ndjsons.append(nd)
}
let bytesPerBatch = Double(arrays.reduce(0) { $0 + $1.count }) / Double(arrays.count)
let totalEvents = Double(options.batches * options.batchSize)

var configuration = EventDecoderConfiguration()
configuration.maxEventsPerRequest = max(1000, options.batchSize)
let decoder = EventDecoder(configuration: configuration)

struct Result {
    var name: String
    var seconds: Double
    /// CPU time of this thread: robust when other processes share the cores.
    var cpuSeconds: Double
    var eventsPerSecond: Double { totalEvents / seconds }
    var eventsPerCPUSecond: Double { totalEvents / cpuSeconds }
    var megabytesPerSecond: Double { Double(options.batches) * bytesPerBatch / seconds / 1e6 }
}

func best(_ name: String, runs: Int, _ body: () -> Void) -> Result {
    var bestTime = Double.infinity
    var bestCPU = Double.infinity
    for _ in 0..<runs {
        let t0 = now()
        let c0 = now(CLOCK_THREAD_CPUTIME_ID)
        body()
        bestCPU = min(bestCPU, now(CLOCK_THREAD_CPUTIME_ID) - c0)
        bestTime = min(bestTime, now() - t0)
    }
    return Result(name: name, seconds: bestTime, cpuSeconds: bestCPU)
}

var sink = CountingSink()
let playheadArray = best("PlayheadEvents, JSON array", runs: options.runs) {
    for b in 0..<options.batches {
        let outcome = arrays[b % distinct].withUnsafeBytes { decoder.decode($0, format: .json, receivedAt: 1, into: &sink) }
        precondition(outcome.accepted == options.batchSize, "rejected: \(outcome.errors.prefix(2))")
    }
}
let playheadNDJSON = best("PlayheadEvents, NDJSON", runs: options.runs) {
    for b in 0..<options.batches {
        let outcome = ndjsons[b % distinct].withUnsafeBytes { decoder.decode($0, format: .ndjson, receivedAt: 1, into: &sink) }
        precondition(outcome.accepted == options.batchSize)
    }
}
// Foundation is far slower: measure it on a tenth of the batches (at least 20), scaled.
let foundationBatches = max(20, options.batches / 10)
let jsonDecoder = JSONDecoder()
var foundationCount = 0
var foundation = best("Foundation JSONDecoder (Codable), JSON array", runs: options.runs) {
    for b in 0..<foundationBatches {
        let events = try! jsonDecoder.decode([CodableEvent].self, from: Data(arrays[b % distinct]))
        foundationCount &+= events.count
    }
}
foundation.seconds *= Double(options.batches) / Double(foundationBatches)
foundation.cpuSeconds *= Double(options.batches) / Double(foundationBatches)

let results = [playheadArray, playheadNDJSON, foundation]
let cores = ProcessInfo.processInfo.activeProcessorCount
if options.markdown {
    print("Decoding \(options.batches) batches of \(options.batchSize) synthetic events (\(Int(bytesPerBatch / Double(options.batchSize))) bytes per event), one thread, best of \(options.runs) runs, \(cores) cores, `swift build -c release`.")
    print("")
    print("| decoder | events/s (wall) | MB/s (wall) | events per CPU-second | vs JSONDecoder |")
    print("|---|---:|---:|---:|---:|")
    for r in results {
        print("| \(r.name) | \(Int(r.eventsPerSecond).formatted()) | \(String(format: "%.0f", r.megabytesPerSecond)) | \(Int(r.eventsPerCPUSecond).formatted()) | \(String(format: "%.1f×", r.eventsPerCPUSecond / foundation.eventsPerCPUSecond)) |")
    }
    let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first ?? "?"
    print("")
    print("Load average when measured: \(load) (the cores are shared; the CPU-second column is the steadier figure).")
} else {
    for r in results {
        print(String(format: "%-48@ %12.0f events/s %8.1f MB/s %12.0f events/CPU-s", r.name as NSString, r.eventsPerSecond, r.megabytesPerSecond, r.eventsPerCPUSecond))
    }
}
if sink.rejected != 0 || foundationCount == 0 { print("unexpected: \(sink.rejected) rejected") }
