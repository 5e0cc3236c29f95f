import Dispatch
import PlayheadEvents

/// One object of a batch, ready to be put in the lake.
struct LakeFile: Sendable {
    var path: String
    var bytes: [UInt8]
    var dataset: String
    var rows: Int
}

/// What one closed batch becomes.
struct EncodedBatch: Sendable {
    var files: [LakeFile] = []
    var rows = 0
    var duplicates = 0
    /// Records whose value is not a record of the dataset (on Kafka, a message another producer
    /// wrote to the topic): each is one of ``files``, its bytes as they are, at ``LakePaths/damagedRecord``.
    var unreadable: [LakeFile] { files.filter { $0.dataset == LakeFile.damaged } }
}

extension LakeFile {
    /// The `dataset` of a record kept as it is because it could not be read.
    static let damaged = "damaged"
}

/// Turns a batch of log records into lake files: drops duplicates, splits by `received_at` hour,
/// sorts, encodes Parquet, and updates the rollups. Pure CPU work: run it on a thread pool.
enum LakeBatchEncoder {
    /// The smallest hour of a batch that is split into ``encode``'s `parts` files.
    static let splitRows = 200_000

    /// - Parameter dataPath: the path of the data file of an hour (by its start), within `kind`'s dataset.
    /// - Parameter rollupPath: the path of the rollup file of an hour.
    /// - Parameter damagedPath: where a record that cannot be read is kept, by its offset.
    /// - Parameter parts: an hour of at least `splitRows` events is written as this many files,
    ///   encoded at once on as many threads (named `…-<k>.parquet`, deterministic from the batch).
    static func encode(
        kind: DatasetKind, records: RecordBuffer, dedup: inout DedupWindow, rollups: RollupAggregator?,
        configuration: LakeWriterConfiguration, parts: Int = 1, splitRows: Int = Self.splitRows,
        dataPath: (Int64) -> String, rollupPath: (Int64) -> String, damagedPath: (Int64) -> String
    ) throws -> EncodedBatch {
        var batch = EncodedBatch()
        let offsets = records.offsets
        try records.withRecords { views in
            var hours: [Int64: [Int]] = [:]
            var eventHours: [Int64: [EventsTable.SortKey]] = [:]
            let deduplicates = dedup.capacity > 0
            // Events are read a chunk at a time: first what each record's dedup slot and rollup
            // session are keyed by, then the records in order, each starting to load the slots of
            // the record `LookAhead.distance` places on (the tables are large and read at random).
            var ahead = LookAhead()
            for (index, view) in views.enumerated() {
                switch kind {
                case .events:
                    if index == ahead.end { ahead.fill(views, from: index) }
                    let next = index + LookAhead.distance
                    if next < ahead.end, let facts = ahead.facts[next - ahead.start] {
                        if deduplicates { dedup.prefetch(facts.eventID) }
                        rollups?.prefetch(facts.rollup)
                    }
                    guard let facts = ahead.facts[index - ahead.start] else {
                        batch.files.append(LakeFile(path: damagedPath(offsets[index]), bytes: Array(view), dataset: LakeFile.damaged, rows: 0))
                        continue
                    }
                    guard !deduplicates || dedup.observe(facts.eventID) else {
                        batch.duplicates += 1
                        continue
                    }
                    eventHours[LakePaths.hourStart(facts.rollup.receivedMicros), default: []]
                        .append(EventsTable.sortKey(facts.rollup, index: index))
                    rollups?.add(facts.rollup, offset: offsets[index]) {
                        // Only for a content's first event in an hour.
                        let record = try? EventRecordView(view)
                        return (record?.contentID ?? "", record?.contentType ?? "", record?.title ?? "")
                    }
                case .rejected:
                    guard let record = try? RejectedRecordView(view) else {
                        batch.files.append(LakeFile(path: damagedPath(offsets[index]), bytes: Array(view), dataset: LakeFile.damaged, rows: 0))
                        continue
                    }
                    hours[LakePaths.hourStart(record.receivedAtMicros), default: []].append(index)
                }
            }
            for (hour, keys) in eventHours.sorted(by: { $0.key < $1.key }) {
                batch.files += try encodeHour(
                    views, keys: keys, configuration: configuration, parts: parts, splitRows: splitRows, path: dataPath(hour)
                )
                batch.rows += keys.count
            }
            for (hour, indexes) in hours.sorted(by: { $0.key < $1.key }) {
                let bytes = try RejectedTable.encode(views, rows: indexes, configuration: configuration)
                batch.files.append(LakeFile(path: dataPath(hour), bytes: bytes, dataset: kind.name, rows: indexes.count))
                batch.rows += indexes.count
            }
        }
        if let rollups {
            batch.files += try rollupFiles(rollups, configuration: configuration, path: rollupPath)
        }
        return batch
    }

    /// The events of one hour (`keys` gives each row's sort key and index in `views`), sorted, as
    /// one file at `path`, or as `parts` files encoded at once when there are `splitRows` or more.
    static func encodeHour(
        _ views: [UnsafeRawBufferPointer], keys: [EventsTable.SortKey], configuration: LakeWriterConfiguration,
        parts: Int, splitRows: Int, path: String
    ) throws -> [LakeFile] {
        let order = EventsTable.sortOrder(keys, views: views)
        let count = keys.count >= splitRows ? max(1, parts) : 1
        if count == 1 {
            let bytes = try EventsTable.encode(views, rows: order, configuration: configuration)
            return [LakeFile(path: path, bytes: bytes, dataset: DatasetKind.events.name, rows: keys.count)]
        }
        // Consecutive slices of the sorted rows, encoded in parallel (this thread and GCD's workers:
        // this runs on a thread pool, never on the cooperative pool).
        let size = (order.count + count - 1) / count
        let slices = (0..<count).map { Array(order[min($0 * size, order.count)..<min(($0 + 1) * size, order.count)]) }
        var results = [Result<[UInt8], any Error>?](repeating: nil, count: count)
        nonisolated(unsafe) let sharedViews = views
        results.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            DispatchQueue.concurrentPerform(iterations: count) { k in
                out[k] = Result { try EventsTable.encode(sharedViews, rows: slices[k], configuration: configuration) }
            }
        }
        return try (0..<count).map { k in
            LakeFile(path: LakePaths.part(path, k + 1), bytes: try results[k]!.get(), dataset: DatasetKind.events.name, rows: slices[k].count)
        }
    }

    /// The rollup files of the hours changed since the last call, one per hour at `path(hour)`.
    static func rollupFiles(
        _ rollups: RollupAggregator, configuration: LakeWriterConfiguration, path: (Int64) -> String
    ) throws -> [LakeFile] {
        try rollups.takeChanges().map { hour, rows in
            LakeFile(path: path(hour), bytes: try RollupsTable.encode(rows, configuration: configuration), dataset: "rollups", rows: rows.count)
        }
    }
}

/// What a chunk of event records is keyed by in the dedup window (the `event_id`'s hash) and the
/// rollups, read ahead of the records themselves so that their table slots can be loaded early.
struct LookAhead {
    /// Records read per chunk.
    static let chunk = 4_096
    /// How many records ahead the slots are loaded.
    static let distance = 8

    private(set) var start = 0
    private(set) var end = 0
    /// Per record of the chunk; nil for one that cannot be read.
    private(set) var facts: [(eventID: UInt64, rollup: RollupFacts)?] = []

    /// Reads the chunk of `views` that starts at `first`.
    mutating func fill(_ views: [UnsafeRawBufferPointer], from first: Int) {
        start = first
        end = min(views.count, first + Self.chunk)
        facts.removeAll(keepingCapacity: true)
        for index in start..<end {
            facts.append((try? EventRecordView(views[index])).map(Self.keys))
        }
    }

    /// What `record` is keyed by in the dedup window and the rollups.
    static func keys(_ record: EventRecordView) -> (eventID: UInt64, rollup: RollupFacts) {
        (hash64(record.eventIDBytes), RollupFacts(record))
    }
}

/// The lake's paths (DESIGN.md: Hive-style UTC `date=` and `hour=` partitions).
enum LakePaths {
    static func hourStart(_ micros: Int64) -> Int64 {
        let hour = RollupAggregator.hourMicros
        return micros - ((micros % hour) + hour) % hour
    }

    /// `date=YYYY-MM-DD/hour=HH` of an hour's start.
    static func partition(hourStart: Int64) -> String {
        let hours = hourStart / RollupAggregator.hourMicros
        let days = hours >= 0 ? hours / 24 : (hours - 23) / 24
        let (year, month, day) = civil(fromDays: days)
        let hour = hours - days * 24
        return "date=\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))/hour=\(pad(hour, 2))"
    }

    /// The start of the hour whose `date=YYYY-MM-DD/hour=HH` folder `path` is in; nil for a path
    /// outside such a folder.
    static func hourStart(ofPartitionIn path: String) -> Int64? {
        guard let date = path.range(of: "date="), let hour = path.range(of: "/hour=", range: date.upperBound..<path.endIndex) else {
            return nil
        }
        let day = path[date.upperBound..<hour.lowerBound]
        let hh = path[hour.upperBound...].prefix(2)
        return EventTimestamp.parseMicros("\(day)T\(hh):00:00Z")
    }

    /// `<dataset>/date=…/hour=…/p<partition>-<from>-<to>.parquet`: named by the log range it holds,
    /// so that a redo writes the same names.
    static func dataFile(dataset: String, hourStart: Int64, partition: Int32, from: Int64, to: Int64) -> String {
        "\(dataset)/\(self.partition(hourStart: hourStart))/\(batchFileName(partition: partition, from: from, to: to)).parquet"
    }

    /// `_playhead/damaged/<dataset>/p<partition>-<offset>.record`: a record of the log kept as it is,
    /// because it could not be read (a damaged one of the embedded log, or one whose value is not a
    /// record of the dataset).
    static func damagedRecord(dataset: String, partition: Int32, offset: Int64) -> String {
        "_playhead/damaged/\(dataset)/p\(partition)-\(offset).record"
    }

    /// `<dataset>/date=…/hour=…/import-<stem>-<sequence>.parquet`: the files of `playhead import`,
    /// named by the imported file and the run (`stem` is `<tag>-<run>`), so that importing the same
    /// file again finds them (`import-<tag>-…`) and removes them once it is whole.
    static func importFile(dataset: String, hourStart: Int64, tag stem: String, sequence: Int) -> String {
        "\(dataset)/\(self.partition(hourStart: hourStart))/import-\(stem)-\(pad(Int64(sequence), 6)).parquet"
    }

    /// `…/name-<k>.parquet` for `…/name.parquet`: part `k` of a file encoded as several.
    static func part(_ path: String, _ k: Int) -> String {
        guard path.hasSuffix(".parquet") else { return "\(path)-\(k)" }
        return "\(path.dropLast(".parquet".count))-\(k).parquet"
    }

    /// `rollups/date=…/hour=…/import-<stem>.parquet`: the rollups of one import of a file
    /// (`stem` is `<tag>-<run>`).
    static func importRollupFile(hourStart: Int64, tag stem: String) -> String {
        "rollups/\(self.partition(hourStart: hourStart))/import-\(stem).parquet"
    }

    /// `p<partition>-<from>-`, the start of the names of a partition's batch files that begin at
    /// `from` (offsets padded to 20 digits), and with `to`, the name of a batch's file without its
    /// part and extension.
    static func batchFileName(partition: Int32, from: Int64, to: Int64? = nil) -> String {
        "p\(partition)-\(pad(from, 20))-" + (to.map { pad($0, 20) } ?? "")
    }

    /// `rollups/date=…/hour=…/p<partition>.parquet`: rewritten while the hour is open.
    static func rollupFile(hourStart: Int64, partition: Int32) -> String {
        "rollups/\(self.partition(hourStart: hourStart))/p\(partition).parquet"
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    /// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
