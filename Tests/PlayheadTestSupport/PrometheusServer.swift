import Foundation

/// A real Prometheus server (Debian's `prometheus`, started by the test on 127.0.0.1) that scrapes
/// the given targets. Killed when released (or by ``stop()``), with its data in a temporary folder.
///
/// Traps (see /work/shared/notes/real-components.md): the first scrape happens about 5–6 s after
/// start (the scrape manager applies targets on a 5 s tick), so wait with ``waitForTarget(job:)``;
/// `scrape_timeout` must not exceed `scrape_interval`; always pass the listen address and the tsdb path.
public final class PrometheusServer: @unchecked Sendable {
    public let process: ChildProcess
    public let port: Int
    public let directory: TemporaryDirectory
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// The `prometheus` executable: `$PLAYHEAD_PROMETHEUS`, else `/usr/bin/prometheus`.
    public static var executable: String {
        if let path = ProcessInfo.processInfo.environment["PLAYHEAD_PROMETHEUS"], !path.isEmpty { return path }
        return "/usr/bin/prometheus"
    }

    public static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: executable) }

    /// Starts Prometheus scraping `targets` (job name → `host:port`, path `metricsPath`) every
    /// `scrapeIntervalSeconds`, and waits until it is ready.
    public init(
        targets: [String: String],
        metricsPath: String = "/metrics",
        scrapeIntervalSeconds: Int = 1,
        ruleFiles: [String] = []
    ) async throws {
        directory = try TemporaryDirectory(prefix: "prometheus")
        port = try TestNetwork.freePort()
        var config = """
            global:
              scrape_interval: \(scrapeIntervalSeconds)s
              scrape_timeout: \(scrapeIntervalSeconds * 900)ms
              evaluation_interval: \(scrapeIntervalSeconds)s

            """
        if !ruleFiles.isEmpty {
            config += "rule_files:\n" + ruleFiles.map { "  - \"\($0)\"\n" }.joined()
        }
        config += "scrape_configs:\n"
        for (job, target) in targets.sorted(by: { $0.key < $1.key }) {
            config += """
                  - job_name: "\(job)"
                    metrics_path: "\(metricsPath)"
                    static_configs:
                      - targets: ["\(target)"]

                """
        }
        let configURL = directory.appending("prometheus.yml")
        try config.write(to: configURL, atomically: true, encoding: .utf8)
        let data = directory.appending("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        process = try ChildProcess(
            Self.executable,
            [
                "--config.file=\(configURL.path)",
                "--storage.tsdb.path=\(data.path)",
                "--web.listen-address=127.0.0.1:\(port)",
                "--log.level=warn",
            ],
            name: "prometheus",
            logDirectory: directory.url
        )
        try await waitUntilReady()
    }

    private func waitUntilReady(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            if !process.isRunning {
                throw TestSupportError("prometheus exited before it was ready:\n\(process.stderr.suffix(4000))")
            }
            if let response = try? await TestHTTP.request("\(baseURL)/-/ready", timeout: .seconds(2)), response.status == 200 {
                return
            }
            if ContinuousClock.now > deadline {
                throw TestSupportError("prometheus not ready after \(timeout):\n\(process.stderr.suffix(4000))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Runs an instant PromQL query and returns `data.result` (a list of `{metric, value}` objects).
    public func query(_ promql: String) async throws -> [[String: Any]] {
        // Encode everything but unreserved characters: a literal "+" would otherwise reach Prometheus as a space.
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        let encoded = promql.addingPercentEncoding(withAllowedCharacters: unreserved) ?? promql
        let response = try await TestHTTP.request("\(baseURL)/api/v1/query?query=\(encoded)", timeout: .seconds(10))
        let json = response.json
        guard response.status == 200, json["status"] as? String == "success",
            let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]]
        else { throw TestSupportError("query \(promql) failed: HTTP \(response.status) \(response.text)") }
        return result
    }

    /// The value of a query that returns one sample (a vector of one element or a scalar); `nil` when empty.
    public func queryValue(_ promql: String) async throws -> Double? {
        let result = try await query(promql)
        guard let first = result.first, let value = first["value"] as? [Any], value.count == 2,
            let text = value[1] as? String
        else { return nil }
        return Double(text)
    }

    /// Polls `promql` until `predicate` holds for its value or `timeout` passes; returns the last value.
    @discardableResult
    public func waitForValue(
        _ promql: String,
        timeout: Duration = .seconds(40),
        _ predicate: (Double) -> Bool
    ) async throws -> Double? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var last: Double?
        while ContinuousClock.now < deadline {
            last = try await queryValue(promql)
            if let last, predicate(last) { return last }
            try await Task.sleep(for: .milliseconds(250))
        }
        return last
    }

    /// Waits until `up{job=…}` is 1 (the first scrape succeeded).
    public func waitForTarget(job: String, timeout: Duration = .seconds(40)) async throws {
        let value = try await waitForValue("up{job=\"\(job)\"}", timeout: timeout) { $0 == 1 }
        guard value == 1 else {
            let targets = try? await TestHTTP.request("\(baseURL)/api/v1/targets")
            throw TestSupportError("target \(job) not up after \(timeout) (up = \(String(describing: value))): \(targets?.text ?? "")")
        }
    }

    /// Stops Prometheus (SIGTERM, then SIGKILL after 10 s).
    public func stop() async {
        process.signal(SIGTERM)
        if await process.waitForExit(timeout: .seconds(10)) == nil { process.kill9() }
    }
}
