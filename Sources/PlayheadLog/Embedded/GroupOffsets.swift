import Foundation
import Synchronization

/// Committed offsets of consumer groups: `<dir>/groups/<group>/<topic>`, one line per partition
/// (`<partition> <next offset>\n`), replaced atomically on every commit.
enum GroupOffsets {
    static func validate(_ name: String, what: String) throws(LogError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard !name.isEmpty, name.count <= 200, !name.hasPrefix("."), name.allSatisfy({ allowed.contains($0) }) else {
            throw LogError(code: .invalidArgument, message: "\(what) '\(name)' must be 1–200 of [A-Za-z0-9._-], not starting with '.'")
        }
    }

    static func path(root: String, group: String, topic: String) -> String {
        "\(root)/groups/\(group)/\(topic)"
    }

    static func read(root: String, group: String, topic: String) throws(LogError) -> [Int32: Int64] {
        let path = path(root: root, group: group, topic: topic)
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw LogError(code: .io, message: "cannot read \(path)")
        }
        var offsets: [Int32: Int64] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 2, let partition = Int32(fields[0]), let offset = Int64(fields[1]) else {
                throw LogError.corrupt("\(path): bad line '\(line)'")
            }
            offsets[partition] = offset
        }
        return offsets
    }

    static func write(_ offsets: [Int32: Int64], root: String, group: String, topic: String) throws(LogError) {
        let directory = "\(root)/groups/\(group)"
        if access(directory, F_OK) != 0 {
            try Files.makeDirectories(directory)
            // A group's first commit: the new folder's entry is made durable with it.
            try Files.syncDirectory("\(root)/groups")
            try Files.syncDirectory(root)
        }
        var text = ""
        for partition in offsets.keys.sorted() {
            text += "\(partition) \(offsets[partition]!)\n"
        }
        // A temporary file of this writer's own: two processes committing one group (two
        // `observe` on one data folder) renamed each other's half-written file, or failed (a
        // review). Random too: in containers sharing a volume both are often process 1. (One a
        // `kill -9` leaves is ignored, ending in `.tmp`, and removed by this process's first
        // commit of the group: not listed again at every commit.)
        let path = path(root: root, group: group, topic: topic)
        if swept.withLock({ $0.insert(directory).inserted }), let stale = try? FileManager.default.contentsOfDirectory(atPath: directory) {
            for name in stale where name.hasSuffix(".tmp") { Self.removeIfStale("\(directory)/\(name)") }
        }
        try Files.writeAtomically(Array(text.utf8), to: path, temporary: path + ".\(UInt64.random(in: 0...UInt64.max)).tmp")
    }

    /// The group folders this process has swept of stale temporary files.
    private static let swept = Mutex<Set<String>>([])

    /// Removes a temporary file left by a commit that did not finish a minute ago or more (a
    /// `kill -9`): one younger may be another process's commit in progress.
    private static func removeIfStale(_ path: String) {
        guard let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
            Date().timeIntervalSince(modified) > 60
        else { return }
        unlink(path)
    }

    /// Every group's committed offset for partition 0 of `topic`.
    static func all(root: String, topic: String) -> [String: Int64] {
        let groupsDirectory = "\(root)/groups"
        guard let groups = try? FileManager.default.contentsOfDirectory(atPath: groupsDirectory) else { return [:] }
        var result: [String: Int64] = [:]
        for group in groups where !group.hasPrefix(".") {
            guard FileManager.default.fileExists(atPath: path(root: root, group: group, topic: topic)) else { continue }
            // An unreadable offsets file counts as "nothing committed", which keeps every segment.
            result[group] = (try? read(root: root, group: group, topic: topic))?[0] ?? 0
        }
        return result
    }
}
