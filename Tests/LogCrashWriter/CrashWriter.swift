// A helper for PlayheadLogTests: appends numbered records to an embedded log and prints
// `ack <number> <offset>` for each one once its append has completed (is durable), so that a test
// can SIGKILL it mid-stream and check that every acknowledged record survived.
//
// Usage: log-crash-writer <directory> [records (0 = forever)] [records per batch] [concurrent appenders]
import Foundation
import Logging
import PlayheadLog

@main
struct CrashWriter {
    static func main() async throws {
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
        FileHandle.standardOutput.write(Data("ready\n".utf8))
        let numbers = Numbers(total: total)

        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<appenders {
                group.addTask {
                    while let range = numbers.take(batchSize) {
                        var batch = LogRecordBatch()
                        for number in range {
                            batch.appendRecord(key: [UInt8](), value: Array("record-\(number)-".utf8) + [UInt8](repeating: 0x61, count: 200))
                        }
                        do {
                            let result = try await producer.append(batch)
                            var lines = ""
                            for (index, number) in range.enumerated() {
                                lines += "ack \(number) \(result.firstOffset! + Int64(index))\n"
                            }
                            FileHandle.standardOutput.write(Data(lines.utf8))
                        } catch {
                            FileHandle.standardError.write(Data("append failed: \(error)\n".utf8))
                            exit(1)
                        }
                    }
                }
            }
        }
        log.close()
        FileHandle.standardOutput.write(Data("done\n".utf8))
    }
}

/// Hands out consecutive record numbers to the appenders.
final class Numbers: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private let total: Int
    init(total: Int) { self.total = total }

    func take(_ count: Int) -> Range<Int>? {
        lock.lock()
        defer { lock.unlock() }
        if total > 0 && next >= total { return nil }
        let start = next
        next += total > 0 ? min(count, total - start) : count
        return start..<next
    }
}
