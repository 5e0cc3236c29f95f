// Benchmarks the embedded log's group commit against a plain write+fdatasync loop.
//
// Usage: log-bench [--records N] [--large-batch-records L] [--appenders K] [--record-bytes B] [--baseline-records M] [--dir PATH] [--markdown]
//
// For batches of 1 and of 500 records (~300 bytes each): K concurrent appenders append N records
// through EmbeddedLog (each waits for its batch to be durable before the next), then a single loop
// writes the same batches with one write(2) + fdatasync(2) each (no group commit). The log runs
// twice: with its default zero-filled preallocation, and with it off (the file grows at every
// commit), to show what preallocation saves in CPU per record and in fsyncs per second.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import PlayheadLog

struct Options: Sendable {
    var records = 100_000
    /// Records for the runs with batches of 500 (more, so that they last long enough to measure).
    var largeBatchRecords = 1_000_000
    var appenders = 64
    var recordBytes = 300
    var baselineRecords = 3_000
    var directory = NSTemporaryDirectory() + "/log-bench-\(getpid())"
    var markdown = false

    func records(_ batchSize: Int) -> Int { batchSize >= 100 ? largeBatchRecords : records }

    static func parse() -> Options {
        var options = Options()
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--records": options.records = Int(arguments.next()!)!
            case "--large-batch-records": options.largeBatchRecords = Int(arguments.next()!)!
            case "--appenders": options.appenders = Int(arguments.next()!)!
            case "--record-bytes": options.recordBytes = Int(arguments.next()!)!
            case "--baseline-records": options.baselineRecords = Int(arguments.next()!)!
            case "--dir": options.directory = arguments.next()!
            case "--markdown": options.markdown = true
            default:
                FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
                exit(2)
            }
        }
        return options
    }
}

struct Row {
    var name: String
    var batch: Int
    var appenders: Int
    var records: Int
    var seconds: Double
    var fsyncs: Int
    var bytes: Int
    /// CPU seconds (user + system) of this process during the run.
    var cpuSeconds: Double
    var cpuMicrosPerRecord: Double { cpuSeconds / Double(records) * 1e6 }
    var fsyncsPerSecond: Double { Double(fsyncs) / seconds }
    var recordsPerSecond: Double { Double(records) / seconds }
    var megabytesPerSecond: Double { Double(bytes) / seconds / 1e6 }
    var recordsPerFsync: Double { Double(records) / Double(max(fsyncs, 1)) }
}

func makeBatch(_ count: Int, recordBytes: Int) -> LogRecordBatch {
    var batch = LogRecordBatch(reservingCapacity: count * (recordBytes + 4))
    let value = [UInt8](repeating: 0x5A, count: recordBytes)
    for _ in 0..<count { batch.appendRecord(key: [UInt8](), value: value) }
    return batch
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    func value(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return value(usage.ru_utime) + value(usage.ru_stime)
}

func runLog(_ options: Options, batchSize: Int, preallocate: Bool, label: String) async throws -> Row {
    let path = options.directory + "/\(label)"
    try? FileManager.default.removeItem(atPath: path)
    var configuration = EmbeddedLogConfiguration(directory: path)
    configuration.minimumFreeBytes = 0
    if !preallocate { configuration.preallocateBytes = 0 }
    let log = try EmbeddedLog.open(configuration, logger: Logger(label: "log-bench"))
    let producer = try log.producer(for: .events)
    let batches = max(1, options.records(batchSize) / batchSize)
    let batch = makeBatch(batchSize, recordBytes: options.recordBytes)
    let next = Counter()
    let cpuStart = cpuSeconds()
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<options.appenders {
            group.addTask {
                while next.take() < batches {
                    _ = try await producer.append(batch)
                }
            }
        }
        try await group.waitForAll()
    }
    let elapsed = start.duration(to: .now)
    let cpu = cpuSeconds() - cpuStart
    let stats = log.statistics(for: .events)!
    log.close()
    try? FileManager.default.removeItem(atPath: path)
    return Row(
        name: preallocate ? "EmbeddedLog (group commit, zero-filled ahead)" : "EmbeddedLog (group commit, preallocation off)",
        batch: batchSize, appenders: options.appenders, records: stats.records,
        seconds: seconds(elapsed), fsyncs: stats.fsyncs, bytes: stats.records * (options.recordBytes + 8), cpuSeconds: cpu
    )
}

func runBaseline(_ options: Options, batchSize: Int, label: String) throws -> Row {
    try FileManager.default.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
    let path = options.directory + "/\(label).baseline"
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0, "cannot open \(path)")
    let framed = [UInt8](repeating: 0x5A, count: batchSize * (options.recordBytes + 8))
    let total = batchSize == 1 ? min(options.records, options.baselineRecords) : options.records(batchSize)
    let batches = max(1, total / batchSize)
    let cpuStart = cpuSeconds()
    let start = ContinuousClock.now
    for _ in 0..<batches {
        framed.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                precondition(n > 0, "write failed")
                done += n
            }
        }
        precondition(fdatasync(fd) == 0, "fdatasync failed")
    }
    let elapsed = start.duration(to: .now)
    let cpu = cpuSeconds() - cpuStart
    close(fd)
    unlink(path)
    return Row(
        name: "write+fdatasync per batch (baseline)", batch: batchSize, appenders: 1, records: batches * batchSize,
        seconds: seconds(elapsed), fsyncs: batches, bytes: batches * framed.count, cpuSeconds: cpu
    )
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func take() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value - 1
    }
}

func format(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }

@main
struct LogBench {
    static func main() async throws {
        let options = Options.parse()
        var rows: [Row] = []
        for batchSize in [1, 500] {
            // Untimed: the first run in the process pays for growing its buffers and faulting in
            // their pages (the first of two identical runs of batches of 500 measured 2-3x slower).
            _ = try await runLog(options, batchSize: batchSize, preallocate: true, label: "b\(batchSize)-warm-up")
            rows.append(try await runLog(options, batchSize: batchSize, preallocate: true, label: "b\(batchSize)"))
            rows.append(try await runLog(options, batchSize: batchSize, preallocate: false, label: "b\(batchSize)-grow"))
            rows.append(try runBaseline(options, batchSize: batchSize, label: "b\(batchSize)"))
        }
        try? FileManager.default.removeItem(atPath: options.directory)
        if options.markdown {
            print("| Writer | Records/batch | Appenders | Records | Seconds | Records/s | MB/s | Records/fsync | fsyncs/s | CPU µs/record |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for row in rows {
                print("| \(row.name) | \(row.batch) | \(row.appenders) | \(row.records) | \(format(row.seconds, 2)) | \(format(row.recordsPerSecond, 0)) | \(format(row.megabytesPerSecond)) | \(format(row.recordsPerFsync)) | \(format(row.fsyncsPerSecond, 0)) | \(format(row.cpuMicrosPerRecord, 2)) |")
            }
        } else {
            for row in rows {
                print("\(row.name): batch=\(row.batch) appenders=\(row.appenders) records=\(row.records) seconds=\(format(row.seconds, 2)) records/s=\(format(row.recordsPerSecond, 0)) MB/s=\(format(row.megabytesPerSecond)) records/fsync=\(format(row.recordsPerFsync)) fsyncs/s=\(format(row.fsyncsPerSecond, 0)) cpu-us/record=\(format(row.cpuMicrosPerRecord, 2))")
            }
        }
    }
}
