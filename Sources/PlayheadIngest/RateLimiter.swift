import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// A token bucket over events per second, shared by every connection.
///
/// A request's head is let in while the bucket is not empty. Once its body is decoded, its events
/// are taken if the bucket holds that many, or if it is full (a request larger than one second's
/// worth then takes it below zero, and the next requests wait until it has refilled); else the
/// request is refused (429) and stores nothing. The burst is one second's worth of events, or one
/// request's.
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
    func refusal() -> Int? {
        bucket.withLockedValue { bucket in
            refill(&bucket)
            guard bucket.tokens <= 0 else { return nil }
            return seconds(toRefill: -bucket.tokens)
        }
    }

    /// Takes `events` tokens when the bucket holds them or is full, and returns nil; else takes
    /// none and returns the whole seconds until it will hold them (or be full), for `Retry-After`.
    ///
    /// Until 2026-12-07 a request's events were taken whatever the bucket held, so every head let
    /// in while it held a token had its body stored: 20 connections that sent their heads first
    /// carried 2,000 events past `--rate-limit 10` in under a second, and with 500-event bodies,
    /// after a first fix that took a token per head, 5,500 (outside reviews).
    func take(_ events: Int) -> Int? {
        bucket.withLockedValue { bucket in
            refill(&bucket)
            let needed = Double(events)
            if bucket.tokens >= needed || bucket.tokens >= rate {
                bucket.tokens -= needed
                return nil
            }
            return seconds(toRefill: min(needed, rate) - bucket.tokens)
        }
    }

    /// The rate as given (`2`, `0.5`, `2.7`), for messages: it was cut to an integer, so
    /// `--rate-limit 0.5` said "at most 0 events per second" (an outside review).
    var rateDescription: String {
        rate == rate.rounded() && abs(rate) < 1e15 ? String(Int64(rate)) : String(rate)
    }

    /// Takes `events` tokens, whatever the bucket holds.
    func consume(_ events: Int) {
        bucket.withLockedValue { bucket in
            refill(&bucket)
            bucket.tokens -= Double(events)
        }
    }

    /// The whole seconds (1 to a day) the bucket takes to gain `tokens`.
    private func seconds(toRefill tokens: Double) -> Int {
        max(1, Int(min((tokens / rate).rounded(.up), 86_400)))
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
