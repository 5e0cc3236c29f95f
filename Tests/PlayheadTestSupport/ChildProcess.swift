import Foundation
import NIOConcurrencyHelpers

/// A process started by a test: its output is captured to files, and it is killed when the test
/// releases it, so that every test stops what it starts.
public final class ChildProcess: @unchecked Sendable {
    public let executable: String
    public let arguments: [String]
    public let stdoutURL: URL
    public let stderrURL: URL
    private let process: Process
    /// The watcher that stops the process if the test process dies first (``ParentWatch``).
    private let watch: Process?
    private let stdoutHandle: FileHandle
    private let stderrHandle: FileHandle
    /// The process's own folder (its `TMPDIR`, and its output unless `logDirectory` was given);
    /// removed on release.
    private let scratch: TemporaryDirectory

    /// Starts `executable` with `arguments`. Output goes to files named after `name`, in
    /// `logDirectory` (kept), or by default in a new temporary folder that is removed with this value
    /// (kept with `PLAYHEAD_KEEP_TEMP=1`). The process's `TMPDIR` is a folder in that one too, unless
    /// `environment` sets it, so that what it leaves there goes with it (``SeaweedFS`` removes its
    /// sockets itself: weed puts them in /tmp whatever `TMPDIR` says).
    ///
    /// The process is also stopped when `watchedParent` (this test process by default) dies: see
    /// ``ParentWatch``.
    public init(
        _ executable: String,
        _ arguments: [String] = [],
        name: String? = nil,
        environment: [String: String] = [:],
        currentDirectory: URL? = nil,
        logDirectory: URL? = nil,
        watchedParent: Int32 = getpid()
    ) throws {
        self.executable = executable
        self.arguments = arguments
        let label = name ?? URL(fileURLWithPath: executable).lastPathComponent
        scratch = try TemporaryDirectory(prefix: "child-\(label)")
        let directory = logDirectory ?? scratch.url
        let unique = UUID().uuidString.prefix(8)
        stdoutURL = directory.appendingPathComponent("\(label)-\(unique).stdout.log")
        stderrURL = directory.appendingPathComponent("\(label)-\(unique).stderr.log")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)  // a failure shows in FileHandle below
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)  // a failure shows in FileHandle below
        stdoutHandle = try FileHandle(forWritingTo: stdoutURL)
        stderrHandle = try FileHandle(forWritingTo: stderrURL)
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = try scratch.environment(ProcessInfo.processInfo.environment, adding: environment)
        if let currentDirectory { process.currentDirectoryURL = currentDirectory }
        process.standardOutput = stdoutHandle
        process.standardError = stderrHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        watch = try? ParentWatch.start(child: process.processIdentifier, parent: watchedParent)
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// "running", "exited with status N" or "ended by signal N", for a test's message: a process
    /// that died without a word in its log (SIGKILL) shows how it ended here.
    public var state: String {
        if process.isRunning { return "running" }
        switch process.terminationReason {
        case .exit: return "exited with status \(process.terminationStatus)"
        case .uncaughtSignal: return "ended by signal \(process.terminationStatus)"
        @unknown default: return "ended (status \(process.terminationStatus))"
        }
    }

    /// What the process wrote to standard output so far.
    public var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    /// What the process wrote to standard error so far.
    public var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    /// Sends `signal` (SIGTERM by default).
    public func signal(_ signal: Int32 = SIGTERM) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Kills the process with SIGKILL and waits for it.
    public func kill9() {
        signal(SIGKILL)
        process.waitUntilExit()
    }

    /// Waits for the process to exit, up to `timeout`; returns its status, or nil on timeout.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(30)) async -> Int32? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning {
            if ContinuousClock.now > deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// Waits until standard output or standard error contains `text`; returns the matching line.
    public func waitForOutput(
        containing text: String,
        timeout: Duration = .seconds(60)
    ) async throws -> String {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            for output in [stdout, stderr] {
                if let line = output.split(separator: "\n").first(where: { $0.contains(text) }) {
                    return String(line)
                }
            }
            if !process.isRunning {
                throw TestSupportError(
                    "\(label) exited (status \(process.terminationStatus)) before printing '\(text)'.\nstderr: \(stderr.suffix(4000))"
                )
            }
            if ContinuousClock.now > deadline {
                throw TestSupportError("timed out waiting for '\(text)' from \(label).\nstderr: \(stderr.suffix(4000))")
            }
            try await Task.sleep(for: .milliseconds(25))
        }
    }

    private var label: String { URL(fileURLWithPath: executable).lastPathComponent }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? stdoutHandle.close()
        try? stderrHandle.close()
        // `scratch` is released after this, which removes its folder.
    }
}

/// Stops a test's child processes when the test process dies without stopping them.
///
/// A test stops what it starts when it releases it (``ChildProcess``'s `deinit`), and
/// `scripts/test` stops what a crashed test process left (scripts/testrun/after.py). Neither
/// helps when the test process is killed or interrupted outside `scripts/test`: `swift test`
/// stopped with Ctrl-C, `kill -9`, a CI step's timeout. Foundation starts every child in a process
/// group of its own, so the terminal's SIGINT does not reach it either, and the children run on: a
/// `log-crash-writer` left so, writing "forever", filled 33 GB of /tmp in an hour, and the
/// interrupted tests' servers kept their ports.
///
/// So beside each child runs a watcher: a shell, started by the test process, without the run's
/// `PLAYHEAD_TEST_RUN` mark (it is not a leftover of the tests), that checks once a second. While
/// the child lives and the parent is gone, it kills the child, then the child's process group
/// (whatever the child started) with SIGKILL; once the child is gone, it exits. (A watcher
/// forked inside the child's own shell before an `exec` would hold the pipe by which Foundation
/// learns that the child ended, and the child would never be collected.)
public enum ParentWatch {
    /// A watcher's script: `$1` the parent, `$2` what is watched. Once a second while `watched`
    /// holds: if the parent is gone, `stop` and end.
    static func script(while watched: String, stop: String) -> String {
        """
        while \(watched); do
            if ! kill -0 "$1" 2>/dev/null; then
                \(stop); exit 0
            fi
            sleep 1
        done
        """
    }

    /// A child: killed, then its process group.
    static let childScript = script(
        while: #"kill -0 "$2" 2>/dev/null"#, stop: #"kill -KILL "$2" 2>/dev/null; kill -s KILL -- "-$2" 2>/dev/null"#)

    /// A file system a test mounted: unmounted lazily (what was killed may still hold it for a
    /// moment). Left mounted, its folder in /tmp cannot be removed.
    static let mountScript = script(
        while: #"mountpoint -q "$2""#, stop: #"umount -l "$2" 2>/dev/null || sudo -n umount -l "$2" 2>/dev/null"#)

    /// Starts the watch of `child` for the death of `parent`. Keep the result while the child
    /// runs (the watcher ends by itself within a second of the child).
    static func start(child: Int32, parent: Int32) throws -> Process {
        try start(childScript, name: "playhead-parent-watch", parent: parent, subject: String(child))
    }

    /// Starts the watch of the file system mounted at `mountPoint` for the death of `parent`.
    static func start(mountPoint: String, parent: Int32) throws -> Process {
        try start(mountScript, name: "playhead-mount-watch", parent: parent, subject: mountPoint)
    }

    private static func start(_ script: String, name: String, parent: Int32, subject: String) throws -> Process {
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: "/bin/sh")
        watcher.arguments = ["-c", script, name, String(parent), subject]
        var environment = ProcessInfo.processInfo.environment
        environment["PLAYHEAD_TEST_RUN"] = nil
        watcher.environment = environment
        watcher.standardInput = FileHandle.nullDevice
        watcher.standardOutput = FileHandle.nullDevice
        watcher.standardError = FileHandle.nullDevice
        try watcher.run()
        return watcher
    }

    /// The process ids of the watchers of `child` still running.
    public static func watchers(of child: Int32) -> [Int32] { watchers(named: "playhead-parent-watch", of: String(child)) }

    /// The process ids of the watchers of the file system at `mountPoint` still running.
    public static func watchers(ofMount mountPoint: String) -> [Int32] { watchers(named: "playhead-mount-watch", of: mountPoint) }

    private static func watchers(named name: String, of subject: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let pid = Int32(entry),
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
            else { return nil }
            let words = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            // /bin/sh -c SCRIPT NAME PARENT SUBJECT
            guard words.count == 6, words[3] == name, words[5] == subject else { return nil }
            return pid
        }
    }
}

extension TemporaryDirectory {
    /// `base` with `environment` laid over it, and `TMPDIR` set to a `tmp` folder in this one unless
    /// `environment` sets it: what a child process leaves in its temporary folder (Chromium's
    /// profile, SeaweedFS's sockets) is removed with this folder instead of piling up in /tmp.
    func environment(_ base: [String: String], adding environment: [String: String]) throws -> [String: String] {
        var result = base
        let tmp = appending("tmp")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        result["TMPDIR"] = tmp.path
        for (key, value) in environment { result[key] = value }
        return result
    }
}

/// Runs a command to completion and returns its status and output.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs `executable` with `arguments` and waits for it (up to `timeout`).
public func runCommand(
    _ executable: String,
    _ arguments: [String] = [],
    environment: [String: String] = [:],
    stdin: Data? = nil,
    timeout: Duration = .seconds(300)
) async throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let directory = try TemporaryDirectory(prefix: "cmd")
    process.environment = try directory.environment(ProcessInfo.processInfo.environment, adding: environment)
    let outURL = directory.appending("stdout")
    let errURL = directory.appending("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)  // a failure shows in FileHandle below
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)  // a failure shows in FileHandle below
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)
    defer {
        try? out.close()
        try? err.close()
    }
    process.standardOutput = out
    process.standardError = err
    if let stdin {
        let inURL = directory.appending("stdin")
        try stdin.write(to: inURL)
        process.standardInput = try FileHandle(forReadingFrom: inURL)
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    try process.run()
    let watch = try? ParentWatch.start(child: process.processIdentifier, parent: getpid())
    defer { withExtendedLifetime(watch) {} }
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while process.isRunning {
        if ContinuousClock.now > deadline {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw TestSupportError("\(executable) \(arguments.joined(separator: " ")) timed out after \(timeout)")
        }
        try await Task.sleep(for: .milliseconds(10))
    }
    return CommandResult(
        status: process.terminationStatus,
        stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
    )
}

/// Runs a Python script with the test venv's interpreter. Fails the call if the script fails.
@discardableResult
public func runPython(
    _ script: String,
    arguments: [String] = [],
    environment: [String: String] = [:],
    timeout: Duration = .seconds(300)
) async throws -> String {
    let result = try await runCommand(
        TestEnvironment.python, ["-c", script] + arguments, environment: environment, timeout: timeout
    )
    guard result.status == 0 else {
        throw TestSupportError("python failed (status \(result.status)):\n\(result.stderr)\n\(result.stdout)")
    }
    return result.stdout
}

/// An error raised by the test support code, with a message that says what went wrong.
public struct TestSupportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
