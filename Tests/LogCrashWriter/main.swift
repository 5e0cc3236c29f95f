// A helper for PlayheadLogTests: appends numbered records to an embedded log and prints
// `ack <number> <offset>` for each one once its append has completed (is durable), so that a test
// can SIGKILL it mid-stream and check that every acknowledged record survived.
//
// Usage: log-crash-writer <directory> [records (0 = forever)] [records per batch] [concurrent appenders]
import Foundation
import Logging
import PlayheadLog

setvbuf(stdout, nil, _IOLBF, 0)
let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: log-crash-writer <directory> [records] [batch] [appenders]\n".utf8))
    exit(2)
}
let directory = arguments[1]
let total = arguments.count > 2 ? Int(arguments[2]) ?? 0 : 0
let batchSize = arguments.count > 3 ? Int(arguments[3]) ?? 5 : 5
let appenders = arguments.count > 4 ? Int(arguments[4]) ?? 4 : 4

var configuration = EmbeddedLogConfiguration(directory: directory)
configuration.minimumFreeBytes = 0
configuration.segmentBytes = 64 << 10
let log = try EmbeddedLog.open(configuration, logger: Logger(label: "log-crash-writer"))
let producer = try log.producer(for: LogTopic("crash"))
print("ready")

let counter = NSLock()
nonisolated(unsafe) var nextNumber = 0
func take(_ n: Int) -> Range<Int>? {
    counter.lock()
    defer { counter.unlock() }
    if total > 0 && nextNumber >= total { return nil }
    let start = nextNumber
    nextNumber += total > 0 ? min(n, total - start) : n
    return start..<nextNumber
}

await withTaskGroup(of: Void.self) { group in
    for _ in 0..<appenders {
        group.addTask {
            while let numbers = take(batchSize) {
                var batch = LogRecordBatch()
                for number in numbers {
                    batch.appendRecord(key: [UInt8](), value: Array("record-\(number)-".utf8) + [UInt8](repeating: 0x61, count: 200))
                }
                do {
                    let result = try await producer.append(batch)
                    var lines = ""
                    for (index, number) in numbers.enumerated() {
                        lines += "ack \(number) \(result.firstOffset! + Int64(index))\n"
                    }
                    print(lines, terminator: "")
                } catch {
                    FileHandle.standardError.write(Data("append failed: \(error)\n".utf8))
                    exit(1)
                }
            }
        }
    }
}
log.close()
print("done")
