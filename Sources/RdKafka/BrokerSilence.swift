import Foundation

/// Brokers that have requests waiting and have sent nothing for ``limit``, read from librdkafka's
/// statistics (`statistics.interval.ms`, a JSON document per interval).
///
/// A frozen broker (a stopped process or VM, a wedged network path) keeps its connections open and
/// answers nothing. librdkafka reports that only when a request times out (`socket.timeout.ms`,
/// 60 s), then again when the reconnection's ApiVersion request times out (10 s): "all brokers are
/// down" came 71–77 s after Tansu was stopped (a probe, 2026-12-05), and until then `store`,
/// `observe` and `ingest` said ready. The statistics show it sooner: the broker's `rxidle` (time
/// since anything was received on its connection) grows while `waitresp_cnt` (requests sent, not
/// answered) stays above 0. A healthy broker answers a consumer's fetch within `fetch.wait.max.ms`
/// (500 ms), and a producer's requests at once.
///
/// A broker stays silent once seen so, through librdkafka's reconnections (when it has received
/// nothing on the new connection yet), until its connection is up and has received something
/// within ``limit``, or nothing is waiting for it any more (another broker leads its partitions
/// now). The group coordinator's connection (a logical broker) is left out: a group join waits
/// there for the whole rebalance, which takes Tansu 20–60 s.
struct BrokerSilence: Sendable {
    /// How long a broker with requests waiting may send nothing before it counts as silent.
    static let limit: Duration = .seconds(15)

    struct Silent: Sendable, Equatable {
        /// When it last sent anything, as far as the statistics tell.
        var since: ContinuousClock.Instant
        var waiting: Int
    }

    /// Silent brokers by name (`host:port/id`).
    private(set) var silent: [String: Silent] = [:]

    /// What changed with one statistics document.
    struct Change: Equatable {
        var nowSilent: [String] = []
        var answeringAgain: [String] = []
    }

    /// Takes one statistics document (`brokers` is its `brokers` object) taken at `now`.
    mutating func update(brokers: [String: Any], at now: ContinuousClock.Instant) -> Change {
        var change = Change()
        let limitMicroseconds = Int64(Self.limit.components.seconds) * 1_000_000
        var seen = Set<String>()
        for (key, value) in brokers {
            guard let broker = value as? [String: Any] else { continue }
            let name = broker["name"] as? String ?? key
            let source = broker["source"] as? String ?? ""
            let nodeID = Self.integer(broker["nodeid"]) ?? -1
            guard nodeID >= 0, source != "logical", source != "internal" else { continue }
            seen.insert(name)
            let state = broker["state"] as? String ?? ""
            let received = Self.integer(broker["rxidle"]) ?? -1  // µs; -1: nothing on this connection yet
            let waiting = Self.integer(broker["waitresp_cnt"]) ?? 0
            let queued = Self.integer(broker["outbuf_cnt"]) ?? 0
            if state == "UP", waiting > 0, received >= limitMicroseconds {
                if silent[name] == nil {
                    silent[name] = Silent(since: now.advanced(by: .microseconds(-received)), waiting: Int(waiting))
                    change.nowSilent.append(name)
                } else {
                    silent[name]?.waiting = Int(waiting)
                }
            } else if (state == "UP" && received >= 0 && received < limitMicroseconds) || (waiting == 0 && queued == 0) {
                if silent.removeValue(forKey: name) != nil { change.answeringAgain.append(name) }
            } else {
                silent[name]?.waiting = Int(waiting + queued)  // still silent, if it was
            }
        }
        for name in silent.keys where !seen.contains(name) {
            silent[name] = nil
            change.answeringAgain.append(name)
        }
        change.nowSilent.sort()
        change.answeringAgain.sort()
        return change
    }

    /// Why appends or reads stall, or nil when no broker is silent.
    func reason(at now: ContinuousClock.Instant) -> String? {
        guard let (name, broker) = silent.min(by: { $0.value.since < $1.value.since }) else { return nil }
        let seconds = Int(broker.since.duration(to: now).components.seconds)
        let others = silent.count > 1 ? " (and \(silent.count - 1) more)" : ""
        let requests = broker.waiting == 1 ? "1 request" : "\(broker.waiting) requests"
        return "Kafka broker \(name) has answered nothing for \(seconds) s with \(requests) waiting\(others): frozen or overloaded"
    }

    /// Parses a statistics document; nil when it is not one.
    static func brokers(inStatistics json: UnsafeRawBufferPointer) -> [String: Any]? {
        guard let base = json.baseAddress else { return nil }
        let data = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: json.count, deallocator: .none)
        guard let document = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return document["brokers"] as? [String: Any]
    }

    private static func integer(_ value: Any?) -> Int64? {
        switch value {
        case let number as NSNumber: return number.int64Value
        case let int as Int: return Int64(int)
        default: return nil
        }
    }
}
