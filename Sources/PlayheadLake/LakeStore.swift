import Foundation
import NIOPosix

/// Where the lake's objects live: a local folder or an S3 bucket and prefix.
///
/// Paths are relative to the lake root and use `/` (`events/date=2026-11-25/hour=06/p0-….parquet`).
/// `put` is atomic and durable: once it returns, a reader sees the whole object (never a part), and
/// it survives a crash of the machine (fsync of the file and its folder, or a completed S3 upload).
public protocol LakeStore: Sendable {
    /// `file:/var/lib/playhead/lake` or `s3://bucket/prefix`, for logs.
    var displayName: String { get }
    /// Writes `bytes` at `path`, replacing what was there.
    func put(_ path: String, _ bytes: [UInt8]) async throws
    /// The object at `path`, or nil when there is none.
    func get(_ path: String) async throws -> [UInt8]?
    /// Every object whose path starts with `prefix`, sorted.
    func list(prefix: String) async throws -> [String]
    /// Removes `path`; no error when it is absent.
    func delete(_ path: String) async throws
    /// The object at `path` with its version (an S3 ETag), or nil when there is none.
    func getVersioned(_ path: String) async throws -> (bytes: [UInt8], version: String?)?
    /// Writes `bytes` at `path` only while the object is still at `version` (nil: while there is none).
    func put(_ path: String, _ bytes: [UInt8], ifVersion version: String?) async throws -> String?
    /// Removes `path` only while the object is still at `version` (an S3 ETag).
    func delete(_ path: String, ifVersion version: String) async throws
    /// Writes `bytes` at `path` only while the object holds exactly `expected` (nil: while there is
    /// none), as one step that no other process's write can come between: throws a ``LakeError``
    /// with code `otherWriter` when it does not. Already holding `bytes` is success (a retry after a
    /// lost answer). For the lake's state, which a writer paused past its turn must not move back.
    func put(_ path: String, _ bytes: [UInt8], ifStill expected: [UInt8]?) async throws
    /// Holds `path` for this process alone until released (`LakeLease`), or says who holds it.
    /// `holder` describes this process to the others.
    func lease(_ path: String, holder: String) async throws -> LakeLeaseAttempt
    /// Checks, once at start, what no retry can mend (an S3 bucket that does not exist, credentials
    /// that are refused), and throws a ``LakeError`` that says what to do. A store that cannot be
    /// reached now is not an error here: writes retry.
    func preflight() async throws
    /// A request to the store in flight that the store has not moved for a while (it took none of
    /// its body and sent none of its answer), said for `/readyz`; nil when there is none. A store
    /// that accepts connections and answers nothing shows here long before its requests fail.
    var unansweredRequest: String? { get }
    /// Ends the store's requests `after` from now at the latest, retries included, for a process
    /// that is stopping (S3: ``S3Client/giveUp(after:)``). A folder lake's calls are not retried:
    /// nothing to do.
    func giveUp(after: Duration)
}

extension LakeStore {
    public func preflight() async throws {}

    public func giveUp(after: Duration) {}

    /// A folder lake's calls are not watched: nil.
    public var unansweredRequest: String? { nil }

    /// The object at `path` with its version (an S3 ETag), or nil when there is none. A store
    /// without versions (a folder lake) gives nil for it.
    public func getVersioned(_ path: String) async throws -> (bytes: [UInt8], version: String?)? {
        try await get(path).map { ($0, nil) }
    }

    /// Writes `bytes` at `path` only while the object is still at `version` (nil: only while there is
    /// none), and returns the new version; throws a ``LakeError`` with code `otherWriter` when it is
    /// not. For what an import's lease guards and another process may take over: the manifests. A
    /// store without versions writes it (a folder lake's lease is the kernel's, and is not taken over).
    public func put(_ path: String, _ bytes: [UInt8], ifVersion version: String?) async throws -> String? {
        try await put(path, bytes)
        return nil
    }

    /// Removes `path` only while the object is still at `version`; throws a ``LakeError`` with code
    /// `otherWriter` when it is not. A store without versions removes it (as `put(_:_:ifVersion:)`
    /// writes).
    public func delete(_ path: String, ifVersion version: String) async throws {
        try await delete(path)
    }

    /// A store with versions: the object read with its version, compared, and written only while
    /// it is still at that version (S3: `If-Match`, or `If-None-Match: *` for none).
    public func put(_ path: String, _ bytes: [UInt8], ifStill expected: [UInt8]?) async throws {
        try await put(path, bytes, ifStill: expected) { version in _ = try await put(path, bytes, ifVersion: version) }
    }

    /// `put(_:_:ifStill:)` on versions: the object read with its version and compared, then
    /// `write` called with that version.
    func put(
        _ path: String, _ bytes: [UInt8], ifStill expected: [UInt8]?, write: (String?) async throws -> Void
    ) async throws {
        let current = try await getVersioned(path)
        if current?.bytes == bytes { return }
        guard current?.bytes == expected else {
            throw LakeError(.otherWriter, "\(displayName)/\(path) was changed by another process since this one read it")
        }
        try await write(current?.version)
    }
}

/// An error of a lake store, with the path and the cause.
public struct LakeError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// A local file operation failed (permissions, full disk, …).
        public static let io = Code("io")
        /// The lake location could not be understood.
        public static let invalidLocation = Code("invalid_location")
        /// The remote store failed (after retries, where they apply).
        public static let remote = Code("remote")
        /// A state or intent object of the lake is unreadable.
        public static let corruptState = Code("corrupt_state")
        /// Another log, or another process, writes the same lake location.
        public static let otherWriter = Code("other_writer")
        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "LakeError(\(code)): \(message)" }

    /// Whether `error` is one that retrying cannot mend: an unreadable state or intent, or another
    /// writer on the lake. The lake writer stops on it, even during a graceful stop.
    static func isPermanent(_ error: any Error) -> Bool {
        guard let error = error as? LakeError else { return false }
        return error.code == .corruptState || error.code == .otherWriter
    }
}

/// A lake in a local folder. Blocking file calls (write, fsync, rename) run on a thread pool, never
/// on the cooperative pool.
public final class FileLakeStore: LakeStore {
    public let root: String
    let threadPool: NIOThreadPool

    /// - Parameters:
    ///   - root: the lake folder; created if missing.
    ///   - threadPool: runs the blocking file calls. Started by the caller.
    public init(root: String, threadPool: NIOThreadPool) throws {
        self.root = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
        self.threadPool = threadPool
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: self.root, isDirectory: &isFolder), !isFolder.boolValue {
            throw LakeError(.io, "the lake folder \(self.root) is a file, not a folder")
        }
        do {
            try FileManager.default.createDirectory(atPath: self.root, withIntermediateDirectories: true)
        } catch {
            throw LakeError(.io, "cannot create the lake folder \(self.root): \(Self.reason(error))")
        }
    }

    /// The system's reason in a Foundation error ("Too many open files"), which prints as an error
    /// domain and a code with the reason deep inside (a probe: `Error Domain=NSCocoaErrorDomain
    /// Code=256 "(null)"UserInfo={…}`).
    static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        let underlying = (nsError.userInfo[NSUnderlyingErrorKey] as? any Error).map { $0 as NSError }
        if let posix = [underlying, nsError].compactMap({ $0 }).first(where: { $0.domain == NSPOSIXErrorDomain }) {
            return String(cString: strerror(Int32(posix.code)))
        }
        return error.localizedDescription
    }

    public var displayName: String { "file:\(root)" }

    public func put(_ path: String, _ bytes: [UInt8]) async throws {
        let root = self.root
        try await threadPool.runIfActive {
            try FileLakeStore.writeDurably(root: root, path: path, bytes: bytes)
        }
    }

    /// Under an exclusive `flock` of the object's folder, which every such write on this machine
    /// takes: the read, the comparison and the write are one step for them.
    public func put(_ path: String, _ bytes: [UInt8], ifStill expected: [UInt8]?) async throws {
        let root = self.root
        try await threadPool.runIfActive {
            let full = "\(root)/\(path)"
            let folder = (full as NSString).deletingLastPathComponent
            try FileLakeStore.makeFolders(folder, root: root)
            let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw LakeError(.io, "cannot open folder \(folder): \(String(cString: strerror(errno)))") }
            defer { close(fd) }  // and with it the lock
            while flock(fd, LOCK_EX) != 0 {
                guard errno == EINTR else { throw LakeError(.io, "cannot lock folder \(folder): \(String(cString: strerror(errno)))") }
            }
            let current = try FileLakeStore.read(full)
            if current == bytes { return }
            guard current == expected else {
                throw LakeError(.otherWriter, "file:\(full) was changed by another process since this one read it")
            }
            try FileLakeStore.writeDurably(root: root, path: path, bytes: bytes)
        }
    }

    public func get(_ path: String) async throws -> [UInt8]? {
        let full = "\(root)/\(path)"
        return try await threadPool.runIfActive { try FileLakeStore.read(full) }
    }

    /// The file's bytes, nil when there is none (blocking).
    static func read(_ full: String) throws -> [UInt8]? {
        guard FileManager.default.fileExists(atPath: full) else { return nil }
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: full)))
        } catch {
            throw LakeError(.io, "cannot read \(full): \(reason(error))")
        }
    }

    public func list(prefix: String) async throws -> [String] {
        let root = self.root
        return try await threadPool.runIfActive {
            // Walk only the folder part of the prefix.
            let folder = prefix.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            let start = folder.isEmpty ? root : "\(root)/\(folder)"
            guard let walker = FileManager.default.enumerator(atPath: start) else { return [] }
            var paths: [String] = []
            while let relative = walker.nextObject() as? String {
                let path = folder.isEmpty ? relative : "\(folder)/\(relative)"
                var isDirectory: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: "\(root)/\(path)", isDirectory: &isDirectory)
                let name = relative.split(separator: "/").last ?? ""
                if !isDirectory.boolValue && path.hasPrefix(prefix) && !name.hasPrefix(".tmp-") { paths.append(path) }
            }
            return paths.sorted()
        }
    }

    public func delete(_ path: String) async throws {
        let full = "\(root)/\(path)"
        try await threadPool.runIfActive {
            if unlink(full) != 0 && errno != ENOENT {
                throw LakeError(.io, "cannot delete \(full): \(String(cString: strerror(errno)))")
            }
            // Durable before the writer goes on: a redo deletes the unfinished attempt's files and
            // then moves the state; after a power cut, the state's move could outlive the deletes,
            // and those rows were in the lake twice (an outside review of the code). Also when the
            // file is already gone: a retry after an fsync that failed finds it so.
            let folder = String(full[..<(full.lastIndex(of: "/") ?? full.endIndex)])
            if FileManager.default.fileExists(atPath: folder) { try Self.fsyncFolder(folder) }
        }
    }

    /// Where files are written before they are renamed into place: in the lake (one file system,
    /// so the rename is atomic), outside every dataset. They were written beside their target until
    /// 2026-12-05, and a reader that lists a folder (polars' `scan_parquet` of a folder, DuckDB's
    /// `read_parquet('…/**')`) failed on one met while a file was written, or left by a crash in an
    /// hour folder that no later write cleaned (an outside review).
    static let temporaryFolder = "_playhead/tmp"

    /// Writes a temporary file in ``temporaryFolder``, fsyncs it, renames it to the target and
    /// fsyncs the target's folder (and every folder created on the way), so that the object is
    /// whole and durable, and never seen in part.
    static func writeDurably(root: String, path: String, bytes: [UInt8]) throws {
        let full = "\(root)/\(path)"
        let folder = (full as NSString).deletingLastPathComponent
        try makeFolders(folder, root: root)
        let temporaries = "\(root)/\(temporaryFolder)"
        try makeFolders(temporaries, root: root)
        // `_playhead` and the target on two file systems (a mount point or a symbolic link in the
        // lake), where a rename cannot take the file across: the temporary goes beside its target,
        // as before 2026-12-05 (checked first, so that the bytes are not written twice).
        let acrossFileSystems = device(of: temporaries) != device(of: folder)
        if try acrossFileSystems || !write(bytes, to: full, through: temporaries) {
            _ = try write(bytes, to: full, through: folder)
        }
        try fsyncFolder(folder)
        removeStaleTemporaries(in: temporaries)
        // What releases before 2026-12-05 left beside their files.
        removeStaleTemporaries(in: folder)
    }

    /// The file system that `path` is on (nil when it cannot be read).
    private static func device(of path: String) -> UInt64? {
        var info = stat()
        return stat(path, &info) == 0 ? UInt64(info.st_dev) : nil
    }

    /// Writes `bytes` to a new temporary file in `folder`, fsyncs it and renames it to `full`;
    /// false (and nothing left) when the rename crosses file systems.
    private static func write(_ bytes: [UInt8], to full: String, through folder: String) throws -> Bool {
        let temporary = "\(folder)/.tmp-\(UUID().uuidString)"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LakeError(.io, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var failure: LakeError?
        bytes.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + written, buffer.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = LakeError(.io, "cannot write \(temporary): \(String(cString: strerror(errno)))")
                    return
                }
                written += n
            }
        }
        if failure == nil && fsync(fd) != 0 {
            failure = LakeError(.io, "cannot fsync \(temporary): \(String(cString: strerror(errno)))")
        }
        close(fd)
        if let failure {
            unlink(temporary)
            throw failure
        }
        guard rename(temporary, full) == 0 else {
            let code = errno
            unlink(temporary)
            if code == EXDEV { return false }
            throw LakeError(.io, "cannot rename \(temporary) to \(full): \(String(cString: strerror(code)))")
        }
        return true
    }

    /// Temporary files older than this are what a crash (`kill -9` during a flush) left behind; a
    /// write in progress, of this process or another writer of the lake, is seconds old.
    static let staleTemporaryAge: Double = 600

    /// Deletes the stale temporary files of `folder`: a crash leaves one for each file it was
    /// writing.
    static func removeStaleTemporaries(in folder: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        let now = Date().timeIntervalSince1970
        for name in names where name.hasPrefix(".tmp-") {
            var info = stat()
            let path = "\(folder)/\(name)"
            guard stat(path, &info) == 0, now - Double(info.st_mtim.tv_sec) > staleTemporaryAge else { continue }
            unlink(path)
        }
    }

    /// Creates the missing folders of `folder` below `root`, fsyncing each parent that gained one.
    static func makeFolders(_ folder: String, root: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue { return }
        let parent = (folder as NSString).deletingLastPathComponent
        if folder != root && parent.count >= root.count { try makeFolders(parent, root: root) }
        if mkdir(folder, 0o755) != 0 && errno != EEXIST {
            throw LakeError(.io, "cannot create folder \(folder): \(String(cString: strerror(errno)))")
        }
        try fsyncFolder(parent)
    }

    static func fsyncFolder(_ folder: String) throws {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw LakeError(.io, "cannot open folder \(folder): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw LakeError(.io, "cannot fsync folder \(folder): \(String(cString: strerror(errno)))") }
    }
}
