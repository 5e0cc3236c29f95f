import Foundation

/// Where one consumer group of an embedded log stands on one topic, read from the log's folder
/// alone (`playhead log groups`): its committed offset, how far behind the topic's durable end it
/// is, and what of the log it keeps from retention.
public struct GroupStanding: Sendable, Equatable {
    public var group: String
    public var topic: String
    /// The committed offset (the next record the group reads); nil when the file cannot be parsed,
    /// which retention takes as nothing committed (``problem`` says why).
    public var offset: Int64?
    /// The topic's end as a read-only open finds it (``tail(of:last:)``): the durable end its writer
    /// last published (`<topic>/durable-end`) when that is of the last segment, else the whole
    /// records on disk; nil when the topic has no segment that can be read.
    public var end: Int64?
    /// The bytes of the topic's segments from the one that holds ``offset`` on (every segment when
    /// the offset cannot be read): what retention may not delete while this group stays there.
    public var heldBytes: Int64
    /// The segments those bytes are in.
    public var heldSegments: Int
    /// When the group last committed (the offsets file's modification time).
    public var lastCommit: Date?
    /// Why the offsets file cannot be read, when it cannot.
    public var problem: String?
    /// Whether the group has committed on this topic: a required group (`lake`, which `serve` and
    /// `ingest` require) is listed before its first commit too, since retention then keeps every
    /// segment for it (a lake that cannot be written yet).
    public var committed = true

    /// Records between ``offset`` and ``end``, when both are known.
    public var behind: Int64? {
        guard let offset, let end else { return nil }
        return max(0, end - offset)
    }

    /// `seconds` as an age for people: "42 s", "17 min", "5 h", "3 days".
    public static func age(_ seconds: Double) -> String {
        switch seconds {
        case ..<120: "\(Int(max(0, seconds))) s"
        case ..<7200: "\(Int(seconds / 60)) min"
        case ..<172_800: "\(Int(seconds / 3600)) h"
        default: "\(Int(seconds / 86_400)) days"
        }
    }

    /// Every group's standing on every topic it has committed on, in the embedded log at
    /// `directory` (the log's folder, `<data-dir>/log`), sorted by group, then topic. Reads only:
    /// safe beside a running writer.
    /// `required`: groups that retention waits for before their first commit (`lake` for `serve`
    /// and `ingest`), listed on every topic of the log that they have not committed on.
    public static func all(inLog directory: String, required: [String] = []) -> [GroupStanding] {
        let groupsDirectory = "\(directory)/groups"
        let files = FileManager.default
        var standings: [GroupStanding] = []
        let groups = (try? files.contentsOfDirectory(atPath: groupsDirectory)) ?? []
        for group in groups.sorted() where !group.hasPrefix(".") {
            guard let topics = try? files.contentsOfDirectory(atPath: "\(groupsDirectory)/\(group)") else { continue }
            for topic in topics.sorted() where !topic.hasPrefix(".") && !topic.hasSuffix(".tmp") {
                standings.append(standing(of: group, on: topic, inLog: directory))
            }
        }
        let topics = ((try? files.contentsOfDirectory(atPath: directory)) ?? []).filter { name in
            var isDirectory: ObjCBool = false
            return name != "groups" && !name.hasPrefix(".") && files.fileExists(atPath: "\(directory)/\(name)", isDirectory: &isDirectory) && isDirectory.boolValue
        }
        for group in required {
            for topic in topics where !standings.contains(where: { $0.group == group && $0.topic == topic }) {
                var standing = standing(of: group, on: topic, inLog: directory)
                standing.committed = false
                standings.append(standing)
            }
        }
        return standings.sorted { ($0.group, $0.topic) < ($1.group, $1.topic) }
    }

    static func standing(of group: String, on topic: String, inLog directory: String) -> GroupStanding {
        let path = GroupOffsets.path(root: directory, group: group, topic: topic)
        var offset: Int64?
        var problem: String?
        do {
            offset = try GroupOffsets.read(root: directory, group: group, topic: topic)[0] ?? 0
        } catch {
            problem = error.message
        }
        let topicDirectory = "\(directory)/\(topic)"
        // Segment i holds the offsets from its base up to the next segment's base: the group keeps
        // the one its offset falls in, and every later one.
        let bases = Files.listSegments(topicDirectory)
        let lastBase: Int64? = bases.last
        let tail = lastBase.flatMap { Self.tail(of: topicDirectory, last: $0) }
        let first = offset.map { offset in bases.lastIndex { $0 <= offset } ?? 0 } ?? 0
        let held = bases[min(first, bases.count)...]
        // The last segment's records, not its file: a running writer's holds zero-filled space.
        let heldBytes = held.reduce(Int64(0)) { total, base in
            let records = base == lastBase ? tail?.bytes : nil
            return total + (records ?? Files.size(Files.segmentPath(topicDirectory, base)) ?? 0)
        }
        let end = tail?.end
        let lastCommit = Files.modificationTime(path).map { Date(timeIntervalSince1970: $0) }
        return GroupStanding(
            group: group, topic: topic, offset: offset, end: end, heldBytes: heldBytes, heldSegments: held.count,
            lastCommit: lastCommit, problem: problem)
    }

    /// The end of a topic whose last segment is `last`, and that segment's bytes of records: as its
    /// writer last published them (`durable-end`) when that is of this segment; otherwise (a file
    /// older than the log, or none) the whole records in the file, as a read-only open counts them.
    static func tail(of topicDirectory: String, last: Int64) -> (end: Int64, bytes: Int64)? {
        let fd = open(DurableEnd.path(topicDirectory), O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            defer { close(fd) }
            if let published = DurableEnd.read(fd), published.base == last, published.next >= last {
                return (published.next, published.size)
            }
        }
        let path = Files.segmentPath(topicDirectory, last)
        guard let segment = try? Files.open(path, O_RDONLY) else { return nil }
        defer { close(segment) }
        let maxRecordBytes = EmbeddedLogConfiguration(directory: "").maxRecordBytes
        guard let scanned = try? SegmentScanner.scan(segment, path: path, verifyChecksums: true, maxRecordBytes: maxRecordBytes) else { return nil }
        return (last + scanned.records, scanned.validBytes)
    }
}
