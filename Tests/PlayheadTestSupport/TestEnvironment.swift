import Foundation
import NIOConcurrencyHelpers

/// Where the repository, its tools and its Python venv are, for tests.
public enum TestEnvironment {
    /// The repository's root folder.
    public static let repoRoot: URL = {
        // <root>/Tests/PlayheadTestSupport/TestEnvironment.swift
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }()

    /// The Python interpreter with the test packages (pyarrow, duckdb, ...): `$PLAYHEAD_PYTHON`, or
    /// `.venv/bin/python` made by `scripts/setup --test`.
    public static var python: String {
        if let path = ProcessInfo.processInfo.environment["PLAYHEAD_PYTHON"], !path.isEmpty { return path }
        return repoRoot.appendingPathComponent(".venv/bin/python").path
    }

    /// The folder of the venv's executables (weed, ...).
    public static var venvBin: URL { URL(fileURLWithPath: python).deletingLastPathComponent() }

    /// The debug build folder holding the `playhead` executable the tests launch.
    public static var buildDirectory: URL {
        // The test bundle runs from <root>/.build/<triple>/debug; find the playhead binary beside it.
        let bundle = Bundle.main.bundleURL
        let candidates = [
            bundle.deletingLastPathComponent().appendingPathComponent("playhead"),
            bundle.appendingPathComponent("playhead"),
            repoRoot.appendingPathComponent(".build/debug/playhead"),
        ]
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate.deletingLastPathComponent()
        }
        return repoRoot.appendingPathComponent(".build/debug")
    }

    /// The `playhead` executable built with the tests.
    public static var playheadExecutable: String { buildDirectory.appendingPathComponent("playhead").path }

    /// A folder for files that tests keep for people to look at (screenshots, logs).
    public static var artifactsDirectory: URL {
        let url = repoRoot.appendingPathComponent("test-artifacts")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// A temporary folder, removed when the value is released (unless `PLAYHEAD_KEEP_TEMP=1`).
public final class TemporaryDirectory: @unchecked Sendable {
    public let url: URL
    public var path: String { url.path }

    public init(prefix: String = "playhead-test") throws {
        let base = URL(fileURLWithPath: NSTemporaryDirectory())
        url = base.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public func appending(_ component: String) -> URL { url.appendingPathComponent(component) }

    deinit {
        if ProcessInfo.processInfo.environment["PLAYHEAD_KEEP_TEMP"] != "1" {
            try? FileManager.default.removeItem(at: url)
        }
    }
}

/// Polls `condition` until it holds or `timeout` passes.
public func eventually(timeout: Duration = .seconds(60), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// Mounts a tmpfs with `options` at `<directory>/mnt` when this user may (root in the dev
/// container, or passwordless sudo) and returns its path; otherwise prints a note that `test` is
/// skipped and returns nil. Unmount it with ``runUnmount(_:)``. If `watchedParent` (this test
/// process by default) dies first, it is unmounted within about a second (``ParentWatch``).
public func mountTmpfs(
    in directory: TemporaryDirectory, options: String, for test: String, watchedParent: Int32 = getpid()
) async throws -> String? {
    let mountPoint = directory.path + "/mnt"
    try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
    let mount = "mount -t tmpfs -o \(options) tmpfs '\(mountPoint)' 2>&1"
    let mounted = try await runCommand("/bin/sh", ["-c", "\(mount) || sudo -n \(mount)"])
    guard mounted.status == 0 else {
        print("note: skipping \(test): cannot mount a tmpfs as this user (\(mounted.stdout.prefix(120)))")
        return nil
    }
    if let watch = try? ParentWatch.start(mountPoint: mountPoint, parent: watchedParent) {
        mountWatches.withLockedValue { $0.append(watch) }
    }
    return mountPoint
}

/// The mounts' watchers, kept while they run (each ends within a second of its unmount).
private let mountWatches = NIOLockedValueBox<[Process]>([])

public func runUnmount(_ mountPoint: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", "umount '\(mountPoint)' 2>/dev/null || sudo -n umount '\(mountPoint)' 2>/dev/null"]
    try process.run()
    process.waitUntilExit()
}
