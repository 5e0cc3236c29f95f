/// A minimal reader of the Prometheus text exposition format, for the live page's figures: it reads
/// what ``PlayheadTelemetry/render(_:)`` (swift-prometheus) writes, not every exposition in the wild.
public struct ExpositionSamples: Sendable {
    public struct Sample: Sendable, Equatable {
        public var labels: [String: String]
        public var value: Double
    }

    /// Samples by sample name (`…_bucket`, `…_count` and `…_sum` for histograms).
    public private(set) var samples: [String: [Sample]] = [:]

    /// Reads every sample of `text`, or, with `names`, only the samples of those names (sample
    /// names: `…_bucket` for a histogram's buckets). The live page reads a dozen series once a
    /// second from an exposition of thousands (the breakdown's); the others are skipped without
    /// reading their labels.
    public init(_ text: [UInt8], names: Set<String>? = nil) {
        let wanted = names.map { Set($0.map { ArraySlice(Array($0.utf8)) }) }
        var lineStart = 0
        while lineStart < text.count {
            var lineEnd = lineStart
            while lineEnd < text.count && text[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            if lineEnd > lineStart && text[lineStart] != UInt8(ascii: "#") {
                let line = text[lineStart..<lineEnd]
                let nameEnd = Self.nameEnd(line)
                if wanted?.contains(line[lineStart..<nameEnd]) ?? true {
                    parseLine(line, nameEnd: nameEnd)
                }
            }
            lineStart = lineEnd + 1
        }
    }

    /// Where a sample line's name ends: at its labels' `{` or at the space before its value.
    private static func nameEnd(_ line: ArraySlice<UInt8>) -> Int {
        var index = line.startIndex
        while index < line.endIndex && line[index] != UInt8(ascii: "{") && line[index] != UInt8(ascii: " ") { index += 1 }
        return index
    }

    private mutating func parseLine(_ line: ArraySlice<UInt8>, nameEnd: Int) {
        var index = nameEnd
        let name = String(decoding: line[line.startIndex..<index], as: UTF8.self)
        var labels: [String: String] = [:]
        if index < line.endIndex && line[index] == UInt8(ascii: "{") {
            index += 1
            while index < line.endIndex && line[index] != UInt8(ascii: "}") {
                let keyStart = index
                while index < line.endIndex && line[index] != UInt8(ascii: "=") { index += 1 }
                let key = String(decoding: line[keyStart..<index], as: UTF8.self)
                index += 2  // ="
                var value: [UInt8] = []
                while index < line.endIndex && line[index] != UInt8(ascii: "\"") {
                    if line[index] == UInt8(ascii: "\\") && index + 1 < line.endIndex {
                        index += 1
                        value.append(line[index] == UInt8(ascii: "n") ? UInt8(ascii: "\n") : line[index])
                    } else {
                        value.append(line[index])
                    }
                    index += 1
                }
                index += 1  // closing quote
                if index < line.endIndex && line[index] == UInt8(ascii: ",") { index += 1 }
                labels[key] = String(decoding: value, as: UTF8.self)
            }
            index += 1  // }
        }
        let rest = String(decoding: line[min(index, line.endIndex)...], as: UTF8.self)
        guard let token = rest.split(separator: " ").first, let value = Self.parseValue(token) else { return }
        samples[name, default: []].append(Sample(labels: labels, value: value))
    }

    static func parseValue(_ token: Substring) -> Double? {
        switch token {
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(token)
        }
    }

    /// The sum of every sample named `name` whose labels include `matching`; `nil` when there is none.
    public func sum(_ name: String, matching: [String: String] = [:]) -> Double? {
        guard let list = samples[name] else { return nil }
        var total = 0.0
        var found = false
        for sample in list where matching.allSatisfy({ sample.labels[$0.key] == $0.value }) {
            total += sample.value
            found = true
        }
        return found ? total : nil
    }

    /// The largest sample named `name`; `nil` when there is none.
    public func max(_ name: String) -> Double? {
        samples[name]?.map(\.value).max()
    }

    /// A histogram's cumulative bucket counts summed over every label set matching `matching`,
    /// sorted by upper bound (the last is `+Inf`).
    public func histogram(_ name: String, matching: [String: String] = [:]) -> [(upperBound: Double, count: Double)] {
        guard let list = samples[name + "_bucket"] else { return [] }
        var byBound: [Double: Double] = [:]
        for sample in list where matching.allSatisfy({ sample.labels[$0.key] == $0.value }) {
            guard let le = sample.labels["le"], let bound = Self.parseValue(Substring(le)) else { continue }
            byBound[bound, default: 0] += sample.value
        }
        return byBound.sorted { $0.key < $1.key }.map { (upperBound: $0.key, count: $0.value) }
    }

    /// The `q` quantile of the observations between two cumulative bucket snapshots (the same
    /// interpolation as PromQL's `histogram_quantile`); `nil` when there was no observation.
    public static func quantile(
        _ q: Double,
        from earlier: [(upperBound: Double, count: Double)],
        to later: [(upperBound: Double, count: Double)]
    ) -> Double? {
        var before: [Double: Double] = [:]
        for bucket in earlier { before[bucket.upperBound] = bucket.count }
        let buckets = later.map { (upperBound: $0.upperBound, count: Swift.max(0, $0.count - (before[$0.upperBound] ?? 0))) }
        guard let total = buckets.last?.count, total > 0 else { return nil }
        let rank = q * total
        var lowerBound = 0.0
        var lowerCount = 0.0
        for bucket in buckets {
            if bucket.count >= rank {
                if bucket.upperBound == .infinity { return lowerBound }
                let inBucket = bucket.count - lowerCount
                if inBucket <= 0 { return bucket.upperBound }
                return lowerBound + (bucket.upperBound - lowerBound) * (rank - lowerCount) / inBucket
            }
            lowerBound = bucket.upperBound
            lowerCount = bucket.count
        }
        return lowerBound
    }
}
