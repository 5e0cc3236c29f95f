import NIOConcurrencyHelpers
import NIOCore

/// A token bucket over events per second, shared by every connection.
///
/// A request is let in while the bucket is not empty, and its events are then taken from it (the
/// bucket may go below zero); the next requests wait until it has refilled. The burst is one
/// second's worth of events.
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: NIODeadline
    }
    private let rate: Double
    private let bucket: NIOLockedValueBox<Bucket>

    init(eventsPerSecond: Double) {
        rate = eventsPerSecond
        bucket = NIOLockedValueBox(Bucket(tokens: eventsPerSecond, updated: .now()))
    }

    /// Whether a request may proceed now.
    func admits() -> Bool {
        bucket.withLockedValue { bucket in
            refill(&bucket)
            return bucket.tokens > 0
        }
    }

    /// Takes `events` tokens.
    func consume(_ events: Int) {
        bucket.withLockedValue { bucket in
            refill(&bucket)
            bucket.tokens -= Double(events)
        }
    }

    private func refill(_ bucket: inout Bucket) {
        let now = NIODeadline.now()
        let elapsed = Double((now - bucket.updated).nanoseconds) / 1e9
        bucket.tokens = min(rate, bucket.tokens + elapsed * rate)
        bucket.updated = now
    }
}

/// Bytes of requests being decoded or waiting for the log: the edge's back-pressure.
final class InFlightBytes: Sendable {
    private let limit: Int
    private let current = NIOLockedValueBox(0)
    init(limit: Int) { self.limit = limit }

    /// Reserves `bytes`; false when that would go over the limit.
    func reserve(_ bytes: Int) -> Bool {
        current.withLockedValue { current in
            guard current + bytes <= limit || current == 0 else { return false }
            current += bytes
            return true
        }
    }

    func release(_ bytes: Int) { current.withLockedValue { $0 -= bytes } }
}
