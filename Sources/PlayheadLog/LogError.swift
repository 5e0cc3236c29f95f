/// An error from a log backend (embedded or Kafka).
///
/// ``code`` is a small, bounded set: it is safe as a metric label and decides the HTTP answer at the
/// edge (``isRetriable`` errors become 503 with `Retry-After`).
public struct LogError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable { case full, unavailable, closed, io, corrupt, tooLarge, invalidArgument, overloaded }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// No room: the disk is full, or the producer's local queue is full. Retry later.
        public static let full = Code(.full)
        /// The backend cannot be reached (a broker is down). Retry later.
        public static let unavailable = Code(.unavailable)
        /// The log is shutting down or was closed.
        public static let closed = Code(.closed)
        /// An I/O error other than a full disk.
        public static let io = Code(.io)
        /// Stored data failed its checksum or framing.
        public static let corrupt = Code(.corrupt)
        /// A record or batch is larger than the backend accepts.
        public static let tooLarge = Code(.tooLarge)
        /// A bad argument or configuration (an unknown topic, a bad URL).
        public static let invalidArgument = Code(.invalidArgument)
        /// The producer's queue is over its byte limit (the disk cannot keep up). Retry later.
        public static let overloaded = Code(.overloaded)

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    /// How long a client should wait before retrying, when the error is retriable.
    public var retryAfterSeconds: Int?
    public var file: String
    public var line: Int
    /// What the edge may tell a client instead of ``message``, when the message names the server's
    /// own files (an I/O error of the embedded log: "cannot write /var/lib/…"); nil: the message.
    public var clientMessage: String?

    public init(
        code: Code,
        message: String,
        retryAfterSeconds: Int? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
        self.file = file
        self.line = line
    }

    /// Whether a client may retry the same request later and expect success.
    public var isRetriable: Bool {
        code == .full || code == .unavailable || code == .closed || code == .overloaded
    }

    public var description: String { "LogError(\(code)): \(message)" }

    public static func corrupt(_ message: String, file: String = #fileID, line: Int = #line) -> LogError {
        LogError(code: .corrupt, message: message, file: file, line: line)
    }
}
