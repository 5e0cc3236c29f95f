import Logging
import NIOCore
import Synchronization

/// A request to the store that has moved no byte for at least
/// ``S3Configuration/unansweredAfter``: the store took none of its body and sent none of its answer.
/// A store that accepts connections and answers nothing (a gateway or a VM frozen, an overloaded
/// server) shows this way long before the request's deadline and its retries run out.
public struct S3UnansweredRequest: Sendable, CustomStringConvertible {
    /// The S3 operation (`PutObject`, `UploadPart`, `ListObjectsV2`, …).
    public var operation: String
    public var bucket: String?
    /// The object's key; for a listing (`ListObjectsV2`), the prefix it lists, so that a listing
    /// stuck on a silent store says which one it is.
    public var key: String?
    /// This attempt's number, from 1, of ``S3RetryPolicy/maximumAttempts``.
    public var attempt: Int
    public var maximumAttempts: Int
    /// How long since the request last moved: since it started, since the store took a piece of its
    /// body, or since a piece of its answer came.
    public var silentFor: Duration
    /// The attempt's deadline (``S3Configuration/requestTimeout``).
    public var deadline: Duration
    /// What the request waits for.
    public var waitingFor: Waiting

    public enum Waiting: Sendable {
        /// The store to take more of the request's body.
        case body
        /// The head of the answer.
        case answer
        /// More of the answer's body.
        case restOfAnswer
    }

    /// `PutObject lake/events/….parquet has had nothing from the store for 17 s (waiting for its answer; attempt 1 of 5, each given 30 s)`.
    public var description: String {
        let target = [bucket, key].compactMap { $0 }.joined(separator: "/")
        let what =
            switch waitingFor {
            case .body: "waiting for the store to take more of its body"
            case .answer: "waiting for its answer"
            case .restOfAnswer: "waiting for the rest of its answer"
            }
        return "\(operation)\(target.isEmpty ? "" : " \(target)") has had nothing from the store for \(Self.seconds(silentFor)) s (\(what); attempt \(attempt) of \(maximumAttempts), each given \(Self.seconds(deadline)) s)"
    }

    static func seconds(_ duration: Duration) -> Int64 {
        duration.components.seconds + (duration.components.attoseconds >= 500_000_000_000_000_000 ? 1 : 0)
    }
}

/// The attempts of an ``S3Client`` in flight, with when each last moved.
final class S3InFlight: Sendable {
    struct Entry {
        var operation: String
        var bucket: String?
        var key: String?
        var attempt: Int
        var maximumAttempts: Int
        var deadline: Duration
        var lastMoved: ContinuousClock.Instant
        var waitingFor: S3UnansweredRequest.Waiting
        /// The warning that it is unanswered was logged.
        var warned = false
    }

    private let state = Mutex<(next: UInt64, entries: [UInt64: Entry])>((0, [:]))
    /// Records how many requests of the process are unanswered now (`playhead_s3_requests_unanswered`).
    private let record: @Sendable (Int) -> Void
    /// The requests said to be unanswered and not ended, over every client of the process; changed
    /// and recorded under its lock, so that the gauge's last value is the count.
    private static let unansweredInProcess = Mutex<Int>(0)

    init(record: @escaping @Sendable (Int) -> Void) {
        self.record = record
    }

    private func countUnanswered(_ change: Int) {
        Self.unansweredInProcess.withLock { count in
            count += change
            record(count)
        }
    }

    func begin(_ entry: Entry) -> UInt64 {
        state.withLock { state in
            state.next += 1
            state.entries[state.next] = entry
            return state.next
        }
    }

    /// The request moved (bytes went out or came in); it now waits for `waitingFor`. One that was
    /// said to be unanswered is not any more (logged, and no longer counted).
    func moved(_ id: UInt64, waitingFor: S3UnansweredRequest.Waiting, logger: Logger) {
        let now = ContinuousClock.now
        let silence: (Entry, Duration)? = state.withLock { state in
            guard let entry = state.entries[id] else { return nil }
            state.entries[id]?.lastMoved = now
            state.entries[id]?.waitingFor = waitingFor
            guard entry.warned else { return nil }
            state.entries[id]?.warned = false
            return (entry, entry.lastMoved.duration(to: now))
        }
        guard let (entry, silent) = silence else { return }
        countUnanswered(-1)
        logger.info(
            "s3 request moving again after \(S3UnansweredRequest.seconds(silent)) s of silence",
            metadata: ["operation": "\(entry.operation)", "bucket": "\(entry.bucket ?? "")", "key": "\(entry.key ?? "")", "attempt": "\(entry.attempt)"])
    }

    /// Forgets the request; returns its entry (whether it was said to be unanswered).
    @discardableResult
    func end(_ id: UInt64) -> Entry? {
        let entry = state.withLock { $0.entries.removeValue(forKey: id) }
        if entry?.warned == true { countUnanswered(-1) }
        return entry
    }

    /// The requests silent for at least `threshold`, silent longest first.
    func unanswered(threshold: Duration, now: ContinuousClock.Instant = .now) -> [S3UnansweredRequest] {
        state.withLock { state in
            state.entries.values.compactMap { entry in
                let silent = entry.lastMoved.duration(to: now)
                guard silent >= threshold else { return nil }
                return Self.report(entry, silentFor: silent)
            }
        }.sorted { $0.silentFor > $1.silentFor }
    }

    static func report(_ entry: Entry, silentFor: Duration) -> S3UnansweredRequest {
        S3UnansweredRequest(
            operation: entry.operation, bucket: entry.bucket, key: entry.key, attempt: entry.attempt,
            maximumAttempts: entry.maximumAttempts, silentFor: silentFor, deadline: entry.deadline, waitingFor: entry.waitingFor)
    }

    /// Until the request ends or the task is cancelled: logs a warning, and counts the request,
    /// each time it has been silent for `threshold` (again after it moved and fell silent again).
    /// Sleeps until the earliest moment that can happen.
    func watch(_ id: UInt64, threshold: Duration, logger: Logger) async {
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let (report, wait): (S3UnansweredRequest?, Duration?) = state.withLock { state in
                guard let entry = state.entries[id] else { return (nil, nil) }
                // Said already: it can fall silent again only after it moves, at least `threshold` on.
                if entry.warned { return (nil, threshold) }
                let silent = entry.lastMoved.duration(to: now)
                if silent >= threshold {
                    state.entries[id]?.warned = true
                    return (Self.report(entry, silentFor: silent), threshold)
                }
                return (nil, threshold - silent)
            }
            if let report {
                countUnanswered(1)
                logger.warning(
                    "s3 request unanswered: \(report); it goes on until its deadline",
                    metadata: ["operation": "\(report.operation)", "bucket": "\(report.bucket ?? "")", "key": "\(report.key ?? "")"])
            }
            guard let wait else { return }
            try? await Task.sleep(for: wait)
        }
    }
}

/// A body sent in pieces, each taken when AsyncHTTPClient has written the one before (it waits while
/// the connection cannot take more), so that taking a piece means the store is taking the body.
struct S3BodyPieces: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let body: ByteBuffer
    let pieceSize: Int
    /// Called as each piece is taken, and once more (`true`) when the last one was.
    let taken: @Sendable (_ done: Bool) -> Void

    struct AsyncIterator: AsyncIteratorProtocol {
        var rest: ByteBuffer
        let pieceSize: Int
        let taken: @Sendable (Bool) -> Void
        var finished = false

        mutating func next() async -> ByteBuffer? {
            guard !finished else { return nil }
            guard rest.readableBytes > 0 else {
                finished = true
                taken(true)
                return nil
            }
            taken(false)
            return rest.readSlice(length: Swift.min(pieceSize, rest.readableBytes))
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(rest: body, pieceSize: pieceSize, taken: taken)
    }
}
