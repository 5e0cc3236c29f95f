// parquet-bench: writes N realistic playback events, already in memory as columns, to a zstd
// Parquet file with the Parquet module, and prints the figures as JSON.
//
//   parquet-bench [--rows 1000000] [--runs 3] [--level 3] [--out /tmp/parquet-bench.parquet]
//
// scripts/bench-parquet runs it and compares with pyarrow on the same data.
import Foundation
import Parquet

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A string column as contiguous UTF-8 with end offsets (how Arrow holds it too).
struct StringColumn {
    var bytes: [UInt8] = []
    var ends: [Int] = []
    var nulls: [Bool]? = nil

    mutating func append(_ s: String) {
        bytes.append(contentsOf: s.utf8)
        ends.append(bytes.count)
        nulls?.append(false)
    }

    mutating func appendNull() {
        ends.append(bytes.count)
        nulls?.append(true)
    }
}

struct Events {
    var eventID = StringColumn()
    var eventType = StringColumn()
    var timestamp: [Int64] = []
    var receivedAt: [Int64] = []
    var userID = StringColumn()
    var deviceID = StringColumn()
    var sessionID = StringColumn(nulls: [])
    var ip = StringColumn()
    var contentID = StringColumn()
    var contentType = StringColumn()
    var title = StringColumn()
    var genre = StringColumn()
    var genreCounts: [Int] = []
    var duration: [Int64] = []
    var language = StringColumn()
    var currentTimestamp: [Double] = []
    var schemaVersion = StringColumn()
    var eventSource = StringColumn()

    static let genres = [
        "action", "adventure", "animation", "comedy", "crime", "documentary", "drama", "family", "fantasy", "history",
        "horror", "music", "mystery", "romance", "sci-fi", "sport", "thriller", "war", "western", "kids",
    ]
    static let languages = ["en", "es", "fr", "de", "it", "pt", "ja", "ko", "hi", "ar", "zh", "nl"]
    static let sources = ["web_app", "ios_app", "android_app", "smart_tv"]
    static let words = [
        "The", "Last", "Night", "Robot", "City", "Dark", "Star", "River", "Shadow", "Empire", "Secret", "Garden",
        "Lost", "Blue", "Fire", "Ocean", "King", "Queen", "Road", "Home", "Winter", "Summer", "Dream", "Wild",
    ]

    init(rows: Int, seed: UInt64) {
        var rng = SplitMix(state: seed)
        let contents = 5000
        var titles: [String] = []
        var contentGenres: [[String]] = []
        var durations: [Int64] = []
        var contentLanguages: [String] = []
        var contentTypes: [String] = []
        for c in 0..<contents {
            let words = (0..<Int.random(in: 1...4, using: &rng)).map { _ in Self.words.randomElement(using: &rng)! }
            titles.append(words.joined(separator: " ") + (c % 7 == 0 ? ": Season \(c % 9 + 1)" : ""))
            contentGenres.append(Array(Set((0..<Int.random(in: 1...3, using: &rng)).map { _ in Self.genres.randomElement(using: &rng)! })).sorted())
            let type = c % 10 < 5 ? "episode" : (c % 10 < 8 ? "movie" : "ad")
            contentTypes.append(type)
            durations.append(type == "ad" ? Int64.random(in: 15...60, using: &rng) : type == "episode" ? Int64.random(in: 1200...3600, using: &rng) : Int64.random(in: 4800...10800, using: &rng))
            contentLanguages.append(Self.languages[min(Self.languages.count - 1, Int(Double.random(in: 0..<1, using: &rng) * Double.random(in: 0..<1, using: &rng) * 12))])
        }
        let hourStart: Int64 = 1_742_911_200_000_000  // 2025-03-25T14:00:00Z
        var receivedAt = hourStart
        for i in 0..<rows {
            var hex = [UInt8](repeating: 0, count: 36)
            let a = rng.next(), b = rng.next()
            let digits = Array("0123456789abcdef".utf8)
            var k = 0
            for j in 0..<36 {
                if j == 8 || j == 13 || j == 18 || j == 23 {
                    hex[j] = UInt8(ascii: "-")
                    continue
                }
                let word = k < 16 ? a : b
                hex[j] = digits[Int((word >> UInt64((k % 16) * 4)) & 0xF)]
                k += 1
            }
            hex[14] = UInt8(ascii: "4")
            eventID.bytes.append(contentsOf: hex)
            eventID.ends.append(eventID.bytes.count)
            let roll = Int.random(in: 0..<100, using: &rng)
            eventType.append(roll < 45 ? "play" : roll < 85 ? "pause" : "stop")
            receivedAt += Int64.random(in: 0...7200, using: &rng)
            self.receivedAt.append(receivedAt)
            timestamp.append(receivedAt - Int64.random(in: 20_000...2_000_000, using: &rng))
            let user = Int(Double.random(in: 0..<1, using: &rng) * Double.random(in: 0..<1, using: &rng) * 100_000)
            userID.append("user_\(user)")
            deviceID.append("\(Self.sources[user % 4])_\(String(UInt32(truncatingIfNeeded: user &* 2_654_435_761), radix: 16))")
            if i % 20 == 7 {
                sessionID.appendNull()
            } else {
                sessionID.append("sess_\(String(UInt32(truncatingIfNeeded: (user &* 31 &+ i / 5000) &* 2_246_822_519), radix: 16))")
            }
            ip.append("\(10 + user % 200).\(user / 200 % 256).\(user % 97).\(user % 251)")
            let content = Int(Double.random(in: 0..<1, using: &rng) * Double.random(in: 0..<1, using: &rng) * Double(contents))
            contentID.append("media_\(content)")
            contentType.append(contentTypes[content])
            title.append(titles[content])
            for g in contentGenres[content] { genre.append(g) }
            genreCounts.append(contentGenres[content].count)
            duration.append(durations[content])
            language.append(contentLanguages[content])
            currentTimestamp.append(Double(Int64.random(in: 0...(durations[content] * 10), using: &rng)) / 10)
            schemaVersion.append("1.0")
            eventSource.append(Self.sources[user % 4])
        }
    }
}

let schema = ParquetSchema([
    .string("event_id"), .string("event_type"), .timestamp("timestamp"), .timestamp("received_at"), .string("user_id"),
    .string("device_id"), .string("session_id", optional: true), .string("ip_address"), .string("content_id"),
    .string("content_type"), .string("title"), .stringList("genre"), .int64("duration_seconds"), .string("language"),
    .double("current_timestamp"), .string("schema_version"), .string("event_source"),
])

/// `--per-value`: one append call per value (as a row-by-row producer would) instead of the bulk calls.
nonisolated(unsafe) var perValue = false

func appendInts(_ values: [Int64], _ writer: ParquetColumnWriter) throws {
    if perValue {
        for v in values { try writer.append(v) }
    } else {
        try writer.append(contentsOf: values)
    }
}

func appendStrings(_ column: StringColumn, _ writer: ParquetColumnWriter) throws {
    if column.nulls == nil && !perValue {
        // Columnar bulk append: Arrow-style bytes + offsets, one copy.
        let offsets = [0] + column.ends
        try column.bytes.withUnsafeBytes { raw in
            try offsets.withUnsafeBufferPointer { try writer.append(contentsOf: raw, offsets: $0) }
        }
        return
    }
    try column.bytes.withUnsafeBytes { raw in
        var start = 0
        for (i, end) in column.ends.enumerated() {
            if let nulls = column.nulls, nulls[i] {
                try writer.appendNull()
            } else {
                try writer.append(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
            }
            start = end
        }
    }
}

func write(_ events: Events, rows: Int, level: Int, path: String) throws -> ParquetFileSummary {
    let writer = try ParquetWriter(
        schema: schema, configuration: ParquetWriterConfiguration(compression: .zstd(level: level)),
        output: try ParquetFileOutput(path: path))
    try appendStrings(events.eventID, writer.column(0))
    try appendStrings(events.eventType, writer.column(1))
    try appendInts(events.timestamp, writer.column(2))
    try appendInts(events.receivedAt, writer.column(3))
    try appendStrings(events.userID, writer.column(4))
    try appendStrings(events.deviceID, writer.column(5))
    try appendStrings(events.sessionID, writer.column(6))
    try appendStrings(events.ip, writer.column(7))
    try appendStrings(events.contentID, writer.column(8))
    try appendStrings(events.contentType, writer.column(9))
    try appendStrings(events.title, writer.column(10))
    let genre = writer.column(11)
    try events.genre.bytes.withUnsafeBytes { raw in
        var element = 0
        var start = 0
        for count in events.genreCounts {
            try genre.appendList(count: count)
            for _ in 0..<count {
                let end = events.genre.ends[element]
                try genre.append(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
                start = end
                element += 1
            }
        }
    }
    try appendInts(events.duration, writer.column(12))
    try appendStrings(events.language, writer.column(13))
    if perValue {
        for v in events.currentTimestamp { try writer.column(14).append(v) }
    } else {
        try writer.column(14).append(contentsOf: events.currentTimestamp)
    }
    try appendStrings(events.schemaVersion, writer.column(15))
    try appendStrings(events.eventSource, writer.column(16))
    try writer.endRows(rows)
    return try writer.close()
}

func cpuSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

var rows = 1_000_000
var runs = 3
var levels = [3]
var path = "/tmp/parquet-bench.parquet"
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--rows": rows = Int(arguments.next()!)!
    case "--runs": runs = Int(arguments.next()!)!
    case "--levels": levels = arguments.next()!.split(separator: ",").map { Int($0)! }
    case "--out": path = arguments.next()!
    case "--per-value": perValue = true
    default:
        FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
        exit(2)
    }
}

let generationStart = ContinuousClock.now
let events = Events(rows: rows, seed: 42)
let generation = seconds(ContinuousClock.now - generationStart)
var results: [String] = []
for level in levels {
    var wall: [Double] = []
    var cpu: [Double] = []
    var summary: ParquetFileSummary?
    let file = levels.count == 1 ? path : path.replacingOccurrences(of: ".parquet", with: "-zstd\(level).parquet")
    for _ in 0..<runs {
        let start = ContinuousClock.now
        let cpuStart = cpuSeconds()
        summary = try write(events, rows: rows, level: level, path: file)
        cpu.append(cpuSeconds() - cpuStart)
        wall.append(seconds(ContinuousClock.now - start))
    }
    let columns = summary!.columns.map {
        "{\"name\": \"\($0.name)\", \"compressed\": \($0.compressedBytes), \"uncompressed\": \($0.uncompressedBytes), \"encodings\": [\($0.encodings.map { "\"\($0)\"" }.joined(separator: ", "))]}"
    }
    results.append("""
        {"level": \(level), "path": "\(file)", "bytes": \(summary!.bytes), "row_groups": \(summary!.rowGroups), \
        "wall_seconds": [\(wall.map { String($0) }.joined(separator: ", "))], \
        "cpu_seconds": [\(cpu.map { String($0) }.joined(separator: ", "))], \
        "columns": [\(columns.joined(separator: ", "))]}
        """)
}
print("{\"rows\": \(rows), \"generation_seconds\": \(generation), \"results\": [\(results.joined(separator: ", "))]}")
