import Logging
import NIOConcurrencyHelpers

/// Log lines captured (to see what a component said: its retries, its warnings).
public final class CapturedLogs: @unchecked Sendable {
    public init() {}
    private let lines = NIOLockedValueBox<[String]>([])
    public func append(_ line: String) { lines.withLockedValue { $0.append(line) } }
    public var all: [String] { lines.withLockedValue { $0 } }
    public func count(containing text: String) -> Int { all.filter { $0.contains(text) }.count }
}

public struct CapturingLogHandler: LogHandler {
    public let captured: CapturedLogs
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .debug
    public init(captured: CapturedLogs) { self.captured = captured }
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    public func log(event: LogEvent) {
        let meta = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        captured.append("\(event.level) \(event.message) \(meta)")
    }
}
