import Foundation
import Synchronization

/// A dedicated OS thread that runs jobs one after another, for librdkafka's blocking calls
/// (`rd_kafka_poll`, `rd_kafka_consumer_poll`, `rd_kafka_flush`, commits, admin requests), so that
/// none of them ever runs on the Swift cooperative pool or an event loop.
///
/// When `idle` is given, the thread calls it whenever it has no job (the producer polls for
/// delivery reports there); `idle` must return within about 100 ms so that jobs stay responsive.
final class WorkerThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var stopping = false
    private var finished = false
    private let idle: (@Sendable () -> Void)?
    let name: String

    init(name: String, idle: (@Sendable () -> Void)? = nil) {
        self.name = name
        self.idle = idle
        let thread = Thread { [self] in self.loop() }
        thread.name = name
        thread.start()
    }

    /// Queues `job`; returns false (and drops it) when the thread is stopping.
    @discardableResult
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if stopping { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Runs `body` on the thread and returns its result to the awaiting task.
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T? {
        await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
            let accepted = submit { continuation.resume(returning: body()) }
            if !accepted { continuation.resume(returning: nil) }
        }
    }

    /// Runs jobs queued meanwhile; a long job (a consumer poll) calls this between its slices.
    func runQueuedJobs() {
        while true {
            condition.lock()
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }

    /// Whether jobs are waiting.
    var hasQueuedJobs: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !jobs.isEmpty
    }

    /// Lets queued jobs finish, then ends the thread. Returns once the thread has ended.
    func stop() async {
        requestStop()
        while !isFinished {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    private func requestStop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private var isFinished: Bool {
        condition.lock()
        defer { condition.unlock() }
        return finished
    }

    /// Queues `job` as the thread's last one and lets the thread end after it, without waiting:
    /// for a client's `deinit`, which must not block (it may run on an event loop or Swift's pool).
    /// Does nothing when the thread is already stopping (`close()` ran).
    func finish(with job: @escaping @Sendable () -> Void) {
        condition.lock()
        defer { condition.unlock() }
        if stopping { return }
        jobs.append(job)
        stopping = true
        condition.broadcast()
    }

    private func loop() {
        while true {
            condition.lock()
            if jobs.isEmpty {
                if stopping {
                    finished = true
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                if let idle {
                    condition.unlock()
                    idle()
                    continue
                }
                condition.wait()
                condition.unlock()
                continue
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}

/// A C handle passed between threads (librdkafka handles are thread-safe where we share them).
struct SendablePointer: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}

/// A Boolean flag shared between threads.
final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func load(ordering: AtomicLoadOrdering) -> Bool { value.load(ordering: .sequentiallyConsistent) }
    func store(_ newValue: Bool, ordering: AtomicStoreOrdering) { value.store(newValue, ordering: .sequentiallyConsistent) }
    func exchange(_ newValue: Bool, ordering: AtomicUpdateOrdering) -> Bool {
        value.exchange(newValue, ordering: .sequentiallyConsistent)
    }
}
