import Foundation
import PlayheadTestSupport
import Testing

/// Events for the end-to-end tests: the seed's example event, with changes.
enum Fixtures {
    /// Runs scripts/fuzz-http (docs/fuzzing.md) on the build under test with `seed` and `arguments`;
    /// expects it to pass and returns its JSON report.
    static func fuzzHTTP(_ arguments: [String], seed: UInt32 = .random(in: 0...UInt32.max), environment: [String: String] = [:]) async throws -> [String: Any] {
        let script = TestEnvironment.repoRoot.appendingPathComponent("scripts/fuzz-http").path
        let result = try await runCommand(
            TestEnvironment.python,
            [script, "--seed", String(seed), "--playhead", TestEnvironment.playheadExecutable] + arguments,
            environment: environment,
            timeout: .seconds(300)
        )
        #expect(result.status == 0, "scripts/fuzz-http --seed \(seed) \(arguments.joined(separator: " ")) failed (its report names the check and where the connection's bytes and the processes' logs were saved):\n\(result.stderr.suffix(2000))\n\(result.stdout.suffix(4000))")
        return try #require((try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any], "no report: \(result.stdout.suffix(2000))")
    }

    /// The seed's example event as a dictionary (JSON types).
    static func event(_ id: String = UUID().uuidString, _ changes: [String: Any?] = [:]) -> [String: Any] {
        var event: [String: Any] = [
            "event_id": id,
            "event_type": "play",
            "timestamp": "2025-03-25T14:30:45.123Z",
            "user_id": "user_123",
            "device_id": "web_browser_xyz",
            "session_id": "session_\(id)",
            "ip_address": "192.168.1.1",
            "content_id": "media_123",
            "content_type": "movie",
            "title": "Mr Robot",
            "genre": ["thriller", "action"],
            "duration_seconds": 8880,
            "language": "en",
            "current_timestamp": 120.5,
            "event_source": "web_app",
        ]
        for (key, value) in changes {
            if let value { event[key] = value } else { event.removeValue(forKey: key) }
        }
        return event
    }

    static func json(_ object: Any) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    static func ndjson(_ events: [[String: Any]]) -> String {
        events.map { json($0) }.joined(separator: "\n") + "\n"
    }

    /// Starts `playhead serve` on a new data directory.
    static func server(_ arguments: [String] = [], directory: TemporaryDirectory? = nil) async throws -> (PlayheadServer, TemporaryDirectory) {
        let directory = try directory ?? TemporaryDirectory(prefix: "e2e")
        let server = try await PlayheadServer(dataDirectory: directory.appending("data").path, arguments: arguments)
        // Callers often drop the directory (`let (server, _) = ...`); it must outlive the server.
        server.keepAlive.append(directory)
        return (server, directory)
    }

    /// The `event_id` of every record of the `events` topic, in log order.
    static func storedIDs(_ dataDirectory: String) async throws -> [String] {
        try await dump(dataDirectory).compactMap { $0["event_id"] as? String }
    }

    /// The records of a topic, from `playhead log dump`.
    static func dump(_ dataDirectory: String, topic: String = "events") async throws -> [[String: Any]] {
        let result = try await runCommand(
            TestEnvironment.playheadExecutable, ["log", "dump", "--data-dir", dataDirectory, "--topic", topic]
        )
        guard result.status == 0 else { throw TestSupportError("log dump failed: \(result.stderr)") }
        return result.stdout.split(separator: "\n").map {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? [:]
        }
    }
}
