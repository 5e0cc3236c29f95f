import Foundation
import NIOCore
import NIOPosix
import PlayheadEvents
import S3
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An exclusive hold on a name in the lake, by one process at a time. Two imports of one file at
/// once deleted each other's files (each removes, when it ends, the files of the file it did not
/// write itself), and lost updates of the file's manifest left doubles no later import removed.
public protocol LakeLease: Sendable {
    /// Says the holder is alive. An S3 lease that is not renewed goes stale after
    /// ``LakeLeases/staleAfter``, and another process may take it over; this throws a
    /// ``LakeError`` with code `otherWriter` when that has happened.
    func renew() async throws
    /// Gives the hold up (best effort: a hold that cannot be released goes stale). False when it was
    /// no longer this process's: another took it over, so what this one did meanwhile is in doubt.
    func release() async -> Bool
    /// The holder this lease was taken over from, when it was stale (an S3 lease not renewed for
    /// ``LakeLeases/staleAfter``): that process may only be paused, and come back.
    var takenOverFrom: String? { get }
}

extension LakeLease {
    public var takenOverFrom: String? { nil }
}

/// What asking for a ``LakeLease`` found.
public enum LakeLeaseAttempt: Sendable {
    case held(any LakeLease)
    /// Another process holds it: how that process described itself, and (S3) when it last renewed.
    case heldByOther(String)
    /// The store cannot hold leases (an S3 store that does not implement conditional writes): why.
    case unsupported(String)
}

/// What stands for a lease where the store has none: nothing to renew or release.
public struct NoLakeLease: LakeLease {
    public init() {}
    public func renew() async throws {}
    public func release() async -> Bool { true }
}

public enum LakeLeases {
    /// An S3 lease not renewed for this long is taken to be a crashed holder's.
    public static let staleAfter: Duration = .seconds(120)
    /// How often a holder renews.
    public static let renewEvery: Duration = .seconds(30)

    /// "host NAME, process PID, since TIME": who holds a lease, for the message another process shows.
    public static func holderDescription() -> String {
        var name = [UInt8](repeating: 0, count: 256)
        let host = name.withUnsafeMutableBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { gethostname($0.baseAddress!, 255) }
        } == 0 ? String(decoding: name.prefix { $0 != 0 }, as: UTF8.self) : "unknown"
        let since = ISO8601DateFormatter().string(from: Date())
        return "host \(host), process \(getpid()), since \(since)"
    }
}

// MARK: A folder lake: flock

extension FileLakeStore {
    /// An advisory lock (`flock`) on a file of the lake: the kernel releases it when the holder
    /// ends, however it ends, so a killed import leaves nothing to clean up. The file stays (removing
    /// it would let a process that opened it before the removal lock a file no one else sees).
    public func lease(_ path: String, holder: String) async throws -> LakeLeaseAttempt {
        let full = "\(root)/\(path)"
        let root = self.root
        return try await threadPool.runIfActive { () throws -> LakeLeaseAttempt in
            try FileLakeStore.makeFolders((full as NSString).deletingLastPathComponent, root: root)
            let fd = open(full, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw LakeError(.io, "cannot open \(full): \(String(cString: strerror(errno)))") }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let code = errno
                _ = Glibc.close(fd)
                guard code == EWOULDBLOCK else { throw LakeError(.io, "cannot lock \(full): \(String(cString: strerror(code)))") }
                let who = (try? String(contentsOfFile: full, encoding: .utf8)) ?? ""
                return .heldByOther(who.isEmpty ? "another process" : who)
            }
            _ = ftruncate(fd, 0)
            _ = holder.utf8CString.withUnsafeBufferPointer { pwrite(fd, $0.baseAddress, $0.count - 1, 0) }
            return .held(FileLakeLease(fd: fd))
        }
    }
}

final class FileLakeLease: LakeLease {
    private let fd: Mutex<Int32>

    init(fd: Int32) { self.fd = Mutex(fd) }

    func renew() async throws {}

    func release() async -> Bool {
        fd.withLock { fd in
            if fd >= 0 { _ = Glibc.close(fd) }
            fd = -1
        }
        return true
    }
}

// MARK: An S3 lake: conditional writes

extension S3LakeStore {
    struct LeaseBody: Codable {
        var owner: String
        var holder: String
        var renewed_at: Int64
    }

    /// An object created with `If-None-Match: *` (only when absent), renewed with `If-Match` on its
    /// ETag, and taken over, when stale, with `If-Match` on the stale one's: of two processes that
    /// race, exactly one write succeeds (S3 since 2024, SeaweedFS, MinIO).
    public func lease(_ path: String, holder: String) async throws -> LakeLeaseAttempt {
        let owner = UUID().uuidString.lowercased()
        let objectKey = key(path)
        let lease = S3LakeLease(client: client, bucket: bucket, key: objectKey, owner: owner, holder: holder)
        for _ in 0..<3 {
            do {
                try await lease.write(ifMatch: nil)
                return .held(lease)
            } catch let error as S3Error where error.isPreconditionFailed || error.status == 409 {
                // 409 ConditionalRequestConflict: AWS's answer to a conditional write that races
                // another; as for 412, the lease is read to see whose it is.
            } catch let error as S3Error where error.isNotImplemented {
                return .unsupported("\(client.configuration.endpoint) does not implement conditional writes (\(error))")
            }
            // Held, or a retried PUT of ours found its own first attempt.
            guard let (current, body) = try await lease.fetch() else {
                continue  // released meanwhile
            }
            if body?.owner == owner, let etag = current.etag {
                lease.adopt(etag: etag)
                return .held(lease)
            }
            let age = WallClock.micros() - (body?.renewed_at ?? 0)
            let stale = age > LakeLeases.staleAfter.components.seconds * 1_000_000
            if stale, let etag = current.etag {
                do {
                    try await lease.write(ifMatch: etag)
                    lease.noteTakenOver(from: body.map { "\($0.holder), last renewed \(age / 1_000_000) s ago" } ?? "an object that was not a Playhead lease")
                    return .held(lease)
                } catch let error as S3Error where error.isPreconditionFailed {
                    continue  // another process took it over first
                }
            }
            let who = body.map { "\($0.holder); renewed \(max(0, age / 1_000_000)) s ago" } ?? "an object that is not a Playhead lease"
            return .heldByOther(who)
        }
        return .heldByOther("other processes (it changed hands three times while this one asked)")
    }
}

final class S3LakeLease: LakeLease {
    private let client: S3Client
    private let bucket: String
    private let key: String
    private let owner: String
    private let holder: String
    private let etag = Mutex<String?>(nil)
    /// The `renewed_at` (µs, wall clock) of the last write of the lease known to be this process's.
    private let renewedAt = Mutex<Int64>(0)
    private let previous = Mutex<String?>(nil)
    var takenOverFrom: String? { previous.withLock { $0 } }

    init(client: S3Client, bucket: String, key: String, owner: String, holder: String) {
        self.client = client
        self.bucket = bucket
        self.key = key
        self.owner = owner
        self.holder = holder
    }

    func adopt(etag: String) { self.etag.withLock { $0 = etag } }

    func noteTakenOver(from holder: String) { previous.withLock { $0 = holder } }

    /// The lease's object as it is now, with its body when that is a Playhead lease; nil when there
    /// is none.
    func fetch() async throws -> (object: S3Object, body: S3LakeStore.LeaseBody?)? {
        do {
            let object = try await client.getObject(bucket: bucket, key: key)
            return (object, try? JSONDecoder().decode(S3LakeStore.LeaseBody.self, from: Data(object.bytes)))
        } catch let error as S3Error where error.code == .noSuchKey {
            return nil
        }
    }

    /// Writes the lease: created when `ifMatch` is nil, else over the object with that ETag.
    func write(ifMatch: String?) async throws {
        let body = S3LakeStore.LeaseBody(owner: owner, holder: holder, renewed_at: WallClock.micros())
        let bytes = try JSONEncoder().encode(body)
        let tag = try await client.putObject(
            bucket: bucket, key: key, body: ByteBuffer(bytes: bytes), contentType: "application/json",
            ifMatch: ifMatch, ifNoneMatch: ifMatch == nil ? "*" : nil
        )
        if let tag { adopt(etag: tag) }
        renewedAt.withLock { $0 = body.renewed_at }
    }

    /// Renews the lease with `If-Match` on its ETag. A refusal is checked against the object: a
    /// renewal whose answer was lost and that was sent again finds its own first write there (412:
    /// the ETag moved), and that is not a takeover (it was taken for one, and the import failed).
    ///
    /// The lease found is written again when its stamp is older than this renewal (an earlier
    /// renewal's write that landed after that call had given up): the holder counts the lease as
    /// renewed when this call started (``LeaseKeeper``), and the older stamp would go stale first.
    func renew() async throws {
        guard let current = etag.withLock({ $0 }) else { return }
        let started = WallClock.micros()
        do {
            try await write(ifMatch: current)
            return
        } catch let error as S3Error where error.isPreconditionFailed || error.code == .noSuchKey {
            // Refused: the object says whose it is now (below).
        }
        let found = try await fetch()
        let object = found?.object, body = found?.body
        if let object, let body, body.owner == owner, let tag = object.etag {
            adopt(etag: tag)
            renewedAt.withLock { $0 = body.renewed_at }
            if body.renewed_at < started { try await write(ifMatch: tag) }
            return
        }
        let now = body.map { "by \($0.holder)" } ?? (object == nil ? "and released (deleted) by the process that took it" : "by an object that is not a Playhead lease")
        throw LakeError(
            .otherWriter,
            "s3://\(bucket)/\(key) was taken over \(now): this process did not renew it for \(LakeLeases.staleAfter.components.seconds) s (paused, or the store unreachable)"
        )
    }

    /// Deletes the lease only while it is the one this process wrote (`If-Match` on its ETag): the
    /// owner was read and then the object deleted, and a process paused between the two deleted the
    /// lease of the import that had taken it over meanwhile, and a third import of the file was let
    /// in while that one ran (a probe).
    func release() async -> Bool {
        guard let current = etag.withLock({ $0 }) else { return true }
        do {
            try await client.deleteObject(bucket: bucket, key: key, ifMatch: current)
            return true
        } catch let error as S3Error where error.isPreconditionFailed || error.code == .noSuchKey {
            // Not ours any more, unless a renewal whose answer was lost moved the ETag, or this
            // DELETE landed and its answer was lost (sent again, it found nothing: 412 or 404). Gone
            // within the stale time of this process's last renewal, no other could have taken it
            // (that was taken for a takeover, and a whole import exited 1, a probe).
            guard let (object, body) = (try? await fetch()) ?? nil else {
                return WallClock.micros() - renewedAt.withLock({ $0 }) < LakeLeases.staleAfter.components.seconds * 1_000_000
            }
            guard body?.owner == owner, let tag = object.etag else { return false }
            try? await client.deleteObject(bucket: bucket, key: key, ifMatch: tag)
            return true
        } catch let error as S3Error where error.isNotImplemented {
            // A store that takes conditional writes but not a conditional DELETE: the lease is read,
            // and deleted while it is still this process's. It stayed, and the next import of the
            // file within 2 minutes was refused, naming this process, which had exited (a review).
            guard let (_, body) = (try? await fetch()) ?? nil, body?.owner == owner else { return true }
            do {
                try await client.deleteObject(bucket: bucket, key: key)
            } catch {
                return true  // unreachable now: it goes stale
            }
            return true
        } catch {
            return true  // unreachable now: it goes stale
        }
    }
}
