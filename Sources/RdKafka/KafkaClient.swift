import CRdKafka
import Logging
import Synchronization

/// A topic, partition and offset: the unit of assignments, commits and seeks.
public struct KafkaTopicPartition: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    /// An offset, or one of ``KafkaOffset``'s special values.
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64 = KafkaOffset.invalid) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    /// `topic[partition]@offset`; without the offset when it is librdkafka's marker ``KafkaOffset/invalid`` (-1001,
    /// "not known yet": at assignment, the group's committed offset is fetched afterwards), which
    /// an operator read as an offset (an outside review of the logs).
    public var description: String { offset == KafkaOffset.invalid ? "\(topic)[\(partition)]" : "\(topic)[\(partition)]@\(offset)" }
}

/// Whether the librdkafka property `name` holds a secret (`sasl.password`, `ssl.key.password`,
/// `sasl.oauthbearer.client.secret`, a PEM key, the OAUTHBEARER configuration), whose value errors
/// and logs must not repeat.
public func isSecretProperty(_ name: String) -> Bool {
    let lower = name.lowercased()
    return ["password", "secret", "pem", "oauthbearer.config", "jaas"].contains { lower.contains($0) }
}

/// Builds an `rd_kafka_conf_t` from string properties (librdkafka's CONFIGURATION.md names).
func makeConfiguration(_ properties: [String: String]) throws(RdKafkaError) -> OpaquePointer {
    guard let conf = rd_kafka_conf_new() else { throw .local("rd_kafka_conf_new failed") }
    var errorText = [CChar](repeating: 0, count: 512)
    // A stable order makes errors reproducible.
    for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
        let result = rd_kafka_conf_set(conf, key, value, &errorText, errorText.count)
        if result != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            let text = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // A name librdkafka does not know may be a mistyped secret's (`sasl.pasword`): its
            // value is not repeated either.
            let shown = result == RD_KAFKA_CONF_UNKNOWN || isSecretProperty(key) ? "(hidden)" : value
            throw RdKafkaError(code: RdKafkaError.invalidArgument, message: "configuration \(key)=\(shown): \(text)")
        }
    }
    return conf
}

/// Creates a client handle from `conf` (owned by the handle on success, destroyed on failure).
///
/// The handle holds `callbacks`, its opaque, as a retained reference until ``destroyHandle(_:)``.
/// librdkafka's threads call the callbacks until the handle is destroyed, so they must outlive the
/// client's Swift object: a client dropped without `close()` destroys its handle in `deinit`, on
/// its own thread, and `callbacks` go after that (until 2026-12-05 the opaque was not retained, and
/// librdkafka called into freed memory).
func makeHandle(_ type: rd_kafka_type_t, _ conf: OpaquePointer, callbacks: ClientCallbacks) throws(RdKafkaError) -> OpaquePointer {
    var errorText = [CChar](repeating: 0, count: 512)
    let opaque = Unmanaged.passRetained(callbacks)
    rd_kafka_conf_set_opaque(conf, opaque.toOpaque())
    guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
        rd_kafka_conf_destroy(conf)
        opaque.release()
        let text = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw RdKafkaError(code: RdKafkaError.invalidArgument, message: "rd_kafka_new: \(text)")
    }
    return handle
}

/// Destroys a handle made by ``makeHandle(_:_:callbacks:)`` (`rd_kafka_destroy`, which blocks until
/// librdkafka's threads have ended), then lets go of its callbacks.
func destroyHandle(_ handle: OpaquePointer) {
    let opaque = rd_kafka_opaque(handle)
    rd_kafka_destroy(handle)
    if let opaque { Unmanaged<ClientCallbacks>.fromOpaque(opaque).release() }
}

/// Leaves out repeats of a message: against an unreachable broker, librdkafka's producer, admin
/// client and consumers each say "Connect to … failed" many times a second (about 150 lines a
/// second from `serve`, a probe), which buries everything else. A text is logged at most once per
/// `interval` in the process; when it is next logged, it says how many times it was left out.
/// Numbers of milliseconds and librdkafka's own count of repeats ("after 0ms in state CONNECT, 3
/// identical error(s) suppressed") do not make a text new.
public final class RepeatedMessages: Sendable {
    public let interval: Duration
    private let capacity: Int
    private let seen = Mutex<[String: Entry]>([:])

    private struct Entry {
        var loggedAt: ContinuousClock.Instant
        var leftOut: Int
    }

    public init(interval: Duration, capacity: Int = 1024) {
        self.interval = interval
        self.capacity = capacity
    }

    /// `nil` when `text` is a repeat to leave out; else how many repeats were left out since it was
    /// last logged (0 for a new text).
    public func admit(_ text: String, now: ContinuousClock.Instant = .now) -> Int? {
        let key = Self.key(text)
        return seen.withLock { seen in
            if var entry = seen[key], now - entry.loggedAt < interval {
                entry.leftOut += 1
                seen[key] = entry
                return nil
            }
            let leftOut = seen[key]?.leftOut ?? 0
            if seen.count >= capacity { seen.removeAll(keepingCapacity: true) }
            seen[key] = Entry(loggedAt: now, leftOut: 0)
            return leftOut
        }
    }

    static func key(_ text: String) -> String {
        var key = ""
        var rest = Substring(text)
        while let first = rest.first {
            guard first.isASCII && first.isNumber else {
                key.append(first)
                rest = rest.dropFirst()
                continue
            }
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            rest = rest.dropFirst(digits.count)
            key += rest.hasPrefix("ms") || rest.hasPrefix(" identical") ? "#" : digits
        }
        // librdkafka's own count of repeats: "(after 0ms in state CONNECT, 3 identical error(s) suppressed)".
        return key.replacing(", # identical error(s) suppressed", with: "")
    }

    /// The one every client's callbacks share: 30 s.
    static let shared = RepeatedMessages(interval: .seconds(30))
}

/// What every client's C callbacks reach through `rd_kafka_opaque`: its logger and error sink, and
/// whether any broker answers.
class ClientCallbacks: @unchecked Sendable {
    let logger: Logger
    /// Set by librdkafka's "all brokers down" error, cleared once a metadata request is answered.
    private let reachability = Mutex<(down: String?, lastCheck: ContinuousClock.Instant)>((nil, .now))
    /// Brokers that answer nothing, from librdkafka's statistics (``statistics(_:)``).
    private let silence = Mutex(BrokerSilence())
    /// The last client-level error librdkafka reported (error_cb), and when: `cause` the last but
    /// "all brokers down", which says only how many brokers are down, not why (`_AUTHENTICATION:
    /// … SASL PLAIN mechanism handshake failed`, `_TRANSPORT: Connect to … failed: Connection refused`).
    /// `logged` is a cause only librdkafka's log tells (``librdkafkaLogged(_:_:)``), which comes
    /// from its threads at any time, not queued with a request's errors: kept when those are forgotten.
    private let lastError = Mutex<(any: TimedText?, cause: TimedText?, logged: TimedText?)>((nil, nil, nil))

    struct TimedText {
        let text: String
        let at: ContinuousClock.Instant
        /// Reported in the last minute.
        var isRecent: Bool { at.duration(to: .now) < .seconds(60) }
    }

    /// The last line about reachability said "reachable again" (``clientError(_:)``).
    private let saidReachableAgain = Mutex(false)

    /// Broker failures librdkafka logged (facility FAIL, at error level), by ``RepeatedMessages``
    /// key, and when: it reports each one again as a client error (`_TRANSPORT: <the same text>`),
    /// which is then left out of the log. Every refused connection was logged twice, as an error
    /// and as a warning (an outside review of the logs).
    private let failuresLogged = Mutex<[String: ContinuousClock.Instant]>([:])

    init(logger: Logger) { self.logger = logger }

    /// Why no broker can be reached (librdkafka said all are down, and none has answered since), or
    /// why one answers nothing (``BrokerSilence``), or nil.
    /// All brokers down says why when a connection failed in the last minute: a SASL or TLS
    /// misconfiguration showed in `/readyz` as "1/1 brokers are down" alone (a Kafka review), the
    /// handshake's failure only in the log.
    var brokersDown: String? {
        if let down = reachability.withLock({ $0.down }) {
            guard let cause = lastError.withLock({ Self.newest($0.cause, $0.logged) }) else { return down }
            return "\(down) (the last connection error: \(cause.text))"
        }
        return silence.withLock { $0.reason(at: .now) }
    }

    /// Called from the client's poll (stats_cb) with a statistics document.
    func statistics(_ json: UnsafeRawBufferPointer) {
        guard let brokers = BrokerSilence.brokers(inStatistics: json) else { return }
        let (change, reason) = silence.withLock { silence in
            let now = ContinuousClock.now
            return (silence.update(brokers: brokers, at: now), silence.reason(at: now))
        }
        if !change.nowSilent.isEmpty, let reason { logger.warning("\(reason)") }
        for name in change.answeringAgain { logger.info("Kafka broker \(name) answers again") }
    }

    /// The last client-level error librdkafka reported in the last minute (`_TRANSPORT: Connect to
    /// ipv4#127.0.0.1:9092 failed: Connection refused`, `_RESOLVE: Failed to resolve …`), or nil:
    /// what a timed-out request does not say (an admin request says only "Failed while waiting
    /// for controller").
    /// Its cause rather than "all brokers down" when there is one.
    var recentError: String? {
        lastError.withLock { last in
            if let cause = Self.newest(last.cause, last.logged) { return cause.text }
            guard let any = last.any, any.isRecent else { return nil }
            return any.text
        }
    }

    /// The later of two causes reported in the last minute: librdkafka may report one failure both
    /// as a client error and in its log.
    private static func newest(_ a: TimedText?, _ b: TimedText?) -> TimedText? {
        [a, b].compactMap { $0 }.filter(\.isRecent).max { $0.at < $1.at }
    }

    /// Forgets the last error (see ``recentError``); `all` forgets a cause from the log too.
    func forgetRecentError(all: Bool = false) {
        lastError.withLock { last in
            last.any = nil
            last.cause = nil
            if all { last.logged = nil }
        }
    }

    /// Called from librdkafka threads (error_cb) for client-level errors.
    func clientError(_ error: RdKafkaError) {
        // "All brokers down" after "reachable again" is said even within the 30 s in which a
        // repeat is left out: the last line said the brokers were back while they were down
        // again (the disk monitor's lines had the same fault, a review).
        let downAfterRecovery = error.code == RdKafkaError.allBrokersDown && saidReachableAgain.withLock { said in
            defer { said = false }
            return said
        }
        if downAfterRecovery {
            logger.warning("librdkafka: \(error)")
        } else if !wasLoggedAsFailure(error.message) {
            log(.warning, "librdkafka: \(error)")
        }
        let timed = TimedText(text: "\(error)", at: .now)
        lastError.withLock { last in
            last.any = timed
            if error.code != RdKafkaError.allBrokersDown { last.cause = timed }
        }
        if error.code == RdKafkaError.allBrokersDown {
            // librdkafka's own text only counts brokers, and its count can be stale: "0/2 brokers
            // are down" for the first seconds of an outage (a review of broker failures).
            reachability.withLock { $0 = ("all Kafka brokers are down", .now) }
        }
    }

    /// Called from librdkafka threads (log_cb) for its log lines: logged, and a line that tells why
    /// connections fail where no client error does is kept as the cause ``brokersDown`` names. A
    /// port that accepts connections but is not a Kafka listener of that protocol (an HTTP port; a
    /// plaintext listener for a TLS client) gives no client error but "all brokers are down", and
    /// the reason said nothing of why (a review of broker failures).
    func librdkafkaLogged(_ level: Logger.Level, _ message: String) {
        log(level, message)
        guard level >= .warning, let cause = Self.connectionCause(inLog: message) else { return }
        let timed = TimedText(text: cause, at: .now)
        lastError.withLock { $0.logged = timed }
    }

    /// Called from librdkafka threads (log_cb) for a line of facility FAIL (a broker connection
    /// failed): `text` is `[thrd:…]: <broker>: <why>`, and the client error that follows says
    /// `<broker>: <why>` (``clientError(_:)``).
    func brokerFailureLogged(_ text: String) {
        var failure = Substring(text)
        if failure.hasPrefix("[thrd:"), let end = failure.range(of: "]: ") { failure = failure[end.upperBound...] }
        let key = RepeatedMessages.key(String(failure))
        failuresLogged.withLock { logged in
            let now = ContinuousClock.now
            if logged.count >= 256 { logged = logged.filter { now - $0.value < RepeatedMessages.shared.interval } }
            logged[key] = now
        }
    }

    /// Whether `message`, a client error's, is a broker failure librdkafka logged in the last 30 s.
    private func wasLoggedAsFailure(_ message: String) -> Bool {
        let key = RepeatedMessages.key(message)
        return failuresLogged.withLock { logged in
            guard let at = logged[key] else { return false }
            return ContinuousClock.now - at < RepeatedMessages.shared.interval
        }
    }

    /// What a librdkafka log line says of why a connection failed, or nil for other lines.
    static func connectionCause(inLog message: String) -> String? {
        if message.contains("ApiVersionRequest failed") {
            return "no answer to Kafka's first request (ApiVersion): a broker that takes connections but hangs, or a port that is not a Kafka listener of the protocol in security.protocol (another service's port, a plaintext client to a TLS listener)? (\(message))"
        }
        if message.contains("timed out in state SSL_HANDSHAKE") {
            return "the TLS handshake timed out: is the listener plaintext? (\(message))"
        }
        return nil
    }

    /// On the client's own thread (it blocks for up to 500 ms): while brokers are reported down,
    /// asks for metadata every 2 s and clears ``brokersDown`` once a broker answers. librdkafka says
    /// when all brokers go down, not when one comes back.
    func checkRecovery(_ handle: OpaquePointer) {
        let due = reachability.withLock { state -> Bool in
            guard state.down != nil, state.lastCheck.duration(to: .now) > .seconds(2) else { return false }
            state.lastCheck = .now
            return true
        }
        guard due else { return }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        // all_topics=1: a real request (with 0 and no topic, librdkafka may answer from its cache).
        if rd_kafka_metadata(handle, 1, nil, &metadata, 500) == RD_KAFKA_RESP_ERR_NO_ERROR {
            if let metadata { rd_kafka_metadata_destroy(metadata) }
            brokerAnswered()
        }
    }

    /// A broker answered a consumer (records, an assignment, a partition's end): clears
    /// ``brokersDown`` at once, without waiting for the next metadata check, which can time out on
    /// a loaded broker while fetches get through.
    func brokerAnswered() {
        let wasDown = reachability.withLock { state -> Bool in
            defer { state.down = nil }
            return state.down != nil
        }
        if wasDown {
            saidReachableAgain.withLock { $0 = true }
            logger.info("Kafka brokers reachable again")
        }
    }

    /// Logs `message` unless it repeats one logged less than 30 s ago (``RepeatedMessages``).
    func log(_ level: Logger.Level, _ message: String) {
        guard logger.logLevel <= level, let leftOut = RepeatedMessages.shared.admit(message) else { return }
        let metadata: Logger.Metadata = leftOut > 0 ? ["librdkafka.repeats_left_out": .stringConvertible(leftOut)] : [:]
        logger.log(level: level, "\(message)", metadata: metadata)
    }
}

/// Routes librdkafka's logs and errors to swift-log through the client's opaque (`callbacks`,
/// which ``makeHandle(_:_:callbacks:)`` sets).
func installCommonCallbacks(_ conf: OpaquePointer) {
    rd_kafka_conf_set_log_cb(conf) { handle, level, facility, text in
        guard let handle, let opaque = rd_kafka_opaque(handle) else { return }
        let callbacks = Unmanaged<ClientCallbacks>.fromOpaque(opaque).takeUnretainedValue()
        let facility = facility.map { String(cString: $0) } ?? ""
        let text = text.map { String(cString: $0) } ?? ""
        if facility == "FAIL" && level <= 4 { callbacks.brokerFailureLogged(text) }
        let message = "librdkafka \(facility): \(text)"
        switch level {
        case 0...3: callbacks.librdkafkaLogged(.error, message)
        case 4: callbacks.librdkafkaLogged(.warning, message)
        case 5, 6: callbacks.log(.info, message)
        default: callbacks.log(.debug, message)
        }
    }
    rd_kafka_conf_set_error_cb(conf) { handle, code, reason, opaque in
        guard let opaque else { return }
        let callbacks = Unmanaged<ClientCallbacks>.fromOpaque(opaque).takeUnretainedValue()
        var error = RdKafkaError(rd_kafka_resp_err_t(rawValue: code), reason.map { String(cString: $0) })
        if code == RD_KAFKA_RESP_ERR__FATAL.rawValue, let handle {
            var text = [CChar](repeating: 0, count: 512)
            let fatal = rd_kafka_fatal_error(handle, &text, text.count)
            error = RdKafkaError(
                code: fatal.rawValue,
                message: String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                isRetriable: false, isFatal: true
            )
        }
        callbacks.clientError(error)
    }
}

/// Routes librdkafka's statistics (every `statistics.interval.ms`; 0, the default, sends none) to
/// ``ClientCallbacks/statistics(_:)``. Only for clients that poll their main queue: a producer's
/// poll thread and a consumer's polls serve it.
func installStatisticsCallback(_ conf: OpaquePointer) {
    rd_kafka_conf_set_stats_cb(conf) { _, json, length, opaque in
        guard let json, let opaque else { return 0 }
        let callbacks = Unmanaged<ClientCallbacks>.fromOpaque(opaque).takeUnretainedValue()
        callbacks.statistics(UnsafeRawBufferPointer(start: json, count: length))
        return 0  // librdkafka frees the document
    }
}

/// Builds a C partition list; the caller destroys it.
func makePartitionList(_ partitions: [KafkaTopicPartition]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
    let list = rd_kafka_topic_partition_list_new(Int32(max(partitions.count, 1)))!
    for item in partitions {
        let element = rd_kafka_topic_partition_list_add(list, item.topic, item.partition)!
        element.pointee.offset = item.offset
    }
    return list
}

/// Reads a C partition list, with each element's error if any.
func readPartitionList(
    _ list: UnsafePointer<rd_kafka_topic_partition_list_t>?
) -> [(KafkaTopicPartition, RdKafkaError?)] {
    guard let list, let elements = list.pointee.elems else { return [] }
    var result: [(KafkaTopicPartition, RdKafkaError?)] = []
    for index in 0..<Int(list.pointee.cnt) {
        let element = elements[index]
        let item = KafkaTopicPartition(
            topic: String(cString: element.topic), partition: element.partition, offset: element.offset
        )
        result.append((item, element.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : RdKafkaError(element.err)))
    }
    return result
}

func milliseconds(_ duration: Duration) -> Int32 {
    let (seconds, attoseconds) = duration.components
    let value = seconds * 1000 + attoseconds / 1_000_000_000_000_000
    return Int32(clamping: max(0, value))
}
