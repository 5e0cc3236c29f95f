import Synchronization

/// Waiting for work that may never end (a consumer's close inside a blocking C call, a broker
/// that does not answer) no longer than a limit.
public enum BoundedWait {
    /// Runs `work` in a task of its own and waits for it at most `timeout`: true if it finished,
    /// false if it was left running. Not a task group, which would wait for the work however long
    /// it takes.
    public static func finish(within timeout: Duration, _ work: @escaping @Sendable () async -> Void) async -> Bool {
        final class Waiting: Sendable {
            let continuation = Mutex<CheckedContinuation<Bool, Never>?>(nil)
            func resume(_ finished: Bool) { continuation.withLock { $0.take() }?.resume(returning: finished) }
        }
        let waiting = Waiting()
        return await withCheckedContinuation { continuation in
            waiting.continuation.withLock { $0 = continuation }
            let timer = Task {
                try? await Task.sleep(for: timeout)
                waiting.resume(false)
            }
            Task {
                await work()
                waiting.resume(true)
                timer.cancel()
            }
        }
    }
}
