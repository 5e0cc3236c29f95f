import Foundation
import PlayheadEvents
@testable import FuzzChecks
import Testing

/// Every input saved under `Fuzz/corpus/<check>/` (the seeds, the fuzzer's minimized corpus, and
/// each input that once found a bug) keeps every property of its check (docs/fuzzing.md). The
/// fuzzer itself runs from `scripts/fuzz`; this replays what it found, in every test run.
@Suite struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus")

    @Test(arguments: FuzzChecks.targets.keys.sorted())
    func corpusKeepsEveryProperty(check name: String) throws {
        let folder = Self.corpus.appendingPathComponent(name)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(files.count >= 10, "the corpus of \(name) has \(files.count) inputs")
        let check = try #require(FuzzChecks.targets[name])
        var failures: [String] = []
        for file in files {
            let input = try Data(contentsOf: folder.appendingPathComponent(file))
            let problems = input.withUnsafeBytes { check($0) }
            if !problems.isEmpty { failures.append("\(name)/\(file): \(problems.prefix(3))") }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
    }

    /// The checks can fail: an accepted event whose record does not read back, or whose key or
    /// receive time is not its own, is reported.
    @Test func aBrokenPropertyIsReported() throws {
        let input = Array(try Data(contentsOf: Self.corpus.appendingPathComponent("events/seed-00")))
        #expect(input.withUnsafeBytes { FuzzChecks.eventDecoder($0) }.isEmpty)
        var sink = FuzzSink()
        _ = input.dropFirst().withUnsafeBytes {
            EventDecoder().decode($0, format: .json, receivedAt: FuzzChecks.receivedAt, into: &sink)
        }
        let event = try #require(sink.accepted.first)
        #expect(FuzzChecks.acceptedRecord(event, configuration: .init()).isEmpty)
        var wrongKey = event
        wrongKey.key.removeLast()
        #expect(FuzzChecks.acceptedRecord(wrongKey, configuration: .init()) == ["event 0: its key is not its session_id or device_id"])
        var cut = event
        cut.record.removeLast()
        #expect(FuzzChecks.acceptedRecord(cut, configuration: .init()).first?.contains("does not read back") == true)
        var later = event
        later.record[10] &+= 1  // received_at's lowest byte
        #expect(FuzzChecks.acceptedRecord(later, configuration: .init()).first?.hasPrefix("event 0: received_at") == true)
    }
}
