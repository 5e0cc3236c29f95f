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

    /// How an attempt ended, for ``end(_:_:)``.
    enum Ending {
        /// With an answer from the store, or an error that is one (a refused connection, a reset):
        /// the store is not silent.
        case answered
        /// At its deadline, the store silent since the attempt last moved.
        case timedOut
        /// Cancelled (the caller gave up, the process stops): says nothing of the store.
        case cancelled
    }

    /// The store silent across attempts: since `since` (its last sign of life) nothing has come,
    /// and the attempt `last` reached its deadline. Set when an attempt times out, cleared when any
    /// attempt of the client moves or ends with an answer. While set, a new attempt counts its
    /// silence from `since`, not from its own start, and the client counts as one unanswered
    /// request in the gauge (`counted`) between its attempts, so that neither the gauge nor
    /// ``unanswered(threshold:now:)`` falls back at each retry of a store that stays silent.
    /// (Until 2026-12-07 each attempt started silent afresh: the gauge and `store`'s `/readyz` went
    /// back for the first 15 s of every 30 s attempt, and `S3StoreUnanswered` never fired; an
    /// outside review.)
    struct Silence {
        var since: ContinuousClock.Instant
        var last: Entry
        var counted: Bool
    }

    private struct State {
        var next: UInt64 = 0
        var entries: [UInt64: Entry] = [:]
        var silence: Silence?
        /// The last time any attempt moved.
        var lastHeard: ContinuousClock.Instant?
    }

    private let state = Mutex<State>(State())
    /// Records how many requests of the process are unanswered now (`playhead_s3_requests_unanswered`).
    private let record: @Sendable (Int) -> Void
    /// The requests said to be unanswered and not ended, over every client of the process; changed
    /// and recorded under its lock, so that the gauge's last value is the count.
    private static let unansweredInProcess = Mutex<Int>(0)

    init(record: @escaping @Sendable (Int) -> Void) {
        self.record = record
    }

    /// A client let go while its store was silent takes its count with it (the count is the
    /// process's, over every client).
    deinit {
        if state.withLock({ $0.silence?.counted ?? false }) { countUnanswered(-1) }
    }

    private func countUnanswered(_ change: Int) {
        Self.unansweredInProcess.withLock { count in
            count += change
            record(count)
        }
    }

    /// Starts watching an attempt. A store silent since an earlier attempt timed out is silent for
    /// this one since then.
    func begin(_ entry: Entry) -> UInt64 {
        state.withLock { state in
            state.next += 1
            var entry = entry
            if let silence = state.silence { entry.lastMoved = min(entry.lastMoved, silence.since) }
            state.entries[state.next] = entry
            return state.next
        }
    }

    /// The store answered something: it is not silent any more. Returns whether the client's
    /// silence was counted (to be taken off the gauge). Under the lock.
    private static func heard(_ state: inout State, at now: ContinuousClock.Instant) -> Bool {
        state.lastHeard = now
        let counted = state.silence?.counted ?? false
        state.silence = nil
        return counted
    }

    /// The request moved (bytes went out or came in); it now waits for `waitingFor`. One that was
    /// said to be unanswered is not any more (logged, and no longer counted).
    func moved(_ id: UInt64, waitingFor: S3UnansweredRequest.Waiting, logger: Logger) {
        let now = ContinuousClock.now
        let (silence, clientCounted): ((Entry, Duration)?, Bool) = state.withLock { state in
            guard let entry = state.entries[id] else { return (nil, false) }
            let counted = Self.heard(&state, at: now)
            state.entries[id]?.lastMoved = now
            state.entries[id]?.waitingFor = waitingFor
            guard entry.warned else { return (nil, counted) }
            state.entries[id]?.warned = false
            return ((entry, entry.lastMoved.duration(to: now)), counted)
        }
        if clientCounted { countUnanswered(-1) }
        guard let (entry, silent) = silence else { return }
        countUnanswered(-1)
        logger.info(
            "s3 request moving again after \(S3UnansweredRequest.seconds(silent)) s of silence",
            metadata: ["operation": "\(entry.operation)", "bucket": "\(entry.bucket ?? "")", "key": "\(entry.key ?? "")", "attempt": .stringConvertible(entry.attempt)])
    }

    /// Forgets the attempt; returns its entry (whether it was said to be unanswered). One that
    /// timed out leaves the store silent since it last moved (or since another attempt did, if
    /// later), and the count it had in the gauge, if any, to the client until the store answers;
    /// one that ended with an answer clears that silence.
    @discardableResult
    func end(_ id: UInt64, _ ending: Ending) -> Entry? {
        let now = ContinuousClock.now
        let (entry, change): (Entry?, Int) = state.withLock { state in
            guard let entry = state.entries.removeValue(forKey: id) else { return (nil, 0) }
            var change = entry.warned ? -1 : 0
            switch ending {
            case .answered:
                if Self.heard(&state, at: now) { change -= 1 }
            case .timedOut:
                let since = max(entry.lastMoved, state.lastHeard ?? entry.lastMoved)
                if var silence = state.silence {
                    silence.since = min(silence.since, since)
                    silence.last = entry
                    if entry.warned && !silence.counted {
                        silence.counted = true
                        change += 1
                    }
                    state.silence = silence
                } else {
                    state.silence = Silence(since: since, last: entry, counted: entry.warned)
                    if entry.warned { change += 1 }
                }
            case .cancelled:
                break
            }
            return (entry, change)
        }
        if change != 0 { countUnanswered(change) }
        return entry
    }

    /// The requests silent for at least `threshold`, silent longest first.
    /// Between the attempts of a store that stays silent (a retry's wait, the writer's wait before
    /// it tries again), the last attempt that timed out, silent since the store last answered.
    func unanswered(threshold: Duration, now: ContinuousClock.Instant = .now) -> [S3UnansweredRequest] {
        state.withLock { state in
            let listed = state.entries.values.compactMap { entry -> S3UnansweredRequest? in
                let silent = entry.lastMoved.duration(to: now)
                guard silent >= threshold else { return nil }
                return Self.report(entry, silentFor: silent)
            }
            if listed.isEmpty, let silence = state.silence, silence.since.duration(to: now) >= threshold {
                return [Self.report(silence.last, silentFor: silence.since.duration(to: now))]
            }
            return listed
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
            let (report, wait, clientCounted): (S3UnansweredRequest?, Duration?, Bool) = state.withLock { state in
                guard let entry = state.entries[id] else { return (nil, nil, false) }
                // Said already: it can fall silent again only after it moves, at least `threshold` on.
                if entry.warned { return (nil, threshold, false) }
                let silent = entry.lastMoved.duration(to: now)
                if silent >= threshold {
                    state.entries[id]?.warned = true
                    // Counted as a request now: the client's count of the silence between attempts
                    // passes to it, in the same step (an end of the request between two steps
                    // could leave the silence uncounted and the gauge at 0).
                    let clientCounted = state.silence?.counted == true
                    if clientCounted { state.silence?.counted = false }
                    return (Self.report(entry, silentFor: silent), threshold, clientCounted)
                }
                return (nil, threshold - silent, false)
            }
            if let report {
                if !clientCounted { countUnanswered(1) }
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
