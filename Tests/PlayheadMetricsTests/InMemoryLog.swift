import PlayheadLog
import Synchronization

/// A one-partition, in-memory log backend for unit tests: topics of records, consumer groups with
/// committed offsets. Not the embedded log (being written elsewhere); enough to drive consumers.
final class InMemoryLog: LogBackend, Sendable {
    struct State {
        var topics: [String: [[UInt8]]] = [:]
        var committed: [String: Int64] = [:]  // "<topic>/<group>" → next offset
        var commits = 0
    }
    let state = Mutex(State())
    /// Whether a consumer's first poll reports its partition revoked as well as assigned (a Kafka
    /// poll in which a rebalance took the partition away and gave it back).
    let firstPollRevokesToo: Bool

    init(firstPollRevokesToo: Bool = false) {
        self.firstPollRevokesToo = firstPollRevokesToo
    }

    var displayName: String { "memory:" }

    func producer(for topic: LogTopic) throws(LogError) -> any LogProducer { Producer(log: self, topic: topic.name) }

    func consumer(for topic: LogTopic, group: String?) throws(LogError) -> any LogConsumer {
        Consumer(log: self, topic: topic.name, group: group)
    }

    /// Appends records directly (what a producer would do).
    func append(_ values: [[UInt8]], to topic: LogTopic = .events) {
        state.withLock { $0.topics[topic.name, default: []].append(contentsOf: values) }
    }

    func committedOffset(topic: LogTopic = .events, group: String) -> Int64? {
        state.withLock { $0.committed["\(topic.name)/\(group)"] }
    }

    var commitCount: Int { state.withLock { $0.commits } }

    struct Producer: LogProducer {
        let log: InMemoryLog
        let topic: String
        var unavailableReason: String? { nil }

        func append(_ batch: LogRecordBatch, completion: @escaping @Sendable (Result<LogAppendResult, LogError>) -> Void) {
            var values: [[UInt8]] = []
            batch.forEachRecord { _, _, value in values.append(Array(value)) }
            let first = log.state.withLock { state -> Int64 in
                let first = Int64(state.topics[topic]?.count ?? 0)
                state.topics[topic, default: []].append(contentsOf: values)
                return first
            }
            completion(.success(LogAppendResult(partition: 0, firstOffset: first, count: values.count)))
        }
    }

    final class Consumer: LogConsumer, Sendable {
        let log: InMemoryLog
        let topic: String
        let group: String?
        private struct Position { var next: Int64; var assigned: Bool }
        private let position: Mutex<Position>

        init(log: InMemoryLog, topic: String, group: String?) {
            self.log = log
            self.topic = topic
            self.group = group
            let start = group.flatMap { log.committedOffset(topic: LogTopic(topic), group: $0) } ?? 0
            position = Mutex(Position(next: start, assigned: false))
        }

        func poll(maxRecords: Int, timeout: Duration) async throws(LogError) -> LogPoll {
            let deadline = ContinuousClock.now.advanced(by: timeout)
            while true {
                var result = LogPoll()
                let available = log.state.withLock { $0.topics[topic] ?? [] }
                position.withLock { position in
                    if !position.assigned {
                        position.assigned = true
                        result.assigned = [0: position.next]
                        if log.firstPollRevokesToo { result.revoked = [0] }
                    }
                    let end = min(available.count, Int(position.next) + maxRecords)
                    if end > Int(position.next) {
                        var framed: [UInt8] = []
                        for value in available[Int(position.next)..<end] {
                            let length = UInt32(value.count)
                            framed.append(contentsOf: [UInt8(truncatingIfNeeded: length), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 24)])
                            framed.append(contentsOf: value)
                        }
                        result.batches = [ConsumedBatch(partition: 0, firstOffset: position.next, count: end - Int(position.next), values: framed)]
                        position.next = Int64(end)
                    }
                }
                if !result.isEmpty || ContinuousClock.now >= deadline { return result }
                if Task.isCancelled { throw LogError(code: .closed, message: "cancelled") }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }

        func seek(partition: Int32, to offset: Int64) async throws(LogError) {
            position.withLock { $0.next = offset }
        }

        func commit(_ offsets: [Int32: Int64]) async throws(LogError) {
            guard let group, let offset = offsets[0] else { return }
            log.state.withLock {
                $0.committed["\(topic)/\(group)"] = offset
                $0.commits += 1
            }
        }

        func committed() async throws(LogError) -> [Int32: Int64] {
            guard let group, let offset = log.committedOffset(topic: LogTopic(topic), group: group) else { return [:] }
            return [0: offset]
        }

        func lag() async -> Int64? {
            let total = Int64(log.state.withLock { $0.topics[topic]?.count ?? 0 })
            let committed = group.flatMap { log.committedOffset(topic: LogTopic(topic), group: $0) } ?? 0
            return total - committed
        }

        func endOffset(partition: Int32) async -> Int64? {
            Int64(log.state.withLock { $0.topics[topic]?.count ?? 0 })
        }

        func caughtUp() async -> Bool {
            let end = log.state.withLock { $0.topics[topic]?.count ?? 0 }
            return position.withLock { Int($0.next) >= end }
        }

        func close() async {}
    }
}
