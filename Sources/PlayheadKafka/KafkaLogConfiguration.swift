import Foundation
import PlayheadLog
import RdKafka

/// The settings of a ``KafkaLog``, read from a `kafka://` URL.
///
/// ```
/// kafka://host:port[,host2:port...][/<topic>][?key=value&...]
/// ```
///
/// The path names the topic of accepted events, as in `kafka://host:port/topic`; the dead-letter
/// stream goes to `<topic>.rejected`. A path that ends in `.`, `-` or `_` is a prefix instead
/// (`kafka://h:9092/staging.` gives `staging.events` and `staging.rejected`), and so is `prefix`.
/// Without either, the topics are `playhead.events` and `playhead.rejected`.
///
/// | Query key | Default | Meaning |
/// |---|---|---|
/// | `prefix` | `playhead.` | topic name prefix: topics are `<prefix>events`, `<prefix>rejected` (not with a topic in the path) |
/// | `partitions` | `12` | partitions of the topics this log creates |
/// | `replication` | `1` | replication factor of the topics it creates |
/// | `create_topics` | `true` | create missing topics with the admin API at start |
/// | `compression` | `zstd` | `zstd`, `lz4`, `snappy`, `gzip` or `none` |
/// | `linger_ms` | `5` | how long the producer waits to fill a batch |
/// | `delivery_timeout_ms` | `30000` | how long a record may wait for its acknowledgement before the append fails (`message.timeout.ms`) |
/// | `queue_max_messages` | `1000000` | local queue bound; records beyond it wait for room, in order, the request answered within `delivery_timeout_ms` |
/// | `session_timeout_ms` | `10000` | consumer-group session timeout (rebalances wait about half of it on Tansu) |
/// | `assignor` | `cooperative-sticky` | `cooperative-sticky` (incremental rebalances) or `range` / `roundrobin` (eager) |
/// | `client_id` | `playhead` | the client id the brokers see |
/// | `group_prefix` | none | put before the consumer groups' names (`lake`, `metrics`): two deployments on one cluster each with its own groups |
/// | `rdkafka.<name>` | | any librdkafka property, for producers and consumers |
/// | `producer.<name>` / `consumer.<name>` | | a librdkafka property for one side only |
/// | `properties_file` | | a file of librdkafka properties (`name=value` lines) for every client, below the URL's own: keeps secrets such as `sasl.password` off the command line |
public struct KafkaLogConfiguration: Sendable, Hashable {
    public var bootstrapServers: String
    public var topicPrefix: String = "playhead."
    /// The topic of accepted events when the URL names one (its path); the other topics are
    /// `<eventsTopic>.<name>`. Nil: every topic is `<topicPrefix><name>`.
    public var eventsTopic: String?
    public var partitions: Int = 12
    /// Whether the URL gave `partitions=` (else ``partitions`` is the default).
    public var partitionsGiven = false
    /// Put before every consumer group's name on the cluster (`group_prefix=staging.` gives
    /// `staging.lake` and `staging.metrics`, and readers' groups `staging.playhead-reader-…`, so
    /// that an ACL on the prefix covers them all).
    public var groupPrefix = ""
    public var replicationFactor: Int = 1
    public var createTopics: Bool = true
    /// A reader of a topic that does not exist yet waits for it to be made instead of failing
    /// (`playhead log dump --follow`, which creates no topics). Not a URL parameter.
    public var waitForTopics: Bool = false
    public var compression: String = "zstd"
    public var lingerMilliseconds: Int = 5
    public var deliveryTimeoutMilliseconds: Int = 30_000
    public var queueMaxMessages: Int = 1_000_000
    public var sessionTimeoutMilliseconds: Int = 10_000
    public var assignor: String = "cooperative-sticky"
    public var clientID: String = "playhead"
    /// The largest message the producer sends (librdkafka's `message.max.bytes`), and the
    /// `max.message.bytes` of the topics it creates. A rejected record holds the bytes as sent: a
    /// whole body of up to `--max-body-bytes` when it is not JSON. At librdkafka's default (1 MB) such
    /// a record failed, and the request got 500 "retry later" on every retry (a probe, 2026-12-04).
    /// `serve` and `ingest` raise it to their body limit and 1 MiB more (``fitting(recordsOf:)``).
    public var maxMessageBytes: Int = 8 * 1024 * 1024
    /// Extra librdkafka properties for every client.
    public var commonProperties: [String: String] = [:]
    public var producerProperties: [String: String] = [:]
    public var consumerProperties: [String: String] = [:]
    /// The `properties_file` the common properties were read from, if any.
    public var propertiesFile: String?

    public init(bootstrapServers: String) {
        self.bootstrapServers = bootstrapServers
    }

    /// Parses a `kafka://` URL (see the type's documentation).
    public init(url: String) throws(LogError) {
        func invalid(_ message: String) -> LogError {
            LogError(code: .invalidArgument, message: "bad Kafka URL \(Self.redacted(url)): \(message)")
        }
        guard url.hasPrefix("kafka://") else { throw invalid("it must start with kafka://") }
        // `kafka://user:password@host:port`, as some tools take it: the broker's address was
        // `user:password@host` (never found), the process waited unready, and the password was in
        // the log's lines about the address (an outside review of the logs). Looked for up to the
        // first `=`, since a password may hold `/` or `?` (base64); no broker or topic holds `@`.
        if url.prefix(while: { $0 != "=" }).contains("@") {
            throw invalid("a user name or password in the URL (user:password@host) is not read; give SASL credentials as sasl.username and sasl.password in a properties_file readable by Playhead's user only (docs/kafka.md, \"Credentials\")")
        }
        var rest = Substring(url.dropFirst("kafka://".count))
        var query = Substring("")
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path = Substring("")
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        let hosts = rest.split(separator: ",").map { $0.trimmingWhitespace() }
        guard !hosts.isEmpty, hosts.allSatisfy({ !$0.isEmpty }) else { throw invalid("no broker address") }
        for host in hosts {
            guard let colon = host.lastIndex(of: ":"), let port = Int(host[host.index(after: colon)...]), port > 0, port < 65536,
                colon != host.startIndex
            else { throw invalid("broker '\(host)' must be host:port") }
        }
        self.init(bootstrapServers: hosts.joined(separator: ","))
        let decodedPath = Self.percentDecode(path)
        // Kafka's rule for topic names: up to 249 of these bytes. The dead-letter topic adds
        // ".rejected" (9 bytes) to a topic named in the path.
        guard decodedPath.utf8.count <= 249 - 9, decodedPath.utf8.allSatisfy(Self.isTopicNameByte) else {
            throw invalid("the path '\(decodedPath)' must be a topic name of at most 240 of the characters a-z A-Z 0-9 . _ -")
        }
        if let last = decodedPath.last, ".-_".contains(last) {
            topicPrefix = decodedPath
        } else if !decodedPath.isEmpty {
            eventsTopic = decodedPath
        }

        var given = Set<String>()
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = Self.percentDecode(parts[0])
            let value = parts.count > 1 ? Self.percentDecode(parts[1]) : ""
            // The last of two took effect in silence (a probe: partitions=3&partitions=5).
            guard given.insert(key).inserted else { throw invalid("'\(key)' is given twice") }
            func int(_ range: ClosedRange<Int>) throws(LogError) -> Int {
                guard let number = Int(value), range.contains(number) else {
                    throw invalid("\(key)=\(value) must be an integer in \(range.lowerBound)...\(range.upperBound)")
                }
                return number
            }
            switch key {
            case "prefix":
                guard eventsTopic == nil else {
                    throw invalid("give either a topic in the path or prefix=, not both")
                }
                // The topics are `<prefix>events` and `<prefix>rejected`: the same rule as a topic
                // in the path. It was not checked (an outside review: `prefix=a$b/c` made topics
                // `a$b/cevents` on Tansu, which a Kafka broker refuses at creation).
                guard value.utf8.count <= 249 - 8, value.utf8.allSatisfy(Self.isTopicNameByte) else {
                    throw invalid("prefix '\(value)' must be at most 241 of the characters a-z A-Z 0-9 . _ - (the topics are <prefix>events and <prefix>rejected, at most 249 bytes)")
                }
                topicPrefix = value
            case "partitions":
                partitions = try int(1...100_000)
                partitionsGiven = true
            case "replication": replicationFactor = try int(1...100)
            case "create_topics":
                guard let flag = Bool(value) else { throw invalid("create_topics must be true or false") }
                createTopics = flag
            case "compression":
                guard ["zstd", "lz4", "snappy", "gzip", "none"].contains(value) else {
                    throw invalid("compression must be zstd, lz4, snappy, gzip or none")
                }
                compression = value
            case "linger_ms": lingerMilliseconds = try int(0...900_000)
            case "delivery_timeout_ms": deliveryTimeoutMilliseconds = try int(1...2_147_483_647)
            case "queue_max_messages": queueMaxMessages = try int(1...10_000_000)
            case "session_timeout_ms": sessionTimeoutMilliseconds = try int(1...3_600_000)
            case "assignor":
                guard ["cooperative-sticky", "range", "roundrobin"].contains(value) else {
                    throw invalid("assignor must be cooperative-sticky, range or roundrobin")
                }
                assignor = value
            case "client_id": clientID = value
            case "group_prefix":
                // A group id is any string to Kafka; kept to the characters of a topic name, which
                // every tool prints and takes unquoted.
                guard !value.isEmpty, value.count <= 200, value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) else {
                    throw invalid("group_prefix must be 1-200 of the characters a-z A-Z 0-9 . _ -")
                }
                groupPrefix = value
            case "properties_file":
                guard !value.isEmpty else { throw invalid("properties_file needs a path") }
                propertiesFile = value
            default:
                if key.hasPrefix("rdkafka.") {
                    commonProperties[String(key.dropFirst("rdkafka.".count))] = value
                } else if key.hasPrefix("producer.") {
                    producerProperties[String(key.dropFirst("producer.".count))] = value
                } else if key.hasPrefix("consumer.") {
                    consumerProperties[String(key.dropFirst("consumer.".count))] = value
                } else {
                    throw invalid("unknown parameter '\(key)'")
                }
            }
        }
        // librdkafka's own check names its properties, not the URL's parameters (a review).
        guard lingerMilliseconds < deliveryTimeoutMilliseconds else {
            throw invalid("linger_ms (\(lingerMilliseconds)) must be less than delivery_timeout_ms (\(deliveryTimeoutMilliseconds)): a record waits linger_ms for its batch before it is sent")
        }
        if let propertiesFile {
            let fromFile = try Self.readProperties(propertiesFile).get()
            if let name = fromFile.keys.sorted().first(where: { Self.managedReason($0) != nil }) {
                throw LogError(code: .invalidArgument, message: "Kafka properties_file \(propertiesFile): \(name) is Playhead's to set: \(Self.managedReason(name)!); remove it from the file")
            }
            commonProperties = fromFile.merging(commonProperties) { _, fromURL in fromURL }
        }
        for (prefix, properties) in [("rdkafka.", commonProperties), ("producer.", producerProperties), ("consumer.", consumerProperties)] {
            if let name = properties.keys.sorted().first(where: { Self.managedReason($0) != nil }) {
                throw invalid("\(prefix)\(name) is Playhead's to set: \(Self.managedReason(name)!)")
            }
        }
    }

    /// librdkafka properties that Playhead's guarantees rest on, which neither the URL nor a
    /// properties file may set, and why. A Java client's properties file often holds `group.id`: taken
    /// over Playhead's own, the lake writer and the metrics consumer joined one group and split the
    /// partitions, and the lake got half the events with no lag to show for it (a probe, 2026-12-04).
    static let managedProperties: [String: String] = [
        "group.id": "the lake writer reads as group 'lake' and the metrics consumer as 'metrics'; one group for both splits the partitions between them, and each sees half the events",
        "bootstrap.servers": "the brokers are the URL's host:port list",
        "enable.auto.commit": "offsets are committed by hand, after a batch is in the lake",
        "enable.auto.offset.store": "offsets are committed by hand, after a batch is in the lake",
        "auto.offset.reset": "a group without a committed offset reads from the earliest record, so that no event is skipped",
        "acks": "a 202 waits for every in-sync replica (acks=all)",
        "enable.idempotence": "the producer's retries must not duplicate or reorder records",
        // Accepted until 2026-12-07 (an outside review): with only failures reported, no append
        // completed (its request had no answer) and each held its tracker for good.
        "delivery.report.only.error": "a 202 waits for the delivery report of every record",
        "message.timeout.ms": "it is the URL's delivery_timeout_ms (0, never, held a request for ever)",
    ]

    /// librdkafka's other names of ``managedProperties``: `metadata.broker.list` set after
    /// `bootstrap.servers` won, and the process read other brokers than the URL's while it named
    /// the URL's (an outside review).
    static let managedAliases: [String: String] = [
        "metadata.broker.list": "bootstrap.servers", "request.required.acks": "acks", "auto.commit.enable": "enable.auto.commit",
        "delivery.timeout.ms": "message.timeout.ms",
    ]

    /// Why `name` (a topic property may be written `topic.<name>`, and some have other names) is
    /// Playhead's to set, or nil.
    static func managedReason(_ name: String) -> String? {
        let bare = name.hasPrefix("topic.") ? String(name.dropFirst("topic.".count)) : name
        return managedProperties[bare] ?? managedAliases[bare].flatMap { managedProperties[$0] }
    }

    /// The librdkafka properties of a `properties_file`: `name=value` lines (spaces around either
    /// trimmed), blank lines and lines starting with `#` or `!` skipped, as in Kafka's client
    /// properties files. Errors name the file and line, never a value.
    static func readProperties(_ path: String) -> Result<[String: String], LogError> {
        func invalid(_ message: String) -> LogError {
            LogError(code: .invalidArgument, message: "Kafka properties_file \(path): \(message)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "it cannot be read (permissions?)" : "no such file"
            return .failure(invalid(reason))
        }
        guard let text = String(data: data, encoding: .utf8) else { return .failure(invalid("it is not UTF-8 text")) }
        var properties: [String: String] = [:]
        func trimmed(_ text: Substring) -> String { text.trimmingCharacters(in: .whitespaces) }
        for (number, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = trimmed(rawLine)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("!") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                return .failure(invalid("line \(number + 1) is not name=value"))
            }
            let name = trimmed(line[..<equals])
            guard !name.isEmpty else { return .failure(invalid("line \(number + 1) has no name before '='")) }
            properties[name] = trimmed(line[line.index(after: equals)...])
        }
        return .success(properties)
    }

    /// `url` with the values of its librdkafka properties (`rdkafka.…`, `producer.…`, `consumer.…`)
    /// and of any other secret-named parameter hidden, for messages. Every property's value is
    /// hidden, not only those whose names look secret: a mistyped name (`rdkafka.sasl.pasword`)
    /// cannot be told from a secret one, and no URL error is about a property's value.
    public static func redacted(_ url: String) -> String {
        // A user name and password before the brokers (`scheme://user:password@host`): hidden, up
        // to the last `@` before the first `=` (a password may hold `/` or `?`; a query's values,
        // after their `=`, are hidden below by name).
        var url = Substring(url)
        if let scheme = url.range(of: "://") {
            let end = url[scheme.upperBound...].firstIndex(of: "=") ?? url.endIndex
            if let at = url[scheme.upperBound..<end].lastIndex(of: "@") {
                url = url[..<scheme.upperBound] + "(hidden)" + url[at...]
            }
        }
        guard let mark = url.firstIndex(of: "?") else { return String(url) }
        let pairs = url[url.index(after: mark)...].split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
            guard let equals = pair.firstIndex(of: "=") else { return String(pair) }
            let name = percentDecode(pair[..<equals])
            let isProperty = ["rdkafka.", "producer.", "consumer."].contains { name.hasPrefix($0) }
            guard isProperty || isSecretProperty(name) else { return String(pair) }
            return pair[...equals] + "(hidden)"
        }
        return url[...mark] + pairs.joined(separator: "&")
    }

    /// a-z, A-Z, 0-9, `.`, `_` and `-`: the bytes Kafka allows in a topic name.
    static func isTopicNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"): true
        default: false
        }
    }

    /// This configuration with ``maxMessageBytes`` raised, where needed, for records that hold up
    /// to `bytes` bytes of a request as sent, with 1 MiB for the rest of the record.
    public func fitting(recordsOf bytes: Int) -> KafkaLogConfiguration {
        var configuration = self
        configuration.maxMessageBytes = max(maxMessageBytes, min(bytes, 1 << 30) + (1 << 20))
        return configuration
    }

    /// The Kafka topic that holds `topic`.
    public func topicName(_ topic: LogTopic) -> String {
        guard let eventsTopic else { return topicPrefix + topic.name }
        return topic == .events ? eventsTopic : "\(eventsTopic).\(topic.name)"
    }

    /// librdkafka properties of the producer: acks=all, idempotence, small linger, compression.
    public var producerConfiguration: [String: String] {
        var properties: [String: String] = [
            "bootstrap.servers": bootstrapServers,
            "client.id": clientID,
            "acks": "all",
            "enable.idempotence": "true",
            "linger.ms": String(lingerMilliseconds),
            "compression.type": compression,
            "message.timeout.ms": String(deliveryTimeoutMilliseconds),
            "queue.buffering.max.messages": String(queueMaxMessages),
            "queue.buffering.max.kbytes": "1048576",
            "batch.num.messages": "10000",
            "socket.keepalive.enable": "true",
            "message.max.bytes": String(maxMessageBytes),
            "statistics.interval.ms": Self.statisticsInterval,
        ]
        properties.merge(commonProperties) { _, new in new }
        properties.merge(producerProperties) { _, new in new }
        return properties
    }

    /// librdkafka properties of a consumer in `group` (or a group-less reader): manual commits,
    /// from the earliest record when the group has no committed offset. `partitionEnds` turns on
    /// end-of-partition events (a reader's, so that `log dump` knows where each partition ends).
    public func consumerConfiguration(group: String?, partitionEnds: Bool = false) -> [String: String] {
        let session = sessionTimeoutMilliseconds
        var properties: [String: String] = [
            "bootstrap.servers": bootstrapServers,
            "client.id": clientID,
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": "false",
            "session.timeout.ms": String(session),
            "heartbeat.interval.ms": String(max(100, session / 6)),
            // 10 min, not librdkafka's 5: taking partitions, the lake writer warms up each from the
            // log (the open hours, for the rollups) without polling the group, and its member was
            // evicted, again at every try, when that took longer (a probe: 12 partitions of 61,000
            // records on a slow broker, before its warm-up read only its own partitions; 6-18 s
            // since). Not more: it is also how long a rebalance waits for a member that does not
            // poll. Ownership is checked before each batch is written anyway.
            "max.poll.interval.ms": String(max(600_000, session)),
            "partition.assignment.strategy": assignor,
            "socket.keepalive.enable": "true",
            "statistics.interval.ms": Self.statisticsInterval,
        ]
        if let group { properties["group.id"] = groupPrefix + group }
        if partitionEnds { properties["enable.partition.eof"] = "true" }
        properties.merge(commonProperties) { _, new in new }
        properties.merge(consumerProperties) { _, new in new }
        return properties
    }

    /// librdkafka's statistics every 5 s, for the producer and the consumers, to find brokers that
    /// answer nothing (RdKafka's BrokerSilence): a frozen broker is reported after about 15 s instead
    /// of librdkafka's 70 (docs/kafka.md, "Readiness").
    static let statisticsInterval = "5000"

    /// Properties of the admin client.
    public var adminConfiguration: [String: String] {
        var properties = ["bootstrap.servers": bootstrapServers, "client.id": clientID + "-admin"]
        properties.merge(commonProperties) { _, new in new }
        // Nothing polls the admin client's main queue: statistics would pile up there.
        properties["statistics.interval.ms"] = "0"
        return properties
    }

    /// `%XX` decoded; a `+` is a plus, as in any URL's query (a form's `+` for a space is not a
    /// URL's): a password or path with a `+` was changed (`sasl+ssl` became `sasl ssl`, a properties
    /// file `a+b.properties` was looked for as `a b.properties`; an outside review). As the write
    /// key of a beacon's query reads it.
    static func percentDecode<S: StringProtocol>(_ text: S) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> String {
        String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
