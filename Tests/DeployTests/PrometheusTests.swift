import Foundation
import PlayheadTestSupport
import Testing

/// deploy/prometheus: the scrape configs, the rules and their unit tests, checked with promtool.
@Suite("Prometheus configuration and rules")
struct PrometheusTests {
    static let configs = ["deploy/prometheus/prometheus.yml", "deploy/prometheus/prometheus-split.yml", "deploy/prometheus/prometheus-kubernetes.yml"]
    static let ruleFiles = ["deploy/prometheus/recording-rules.yml", "deploy/prometheus/alerts.yml"]
    static let requiredAlerts: Set<String> = [
        "IngestionStalled", "RejectRatioHigh", "ConsumerLagGrowing", "DiskNearlyFull", "LakeFlushFailing", "InstanceDown",
        "LogRecordDamaged", "IngestRequestsFailing", "PlayheadTargetsMissing", "ConsumerTargetsMissing",
        "ConsumerHoldsNoPartitions", "S3StoreUnanswered", "LakeGroupOffsetMissing", "SessionTablesFull", "PlayheadNotReady",
        "RollupEventsUncounted", "LiveEventsOutsideWindow",
    ]

    static func ruleTestFiles(in folder: URL? = nil) throws -> [String] {
        let base = folder ?? Deploy.url("deploy/prometheus")
        let names = try FileManager.default.contentsOfDirectory(atPath: base.appendingPathComponent("tests").path)
        return names.filter { $0.hasSuffix(".yml") || $0.hasSuffix(".yaml") }.sorted()
            .map { base.appendingPathComponent("tests/\($0)").path }
    }

    @Test("promtool check config accepts every scrape configuration")
    func checkConfig() async throws {
        for config in Self.configs {
            let result = try await Deploy.promtool(["check", "config", Deploy.path(config)])
            #expect(result.status == 0, "promtool check config \(config):\n\(result.stdout)\n\(result.stderr)")
        }
    }

    @Test("the scrape configurations load the rule files and scrape every part of Playhead at /metrics; the single node's scrapes only serve")
    func scrapeJobs() async throws {
        // The single node's, as shipped, scrapes nothing else: targets that do not exist page InstanceDown.
        let expected: [String: Set<String>] = [
            "deploy/prometheus/prometheus.yml": ["playhead-serve"],
            "deploy/prometheus/prometheus-split.yml": ["playhead-ingest", "playhead-store", "playhead-observe"],
            "deploy/prometheus/prometheus-kubernetes.yml": ["playhead-serve", "playhead-ingest", "playhead-store", "playhead-observe"],
        ]
        for config in Self.configs {
            let document = try await Deploy.yamlDocument(config)
            let ruleFiles = (document["rule_files"] as? [String]) ?? []
            #expect(Set(ruleFiles) == ["recording-rules.yml", "alerts.yml"], "\(config) rule_files: \(ruleFiles)")
            let jobs = document.dicts("scrape_configs")
            let names = Set(jobs.compactMap { $0.string("job_name") })
            #expect(names == expected[config], "\(config): \(names)")
            for job in jobs {
                #expect(job.string("metrics_path") == "/metrics", "\(config) \(job.string("job_name") ?? "?")")
                let targets = job.dicts("static_configs").flatMap { $0["targets"] as? [String] ?? [] }
                let ports = job.dicts("dns_sd_configs").compactMap { $0.number("port") }
                #expect(!targets.isEmpty || !ports.isEmpty, "\(config) \(job.string("job_name") ?? "?") has no targets")
                #expect(targets.allSatisfy { $0.hasSuffix(":8080") }, "\(config): \(targets)")
                #expect(ports.allSatisfy { $0 == 8080 }, "\(config): \(ports)")
            }
        }
    }

    @Test("promtool check rules accepts the recording and alerting rules")
    func checkRules() async throws {
        let result = try await Deploy.promtool(["check", "rules"] + Self.ruleFiles.map(Deploy.path))
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    }

    @Test("promtool test rules passes every unit test")
    func unitTests() async throws {
        let files = try Self.ruleTestFiles()
        #expect(files.count >= 2)
        let result = try await Deploy.promtool(["test", "rules"] + files)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(!result.stdout.contains("FAILED"))
    }

    @Test("the required alerts exist, with a severity, a summary, a description and a runbook section")
    func alertsAreComplete() async throws {
        let alerts = try await Deploy.rules(in: "deploy/prometheus/alerts.yml")
        let names = alerts.compactMap { $0.string("alert") }
        #expect(Set(names) == Self.requiredAlerts, "\(names)")
        #expect(names.count == Set(names).count, "duplicate alert names: \(names)")
        let runbook = try Deploy.read("docs/runbook.md")
        let anchors = Set(runbook.split(separator: "\n").filter { $0.hasPrefix("#") }.map { githubAnchor(String($0)) })
        for alert in alerts {
            let name = alert.string("alert") ?? "?"
            let severity = alert.dict("labels")?.string("severity")
            #expect(severity == "critical" || severity == "warning", "\(name) severity \(severity ?? "none")")
            let annotations = alert.dict("annotations") ?? [:]
            #expect(!(annotations.string("summary") ?? "").isEmpty, "\(name) has no summary")
            #expect(!(annotations.string("description") ?? "").isEmpty, "\(name) has no description")
            let url = annotations.string("runbook_url") ?? ""
            #expect(url.hasPrefix("docs/runbook.md#"), "\(name) runbook_url \(url)")
            let anchor = String(url.split(separator: "#").last ?? "")
            #expect(anchors.contains(anchor), "\(name): docs/runbook.md has no section #\(anchor)")
        }
    }

    @Test("every alert is tested firing and quiet; every recording rule is tested")
    func everyRuleIsTested() async throws {
        let testFiles = try Self.ruleTestFiles().map { "deploy/prometheus/tests/" + URL(fileURLWithPath: $0).lastPathComponent }
        let documents = try await Deploy.yamlDocuments(testFiles)
        var firing = Set<String>()
        var quiet = Set<String>()
        var testedExpressions: [String] = []
        for (_, docs) in documents {
            guard let document = docs.first as? [String: Any] else { continue }
            for test in document.dicts("tests") {
                for alertTest in test.dicts("alert_rule_test") {
                    guard let name = alertTest.string("alertname") else { continue }
                    if alertTest.dicts("exp_alerts").isEmpty { quiet.insert(name) } else { firing.insert(name) }
                }
                testedExpressions += test.dicts("promql_expr_test").compactMap { $0.string("expr") }
            }
        }
        for alert in Self.requiredAlerts {
            #expect(firing.contains(alert), "no test shows \(alert) firing")
            #expect(quiet.contains(alert), "no test shows \(alert) quiet")
        }
        let tested = testedExpressions.reduce(into: Set<String>()) { $0.formUnion(Deploy.metricNames(inPromQL: $1)) }
        let records = try await Deploy.recordingRuleNames()
        #expect(records.count >= 10)
        for record in records {
            #expect(tested.contains(record), "recording rule \(record) has no promql_expr_test")
        }
    }

    @Test("rules read only contract metrics, recording rules and `up`, and only their labels")
    func rulesUseKnownNames() async throws {
        let known = try Deploy.contractSeriesNames().union(try await Deploy.recordingRuleNames()).union(["up"])
        let knownLabels = try Deploy.contractLabels()
        for file in Self.ruleFiles {
            for rule in try await Deploy.rules(in: file) {
                let expression = rule.string("expr") ?? ""
                let unknown = Deploy.metricNames(inPromQL: expression).subtracting(known)
                #expect(unknown.isEmpty, "\(file) \(rule.string("alert") ?? rule.string("record") ?? ""): unknown \(unknown.sorted())")
                let unknownLabels = Deploy.labelNames(inPromQL: expression).subtracting(knownLabels)
                #expect(unknownLabels.isEmpty, "\(file) \(rule.string("alert") ?? rule.string("record") ?? ""): unknown labels \(unknownLabels.sorted())")
            }
        }
    }

    struct Mutation: Sendable, CustomTestStringConvertible {
        var file: String
        var from: String
        var to: String
        var why: String
        var testDescription: String { why }
    }

    static let mutations: [Mutation] = [
        Mutation(file: "alerts.yml", from: "job:playhead_events_reject_ratio:rate5m > 0.05", to: "job:playhead_events_reject_ratio:rate5m > 0.5",
                 why: "RejectRatioHigh threshold 50 %"),
        Mutation(file: "alerts.yml", from: "consumer:playhead_consumer_lag_events:deriv10m > 0", to: "consumer:playhead_consumer_lag_events:deriv10m >= 0",
                 why: "ConsumerLagGrowing fires on a flat lag"),
        Mutation(file: "alerts.yml", from: "playhead_consumer_lag_events{consumer=\"lake\"} > 0", to: "playhead_consumer_lag_events{consumer=\"lake\"} >= 0",
                 why: "LakeFlushFailing fires on an idle pipeline"),
        Mutation(file: "alerts.yml", from: "changes(playhead_lake_last_flush_timestamp_seconds[10m]) == 0",
                 to: "time() - playhead_lake_last_flush_timestamp_seconds > 600",
                 why: "LakeFlushFailing fires on a server whose clock is behind Prometheus's"),
        Mutation(file: "alerts.yml", from: "(playhead_lake_last_flush_timestamp_seconds offset 10m)",
                 to: "playhead_lake_last_flush_timestamp_seconds",
                 why: "LakeFlushFailing fires on a series younger than 10 minutes"),
        Mutation(file: "alerts.yml", from: "sum by (job, consumer) (playhead_consumer_partitions_assigned) == 0",
                 to: "min by (job, consumer) (playhead_consumer_partitions_assigned) == 0",
                 why: "ConsumerHoldsNoPartitions fires for a member left without a partition while another holds them"),
        Mutation(file: "alerts.yml", from: "up == 1", to: "up >= 0", why: "IngestionStalled fires for a down instance"),
        Mutation(file: "alerts.yml", from: "unless on (job, instance)", to: "and on (job, instance)", why: "IngestionStalled misses refused requests"),
        Mutation(file: "alerts.yml", from: "for: 2m", to: "for: 0m", why: "InstanceDown without its 2 minutes"),
        Mutation(file: "alerts.yml", from: "< 0.1", to: "< 0.01", why: "DiskNearlyFull threshold 1 %"),
        Mutation(file: "alerts.yml", from: "absent(up{job=~\"playhead-.*\"})", to: "absent(up{job=~\"playhead-.*\"} == 1)",
                 why: "PlayheadTargetsMissing fires when the targets are there but down"),
        Mutation(file: "recording-rules.yml", from: "sum by (job, consumer) (playhead_consumer_lag_events{", to: "max by (job, consumer) (playhead_consumer_lag_events{",
                 why: "group lag as the max of its members"),
        Mutation(file: "recording-rules.yml", from: "sum by (job, instance, consumer) (playhead_consumer_lag_events{job=\"playhead-serve\"})",
                 to: "sum by (job, consumer) (playhead_consumer_lag_events{job=\"playhead-serve\"})",
                 why: "the lags of separate serve deployments added together"),
        Mutation(file: "alerts.yml", from: "count by () (up{job=\"playhead-store\"})", to: "count by () (up{job=\"playhead-store\"} == 1)",
                 why: "ConsumerTargetsMissing fires when the store targets are there but down"),
        Mutation(file: "recording-rules.yml", from: "(job:playhead_events_rejected:rate5m or job:playhead_events_accepted:rate5m * 0)",
                 to: "job:playhead_events_rejected:rate5m", why: "reject ratio missing when nothing is rejected"),
        Mutation(file: "recording-rules.yml", from: "histogram_quantile(0.99, sum by (job, route, le)", to: "histogram_quantile(0.9, sum by (job, route, le)",
                 why: "p99 by route computed as p90"),
    ]

    // One at a time: sixteen `promtool test rules` at once (each about 7 s of CPU) took the two
    // cores for a minute or more at the start of a whole run, past promtool's time limit on a loaded
    // machine, and stretched every timing test beside them.
    @Test("the unit tests catch a broken rule", .serialized, arguments: PrometheusTests.mutations)
    func unitTestsCatchMutation(_ mutation: Mutation) async throws {
        let directory = try TemporaryDirectory(prefix: "prometheus-mutation")
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        let copy = directory.appending("prometheus")
        try FileManager.default.copyItem(at: Deploy.url("deploy/prometheus"), to: copy)
        let file = copy.appendingPathComponent(mutation.file)
        let original = try String(contentsOf: file, encoding: .utf8)
        #expect(original.contains(mutation.from), "\(mutation.file) no longer contains \(mutation.from)")
        try original.replacingOccurrences(of: mutation.from, with: mutation.to).write(to: file, atomically: true, encoding: .utf8)
        let check = try await Deploy.promtool(["check", "rules", file.path])
        #expect(check.status == 0, "the mutation should stay valid PromQL: \(check.stderr)")
        let result = try await Deploy.promtool(["test", "rules"] + (try Self.ruleTestFiles(in: copy)))
        #expect(result.status != 0, "promtool test rules passed although \(mutation.why)")
    }

    @Test("the PromQL extractors see metrics and labels, and skip functions, strings and numbers")
    func extractor() {
        #expect(Deploy.metricNames(inPromQL: #"sum by (job, le) (rate(playhead_x_bucket{route="/v1/events"}[5m])) > 1e6"#) == ["playhead_x_bucket"])
        #expect(Deploy.metricNames(inPromQL: "up == 0 and on (instance) time() - a:b:c offset 5m") == ["up", "a:b:c"])
        #expect(Deploy.metricNames(inPromQL: "histogram_quantile(0.99, x[$__rate_interval]) / 3600") == ["x"])
        #expect(Deploy.labelNames(inPromQL: #"sum by (job, le) (rate(x{route="/a{b}=c",status!~"2.."}[5m])) and on(instance) y"#)
            == ["job", "le", "route", "status", "instance"])
    }
}

/// GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens.
func githubAnchor(_ heading: String) -> String {
    let text = heading.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces).lowercased()
    var anchor = ""
    for character in text {
        if character.isLetter || character.isNumber || character == "-" || character == "_" { anchor.append(character) }
        else if character == " " { anchor.append("-") }
    }
    return anchor
}
