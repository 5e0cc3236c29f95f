/// The `event_source` values counted under their own label (`playhead_events_accepted_total` and
/// the content metrics' breakdown); any other value is counted as `other`, so that clients cannot
/// make series without bound. The built-in list, plus the values an operator adds with
/// `--event-source` for a fleet that names its apps its own way (docs/metrics.md).
public struct EventSourceLabels: Sendable, Equatable {
    /// The values every process knows.
    public static let builtIn = [
        "web_app", "ios_app", "android_app", "tv_app", "smart_tv", "web", "ios", "android", "tvos",
        "roku", "fire_tv", "chromecast", "apple_tv", "android_tv", "desktop_app", "console",
    ]
    /// The most values in all, built-in ones included: each makes a series per event type and
    /// content type on the edge (at 0 from the start), and may make breakdown series.
    public static let maxCount = 64
    /// The longest value, in UTF-8 bytes (as the content metrics' other breakdown labels).
    public static let maxValueBytes = 64
    /// The built-in values alone.
    public static let standard = EventSourceLabels(names: builtIn)

    /// The values, built-in ones first, then the added ones in the order given.
    public let names: [String]
    /// What the decoder matches an event's bytes against; ``contains(_:)`` too. Bytes, not Swift's
    /// `String` equality, which compares by canonical equivalence: an event's "café" written in
    /// NFD was `other` in `playhead_events_accepted_total` (the decoder compares bytes) and the
    /// configured NFC label in the content metrics, and `--event-source` took the two spellings
    /// for one (an outside review).
    let table: Table

    private init(names: [String]) {
        self.names = names
        table = Table(names)
    }

    public static func == (a: Self, b: Self) -> Bool { a.names == b.names }

    /// The built-in values and `added` (a value already known is taken once).
    /// - Throws: ``Invalid`` for a value that cannot be a label value, `other`, or one past
    ///   ``maxCount`` values in all.
    public init(adding added: [String]) throws(Invalid) {
        var names = Self.builtIn
        for value in added where !names.contains(where: { $0.utf8.elementsEqual(value.utf8) }) {
            if let problem = Self.problem(with: value) { throw Invalid(message: "'\(value)' \(problem)") }
            // Two spellings of one text (Unicode normalization: "é" as one code point or as "e"
            // and an accent) are two values in events and in the lake, but one series to the
            // Prometheus registry, which compares label values as Swift strings: their counts were
            // summed under the first (an outside review, 2026-12-07).
            if let same = names.first(where: { $0 == value }) {
                throw Invalid(message: "'\(value)' is another spelling of '\(same)' (the same text in another Unicode normalization form): Prometheus keeps one series for both; list one")
            }
            names.append(value)
        }
        guard names.count <= Self.maxCount else {
            throw Invalid(
                message: "\(names.count - Self.builtIn.count) values added to the \(Self.builtIn.count) built-in ones make \(names.count); "
                    + "at most \(Self.maxCount) in all (each makes a series per event type and content type)"
            )
        }
        self.init(names: names)
    }

    /// Why `value` cannot be added, or nil.
    static func problem(with value: String) -> String? {
        if value.isEmpty { return "is empty" }
        if value == "other" { return "is the label of every value not listed, so it cannot be one of them" }
        if value.utf8.count > maxValueBytes { return "is \(value.utf8.count) bytes long; at most \(maxValueBytes)" }
        if value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            return "holds a control character, a quote or a backslash"
        }
        return nil
    }

    /// A value that cannot be added.
    public struct Invalid: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Whether `value` is counted under its own label.
    public func contains(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { bytes in
            bytes.isEmpty ? false : table.index(of: bytes.baseAddress!, count: bytes.count) != nil
        }
    }

    /// The label of the value at `index` in ``names``; `other` for an index past them.
    public func label(at index: Int) -> String { index < names.count ? names[index] : "other" }

    /// The names' UTF-8 bytes one after another in memory of its own, which the decoder reads for
    /// every event without copying or retaining arrays (a struct of arrays there cost the decoder
    /// about 2 % of its events/s, `scripts/bench-events` side by side). Never written after `init`.
    final class Table: @unchecked Sendable {
        private let bytes: UnsafeMutablePointer<UInt8>
        /// Name k ends at `ends[k]` in ``bytes``.
        private let ends: UnsafeMutablePointer<Int>
        private let count: Int

        init(_ names: [String]) {
            let all = names.flatMap(\.utf8)
            bytes = .allocate(capacity: max(1, all.count))
            bytes.initialize(from: all, count: all.count)
            count = names.count
            ends = .allocate(capacity: max(1, names.count))
            var end = 0
            for (k, name) in names.enumerated() {
                end += name.utf8.count
                (ends + k).initialize(to: end)
            }
        }

        deinit {
            bytes.deallocate()
            ends.deallocate()
        }

        /// The index of the name whose UTF-8 bytes are the `n` bytes at `p`.
        func index(of p: UnsafePointer<UInt8>, count n: Int) -> Int? {
            var start = 0
            for k in 0..<count {
                let end = ends[k]
                if end - start == n && bytesEqual(p, bytes + start, n) { return k }
                start = end
            }
            return nil
        }
    }
}
