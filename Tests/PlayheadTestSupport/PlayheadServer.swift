import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A `playhead` process started by a test (`serve`, `ingest`, …) on a free port of 127.0.0.1.
/// Killed when released, so every test stops what it starts.
public final class PlayheadServer: @unchecked Sendable {
    public let process: ChildProcess
    public let port: Int
    public let dataDirectory: String
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// Objects that must live as long as the server (its temporary data folder).
    public var keepAlive: [AnyObject] = []

    /// Starts `playhead <command> --port 0 <arguments>` and waits until it listens.
    /// - Parameters:
    ///   - dataDirectory: passed as `--data-dir` unless nothing would be read from it: `arguments`
    ///     name `--log`, and the command writes no lake or `arguments` name `--lake` too (the
    ///     command refuses a `--data-dir` it does not read).
    ///   - openFilesLimit: the server's limit of open files (`ulimit -n`), when set.
    public init(
        command: String = "serve",
        dataDirectory: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        name: String? = nil,
        openFilesLimit: Int? = nil
    ) async throws {
        self.dataDirectory = dataDirectory
        let portArguments = arguments.contains("--port") ? [] : ["--port", "0"]
        let writesLake = ["serve", "store"].contains(command)
        let readsDataDir = !arguments.contains("--log") || (writesLake && !arguments.contains("--lake"))
        let commandLine = [command] + (readsDataDir ? ["--data-dir", dataDirectory] : []) + portArguments + arguments
        // With a limit, through a shell that sets it and then becomes the server (same pid).
        let (executable, launchArguments) = openFilesLimit.map {
            ("/bin/sh", ["-c", "ulimit -n \($0) && exec \"$@\"", "sh", TestEnvironment.playheadExecutable] + commandLine)
        } ?? (TestEnvironment.playheadExecutable, commandLine)
        process = try ChildProcess(
            executable,
            launchArguments,
            name: name ?? "playhead-\(command)",
            environment: environment,
            logDirectory: TestEnvironment.artifactsDirectory
        )
        let line = try await process.waitForOutput(containing: "listening on http://", timeout: .seconds(60))
        guard let range = line.range(of: #"http://[^ :]+:(\d+)"#, options: .regularExpression),
            let port = Int(line[range].split(separator: ":").last ?? "")
        else { throw TestSupportError("cannot read the port from: \(line)") }
        self.port = port
    }

    /// Stops the server with `signal` (SIGTERM) and returns its exit status.
    @discardableResult
    public func stop(timeout: Duration = .seconds(60), signal: Int32 = SIGTERM) async -> Int32? {
        process.signal(signal)
        return await process.waitForExit(timeout: timeout)
    }
}

/// An HTTP answer as a test sees it.
public struct TestHTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
    /// The body parsed as a JSON object.
    public var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }
}

/// A small HTTP client for tests, over AsyncHTTPClient.
public enum TestHTTP {
    public static let client = HTTPClient(eventLoopGroupProvider: .singleton)

    /// The sum of the samples of `name` (every label set) in a `/metrics` text.
    public static func metricTotal(_ text: String, _ name: String) -> Double {
        text.split(separator: "\n").filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    /// The sum of the samples of `name` in `server`'s `/metrics` now (0 when it cannot be read).
    public static func metricTotal(_ server: PlayheadServer, _ name: String) async -> Double {
        metricTotal((try? await request("\(server.baseURL)/metrics").text) ?? "", name)
    }

    public static func request(
        _ url: String,
        method: HTTPMethod = .GET,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> TestHTTPResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(request, timeout: .milliseconds(timeout.components.seconds * 1000))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return TestHTTPResponse(status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView))
    }

    /// POSTs `body` to `/v1/events` of `server`.
    public static func postEvents(
        _ server: PlayheadServer,
        _ body: String,
        contentType: String? = "application/json",
        headers: [(String, String)] = [],
        query: String = ""
    ) async throws -> TestHTTPResponse {
        try await postEvents(server, Array(body.utf8), contentType: contentType, headers: headers, query: query)
    }

    public static func postEvents(
        _ server: PlayheadServer,
        _ body: [UInt8],
        contentType: String? = "application/json",
        headers: [(String, String)] = [],
        query: String = ""
    ) async throws -> TestHTTPResponse {
        var all = headers
        if let contentType { all.append(("Content-Type", contentType)) }
        return try await request("\(server.baseURL)/v1/events\(query)", method: .POST, headers: all, body: body)
    }
}

/// A raw TCP connection for tests that must send exact bytes (slow clients, broken requests).
public final class RawConnection: @unchecked Sendable {
    private let fd: Int32

    public init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { close(fd); throw TestSupportError("connect to port \(port) failed: errno \(errno)") }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends bytes; false when the peer has closed the connection.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { buffer in
            var sent = 0
            while sent < buffer.count {
                let n = Glibc.send(fd, buffer.baseAddress! + sent, buffer.count - sent, Int32(MSG_NOSIGNAL))
                if n <= 0 { return false }
                sent += n
            }
            return true
        }
    }

    @discardableResult
    public func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Reads until the peer closes or `timeout` passes; returns what arrived.
    public func readAll(timeout: Duration = .seconds(30)) async -> [UInt8] {
        let fd = self.fd
        return await Task.detached {
            var timeoutValue = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeoutValue, socklen_t(MemoryLayout<timeval>.size))
            var out: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                out.append(contentsOf: chunk[0..<n])
            }
            return out
        }.value
    }

    /// Closes the sending side only (a half-close): the peer reads end of stream.
    public func shutdownWrite() {
        _ = shutdown(fd, Int32(SHUT_WR))
    }

    /// Reads what one `recv` returns within `timeout` (empty on a timeout or a closed connection).
    public func readSome(timeout: Duration = .seconds(30)) async -> [UInt8] {
        let fd = self.fd
        return await Task.detached {
            var timeoutValue = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeoutValue, socklen_t(MemoryLayout<timeval>.size))
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return n > 0 ? Array(chunk[0..<n]) : []
        }.value
    }

    deinit { close(fd) }
}
