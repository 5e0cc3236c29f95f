import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// A token bucket over events per second, shared by every connection.
///
/// A request is let in while the bucket is not empty, taking one token at once (its head); its
/// other events are taken once its body is decoded (the bucket may go below zero), and the next
/// requests wait until it has refilled. The burst is one second's worth of events.
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

    /// Nil when a request may proceed now; else the whole seconds until the bucket holds a token
    /// again (at least 1), for `Retry-After`. A request of many events can leave the bucket far
    /// below zero: 500 events at 50/s is 9 s, and every client was told 1 s (a probe, 2026-12-04).
    ///
    /// A request let in takes one token at once, the first of its events (``consume(_:)`` takes
    /// the others, less this one): until 2026-12-07 the head took none, so every head that came
    /// while the bucket held a token was let in, and 20 connections whose bodies followed carried
    /// 2,000 events in under a second past `--rate-limit 10` (an outside review).
    func admit() -> Int? {
        bucket.withLockedValue { bucket in
            refill(&bucket)
            guard bucket.tokens <= 0 else {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(min((-bucket.tokens / rate).rounded(.up), 86_400)))
        }
    }

    /// The rate as given (`2`, `0.5`, `2.7`), for messages: it was cut to an integer, so
    /// `--rate-limit 0.5` said "at most 0 events per second" (an outside review).
    var rateDescription: String {
        rate == rate.rounded() && abs(rate) < 1e15 ? String(Int64(rate)) : String(rate)
    }

    /// Takes `events` tokens (a request's events after the first, which ``admit()`` took).
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

/// Bytes of requests being decoded or waiting for the log: the edge's back-pressure. An atomic, not a
/// lock: every request reserves and releases, from every event loop, and a contended lock costs
/// futex calls and thread switches.
final class InFlightBytes: Sendable {
    let limit: Int
    private let current = Atomic<Int>(0)
    init(limit: Int) { self.limit = limit }

    /// Reserves `bytes`; false when that would go over the limit. A request is always let in when
    /// nothing else is in flight, whatever its size.
    /// `holding`: bytes the caller has reserved already; a request is let in whatever its size when
    /// nothing but those is reserved.
    func reserve(_ bytes: Int, holding: Int = 0) -> Bool {
        var now = current.load(ordering: .relaxed)
        while true {
            guard now + bytes <= limit || now <= holding else { return false }
            let (exchanged, original) = current.compareExchange(expected: now, desired: now + bytes, ordering: .relaxed)
            if exchanged { return true }
            now = original
        }
    }

    func release(_ bytes: Int) { current.subtract(bytes, ordering: .relaxed) }

    /// The bytes reserved now.
    var bytes: Int { current.load(ordering: .relaxed) }
}
