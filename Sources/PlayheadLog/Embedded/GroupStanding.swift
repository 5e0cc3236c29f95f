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
    /// The topic's durable end as its writer last published it (`<topic>/durable-end`); nil when
    /// no writer of this version has published one.
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
    public static func all(inLog directory: String) -> [GroupStanding] {
        let groupsDirectory = "\(directory)/groups"
        let files = FileManager.default
        guard let groups = try? files.contentsOfDirectory(atPath: groupsDirectory) else { return [] }
        var standings: [GroupStanding] = []
        for group in groups.sorted() where !group.hasPrefix(".") {
            guard let topics = try? files.contentsOfDirectory(atPath: "\(groupsDirectory)/\(group)") else { continue }
            for topic in topics.sorted() where !topic.hasPrefix(".") && !topic.hasSuffix(".tmp") {
                standings.append(standing(of: group, on: topic, inLog: directory))
            }
        }
        return standings
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
        var end: Int64?
        let fd = open(DurableEnd.path(topicDirectory), O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            end = DurableEnd.read(fd)?.next
            close(fd)
        }
        // Segment i holds the offsets from its base up to the next segment's base: the group keeps
        // the one its offset falls in, and every later one.
        let bases = Files.listSegments(topicDirectory)
        let first = offset.map { offset in bases.lastIndex { $0 <= offset } ?? 0 } ?? 0
        let held = bases[min(first, bases.count)...]
        let heldBytes = held.reduce(Int64(0)) { $0 + (Files.size(Files.segmentPath(topicDirectory, $1)) ?? 0) }
        let lastCommit = Files.modificationTime(path).map { Date(timeIntervalSince1970: $0) }
        return GroupStanding(
            group: group, topic: topic, offset: offset, end: end, heldBytes: heldBytes, heldSegments: held.count,
            lastCommit: lastCommit, problem: problem)
    }
}
